//! A throwaway environment for `runbook`'s end-to-end tests, and for anyone who wants to try
//! the team's runbooks without touching a real system.
//!
//! Everything is real and local: a PostgreSQL cluster on a Unix socket in the sandbox
//! folder, a bare git repository as `origin` with a history and tags, an HTTP app on
//! 127.0.0.1 that serves `/api/health` behind a Bearer token and reports the version
//! deployed on `origin/main`, a webhook receiver, and a stand-in for `yarn prisma` that
//! works against that database (Prisma's engines cannot be downloaded here).
//!
//! Two environments can be built ([`sandbox::Shape`]), each the same product built
//! differently (names, data, migration history, database role and transport, folders), so
//! that the team's runbooks are proven not to know either.

// The test environment starts real peers (PostgreSQL, git, an HTTP server): it may create
// processes (clippy.toml allows it to engine/exec/src/process.rs alone in the engine).
#![allow(clippy::disallowed_methods)]

pub mod peers;
pub mod sandbox;

pub use sandbox::Sandbox;

//! Real peers for the steps that talk to the world, from the sandbox crate
//! (`examples/sandbox`): an HTTP server on 127.0.0.1 and a throwaway PostgreSQL cluster.

pub use runbook_sandbox::peers::{Health, HttpPeer, Postgres};

//! The pure core of `runbook`: parse, validate and plan TOML runbooks.
//!
//! Data flows one way: text → [`parse::parse`] → [`parse::Document`] (raw shapes with spans)
//! → [`validate::validate`] → [`model::Runbook`] (checked domain types) → [`plan::plan`] →
//! [`plan::Plan`]. Nothing here touches the file system, the network, a clock or a process:
//! the CLI hands in file contents, including those of included runbooks, through
//! [`validate::Loader`].

// Only the CLI prints (ARCHITECTURE.md, invariants): a library returns values or reports
// over a channel.
#![deny(clippy::print_stdout, clippy::print_stderr)]

pub mod audit;
pub mod diagnostic;
pub mod foreach;
pub mod graph;
pub mod hint;
pub mod inputs;
pub mod journal;
pub mod lifecycle;
pub mod model;
pub mod params;
pub mod parse;
pub mod plan;
mod quick;
pub mod raw;
pub mod render;
pub mod report;
pub mod retry;
pub mod schedule;
pub mod schedule_journal;
pub mod schema;
pub mod shell;
pub mod shown;
pub mod span;
pub mod suggest;
pub mod syntax;
pub mod template;
pub mod validate;
pub mod writes;

pub use diagnostic::{Code, Diagnostic, Severity, Source};
pub use span::{Span, Spanned};

/// A hash map with a fast hasher, for the validator's and planner's maps keyed by ids: they
/// are hashed thousands of times on a big runbook, and SipHash's protection against chosen
/// keys buys nothing against a file its own author wrote.
pub(crate) type FastMap<K, V> = std::collections::HashMap<K, V, foldhash::fast::RandomState>;

/// The set of [`FastMap`].
pub(crate) type FastSet<K> = std::collections::HashSet<K, foldhash::fast::RandomState>;

/// The engine's version, recorded in pinned plans.
pub const ENGINE_VERSION: &str = env!("CARGO_PKG_VERSION");

//! The pure core of `runbook`: parse, validate and plan TOML runbooks.
//!
//! Data flows one way: text → [`parse::parse`] → [`parse::Document`] (raw shapes with spans)
//! → [`validate::validate`] → [`model::Runbook`] (checked domain types) → [`plan::plan`] →
//! [`plan::Plan`]. Nothing here touches the file system, the network, a clock or a process:
//! the CLI hands in file contents, including those of included runbooks, through
//! [`validate::Loader`].

pub mod diagnostic;
pub mod graph;
pub mod inputs;
pub mod journal;
pub mod model;
pub mod params;
pub mod parse;
pub mod plan;
mod quick;
pub mod raw;
pub mod render;
pub mod report;
pub mod retry;
pub mod schema;
pub mod span;
pub mod suggest;
pub mod template;
pub mod validate;

pub use diagnostic::{Code, Diagnostic, Severity, Source};
pub use span::{Span, Spanned};

/// The engine's version, recorded in pinned plans.
pub const ENGINE_VERSION: &str = env!("CARGO_PKG_VERSION");

//! What the dispatcher tells the CLI, and what an attempt yields: values shared by the
//! dispatcher, the actions and the sinks. A leaf but for [`Stream`].

use std::collections::BTreeMap;
use std::time::Duration;

use runbook_core::journal::Record;
use serde_json::Value;

use crate::process::Stream;

/// A step's outputs: text from `$RUNBOOK_OUTPUT`, structured values from the other kinds.
pub type Outputs = BTreeMap<String, Value>;

/// The verdict of a check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Check {
    /// It passed; a line that says so.
    Passed(String),
    /// It failed, and why.
    Failed(String),
}

/// What an attempt yields besides its exit: its outputs, why the declared ones are missing,
/// or nothing (it failed before it could write any).
#[derive(Debug, Clone, PartialEq)]
pub enum Produced {
    /// Its outputs (every declared one is there).
    Values(Outputs),
    /// Why its outputs cannot be used (a declared one is missing, the file is too large).
    Missing(String),
    /// None: the attempt did not get that far (it failed, timed out, was cancelled).
    Nothing,
}

impl From<Result<Outputs, String>> for Produced {
    fn from(read: Result<Outputs, String>) -> Produced {
        match read {
            Ok(values) => Produced::Values(values),
            Err(why) => Produced::Missing(why),
        }
    }
}

/// What the CLI hears about, to show progress. Secret values never reach it.
#[derive(Debug, Clone, PartialEq)]
pub enum Report {
    /// A journal record was written.
    Recorded(Box<Record>),
    /// A step printed a line (already redacted).
    Output {
        /// Step id.
        step: String,
        /// Which stream.
        stream: Stream,
        /// The line.
        text: String,
    },
    /// Something the operator should know (a lock taken over).
    Notice(String),
    /// A retry will start after this wait.
    RetryScheduled {
        /// Step id.
        step: String,
        /// The wait.
        delay: Duration,
    },
    /// An attempt has shown no line for a heartbeat interval and is still running
    /// ([`crate::output::set_heartbeat`]). A terminal line only: never journaled, never in
    /// the step's log.
    Heartbeat {
        /// The step as the terminal shows it (its journal path, `(undo)` for a compensation).
        step: String,
        /// How long the attempt has been running.
        running: Duration,
    },
}

//! The journal: what happened in a run, as past-tense events chained by hashes.
//!
//! The journal is the state. A live run, `resume` and every report fold the same events
//! with [`fold`], so they cannot disagree. Each [`Record`] carries the hash of the one before
//! it; [`verify`] recomputes the chain and names the first record that does not fit, so an
//! edited, deleted or reordered record is detected. (A cut tail is detected by comparing
//! the last hash with the one the run printed at its end.)
//!
//! Pure: the caller supplies run ids, sequence numbers and timestamps.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::plan::FileHash;

/// The version of the event format.
pub const JOURNAL_VERSION: u32 = 1;

/// The `prev_hash` of a run's first record.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// Lines of a failed attempt's output kept in its failure record.
pub const OUTPUT_TAIL_LINES: usize = 20;

/// Bytes of a failed attempt's output kept in its failure record.
pub const OUTPUT_TAIL_BYTES: usize = 2048;

/// A reference to a value the report states as a fact: a step's output
/// (`STEP.OUTPUT`) or a compensation's (`STEP.compensate.OUTPUT`).
pub fn parse_fact_ref(text: &str) -> Option<(&str, bool, &str)> {
    let parts: Vec<&str> = text.split('.').collect();
    match parts.as_slice() {
        [step, output] => Some((step, false, output)),
        [step, "compensate", output] => Some((step, true, output)),
        _ => None,
    }
}

/// What a runbook declares its report may state as observed facts (its `[report]` table):
/// each a reference for [`parse_fact_ref`].
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ReportFacts {
    /// The output that observed the version deployed before the run changed anything.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version_before: Option<String>,
    /// The output that observed the version deployed at the end (after any compensation).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version_after: Option<String>,
    /// The output that says when the restored data was taken.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restore_point: Option<String>,
    /// Outputs that name evidence files (dumps taken before anything destructive).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub evidence: Vec<String>,
}

impl ReportFacts {
    /// True when nothing is declared.
    pub fn is_empty(&self) -> bool {
        self == &ReportFacts::default()
    }
}

/// How a run ended (or where it stands).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunStatus {
    /// Started, not finished.
    Running,
    /// Every step succeeded or was skipped.
    Succeeded,
    /// A step failed; compensations ran or none were needed.
    Failed,
    /// Stopped by a signal; resumable.
    Interrupted,
    /// An operator must decide (a compensation failed, a step is in doubt, an approval waits).
    NeedsOperator,
    /// Ended for good by an operator (`runbook abandon`): never resumed.
    Abandoned,
}

impl RunStatus {
    /// The name used in templates (`run.status`) and reports.
    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Running => "running",
            RunStatus::Succeeded => "succeeded",
            RunStatus::Failed => "failed",
            RunStatus::Interrupted => "interrupted",
            RunStatus::NeedsOperator => "needs_operator",
            RunStatus::Abandoned => "abandoned",
        }
    }
}

/// What an operator decided about a step in doubt.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Decision {
    /// Run it again.
    Rerun,
    /// Treat it as done.
    Skip,
    /// A main step in doubt took effect: treat it as completed so that `compensate` undoes
    /// it (the operator checked; only `compensate` records it).
    Undo,
}

/// Match the events that are about a step, binding its id to `$step` (by reference or by
/// mutable reference, as `$event` is): one list of such events for every use.
macro_rules! step_field {
    ($event:expr, $step:ident => $then:expr, $otherwise:expr) => {
        match $event {
            RunEvent::StepStarted { step: $step, .. }
            | RunEvent::AttemptFailed { step: $step, .. }
            | RunEvent::StepSucceeded { step: $step, .. }
            | RunEvent::StepFailed { step: $step, .. }
            | RunEvent::StepSkipped { step: $step, .. }
            | RunEvent::CompensationStarted { step: $step, .. }
            | RunEvent::CompensationSucceeded { step: $step, .. }
            | RunEvent::CompensationFailed { step: $step, .. }
            | RunEvent::OperatorDecision { step: $step, .. }
            | RunEvent::CompensationDecision { step: $step, .. }
            | RunEvent::ApprovalRequested { step: $step, .. }
            | RunEvent::ApprovalGranted { step: $step, .. }
            | RunEvent::ApprovalRejected { step: $step, .. }
            | RunEvent::LogKept { step: $step, .. }
            | RunEvent::ConfirmationRequested { step: $step, .. }
            | RunEvent::ConfirmationGiven { step: $step, .. } => $then,
            _ => $otherwise,
        }
    };
}

/// A fact about a run. Stored with its `kind` as an explicit string.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum RunEvent {
    /// The run began.
    RunStarted {
        /// Runbook name.
        runbook: String,
        /// The runbook file as an absolute path, for `resume`.
        #[serde(default)]
        file: String,
        /// Every runbook file involved, with its hash.
        files: Vec<FileHash>,
        /// Parameter values (never secret).
        params: BTreeMap<String, serde_json::Value>,
        /// Who started it (`user@host`).
        operator: String,
        /// Engine version.
        engine_version: String,
        /// Who submitted it, for a queued run executed by a worker: like the operator, the
        /// submitter may not approve the run's steps unless self-approval is allowed.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        submitted_by: Option<String>,
        /// Set by engines that vouch for every log they keep with a `log_kept` record: for
        /// such a run, a kept log without one is forged, never "kept before log digests".
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        log_digests: bool,
        /// Which step outputs the report states as facts (the runbook's `[report]` table),
        /// journaled so that the report needs nothing but the journal. Absent when none.
        #[serde(default, skip_serializing_if = "ReportFacts::is_empty")]
        report: ReportFacts,
    },
    /// A step's attempt is about to start (written before the process is spawned).
    StepStarted {
        /// Step id.
        step: String,
        /// Attempt number, from 1.
        attempt: u32,
    },
    /// An attempt failed and will be retried.
    AttemptFailed {
        /// Step id.
        step: String,
        /// Attempt number.
        attempt: u32,
        /// Exit code, when the process exited.
        exit_code: Option<i32>,
        /// What went wrong.
        reason: String,
        /// The last lines of the attempt's output (redacted, at most [`OUTPUT_TAIL_LINES`]
        /// lines and [`OUTPUT_TAIL_BYTES`] bytes): the error text. Absent in older journals.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        output: Option<String>,
    },
    /// A step succeeded.
    StepSucceeded {
        /// Step id.
        step: String,
        /// The attempt that succeeded.
        attempt: u32,
        /// Its outputs: text for `run`/`cmd`, structured values for `http`, `sql`, `approval`.
        outputs: BTreeMap<String, serde_json::Value>,
    },
    /// A step failed after its retries.
    StepFailed {
        /// Step id.
        step: String,
        /// The last attempt.
        attempt: u32,
        /// What went wrong.
        reason: String,
        /// The last lines of the attempt's output (redacted, at most [`OUTPUT_TAIL_LINES`]
        /// lines and [`OUTPUT_TAIL_BYTES`] bytes): the error text. Absent in older journals.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        output: Option<String>,
    },
    /// A step did not run (`when` false, or a dependency failed with `continue`).
    StepSkipped {
        /// Step id.
        step: String,
        /// Why.
        reason: String,
    },
    /// A step's compensation began.
    CompensationStarted {
        /// Step id.
        step: String,
        /// Attempt number.
        attempt: u32,
    },
    /// A step's compensation succeeded.
    CompensationSucceeded {
        /// Step id.
        step: String,
        /// The outputs the compensation declared (`outputs = [...]`), written to
        /// `$RUNBOOK_OUTPUT` like a step's. Absent when it declares none.
        #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
        outputs: BTreeMap<String, serde_json::Value>,
    },
    /// A step's compensation failed after its retries.
    CompensationFailed {
        /// Step id.
        step: String,
        /// What went wrong.
        reason: String,
        /// The last lines of the attempt's output (redacted, at most [`OUTPUT_TAIL_LINES`]
        /// lines and [`OUTPUT_TAIL_BYTES`] bytes): the error text. Absent in older journals.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        output: Option<String>,
    },
    /// The run was stopped by a signal.
    RunInterrupted {
        /// Which signal or why.
        reason: String,
    },
    /// An operator resumed the run (after an interruption or a crash).
    RunResumed {
        /// Who resumed it.
        operator: String,
        /// Steps in doubt that will run again because they are idempotent.
        rerun_idempotent: Vec<String>,
    },
    /// An operator decided about a step.
    OperatorDecision {
        /// Step id.
        step: String,
        /// The decision.
        decision: Decision,
        /// Who decided.
        operator: String,
        /// Why.
        reason: String,
    },
    /// An operator decided about a compensation in doubt (started, no end record):
    /// run it again, or treat it as done.
    CompensationDecision {
        /// The step whose compensation it is.
        step: String,
        /// The decision.
        decision: Decision,
        /// Who decided.
        operator: String,
        /// Why.
        reason: String,
    },
    /// An approval step is waiting for decisions. The rules travel with the request, so
    /// `runbook approve` judges a decision from the journal alone.
    ApprovalRequested {
        /// Step id.
        step: String,
        /// The question, rendered.
        prompt: String,
        /// Who may approve (empty: anyone).
        approvers: Vec<String>,
        /// Distinct approvals needed.
        min_approvals: u32,
        /// Whether the run's operator may approve.
        allow_self_approval: bool,
        /// The run's operator (self-approval is judged against this).
        requested_by: String,
        /// Typed inputs an approver supplies: name → type (`string`, `integer`...).
        #[serde(default)]
        inputs: BTreeMap<String, String>,
        /// Deadline in ms since the epoch, if the step has a `timeout`.
        #[serde(default)]
        deadline_ms: Option<i64>,
        /// What each input a decision must carry takes, as the commands an operator is told
        /// to type write it (its choices `a|b`, else its type); inputs with a default are
        /// absent. `None` in journals written before it: `show` then lists `inputs`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        takes: Option<BTreeMap<String, String>>,
    },
    /// Someone approved a waiting step.
    ApprovalGranted {
        /// Step id.
        step: String,
        /// Who.
        operator: String,
        /// Why (may be empty).
        reason: String,
        /// Input values given with the approval.
        #[serde(default)]
        inputs: BTreeMap<String, serde_json::Value>,
    },
    /// Someone rejected a waiting step: it fails.
    ApprovalRejected {
        /// Step id.
        step: String,
        /// Who.
        operator: String,
        /// Why.
        reason: String,
    },
    /// The run stopped to wait for an operator (approvals); `resume` continues it.
    RunSuspended {
        /// The steps it waits on.
        waiting: Vec<String>,
    },
    /// An escalation's time came while the run was still going; its notification was sent
    /// (or attempted: escalations never fail a run).
    EscalationFired {
        /// Escalation id.
        escalation: String,
        /// Whether the webhook accepted it.
        delivered: bool,
        /// Why not, when it was not.
        #[serde(default)]
        error: Option<String>,
    },
    /// The run ended.
    RunFinished {
        /// How.
        status: RunStatus,
        /// The runbook's preconditions that failed, each with its message and the end of its
        /// output (a run that ends this way ran no step). Absent otherwise.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        preconditions: Vec<String>,
    },
    /// An attempt's output was kept in the store (`step_logs`), as exactly the text whose
    /// digest this is: `runbook logs` and `audit verify` check the stored text against it.
    /// Written after the run stops (with the copy, in one transaction), so it follows
    /// `run_finished`.
    LogKept {
        /// The step's journal path.
        step: String,
        /// Attempt number, from 1.
        attempt: u32,
        /// Size of the whole local log, in bytes.
        bytes: u64,
        /// Size of the text kept in the store (the head of the log and, when cut, a marker).
        kept_bytes: u64,
        /// SHA-256 (hex) of the text kept in the store.
        sha256: String,
    },
    /// A step's `confirm` question was put to the operator (journaled when asked, before
    /// any answer): a question without a `confirmation_given` after it has no answer, and
    /// `resume` asks it again.
    ConfirmationRequested {
        /// Step id.
        step: String,
        /// The question, rendered and redacted.
        question: String,
    },
    /// A step's `confirm` question was answered (or `--yes` answered it for the operator).
    ConfirmationGiven {
        /// Step id.
        step: String,
        /// The question, rendered and redacted.
        question: String,
        /// Who answered (the run's operator; with `--yes`, who passed it).
        operator: String,
        /// True: confirmed (the step starts); false: refused (the step fails).
        confirmed: bool,
        /// True when `--yes` answered, not a person at a prompt.
        by_yes: bool,
    },
    /// A precondition was evaluated and said no (or could not run): what failed and the end
    /// of what it printed, redacted like every event. Written before the record it causes: the
    /// `step_failed` of its step, or (the runbook's own) the `run_finished` of a run that ran
    /// no step.
    PreconditionFailed {
        /// The step whose precondition it is (its journal path); absent for the runbook's
        /// own. An included runbook's own preconditions name the `runbook` step including it.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        step: Option<String>,
        /// The precondition's id.
        precondition: String,
        /// What failed, as shown on the terminal.
        message: String,
        /// The end of what it printed (redacted), if it printed anything.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        output: Option<String>,
    },
    /// An operator ended an unfinished run for good (`runbook abandon`, issue 14 point 4):
    /// it is not resumed, and its lock is let go. Written by the operator's command, never
    /// while an engine holds the run.
    RunAbandoned {
        /// Who ended it.
        operator: String,
        /// Why (as typed, redacted).
        reason: String,
        /// Its compensations ran first (`--compensate`).
        compensated: bool,
    },
    /// The run was queued by a schedule (issue 17): which schedule, for which due time.
    /// Written by the engine right after `run_started`; it changes nothing in the run.
    ScheduleFired {
        /// The schedule's name (`[schedule.NAME]`).
        schedule: String,
        /// The due time it was queued for (RFC 3339, UTC).
        due: String,
    },
}

impl RunEvent {
    /// The event's kind as stored (`step_started`...).
    pub fn kind(&self) -> &'static str {
        match self {
            RunEvent::RunStarted { .. } => "run_started",
            RunEvent::StepStarted { .. } => "step_started",
            RunEvent::AttemptFailed { .. } => "attempt_failed",
            RunEvent::StepSucceeded { .. } => "step_succeeded",
            RunEvent::StepFailed { .. } => "step_failed",
            RunEvent::StepSkipped { .. } => "step_skipped",
            RunEvent::CompensationStarted { .. } => "compensation_started",
            RunEvent::CompensationSucceeded { .. } => "compensation_succeeded",
            RunEvent::CompensationFailed { .. } => "compensation_failed",
            RunEvent::RunInterrupted { .. } => "run_interrupted",
            RunEvent::RunResumed { .. } => "run_resumed",
            RunEvent::OperatorDecision { .. } => "operator_decision",
            RunEvent::CompensationDecision { .. } => "compensation_decision",
            RunEvent::ApprovalRequested { .. } => "approval_requested",
            RunEvent::ApprovalGranted { .. } => "approval_granted",
            RunEvent::ApprovalRejected { .. } => "approval_rejected",
            RunEvent::RunSuspended { .. } => "run_suspended",
            RunEvent::EscalationFired { .. } => "escalation_fired",
            RunEvent::RunFinished { .. } => "run_finished",
            RunEvent::LogKept { .. } => "log_kept",
            RunEvent::ConfirmationRequested { .. } => "confirmation_requested",
            RunEvent::ConfirmationGiven { .. } => "confirmation_given",
            RunEvent::PreconditionFailed { .. } => "precondition_failed",
            RunEvent::RunAbandoned { .. } => "run_abandoned",
            RunEvent::ScheduleFired { .. } => "schedule_fired",
        }
    }

    /// The step the event is about, if any.
    pub fn step(&self) -> Option<&str> {
        step_field!(self, step => Some(step.as_str()), None)
    }

    /// The event of an included runbook's own step under `prefix`, with the prefix taken off;
    /// `None` for any other event (a step of another level, or no step at all).
    pub fn without_step_prefix(mut self, prefix: &str) -> Option<RunEvent> {
        let mut own = false;
        step_field!(&mut self, step => {
            if let Some(rest) = step.strip_prefix(prefix).filter(|r| !r.contains('/')) {
                *step = rest.to_string();
                own = true;
            }
        }, ());
        own.then_some(self)
    }

    /// The event with its step id put under `prefix` (`rotate_api/` + `prune`): how the
    /// events of an included runbook are journaled in the run that includes it.
    pub fn with_step_prefix(mut self, prefix: &str) -> RunEvent {
        if !prefix.is_empty() {
            step_field!(&mut self, step => *step = format!("{prefix}{step}"), ());
        }
        self
    }
}

/// One journal entry: an event with its place in the run and in the hash chain.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Record {
    /// The run.
    pub run_id: String,
    /// Position in the run, from 1, without gaps.
    pub seq: u64,
    /// When it was recorded (RFC 3339, UTC).
    pub ts: String,
    /// What happened.
    pub event: RunEvent,
    /// The previous record's hash ([`GENESIS`] for the first).
    pub prev_hash: String,
    /// SHA-256 over the previous hash and this record's canonical JSON.
    pub hash: String,
    /// The database role of the session that wrote it (PostgreSQL stores), in the chain.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub db_role: Option<String>,
}

impl Record {
    /// A new record chained after `prev_hash`.
    pub fn new(run_id: &str, seq: u64, ts: &str, event: RunEvent, prev_hash: &str) -> Record {
        Record::new_by(run_id, seq, ts, event, prev_hash, None)
    }

    /// A new record chained after `prev_hash`, written by database role `db_role`.
    pub fn new_by(
        run_id: &str,
        seq: u64,
        ts: &str,
        event: RunEvent,
        prev_hash: &str,
        db_role: Option<&str>,
    ) -> Record {
        let hash = chain_hash_by(run_id, seq, ts, &event, prev_hash, db_role);
        Record {
            run_id: run_id.into(),
            seq,
            ts: ts.into(),
            event,
            prev_hash: prev_hash.into(),
            hash,
            db_role: db_role.map(str::to_string),
        }
    }
}

/// The hash of a record: SHA-256 of `prev_hash`, a newline, and the canonical JSON of
/// `{event, prev_hash, run_id, seq, ts}` (keys sorted, no whitespace).
pub fn chain_hash(run_id: &str, seq: u64, ts: &str, event: &RunEvent, prev_hash: &str) -> String {
    chain_hash_by(run_id, seq, ts, event, prev_hash, None)
}

/// [`chain_hash`] with the writer's database role, which joins the hashed object as
/// `db_role` when there is one (records without one hash as before).
pub fn chain_hash_by(
    run_id: &str,
    seq: u64,
    ts: &str,
    event: &RunEvent,
    prev_hash: &str,
    db_role: Option<&str>,
) -> String {
    chain_hash_of(run_id, seq, ts, event, prev_hash, db_role)
}

/// The one hash of every chained journal (a run's, a schedule's): [`chain_hash_by`] over any
/// event that serializes. `chain` is the journal's name (a run id, a schedule's name); it is
/// hashed under the key `run_id` so that run records hash exactly as they always did.
pub fn chain_hash_of<E: Serialize + ?Sized>(
    chain: &str,
    seq: u64,
    ts: &str,
    event: &E,
    prev_hash: &str,
    db_role: Option<&str>,
) -> String {
    // serde_json's map keeps keys sorted, which makes this serialization canonical.
    let mut body = serde_json::json!({
        "event": event,
        "prev_hash": prev_hash,
        "run_id": chain,
        "seq": seq,
        "ts": ts,
    });
    if let (Some(role), Some(map)) = (db_role, body.as_object_mut()) {
        map.insert("db_role".into(), serde_json::Value::String(role.to_string()));
    }
    let mut hasher = Sha256::new();
    hasher.update(prev_hash.as_bytes());
    hasher.update(b"\n");
    // The compact text of `body` (what `body.to_string()` is), written into the hash as it
    // is produced: no copy of the record's text per record verified.
    let _ = serde_json::to_writer(HashWriter(&mut hasher), &body);
    hex(&hasher.finalize())
}

/// Feeds what is written into a hash.
struct HashWriter<'a>(&'a mut Sha256);

impl std::io::Write for HashWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.update(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Lower-case hex of `bytes`, as `format!("{b:02x}")` of each (without a string a byte).
fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 0x0f)]));
    }
    out
}

/// Where a journal's chain breaks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainError {
    /// The sequence number expected at the break (the first bad record).
    pub seq: u64,
    /// What does not fit.
    pub reason: String,
}

/// A record of a hash-chained journal: what [`verify_chain`] needs of it.
pub trait Linked {
    /// Its position, from 1.
    fn seq(&self) -> u64;
    /// The previous record's hash, as stored.
    fn prev_hash(&self) -> &str;
    /// Its hash, as stored.
    fn hash(&self) -> &str;
    /// Its hash, recomputed from its content ([`chain_hash_of`]).
    fn rehash(&self) -> String;
}

impl Linked for Record {
    fn seq(&self) -> u64 {
        self.seq
    }
    fn prev_hash(&self) -> &str {
        &self.prev_hash
    }
    fn hash(&self) -> &str {
        &self.hash
    }
    fn rehash(&self) -> String {
        chain_hash_by(&self.run_id, self.seq, &self.ts, &self.event, &self.prev_hash, self.db_role.as_deref())
    }
}

/// Recompute a run's chain. `records` must be one run's, in stored order. With
/// `expected_last`, also check the final hash (detects a cut tail).
pub fn verify(records: &[Record], expected_last: Option<&str>) -> Result<(), ChainError> {
    verify_chain(records, expected_last)
}

/// Recompute any journal's chain (a run's, a schedule's): the one verifier. `records` in
/// stored order; with `expected_last`, also the final hash (detects a cut tail).
pub fn verify_chain<L: Linked>(records: &[L], expected_last: Option<&str>) -> Result<(), ChainError> {
    let mut prev = GENESIS.to_string();
    for (i, r) in records.iter().enumerate() {
        let seq = i as u64 + 1;
        if r.seq() != seq {
            return Err(ChainError {
                seq,
                reason: format!("record {seq} is missing or out of order (found seq {})", r.seq()),
            });
        }
        if r.prev_hash() != prev {
            return Err(ChainError {
                seq,
                reason: "it does not follow the record before it (prev_hash differs)".into(),
            });
        }
        if r.rehash() != r.hash() {
            return Err(ChainError { seq, reason: "its content does not match its hash (edited)".into() });
        }
        prev = r.hash().to_string();
    }
    if let Some(last) = expected_last
        && last != prev
    {
        let seq = records.len() as u64 + 1;
        return Err(ChainError { seq, reason: "the last hash differs from the one recorded at the end of the run (records were cut or replaced)".into() });
    }
    Ok(())
}

/// The normal form of an identity (an operator, an approver), the one form in which
/// identities are compared (self-approval, approvers lists, one vote per person, owners,
/// token names): NFKC (`ｂｏｂ` is `bob`, `e` + U+0301 is `é`), then Unicode case folding
/// (`JÉRÔME` is `jérôme`, `STRASSE` is `straße`, `ΣΟΦΟΣ` is `σοφος`), then NFKC again,
/// surrounding whitespace removed and inner runs of it made one space (red team adv19a-3:
/// ASCII-only folding made `jérôme`, `JÉrôme` and `jérÔme` three people). Case folding is
/// each character's full upper-case mapping then its full lower-case mapping (context-free,
/// so a final `ς` folds as `σ`), repeated until nothing changes (`ẞ` → `ß` → `ss`): the
/// classes it makes are Unicode's full case folding's for every letter that folding maps
/// (what LDAP's string preparation and directory logins apply). Only the key is compared:
/// the journal keeps the name as given. PostgreSQL's `runbook_identity_key` folds less
/// (ASCII case and spaces): two names it takes for one person are one person here too,
/// so the `db-role` trigger can refuse a spelling, never accept another person's.
/// Names with characters a reader cannot see are refused before they are compared
/// ([`identity_problem`]).
pub fn identity_key(name: &str) -> String {
    use unicode_normalization::UnicodeNormalization as _;
    let mut key: String = name.nfkc().collect();
    // Bounded: two rounds reach the fixpoint for every character Unicode maps (`ẞ` → `ß`
    // → `ss` is the longest chain); the others are a margin, never a loop on odd input.
    for _ in 0..4 {
        let folded: String = key.chars().flat_map(case_fold).collect::<String>().nfkc().collect();
        if folded == key {
            break;
        }
        key = folded;
    }
    key.split(is_identity_space).filter(|p| !p.is_empty()).collect::<Vec<_>>().join(" ")
}

/// One character's case folding: its full upper-case mapping, then the full lower-case
/// mapping of that. The Turkish dotless `ı` is kept: Unicode's folding keeps it apart from
/// `i` (its upper case `I` would make `dıana` and `diana` one person, and an approvers list
/// naming one would let the other approve).
fn case_fold(c: char) -> Vec<char> {
    if c == '\u{131}' {
        return vec![c];
    }
    c.to_uppercase().flat_map(char::to_lowercase).collect()
}

fn is_identity_space(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\n' | '\r' | '\x0b' | '\x0c')
}

/// Why `name` cannot be an identity: empty, or holding a character that shows as nothing
/// or changes how its neighbours show (controls, other whitespace than ASCII's, zero-width
/// and bidirectional formatting characters, variation selectors, combining marks), so that
/// two names that look alike are two people. `None` when it can be one.
pub fn identity_problem(name: &str) -> Option<String> {
    if identity_key(name).is_empty() {
        return Some("an identity cannot be empty".into());
    }
    // Only the plain space separates words: a tab or a line break would let a name print a
    // line of its own on a terminal (red team, issue 13).
    // The one predicate of identifier-like values (`shown::unnameable`, as for `for-each`
    // elements) first: it adds unassigned and private-use code points (red team adv18b F4).
    let bad = name.chars().find(|&c| {
        c != ' '
            && (crate::shown::unnameable(c)
                || c.is_control()
                || c.is_whitespace()
                || matches!(u32::from(c),
                    0x00AD | 0x034F | 0x061C | 0x115F..=0x1160 | 0x17B4..=0x17B5 | 0x180B..=0x180F
                    | 0x200B..=0x200F | 0x202A..=0x202E | 0x2060..=0x206F | 0x3164 | 0xFE00..=0xFE0F
                    | 0xFEFF | 0xFFA0 | 0xFFF0..=0xFFFB | 0x1D173..=0x1D17A | 0xE0000..=0xE0FFF
                    | 0x0300..=0x036F | 0x0483..=0x0489 | 0x0591..=0x05BD | 0x1AB0..=0x1AFF
                    | 0x1DC0..=0x1DFF | 0x20D0..=0x20FF | 0xFE20..=0xFE2F
                    // What stands for a missing object or character, and skin-tone squares.
                    | 0xFFFC | 0xFFFD | 0x1F3FB..=0x1F3FF))
    });
    let bad = bad.or_else(|| decoration(name))?;
    Some(format!(
        "`{}` is not a valid identity: it holds U+{:04X}, a character that is invisible, a control, a combining mark, private-use or unassigned",
        name.escape_default(),
        u32::from(bad)
    ))
}

/// A character that decorates a name without making it another one (red team adv20-4):
/// any format character (general category Cf), and a combining mark (Mn, Me, Mc) that NFKC
/// leaves on a Latin letter or at the start (`ben` + U+0E47 draws `ben` with a speck: a
/// second approver to a reader). Marks on the letters of their own scripts (the vowel signs
/// of Devanagari, Thai) stay: they spell names.
fn decoration(name: &str) -> Option<char> {
    use unicode_general_category::{GeneralCategory, get_general_category};
    use unicode_normalization::UnicodeNormalization as _;
    let mut before: Option<char> = None;
    for c in name.nfkc() {
        let bad = match get_general_category(c) {
            GeneralCategory::Format => true,
            // A mark on a Latin letter (NFKC composed every Latin letter a mark can make)
            // or at the start; spacing marks (Mc) too (red team adv21-9: `josé` + U+0E47,
            // `ben` + U+0903).
            GeneralCategory::NonspacingMark
            | GeneralCategory::EnclosingMark
            | GeneralCategory::SpacingMark => before.is_none_or(is_latin),
            _ => false,
        };
        if bad {
            return Some(c);
        }
        before = Some(c);
    }
    None
}

/// A letter of the Latin script's blocks (ASCII, Latin-1, Latin Extended A to D and
/// Additional, IPA), or any other ASCII character.
fn is_latin(c: char) -> bool {
    matches!(u32::from(c), 0x0000..=0x024F | 0x0250..=0x02AF | 0x1D00..=0x1DBF | 0x1E00..=0x1EFF | 0x2C60..=0x2C7F | 0xA720..=0xA7FF | 0xAB30..=0xAB6F)
}

/// Where one step stands.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StepStatus {
    /// Not started.
    #[default]
    Pending,
    /// Started, no outcome recorded: running, or in doubt after a crash.
    Started,
    /// Waiting for its next attempt.
    Retrying,
    /// Succeeded.
    Succeeded,
    /// Failed after its retries.
    Failed,
    /// Did not run.
    Skipped,
    /// An approval step waiting for decisions.
    AwaitingApproval,
}

impl StepStatus {
    /// The word `runbook show` and the console print for it (its serde name).
    pub fn as_str(&self) -> &'static str {
        match self {
            StepStatus::Pending => "pending",
            StepStatus::Started => "started",
            StepStatus::Retrying => "retrying",
            StepStatus::Succeeded => "succeeded",
            StepStatus::Failed => "failed",
            StepStatus::Skipped => "skipped",
            StepStatus::AwaitingApproval => "awaiting_approval",
        }
    }
}

/// Where one step's compensation stands.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CompensationStatus {
    /// Not started.
    #[default]
    None,
    /// Started, no outcome recorded.
    Started,
    /// Done.
    Succeeded,
    /// Failed.
    Failed,
    /// In doubt, then treated as done by an operator's decision: never runs again.
    Skipped,
}

impl CompensationStatus {
    /// Done for good: it succeeded, or an operator said it was done.
    pub fn is_done(&self) -> bool {
        matches!(self, CompensationStatus::Succeeded | CompensationStatus::Skipped)
    }
}

/// One step's state, folded from its events.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct StepState {
    /// Where it stands.
    pub status: StepStatus,
    /// Attempts started.
    pub attempts: u32,
    /// Outputs, once it succeeded.
    pub outputs: BTreeMap<String, serde_json::Value>,
    /// Its compensation.
    pub compensation: CompensationStatus,
    /// Attempts of its compensation started.
    pub compensation_attempts: u32,
    /// The last failure reason.
    pub reason: Option<String>,
    /// The end of the output of its last failed attempt or compensation (redacted).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub output: Option<String>,
    /// For an approval step: its request and the decisions so far.
    pub approval: Option<Approval>,
    /// The operator's decision that settled it (`resume --rerun/--skip`, `compensate
    /// --undo`), until its next own record. Not serialized: the reason says it to readers.
    #[serde(skip)]
    pub ruling: Option<Ruling>,
}

impl StepState {
    /// Its compensation may have done part of its work: it started and has no end record
    /// (the engine died, or a signal cut it off), or it was ended from outside (its timeout,
    /// a cancellation, a signal: see [`ended_mid_work`]), the same rule as for a main step.
    /// It runs again only if idempotent or by an operator's decision.
    pub fn compensation_in_doubt(&self) -> bool {
        match self.compensation {
            CompensationStatus::Started => true,
            // A failed compensation's reason is the step's (`CompensationFailed` sets it).
            CompensationStatus::Failed => self.reason.as_deref().is_some_and(ended_mid_work),
            CompensationStatus::None | CompensationStatus::Succeeded | CompensationStatus::Skipped => false,
        }
    }

    /// Skipped by an operator's decision (`resume --skip`): treated as done for good.
    /// Known from the typed [`Ruling`] the fold keeps, never from the reason's words (an
    /// engine's `step_skipped` whose reason reads like an operator's is the engine's skip).
    pub fn skipped_by_operator(&self) -> bool {
        self.status == StepStatus::Skipped
            && self.ruling.as_ref().is_some_and(|r| r.decision == Decision::Skip)
    }
}

/// An operator's decision that settles where a step stands (its `operator_decision`),
/// until the step's next own record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ruling {
    /// The decision.
    pub decision: Decision,
    /// Who made it.
    pub operator: String,
    /// Why.
    pub reason: String,
}

/// How the fold words an operator's skip in the step's reason (for people to read).
const OPERATOR_SKIP: &str = "skipped by ";

/// An approval step's request and the decisions recorded so far.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct Approval {
    /// Who may approve (empty: anyone).
    pub approvers: Vec<String>,
    /// Distinct approvals needed.
    pub min_approvals: u32,
    /// Whether the run's operator may approve.
    pub allow_self_approval: bool,
    /// The run's operator.
    pub requested_by: String,
    /// Input names and types.
    pub inputs: BTreeMap<String, String>,
    /// Deadline (ms since the epoch).
    pub deadline_ms: Option<i64>,
    /// The required inputs as the `approve` command writes them (see `takes` of the event).
    pub takes: Option<BTreeMap<String, String>>,
    /// Who approved, in order (distinct).
    pub granted_by: Vec<String>,
    /// Who rejected, if anyone did.
    pub rejected_by: Option<String>,
    /// Whom self-approval is judged against: the run's starter (`run_started`), its
    /// submitter (a queued run) and the request's `requested_by`.
    pub owners: Vec<String>,
}

impl Approval {
    /// Whether `operator` may decide, and why not (the words of [`Approval::judge`]).
    pub fn may_decide(&self, operator: &str) -> Result<(), String> {
        self.judge(operator).map_err(|why| why.to_string())
    }

    /// Whether `operator` may decide, by the rules journaled with the request: a valid
    /// identity, among the approvers (if any are named), not the run's starter or submitter
    /// unless self-approval is allowed, one vote per person, nothing after a rejection or
    /// once granted. Identities compare by their normal form ([`identity_key`]).
    pub fn judge(&self, operator: &str) -> Result<(), ApproverRefusal> {
        if let Some(problem) = identity_problem(operator) {
            return Err(ApproverRefusal::NoIdentity(problem));
        }
        // Identities compare by their normal form: "Ana", " ana " and "ana" are one person.
        let who = identity_key(operator);
        if !self.approvers.is_empty() && !self.approvers.iter().any(|a| identity_key(a) == who) {
            return Err(ApproverRefusal::NotAnApprover {
                operator: operator.to_string(),
                approvers: self.approvers.clone(),
            });
        }
        if !self.allow_self_approval
            && std::iter::once(&self.requested_by).chain(&self.owners).any(|o| identity_key(o) == who)
        {
            return Err(ApproverRefusal::OwnRun { operator: operator.to_string() });
        }
        if self.granted_by.iter().any(|g| identity_key(g) == who) {
            return Err(ApproverRefusal::AlreadyApprovedBy { operator: operator.to_string() });
        }
        if let Some(by) = &self.rejected_by {
            return Err(ApproverRefusal::Rejected { by: by.clone() });
        }
        if self.is_granted() {
            return Err(ApproverRefusal::Granted { by: self.granted_by.clone() });
        }
        Ok(())
    }

    /// Granted: not rejected, and approved by as many people as the request needs.
    pub fn is_granted(&self) -> bool {
        self.rejected_by.is_none() && self.granted_by.len() >= self.min_approvals.max(1) as usize
    }
}

/// Why an operator may not decide on a waiting approval ([`Approval::judge`]); its
/// `Display` is the message `approve` prints and `audit verify` names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ApproverRefusal {
    /// The name cannot be an identity ([`identity_problem`]).
    NoIdentity(String),
    /// Approvers are named and the operator is not among them.
    NotAnApprover {
        /// Who.
        operator: String,
        /// The approvers named.
        approvers: Vec<String>,
    },
    /// The operator started or submitted the run, and self-approval is not allowed.
    OwnRun {
        /// Who.
        operator: String,
    },
    /// The operator already approved.
    AlreadyApprovedBy {
        /// Who.
        operator: String,
    },
    /// Someone rejected the step.
    Rejected {
        /// Who.
        by: String,
    },
    /// The step has its approvals.
    Granted {
        /// By whom.
        by: Vec<String>,
    },
}

impl std::fmt::Display for ApproverRefusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ApproverRefusal::NoIdentity(problem) => f.write_str(problem),
            ApproverRefusal::NotAnApprover { operator, approvers } => {
                write!(f, "`{operator}` is not among the approvers ({})", approvers.join(", "))
            }
            ApproverRefusal::OwnRun { operator } => write!(
                f,
                "`{operator}` started or submitted this run and may not approve its own steps (`allow-self-approval` is false)"
            ),
            ApproverRefusal::AlreadyApprovedBy { operator } => {
                write!(f, "`{operator}` has already approved this step")
            }
            ApproverRefusal::Rejected { by } => write!(f, "the step was already rejected by `{by}`"),
            ApproverRefusal::Granted { by } => {
                write!(f, "the step was already approved (by {})", by.join(", "))
            }
        }
    }
}

/// A run's state: the fold of its journal.
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct RunState {
    /// The run's status (`None` before `run_started`).
    pub status: Option<RunStatus>,
    /// Each step that has any event, by id.
    pub steps: BTreeMap<String, StepState>,
    /// Steps in the order they succeeded (compensations run in reverse).
    pub completed: Vec<String>,
    /// Steps in the order they first appear in the journal.
    pub order: Vec<String>,
    /// The last sequence number folded.
    pub last_seq: u64,
    /// The last hash folded.
    pub last_hash: Option<String>,
    /// Escalations that fired.
    pub escalations_fired: Vec<String>,
    /// Approval inputs given so far, by step.
    pub approval_inputs: BTreeMap<String, BTreeMap<String, serde_json::Value>>,
    /// Who started the run (`run_started`).
    pub started_by: Option<String>,
    /// Who submitted it (a queued run).
    pub submitted_by: Option<String>,
    /// Records the fold did not count because they break the approval rules journaled with
    /// the request ([`Refused`]); `audit verify` names them.
    pub refused: Vec<Refused>,
}

/// A record the fold did not count: a decision or an outcome that breaks the approval rules
/// journaled with the step's request (see [`RunState::apply`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Refused {
    /// The step.
    pub step: String,
    /// Why it does not count.
    pub why: String,
}

impl RunState {
    /// Apply one event. An abandoned run stays abandoned: `run_abandoned` ends it for good,
    /// and no record after it (a decision that raced it, or forged) reopens it (red team
    /// adv14a F5; [`crate::lifecycle::check_open`] refuses such a decision before it is
    /// appended).
    pub fn apply(&mut self, event: &RunEvent) {
        let abandoned = self.status == Some(RunStatus::Abandoned);
        self.apply_event(event);
        if abandoned {
            self.status = Some(RunStatus::Abandoned);
        }
    }

    /// Apply one event. Every kind of event has its arm (no `_`): a new kind does not
    /// compile until someone decides how it folds.
    fn apply_event(&mut self, event: &RunEvent) {
        // Where an attempt's output is kept says nothing about where the run stands (and its
        // "step" may be a log's name, such as a compensation's): it adds no step.
        if !matches!(event, RunEvent::LogKept { .. })
            && let Some(s) = event.step()
            && !self.steps.contains_key(s)
        {
            self.order.push(s.to_string());
            self.steps.insert(s.to_string(), StepState::default());
        }
        let steps = &mut self.steps;
        match event {
            RunEvent::RunStarted { operator, submitted_by, .. } => {
                self.status = Some(RunStatus::Running);
                self.started_by = Some(operator.clone());
                self.submitted_by = submitted_by.clone();
            }
            RunEvent::StepStarted { step: id, attempt } => {
                let s = entry(steps, id);
                s.status = StepStatus::Started;
                s.attempts = *attempt;
                s.ruling = None;
            }
            RunEvent::AttemptFailed { step: id, reason, output, .. } => {
                let s = entry(steps, id);
                s.status = StepStatus::Retrying;
                s.reason = Some(reason.clone());
                s.output = output.clone();
                s.ruling = None;
            }
            RunEvent::StepSucceeded { step: id, outputs, .. } => {
                let s = entry(steps, id);
                // An approval step succeeds only on the decisions its request's rules count.
                if s.approval.as_ref().is_some_and(|a| !a.is_granted()) {
                    let why = "`step_succeeded` for an approval step without the decisions its rules require";
                    self.refused.push(Refused { step: id.clone(), why: why.into() });
                    return;
                }
                s.status = StepStatus::Succeeded;
                s.outputs = outputs.clone();
                // An earlier attempt's failure is history, not the step's state.
                s.reason = None;
                s.output = None;
                s.ruling = None;
                if !self.completed.contains(id) {
                    self.completed.push(id.clone());
                }
            }
            RunEvent::StepFailed { step: id, reason, output, .. } => {
                let s = entry(steps, id);
                s.status = StepStatus::Failed;
                s.reason = Some(reason.clone());
                s.output = output.clone();
                s.ruling = None;
            }
            RunEvent::StepSkipped { step: id, reason } => {
                let s = entry(steps, id);
                // A skip does not settle a pending approval: the engine skips one when the run
                // stops after a failure, and asks again on resume; decisions stay possible.
                if !s.approval.as_ref().is_some_and(|a| !a.is_granted() && a.rejected_by.is_none()) {
                    s.status = StepStatus::Skipped;
                }
                s.reason = Some(reason.clone());
                // The engine's skip, whatever its reason says: never an operator's.
                s.ruling = None;
            }
            RunEvent::CompensationStarted { step: id, attempt } => {
                let s = entry(steps, id);
                s.compensation = CompensationStatus::Started;
                s.compensation_attempts = *attempt;
            }
            RunEvent::CompensationSucceeded { step: id, .. } => {
                entry(steps, id).compensation = CompensationStatus::Succeeded;
            }
            RunEvent::CompensationFailed { step: id, reason, output } => {
                let s = entry(steps, id);
                s.compensation = CompensationStatus::Failed;
                s.reason = Some(reason.clone());
                s.output = output.clone();
            }
            RunEvent::OperatorDecision { step: id, decision, operator, reason } => {
                let s = entry(steps, id);
                s.ruling =
                    Some(Ruling { decision: *decision, operator: operator.clone(), reason: reason.clone() });
                match decision {
                    // The next `step_started` records the re-run itself.
                    Decision::Rerun => s.status = StepStatus::Pending,
                    Decision::Skip => {
                        s.status = StepStatus::Skipped;
                        s.reason = Some(format!("{OPERATOR_SKIP}{operator}: {reason}"));
                    }
                    // Completed now, for the compensations: the last completed is undone first.
                    Decision::Undo => {
                        s.status = StepStatus::Succeeded;
                        s.reason = Some(format!("took effect, said {operator}: {reason}"));
                        if !self.completed.contains(id) {
                            self.completed.push(id.clone());
                        }
                    }
                }
            }
            RunEvent::CompensationDecision { step: id, decision, operator, reason } => {
                let s = entry(steps, id);
                match decision {
                    // The next `compensation_started` records the re-run itself.
                    Decision::Rerun => s.compensation = CompensationStatus::None,
                    // Not a decision about a compensation: it stays as it was.
                    Decision::Undo => {}
                    Decision::Skip => {
                        s.compensation = CompensationStatus::Skipped;
                        s.reason = Some(format!("compensation {OPERATOR_SKIP}{operator}: {reason}"));
                    }
                }
            }
            RunEvent::ApprovalRequested {
                step: id,
                approvers,
                min_approvals,
                allow_self_approval,
                requested_by,
                inputs,
                deadline_ms,
                takes,
                ..
            } => {
                let owners = self.started_by.iter().chain(&self.submitted_by).cloned().collect();
                let s = entry(steps, id);
                match &s.approval {
                    // The first request's rules hold: a later request that changes them does
                    // not count (the engine never journals a second request for a step).
                    Some(a) => {
                        if a.approvers != *approvers
                            || a.min_approvals != *min_approvals
                            || a.allow_self_approval != *allow_self_approval
                            || a.inputs != *inputs
                        {
                            let why = "a second `approval_requested` changes the rules of the request";
                            self.refused.push(Refused { step: id.clone(), why: why.into() });
                        }
                    }
                    None => {
                        s.status = StepStatus::AwaitingApproval;
                        s.approval = Some(Approval {
                            approvers: approvers.clone(),
                            min_approvals: *min_approvals,
                            allow_self_approval: *allow_self_approval,
                            requested_by: requested_by.clone(),
                            inputs: inputs.clone(),
                            deadline_ms: *deadline_ms,
                            takes: takes.clone(),
                            granted_by: Vec::new(),
                            rejected_by: None,
                            owners,
                        });
                    }
                }
            }
            // A decision counts only if its request's rules allow it ([`Approval::may_decide`]).
            RunEvent::ApprovalGranted { step: id, operator, inputs, .. } => {
                match entry(steps, id).approval.as_mut().map(|a| (a.may_decide(operator), a)) {
                    // The first approval fixes the inputs (given, or their defaults); a later
                    // one approves them as given: it may repeat a value, never change or add
                    // one (red team adv19a-7: the second of `min-approvals = 2` replaced the
                    // first's target, so what ran had one approver).
                    Some((Ok(()), a)) => {
                        let given = self.approval_inputs.entry(id.clone()).or_default();
                        let changed = (!a.granted_by.is_empty())
                            .then(|| inputs.iter().find(|(name, value)| given.get(*name) != Some(*value)))
                            .flatten();
                        match changed {
                            None => {
                                a.granted_by.push(operator.clone());
                                given.extend(inputs.clone());
                            }
                            Some((name, _)) => self.refused.push(Refused {
                                step: id.clone(),
                                why: format!(
                                    "the approval by `{operator}` gives input `{name}` after the first approval fixed the inputs; a later approval approves them as given"
                                ),
                            }),
                        }
                    }
                    Some((Err(why), _)) => self.refused.push(Refused { step: id.clone(), why }),
                    None => self.refused.push(Refused {
                        step: id.clone(),
                        why: "`approval_granted` for a step with no approval request".into(),
                    }),
                }
            }
            RunEvent::ApprovalRejected { step: id, operator, reason } => {
                let s = entry(steps, id);
                match s.approval.as_mut().map(|a| (a.may_decide(operator), a)) {
                    Some((Ok(()), a)) => {
                        a.rejected_by = Some(operator.clone());
                        s.reason = Some(format!("rejected by {operator}: {reason}"));
                    }
                    Some((Err(why), _)) => self.refused.push(Refused { step: id.clone(), why }),
                    None => self.refused.push(Refused {
                        step: id.clone(),
                        why: "`approval_rejected` for a step with no approval request".into(),
                    }),
                }
            }
            RunEvent::RunSuspended { .. } => self.status = Some(RunStatus::NeedsOperator),
            RunEvent::EscalationFired { escalation, .. } => {
                if !self.escalations_fired.contains(escalation) {
                    self.escalations_fired.push(escalation.clone());
                }
            }
            RunEvent::RunInterrupted { .. } => self.status = Some(RunStatus::Interrupted),
            RunEvent::RunResumed { .. } => self.status = Some(RunStatus::Running),
            RunEvent::RunFinished { status, .. } => self.status = Some(*status),
            // Where an attempt's output is kept: evidence for `logs` and `audit verify`,
            // nothing about where the run stands.
            RunEvent::LogKept { .. } => {}
            // A question and its answer: evidence of who decided what, not a step's status
            // (a refusal is followed by the step's `step_failed`; a question without an
            // answer leaves the step pending, and the resume asks it again).
            RunEvent::ConfirmationRequested { .. } | RunEvent::ConfirmationGiven { .. } => {}
            // Why a step or the run failed before anything started: the `step_failed` or
            // `run_finished` it causes says where they stand.
            RunEvent::PreconditionFailed { .. } => {}
            // The run's end for good: nothing resumes it.
            RunEvent::RunAbandoned { .. } => self.status = Some(RunStatus::Abandoned),
            // Which schedule queued the run: a fact about its origin, not its state.
            RunEvent::ScheduleFired { .. } => {}
        }
    }

    /// The part of the state under `prefix` (an included runbook's steps), with the prefix
    /// taken off: what the included runbook resumes or compensates from.
    pub fn scoped(&self, prefix: &str) -> RunState {
        let strip =
            |id: &String| id.strip_prefix(prefix).filter(|rest| !rest.contains('/')).map(str::to_string);
        RunState {
            status: self.status,
            steps: self.steps.iter().filter_map(|(id, s)| Some((strip(id)?, s.clone()))).collect(),
            completed: self.completed.iter().filter_map(strip).collect(),
            order: self.order.iter().filter_map(strip).collect(),
            last_seq: self.last_seq,
            last_hash: self.last_hash.clone(),
            escalations_fired: Vec::new(),
            started_by: self.started_by.clone(),
            submitted_by: self.submitted_by.clone(),
            refused: Vec::new(),
            approval_inputs: self
                .approval_inputs
                .iter()
                .filter_map(|(id, inputs)| Some((strip(id)?, inputs.clone())))
                .collect(),
        }
    }

    /// The run finished (`run_finished` succeeded or failed): nothing waits for a decision
    /// any more. A suspended, interrupted or running one has not.
    pub fn has_finished(&self) -> Option<RunStatus> {
        self.status.filter(|s| matches!(s, RunStatus::Succeeded | RunStatus::Failed))
    }

    /// Steps that started and have no outcome: after a crash, they may or may not have run.
    pub fn in_doubt(&self) -> Vec<&str> {
        self.steps_where(|s| s.status == StepStatus::Started)
    }

    /// Steps that failed because their process was ended from outside (their timeout, a
    /// cancellation, a signal): like a step in doubt, they may have done part of their work.
    pub fn failed_mid_work(&self) -> Vec<&str> {
        self.steps_where(|s| {
            s.status == StepStatus::Failed && s.reason.as_deref().is_some_and(ended_mid_work)
        })
    }

    /// Steps whose compensation is in doubt ([`StepState::compensation_in_doubt`]: started
    /// with no outcome, or ended from outside; the same rule as for steps).
    pub fn compensations_in_doubt(&self) -> Vec<&str> {
        self.steps_where(StepState::compensation_in_doubt)
    }

    fn steps_where(&self, keep: impl Fn(&StepState) -> bool) -> Vec<&str> {
        self.steps.iter().filter(|(_, s)| keep(s)).map(|(id, _)| id.as_str()).collect()
    }
}

/// The state of step `id` (made by [`RunState::apply`] before it matches the event).
fn entry<'a>(steps: &'a mut BTreeMap<String, StepState>, id: &str) -> &'a mut StepState {
    steps.entry(id.to_string()).or_default()
}

/// How a failure reads when a step's attempt reached its time limit and was ended.
pub const TIMED_OUT: &str = "timed out";
/// How a failure reads when a step's attempt was cancelled and ended.
pub const CANCELLED: &str = "cancelled";
/// How a failure begins when a step's process was killed by a signal.
pub const KILLED_BY_SIGNAL: &str = "killed by signal";

/// True for a failure reason that says the attempt was ended from outside before it could
/// say how it went ([`TIMED_OUT`], [`CANCELLED`], [`KILLED_BY_SIGNAL`]): it may or may not
/// have done its work, so `resume` treats the step like one in doubt.
pub fn ended_mid_work(reason: &str) -> bool {
    reason == TIMED_OUT || reason == CANCELLED || reason.starts_with(KILLED_BY_SIGNAL)
}

/// Fold a run's records, in order, into its state.
pub fn fold(records: &[Record]) -> RunState {
    let mut state = RunState::default();
    for r in records {
        state.apply(&r.event);
        state.last_seq = r.seq;
        state.last_hash = Some(r.hash.clone());
    }
    state
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_step_status_word_is_its_serde_name() {
        use StepStatus::*;
        for s in [Pending, Started, Retrying, Succeeded, Failed, Skipped, AwaitingApproval] {
            assert_eq!(serde_json::to_value(&s).ok(), Some(serde_json::Value::from(s.as_str())));
        }
    }

    /// The hash written straight into the hasher is the hash of the record's compact text,
    /// hex by `format!` (how it was computed before, and how every journal kept so far was
    /// chained): any text, any role.
    #[test]
    fn the_chain_hash_is_the_hash_of_the_records_compact_text() {
        fn before(
            chain: &str,
            seq: u64,
            ts: &str,
            event: &serde_json::Value,
            prev: &str,
            role: Option<&str>,
        ) -> String {
            let mut body = serde_json::json!({ "event": event, "prev_hash": prev, "run_id": chain, "seq": seq, "ts": ts });
            if let (Some(role), Some(map)) = (role, body.as_object_mut()) {
                map.insert("db_role".into(), serde_json::Value::String(role.to_string()));
            }
            let mut hasher = Sha256::new();
            hasher.update(prev.as_bytes());
            hasher.update(b"\n");
            hasher.update(body.to_string().as_bytes());
            hasher.finalize().iter().map(|b| format!("{b:02x}")).collect()
        }
        proptest::proptest!(proptest::prelude::ProptestConfig::with_cases(300), |(
            chain in ".{0,12}", seq in 0u64.., ts in ".{0,30}", text in "(?s).{0,80}", n in proptest::option::of(-1e9f64..1e9),
            prev in "[0-9a-f]{0,64}", role in proptest::option::of(".{0,10}"),
        )| {
            let event = serde_json::json!({ "kind": "step_output", "text": text, "z": [n, null, true], "a": { "é\u{0}": text } });
            proptest::prop_assert_eq!(
                chain_hash_of(&chain, seq, &ts, &event, &prev, role.as_deref()),
                before(&chain, seq, &ts, &event, &prev, role.as_deref())
            );
        });
    }

    fn journal(events: Vec<RunEvent>) -> Vec<Record> {
        let mut prev = GENESIS.to_string();
        events
            .into_iter()
            .enumerate()
            .map(|(i, e)| {
                let r = Record::new("r1", i as u64 + 1, &format!("2026-11-30T00:00:{i:02}Z"), e, &prev);
                prev = r.hash.clone();
                r
            })
            .collect()
    }

    fn started() -> RunEvent {
        RunEvent::RunStarted {
            runbook: "rb".into(),
            file: "/srv/rb.toml".into(),
            files: vec![],
            params: BTreeMap::new(),
            operator: "ops@host".into(),
            engine_version: "0.1.0".into(),
            submitted_by: None,
            log_digests: false,
            report: Default::default(),
        }
    }

    fn sample() -> Vec<Record> {
        journal(vec![
            started(),
            RunEvent::StepStarted { step: "a".into(), attempt: 1 },
            RunEvent::StepSucceeded {
                step: "a".into(),
                attempt: 1,
                outputs: BTreeMap::from([("file".into(), serde_json::json!("/tmp/x"))]),
            },
            RunEvent::StepStarted { step: "b".into(), attempt: 1 },
            RunEvent::AttemptFailed {
                step: "b".into(),
                attempt: 1,
                exit_code: Some(1),
                reason: "exit 1".into(),
                output: None,
            },
            RunEvent::StepStarted { step: "b".into(), attempt: 2 },
        ])
    }

    #[test]
    fn events_round_trip_with_explicit_kinds() {
        for r in sample() {
            let text = serde_json::to_string(&r).unwrap_or_default();
            assert!(text.contains(&format!("\"kind\":\"{}\"", r.event.kind())), "{text}");
            let back: Record = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"));
            assert_eq!(back, r);
        }
    }

    #[test]
    fn fold_tracks_steps_outputs_and_doubt() {
        let state = fold(&sample());
        assert_eq!(state.status, Some(RunStatus::Running));
        assert_eq!(state.steps["a"].status, StepStatus::Succeeded);
        assert_eq!(state.steps["a"].outputs["file"], "/tmp/x");
        assert_eq!(state.steps["b"].attempts, 2);
        assert_eq!(state.in_doubt(), vec!["b"]);
        assert_eq!(state.completed, vec!["a"]);
        assert_eq!(state.last_seq, 6);
    }

    #[test]
    fn a_success_clears_the_failure_of_an_earlier_attempt() {
        let mut events = sample().into_iter().map(|r| r.event).collect::<Vec<_>>();
        events.push(RunEvent::StepSucceeded { step: "b".into(), attempt: 2, outputs: BTreeMap::new() });
        let state = fold(&journal(events));
        assert_eq!(state.steps["b"].status, StepStatus::Succeeded);
        assert_eq!(state.steps["b"].reason, None);
    }

    #[test]
    fn an_intact_chain_verifies() {
        let records = sample();
        let last = records.last().map(|r| r.hash.clone());
        assert_eq!(verify(&records, last.as_deref()), Ok(()));
    }

    #[test]
    fn editing_deleting_reordering_or_cutting_is_detected() {
        let records = sample();
        let last = records.last().map(|r| r.hash.clone()).unwrap_or_default();

        let mut edited = records.clone();
        edited[2].event = RunEvent::StepSucceeded { step: "a".into(), attempt: 1, outputs: BTreeMap::new() };
        assert_eq!(verify(&edited, None).map_err(|e| e.seq), Err(3));

        let mut deleted = records.clone();
        deleted.remove(3);
        assert_eq!(verify(&deleted, None).map_err(|e| e.seq), Err(4));

        let mut swapped = records.clone();
        swapped.swap(1, 2);
        assert_eq!(verify(&swapped, None).map_err(|e| e.seq), Err(2));

        let mut cut = records.clone();
        cut.pop();
        assert!(verify(&cut, None).is_ok(), "a cut tail alone is a valid shorter chain");
        assert_eq!(verify(&cut, Some(&last)).map_err(|e| e.seq), Err(6));

        // A forged record with a recomputed hash still breaks the next link.
        let mut forged = records.clone();
        forged[2] = Record::new(
            "r1",
            3,
            "2026-11-30T00:00:02Z",
            RunEvent::StepSkipped { step: "a".into(), reason: "x".into() },
            &records[1].hash,
        );
        assert_eq!(verify(&forged, None).map_err(|e| e.seq), Err(4));
    }

    #[test]
    fn operator_decisions_fold() {
        let mut events = sample().into_iter().map(|r| r.event).collect::<Vec<_>>();
        events.push(RunEvent::RunInterrupted { reason: "SIGKILL".into() });
        events.push(RunEvent::OperatorDecision {
            step: "b".into(),
            decision: Decision::Skip,
            operator: "ana@bastion".into(),
            reason: "verified by hand".into(),
        });
        let state = fold(&journal(events));
        assert_eq!(state.steps["b"].status, StepStatus::Skipped);
        assert!(state.in_doubt().is_empty());
        assert_eq!(state.status, Some(RunStatus::Interrupted));
    }

    #[test]
    fn an_engine_skip_that_reads_like_an_operator_s_is_the_engine_s() {
        // Failed first: the fold recognised an operator's skip by its reason's words, so an
        // engine's (or a forged) `step_skipped` reading "skipped by ..." counted as one, and
        // `resume` would leave that step skipped for good instead of giving it a new chance.
        let state = fold(&journal(vec![
            started(),
            RunEvent::StepSkipped {
                step: "a".into(),
                reason: "skipped by ana: looks like a decision".into(),
            },
        ]));
        assert_eq!(state.steps["a"].status, StepStatus::Skipped);
        assert!(!state.steps["a"].skipped_by_operator());
    }

    #[test]
    fn an_operator_skip_is_typed_and_ends_with_the_step_s_next_record() {
        let decide = |decision| RunEvent::OperatorDecision {
            step: "b".into(),
            decision,
            operator: "ana@bastion".into(),
            reason: "checked".into(),
        };
        let mut events = sample().into_iter().map(|r| r.event).collect::<Vec<_>>();
        events.push(decide(Decision::Skip));
        let state = fold(&journal(events.clone()));
        assert!(state.steps["b"].skipped_by_operator());
        assert_eq!(state.steps["b"].reason.as_deref(), Some("skipped by ana@bastion: checked"));
        let ruling = state.steps["b"].ruling.clone();
        assert_eq!(ruling.map(|r| (r.decision, r.operator)), Some((Decision::Skip, "ana@bastion".into())));
        // A re-run is not a skip; the step's next record ends the ruling.
        let mut rerun = events.clone();
        rerun.push(decide(Decision::Rerun));
        assert!(!fold(&journal(rerun)).steps["b"].skipped_by_operator());
        events.push(RunEvent::StepSkipped { step: "b".into(), reason: "`when` is false: x".into() });
        let state = fold(&journal(events));
        assert!(!state.steps["b"].skipped_by_operator());
        assert!(state.steps["b"].ruling.is_none());
    }

    /// A journal as the engine wrote it before issue 13 (the JSON of each record, one a
    /// line): it still verifies, and still folds to the same state.
    const OLD_JOURNAL: &str = include_str!("../tests/fixtures/journal-before-13.jsonl");

    #[test]
    fn a_journal_written_before_typed_rulings_verifies_and_folds() {
        let records: Vec<Record> = OLD_JOURNAL
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
            .collect();
        let last = records.last().map(|r| r.hash.clone());
        assert_eq!(verify(&records, last.as_deref()), Ok(()));
        let state = fold(&records);
        assert_eq!(state.status, Some(RunStatus::Succeeded));
        assert!(state.steps["b"].skipped_by_operator());
        assert_eq!(state.steps["b"].reason.as_deref(), Some("skipped by ana@bastion: verified by hand"));
        assert_eq!(state.steps["a"].status, StepStatus::Succeeded);
        assert_eq!(state.steps["c"].compensation, CompensationStatus::Skipped);
        assert_eq!(state.steps["gate"].approval.as_ref().map(|a| a.is_granted()), Some(true));
        // Written again today, the records are the same text.
        for (line, r) in OLD_JOURNAL.lines().zip(&records) {
            assert_eq!(serde_json::to_string(r).unwrap_or_default(), line);
        }
    }

    /// Red team adv14a F5: no record after `run_abandoned` reopens the run in the fold.
    #[test]
    fn an_abandoned_run_stays_abandoned_whatever_follows() {
        let abandoned =
            RunEvent::RunAbandoned { operator: "o".into(), reason: "r".into(), compensated: false };
        let after = [
            RunEvent::RunResumed { operator: "o".into(), rerun_idempotent: vec![] },
            RunEvent::RunFinished { status: RunStatus::Succeeded, preconditions: vec![] },
            RunEvent::StepStarted { step: "a".into(), attempt: 1 },
        ];
        for event in after {
            let state = fold(&journal(vec![started(), abandoned.clone(), event.clone()]));
            assert_eq!(state.status, Some(RunStatus::Abandoned), "{event:?}");
        }
    }
}

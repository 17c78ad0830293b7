//! The serde shapes of a runbook file: what the TOML says, before any check.
//!
//! These types exist for two reasons: to deserialize one unit of a runbook (a step, a param,
//! a secret...) at a time with spans kept, and to generate the JSON Schema that editors use.
//! They are never handed to the planner or the executor: [`crate::validate`] turns them into
//! the domain types of [`crate::model`], where every cross-field rule has been checked.
//!
//! Rules that hold for every shape here: keys are kebab-case, unknown keys are refused
//! (`deny_unknown_fields`), no `flatten` and no `untagged` (both ruin error messages), and
//! durations are humantime strings kept as text until validation parses them with a span.
//! The schemars attributes (patterns, ranges, non-empty lists) read [`crate::syntax`], the
//! definitions the validator checks with; what spans a table is added by
//! [`crate::schema::Refine`].

use std::collections::BTreeMap;

use crate::span::Spanned;
use schemars::JsonSchema;
use serde::Deserialize;

/// A string with the byte range it came from.
pub type SpannedString = Spanned<String>;

/// A whole runbook file. Only used for the JSON Schema: the parser reads each section on its
/// own (see [`crate::parse`]) so that one bad step does not hide the problems of the others.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
#[schemars(title = "runbook", description = "A runbook: steps, preconditions and compensations as a DAG.")]
pub struct RawDocument {
    /// Name, title, description, estimate, parallelism and lock of the runbook.
    pub runbook: RawMeta,
    /// Typed parameters, by name (`^[a-z][a-z0-9_]*$`).
    #[serde(default)]
    pub params: BTreeMap<String, RawParam>,
    /// Where each secret's value comes from, by name (`^[A-Za-z_][A-Za-z0-9_]*$`). Values are never stored or shown.
    #[serde(default)]
    pub secrets: BTreeMap<String, RawSecret>,
    /// Settings applied to every step that does not set them itself.
    #[serde(default)]
    pub defaults: Option<RawDefaults>,
    /// Checks run before any step; if one fails, nothing runs.
    #[serde(default)]
    pub preconditions: BTreeMap<String, RawPrecondition>,
    /// The steps, by id (`^[a-z][a-z0-9_]*$`). A step without `needs` follows the step declared before it.
    #[serde(default)]
    pub steps: BTreeMap<String, RawStep>,
    /// Steps that always run at the end, whatever the outcome; `run.status` is set.
    #[serde(default)]
    pub finally: BTreeMap<String, RawStep>,
    /// Notifications that fire once if the run is still going after `after`.
    #[serde(default)]
    pub escalation: BTreeMap<String, RawEscalation>,
    /// Which step outputs the run's report states as observed facts.
    #[serde(default)]
    pub report: Option<RawReport>,
}

/// The `[report]` table: the step outputs (`STEP.OUTPUT`, or `STEP.compensate.OUTPUT` for a
/// compensation's) that the incident report states as observed facts. The report states
/// nothing else as observed: a fact no output observed is reported as unknown.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct RawReport {
    /// The output that observes the version deployed before the run changes anything.
    #[serde(default)]
    pub version_before: Option<SpannedString>,
    /// The output that observes the version deployed at the end; it counts only if observed after the last compensation (usually a `finally` step).
    #[serde(default)]
    pub version_after: Option<SpannedString>,
    /// The output that says when the restored data was taken (the window of data lost begins there).
    #[serde(default)]
    pub restore_point: Option<SpannedString>,
    /// Outputs that name evidence files: dumps taken before anything destructive.
    #[serde(default)]
    pub evidence: Option<Vec<SpannedString>>,
}

/// The `[runbook]` table.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct RawMeta {
    /// Machine name of the runbook (`^[a-z][a-z0-9_-]*$`).
    #[schemars(regex(pattern = crate::syntax::RUNBOOK_NAME.pattern()))]
    pub name: SpannedString,
    /// One-line human title.
    #[serde(default)]
    pub title: Option<String>,
    /// When to use this runbook and what it does.
    #[serde(default)]
    pub description: Option<String>,
    /// Expected duration: a duration (`"5m"`) or a range (`"30m..60m"`). Shown in plans.
    #[serde(default)]
    #[schemars(regex(pattern = crate::syntax::estimate_pattern()))]
    pub estimate: Option<SpannedString>,
    /// Steps in flight at once (default: the number of CPUs).
    #[serde(default)]
    #[schemars(range(min = *crate::syntax::MAX_PARALLEL.start(), max = *crate::syntax::MAX_PARALLEL.end()))]
    pub max_parallel: Option<Spanned<i64>>,
    /// Lock name, a template over `params` and `runbook`: at most one live run per rendered name.
    #[serde(default)]
    pub lock: Option<SpannedString>,
}

/// The type of a parameter or an approval input.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum RawParamType {
    /// Any text.
    String,
    /// A whole number (64-bit).
    Integer,
    /// A floating-point number.
    Number,
    /// `true` or `false`.
    Boolean,
    /// A list of values of the type `items` names (strings unless it says otherwise), for
    /// `for-each` steps: at most 1,000 elements, each checked by `enum` and `pattern`.
    List,
}

/// The type of the elements of a `list` parameter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum RawItemType {
    /// Text.
    String,
    /// Whole numbers (64-bit).
    Integer,
    /// Floating-point numbers.
    Number,
}

/// A `[params.NAME]` table (also the shape of an approval's `inputs.NAME`).
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct RawParam {
    /// The value's type.
    #[serde(rename = "type")]
    pub ty: Spanned<RawParamType>,
    /// What the parameter means; shown in plans and `--help`-like listings.
    #[serde(default)]
    pub description: Option<String>,
    /// The value when none is given. Without a default the parameter is required.
    #[serde(default)]
    #[schemars(with = "Option<serde_json::Value>")]
    pub default: Option<Spanned<toml::Value>>,
    /// The allowed values.
    #[serde(default, rename = "enum")]
    #[schemars(with = "Option<Vec<serde_json::Value>>")]
    #[schemars(length(min = 1))]
    pub allowed: Option<Spanned<Vec<toml::Value>>>,
    /// A regular expression a string value must match (whole value: anchor it yourself).
    #[serde(default)]
    pub pattern: Option<SpannedString>,
    /// With `type = "list"`: the type of its elements (default `"string"`).
    #[serde(default)]
    pub items: Option<Spanned<RawItemType>>,
}

/// A `[secrets.NAME]` table: exactly one source.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct RawSecret {
    /// Read the value from this environment variable.
    #[serde(default)]
    pub env: Option<SpannedString>,
    /// Read the value from this file (relative to the runbook's folder): the whole file
    /// without its final newline, or only its first line with `first-line = true`.
    #[serde(default)]
    pub file: Option<SpannedString>,
    /// With `file`: take only the first line.
    #[serde(default)]
    pub first_line: Option<Spanned<bool>>,
    /// Run this command (argv, no shell) and take its standard output.
    #[serde(default)]
    #[schemars(length(min = 1))]
    pub command: Option<Spanned<Vec<String>>>,
    /// What the secret is for.
    #[serde(default)]
    pub description: Option<String>,
}

/// The `[defaults]` table.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct RawDefaults {
    /// Default step timeout (humantime, e.g. `"10m"`).
    #[serde(default)]
    #[schemars(regex(pattern = crate::syntax::duration_pattern()))]
    pub timeout: Option<SpannedString>,
    /// Default retry policy.
    #[serde(default)]
    pub retry: Option<Box<Spanned<RawRetry>>>,
    /// Default shell for `run` steps, as argv; the script is appended (default `["bash", "-c"]` with errexit and pipefail).
    #[serde(default)]
    #[schemars(length(min = 1))]
    pub shell: Option<Spanned<Vec<String>>>,
    /// Default failure policy.
    #[serde(default)]
    pub on_failure: Option<Spanned<RawOnFailure>>,
}

/// A retry policy. `attempts` counts every try, the first included.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct RawRetry {
    /// Tries in all (at least 1; 1 means no retry).
    #[serde(default)]
    #[schemars(range(min = *crate::syntax::ATTEMPTS.start(), max = *crate::syntax::ATTEMPTS.end()))]
    pub attempts: Option<Spanned<i64>>,
    /// Wait before the second try (humantime; default `"1s"`).
    #[serde(default)]
    #[schemars(regex(pattern = crate::syntax::duration_pattern()))]
    pub delay: Option<SpannedString>,
    /// Multiplier applied to the delay after each try (at least 1.0; default 1.0).
    #[serde(default)]
    #[schemars(range(min = *crate::syntax::BACKOFF.start(), max = *crate::syntax::BACKOFF.end()))]
    pub backoff: Option<Spanned<f64>>,
    /// Upper bound of the delay (humantime); must not be below `delay`.
    #[serde(default)]
    #[schemars(regex(pattern = crate::syntax::duration_pattern()))]
    pub max_delay: Option<SpannedString>,
    /// Full jitter: wait a random time between zero and the computed delay.
    #[serde(default)]
    pub jitter: Option<bool>,
    /// Retry only when the step exits with one of these codes.
    #[serde(default)]
    #[schemars(inner(range(min = *crate::syntax::EXIT_CODES.start(), max = *crate::syntax::EXIT_CODES.end())))]
    pub on_exit_codes: Option<Spanned<Vec<i64>>>,
}

/// What happens when a step fails after its retries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum RawOnFailure {
    /// Start no new step, then run the compensations of the steps that succeeded (default).
    Compensate,
    /// End the run without compensating.
    Stop,
    /// Record the failure and go on; the step's dependents are skipped.
    Continue,
}

/// A precondition: a check that must pass (exit 0, or the http/sql check succeeds).
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct RawPrecondition {
    /// A shell script.
    #[serde(default)]
    pub run: Option<SpannedString>,
    /// A command as argv, executed without a shell.
    #[serde(default)]
    #[schemars(length(min = 1))]
    pub cmd: Option<Spanned<Vec<SpannedString>>>,
    /// An HTTP check.
    #[serde(default)]
    pub http: Option<Box<Spanned<RawHttp>>>,
    /// A SQL check.
    #[serde(default)]
    pub sql: Option<Box<Spanned<RawSql>>>,
    /// What to tell the operator when the check fails (a template).
    #[serde(default)]
    pub message: Option<SpannedString>,
    /// Environment variables for the check (values are templates; the only place secrets may go for `run`/`cmd`).
    #[serde(default)]
    pub env: Option<BTreeMap<String, SpannedString>>,
    /// Working directory (default: the runbook's folder).
    #[serde(default)]
    pub dir: Option<SpannedString>,
    /// Time limit for the check (default `"1m"`).
    #[serde(default)]
    #[schemars(regex(pattern = crate::syntax::duration_pattern()))]
    pub timeout: Option<SpannedString>,
}

/// A step, in `[steps.ID]` or `[finally.ID]`: exactly one kind (`run`, `cmd`, `http`, `sql`,
/// `approval`, `notify`, `runbook`) plus modifiers.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct RawStep {
    /// One-line human title.
    #[serde(default)]
    pub title: Option<SpannedString>,
    /// Longer explanation, shown in plans.
    #[serde(default)]
    pub description: Option<String>,
    /// Steps that must be satisfied first. Absent: the step declared before; `[]`: none.
    #[serde(default)]
    #[schemars(inner(regex(pattern = crate::syntax::ID.pattern())))]
    pub needs: Option<Spanned<Vec<SpannedString>>>,
    /// An expression over `params` and earlier outputs; false => the step is skipped.
    #[serde(default)]
    pub when: Option<SpannedString>,
    /// A question the operator must answer yes to before the step runs (a template).
    #[serde(default)]
    pub confirm: Option<SpannedString>,
    /// Kind: a shell script (through `bash -c` with errexit and pipefail unless `shell` says otherwise).
    #[serde(default)]
    pub run: Option<SpannedString>,
    /// Kind: a command as argv, executed without a shell.
    #[serde(default)]
    #[schemars(length(min = 1))]
    pub cmd: Option<Spanned<Vec<SpannedString>>>,
    /// Kind: an HTTP request.
    #[serde(default)]
    pub http: Option<Box<Spanned<RawHttp>>>,
    /// Kind: a SQL query or script.
    #[serde(default)]
    pub sql: Option<Box<Spanned<RawSql>>>,
    /// Kind: a human go/no-go.
    #[serde(default)]
    pub approval: Option<Box<Spanned<RawApproval>>>,
    /// Kind: a webhook notification.
    #[serde(default)]
    pub notify: Option<Box<Spanned<RawNotify>>>,
    /// Kind: another runbook, run as one step.
    #[serde(default)]
    pub runbook: Option<Box<Spanned<RawInclude>>>,
    /// Environment variables (values are templates; the way to pass secrets to `run`/`cmd`).
    #[serde(default)]
    pub env: Option<BTreeMap<String, SpannedString>>,
    /// Working directory (default: the runbook's folder).
    #[serde(default)]
    pub dir: Option<SpannedString>,
    /// Shell for `run`, as argv; the script is appended.
    #[serde(default)]
    pub shell: Option<Spanned<Vec<String>>>,
    /// Output names the step must produce (`key=value` lines written to `$RUNBOOK_OUTPUT`).
    #[serde(default)]
    #[schemars(inner(regex(pattern = crate::syntax::ID.pattern())))]
    pub outputs: Option<Vec<SpannedString>>,
    /// Time limit of one attempt (humantime).
    #[serde(default)]
    #[schemars(regex(pattern = crate::syntax::duration_pattern()))]
    pub timeout: Option<SpannedString>,
    /// Retry policy.
    #[serde(default)]
    pub retry: Option<Box<Spanned<RawRetry>>>,
    /// Safe to run again if the engine died while it was running (default false; true for http GET/HEAD).
    #[serde(default)]
    pub idempotent: Option<bool>,
    /// What happens when the step fails: `compensate` (default), `stop` or `continue`.
    #[serde(default)]
    pub on_failure: Option<Spanned<RawOnFailure>>,
    /// The undo action, run if a later step fails.
    #[serde(default)]
    pub compensate: Option<Box<Spanned<RawAction>>>,
    /// Checks run right before this step; a failure fails the step without running it.
    #[serde(default)]
    pub preconditions: Option<Box<BTreeMap<String, RawPrecondition>>>,
    /// Expected duration of the step: a duration or a range. Used for the critical path.
    #[serde(default)]
    #[schemars(regex(pattern = crate::syntax::estimate_pattern()))]
    pub estimate: Option<SpannedString>,
    /// Run the step once per element of this `list` parameter (its name, e.g. `"hosts"`):
    /// each instance is a step of its own, `ID[ELEMENT]`, and reads its element as `{{ item }}`
    /// (and its position as `{{ item_index }}`). A step that needs this one needs every instance.
    #[serde(default)]
    #[schemars(regex(pattern = crate::syntax::ID.pattern()))]
    pub for_each: Option<SpannedString>,
    /// With `for-each`: instances in flight at once (default: no limit but the runbook's
    /// `max-parallel`). Instance N+k starts after instance N has finished.
    #[serde(default)]
    #[schemars(range(min = *crate::syntax::MAX_PARALLEL.start(), max = *crate::syntax::MAX_PARALLEL.end()))]
    pub max_parallel: Option<Spanned<i64>>,
}

/// A compensation: one of `run`, `cmd`, `http`, `sql`, `notify`, with its own modifiers.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct RawAction {
    /// A shell script.
    #[serde(default)]
    pub run: Option<SpannedString>,
    /// A command as argv, executed without a shell.
    #[serde(default)]
    #[schemars(length(min = 1))]
    pub cmd: Option<Spanned<Vec<SpannedString>>>,
    /// An HTTP request.
    #[serde(default)]
    pub http: Option<Box<Spanned<RawHttp>>>,
    /// A SQL query or script.
    #[serde(default)]
    pub sql: Option<Box<Spanned<RawSql>>>,
    /// A webhook notification.
    #[serde(default)]
    pub notify: Option<Box<Spanned<RawNotify>>>,
    /// Environment variables (values are templates).
    #[serde(default)]
    pub env: Option<BTreeMap<String, SpannedString>>,
    /// Working directory.
    #[serde(default)]
    pub dir: Option<SpannedString>,
    /// Shell for `run`, as argv.
    #[serde(default)]
    pub shell: Option<Spanned<Vec<String>>>,
    /// Time limit of one attempt.
    #[serde(default)]
    #[schemars(regex(pattern = crate::syntax::duration_pattern()))]
    pub timeout: Option<SpannedString>,
    /// Retry policy of the compensation.
    #[serde(default)]
    pub retry: Option<Box<Spanned<RawRetry>>>,
    /// Safe to run again if the engine died while it was running (default false; true for http GET/HEAD). Otherwise a compensation in doubt waits for an operator's decision.
    #[serde(default)]
    pub idempotent: Option<bool>,
    /// Output names the compensation writes to `$RUNBOOK_OUTPUT` (`run`/`cmd` only); journaled with its success.
    #[serde(default)]
    #[schemars(inner(regex(pattern = crate::syntax::ID.pattern())))]
    pub outputs: Option<Vec<SpannedString>>,
}

/// An HTTP request and what its answer must look like.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct RawHttp {
    /// GET (default), HEAD, POST, PUT, PATCH, DELETE or OPTIONS.
    #[serde(default)]
    #[schemars(regex(pattern = crate::syntax::http_method_pattern()))]
    pub method: Option<SpannedString>,
    /// The URL (a template; path and query values are percent-encoded).
    pub url: SpannedString,
    /// Request headers (values are templates; secrets allowed).
    #[serde(default)]
    pub headers: Option<BTreeMap<String, SpannedString>>,
    /// Query parameters (values are templates).
    #[serde(default)]
    pub query: Option<BTreeMap<String, SpannedString>>,
    /// A text body (a template).
    #[serde(default)]
    pub body: Option<SpannedString>,
    /// A JSON body (string leaves are templates).
    #[serde(default)]
    #[schemars(with = "Option<serde_json::Value>")]
    pub json: Option<Spanned<toml::Value>>,
    /// Accepted status codes (default: any 2xx).
    #[serde(default)]
    #[schemars(inner(range(min = *crate::syntax::HTTP_STATUS.start(), max = *crate::syntax::HTTP_STATUS.end())))]
    pub expect_status: Option<Spanned<Vec<i64>>>,
    /// The answer must arrive within this time (humantime).
    #[serde(default)]
    #[schemars(regex(pattern = crate::syntax::duration_pattern()))]
    pub max_latency: Option<SpannedString>,
    /// An expression over `status`, `headers`, `body`, `json`, `latency_ms` that must be true.
    #[serde(default)]
    pub assert: Option<SpannedString>,
    /// A PEM file of extra trusted CA certificates.
    #[serde(default)]
    pub ca_file: Option<SpannedString>,
    /// Client-side limit for the whole request (humantime).
    #[serde(default)]
    #[schemars(regex(pattern = crate::syntax::duration_pattern()))]
    pub request_timeout: Option<SpannedString>,
}

/// A SQL query (with bound arguments) or a script file run in one transaction.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct RawSql {
    /// Database URL (`postgres://...` or `sqlite://...`); usually `{{ secrets.DATABASE_URL }}`.
    pub url: SpannedString,
    /// One statement; values go in `args` as bound parameters, never into the text.
    #[serde(default)]
    pub query: Option<SpannedString>,
    /// Bound arguments for `$1`, `$2`... (string elements are templates).
    #[serde(default)]
    #[schemars(with = "Option<Vec<serde_json::Value>>")]
    pub args: Option<Spanned<Vec<toml::Value>>>,
    /// A script file run in one transaction (relative to the runbook's folder).
    #[serde(default)]
    pub file: Option<SpannedString>,
    /// An expression over `rows` and `rows_affected` that must be true.
    #[serde(default)]
    pub assert: Option<SpannedString>,
    /// Run in a read-only transaction.
    #[serde(default)]
    pub read_only: Option<bool>,
}

/// A human go/no-go.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct RawApproval {
    /// The question (a template).
    pub prompt: SpannedString,
    /// Typed values the approver fills in; they become the step's outputs.
    #[serde(default)]
    pub inputs: Option<BTreeMap<String, RawParam>>,
    /// Operator identities allowed to decide.
    #[serde(default)]
    pub approvers: Option<Vec<String>>,
    /// Approvals needed (default 1).
    #[serde(default)]
    #[schemars(range(min = *crate::syntax::MIN_APPROVALS.start(), max = *crate::syntax::MIN_APPROVALS.end()))]
    pub min_approvals: Option<Spanned<i64>>,
    /// May the operator who started the run approve it (default: false when `approvers` is set).
    #[serde(default)]
    pub allow_self_approval: Option<bool>,
    /// How long to wait for a decision (humantime).
    #[serde(default)]
    #[schemars(regex(pattern = crate::syntax::duration_pattern()))]
    pub timeout: Option<SpannedString>,
}

/// A webhook notification (Slack/Teams/Mattermost-compatible `text`, or a custom `json` body).
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct RawNotify {
    /// The webhook URL; usually `{{ secrets.SLACK_WEBHOOK }}`.
    pub webhook: SpannedString,
    /// The message (a template), sent as `{"text": ...}`.
    #[serde(default)]
    pub text: Option<SpannedString>,
    /// A custom JSON body (string leaves are templates).
    #[serde(default)]
    #[schemars(with = "Option<serde_json::Value>")]
    pub json: Option<Spanned<toml::Value>>,
    /// Fail the step when the notification cannot be delivered (default false).
    #[serde(default)]
    pub required: Option<bool>,
}

/// Another runbook run as one step.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct RawInclude {
    /// The runbook file, relative to this runbook's folder.
    pub file: SpannedString,
    /// Parameters of the included runbook (string values are templates).
    #[serde(default)]
    #[schemars(with = "Option<BTreeMap<String, serde_json::Value>>")]
    pub params: Option<BTreeMap<String, Spanned<toml::Value>>>,
}

/// An `[escalation.NAME]` table.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct RawEscalation {
    /// Time since the run started (humantime).
    #[schemars(regex(pattern = crate::syntax::duration_pattern()))]
    pub after: SpannedString,
    /// The notification to send, once.
    pub notify: Spanned<RawNotify>,
}

//! Command-line arguments. clap types stop here: commands receive plain values.

use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};

/// Run operational runbooks written in TOML: check them, plan them, run them.
#[derive(Debug, Parser)]
#[command(name = "runbook", version, about, max_term_width = 100)]
pub struct Cli {
    /// When to use colours: in diagnostics, and in the output of run, resume, compensate,
    /// show and runs.
    #[arg(long, value_enum, default_value_t = Color::Auto, global = true)]
    pub color: Color,
    /// Who you are in the journal (default: $USER@host). Accepted by every command (a
    /// wrapper may pass it to all), shown by those that record it: see [`command`].
    #[arg(long = "as", env = "RUNBOOK_OPERATOR", global = true, hide = true, value_name = "IDENTITY")]
    pub operator: Option<String>,
    #[command(subcommand)]
    pub command: Command,
}

/// The commands that record who ran them (a run's operator, a submitter, a decision, a
/// cancel, a worker's claims): the callers of `identity::operator`. `--as` is shown in their
/// help only; the other commands accept it hidden.
pub const RECORD_IDENTITY: [&str; 9] =
    ["run", "submit", "cancel", "worker", "resume", "compensate", "approve", "reject", "abandon"];

/// The command line as parsed: [`Cli`], with `--as` shown on [`RECORD_IDENTITY`] alone (each
/// gets a visible copy of the global argument, with the same id, so clap propagates the
/// hidden one to the others only).
pub fn command() -> clap::Command {
    use clap::CommandFactory;
    let mut cmd = Cli::command();
    for name in RECORD_IDENTITY {
        cmd = cmd.mut_subcommand(name, |sub| {
            sub.arg(
                clap::Arg::new("operator")
                    .long("as")
                    .env("RUNBOOK_OPERATOR")
                    .global(true)
                    .value_name("IDENTITY")
                    .help(
                        "Who you are in the journal (default: $USER@host). Teams bind this to their SSO \
                         in a wrapper; every decision and run records it.",
                    ),
            )
        });
    }
    cmd
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Color {
    /// Colours on a terminal, unless NO_COLOR is set (to anything but the empty string).
    Auto,
    Always,
    Never,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Validate runbooks and report every problem at once (exit 0 valid, 3 invalid).
    Check {
        /// Runbook files.
        #[arg(required = true, value_name = "FILE")]
        files: Vec<PathBuf>,
        /// How to report problems.
        #[arg(long, value_enum, default_value_t = CheckFormat::Human)]
        format: CheckFormat,
    },
    /// Show what a run would do, without doing any of it (a dry run).
    Plan {
        /// Runbook file.
        #[arg(value_name = "FILE", required_unless_present = "diff")]
        file: Option<PathBuf>,
        /// A parameter value; repeatable. Wins over `--params-file`.
        #[arg(short = 'p', long = "param", value_name = "NAME=VALUE", value_parser = parse_param)]
        params: Vec<(String, String)>,
        /// A TOML file of `name = value` lines (JSON when it ends in `.json`).
        #[arg(long, value_name = "FILE")]
        params_file: Option<PathBuf>,
        /// Output format.
        #[arg(long, value_enum, default_value_t = PlanFormat::Text)]
        format: PlanFormat,
        /// Also write the pinned plan (JSON with file hashes and engine version) here.
        #[arg(short = 'o', long = "out", value_name = "PLAN.json", conflicts_with = "against")]
        out: Option<PathBuf>,
        /// Show what changed between two pinned plans (`-o`) instead: exit 0 when they are
        /// equal, 1 when they differ (`--format text`, `markdown` or `json`).
        #[arg(
            long,
            num_args = 2,
            value_names = ["OLD.json", "NEW.json"],
            conflicts_with_all = ["file", "against", "params", "params_file", "out"]
        )]
        diff: Option<Vec<PathBuf>>,
        /// Show what changed since FILE as it was at this git revision (its includes and
        /// params file read at REV too; the same parameters for both): exit 0 when equal, 1
        /// when different.
        #[arg(long, value_name = "REV", requires = "file", value_parser = revision)]
        against: Option<String>,
    },
    /// Run a runbook: steps, retries, timeouts, compensations; every transition journaled.
    Run {
        #[command(flatten)]
        target: Target,
        /// Answer yes to every `confirm` (required when there is no terminal to ask on).
        #[arg(long)]
        yes: bool,
        /// Stay attached while approvals are pending (the default on a terminal); without it
        /// and without a terminal, a run waiting for approval is suspended (exit 4).
        #[arg(long)]
        wait: bool,
        #[command(flatten)]
        state: StateArg,
        /// Progress as plain lines, or JSON lines for CI.
        #[arg(long, value_enum, default_value_t = RunOutput::Text)]
        output: RunOutput,
        /// Internal (workers): the id a submitted run was given.
        #[arg(long, hide = true, value_name = "RUN_ID", value_parser = run_id_shape)]
        run_id: Option<String>,
    },
    /// Queue a run for a worker (`runbook worker`) and print its id. The run is pinned: the
    /// worker runs exactly this plan, or refuses if the files changed.
    Submit {
        #[command(flatten)]
        target: Target,
        /// Labels a worker must have to take the run (`--labels prod,eu`).
        #[arg(long, value_delimiter = ',')]
        labels: Vec<String>,
        /// Answer yes to every `confirm` now: a queued run has no terminal to ask on.
        #[arg(long)]
        yes: bool,
        #[command(flatten)]
        state: StateArg,
    },
    /// Take a submitted run off the queue before a worker starts it.
    Cancel {
        /// The run `runbook submit` printed.
        run_id: String,
        /// Why (kept in the queue with who cancelled it).
        #[arg(long, default_value = "")]
        reason: String,
        #[command(flatten)]
        state: StateArg,
    },
    /// Execute queued runs (`runbook submit`) from the state store until SIGTERM or Ctrl-C.
    Worker {
        /// Runs executed at once.
        #[arg(long, default_value_t = 1)]
        concurrency: usize,
        /// This worker's labels: it takes only runs whose labels it all has.
        #[arg(long, value_delimiter = ',')]
        labels: Vec<String>,
        /// How often to look for queued runs.
        #[arg(long, default_value = "100ms", value_parser = humantime::parse_duration)]
        poll: std::time::Duration,
        /// On SIGTERM, how long running runs may take to finish before they are interrupted
        /// and handed back to the queue.
        #[arg(long, default_value = "60s", value_parser = humantime::parse_duration)]
        grace: std::time::Duration,
        #[command(flatten)]
        state: StateArg,
        /// Also fire the schedules of this schedules file: at each due time exactly one
        /// worker of the store queues the run (any worker may then run it).
        #[arg(long, value_name = "FILE")]
        schedules: Option<PathBuf>,
    },
    /// Continue a run that was interrupted or whose engine died. Succeeded steps never run again.
    Resume {
        /// The run.
        run_id: String,
        #[command(flatten)]
        decisions: Decisions,
        /// Answer yes to every `confirm`.
        #[arg(long)]
        yes: bool,
        /// Stay attached while approvals are pending (the default on a terminal); without it
        /// and without a terminal, a run waiting for approval is suspended (exit 4).
        #[arg(long)]
        wait: bool,
        #[command(flatten)]
        state: StateArg,
        /// Progress as plain lines, or JSON lines for CI.
        #[arg(long, value_enum, default_value_t = RunOutput::Text)]
        output: RunOutput,
    },
    /// Run the compensations of a run's succeeded steps, most recent first (undo it by hand).
    Compensate {
        /// The run.
        run_id: String,
        #[command(flatten)]
        decisions: Decisions,
        /// Do not ask (required without a terminal).
        #[arg(long)]
        yes: bool,
        #[command(flatten)]
        state: StateArg,
        /// Progress as plain lines, or JSON lines for CI.
        #[arg(long, value_enum, default_value_t = RunOutput::Text)]
        output: RunOutput,
    },
    /// Approve a step that waits for approval (from any terminal on the same state store).
    Approve {
        /// The run.
        run_id: String,
        /// The approval step.
        step: String,
        /// A value for one of the approval's inputs; repeatable.
        #[arg(long = "input", value_name = "NAME=VALUE", value_parser = parse_param)]
        inputs: Vec<(String, String)>,
        /// Why (journaled with your identity).
        #[arg(long, value_name = "TEXT")]
        reason: Option<String>,
        #[command(flatten)]
        state: StateArg,
    },
    /// Reject a step that waits for approval: the step fails, and its `on-failure` applies.
    Reject {
        /// The run.
        run_id: String,
        /// The approval step.
        step: String,
        /// Why (required; journaled with your identity).
        #[arg(long, value_name = "TEXT", required = true)]
        reason: String,
        #[command(flatten)]
        state: StateArg,
    },
    /// List runs, newest first.
    Runs {
        #[command(flatten)]
        state: StateArg,
        /// Output format.
        #[arg(long, value_enum, default_value_t = ListFormat::Text)]
        format: ListFormat,
        /// Keep watching: print the list again whenever it changes (Ctrl-C to stop).
        #[arg(long)]
        watch: bool,
        /// Only runs of this runbook (its `name`).
        #[arg(long, value_name = "NAME")]
        runbook: Option<String>,
        /// Only runs in this status; repeatable, or comma-separated.
        #[arg(long, value_name = "STATUS", value_delimiter = ',', value_parser = clap::builder::PossibleValuesParser::new(runbook_store::listed_statuses()))]
        status: Vec<String>,
        /// Only runs started (or submitted) by this operator.
        #[arg(long = "operator", value_name = "IDENTITY")]
        by: Option<String>,
        /// Only runs started (or submitted) since then: a duration back from now (`90m`,
        /// `7d`) or an RFC 3339 time (`2026-12-01T00:00:00Z`).
        #[arg(long, value_name = "WHEN", value_parser = since)]
        since: Option<String>,
        /// At most N runs, the newest (default: every run).
        #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
        limit: Option<u32>,
    },
    /// Show one run: each step's state, attempts and outputs.
    Show {
        /// The run.
        run_id: String,
        /// Print the run's events as they are journaled (from any machine on the store),
        /// then its summary once it finishes.
        #[arg(long)]
        follow: bool,
        #[command(flatten)]
        state: StateArg,
    },
    /// Print the output a run's steps wrote (all steps, or one).
    Logs {
        /// The run.
        run_id: String,
        /// Only this step.
        step: Option<String>,
        #[command(flatten)]
        state: StateArg,
    },
    /// The incident report of a run (the guide's template), filled from its journal; a drill
    /// run's review (times against estimates, problems met).
    Report {
        /// The run.
        run_id: String,
        /// Output format.
        #[arg(long, value_enum, default_value_t = ReportFormat::Markdown)]
        format: ReportFormat,
        /// Add the drill review (automatic for a runbook named `drill`).
        #[arg(long)]
        drill: bool,
        #[command(flatten)]
        state: StateArg,
    },
    /// Print a run's journal, or verify journals' hash chains (`audit verify`).
    Audit(AuditArgs),
    /// Print the JSON Schema of the runbook format.
    Schema,
    /// Administer the state store: `migrate` its schema, `check` its health.
    #[command(subcommand)]
    State(StateCommand),
    /// Internal: ends a run's step processes if the engine dies.
    #[command(name = "__reaper", hide = true)]
    Reaper,
    /// Internal: runs a step's program so that it dies with the engine (parent-death signal).
    #[command(name = "__tie", hide = true)]
    Tie {
        /// The engine's process id.
        parent: i32,
        /// The program and its arguments.
        #[arg(last = true, required = true)]
        argv: Vec<std::ffi::OsString>,
    },
    /// End an unfinished run for good (its engine gone, interrupted, suspended, needing an
    /// operator): journaled with who and why, its lock released; it cannot be resumed.
    Abandon {
        /// The run.
        run_id: String,
        /// Why (journaled).
        #[arg(long, required_unless_present = "reason_file", conflicts_with = "reason_file")]
        reason: Option<String>,
        /// Read why from a file, `-` for stdin (a worker hands the console's reason over
        /// this way: never on a command line, which every user of the host can read).
        #[arg(long, value_name = "FILE")]
        reason_file: Option<PathBuf>,
        /// Run its compensations first (most recent first, as `runbook compensate` does).
        #[arg(long)]
        compensate: bool,
        /// Do not ask before compensating (required without a terminal).
        #[arg(long)]
        yes: bool,
        #[command(flatten)]
        state: StateArg,
    },
    /// Serve the web console: read-only pages of the store's runs and a folder's runbooks,
    /// until SIGTERM or Ctrl-C. Prints `listening on http://ADDRESS` once it listens.
    #[command(args_conflicts_with_subcommands = true)]
    Serve {
        /// `runbook serve token add|list|revoke`: the operator tokens of `--auth token`.
        #[command(subcommand)]
        command: Option<ServeCommand>,
        /// The address to listen on (`127.0.0.1:0`: a free port). Loopback by default; any
        /// other address without `--auth` prints a warning.
        #[arg(long, default_value = "127.0.0.1:8080", value_name = "ADDRESS:PORT")]
        listen: std::net::SocketAddr,
        #[command(flatten)]
        state: StateArg,
        /// A folder of runbooks (`*.toml`) to show with their `check` result and plan.
        #[arg(long, value_name = "DIR", value_hint = clap::ValueHint::DirPath)]
        runbooks: Option<PathBuf>,
        /// A name the console is reached by (repeatable; without `:PORT`, the listen port).
        /// The `Host` header must name the console: an IP address or `localhost` on its
        /// port, or one of these names; any other is refused (DNS rebinding).
        #[arg(long, value_name = "NAME[:PORT]")]
        host: Vec<runbook_web::HostName>,
        /// Who may act: `token` (operator tokens: `runbook serve token add NAME`), `proxy`
        /// (an authenticating reverse proxy names the user). Without it the console is
        /// read-only.
        #[arg(long, value_enum, value_name = "MODE")]
        auth: Option<AuthMode>,
        /// With `--auth proxy`: the address of a proxy whose identity header is believed
        /// (repeatable); from any other address the header is ignored.
        #[arg(long, value_name = "IP")]
        trusted_proxy: Vec<std::net::IpAddr>,
        /// With `--auth proxy`: the header that names the user.
        #[arg(long, value_name = "HEADER", default_value = "X-Forwarded-Email")]
        user_header: String,
    },
    /// List the schedules of a schedules file with their next fire times, in their time
    /// zone and in UTC.
    Schedules {
        /// The schedules file (`[schedule.NAME]` tables).
        #[arg(value_name = "FILE")]
        file: PathBuf,
        /// How many fire times to show per schedule (at most 1000).
        #[arg(long, default_value_t = 3, value_name = "N")]
        next: usize,
        /// Compute as if it were this instant (RFC 3339) instead of now: the fire times
        /// after it (to see what a schedule does around a DST change) and who is overdue at it.
        #[arg(long, value_name = "TIME")]
        at: Option<String>,
        /// Output format.
        #[arg(long, value_enum, default_value_t = ListFormat::Text)]
        format: ListFormat,
        /// Show each schedule's last run and last success from this store (read only), and
        /// OVERDUE when its last success is older than `expect-success-within`.
        #[command(flatten)]
        state: StateArg,
    },
    /// Print the completion script of a shell: `source <(runbook completions bash)`. It
    /// completes commands, options, runbook files (`*.toml`), run ids and step names (read
    /// from the state store of `--state`/$RUNBOOK_STATE, which is never created or changed).
    Completions {
        /// The shell.
        #[arg(value_enum)]
        shell: CompletionShell,
    },
    /// Print the man page of `runbook`, or write one page per command into a folder
    /// (`runbook man --out ~/.local/share/man/man1`).
    Man {
        /// Write `runbook.1` and a page per command (`runbook-run.1`, ...) into this folder
        /// (created if missing), instead of printing `runbook.1`.
        #[arg(long, value_name = "DIR", value_hint = clap::ValueHint::DirPath)]
        out: Option<PathBuf>,
    },
    /// Write a new commented runbook `NAME.toml` that `check` passes at once, and its params
    /// file `NAME.params.toml`. Never overwrites a file.
    New {
        /// The runbook's name (its `name` field and its files' names): lowercase letters,
        /// digits, `_` and `-`, starting with a letter.
        #[arg(value_name = "NAME")]
        name: String,
        /// What the runbook starts from.
        #[arg(long, value_enum, default_value_t = NewTemplate::Check)]
        template: NewTemplate,
        /// The folder to write into (it must exist).
        #[arg(long, value_name = "DIR", default_value = ".", value_hint = clap::ValueHint::DirPath)]
        dir: PathBuf,
    },
    /// List the runbooks under a folder (recursively) with their title, the estimate of
    /// their critical path and their last run (from the state store, read only).
    #[command(visible_alias = "runbooks")]
    List {
        /// The folder.
        #[arg(value_name = "DIR", default_value = "runbooks")]
        dir: PathBuf,
        /// Output format.
        #[arg(long, value_enum, default_value_t = ListFormat::Text)]
        format: ListFormat,
        /// Where the last runs are read from (read only: a missing store is no runs).
        #[command(flatten)]
        state: StateArg,
    },
}

/// `runbook completions SHELL`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum CompletionShell {
    Bash,
    Zsh,
    Fish,
    Powershell,
    Elvish,
}

/// `runbook new --template T`: the embedded starting points (engine/cli/templates/new/).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum NewTemplate {
    /// Read-only health checks of a service (an HTTP poll, a disk check).
    Check,
    /// Deploy a version: record the running one, migrate, release after a yes, wait until
    /// healthy; each change with its compensation.
    Deploy,
    /// Roll back to a known good version: maintenance on, switch after a yes, wait until
    /// healthy, maintenance off.
    Rollback,
    /// Back up a folder into a dated archive, verified before it counts, old ones pruned.
    Backup,
}

/// `runbook serve --auth MODE`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum AuthMode {
    /// Operator tokens (`runbook serve token add NAME`): `/login`, or `Authorization: Bearer`.
    Token,
    /// An authenticating reverse proxy (`--trusted-proxy IP --user-header NAME`).
    Proxy,
}

/// `runbook serve token ...`.
#[derive(Debug, clap::Subcommand)]
pub enum ServeCommand {
    /// The operator tokens of `runbook serve --auth token`.
    #[command(subcommand)]
    Token(TokenCommand),
}

/// `runbook serve token add|list|revoke`.
#[derive(Debug, clap::Subcommand)]
pub enum TokenCommand {
    /// Make a token for the operator NAME and print it once (the store keeps only its
    /// SHA-256).
    Add {
        /// The operator the token signs in as (what the journal records).
        name: String,
        #[command(flatten)]
        state: StateArg,
    },
    /// The tokens: name, created, last used, revoked (never a token).
    List {
        #[command(flatten)]
        state: StateArg,
    },
    /// Revoke NAME's token: it and the sessions made with it stop working at once.
    Revoke {
        /// The operator.
        name: String,
        #[command(flatten)]
        state: StateArg,
    },
}

#[derive(Debug, clap::Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct AuditArgs {
    #[command(subcommand)]
    pub command: Option<AuditCommand>,
    /// The run whose journal to print.
    pub run_id: Option<String>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = AuditFormat::Text)]
    pub format: AuditFormat,
    #[command(flatten)]
    pub state: StateArg,
}

/// `--state PATH|URL` (or `$RUNBOOK_STATE`): the one declaration of the state store's
/// argument, flattened into every command that uses a store.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct StateArg {
    /// The state store: a SQLite file (default: $XDG_STATE_HOME/runbook/state.db) or a
    /// shared PostgreSQL database (`postgres://user@host/db`).
    #[arg(long, env = "RUNBOOK_STATE", value_name = "PATH|URL")]
    pub state: Option<String>,
}

/// What to run (or queue): a runbook with parameter values, or a pinned plan.
#[derive(Debug, clap::Args)]
pub struct Target {
    /// Runbook file.
    #[arg(value_name = "FILE", required_unless_present = "plan", conflicts_with = "plan")]
    pub file: Option<PathBuf>,
    /// A parameter value; repeatable. Wins over `--params-file`.
    #[arg(short = 'p', long = "param", value_name = "NAME=VALUE", value_parser = parse_param)]
    pub params: Vec<(String, String)>,
    /// A TOML file of `name = value` lines (JSON when it ends in `.json`).
    #[arg(long, value_name = "FILE")]
    pub params_file: Option<PathBuf>,
    /// A pinned plan (`runbook plan -o`) instead: its runbook, with its parameters, refused
    /// if the files or the engine changed since it was made.
    #[arg(long, value_name = "PLAN.json", conflicts_with_all = ["params", "params_file"])]
    pub plan: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum StateCommand {
    /// Bring the store's schema up to date (a shared PostgreSQL store is never migrated
    /// implicitly). Safe to run from several hosts at once.
    Migrate {
        #[command(flatten)]
        state: StateArg,
        /// How operators' identities are established: `declared` (what `--as` says) or, on
        /// PostgreSQL, `db-role` (the database role of each session, checked by the store).
        #[arg(long, value_name = "MODE", value_parser = ["declared", "db-role"])]
        identity: Option<String>,
        /// Map a database role to the identity it acts as (`--map c_lee=chen`; repeatable;
        /// `ROLE=` removes a mapping). Used in `db-role` mode.
        #[arg(long = "map", value_name = "ROLE=IDENTITY", value_parser = role_mapping)]
        map: Vec<(String, String)>,
    },
    /// Check that this host can use the store: connection, schema version, a write (rolled
    /// back), and this host's clock against the database's (leases depend on it).
    Check {
        #[command(flatten)]
        state: StateArg,
    },
}

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Recompute hash chains; exit 0 when intact, 4 naming the first bad record.
    #[command(group(clap::ArgGroup::new("journal").args(["run_id", "schedule"])))]
    Verify {
        /// Only this run (default: every run).
        run_id: Option<String>,
        /// The last hash printed at the end of the run (or by `audit schedule NAME`), kept
        /// elsewhere: detects a cut journal.
        #[arg(long, value_name = "HASH", requires = "journal")]
        expect_hash: Option<String>,
        /// Only this schedule's journal (with `--expect-hash`: a hash `audit schedule NAME`
        /// printed, which must still be in its chain).
        #[arg(long, value_name = "NAME", conflicts_with = "run_id")]
        schedule: Option<String>,
        #[command(flatten)]
        state: StateArg,
    },
    /// Print a schedule's journal: every due time fired, skipped or missed, every overdue
    /// notice and notification, by name (the store's view of the schedule).
    Schedule {
        /// The schedule's name (`[schedule.NAME]` in its schedules file).
        name: String,
        /// Output format.
        #[arg(long, value_enum, default_value_t = AuditFormat::Text)]
        format: AuditFormat,
        #[command(flatten)]
        state: StateArg,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ReportFormat {
    /// Markdown, for a wiki or a pull request.
    Markdown,
    /// A standalone HTML page.
    Html,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ListFormat {
    /// A table.
    Text,
    /// A JSON array.
    Json,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum AuditFormat {
    /// One line per record.
    Text,
    /// One JSON object per line, with seq, ts, kind, step, attempt, prev_hash, hash.
    Jsonl,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum RunOutput {
    /// One line per event and per line of step output.
    Text,
    /// JSON lines: journal records and output lines.
    Json,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum CheckFormat {
    /// Source excerpts with carets, codes and hints.
    Human,
    /// One JSON array of diagnostics on standard output.
    Json,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum PlanFormat {
    /// For a terminal.
    Text,
    /// The stable plan document.
    Json,
    /// For a pull request: a summary table and a mermaid graph.
    Markdown,
    /// Graphviz.
    Dot,
    /// The review page: one self-contained HTML file (no script, fetches nothing), the page
    /// the web console shows.
    Html,
}

fn parse_param(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.trim().is_empty() => Ok((k.trim().to_string(), v.to_string())),
        _ => Err(format!("expected NAME=VALUE, found `{s}`")),
    }
}

/// An operator's decisions about units in doubt (started, no end record): steps for
/// `resume`; compensations, `finally` steps and steps that have a compensation for
/// `compensate`.
#[derive(Debug, clap::Args)]
pub struct Decisions {
    /// Re-run this unit in doubt (by its step id); repeatable.
    #[arg(long, value_name = "STEP")]
    pub rerun: Vec<String>,
    /// Treat this unit in doubt as done: it is neither run again nor undone; repeatable.
    #[arg(long, value_name = "STEP")]
    pub skip: Vec<String>,
    /// `compensate` only: this step in doubt took effect, so undo it with the others;
    /// repeatable.
    #[arg(long, value_name = "STEP")]
    pub undo: Vec<String>,
    /// Why (required with --rerun, --skip or --undo; journaled with your identity).
    #[arg(long, value_name = "TEXT")]
    pub reason: Option<String>,
    /// A journal hash you kept (printed by `run`, `resume` and `compensate` as they end):
    /// refuse unless the journal still holds that record. A journal cut at its end (with
    /// the store's triggers dropped) verifies on its own; only a hash kept elsewhere
    /// reveals the cut.
    #[arg(long, value_name = "HASH")]
    pub expect_hash: Option<String>,
}

/// `--against REV`: a git revision, never an option or a control character (it is handed
/// to git as an argument of its own, after `--end-of-options`).
fn revision(rev: &str) -> Result<String, String> {
    if rev.is_empty() || rev.starts_with('-') || rev.chars().any(char::is_control) {
        Err(format!(
            "`{}` is not a git revision: a revision names a commit, a branch or a tag, and never starts with `-`",
            rev.escape_default()
        ))
    } else {
        Ok(rev.to_string())
    }
}

/// `ROLE=IDENTITY`.
fn role_mapping(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((role, identity)) if !role.trim().is_empty() => {
            Ok((role.trim().to_string(), identity.trim().to_string()))
        }
        _ => Err(format!("`{text}` is not ROLE=IDENTITY")),
    }
}

/// `--run-id`: the shape of the ids the engine makes (`20261206T120000Z-0a1b2c3d`), never a
/// path: the id names the run's folder (`runs/<id>`), so `/`, `.`, `..` and anything outside
/// `[A-Za-z0-9_-]` are refused before anything is created (red team adv13b F7).
pub fn run_id_shape(id: &str) -> Result<String, String> {
    const MAX: usize = 100;
    let fits = !id.is_empty()
        && id.len() <= MAX
        && !id.starts_with('-')
        && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if fits {
        Ok(id.to_string())
    } else {
        Err(format!(
            "`{}` is not a run id: a run id is 1 to {MAX} letters, digits, `_` and `-`, not starting with `-`",
            id.escape_default()
        ))
    }
}

/// `runs --since WHEN`: a duration back from now (humantime: `90m`, `7d`) or an RFC 3339
/// time, as the store keeps times (UTC, milliseconds) so that it compares them as text.
fn since(text: &str) -> Result<String, String> {
    let at = match humantime::parse_duration(text) {
        Ok(ago) => std::time::SystemTime::now()
            .checked_sub(ago)
            .filter(|t| *t >= std::time::UNIX_EPOCH)
            .ok_or_else(|| format!("`{text}` reaches back before 1970"))?,
        Err(_) => chrono::DateTime::parse_from_rfc3339(text)
            .ok()
            .map(std::time::SystemTime::from)
            .filter(|t| *t >= std::time::UNIX_EPOCH)
            .ok_or_else(|| {
                format!(
                    "`{}` is neither a duration (`90m`, `7d`) nor an RFC 3339 time (`2026-12-01T00:00:00Z`)",
                    text.escape_default()
                )
            })?,
    };
    Ok(humantime::format_rfc3339_millis(at).to_string())
}

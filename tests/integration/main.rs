//! Integration tests: the real `runbook` binary on fixture folders, the schema, the book.
//!
//! One test binary (faster to link than one per file); modules by concern.

// Tests start the real binary and real peers: they may create processes (clippy.toml
// allows it to engine/exec/src/process.rs alone in the engine).
#![allow(clippy::disallowed_methods)]

mod abandon_edges;
mod adv13a_signals;
mod approval_rules;
mod approve_hint_store;
mod argv_sampler;
mod audit;
mod book;
mod browser;
mod check_rounds;
mod checks_only_read;
mod ci_review;
mod cli_errors;
mod cli_layers;
mod compensate_doubt;
mod confined_reads;
mod console;
mod console_auth;
mod console_decide;
mod console_start;
mod contexts;
mod crash;
mod diff_paths;
mod e2e;
mod e2e_drill;
mod e2e_l3;
mod e2e_others;
mod e2e_pins;
mod e2e_report;
mod engine_env;
mod engine_gone;
mod engine_limits;
mod files_inside;
mod finished_before_waiting;
mod fixtures;
mod forged_identity;
mod fxrev2_limits;
mod history;
mod holder;
mod hostile;
mod include;
mod include_bytes;
mod injection;
mod input_edges;
mod kept_logs;
mod options;
mod peers;
mod pinning;
mod plan;
mod plan_diff;
mod plan_diff_faithful;
mod plan_formats;
mod plan_html;
mod plan_views;
mod preflight;
mod prompt_text;
mod prompts;
mod pty;
mod read_only_preconditions;
mod report_facts;
mod resume;
mod review_marks;
mod review_shows;
mod run;
mod run_folder;
mod schedules;
mod schema;
mod secret_files;
mod secret_transforms;
mod secrets;
mod shown_values;
mod side_columns;
mod smaller;
mod store_guards;
mod support;
mod team;
mod text_plan_lines;
mod tie;
mod world;

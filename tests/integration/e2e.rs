//! The team's runbooks, end to end, each against a fresh sandbox (`examples/sandbox`): a real
//! PostgreSQL database, a git origin, the app's health endpoint and a webhook receiver.

use std::path::Path;

use runbook_sandbox::Sandbox;

use crate::support::{Output, root};

struct E2e {
    sb: Sandbox,
    _dir: tempfile::TempDir,
}

impl E2e {
    fn new() -> E2e {
        let dir = tempfile::tempdir().expect("tempdir");
        let sb = Sandbox::start(dir.path());
        E2e { sb, _dir: dir }
    }

    fn state(&self) -> String {
        self.sb.dir.join("state.db").display().to_string()
    }

    /// `runbook ARGS --state S` from the repository root, with the sandbox's environment.
    fn runbook(&self, args: &[&str], operator: &str) -> Output {
        let state = self.state();
        let mut all = args.to_vec();
        all.extend(["--state", &state, "--as", operator]);
        let env = self.sb.env();
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        crate::support::run_in_with_env(&root(), &all, &env)
    }

    fn params_file(&self, runbook: &str, extra: &[(&str, &str)]) -> String {
        let path = self.sb.dir.join(format!("{runbook}.params.toml"));
        std::fs::write(&path, self.sb.params_toml(runbook, extra)).expect("params");
        path.display().to_string()
    }

    fn latest_run(&self) -> String {
        crate::support::latest_run_id(&root(), Path::new(&self.state())).expect("a run")
    }
}

fn ok(out: &Output, code: i32) {
    assert_eq!(out.code, code, "stdout:\n{}\nstderr:\n{}", out.stdout, out.stderr);
}

#[test]
fn rollback_l3_restores_the_database_and_the_stable_code() {
    let e = E2e::new();
    assert!(e.sb.deployed_version().starts_with("v1.0.1"), "{}", e.sb.deployed_version());
    // The state the chosen backup holds, then the corruption the rollback is for.
    let before = e.sb.dump();
    e.sb.psql(r#"DELETE FROM "Property" WHERE id > 2; UPDATE "User" SET email = 'lost@example.invalid' WHERE id = 1"#);
    assert_ne!(e.sb.dump(), before);

    let params = e.params_file("rollback-l3", &[]);
    let out = e.runbook(&["run", "runbooks/rollback-l3.toml", "--params-file", &params, "--yes"], "oncall");
    ok(&out, 4);
    assert!(out.stdout.contains("suspended: waiting for approval of checklist_before"), "{}", out.stdout);
    let run = e.latest_run();
    // Two of the three leads, each once; the on-call engineer who started it cannot.
    ok(&e.runbook(&["approve", &run, "checklist_before"], "oncall"), 3);
    let inputs = ["--input", "incident=INC-42", "--input", "root_cause=a bad data migration"];
    let mut args = vec!["approve", run.as_str(), "checklist_before"];
    args.extend(inputs);
    ok(&e.runbook(&args, "devops-lead"), 0);
    ok(&e.runbook(&["approve", &run, "checklist_before"], "dba"), 0);
    let out = e.runbook(&["resume", &run, "--yes"], "oncall");
    ok(&out, 4);
    assert!(out.stdout.contains("suspended: waiting for approval of checklist_after"), "{}", out.stdout);

    // The database is back to the backup, the code to the stable tag.
    assert_eq!(e.sb.dump(), before, "the restored database equals the state the backup held");
    assert_eq!(e.sb.origin_commit("main"), e.sb.origin_commit("v1.0.0-stable^{commit}"));

    let after = ["--input", "result=exito", "--input", "incident_report=https://wiki.inmova.test/INC-42"];
    let mut args = vec!["approve", run.as_str(), "checklist_after"];
    args.extend(after);
    ok(&e.runbook(&args, "backend-lead"), 0);
    let out = e.runbook(&["resume", &run, "--yes"], "oncall");
    ok(&out, 0);
    // The pre-rollback backup exists and is a readable custom-format dump.
    let backups: Vec<_> = std::fs::read_dir(&e.sb.backups)
        .expect("backups")
        .flatten()
        .map(|f| f.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("sandbox-pre-l3-"))
        .collect();
    assert_eq!(backups.len(), 1, "{backups:?}");
    let hooks = e.sb.app.hooks().join("\n");
    assert!(hooks.contains("Rollback completo (nivel 3) inminente"), "{hooks}");
    assert!(hooks.contains("resultado exito"), "{hooks}");
    assert!(hooks.contains("terminó: succeeded"), "{hooks}");
    ok(&e.runbook(&["audit", "verify", &run], "oncall"), 0);
}

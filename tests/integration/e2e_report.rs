//! The report of a real rollback states the version as observed (issue 12, point 4), against
//! both environments of the sandbox.

use crate::e2e::{BEFORE, E2e, Shape};
use crate::support::ok;

/// rollback-l3 whose health check keeps failing after the restore: everything is undone, and
/// the report's resulting version is what origin's branch holds afterwards (the previous
/// code), never the stable tag the run was given as a parameter.
fn a_compensated_l3_reports_the_version_origin_holds(shape: Shape) {
    let e = E2e::with(shape);
    // The shipped runbook with a fast health poll (2 tries 100 ms apart instead of 40 x 15 s).
    let file = std::path::PathBuf::from(crate::e2e_l3::quick_l3(&e, "", ""));
    let before = e.sb.deployed_version();
    e.sb.set_failing(true);

    let out = e.drive_file(
        &file.display().to_string(),
        "rollback-l3",
        &[],
        &[("checklist_before", "devops-lead", BEFORE), ("checklist_before", "dba", &[])],
    );
    ok(&out, 1);
    let run = e.latest_run();
    let report = e.runbook(&["report", &run], "oncall");
    ok(&report, 0);
    let md = report.stdout;
    let after = e.sb.deployed_version();
    assert_eq!(after, before, "the compensations put the previous code back on origin");
    let stable = e.sb.params("rollback-l3", &[]).get("stable_tag").cloned().unwrap_or_default();
    assert!(!stable.is_empty() && !after.starts_with(&stable), "{after} vs {stable}");
    let line = |label: &str| {
        md.lines()
            .find(|l| l.starts_with(label))
            .map(str::to_string)
            .unwrap_or_else(|| panic!("{label} in:\n{md}"))
    };
    let resulting = line("- **Versión resultante:**");
    assert!(
        resulting.starts_with(&format!(
            "- **Versión resultante:** {after} (observada por `observe_version_after.version`"
        )),
        "{resulting}\n{md}"
    );
    assert!(!resulting.contains(&stable), "the parameter presented as a fact: {resulting}");
    let previous = line("- **Versión anterior:**");
    assert!(previous.starts_with(&format!("- **Versión anterior:** {before} (observada por")), "{previous}");
    assert!(md.contains("- **Resultado:** Fallo (el run falló; "), "{md}");
    assert!(md.contains("- **Punto de restauración (se pierde lo escrito después):**"), "{md}");
    assert!(md.contains("- **Evidencia:**"), "{md}");
    // The dump the restore's undo took first, from the compensation's recorded outputs: named
    // in the report, and on disk.
    let evidence = md
        .lines()
        .find(|l| l.starts_with("- **Evidencia:** ") && l.contains("`restore.compensate.evidence`"))
        .unwrap_or_else(|| panic!("the undo's evidence dump in the report:\n{md}"));
    let path = evidence.trim_start_matches("- **Evidencia:** ").split(" (").next().unwrap_or_default();
    assert!(std::path::Path::new(path).is_file(), "{path} (from {evidence})");
    assert!(md.contains("`restore.compensate.undone_schema`"), "{md}");
    let audit = e.runbook(&["audit", &run, "--format", "jsonl"], "oncall").stdout;
    assert!(
        audit.lines().any(|l| l.contains("\"compensation_succeeded\"") && l.contains(path)),
        "the evidence path is in the journal"
    );
    // What failed (the health check, or a restore over a changed schema), with its error
    // text; what was undone; no crash where there was none; no secret.
    assert!(md.contains(" falló (intento ") && md.contains("```text\n"), "{md}");
    assert!(md.contains("deshecho: push_stable"), "{md}");
    assert!(!md.contains("caída"), "a suspension for approvals is not a crash:\n{md}");
    if let Some(password) = e.sb.db_password() {
        assert!(!md.contains(password), "the database password reached the report");
    }
}

#[test]
fn a_compensated_l3_reports_the_version_origin_holds_in_the_first_environment() {
    a_compensated_l3_reports_the_version_origin_holds(Shape::Inmova);
}

#[test]
fn a_compensated_l3_reports_the_version_origin_holds_in_the_second_environment() {
    a_compensated_l3_reports_the_version_origin_holds(Shape::Shop);
}

/// A deploy that succeeds: the report's versions are what origin's branch was named before
/// (the unreleased commit after the last release) and after (the tag the deploy published).
fn a_deploy_reports_the_versions_origin_held(shape: Shape) {
    let e = E2e::with(shape);
    let before = e.sb.deployed_version();
    let out = e.drive("deploy", &[], &[("checklist_after", "tech-lead", &[])]);
    ok(&out, 0);
    let after = e.sb.deployed_version();
    assert_ne!(after, before, "the deploy published a release");
    let run = e.latest_run();
    let md = e.runbook(&["report", &run], "oncall").stdout;
    assert!(md.contains(&format!("- **Versión anterior:** {before} (observada por")), "{md}");
    assert!(md.contains(&format!("- **Versión resultante:** {after} (observada por")), "{md}");
    assert!(md.contains("- **Resultado:** Éxito (el run terminó bien)"), "{md}");
    assert!(md.contains("- **Evidencia:** ") && md.contains("(observada por `backup.file`"), "{md}");
}

#[test]
fn a_deploy_reports_the_versions_origin_held_in_the_first_environment() {
    a_deploy_reports_the_versions_origin_held(Shape::Inmova);
}

#[test]
fn a_deploy_reports_the_versions_origin_held_in_the_second_environment() {
    a_deploy_reports_the_versions_origin_held(Shape::Shop);
}

//! The class rule of issue 11, on the fold: a start record without an end record means in
//! doubt, for every kind of unit (a step's attempt, a compensation, a `finally` step, the
//! units of an included runbook under its prefix), and a unit that completed (succeeded,
//! skipped, or decided `skip`) is never in doubt again. Random journals are folded and
//! compared with a model written from the rule alone. Set `PROPTEST_CASES` for more.

use std::collections::{BTreeMap, BTreeSet};

use proptest::prelude::*;
use runbook_core::journal::{CompensationStatus, Decision, Record, RunEvent, StepStatus, fold};

/// Units of the generated journals: steps of the run and of an included runbook.
const UNITS: &[&str] = &["a", "b", "fin", "inc/x", "inc/y"];

fn event(kind: u8, unit: &str, attempt: u32) -> RunEvent {
    let step = unit.to_string();
    let decision = if attempt.is_multiple_of(2) { Decision::Rerun } else { Decision::Skip };
    match kind % 11 {
        0 => RunEvent::StepStarted { step, attempt },
        1 => RunEvent::AttemptFailed {
            step,
            attempt,
            exit_code: Some(1),
            reason: "exit 1".into(),
            output: None,
        },
        2 => RunEvent::StepSucceeded { step, attempt, outputs: BTreeMap::new() },
        3 => RunEvent::StepFailed { step, attempt, reason: "exit 1".into(), output: None },
        4 => RunEvent::StepSkipped { step, reason: "when is false".into() },
        5 => RunEvent::OperatorDecision { step, decision, operator: "ana".into(), reason: "checked".into() },
        6 => RunEvent::CompensationStarted { step, attempt },
        7 => RunEvent::CompensationSucceeded { step, outputs: Default::default() },
        8 => RunEvent::CompensationFailed { step, reason: "exit 1".into(), output: None },
        9 => RunEvent::CompensationDecision {
            step,
            decision,
            operator: "ana".into(),
            reason: "checked".into(),
        },
        _ => RunEvent::RunInterrupted { reason: "SIGTERM".into() },
    }
}

/// The rule, written on its own: the last record about a unit decides.
#[derive(Default)]
struct Model {
    step_in_doubt: BTreeSet<String>,
    step_done: BTreeSet<String>,
    compensation_in_doubt: BTreeSet<String>,
    compensation_done: BTreeSet<String>,
}

impl Model {
    fn apply(&mut self, e: &RunEvent) {
        match e {
            RunEvent::StepStarted { step, .. } => {
                self.step_in_doubt.insert(step.clone());
                self.step_done.remove(step);
            }
            RunEvent::AttemptFailed { step, .. } | RunEvent::StepFailed { step, .. } => {
                self.step_in_doubt.remove(step);
                self.step_done.remove(step);
            }
            RunEvent::StepSucceeded { step, .. } | RunEvent::StepSkipped { step, .. } => {
                self.step_in_doubt.remove(step);
                self.step_done.insert(step.clone());
            }
            RunEvent::OperatorDecision { step, decision, .. } => {
                self.step_in_doubt.remove(step);
                if *decision == Decision::Skip {
                    self.step_done.insert(step.clone());
                } else {
                    self.step_done.remove(step);
                }
            }
            RunEvent::CompensationStarted { step, .. } => {
                self.compensation_in_doubt.insert(step.clone());
                self.compensation_done.remove(step);
            }
            RunEvent::CompensationSucceeded { step, .. } => {
                self.compensation_in_doubt.remove(step);
                self.compensation_done.insert(step.clone());
            }
            RunEvent::CompensationFailed { step, .. } => {
                self.compensation_in_doubt.remove(step);
                self.compensation_done.remove(step);
            }
            RunEvent::CompensationDecision { step, decision, .. } => {
                self.compensation_in_doubt.remove(step);
                if *decision == Decision::Skip {
                    self.compensation_done.insert(step.clone());
                } else {
                    self.compensation_done.remove(step);
                }
            }
            _ => {}
        }
    }
}

fn records(events: Vec<RunEvent>) -> Vec<Record> {
    let mut prev = runbook_core::journal::GENESIS.to_string();
    events
        .into_iter()
        .enumerate()
        .map(|(i, e)| {
            let r = Record::new("r1", i as u64 + 1, "2026-12-06T05:00:00Z", e, &prev);
            prev = r.hash.clone();
            r
        })
        .collect()
}

fn set(v: Vec<&str>) -> BTreeSet<String> {
    v.into_iter().map(str::to_string).collect()
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: std::env::var("PROPTEST_CASES").ok().and_then(|c| c.parse().ok()).unwrap_or(1000),
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn a_start_without_an_end_is_in_doubt_for_every_unit(
        script in prop::collection::vec((0u8..11, 0usize..UNITS.len(), 1u32..4), 0..60)
    ) {
        let mut events = vec![RunEvent::RunStarted {
            runbook: "rb".into(),
            file: "/srv/rb.toml".into(),
            files: vec![],
            params: BTreeMap::new(),
            operator: "ana".into(),
            engine_version: "0.1.0".into(),
            submitted_by: None,
            log_digests: false,
            report: Default::default(),
        }];
        let mut model = Model::default();
        for (kind, unit, attempt) in script {
            let e = event(kind, UNITS[unit], attempt);
            model.apply(&e);
            events.push(e);
        }
        let state = fold(&records(events));
        prop_assert_eq!(set(state.in_doubt()), model.step_in_doubt.clone());
        prop_assert_eq!(set(state.compensations_in_doubt()), model.compensation_in_doubt.clone());
        for (id, s) in &state.steps {
            let done = matches!(s.status, StepStatus::Succeeded | StepStatus::Skipped);
            prop_assert_eq!(done, model.step_done.contains(id), "step {}", id);
            prop_assert_eq!(s.compensation.is_done(), model.compensation_done.contains(id), "compensation {}", id);
            prop_assert!(!(s.compensation == CompensationStatus::Started && s.compensation.is_done()));
        }
        // An included runbook resumes from its part of the journal: the same rule, scoped.
        let scoped = state.scoped("inc/");
        let inner = |m: &BTreeSet<String>| -> BTreeSet<String> {
            m.iter().filter_map(|id| id.strip_prefix("inc/")).map(str::to_string).collect()
        };
        prop_assert_eq!(set(scoped.in_doubt()), inner(&model.step_in_doubt));
        prop_assert_eq!(set(scoped.compensations_in_doubt()), inner(&model.compensation_in_doubt));
    }
}

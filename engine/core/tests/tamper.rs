//! Every random edit, deletion, reordering, forged insertion or truncation of a journal is
//! detected by `journal::verify`, given the last hash the run printed at its end.

use std::collections::BTreeMap;

use proptest::prelude::*;
use runbook_core::journal::{self, GENESIS, Record, RunEvent, RunStatus};

fn journal_of(n: usize) -> Vec<Record> {
    let mut prev = GENESIS.to_string();
    let mut out = Vec::new();
    for i in 0..n {
        let event = match i {
            0 => RunEvent::RunStarted {
                runbook: "rollback-l3".into(),
                file: "/srv/runbooks/rollback-l3.toml".into(),
                files: vec![],
                params: BTreeMap::new(),
                operator: "ana@bastion".into(),
                engine_version: "0.1.0".into(),
                submitted_by: None,
                log_digests: false,
                report: Default::default(),
            },
            i if i == n - 1 => RunEvent::RunFinished { status: RunStatus::Succeeded, preconditions: vec![] },
            i if i % 2 == 1 => RunEvent::StepStarted { step: format!("s{i}"), attempt: 1 },
            i => RunEvent::StepSucceeded {
                step: format!("s{}", i - 1),
                attempt: 1,
                outputs: BTreeMap::from([("file".into(), serde_json::json!(format!("/backups/{i}.dump")))]),
            },
        };
        let r = Record::new("r1", i as u64 + 1, &format!("2026-11-30T10:00:{:02}Z", i % 60), event, &prev);
        prev = r.hash.clone();
        out.push(r);
    }
    out
}

#[derive(Debug, Clone)]
enum Tamper {
    EditTs(usize),
    EditEvent(usize),
    EditHash(usize, usize),
    EditPrevHash(usize),
    Delete(usize),
    Swap(usize, usize),
    Truncate(usize),
    ForgeInsert(usize),
    ForgeReplace(usize),
}

fn tamper() -> impl Strategy<Value = Tamper> {
    prop_oneof![
        any::<usize>().prop_map(Tamper::EditTs),
        any::<usize>().prop_map(Tamper::EditEvent),
        (any::<usize>(), 0usize..64).prop_map(|(i, c)| Tamper::EditHash(i, c)),
        any::<usize>().prop_map(Tamper::EditPrevHash),
        any::<usize>().prop_map(Tamper::Delete),
        (any::<usize>(), any::<usize>()).prop_map(|(a, b)| Tamper::Swap(a, b)),
        (1usize..20).prop_map(Tamper::Truncate),
        any::<usize>().prop_map(Tamper::ForgeInsert),
        any::<usize>().prop_map(Tamper::ForgeReplace),
    ]
}

/// Apply a mutation; `false` when it changes nothing (e.g. swapping a record with itself).
fn apply(records: &mut Vec<Record>, t: &Tamper) -> bool {
    let n = records.len();
    match *t {
        Tamper::EditTs(i) => records[i % n].ts.push('1'),
        Tamper::EditEvent(i) => {
            records[i % n].event = RunEvent::StepSkipped { step: "forged".into(), reason: "edited".into() };
        }
        Tamper::EditHash(i, c) => {
            let h = &mut records[i % n].hash;
            let mut bytes = h.clone().into_bytes();
            let k = c % bytes.len();
            bytes[k] = if bytes[k] == b'0' { b'1' } else { b'0' };
            *h = String::from_utf8(bytes).unwrap_or_default();
        }
        Tamper::EditPrevHash(i) => records[i % n].prev_hash = "f".repeat(64),
        Tamper::Delete(i) => {
            records.remove(i % n);
        }
        Tamper::Swap(a, b) => {
            if a % n == b % n {
                return false;
            }
            records.swap(a % n, b % n);
        }
        Tamper::Truncate(k) => records.truncate(n.saturating_sub(k.min(n))),
        Tamper::ForgeInsert(i) => {
            // A forger who recomputes the hash of what they insert, and of everything after.
            let at = i % n;
            let mut rebuilt: Vec<Record> = records[..at].to_vec();
            let mut prev = rebuilt.last().map_or(GENESIS.to_string(), |r| r.hash.clone());
            let forged = RunEvent::StepSkipped { step: "forged".into(), reason: "inserted".into() };
            let mut events = vec![forged];
            events.extend(records[at..].iter().map(|r| r.event.clone()));
            for (k, e) in events.into_iter().enumerate() {
                let r = Record::new("r1", (at + k) as u64 + 1, "2026-11-30T10:00:00Z", e, &prev);
                prev = r.hash.clone();
                rebuilt.push(r);
            }
            *records = rebuilt;
        }
        Tamper::ForgeReplace(i) => {
            let at = i % n;
            let prev = if at == 0 { GENESIS.to_string() } else { records[at - 1].hash.clone() };
            let forged = RunEvent::StepSkipped { step: "forged".into(), reason: "replaced".into() };
            records[at] = Record::new("r1", at as u64 + 1, &records[at].ts.clone(), forged, &prev);
        }
    }
    true
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1000, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn every_tampering_is_detected(n in 3usize..40, t in tamper()) {
        let original = journal_of(n);
        let kept = original.last().map(|r| r.hash.clone()).unwrap_or_default();
        prop_assert_eq!(journal::verify(&original, Some(&kept)), Ok(()));
        let mut records = original.clone();
        if apply(&mut records, &t) && records != original {
            prop_assert!(journal::verify(&records, Some(&kept)).is_err(), "undetected: {:?}", t);
        }
    }
}

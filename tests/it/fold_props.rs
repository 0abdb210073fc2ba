//! Property tests over random event sequences: the fold is deterministic,
//! and the table the store keeps incrementally equals a rebuild from the log.

use std::collections::HashMap;

use proptest::prelude::*;
use treatywatch::domain::{
    Action, Assertion, Baseline, BaselineRef, EventBody, NewEvent, Policy, Retraction, Status,
    project,
};
use treatywatch::store::Store;

use crate::support::{at, detection};

const STATES: &[&str] = &["UKR", "POL", "EST"];
const TREATIES: &[&str] = &["ottawa", "ctbt"];
const SOURCES: &[&str] = &["a", "b", "c"];

/// One step of a random history.
#[derive(Debug, Clone)]
enum Step {
    Detect {
        key: (usize, usize),
        action: usize,
        source: usize,
        item: u8,
        day: u32,
        authoritative: bool,
    },
    Assert {
        key: (usize, usize),
        status: usize,
        day: u32,
    },
    /// A membership baseline, imported at any point of the history.
    Baseline {
        key: (usize, usize),
        status: usize,
        as_of_day: u32,
    },
    /// Retract the n-th event appended so far (modulo), if it is retractable.
    Retract { nth: usize },
}

/// The statuses a membership list can give.
const LISTED: &[Status] = &[
    Status::NonParty,
    Status::Signatory,
    Status::Party,
    Status::WithdrawalNotified,
    Status::Withdrawn,
];

fn step() -> impl Strategy<Value = Step> {
    let key = (0..STATES.len(), 0..TREATIES.len());
    prop_oneof![
        6 => (key.clone(), 0..Action::ALL.len(), 0..SOURCES.len(), 0u8..6, 1u32..28, prop::bool::weighted(0.1))
            .prop_map(|(key, action, source, item, day, authoritative)| Step::Detect { key, action, source, item, day, authoritative }),
        1 => (key.clone(), 0..Status::ALL.len(), 1u32..28).prop_map(|(key, status, day)| Step::Assert { key, status, day }),
        1 => (key, 0..LISTED.len(), 1u32..28).prop_map(|(key, status, as_of_day)| Step::Baseline { key, status, as_of_day }),
        1 => any::<usize>().prop_map(|nth| Step::Retract { nth }),
    ]
}

fn policy() -> Policy {
    Policy {
        min_sources: HashMap::from([("ctbt".to_string(), 2)]),
    }
}

/// Turns steps into events; retractions need the seqs of what came before,
/// so they are resolved against the store as the history is replayed.
fn to_event(step: &Step, store: &Store) -> Option<NewEvent> {
    match *step {
        Step::Detect {
            key,
            action,
            source,
            item,
            day,
            authoritative,
        } => {
            let mut e = detection(
                STATES[key.0],
                TREATIES[key.1],
                Action::ALL[action],
                SOURCES[source],
                &format!("i{item}"),
                at(2025, 1, day),
            );
            if let EventBody::Detection(d) = &mut e.body {
                d.authoritative = authoritative;
            }
            Some(e)
        }
        Step::Assert { key, status, day } => Some(NewEvent {
            occurred_at: at(2025, 1, day),
            body: EventBody::Asserted(Assertion {
                state: STATES[key.0].into(),
                treaty: TREATIES[key.1].into(),
                status: Status::ALL[status],
                note: format!("day {day}"),
                quiet: false,
            }),
        }),
        Step::Baseline {
            key,
            status,
            as_of_day,
        } => Some(NewEvent {
            occurred_at: at(2025, 1, as_of_day),
            body: EventBody::Baseline(Box::new(Baseline {
                state: STATES[key.0].into(),
                treaty: TREATIES[key.1].into(),
                status: LISTED[status],
                source: BaselineRef {
                    as_of: at(2025, 1, as_of_day).date_naive(),
                    since: None,
                    by: None,
                    source: "list".into(),
                    source_url: None,
                    file: "membership/x.toml".into(),
                },
                withdrawal_notified: None,
                withdrawal_effective: None,
            })),
        }),
        Step::Retract { nth } => {
            let candidates: Vec<_> = store
                .events_after(0, 10_000)
                .expect("read")
                .into_iter()
                .filter(|e| {
                    matches!(
                        e.body,
                        EventBody::Detection(_) | EventBody::Asserted(_) | EventBody::Baseline(_)
                    )
                })
                .collect();
            let target = candidates.get(nth % candidates.len().max(1))?;
            let (state, treaty) = target.body.key()?;
            Some(NewEvent {
                occurred_at: at(2025, 2, 1),
                body: EventBody::Retracted(Retraction {
                    target_seq: target.seq,
                    state: state.into(),
                    treaty: treaty.into(),
                    note: "wrong".into(),
                    rules_version: None,
                }),
            })
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, .. ProptestConfig::default() })]

    #[test]
    fn incremental_table_equals_rebuild_from_the_log(
        steps in prop::collection::vec(step(), 1..60),
        batch in 1usize..6,
    ) {
        let dir = tempfile::tempdir().expect("dir");
        let mut store = Store::open(&dir.path().join("log.db")).expect("open");
        let policy = policy();
        for chunk in steps.chunks(batch) {
            let events: Vec<NewEvent> = chunk.iter().filter_map(|s| to_event(s, &store)).collect();
            store.append(&events, &policy, at(2025, 3, 1)).expect("append");
        }
        let stored = store.projection().expect("stored table");
        let rebuilt = store.rebuild(&policy, None).expect("rebuild");
        prop_assert_eq!(&stored, &rebuilt);
        let all = store.events_after(0, 100_000).expect("log");
        prop_assert_eq!(&project(&all, &policy, None), &rebuilt);
    }

    #[test]
    fn the_fold_is_deterministic_and_ignores_unrelated_keys(steps in prop::collection::vec(step(), 1..60)) {
        let dir = tempfile::tempdir().expect("dir");
        let mut store = Store::open(&dir.path().join("log.db")).expect("open");
        for s in &steps {
            if let Some(e) = to_event(s, &store) {
                store.append(&[e], &policy(), at(2025, 3, 1)).expect("append");
            }
        }
        let all = store.events_after(0, 100_000).expect("log");
        let once = project(&all, &policy(), None);
        prop_assert_eq!(&once, &project(&all, &policy(), None));
        // Folding each key's events alone gives that key's row.
        for (key, row) in &once {
            let only: Vec<_> = all.iter().filter(|e| e.body.key() == Some((key.0.as_str(), key.1.as_str()))).cloned().collect();
            let alone = project(&only, &policy(), None);
            prop_assert_eq!(alone.get(key), Some(row));
        }
    }
}

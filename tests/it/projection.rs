//! How observations move a status: stage order, corroboration, authority,
//! analyst corrections, and the table as it stood on a past date.

use std::collections::HashMap;

use treatywatch::domain::{Action, Assertion, EventBody, NewEvent, Policy, Retraction, Status};
use treatywatch::store::Store;

use crate::support::{at, detection};

use Action::*;

/// A store plus the policy it is fed with; `push` appends and returns the
/// UKR/ottawa status afterwards.
struct Log {
    _dir: tempfile::TempDir,
    store: Store,
    policy: Policy,
    day: u32,
}

impl Log {
    fn new(min_sources: u32) -> Log {
        let dir = tempfile::tempdir().expect("dir");
        let store = Store::open(&dir.path().join("log.db")).expect("open");
        Log {
            _dir: dir,
            store,
            policy: Policy {
                min_sources: HashMap::from([("ottawa".to_string(), min_sources)]),
            },
            day: 1,
        }
    }

    fn push(&mut self, event: NewEvent) -> Status {
        self.store
            .append(&[event], &self.policy, at(2025, 12, 31))
            .expect("append");
        self.status()
    }

    /// A detection for UKR/ottawa from `source`, one day after the previous.
    fn saw(&mut self, action: Action, source: &str) -> Status {
        self.day += 1;
        let item = format!("item-{}", self.day);
        self.push(detection(
            "UKR",
            "ottawa",
            action,
            source,
            &item,
            at(2025, 1, self.day),
        ))
    }

    fn status(&self) -> Status {
        let table = self.store.projection().expect("read");
        table
            .get(&("UKR".to_string(), "ottawa".to_string()))
            .map_or(Status::Unknown, |r| r.status)
    }

    fn changes(&self) -> Vec<(Status, Status)> {
        self.store
            .events_after(0, 1000)
            .expect("read")
            .into_iter()
            .filter_map(|e| match e.body {
                EventBody::StatusChanged(c) => Some((c.from, c.to)),
                _ => None,
            })
            .collect()
    }
}

/// Feeds `steps` (action, source) with one source needed and checks the
/// status after each.
fn check(steps: &[(Action, Status)]) {
    let mut log = Log::new(1);
    for (i, (action, expected)) in steps.iter().enumerate() {
        assert_eq!(
            log.saw(*action, "wire"),
            *expected,
            "after step {i} ({action})"
        );
    }
}

#[test]
fn stages_move_forward_and_earlier_ones_are_background() {
    check(&[
        (Ratified, Status::Party),
        (WithdrawalAnnounced, Status::WithdrawalAnnounced),
        (Ratified, Status::WithdrawalAnnounced),
        (WithdrawalNotified, Status::WithdrawalNotified),
        (WithdrawalApproved, Status::WithdrawalNotified),
        (WithdrawalAnnounced, Status::WithdrawalNotified),
        (WithdrawalEffective, Status::Withdrawn),
        (WithdrawalReversed, Status::Withdrawn),
    ]);
}

#[test]
fn a_reversal_returns_a_withdrawing_state_to_party() {
    check(&[
        (WithdrawalAnnounced, Status::WithdrawalAnnounced),
        (WithdrawalReversed, Status::Party),
        (WithdrawalReversed, Status::Party),
        (WithdrawalAnnounced, Status::WithdrawalAnnounced),
    ]);
}

#[test]
fn a_withdrawn_state_can_join_again() {
    check(&[
        (Ratified, Status::Party),
        (WithdrawalEffective, Status::Withdrawn),
        (Signed, Status::Withdrawn),
        (Ratified, Status::Party),
    ]);
}

#[test]
fn background_news_records_no_change() {
    let mut log = Log::new(1);
    log.saw(WithdrawalNotified, "wire");
    log.saw(WithdrawalAnnounced, "wire");
    log.saw(Ratified, "wire");
    assert_eq!(
        log.changes(),
        [(Status::Unknown, Status::WithdrawalNotified)]
    );
}

#[test]
fn a_stage_needs_min_sources_distinct_sources() {
    let mut log = Log::new(2);
    assert_eq!(log.saw(WithdrawalAnnounced, "wire-a"), Status::Unknown);
    assert_eq!(
        log.saw(WithdrawalAnnounced, "wire-a"),
        Status::Unknown,
        "same source twice is one source"
    );
    assert_eq!(
        log.saw(WithdrawalAnnounced, "wire-b"),
        Status::WithdrawalAnnounced
    );
    let row = log
        .store
        .projection()
        .expect("read")
        .into_values()
        .next()
        .expect("row");
    assert_eq!(row.sources, ["wire-a", "wire-b"]);
    assert_eq!(
        row.since,
        at(2025, 1, 2),
        "since the first report, not the corroborating one"
    );
}

#[test]
fn an_authoritative_source_needs_no_corroboration() {
    let mut log = Log::new(3);
    let mut event = detection(
        "UKR",
        "ottawa",
        WithdrawalNotified,
        "un-depositary",
        "cn-1",
        at(2025, 6, 29),
    );
    if let EventBody::Detection(d) = &mut event.body {
        d.authoritative = true;
    }
    assert_eq!(log.push(event), Status::WithdrawalNotified);
}

#[test]
fn a_later_stage_corroborates_an_earlier_one() {
    let mut log = Log::new(2);
    assert_eq!(log.saw(WithdrawalAnnounced, "wire-a"), Status::Unknown);
    assert_eq!(
        log.saw(WithdrawalNotified, "wire-b"),
        Status::WithdrawalAnnounced,
        "notified implies announced"
    );
    assert_eq!(
        log.saw(WithdrawalNotified, "wire-c"),
        Status::WithdrawalNotified
    );
}

#[test]
fn retracting_the_cause_restores_the_earlier_status() {
    let mut log = Log::new(1);
    log.saw(Ratified, "wire");
    log.saw(WithdrawalAnnounced, "wire");
    let wrong = log.store.last_seq().expect("seq") - 1;
    let status = log.push(NewEvent {
        occurred_at: at(2025, 2, 1),
        body: EventBody::Retracted(Retraction {
            target_seq: wrong,
            state: "UKR".into(),
            treaty: "ottawa".into(),
            note: "misread".into(),
            rules_version: None,
        }),
    });
    assert_eq!(status, Status::Party);
    assert_eq!(
        log.changes(),
        [
            (Status::Unknown, Status::Party),
            (Status::Party, Status::WithdrawalAnnounced),
            (Status::WithdrawalAnnounced, Status::Party)
        ]
    );
}

#[test]
fn an_assertion_overrides_and_news_continues_from_it() {
    let mut log = Log::new(1);
    log.saw(WithdrawalAnnounced, "wire");
    let status = log.push(NewEvent {
        occurred_at: at(2025, 3, 1),
        body: EventBody::Asserted(Assertion {
            state: "UKR".into(),
            treaty: "ottawa".into(),
            status: Status::Party,
            note: "decree annulled".into(),
            quiet: false,
        }),
    });
    assert_eq!(status, Status::Party);
    assert_eq!(
        log.saw(WithdrawalApproved, "wire"),
        Status::WithdrawalApproved
    );
}

#[test]
fn as_of_shows_the_table_as_it_stood() {
    let mut log = Log::new(1);
    log.saw(Ratified, "wire"); // 2025-01-02
    log.saw(WithdrawalAnnounced, "wire"); // 2025-01-03
    let status_on = |day| {
        log.store
            .rebuild(&log.policy, Some(at(2025, 1, day)))
            .expect("rebuild")
            .values()
            .next()
            .map_or(Status::Unknown, |r| r.status)
    };
    assert_eq!(status_on(1), Status::Unknown);
    assert_eq!(status_on(2), Status::Party);
    assert_eq!(status_on(3), Status::WithdrawalAnnounced);
}

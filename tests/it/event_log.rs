//! The event log on a real SQLite file: append-only, deduplicated, every
//! status change recorded in the same transaction as its cause.

use rusqlite::Connection;
use treatywatch::domain::{Action, EventBody, Policy, Status};
use treatywatch::store::{Store, StoreError};

use crate::support::{at, detection};

fn temp_store() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().expect("dir");
    let store = Store::open(&dir.path().join("sub/log.db")).expect("open creates folders");
    (dir, store)
}

#[test]
fn appending_the_same_observation_twice_leaves_one_row() {
    let (_dir, mut store) = temp_store();
    let event = detection(
        "UKR",
        "ottawa",
        Action::WithdrawalAnnounced,
        "wire",
        "item-1",
        at(2025, 6, 29),
    );
    let first = store
        .append(
            std::slice::from_ref(&event),
            &Policy::default(),
            at(2025, 6, 30),
        )
        .expect("append");
    let second = store
        .append(&[event.clone(), event], &Policy::default(), at(2025, 7, 1))
        .expect("append again");
    assert_eq!(first.appended.len(), 1);
    assert_eq!(first.changes.len(), 1, "first sighting moves the status");
    assert!(second.appended.is_empty() && second.changes.is_empty());
    assert_eq!(second.duplicates, 2);
    let kinds: Vec<&str> = store
        .events_after(0, 100)
        .expect("read")
        .iter()
        .map(|e| e.body.kind())
        .collect();
    assert_eq!(kinds, ["detection", "status_changed"]);
}

#[test]
fn update_and_delete_on_the_log_are_refused() {
    let (dir, mut store) = temp_store();
    store
        .append(
            &[detection(
                "UKR",
                "ottawa",
                Action::Ratified,
                "wire",
                "a",
                at(2005, 12, 27),
            )],
            &Policy::default(),
            at(2025, 1, 1),
        )
        .expect("append");
    let conn = Connection::open(dir.path().join("sub/log.db")).expect("raw connection");
    for sql in [
        "UPDATE events SET kind = 'x'",
        "DELETE FROM events",
        "UPDATE events SET payload = '{}' WHERE seq = 1",
    ] {
        let err = conn.execute(sql, []).expect_err(sql);
        assert!(err.to_string().contains("append-only"), "{sql}: {err}");
    }
    assert_eq!(store.last_seq().expect("seq"), 2, "both rows survive");
}

#[test]
fn a_status_change_is_an_event_caused_by_its_detection() {
    let (_dir, mut store) = temp_store();
    let out = store
        .append(
            &[detection(
                "POL",
                "ottawa",
                Action::WithdrawalNotified,
                "wire",
                "n",
                at(2025, 6, 27),
            )],
            &Policy::default(),
            at(2025, 6, 28),
        )
        .expect("append");
    let change = &out.changes[0];
    let EventBody::StatusChanged(c) = &change.body else {
        panic!("not a change: {change:?}")
    };
    assert_eq!(
        (c.from, c.to, c.cause_seq),
        (Status::Unknown, Status::WithdrawalNotified, out.appended[0])
    );
    assert_eq!(
        change.occurred_at,
        at(2025, 6, 27),
        "dated by the news, not by the poll"
    );
    assert_eq!(change.recorded_at, at(2025, 6, 28));
    assert_eq!(
        store.event(change.seq).expect("read").as_ref(),
        Some(change)
    );
}

#[test]
fn migrations_are_recorded_and_reopening_is_harmless() {
    let dir = tempfile::tempdir().expect("dir");
    let path = dir.path().join("log.db");
    drop(Store::open(&path).expect("first open"));
    let version: i64 = Connection::open(&path)
        .expect("raw")
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .expect("version");
    assert_eq!(version as usize, Store::schema_version());
    Store::open(&path).expect("second open");
}

#[test]
fn a_database_from_a_newer_release_is_refused() {
    let dir = tempfile::tempdir().expect("dir");
    let path = dir.path().join("log.db");
    drop(Store::open(&path).expect("open"));
    let newer = Store::schema_version() + 1;
    Connection::open(&path)
        .expect("raw")
        .pragma_update(None, "user_version", newer as i64)
        .expect("bump version");
    let err = Store::open(&path).err().expect("refused");
    assert!(
        matches!(err, StoreError::TooNew { found, .. } if found == newer),
        "{err}"
    );
    assert!(err.to_string().contains("newer release"), "{err}");
}

#[test]
fn an_unopenable_database_path_is_a_clear_error() {
    let dir = tempfile::tempdir().expect("dir");
    let file = dir.path().join("plain-file");
    std::fs::write(&file, "not a folder").expect("write");
    let err = Store::open(&file.join("log.db"))
        .err()
        .expect("cannot open under a file");
    assert!(err.to_string().contains("plain-file"), "{err}");
}

#[test]
fn a_duplicate_leaves_no_trace_but_may_use_up_a_number() {
    // Sequence numbers are increasing, not dense: SQLite may spend one on
    // an insert that the dedupe key turns into a no-op. Readers page by
    // "after seq", so gaps are harmless.
    let (_dir, mut store) = temp_store();
    let e = detection("UKR", "ottawa", Action::Signed, "wire", "x", at(2025, 1, 1));
    store
        .append(
            &[e.clone(), e.clone(), e],
            &Policy::default(),
            at(2025, 1, 2),
        )
        .expect("append");
    let seqs: Vec<i64> = store
        .events_after(0, 10)
        .expect("read")
        .iter()
        .map(|e| e.seq)
        .collect();
    assert_eq!(seqs.len(), 2, "one detection and its change: {seqs:?}");
    assert!(seqs[0] < seqs[1]);
}

#[test]
fn events_after_pages_through_the_log_in_order() {
    let (_dir, mut store) = temp_store();
    let events: Vec<_> = (0..25)
        .map(|i| {
            detection(
                "UKR",
                "ottawa",
                Action::Signed,
                "wire",
                &format!("item{i}"),
                at(2025, 1, 1),
            )
        })
        .collect();
    store
        .append(&events, &Policy::default(), at(2025, 1, 2))
        .expect("append");
    let first = store.events_after(0, 10).expect("page");
    let rest = store
        .events_after(first.last().expect("some").seq, 100)
        .expect("page");
    let seqs: Vec<i64> = first.iter().chain(&rest).map(|e| e.seq).collect();
    assert_eq!(
        seqs,
        (1..=26).collect::<Vec<_>>(),
        "25 detections and one change, in order"
    );
}

#[test]
fn a_detection_written_before_rules_versions_still_reads() {
    let (dir, store) = temp_store();
    drop(store);
    // A payload as version 1 wrote it: no rules_version.
    let v1 = r#"{"kind":"detection","state":"UKR","treaty":"ottawa","action":"withdrawal_announced","rule":"announced.decree","source":"wire","item_key":"k","evidence":{"sentence":"s"}}"#;
    Connection::open(dir.path().join("sub/log.db"))
        .expect("raw")
        .execute(
            "INSERT INTO events (kind, state, treaty, occurred_at, recorded_at, payload, payload_version, dedupe_key)
             VALUES ('detection', 'UKR', 'ottawa', '2025-06-29T12:00:00.000000Z', '2025-06-29T12:00:00.000000Z', ?1, 1, 'v1')",
            [v1],
        )
        .expect("insert v1");
    let store = Store::open(&dir.path().join("sub/log.db")).expect("reopen");
    let event = store.event(1).expect("read").expect("present");
    let EventBody::Detection(d) = event.body else {
        panic!("not a detection: {event:?}");
    };
    assert_eq!(
        (d.rule.as_str(), d.rules_version.as_str()),
        ("announced.decree", "")
    );
}

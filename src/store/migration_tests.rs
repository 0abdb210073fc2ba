//! Migration 0010 rebuilds `events` (see the file for why): on a real
//! database made by schema 9, with events of every kind and rows in every
//! table that refers to events, everything a reader gets from the store —
//! the log, replay, the status table, histories, digests, the notifier's
//! and `reclassify`'s reads — is the same after it as before.

use chrono::{DateTime, TimeZone, Utc};

use super::{ChangeFilter, NewBatch, QueuedChange, Store, feeds::read_item_page};
use crate::domain::{
    Action, Assertion, Baseline, BaselineRef, Detection, DigestRefused, EventBody, Evidence,
    HealthCondition, NewEvent, Policy, Retraction, SourceHealth, Status,
};

fn at(day: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 1, day, 12, 0, 0)
        .single()
        .expect("date")
}

fn detection(state: &str, action: Action, source: &str, item: &str, day: u32) -> NewEvent {
    NewEvent {
        occurred_at: at(day),
        body: EventBody::Detection(Detection {
            state: state.into(),
            treaty: "ottawa".into(),
            action,
            rule: if source == "un" {
                "depositary:un".into()
            } else {
                "announced.decree".into()
            },
            rules_version: "v".into(),
            source: source.into(),
            item_key: item.into(),
            evidence: Evidence {
                sentence: format!("{state} {action} ({item})"),
                link: Some(format!("https://news.example.org/{item}")),
                title: Some("A headline".into()),
            },
            authoritative: source == "un",
            backfill: false,
            revives: None,
            takes_effect: None,
        }),
    }
}

/// Fills a store with events of every kind, digests sent and refused, an
/// outbox and stored items, as the daemon and the commands would.
fn fill(store: &mut Store) {
    let policy = Policy::default();
    store
        .append_unmailed(
            &[NewEvent {
                occurred_at: at(1),
                body: EventBody::Baseline(Box::new(Baseline {
                    state: "UKR".into(),
                    treaty: "ottawa".into(),
                    status: Status::Party,
                    source: BaselineRef {
                        as_of: at(1).date_naive(),
                        since: Some(at(1).date_naive()),
                        by: Some("ratification".into()),
                        source: "UN".into(),
                        source_url: None,
                        file: "ottawa.toml".into(),
                    },
                    withdrawal_notified: None,
                    withdrawal_effective: None,
                })),
            }],
            &policy,
            at(1),
        )
        .expect("baseline");
    store
        .append(
            &[
                detection("UKR", Action::WithdrawalAnnounced, "wire", "item-1", 2),
                detection("UKR", Action::WithdrawalAnnounced, "paper", "item-2", 2),
                detection("POL", Action::Ratified, "wire", "item-3", 3),
                detection("FIN", Action::WithdrawalNotified, "un", "item-4", 4),
                NewEvent {
                    occurred_at: at(4),
                    body: EventBody::SourceHealth(SourceHealth {
                        feed: "wire".into(),
                        condition: HealthCondition::Failing,
                        since: at(4),
                        failures: 3,
                        summary: Some("timed out".into()),
                        error: Some("timed out after 30 s".into()),
                        gone: false,
                        last_item_at: Some(at(3)),
                    }),
                },
            ],
            &policy,
            at(5),
        )
        .expect("news");
    let pol = store.key_observations("POL", "ottawa").expect("POL")[0].seq;
    store
        .append(
            &[
                NewEvent {
                    occurred_at: at(6),
                    body: EventBody::Asserted(Assertion {
                        state: "LTU".into(),
                        treaty: "ottawa".into(),
                        status: Status::WithdrawalNotified,
                        note: "the note verbale".into(),
                        quiet: false,
                    }),
                },
                NewEvent {
                    occurred_at: at(6),
                    body: EventBody::Retracted(Retraction {
                        target_seq: pol,
                        state: "POL".into(),
                        treaty: "ottawa".into(),
                        note: "misread".into(),
                        rules_version: None,
                    }),
                },
            ],
            &policy,
            at(6),
        )
        .expect("corrections");
    let changes: Vec<i64> = store
        .status_changes(&ChangeFilter::default(), 100)
        .expect("changes")
        .iter()
        .map(|e| e.seq)
        .collect();
    let cursor = store.last_seq().expect("seq");
    let mut queued = Vec::new();
    for recipient in ["a@example.org", "b@example.org"] {
        for &change_seq in &changes {
            queued.push(QueuedChange {
                change_seq,
                recipient: recipient.into(),
                urgent: false,
                queued_at: at(6),
            });
        }
    }
    store.enqueue(&queued, cursor).expect("enqueue");
    let mut batches = Vec::new();
    for (recipient, id) in [("a@example.org", "<1@x>"), ("b@example.org", "<2@x>")] {
        let batch = store
            .freeze_batch(
                &NewBatch {
                    recipient,
                    changes: &changes,
                    message_id: id,
                    envelope_from: "tw@example.org",
                    message: b"Subject: s\r\n\r\nbody\r\n",
                    subject: "s",
                },
                at(7),
            )
            .expect("freeze")
            .expect("not raced");
        batches.push(batch);
    }
    store.record_sent(&batches[0], at(7)).expect("sent");
    store
        .record_refused(
            &batches[1],
            DigestRefused {
                recipient: "b@example.org".into(),
                first_seq: batches[1].first_seq,
                last_seq: batches[1].last_seq,
                message_id: "<2@x>".into(),
                code: 550,
                error: "mailbox unavailable".into(),
                changes: changes.clone(),
                carry: true,
                alert: false,
                retried: false,
            },
            at(7),
        )
        .expect("refused");
    for (feed, key) in [("wire", "item-1"), ("paper", "item-2"), ("wire", "item-3")] {
        store
            .conn
            .execute(
                "INSERT INTO items (feed_id, item_key, content_hash, title, link, published, body, first_seen, last_changed)
                 VALUES (?1, ?2, 'h', 't', NULL, NULL, 'b', '2026-01-02T12:00:00.000000Z', '2026-01-02T12:00:00.000000Z')",
                [feed, key],
            )
            .expect("item");
    }
}

/// Everything the store's readers get, in one comparable value.
#[derive(Debug, PartialEq)]
struct Reads {
    log: Vec<crate::domain::StoredEvent>,
    replay: crate::domain::Projection,
    replay_as_of: crate::domain::Projection,
    table: crate::domain::Projection,
    histories: Vec<Vec<crate::domain::StoredEvent>>,
    changes: Vec<crate::domain::StoredEvent>,
    news: Vec<crate::domain::StoredEvent>,
    notifiable: Vec<crate::domain::StoredEvent>,
    refused: Vec<crate::domain::StoredEvent>,
    notices: Vec<crate::domain::StoredEvent>,
    batches: Vec<super::Batch>,
    queued: Vec<QueuedChange>,
    items: super::ItemPage,
    keys_known: usize,
    last_recorded: Option<DateTime<Utc>>,
}

fn reads(store: &Store) -> Reads {
    let policy = Policy::default();
    let log = store.events_after(0, 1000).expect("log");
    let keys: Vec<String> = log
        .iter()
        .map(|e| e.body.dedupe_key(e.occurred_at))
        .collect();
    let mut histories = Vec::new();
    for state in ["UKR", "POL", "FIN", "LTU"] {
        histories.push(store.key_events(state, "ottawa").expect("history"));
        histories.push(
            store
                .key_observations(state, "ottawa")
                .expect("observations"),
        );
        histories.push(store.key_digests(state, "ottawa").expect("digests"));
    }
    let filter = |news_only| ChangeFilter {
        news_only,
        ..ChangeFilter::default()
    };
    Reads {
        replay: store.rebuild(&policy, None).expect("replay"),
        replay_as_of: store.rebuild(&policy, Some(at(3))).expect("replay as of"),
        table: store.projection().expect("table"),
        histories,
        changes: store.status_changes(&filter(false), 100).expect("changes"),
        news: store.status_changes(&filter(true), 100).expect("news"),
        notifiable: store.notifiable_after(0, 100).expect("notifiable"),
        refused: store.refused_digests(10).expect("refused"),
        notices: store.depositary_notices().expect("notices"),
        batches: store
            .batch_by_message_id("<1@x>")
            .expect("batch")
            .into_iter()
            .chain(store.batch_by_message_id("<2@x>").expect("batch"))
            .collect(),
        queued: store.queued().expect("queued"),
        items: read_item_page(&store.conn, "", 100).expect("items"),
        keys_known: store.known_dedupe_keys(&keys).expect("keys").len(),
        last_recorded: store.last_recorded().expect("recorded"),
        log,
    }
}

#[test]
fn the_lean_log_migration_keeps_every_event_and_every_read() {
    let dir = tempfile::tempdir().expect("dir");
    let path = dir.path().join("log.db");
    let mut old = Store::open_at_version(&path, 9).expect("schema 9");
    fill(&mut old);
    let before = reads(&old);
    // The fixture covers what it claims to.
    let kinds: std::collections::BTreeSet<&str> =
        before.log.iter().map(|e| e.body.kind()).collect();
    assert_eq!(kinds.len(), 8, "every kind of event: {kinds:?}");
    assert!(!before.items.detections.is_empty() && before.batches.len() == 2);
    assert_eq!(before.replay, before.table);
    drop(old);

    let mut store = Store::open(&path).expect("migrates");
    assert_eq!(reads(&store), before);

    let schema: String = store
        .conn
        .query_row(
            "SELECT sql FROM sqlite_schema WHERE name = 'events'",
            [],
            |r| r.get(0),
        )
        .expect("schema");
    assert!(
        !schema.contains("AUTOINCREMENT") && !schema.contains("json_valid"),
        "{schema}"
    );
    let broken: Option<String> = rusqlite::OptionalExtension::optional(store.conn.query_row(
        "PRAGMA foreign_key_check",
        [],
        |r| r.get(0),
    ))
    .expect("check");
    assert_eq!(broken, None, "every reference to an event still holds");
    for sql in [
        "UPDATE events SET kind = 'x'",
        "DELETE FROM events WHERE seq = 1",
    ] {
        let err = store.conn.execute(sql, []).expect_err(sql);
        assert!(err.to_string().contains("append-only"), "{sql}: {err}");
    }

    // Old dedupe keys still deduplicate; a new event takes the next seq.
    let last = store.last_seq().expect("seq");
    let again = detection("UKR", Action::WithdrawalAnnounced, "wire", "item-1", 2);
    let new = detection("POL", Action::Signed, "wire", "item-5", 8);
    let out = store
        .append(&[again, new], &Policy::default(), at(8))
        .expect("append");
    assert_eq!(
        (out.duplicates, out.appended.as_slice()),
        (1, &[last + 1][..])
    );
}

//! The event log: append (deduplicated, with the projection refreshed in the
//! same transaction) and read back.
//!
//! The `events` table (migrations 0001 and 0010) holds each event's JSON
//! payload as serde_json wrote it from the typed `EventBody`, so no SQL
//! check validates it again; `seq` is never reused because no row is ever
//! deleted (migration 0010 says why AUTOINCREMENT is not needed for that).
//! Its indexes are the ones these queries use: by (state, treaty), by kind
//! for every kind but detections (a query that wants it says
//! `kind != 'detection'`), by item for detections and by target for
//! retractions, and the unique dedupe key.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use rusqlite::{OptionalExtension, Transaction, params};

use super::{Result, Store, StoreError, parse_timestamp, timestamp};
use crate::domain::{
    Correction, EventBody, Evidence, Key, KeyFold, NewEvent, PAYLOAD_VERSION, Policy, StatusChange,
    StoredEvent, fold_key, retracted_seqs,
};

/// What one `append` did.
#[derive(Debug, Default, Clone)]
pub struct AppendOutcome {
    /// Sequence numbers of the events that were new.
    pub appended: Vec<i64>,
    /// Events that were already in the log and were skipped.
    pub duplicates: usize,
    /// The status changes this append caused, as stored.
    pub changes: Vec<StoredEvent>,
}

/// Whether the status changes an append causes are news.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Cause {
    /// Observations as they arrive: a change is backfill only when the
    /// detections behind its new status all are.
    News,
    /// A correction of the record (`reclassify`): every change it causes
    /// is recorded as backfill, so the notifier never mails it.
    Correction,
}

const SELECT_EVENT: &str = "SELECT seq, occurred_at, recorded_at, payload FROM events";

/// From how many events an append is a bulk one (see `with_cache_for`).
const BULK_EVENTS: usize = 1_000;
/// The page cache of a bulk append, in KiB.
const BULK_CACHE_KIB: i64 = 32 * 1024;

impl Store {
    /// Appends `events` in one transaction: new ones get sequence numbers,
    /// ones already in the log are skipped, and every (state, treaty) they
    /// touch is re-folded, recording any status change as an event.
    pub fn append(
        &mut self,
        events: &[NewEvent],
        policy: &Policy,
        now: DateTime<Utc>,
    ) -> Result<AppendOutcome> {
        self.with_cache_for(events.len(), |conn| {
            let tx = conn.transaction()?;
            let outcome = append_in(&tx, events, policy, now, Cause::News)?;
            tx.commit()?;
            Ok(outcome)
        })
    }

    /// Appends like `append`, but every status change it causes is
    /// recorded as backfill, so it is never mailed: for the membership
    /// baseline and an analyst's `assert --no-mail` (history, not news).
    pub fn append_unmailed(
        &mut self,
        events: &[NewEvent],
        policy: &Policy,
        now: DateTime<Utc>,
    ) -> Result<AppendOutcome> {
        self.with_cache_for(events.len(), |conn| {
            let tx = conn.transaction()?;
            let outcome = append_in(&tx, events, policy, now, Cause::Correction)?;
            tx.commit()?;
            Ok(outcome)
        })
    }

    /// Runs `f` with a page cache sized for appending `events` events. A
    /// bulk append (a baseline import, a large batch) dirties more pages
    /// than SQLite's default cache of 2 MB holds, and SQLite then spills
    /// pages to the WAL before the commit and writes some of them again.
    /// Such an append gets `BULK_CACHE_KIB` for its transaction; the
    /// default comes back after it, which frees the extra pages, so a
    /// daemon does not keep them while idle.
    fn with_cache_for<T>(
        &mut self,
        events: usize,
        f: impl FnOnce(&mut rusqlite::Connection) -> Result<T>,
    ) -> Result<T> {
        if events < BULK_EVENTS {
            return f(&mut self.conn);
        }
        let usual: i64 = self.conn.query_row("PRAGMA cache_size", [], |r| r.get(0))?;
        self.conn
            .pragma_update(None, "cache_size", -BULK_CACHE_KIB)?;
        let result = f(&mut self.conn);
        self.conn.pragma_update(None, "cache_size", usual)?;
        result
    }

    /// Which of `keys` (events' dedupe keys) are already in the log.
    pub fn known_dedupe_keys(&self, keys: &[String]) -> Result<std::collections::HashSet<String>> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT 1 FROM events WHERE dedupe_key = ?1")?;
        let mut known = std::collections::HashSet::new();
        for key in keys {
            if stmt.exists([key])? {
                known.insert(key.clone());
            }
        }
        Ok(known)
    }

    /// Every observation about one (state, treaty), in log order.
    pub fn key_observations(&self, state: &str, treaty: &str) -> Result<Vec<StoredEvent>> {
        let mut stmt = self.conn.prepare_cached(&format!(
            "{SELECT_EVENT} WHERE state = ?1 AND treaty = ?2 AND kind != 'status_changed' ORDER BY seq"
        ))?;
        let rows = stmt.query_map([state, treaty], raw_row)?;
        rows.map(|r| decode(r?)).collect()
    }

    /// One event by sequence number.
    pub fn event(&self, seq: i64) -> Result<Option<StoredEvent>> {
        self.conn
            .query_row(&format!("{SELECT_EVENT} WHERE seq = ?1"), [seq], raw_row)
            .optional()?
            .map(decode)
            .transpose()
    }

    /// Events with `seq > after`, oldest first, at most `limit`.
    pub fn events_after(&self, after: i64, limit: usize) -> Result<Vec<StoredEvent>> {
        let mut stmt = self.conn.prepare_cached(&format!(
            "{SELECT_EVENT} WHERE seq > ?1 ORDER BY seq LIMIT ?2"
        ))?;
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let rows = stmt.query_map(params![after, limit], raw_row)?;
        rows.map(|r| decode(r?)).collect()
    }

    /// The highest sequence number in the log (0 when empty).
    pub fn last_seq(&self) -> Result<i64> {
        Ok(self
            .conn
            .query_row("SELECT coalesce(max(seq), 0) FROM events", [], |r| r.get(0))?)
    }

    /// Walks every observation about a (state, treaty) in log order: the
    /// baselines, or (with `baselines` false) all the others. The others
    /// are a scan in `seq` order, which reads the table sequentially and on
    /// a large log is several times faster than visiting it key by key; the
    /// baselines are few, and read through `events_by_kind` rather than by
    /// a second scan of the whole table.
    pub(super) fn for_each_observation(
        &self,
        as_of: Option<DateTime<Utc>>,
        baselines: bool,
        mut f: impl FnMut(StoredEvent),
    ) -> Result<()> {
        let which = if baselines {
            "kind = 'baseline' AND kind != 'detection'"
        } else {
            "kind NOT IN ('status_changed', 'digest_sent', 'baseline')"
        };
        let mut stmt = self.conn.prepare(&format!(
            "{SELECT_EVENT} WHERE {which} AND state IS NOT NULL AND occurred_at <= ?1 ORDER BY seq"
        ))?;
        let bound = as_of.map_or_else(|| "9999".to_string(), timestamp);
        let rows = stmt.query_map(params![bound], raw_row)?;
        for row in rows {
            f(decode(row?)?);
        }
        Ok(())
    }

    /// Every retracted sequence number in the whole log.
    pub(super) fn retracted(&self) -> Result<std::collections::HashSet<i64>> {
        let mut stmt = self.conn.prepare(
            "SELECT json_extract(payload, '$.target_seq') FROM events WHERE kind = 'retracted'",
        )?;
        let rows = stmt.query_map([], |r| r.get::<_, i64>(0))?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }
}

/// The body of `Store::append`, inside a caller's transaction so ingesting a
/// feed can commit items, events and feed health together.
pub(super) fn append_in(
    tx: &Transaction<'_>,
    events: &[NewEvent],
    policy: &Policy,
    now: DateTime<Utc>,
    cause: Cause,
) -> Result<AppendOutcome> {
    let mut outcome = AppendOutcome::default();
    // Touched key -> its new observations, in log order.
    let mut touched: BTreeMap<Key, Vec<StoredEvent>> = BTreeMap::new();
    for event in events {
        match insert(tx, event, now)? {
            Some(seq) => {
                outcome.appended.push(seq);
                if let Some((state, treaty)) =
                    event.body.key().filter(|_| event.body.is_observation())
                {
                    touched
                        .entry((state.to_string(), treaty.to_string()))
                        .or_default()
                        .push(StoredEvent {
                            seq,
                            occurred_at: event.occurred_at,
                            recorded_at: now,
                            body: event.body.clone(),
                        });
                }
            }
            None => outcome.duplicates += 1,
        }
    }
    for ((state, treaty), new) in touched {
        if let Some(change) = refresh_key(tx, &state, &treaty, &new, policy, now, cause)? {
            outcome.changes.push(change);
        }
    }
    Ok(outcome)
}

/// Inserts one event unless its dedupe key is already present.
pub(super) fn insert(
    tx: &Transaction<'_>,
    event: &NewEvent,
    now: DateTime<Utc>,
) -> Result<Option<i64>> {
    let (state, treaty) = event.body.key().unzip();
    let payload = serde_json::to_string(&event.body).expect("events serialize to JSON");
    let mut stmt = tx.prepare_cached(
        "INSERT INTO events (kind, state, treaty, occurred_at, recorded_at, payload, payload_version, dedupe_key)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
         ON CONFLICT (dedupe_key) DO NOTHING",
    )?;
    let inserted = stmt.execute(params![
        event.body.kind(),
        state,
        treaty,
        timestamp(event.occurred_at),
        timestamp(now),
        payload,
        PAYLOAD_VERSION,
        event.body.dedupe_key(event.occurred_at),
    ])?;
    Ok((inserted == 1).then(|| tx.last_insert_rowid()))
}

/// Folds one key's new observations (`new`, in log order, all appended in
/// this transaction), stores the new row, and appends a status change event
/// when the status moved.
///
/// The kept fold state is extended with the new events; a retraction, or a
/// missing or stale fold state, re-folds the key from the log instead, which
/// is the same function over the same events.
///
/// Whether the change is mailed is decided here, not in the fold: it is a
/// fact about this append (`cause`), not about the status, so the row and
/// `replay` do not depend on it.
fn refresh_key(
    tx: &Transaction<'_>,
    state: &str,
    treaty: &str,
    new: &[StoredEvent],
    policy: &Policy,
    now: DateTime<Utc>,
    cause: Cause,
) -> Result<Option<StoredEvent>> {
    let first_new = new.first().map_or(i64::MAX, |e| e.seq);
    let cause_seq = new.last().map_or(0, |e| e.seq);
    // A retraction can undo anything, and a baseline goes before the news
    // already folded: either way the key is folded again from the log.
    let refold = new
        .iter()
        .any(|e| matches!(e.body, EventBody::Retracted(_) | EventBody::Baseline(_)));
    let kept = if refold {
        None
    } else {
        read_fold(tx, state, treaty)?
    };
    let fold = match kept {
        Some((mut fold, last_seq)) if last_seq < first_new => {
            for e in new {
                fold.apply(e, policy);
            }
            fold
        }
        _ => {
            let mut stmt = tx.prepare_cached(&format!(
                "{SELECT_EVENT} WHERE state = ?1 AND treaty = ?2 AND kind != 'status_changed' ORDER BY seq"
            ))?;
            let rows = stmt.query_map([state, treaty], raw_row)?;
            let events = rows.map(|r| decode(r?)).collect::<Result<Vec<_>>>()?;
            fold_key(&events, &retracted_seqs(&events), policy)
        }
    };
    write_fold(tx, state, treaty, cause_seq, &fold)?;
    let before = super::projection::read_row(tx, state, treaty)?;
    let after = fold.row().cloned();
    if before == after {
        return Ok(None);
    }
    super::projection::write_row(tx, state, treaty, after.as_ref())?;
    let from = before
        .as_ref()
        .map_or(crate::domain::Status::Unknown, |r| r.status);
    let to = fold.status();
    if from == to {
        return Ok(None);
    }
    let row = after.as_ref();
    let cause_event = new.last().map(|e| &e.body);
    let (rule, authoritative) = match cause_event {
        Some(EventBody::Detection(d)) => (Some(d.rule.clone()), d.authoritative),
        _ => (None, false),
    };
    let correction = match cause_event {
        Some(EventBody::Asserted(a)) => Some(Correction {
            asserted: true,
            note: a.note.clone(),
            at: now,
            withdrew: None,
        }),
        // An analyst's retraction; reclassify's (with a rules version) are
        // corrections of the record that are never mailed anyway.
        Some(EventBody::Retracted(r)) if r.rules_version.is_none() => Some(Correction {
            asserted: false,
            note: r.note.clone(),
            at: now,
            withdrew: withdrawn_evidence(tx, r.target_seq)?,
        }),
        _ => None,
    };
    let change = NewEvent {
        occurred_at: row.map_or(now, |r| r.since),
        body: EventBody::StatusChanged(StatusChange {
            state: state.to_string(),
            treaty: treaty.to_string(),
            from,
            to,
            cause_seq,
            sources: row.map(|r| r.sources.clone()).unwrap_or_default(),
            evidence: row.and_then(|r| r.evidence.clone()),
            backfill: cause == Cause::Correction || row.is_some_and(|r| r.backfill),
            from_baseline: before
                .as_ref()
                .and_then(|r| r.baseline.clone())
                .map(Box::new),
            rule,
            authoritative,
            correction: correction.map(Box::new),
        }),
    };
    let seq = insert(tx, &change, now)?.expect("a status change's cause is new, so its key is too");
    Ok(Some(StoredEvent {
        seq,
        occurred_at: change.occurred_at,
        recorded_at: now,
        body: change.body,
    }))
}

/// What a retracted event had said, for the correction's record.
fn withdrawn_evidence(tx: &Transaction<'_>, seq: i64) -> Result<Option<Evidence>> {
    let event = tx
        .prepare_cached(&format!("{SELECT_EVENT} WHERE seq = ?1"))?
        .query_row([seq], raw_row)
        .optional()?
        .map(decode)
        .transpose()?;
    Ok(event.and_then(|e| match e.body {
        EventBody::Detection(d) => Some(d.evidence),
        EventBody::Asserted(a) => Some(Evidence {
            sentence: format!("set by an analyst to {}: {}", a.status.label(), a.note),
            link: None,
            title: None,
        }),
        _ => None,
    }))
}

pub(super) fn read_fold(
    tx: &Transaction<'_>,
    state: &str,
    treaty: &str,
) -> Result<Option<(KeyFold, i64)>> {
    let row: Option<(String, i64)> = tx
        .prepare_cached("SELECT fold, last_seq FROM fold_state WHERE state = ?1 AND treaty = ?2")?
        .query_row([state, treaty], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?;
    // An unreadable fold state (an older layout) is rebuilt from the log.
    Ok(row.and_then(|(json, last)| serde_json::from_str(&json).ok().map(|f| (f, last))))
}

fn write_fold(
    tx: &Transaction<'_>,
    state: &str,
    treaty: &str,
    last_seq: i64,
    fold: &KeyFold,
) -> Result<()> {
    let json = serde_json::to_string(fold).expect("fold state serializes");
    tx.prepare_cached(
        "INSERT INTO fold_state (state, treaty, last_seq, fold) VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT (state, treaty) DO UPDATE SET last_seq = excluded.last_seq, fold = excluded.fold",
    )?
    .execute(params![state, treaty, last_seq, json])?;
    Ok(())
}

type RawRow = (i64, String, String, String);

pub(super) fn raw_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<RawRow> {
    Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
}

pub(super) fn decode((seq, occurred, recorded, payload): RawRow) -> Result<StoredEvent> {
    Ok(StoredEvent {
        seq,
        occurred_at: parse_timestamp(&occurred)?,
        recorded_at: parse_timestamp(&recorded)?,
        body: EventBody::from_json(&payload)
            .map_err(|source| StoreError::Payload { seq, source })?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{HealthCondition, SourceHealth};

    #[test]
    fn a_bulk_append_gives_its_larger_page_cache_back() {
        let dir = tempfile::tempdir().expect("dir");
        let mut store = Store::open(&dir.path().join("log.db")).expect("open");
        let cache = |s: &Store| -> i64 {
            s.conn
                .query_row("PRAGMA cache_size", [], |r| r.get(0))
                .expect("cache size")
        };
        let usual = cache(&store);
        let now = Utc::now();
        let events: Vec<NewEvent> = (0..BULK_EVENTS)
            .map(|i| NewEvent {
                occurred_at: now,
                body: EventBody::SourceHealth(SourceHealth {
                    feed: format!("feed-{i}"),
                    condition: HealthCondition::Failing,
                    since: now,
                    failures: 1,
                    summary: None,
                    error: None,
                    gone: false,
                    last_item_at: None,
                }),
            })
            .collect();
        let out = store
            .append(&events, &Policy::default(), now)
            .expect("bulk append");
        assert_eq!(out.appended.len(), BULK_EVENTS);
        assert_eq!(cache(&store), usual, "an idle store keeps the usual cache");
    }
}

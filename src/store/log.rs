//! The event log: append (deduplicated, with the projection refreshed in the
//! same transaction) and read back.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use rusqlite::{OptionalExtension, Transaction, params};

use super::{Result, Store, StoreError, parse_timestamp, timestamp};
use crate::domain::{
    EventBody, Key, NewEvent, PAYLOAD_VERSION, Policy, StatusChange, StoredEvent, fold_key,
    retracted_seqs,
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

const SELECT_EVENT: &str = "SELECT seq, occurred_at, recorded_at, payload FROM events";

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
        let tx = self.conn.transaction()?;
        let outcome = append_in(&tx, events, policy, now)?;
        tx.commit()?;
        Ok(outcome)
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

    /// Walks every observation grouped by (state, treaty) in log order, for
    /// folds over the whole log without holding it in memory.
    pub(super) fn for_each_key(
        &self,
        as_of: Option<DateTime<Utc>>,
        mut f: impl FnMut(&Key, &[StoredEvent]),
    ) -> Result<()> {
        let mut stmt = self.conn.prepare(&format!(
            "{SELECT_EVENT} WHERE kind NOT IN ('status_changed', 'digest_sent') AND state IS NOT NULL AND occurred_at <= ?1 ORDER BY state, treaty, seq"
        ))?;
        let bound = as_of.map_or_else(|| "9999".to_string(), timestamp);
        let mut rows = stmt.query_map([bound], raw_row)?;
        let mut key: Option<Key> = None;
        let mut group: Vec<StoredEvent> = Vec::new();
        loop {
            let next = rows.next().transpose()?.map(decode).transpose()?;
            let next_key = next
                .as_ref()
                .and_then(|e| e.body.key())
                .map(|(s, t)| (s.to_string(), t.to_string()));
            if next_key != key {
                if let Some(k) = &key {
                    f(k, &group);
                }
                group.clear();
                key = next_key;
            }
            match next {
                Some(e) => group.push(e),
                None => return Ok(()),
            }
        }
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
) -> Result<AppendOutcome> {
    let mut outcome = AppendOutcome::default();
    // Touched key -> the last new event on it (the cause of any change).
    let mut touched: BTreeMap<Key, i64> = BTreeMap::new();
    for event in events {
        match insert(tx, event, now)? {
            Some(seq) => {
                outcome.appended.push(seq);
                if let Some((state, treaty)) =
                    event.body.key().filter(|_| event.body.is_observation())
                {
                    touched.insert((state.to_string(), treaty.to_string()), seq);
                }
            }
            None => outcome.duplicates += 1,
        }
    }
    for ((state, treaty), cause_seq) in touched {
        if let Some(change) = refresh_key(tx, &state, &treaty, cause_seq, policy, now)? {
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

/// Re-folds one key from the log, stores the new row, and appends a status
/// change event when the status moved.
fn refresh_key(
    tx: &Transaction<'_>,
    state: &str,
    treaty: &str,
    cause_seq: i64,
    policy: &Policy,
    now: DateTime<Utc>,
) -> Result<Option<StoredEvent>> {
    let events = {
        let mut stmt = tx.prepare_cached(&format!(
            "{SELECT_EVENT} WHERE state = ?1 AND treaty = ?2 AND kind != 'status_changed' ORDER BY seq"
        ))?;
        let rows = stmt.query_map([state, treaty], raw_row)?;
        rows.map(|r| decode(r?)).collect::<Result<Vec<_>>>()?
    };
    let retracted = retracted_seqs(&events);
    let fold = fold_key(&events, &retracted, policy);
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
            backfill: row.is_some_and(|r| r.backfill),
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

pub(super) type RawRow = (i64, String, String, String);

pub(super) fn raw_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<RawRow> {
    Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
}

pub(super) fn decode((seq, occurred, recorded, payload): RawRow) -> Result<StoredEvent> {
    Ok(StoredEvent {
        seq,
        occurred_at: parse_timestamp(&occurred)?,
        recorded_at: parse_timestamp(&recorded)?,
        body: serde_json::from_str(&payload)
            .map_err(|source| StoreError::Payload { seq, source })?,
    })
}

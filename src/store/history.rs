//! Reads for the web outputs and `export`: a key's whole history, the
//! digests that reported it, recent status changes with filters, and a
//! consistent snapshot to read them in. Nothing here writes.

use chrono::{DateTime, Utc};
use rusqlite::{OptionalExtension, params};

use super::log::{decode, raw_row};
use super::{Result, Store, parse_timestamp, timestamp};
use crate::domain::StoredEvent;

const SELECT_EVENT: &str = "SELECT seq, occurred_at, recorded_at, payload FROM events";

/// Which status changes `status_changes` returns.
#[derive(Debug, Clone, Default)]
pub struct ChangeFilter<'a> {
    pub state: Option<&'a str>,
    pub treaty: Option<&'a str>,
    /// Only changes that occurred by then.
    pub until: Option<DateTime<Utc>>,
    /// Leave out backfill (history, never mailed: the baseline import,
    /// old items, reclassify's additions), except the changes a retraction
    /// caused: those correct news that was reported.
    pub news_only: bool,
    /// Only changes older than this one (paging back from the newest).
    pub before_seq: Option<i64>,
}

impl Store {
    /// Runs `f` inside one read transaction, so everything it reads comes
    /// from the same state of the database even while the daemon writes.
    /// For read-only stores (a writer has its own transactions).
    pub fn snapshot<T>(&self, f: impl FnOnce(&Store) -> Result<T>) -> Result<T> {
        self.conn.execute_batch("BEGIN DEFERRED")?;
        let result = f(self);
        // Ending a read transaction cannot lose anything; a failure to end
        // it would show up as an error at the next BEGIN.
        let _ = self.conn.execute_batch("COMMIT");
        result
    }

    /// Every event about one (state, treaty), status changes included, in
    /// log order.
    pub fn key_events(&self, state: &str, treaty: &str) -> Result<Vec<StoredEvent>> {
        let mut stmt = self.conn.prepare_cached(&format!(
            "{SELECT_EVENT} WHERE state = ?1 AND treaty = ?2 ORDER BY seq"
        ))?;
        let rows = stmt.query_map([state, treaty], raw_row)?;
        rows.map(|r| decode(r?)).collect()
    }

    /// The `digest_sent` events that reported a status change of (state,
    /// treaty), in log order.
    pub fn key_digests(&self, state: &str, treaty: &str) -> Result<Vec<StoredEvent>> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT DISTINCT d.seq, d.occurred_at, d.recorded_at, d.payload
             FROM events d, json_each(d.payload, '$.changes') j
             WHERE d.kind = 'digest_sent' AND d.kind != 'detection'
               AND j.value IN (SELECT seq FROM events
                               WHERE state = ?1 AND treaty = ?2 AND kind = 'status_changed')
             ORDER BY d.seq",
        )?;
        let rows = stmt.query_map([state, treaty], raw_row)?;
        rows.map(|r| decode(r?)).collect()
    }

    /// Status changes matching `filter`, newest first, at most `limit`.
    pub fn status_changes(
        &self,
        filter: &ChangeFilter<'_>,
        limit: usize,
    ) -> Result<Vec<StoredEvent>> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT c.seq, c.occurred_at, c.recorded_at, c.payload FROM events c
             LEFT JOIN events cause ON cause.seq = json_extract(c.payload, '$.cause_seq')
             WHERE c.kind = 'status_changed' AND c.kind != 'detection'
               AND (?1 IS NULL OR c.state = ?1) AND (?2 IS NULL OR c.treaty = ?2)
               AND c.occurred_at <= ?3
               AND (?4 = 0 OR json_extract(c.payload, '$.backfill') = 0 OR cause.kind = 'retracted')
               AND c.seq < ?6
             ORDER BY c.seq DESC LIMIT ?5",
        )?;
        let until = filter.until.map_or_else(|| "9999".to_string(), timestamp);
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let rows = stmt.query_map(
            params![
                filter.state,
                filter.treaty,
                until,
                filter.news_only,
                limit,
                filter.before_seq.unwrap_or(i64::MAX)
            ],
            raw_row,
        )?;
        rows.map(|r| decode(r?)).collect()
    }

    /// When the newest event was recorded; `None` for an empty log.
    pub fn last_recorded(&self) -> Result<Option<DateTime<Utc>>> {
        let at: Option<String> = self
            .conn
            .query_row(
                "SELECT recorded_at FROM events ORDER BY seq DESC LIMIT 1",
                [],
                |r| r.get(0),
            )
            .optional()?;
        Ok(at.map(|t| parse_timestamp(&t)).transpose()?)
    }
}

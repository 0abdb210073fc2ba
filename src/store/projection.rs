//! The `status` table: the fold of the log per (state, treaty), stored so
//! `status` is a cheap read, and rebuilt from the log by `replay`.

use chrono::{DateTime, Utc};
use rusqlite::{Connection, OptionalExtension, params};

use super::{Result, Store, parse_timestamp, timestamp};
use std::collections::HashMap;

use crate::domain::{Key, KeyFold, Policy, Projection, StatusRow, Unconfirmed};

impl Store {
    /// The status table as stored.
    pub fn projection(&self) -> Result<Projection> {
        let mut stmt = self.conn.prepare(&format!(
            "SELECT state, treaty, {ROW_COLUMNS} FROM status ORDER BY state, treaty"
        ))?;
        let rows = stmt.query_map([], |r| Ok(((r.get(0)?, r.get(1)?), row_from(r, 2)?)))?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// The status table folded from the log alone; with `as_of`, as it stood
    /// then (see `domain::project` for what counts).
    pub fn rebuild(&self, policy: &Policy, as_of: Option<DateTime<Utc>>) -> Result<Projection> {
        let retracted = self.retracted()?;
        // One fold per key, fed in log order: the same steps `fold_key`
        // takes over each key's events, without grouping them first.
        // Baselines first: they are each key's starting point.
        let mut folds: HashMap<Key, KeyFold> = HashMap::new();
        for baselines in [true, false] {
            self.for_each_observation(as_of, baselines, |event| {
                if retracted.contains(&event.seq) || !event.body.is_observation() {
                    return;
                }
                if let Some((state, treaty)) = event.body.key() {
                    folds
                        .entry((state.to_string(), treaty.to_string()))
                        .or_default()
                        .apply(&event, policy);
                }
            })?;
        }
        Ok(folds
            .into_iter()
            .filter_map(|(key, fold)| fold.row().cloned().map(|row| (key, row)))
            .collect())
    }

    /// Reports still short of corroboration, per key, from the kept fold
    /// states (a key's is rebuilt at its next append after `replay --fix`).
    pub fn unconfirmed(&self, policy: &Policy) -> Result<Vec<(Key, Vec<Unconfirmed>)>> {
        let mut stmt = self.conn.prepare(
            "SELECT state, treaty, fold FROM fold_state WHERE json_array_length(fold, '$.pending') > 0 ORDER BY state, treaty",
        )?;
        let rows = stmt.query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
            ))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (state, treaty, json) = row?;
            // An unreadable fold (an older layout) has nothing to show.
            let Ok(fold) = serde_json::from_str::<KeyFold>(&json) else {
                continue;
            };
            let pending = fold.unconfirmed(&treaty, policy);
            if !pending.is_empty() {
                out.push(((state, treaty), pending));
            }
        }
        Ok(out)
    }

    /// Replaces the stored status table with `projection` (for `replay --fix`).
    pub fn replace_projection(&mut self, projection: &Projection) -> Result<()> {
        let tx = self.conn.transaction()?;
        tx.execute("DELETE FROM status", [])?;
        // The kept fold states may be as wrong as the table: rebuild them
        // from the log on the next append.
        tx.execute("DELETE FROM fold_state", [])?;
        for ((state, treaty), row) in projection {
            write_row(&tx, state, treaty, Some(row))?;
        }
        tx.commit()?;
        Ok(())
    }
}

const ROW_COLUMNS: &str = "status, since, since_seq, sources, evidence, manual, backfill, baseline";

fn row_from(r: &rusqlite::Row<'_>, at: usize) -> rusqlite::Result<StatusRow> {
    let json_err = |i, e: serde_json::Error| {
        rusqlite::Error::FromSqlConversionFailure(i, rusqlite::types::Type::Text, Box::new(e))
    };
    let status: String = r.get(at)?;
    let sources: String = r.get(at + 3)?;
    let evidence: Option<String> = r.get(at + 4)?;
    let baseline: Option<String> = r.get(at + 7)?;
    Ok(StatusRow {
        status: status.parse().map_err(|e: String| {
            rusqlite::Error::FromSqlConversionFailure(at, rusqlite::types::Type::Text, e.into())
        })?,
        since: parse_timestamp(&r.get::<_, String>(at + 1)?)?,
        since_seq: r.get(at + 2)?,
        sources: serde_json::from_str(&sources).map_err(|e| json_err(at + 3, e))?,
        evidence: evidence
            .map(|e| serde_json::from_str(&e))
            .transpose()
            .map_err(|e| json_err(at + 4, e))?,
        manual: r.get(at + 5)?,
        backfill: r.get(at + 6)?,
        baseline: baseline
            .map(|b| serde_json::from_str(&b))
            .transpose()
            .map_err(|e| json_err(at + 7, e))?,
    })
}

pub(super) fn read_row(conn: &Connection, state: &str, treaty: &str) -> Result<Option<StatusRow>> {
    Ok(conn
        .prepare_cached(&format!(
            "SELECT {ROW_COLUMNS} FROM status WHERE state = ?1 AND treaty = ?2"
        ))?
        .query_row([state, treaty], |r| row_from(r, 0))
        .optional()?)
}

/// Stores `row` for the key, or removes the key when the fold has no row.
pub(super) fn write_row(
    conn: &Connection,
    state: &str,
    treaty: &str,
    row: Option<&StatusRow>,
) -> Result<()> {
    match row {
        None => {
            conn.prepare_cached("DELETE FROM status WHERE state = ?1 AND treaty = ?2")?
                .execute([state, treaty])?;
        }
        Some(row) => {
            conn.prepare_cached(
                "INSERT INTO status (state, treaty, status, since, since_seq, sources, evidence, manual, backfill, baseline)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)
                 ON CONFLICT (state, treaty) DO UPDATE SET
                   status = excluded.status, since = excluded.since, since_seq = excluded.since_seq,
                   sources = excluded.sources, evidence = excluded.evidence,
                   manual = excluded.manual, backfill = excluded.backfill,
                   baseline = excluded.baseline",
            )?
            .execute(params![
                state,
                treaty,
                row.status.as_str(),
                timestamp(row.since),
                row.since_seq,
                serde_json::to_string(&row.sources).expect("strings serialize"),
                row.evidence.as_ref().map(|e| serde_json::to_string(e).expect("evidence serializes")),
                row.manual,
                row.backfill,
                row.baseline.as_ref().map(|b| serde_json::to_string(b).expect("a baseline serializes")),
            ])?;
        }
    }
    Ok(())
}

//! Feed health, conditional-GET validators and the items seen per feed.
//!
//! `commit_feed` is the one write of an ingest: the feed's new state, its new
//! or changed items and the events they produced go in one transaction, so a
//! crash can never record an item as seen without its detections;
//! `commit_feeds` puts several feeds' polls in one transaction the same way.

use chrono::{DateTime, Utc};
use rusqlite::{OptionalExtension, Transaction, TransactionBehavior, params};

use super::log::{AppendOutcome, Cause, append_in, decode};
use super::{Result, Store, StoreError, parse_timestamp, timestamp};
use crate::domain::{EventBody, NewEvent, Policy, Retraction, StoredEvent};
use crate::feed::Item;

/// What treatywatch knows about one feed's polling, as `status` shows it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FeedState {
    pub feed_id: String,
    /// The URL the rest of the fields are about.
    pub url: String,
    pub etag: Option<String>,
    pub last_modified: Option<String>,
    pub last_attempt: Option<DateTime<Utc>>,
    pub last_success: Option<DateTime<Utc>>,
    pub last_status: Option<u16>,
    pub last_error: Option<String>,
    pub consecutive_failures: u32,
    pub next_poll: Option<DateTime<Utc>>,
    /// The server answered 410 Gone for this URL.
    pub gone: bool,
    pub moved_to: Option<String>,
    /// Newest item publication date seen (an undated new item counts as
    /// published when first seen), for staleness.
    pub last_item_at: Option<DateTime<Utc>>,
    /// When the current run of failures began; `None` while healthy.
    pub failing_since: Option<DateTime<Utc>>,
    /// A failing alert was recorded for the current run (see `health`).
    pub failing_alerted: bool,
    /// The newest item's date a stale alert was recorded for, while that
    /// alert is open.
    pub stale_since: Option<DateTime<Utc>>,
}

impl FeedState {
    /// A fresh state for a feed never polled at `url`.
    pub fn new(feed_id: &str, url: &str) -> FeedState {
        FeedState {
            feed_id: feed_id.to_string(),
            url: url.to_string(),
            ..FeedState::default()
        }
    }
}

/// Whether an item is new to its feed or changed since last seen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ItemChange {
    New,
    Changed,
}

/// One feed's poll as `Store::commit_feeds` records it.
#[derive(Debug, Clone, Copy)]
pub struct FeedCommit<'a> {
    pub state: &'a FeedState,
    /// The items that were new or changed.
    pub items: &'a [Item],
    pub events: &'a [NewEvent],
    /// When the poll was read: the items' `first_seen`/`last_changed` and
    /// the events' `recorded_at`.
    pub now: DateTime<Utc>,
}

/// One feed's stored copy of an item, as `reclassify` reads it again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredItem {
    pub feed_id: String,
    /// `feed::Item::key`: feeds carrying the same article share it.
    pub key: String,
    pub title: String,
    pub link: Option<String>,
    pub published: Option<DateTime<Utc>>,
    /// The item's plain text, as classified.
    pub text: String,
    pub first_seen: DateTime<Utc>,
    /// When this text was taken (first seen, or last changed since).
    pub last_changed: DateTime<Utc>,
}

/// A detection the log holds for a stored item, with its retraction if
/// one was appended (at most one: a retraction's dedupe key is its target).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoggedDetection {
    pub event: StoredEvent,
    /// The retraction's seq and body.
    pub retraction: Option<(i64, Retraction)>,
}

/// A page of stored items: every feed's copy of a run of item keys, in key
/// then feed order, and every detection the log holds for those keys.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ItemPage {
    pub items: Vec<StoredItem>,
    pub detections: Vec<LoggedDetection>,
}

impl ItemPage {
    /// The highest item key on the page; the next page starts after it.
    pub fn last_key(&self) -> Option<&str> {
        self.items.last().map(|i| i.key.as_str())
    }
}

const STATE_COLUMNS: &str = "feed_id, url, etag, last_modified, last_attempt, last_success, last_status, last_error, consecutive_failures, next_poll, gone, moved_to, last_item_at, failing_since, failing_alerted, stale_since";

fn state_from(r: &rusqlite::Row<'_>) -> rusqlite::Result<FeedState> {
    let time = |i: usize| -> rusqlite::Result<Option<DateTime<Utc>>> {
        r.get::<_, Option<String>>(i)?
            .map(|s| parse_timestamp(&s))
            .transpose()
    };
    Ok(FeedState {
        feed_id: r.get(0)?,
        url: r.get(1)?,
        etag: r.get(2)?,
        last_modified: r.get(3)?,
        last_attempt: time(4)?,
        last_success: time(5)?,
        last_status: r.get(6)?,
        last_error: r.get(7)?,
        consecutive_failures: r.get(8)?,
        next_poll: time(9)?,
        gone: r.get(10)?,
        moved_to: r.get(11)?,
        last_item_at: time(12)?,
        failing_since: time(13)?,
        failing_alerted: r.get(14)?,
        stale_since: time(15)?,
    })
}

impl Store {
    pub fn feed_state(&self, feed_id: &str) -> Result<Option<FeedState>> {
        Ok(self
            .conn
            .prepare_cached(&format!(
                "SELECT {STATE_COLUMNS} FROM feed_state WHERE feed_id = ?1"
            ))?
            .query_row([feed_id], state_from)
            .optional()?)
    }

    pub fn feed_states(&self) -> Result<Vec<FeedState>> {
        let mut stmt = self.conn.prepare(&format!(
            "SELECT {STATE_COLUMNS} FROM feed_state ORDER BY feed_id"
        ))?;
        let rows = stmt.query_map([], state_from)?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// For each item, whether it is new or changed for this feed (`None`
    /// when already seen with the same content).
    ///
    /// The lookups read only the `items_seen` index (migration 0009), never
    /// an item's text, and share one read transaction: one lock and one
    /// check of the log per feed rather than per item.
    pub fn item_changes(&self, feed_id: &str, items: &[Item]) -> Result<Vec<Option<ItemChange>>> {
        let tx = self.conn.unchecked_transaction()?;
        let changes = {
            let mut stmt = tx.prepare_cached(
                "SELECT content_hash FROM items INDEXED BY items_seen WHERE feed_id = ?1 AND item_key = ?2",
            )?;
            items
                .iter()
                .map(|item| {
                    let stored: Option<String> = stmt
                        .query_row([feed_id, &item.key], |r| r.get(0))
                        .optional()?;
                    Ok(match stored {
                        None => Some(ItemChange::New),
                        Some(h) if h != item.content_hash => Some(ItemChange::Changed),
                        Some(_) => None,
                    })
                })
                .collect::<Result<Vec<_>>>()?
        };
        // Nothing was written: ending the transaction only lets go of the
        // read snapshot.
        tx.commit()?;
        Ok(changes)
    }

    /// Records one poll of a feed: its new state, the items that were new or
    /// changed, and the events the poll produced (detections, source-health
    /// alerts) — atomically.
    pub fn commit_feed(
        &mut self,
        state: &FeedState,
        items: &[&Item],
        events: &[NewEvent],
        policy: &Policy,
        now: DateTime<Utc>,
    ) -> Result<AppendOutcome> {
        let tx = self.conn.transaction()?;
        let outcome = commit_in(&tx, state, items.iter().copied(), events, policy, now)?;
        tx.commit()?;
        Ok(outcome)
    }

    /// Records the polls of several feeds in one transaction, so a batch
    /// costs one fsync rather than one per feed: each feed's state, items
    /// and events as `commit_feed` writes them, in order. All or nothing:
    /// on an error no feed of the batch is recorded.
    pub fn commit_feeds(
        &mut self,
        feeds: &[FeedCommit<'_>],
        policy: &Policy,
    ) -> Result<Vec<AppendOutcome>> {
        let tx = self.conn.transaction()?;
        let outcomes = feeds
            .iter()
            .map(|f| commit_in(&tx, f.state, f.items.iter(), f.events, policy, f.now))
            .collect::<Result<Vec<_>>>()?;
        tx.commit()?;
        Ok(outcomes)
    }

    /// Reads the next page of stored items (the `limit` item keys after
    /// `after`; start with ""), hands it to `correct`, and appends what that
    /// returns as a correction of the record: the status changes it causes
    /// are recorded as backfill and never mailed. `None` past the last item.
    ///
    /// Reading and appending share one write transaction, taken at the
    /// start, so a daemon ingesting meanwhile cannot slip an event between
    /// what `correct` saw and what it appends.
    pub fn correct_items(
        &mut self,
        after: &str,
        limit: usize,
        policy: &Policy,
        now: DateTime<Utc>,
        correct: impl FnOnce(&ItemPage) -> Vec<NewEvent>,
    ) -> Result<Option<(ItemPage, AppendOutcome)>> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let page = read_item_page(&tx, after, limit)?;
        if page.items.is_empty() {
            return Ok(None);
        }
        let events = correct(&page);
        let outcome = append_in(&tx, &events, policy, now, Cause::Correction)?;
        tx.commit()?;
        Ok(Some((page, outcome)))
    }
}

/// One feed's poll inside a write transaction (`commit_feed`, `commit_feeds`).
fn commit_in<'a>(
    tx: &Transaction<'_>,
    state: &FeedState,
    items: impl Iterator<Item = &'a Item>,
    events: &[NewEvent],
    policy: &Policy,
    now: DateTime<Utc>,
) -> Result<AppendOutcome> {
    {
        let mut upsert = tx.prepare_cached(
            "INSERT INTO items (feed_id, item_key, content_hash, title, link, published, body, first_seen, last_changed)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?8)
             ON CONFLICT (feed_id, item_key) DO UPDATE SET
               content_hash = excluded.content_hash, title = excluded.title, link = excluded.link,
               published = excluded.published, body = excluded.body, last_changed = excluded.last_changed",
        )?;
        for item in items {
            upsert.execute(params![
                state.feed_id,
                item.key,
                item.content_hash,
                item.title,
                item.link,
                item.published.map(timestamp),
                item.text,
                timestamp(now),
            ])?;
        }
    }
    let outcome = append_in(tx, events, policy, now, Cause::News)?;
    write_state(tx, state)?;
    Ok(outcome)
}

pub(super) fn read_item_page(
    conn: &rusqlite::Connection,
    after: &str,
    limit: usize,
) -> Result<ItemPage> {
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let mut stmt = conn.prepare_cached(
        "SELECT feed_id, item_key, title, link, published, body, first_seen, last_changed FROM items
         WHERE item_key IN (SELECT DISTINCT item_key FROM items WHERE item_key > ?1 ORDER BY item_key LIMIT ?2)
         ORDER BY item_key, feed_id",
    )?;
    let time = |r: &rusqlite::Row<'_>, i: usize| parse_timestamp(&r.get::<_, String>(i)?);
    let items = stmt
        .query_map(params![after, limit], |r| {
            Ok(StoredItem {
                feed_id: r.get(0)?,
                key: r.get(1)?,
                title: r.get(2)?,
                link: r.get(3)?,
                published: r
                    .get::<_, Option<String>>(4)?
                    .map(|s| parse_timestamp(&s))
                    .transpose()?,
                text: r.get(5)?,
                first_seen: time(r, 6)?,
                last_changed: time(r, 7)?,
            })
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    let (Some(first), Some(last)) = (items.first(), items.last()) else {
        return Ok(ItemPage::default());
    };
    // The page holds every key in [first, last], so a range finds exactly
    // their detections. The json_extract expressions match the indexes of
    // migration 0005. Without statistics the planner would rather walk
    // every detection in `events_by_kind`, hence INDEXED BY; and `+d.seq`
    // drops the column's integer affinity, which would otherwise keep the
    // comparison from using the retraction index.
    let mut stmt = conn.prepare_cached(
        "SELECT d.seq, d.occurred_at, d.recorded_at, d.payload, r.seq, r.payload
         FROM events d INDEXED BY events_detection_item
         LEFT JOIN events r
           ON r.kind = 'retracted' AND json_extract(r.payload, '$.target_seq') = +d.seq
         WHERE d.kind = 'detection' AND json_extract(d.payload, '$.item_key') BETWEEN ?1 AND ?2
         ORDER BY d.seq",
    )?;
    let rows = stmt.query_map([&first.key, &last.key], |r| {
        Ok((
            (r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?),
            r.get::<_, Option<i64>>(4)?,
            r.get::<_, Option<String>>(5)?,
        ))
    })?;
    let mut detections = Vec::new();
    for row in rows {
        let (raw, retraction_seq, retraction_payload) = row?;
        let event = decode(raw)?;
        let retraction = match (retraction_seq, retraction_payload) {
            (Some(seq), Some(payload)) => {
                match EventBody::from_json(&payload)
                    .map_err(|source| StoreError::Payload { seq, source })?
                {
                    EventBody::Retracted(r) => Some((seq, r)),
                    _ => None,
                }
            }
            _ => None,
        };
        detections.push(LoggedDetection { event, retraction });
    }
    Ok(ItemPage { items, detections })
}

pub(super) fn write_state(conn: &rusqlite::Connection, s: &FeedState) -> Result<()> {
    conn.prepare_cached(&format!(
        "INSERT OR REPLACE INTO feed_state ({STATE_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16)"
    ))?
    .execute(params![
        s.feed_id,
        s.url,
        s.etag,
        s.last_modified,
        s.last_attempt.map(timestamp),
        s.last_success.map(timestamp),
        s.last_status,
        s.last_error,
        s.consecutive_failures,
        s.next_poll.map(timestamp),
        s.gone,
        s.moved_to,
        s.last_item_at.map(timestamp),
        s.failing_since.map(timestamp),
        s.failing_alerted,
        s.stale_since.map(timestamp),
    ])?;
    Ok(())
}

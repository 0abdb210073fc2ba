//! Feed health, conditional-GET validators and the items seen per feed.
//!
//! `commit_feed` is the one write of an ingest: the feed's new state, its new
//! or changed items and the events they produced go in one transaction, so a
//! crash can never record an item as seen without its detections.

use chrono::{DateTime, Utc};
use rusqlite::{OptionalExtension, params};

use super::log::{AppendOutcome, append_in};
use super::{Result, Store, parse_timestamp, timestamp};
use crate::domain::{NewEvent, Policy};
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
    pub fn item_changes(&self, feed_id: &str, items: &[Item]) -> Result<Vec<Option<ItemChange>>> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT content_hash FROM items WHERE feed_id = ?1 AND item_key = ?2",
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
            .collect()
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
        let outcome = append_in(&tx, events, policy, now)?;
        write_state(&tx, state)?;
        tx.commit()?;
        Ok(outcome)
    }
}

fn write_state(conn: &rusqlite::Connection, s: &FeedState) -> Result<()> {
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

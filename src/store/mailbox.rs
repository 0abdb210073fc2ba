//! The messages read from each `[[mailbox]]`, so each is processed once,
//! and the one write of a mailbox read: its health, its messages and the
//! detections they made, in one transaction (as `commit_feed` for a feed);
//! and the depositary notices in the log, for what they confirm.

use chrono::{DateTime, Utc};
use rusqlite::{OptionalExtension, params};

use super::feeds::write_state;
use super::log::{AppendOutcome, Cause, append_in, decode, raw_row};
use super::{FeedState, Result, Store, timestamp};
use crate::domain::{NewEvent, Policy};

/// What a message turned out to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MessageOutcome {
    /// A notice of an action that moves a status.
    Notification,
    /// A notice that changes no status (a reservation, an objection).
    NoStatus,
    /// A notice about a treaty or state the catalogue cannot map.
    Unmapped,
    /// Not a notice the depositary's reader recognises.
    Unrecognised,
}

impl MessageOutcome {
    fn as_str(self) -> &'static str {
        match self {
            MessageOutcome::Notification => "notification",
            MessageOutcome::NoStatus => "no_status",
            MessageOutcome::Unmapped => "unmapped",
            MessageOutcome::Unrecognised => "unrecognised",
        }
    }
}

/// One message as recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeenMessage {
    /// The Message-ID, or "sha256:<hash>" for a message without one.
    pub key: String,
    pub content_hash: String,
    pub outcome: MessageOutcome,
    pub reference: Option<String>,
    pub subject: Option<String>,
    pub note: Option<String>,
}

/// How many messages of each kind a mailbox has had, for `status`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MailboxCounts {
    pub notifications: u64,
    pub no_status: u64,
    pub unmapped: u64,
    pub unrecognised: u64,
}

impl Store {
    /// Every depositary notice in the log (authoritative detections whose
    /// rule is `depositary:…`) and every retraction, in log order: what
    /// `depositary::confirm::notices` needs to say which stages a notice
    /// confirms, read in one pass for a whole board or digest.
    pub fn depositary_notices(&self) -> Result<Vec<crate::domain::StoredEvent>> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT seq, occurred_at, recorded_at, payload FROM events
             WHERE (kind = 'detection' AND json_extract(payload, '$.authoritative')
                    AND substr(json_extract(payload, '$.rule'), 1, 11) = 'depositary:')
                OR kind = 'retracted'
             ORDER BY seq",
        )?;
        let rows = stmt.query_map([], raw_row)?;
        rows.map(|r| decode(r?)).collect()
    }

    /// Whether this message (key and content) was processed already.
    pub fn message_seen(&self, mailbox_id: &str, key: &str, content_hash: &str) -> Result<bool> {
        Ok(self
            .conn
            .prepare_cached(
                "SELECT 1 FROM mailbox_messages WHERE mailbox_id = ?1 AND message_key = ?2 AND content_hash = ?3",
            )?
            .query_row([mailbox_id, key, content_hash], |_| Ok(()))
            .optional()?
            .is_some())
    }

    pub fn mailbox_counts(&self, mailbox_id: &str) -> Result<MailboxCounts> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT outcome, count(*) FROM mailbox_messages WHERE mailbox_id = ?1 GROUP BY outcome",
        )?;
        let mut counts = MailboxCounts::default();
        let rows = stmt.query_map([mailbox_id], |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?))
        })?;
        for row in rows {
            let (outcome, n) = row?;
            let n = u64::try_from(n).unwrap_or(0);
            match outcome.as_str() {
                "notification" => counts.notifications = n,
                "no_status" => counts.no_status = n,
                "unmapped" => counts.unmapped = n,
                _ => counts.unrecognised += n,
            }
        }
        Ok(counts)
    }

    /// Records one read of a mailbox: its new health state, the messages
    /// processed and the events they made (detections, source-health
    /// alerts), atomically: a crash never marks a message processed
    /// without its detections.
    pub fn commit_mailbox(
        &mut self,
        state: &FeedState,
        messages: &[SeenMessage],
        events: &[NewEvent],
        policy: &Policy,
        now: DateTime<Utc>,
    ) -> Result<AppendOutcome> {
        let tx = self.conn.transaction()?;
        {
            let mut insert = tx.prepare_cached(
                "INSERT OR IGNORE INTO mailbox_messages (mailbox_id, message_key, content_hash, seen_at, outcome, reference, subject, note)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            )?;
            for m in messages {
                insert.execute(params![
                    state.feed_id,
                    m.key,
                    m.content_hash,
                    timestamp(now),
                    m.outcome.as_str(),
                    m.reference,
                    m.subject,
                    m.note,
                ])?;
            }
        }
        let outcome = append_in(&tx, events, policy, now, Cause::News)?;
        write_state(&tx, state)?;
        tx.commit()?;
        Ok(outcome)
    }
}

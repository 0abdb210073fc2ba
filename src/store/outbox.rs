//! The notifier's outbox tables: its cursor into the log, the status changes
//! and source-health alerts each recipient is still owed, and the frozen
//! digests that carry them.
//!
//! This file only stores and reads; when something is due, how it is batched
//! and how it is sent are `notify`'s business. Delivery is recorded as a
//! `digest_sent` event in the log in the same transaction that marks the
//! digest sent, so the two can never disagree.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use rusqlite::{TransactionBehavior, params};

use super::log::{decode, insert, raw_row};
use super::{Result, Store, parse_timestamp, timestamp};
use crate::domain::{DigestRefused, DigestSent, EventBody, NewEvent, StoredEvent};

/// How long a begun delivery attempt keeps its batch from being claimed
/// again by another process: longer than an attempt may take (a delivery
/// gives up after three waits of `[notify.smtp] timeout`, at most 10 min
/// each). A crashed attempt does not wait it out: a process that opens the
/// store for writing holds the writer lock, so it releases every earlier
/// claim.
pub const ATTEMPT_LEASE: Duration = Duration::from_secs(45 * 60);

/// What `begin_attempt` writes as the last error until an outcome is recorded.
const IN_FLIGHT: &str = "attempt started; no outcome recorded (the process stopped?)";
/// What an attempt's claim becomes when a later writer finds it unfinished.
const INTERRUPTED: &str = "the last attempt was interrupted (the process stopped); resent at once";

/// A status change (or source-health alert) routed to one recipient.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueuedChange {
    /// The event's sequence number.
    pub change_seq: i64,
    /// The bare, lower-cased address: the recipient's identity.
    pub recipient: String,
    /// The recipient marked the new stage urgent: no debounce.
    pub urgent: bool,
    /// When the change was recorded; the debounce window starts here.
    pub queued_at: DateTime<Utc>,
}

/// A digest about to be frozen: composed, not yet attempted.
#[derive(Debug, Clone)]
pub struct NewBatch<'a> {
    pub recipient: &'a str,
    /// The status changes it reports, all queued for `recipient`.
    pub changes: &'a [i64],
    pub message_id: &'a str,
    pub envelope_from: &'a str,
    /// The whole RFC 5322 message.
    pub message: &'a [u8],
    pub subject: &'a str,
}

/// A frozen digest for one recipient, sent or still pending.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Batch {
    pub id: i64,
    pub recipient: String,
    pub first_seq: i64,
    pub last_seq: i64,
    /// Sequence numbers of the status changes it reports, ascending.
    pub changes: Vec<i64>,
    pub message_id: String,
    pub envelope_from: String,
    pub message: Vec<u8>,
    pub subject: String,
    pub created_at: DateTime<Utc>,
    /// Delivery attempts that failed so far. One a stop or crash
    /// interrupted is not counted: it earns no backoff.
    pub attempts: u32,
    pub next_attempt_at: DateTime<Utc>,
    pub last_error: Option<String>,
}

/// Mail not delivered yet, per recipient: what `status` lists and
/// `treatywatch_digests_pending` counts.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Undelivered {
    pub recipients: Vec<RecipientMail>,
}

/// One recipient's undelivered mail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecipientMail {
    pub recipient: String,
    /// Frozen digests not delivered yet, oldest first.
    pub digests: Vec<PendingDigest>,
    /// Changes and alerts routed to them and not in a digest yet.
    pub queued: usize,
    pub oldest_queued: Option<DateTime<Utc>>,
}

/// A frozen digest not delivered yet (without its bytes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingDigest {
    pub message_id: String,
    pub subject: String,
    pub created_at: DateTime<Utc>,
    /// Failed attempts so far.
    pub attempts: u32,
    pub next_attempt_at: DateTime<Utc>,
    pub last_error: Option<String>,
    pub changes: usize,
}

impl Undelivered {
    /// Digests waiting: every frozen one, and one more for each recipient
    /// with queued changes (they will make one digest).
    pub fn digests(&self) -> usize {
        self.recipients
            .iter()
            .map(|r| r.digests.len() + usize::from(r.queued > 0))
            .sum()
    }
}

impl Store {
    /// Every recipient's undelivered mail, by recipient.
    pub fn undelivered(&self) -> Result<Undelivered> {
        let mut by_recipient: BTreeMap<String, RecipientMail> = BTreeMap::new();
        fn entry(
            map: &mut BTreeMap<String, RecipientMail>,
            recipient: String,
        ) -> &mut RecipientMail {
            map.entry(recipient.clone())
                .or_insert_with(|| RecipientMail {
                    recipient,
                    digests: Vec::new(),
                    queued: 0,
                    oldest_queued: None,
                })
        }
        let mut stmt = self.conn.prepare_cached(
            "SELECT b.recipient, b.message_id, b.subject, b.created_at, b.attempts,
                    b.next_attempt_at, b.last_error,
                    (SELECT count(*) FROM outbox o WHERE o.batch_id = b.id)
             FROM digest_batch b WHERE b.sent_seq IS NULL ORDER BY b.recipient, b.id",
        )?;
        let rows = stmt.query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                PendingDigest {
                    message_id: r.get(1)?,
                    subject: r.get(2)?,
                    created_at: parse_timestamp(&r.get::<_, String>(3)?)?,
                    attempts: r.get(4)?,
                    next_attempt_at: parse_timestamp(&r.get::<_, String>(5)?)?,
                    last_error: r.get(6)?,
                    changes: usize::try_from(r.get::<_, i64>(7)?).unwrap_or(0),
                },
            ))
        })?;
        for row in rows {
            let (recipient, digest) = row?;
            entry(&mut by_recipient, recipient).digests.push(digest);
        }
        let mut stmt = self.conn.prepare_cached(
            "SELECT recipient, count(*), min(queued_at) FROM outbox
             WHERE batch_id IS NULL GROUP BY recipient",
        )?;
        let rows = stmt.query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                usize::try_from(r.get::<_, i64>(1)?).unwrap_or(0),
                parse_timestamp(&r.get::<_, String>(2)?)?,
            ))
        })?;
        for row in rows {
            let (recipient, queued, oldest) = row?;
            let mail = entry(&mut by_recipient, recipient);
            mail.queued = queued;
            mail.oldest_queued = Some(oldest);
        }
        Ok(Undelivered {
            recipients: by_recipient.into_values().collect(),
        })
    }

    /// The last sequence number the notifier has routed.
    pub fn notify_cursor(&self) -> Result<i64> {
        Ok(self
            .conn
            .query_row("SELECT last_seq FROM notify_cursor WHERE id = 1", [], |r| {
                r.get(0)
            })?)
    }

    /// The events the notifier mails — status changes, source-health
    /// alerts and refused digests — with `seq > after`, oldest first, at
    /// most `limit`.
    pub fn notifiable_after(&self, after: i64, limit: usize) -> Result<Vec<StoredEvent>> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT seq, occurred_at, recorded_at, payload FROM events
             WHERE kind IN ('status_changed', 'source_health', 'digest_refused') AND kind != 'detection'
               AND seq > ?1
             ORDER BY seq LIMIT ?2",
        )?;
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let rows = stmt.query_map(params![after, limit], raw_row)?;
        rows.map(|r| decode(r?)).collect()
    }

    /// Queues `entries` (ones already queued are skipped) and moves the
    /// cursor to `cursor`, in one transaction: a change is routed once.
    /// Returns how many entries were new.
    pub fn enqueue(&mut self, entries: &[QueuedChange], cursor: i64) -> Result<usize> {
        let tx = self.conn.transaction()?;
        let mut added = 0;
        {
            let mut stmt = tx.prepare_cached(
                "INSERT INTO outbox (change_seq, recipient, urgent, queued_at) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (change_seq, recipient) DO NOTHING",
            )?;
            for e in entries {
                added += stmt.execute(params![
                    e.change_seq,
                    e.recipient,
                    e.urgent,
                    timestamp(e.queued_at)
                ])?;
            }
        }
        tx.execute(
            "UPDATE notify_cursor SET last_seq = max(last_seq, ?1) WHERE id = 1",
            [cursor],
        )?;
        tx.commit()?;
        Ok(added)
    }

    /// Queued changes not yet in any digest, by recipient then log order.
    pub fn queued(&self) -> Result<Vec<QueuedChange>> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT change_seq, recipient, urgent, queued_at FROM outbox
             WHERE batch_id IS NULL ORDER BY recipient, change_seq",
        )?;
        let rows = stmt.query_map([], |r| {
            Ok(QueuedChange {
                change_seq: r.get(0)?,
                recipient: r.get(1)?,
                urgent: r.get(2)?,
                queued_at: parse_timestamp(&r.get::<_, String>(3)?)?,
            })
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// Digests frozen but not yet delivered, by recipient then age.
    pub fn pending_batches(&self) -> Result<Vec<Batch>> {
        self.batches("WHERE sent_seq IS NULL ORDER BY recipient, id", [])
    }

    /// One digest by its Message-ID, sent or not.
    pub fn batch_by_message_id(&self, message_id: &str) -> Result<Option<Batch>> {
        Ok(self
            .batches("WHERE message_id = ?1", [message_id])?
            .into_iter()
            .next())
    }

    fn batches<P: rusqlite::Params>(&self, filter: &str, params: P) -> Result<Vec<Batch>> {
        let mut stmt = self.conn.prepare_cached(&format!(
            "SELECT id, recipient, first_seq, last_seq, message_id, envelope_from, message, subject,
                    created_at, attempts, next_attempt_at, last_error
             FROM digest_batch {filter}"
        ))?;
        let rows = stmt.query_map(params, |r| {
            Ok(Batch {
                id: r.get(0)?,
                recipient: r.get(1)?,
                first_seq: r.get(2)?,
                last_seq: r.get(3)?,
                changes: Vec::new(),
                message_id: r.get(4)?,
                envelope_from: r.get(5)?,
                message: r.get(6)?,
                subject: r.get(7)?,
                created_at: parse_timestamp(&r.get::<_, String>(8)?)?,
                attempts: r.get(9)?,
                next_attempt_at: parse_timestamp(&r.get::<_, String>(10)?)?,
                last_error: r.get(11)?,
            })
        })?;
        let mut batches: Vec<Batch> = rows.collect::<rusqlite::Result<_>>()?;
        let mut changes = self.conn.prepare_cached(
            "SELECT change_seq FROM outbox WHERE batch_id = ?1 ORDER BY change_seq",
        )?;
        for b in &mut batches {
            b.changes = changes
                .query_map([b.id], |r| r.get(0))?
                .collect::<rusqlite::Result<_>>()?;
        }
        Ok(batches)
    }

    /// Freezes a composed digest: from now on its changes belong to it and a
    /// retry sends exactly `new.message`. It is due at once (`now`).
    ///
    /// Claiming is atomic: in one immediate transaction the batch is
    /// inserted and each change is taken only if no batch has it yet. When
    /// another process froze any of them first (or the same Message-ID),
    /// nothing is written and `None` is returned: the caller lost the race
    /// and must not send.
    pub fn freeze_batch(
        &mut self,
        new: &NewBatch<'_>,
        now: DateTime<Utc>,
    ) -> Result<Option<Batch>> {
        let first_seq = new.changes.iter().copied().min().unwrap_or(0);
        let last_seq = new.changes.iter().copied().max().unwrap_or(0);
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let inserted = tx.execute(
            "INSERT INTO digest_batch (recipient, first_seq, last_seq, message_id, envelope_from,
                                       message, subject, created_at, next_attempt_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?8)
             ON CONFLICT (message_id) DO NOTHING",
            params![
                new.recipient,
                first_seq,
                last_seq,
                new.message_id,
                new.envelope_from,
                new.message,
                new.subject,
                timestamp(now)
            ],
        )?;
        if inserted == 0 {
            return Ok(None);
        }
        let id = tx.last_insert_rowid();
        {
            let mut stmt = tx.prepare_cached(
                "UPDATE outbox SET batch_id = ?1
                 WHERE change_seq = ?2 AND recipient = ?3 AND batch_id IS NULL",
            )?;
            for seq in new.changes {
                if stmt.execute(params![id, seq, new.recipient])? == 0 {
                    // Already in another batch: dropping `tx` undoes the insert.
                    return Ok(None);
                }
            }
        }
        tx.commit()?;
        let mut changes = new.changes.to_vec();
        changes.sort_unstable();
        Ok(Some(Batch {
            id,
            recipient: new.recipient.to_string(),
            first_seq,
            last_seq,
            changes,
            message_id: new.message_id.to_string(),
            envelope_from: new.envelope_from.to_string(),
            message: new.message.to_vec(),
            subject: new.subject.to_string(),
            created_at: now,
            attempts: 0,
            next_attempt_at: now,
            last_error: None,
        }))
    }

    /// Claims `batch` for a delivery attempt, before the attempt starts; a
    /// claim is one conditional UPDATE, so of two processes trying the same
    /// batch exactly one wins. It fails (`false`: do not send) when the
    /// batch was sent, or failed an attempt since `batch` was read, or another
    /// attempt holds it (for `ATTEMPT_LEASE`). If the process dies
    /// mid-attempt (a restart, an upgrade, a kill), the next writer releases
    /// the claim when it opens the store, so the batch is resent at once with
    /// the same Message-ID instead of waiting out a backoff no server asked
    /// for. systemd's RestartSec bounds a crash loop.
    pub fn begin_attempt(&mut self, batch: &Batch, now: DateTime<Utc>) -> Result<bool> {
        let lease = TimeDelta::from_std(ATTEMPT_LEASE).unwrap_or(TimeDelta::MAX);
        let held_until = now
            .checked_add_signed(lease)
            .unwrap_or(DateTime::<Utc>::MAX_UTC);
        let claimed = self.conn.execute(
            "UPDATE digest_batch SET last_error = ?3, next_attempt_at = ?4
             WHERE id = ?1 AND attempts = ?2 AND sent_seq IS NULL
               AND NOT (last_error IS ?3 AND next_attempt_at > ?5)",
            params![
                batch.id,
                batch.attempts,
                IN_FLIGHT,
                super::timestamp(held_until),
                super::timestamp(now)
            ],
        )?;
        Ok(claimed == 1)
    }

    /// Makes every batch whose attempt began and never recorded an outcome
    /// due at once (as of when it was frozen, so any later claim may take
    /// it). Called when a writer opens the store: it holds the writer lock,
    /// so those attempts belong to processes that are gone.
    pub(super) fn release_interrupted_attempts(&mut self) -> Result<usize> {
        Ok(self.conn.execute(
            "UPDATE digest_batch SET next_attempt_at = created_at, last_error = ?2
             WHERE sent_seq IS NULL AND last_error IS ?1",
            params![IN_FLIGHT, INTERRUPTED],
        )?)
    }

    /// Records why an attempt failed and when to try again, and counts the
    /// failure; the batch stays pending.
    pub fn record_failure(
        &mut self,
        batch_id: i64,
        error: &str,
        next_attempt_at: DateTime<Utc>,
    ) -> Result<()> {
        self.conn.execute(
            "UPDATE digest_batch SET attempts = attempts + 1, last_error = ?2, next_attempt_at = ?3
             WHERE id = ?1",
            params![batch_id, error, timestamp(next_attempt_at)],
        )?;
        Ok(())
    }

    /// Records a refusal for good: appends the `digest_refused` event and
    /// closes the batch with it (`sent_seq` then names the refusal, not a
    /// delivery: the batch is done either way), in one transaction. Returns
    /// the event's sequence number.
    pub fn record_refused(
        &mut self,
        batch: &Batch,
        refused: DigestRefused,
        now: DateTime<Utc>,
    ) -> Result<i64> {
        let error = refused.error.clone();
        let event = NewEvent {
            occurred_at: now,
            body: EventBody::DigestRefused(refused),
        };
        let tx = self.conn.transaction()?;
        let seq = match insert(&tx, &event, now)? {
            Some(seq) => seq,
            None => tx.query_row(
                "SELECT seq FROM events WHERE dedupe_key = ?1",
                [event.body.dedupe_key(now)],
                |r| r.get(0),
            )?,
        };
        tx.execute(
            "UPDATE digest_batch SET sent_seq = ?2, last_error = ?3, attempts = attempts + 1
             WHERE id = ?1",
            params![batch.id, seq, error],
        )?;
        tx.commit()?;
        Ok(seq)
    }

    /// `record_failure`, and the `digest_refused` event that tells the
    /// admins the recipient was refused (appended once per digest: its
    /// dedupe key is the Message-ID), in one transaction.
    pub fn record_refused_recipient(
        &mut self,
        batch_id: i64,
        error: &str,
        next_attempt_at: DateTime<Utc>,
        refused: DigestRefused,
        now: DateTime<Utc>,
    ) -> Result<()> {
        let event = NewEvent {
            occurred_at: now,
            body: EventBody::DigestRefused(refused),
        };
        let tx = self.conn.transaction()?;
        insert(&tx, &event, now)?;
        tx.execute(
            "UPDATE digest_batch SET attempts = attempts + 1, last_error = ?2, next_attempt_at = ?3
             WHERE id = ?1",
            params![batch_id, error, timestamp(next_attempt_at)],
        )?;
        tx.commit()?;
        Ok(())
    }

    /// The latest `limit` refused digests, newest first.
    pub fn refused_digests(&self, limit: usize) -> Result<Vec<StoredEvent>> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT seq, occurred_at, recorded_at, payload FROM events
             WHERE kind = 'digest_refused' AND kind != 'detection' ORDER BY seq DESC LIMIT ?1",
        )?;
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let rows = stmt.query_map([limit], raw_row)?;
        rows.map(|r| decode(r?)).collect()
    }

    /// Records delivery: appends the `digest_sent` event and marks the batch
    /// sent in one transaction. Returns the event's sequence number.
    pub fn record_sent(&mut self, batch: &Batch, now: DateTime<Utc>) -> Result<i64> {
        let event = NewEvent {
            occurred_at: now,
            body: EventBody::DigestSent(DigestSent {
                recipient: batch.recipient.clone(),
                first_seq: batch.first_seq,
                last_seq: batch.last_seq,
                changes: batch.changes.clone(),
                message_id: batch.message_id.clone(),
            }),
        };
        let tx = self.conn.transaction()?;
        let seq = match insert(&tx, &event, now)? {
            Some(seq) => seq,
            // Already recorded (the key is the Message-ID): keep that event.
            None => tx.query_row(
                "SELECT seq FROM events WHERE dedupe_key = ?1",
                [event.body.dedupe_key(now)],
                |r| r.get(0),
            )?,
        };
        tx.execute(
            "UPDATE digest_batch SET sent_seq = ?2, last_error = NULL WHERE id = ?1",
            params![batch.id, seq],
        )?;
        tx.commit()?;
        Ok(seq)
    }
}

//! The outbox: from status changes and source-health alerts in the log to
//! digests delivered exactly once per recipient. An alert travels exactly
//! like a change (below, "change" means either): routed, batched in the same
//! debounce window, frozen, retried, recorded.
//!
//! One pass (`run_pending`) does three things, each committed before the
//! next begins:
//!
//! 1. **Route.** Status changes past the notifier's cursor are turned into
//!    outbox entries, one per (change, recipient), and the cursor moves, in
//!    one transaction. Backfilled changes go to no one.
//! 2. **Batch.** A recipient's waiting entries become due when the oldest
//!    has waited the debounce window, when any is urgent for them, or at
//!    once with `Flush::Now`. Due entries are composed into one digest that
//!    is frozen (message bytes and Message-ID stored) before it is tried.
//! 3. **Deliver.** The attempt is counted before it starts; success is
//!    recorded as a `digest_sent` event in the same transaction that marks
//!    the batch sent. A failure leaves the batch pending until its next
//!    attempt time (exponential backoff); a recipient's newer changes wait
//!    behind their undelivered batch so digests arrive in order.
//!
//! A webhook (`[[notify.webhook]]`) is one more recipient: routed, debounced,
//! claimed and recorded the same way, but each of its changes is frozen as
//! a request of its own (`webhook::build`: a receiver is posted one change
//! at a time, each under the idempotency key of its (change, recipient)),
//! all of a due run at once, and then delivered one after another in order.
//!
//! Crash anywhere: before step 1 commits, the changes are routed next time;
//! between freezing and recording, the next pass resends the frozen bytes
//! at once (an interrupted attempt is not a failure and earns no backoff),
//! so the recipient sees the same Message-ID twice at worst, never two
//! different digests and never nothing.
//!
//! Refusals: a digest refused for good (a 5xx reply to DATA or to the
//! message) is closed by a `digest_refused` event instead of retried; its
//! changes go to the recipient once more in brief ("Not delivered
//! earlier", never carried twice, so refusals cannot loop) and to the
//! admins as a delivery alert. A webhook's refusal (a 4xx) alerts the
//! admins and carries nothing. A refused recipient (5xx before DATA) stays
//! pending and retried, and the admins hear of it once.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};

use super::NotifyError;
use super::compose::{Digest, Form, Snapshot, compose, compose_in};
use super::message;
use super::route::{Routes, bare_address};
use super::transport::{self, DeliveryError, Outgoing, Transport};
use super::webhook::{self, BlockingPoster};
use crate::config::{Config, Webhook};
use crate::domain::{DigestRefused, EventBody, StoredEvent};
use crate::store::{Batch, NewBatch, QueuedChange, Store};

/// Wait after the first failed attempt; each further failure doubles it.
pub const RETRY_FIRST: Duration = Duration::from_secs(60);
/// The longest wait between two attempts: a digest is never given up on,
/// and one hour is the most a recovered mail server should wait for news.
pub const RETRY_MAX: Duration = Duration::from_secs(60 * 60);

/// Fault injection for the crash test: when set, the process aborts right
/// after the mail server accepted a digest and before that is recorded —
/// the one window a crash can cause a resend. Never set it in production.
pub const CRASH_AFTER_ACCEPT_ENV: &str = "TREATYWATCH_FAULT_CRASH_AFTER_ACCEPT";

/// Status changes are routed in pages of this many.
const PAGE: usize = 1000;

/// Whether the debounce window is honoured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flush {
    /// Send everything pending now, ignoring the debounce window and any
    /// retry backoff (`poll` at its end, `digest --send`).
    Now,
    /// Send only what is due: urgent stages, entries past the window,
    /// batches past their next attempt time (the daemon's timer).
    Debounced,
    /// Retry undelivered digests now, whatever their backoff says; new
    /// changes still wait for their window (the daemon after SIGHUP: a
    /// reload is when a mail setup gets fixed).
    Retry,
}

/// What one pass did.
#[derive(Debug, Default, Clone)]
pub struct NotifyReport {
    /// New (change, recipient) entries routed into the outbox.
    pub routed: usize,
    pub sent: Vec<SentDigest>,
    pub failed: Vec<FailedDigest>,
    /// Entries still waiting for their debounce window or behind a batch
    /// in backoff.
    pub waiting: usize,
    /// The earliest time something becomes due; the daemon's next wake-up.
    pub next_due: Option<DateTime<Utc>>,
    /// Entries for recipients no longer in the config; left unsent.
    pub unsubscribed: usize,
    /// The transport used, when one was needed.
    pub transport: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SentDigest {
    pub recipient: String,
    pub message_id: String,
    pub subject: String,
    pub covered: (i64, i64),
    pub changes: usize,
    /// The `digest_sent` event recording it.
    pub seq: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FailedDigest {
    pub recipient: String,
    /// `None` when the message could not even be built.
    pub message_id: Option<String>,
    pub error: String,
    /// A retry will not help without a change somewhere (a 5xx, a bad address).
    pub permanent: bool,
    /// `DeliveryError::reason`: "timeout", "refused", … ("build" when the
    /// message could not be made).
    pub reason: &'static str,
    pub next_attempt_at: Option<DateTime<Utc>>,
}

impl NotifyReport {
    fn due_at(&mut self, t: DateTime<Utc>) {
        self.next_due = Some(self.next_due.map_or(t, |d| d.min(t)));
    }
}

/// The wait after failed attempt number `attempt` (1-based): 1 min, 2, 4,
/// … capped at `RETRY_MAX`.
pub fn backoff(attempt: u32) -> Duration {
    let doublings = attempt.saturating_sub(1).min(20);
    RETRY_FIRST.saturating_mul(1u32 << doublings).min(RETRY_MAX)
}

/// One delivery the outbox wants made: a frozen digest, its attempt
/// already recorded as begun, and the address to send it to. Plain data,
/// so the daemon can hand it to a thread that does nothing but deliver.
#[derive(Debug, Clone)]
pub struct Delivery {
    pub batch: Batch,
    /// Envelope recipient (bare address); a webhook's URL.
    pub address: String,
    /// The webhook to post to, as configured when planned; `None` for mail.
    pub webhook: Option<Webhook>,
}

/// What one planning pass found to deliver, and what it saw.
#[derive(Debug, Default)]
pub struct Plan {
    pub deliveries: Vec<Delivery>,
    pub report: NotifyReport,
}

/// Routes every change past the cursor and picks, per recipient, the one
/// digest to deliver now: the oldest frozen batch when its backoff is over
/// (or at once with `Flush::Now`/`Flush::Retry`), else a new digest frozen
/// from the changes that are due. Every delivery returned has its attempt
/// claimed (`Store::begin_attempt`: a batch another process froze or is
/// delivering is left to it). Recipients in `skip` (a
/// delivery in flight, or one that failed in this pass) are left alone.
/// At most one delivery per recipient: digests arrive in order.
pub fn plan(
    store: &mut Store,
    config: &Config,
    now: DateTime<Utc>,
    flush: Flush,
    skip: &BTreeSet<String>,
) -> Result<Plan, NotifyError> {
    let routes = Routes::from_config(config);
    let mut plan = Plan {
        report: NotifyReport {
            routed: route_new(store, &routes)?,
            ..NotifyReport::default()
        },
        ..Plan::default()
    };
    let report = &mut plan.report;
    let debounce = TimeDelta::from_std(config.notify.debounce).unwrap_or(TimeDelta::MAX);
    let mut checked = false;
    let mut snapshot: Option<Snapshot> = None;

    for (key, (batches, queued)) in pending_by_recipient(store.pending_batches()?, store.queued()?)
    {
        let Some(recipient) = routes.recipient(&key) else {
            report.unsubscribed +=
                batches.iter().map(|b| b.changes.len()).sum::<usize>() + queued.len();
            continue;
        };
        if skip.contains(&key) {
            report.waiting += queued.len();
            continue;
        }
        let hook = recipient
            .webhook
            .and_then(|n| config.notify.webhooks.get(n));
        // Older digests first; a recipient's newer changes wait behind one
        // that is not delivered yet.
        if let Some(batch) = batches.into_iter().next() {
            report.waiting += queued.len();
            if flush == Flush::Debounced && batch.next_attempt_at > now {
                report.due_at(batch.next_attempt_at);
                continue;
            }
            if hook.is_none() {
                check_transport(&mut checked, config, report)?;
            }
            if !store.begin_attempt(&batch, now)? {
                // Another process claimed it (sent, or attempting it now).
                tracing::info!(recipient = %key, digest = %batch.message_id, "digest claimed by another process");
                continue;
            }
            plan.deliveries.push(Delivery {
                batch,
                address: recipient.address.clone(),
                webhook: hook.cloned(),
            });
            continue;
        }
        if queued.is_empty() {
            continue;
        }
        let oldest = queued.iter().map(|q| q.queued_at).min().unwrap_or(now);
        let window_ends = oldest
            .checked_add_signed(debounce)
            .unwrap_or(DateTime::<Utc>::MAX_UTC);
        let due = flush == Flush::Now || queued.iter().any(|q| q.urgent) || window_ends <= now;
        if !due {
            report.waiting += queued.len();
            report.due_at(window_ends);
            continue;
        }
        if let Some(hook) = hook {
            if let Some(delivery) = freeze_webhook(store, config, hook, recipient, &queued, now)? {
                plan.deliveries.push(delivery);
            }
            continue;
        }
        let events = load_changes(store, &queued)?;
        let snapshot = match &mut snapshot {
            Some(s) => &*s,
            None => snapshot.insert(read_snapshot(store, config)?),
        };
        let Some((digest, built)) =
            fitted(&events, config, snapshot, &key, &recipient.mailbox, now)
        else {
            continue;
        };
        let message = match built {
            Ok(m) => m,
            Err(e) => {
                tracing::warn!(recipient = %key, error = %e, "cannot build digest");
                report.failed.push(FailedDigest {
                    recipient: key.clone(),
                    message_id: None,
                    error: e.to_string(),
                    permanent: true,
                    reason: "build",
                    next_attempt_at: None,
                });
                continue;
            }
        };
        // Check first: a setup problem (no password) must not freeze
        // changes into a digest that later news could otherwise have joined.
        check_transport(&mut checked, config, report)?;
        let Some(batch) = store.freeze_batch(
            &NewBatch {
                recipient: &key,
                changes: &digest.changes,
                message_id: &digest.message_id,
                envelope_from: bare_address(&config.notify.from),
                message: &message,
                subject: &digest.subject,
            },
            now,
        )?
        else {
            // Another process froze these changes first; it delivers them.
            tracing::info!(recipient = %key, "digest already frozen by another process");
            continue;
        };
        if !store.begin_attempt(&batch, now)? {
            tracing::info!(recipient = %key, digest = %batch.message_id, "digest claimed by another process");
            continue;
        }
        plan.deliveries.push(Delivery {
            batch,
            address: recipient.address.clone(),
            webhook: None,
        });
    }
    Ok(plan)
}

/// Freezes each of a webhook's due changes as a request of its own, in log
/// order, and claims the first for delivery; the rest are pending batches,
/// due at once, that later passes deliver one by one behind it.
fn freeze_webhook(
    store: &mut Store,
    config: &Config,
    hook: &Webhook,
    recipient: &super::Recipient,
    queued: &[QueuedChange],
    now: DateTime<Utc>,
) -> Result<Option<Delivery>, NotifyError> {
    let mut first = None;
    for q in queued {
        let Some(event) = store.event(q.change_seq)? else {
            continue;
        };
        let Some(frozen) = webhook::build(hook, &recipient.key, &event, config) else {
            // Only status changes are routed to webhooks.
            tracing::warn!(recipient = %recipient.key, seq = q.change_seq, "not a status change; nothing to post");
            continue;
        };
        let Some(batch) = store.freeze_batch(
            &NewBatch {
                recipient: &recipient.key,
                changes: &[q.change_seq],
                message_id: &frozen.key,
                envelope_from: &frozen.kind,
                message: &frozen.request,
                subject: &frozen.subject,
            },
            now,
        )?
        else {
            tracing::info!(recipient = %recipient.key, "webhook request already frozen by another process");
            break;
        };
        first.get_or_insert(batch);
    }
    let Some(batch) = first else {
        return Ok(None);
    };
    if !store.begin_attempt(&batch, now)? {
        tracing::info!(recipient = %recipient.key, digest = %batch.message_id, "webhook request claimed by another process");
        return Ok(None);
    }
    Ok(Some(Delivery {
        batch,
        address: recipient.address.clone(),
        webhook: Some(hook.clone()),
    }))
}

/// The digest for `events` and its message, within `[notify]
/// max_digest_size`: in full when it fits, else brief (no feed text), and
/// if even that is too large, listing fewer changes (halving) until it
/// fits. Every form covers the same changes under the same Message-ID.
fn fitted(
    events: &[StoredEvent],
    config: &Config,
    snapshot: &Snapshot,
    key: &str,
    mailbox: &str,
    now: DateTime<Utc>,
) -> Option<(Digest, Result<Vec<u8>, NotifyError>)> {
    let max = usize::try_from(config.notify.max_digest_size).unwrap_or(usize::MAX);
    let build = |form| {
        let digest = compose_in(form, events, config, snapshot, key, now)?;
        let message = message::build(&digest, &config.notify, mailbox, now);
        Some((digest, message))
    };
    let full = build(Form::Full)?;
    if full.1.as_ref().is_ok_and(|m| m.len() <= max) || full.1.is_err() {
        return Some(full);
    }
    let mut listed = events.len();
    loop {
        let brief = build(Form::Brief { listed })?;
        let fits = brief.1.as_ref().is_ok_and(|m| m.len() <= max);
        if fits || listed <= 1 {
            if !fits {
                tracing::warn!(recipient = %key, max, "even a brief digest is larger than max_digest_size; sending it anyway");
            }
            return Some(brief);
        }
        listed /= 2;
    }
}

/// What digests show beside their changes: the status table, and the
/// reports still waiting for a second source.
fn read_snapshot(store: &Store, config: &Config) -> Result<Snapshot, NotifyError> {
    let policy = crate::domain::Policy {
        min_sources: config.treaties.min_sources(),
    };
    // Notices are read only when a mailbox can have delivered some.
    let notices = if config.mailboxes.is_empty() {
        Default::default()
    } else {
        crate::depositary::confirm::notices(&store.depositary_notices()?)
    };
    Ok(Snapshot {
        projection: store.projection()?,
        unconfirmed: store.unconfirmed(&policy)?,
        notices,
    })
}

/// Opens the transport once per pass, only to see that it can be opened
/// (a password that cannot be read is an error for the whole pass).
fn check_transport(
    checked: &mut bool,
    config: &Config,
    report: &mut NotifyReport,
) -> Result<(), NotifyError> {
    if !*checked {
        let t = transport::open(&config.notify)?;
        report.transport = Some(t.describe());
        *checked = true;
    }
    Ok(())
}

/// Delivers one planned digest: no store, no clock, only the transport.
/// This is what the daemon runs away from its writer thread.
pub fn deliver(transport: &mut dyn Transport, delivery: &Delivery) -> Result<(), DeliveryError> {
    let batch = &delivery.batch;
    let mail = Outgoing {
        from: &batch.envelope_from,
        to: &delivery.address,
        message_id: &batch.message_id,
        message: &batch.message,
    };
    transport.deliver(&mail)?;
    accepted(batch);
    Ok(())
}

/// Posts one planned webhook request (the daemon's courier awaits
/// `webhook::Poster::post` itself, then calls `accepted`).
pub fn deliver_webhook(poster: &BlockingPoster, delivery: &Delivery) -> Result<(), DeliveryError> {
    let Some(hook) = &delivery.webhook else {
        return Err(DeliveryError::Setup(
            "a mail digest handed to the webhook poster".into(),
        ));
    };
    poster.post(hook, &delivery.batch)?;
    accepted(&delivery.batch);
    Ok(())
}

/// The receiver took `batch`: the fault injection point of the crash tests.
pub fn accepted(batch: &Batch) {
    if std::env::var_os(CRASH_AFTER_ACCEPT_ENV).is_some() {
        eprintln!(
            "treatywatch: {CRASH_AFTER_ACCEPT_ENV} is set: aborting after the server accepted {}",
            batch.message_id
        );
        std::process::abort();
    }
}

/// Records the outcome of one delivery at `now`: sent (the `digest_sent`
/// event), or failed with the next attempt after the backoff its failures
/// so far earn. Adds it to `report`; `Ok(true)` when it was delivered.
pub fn record(
    store: &mut Store,
    delivery: &Delivery,
    outcome: Result<(), DeliveryError>,
    now: DateTime<Utc>,
    report: &mut NotifyReport,
) -> Result<bool, NotifyError> {
    let batch = &delivery.batch;
    match outcome {
        Ok(()) => {
            let seq = store.record_sent(batch, now)?;
            tracing::info!(
                recipient = %batch.recipient,
                digest = %batch.message_id,
                first_seq = batch.first_seq,
                last_seq = batch.last_seq,
                seq,
                "digest sent"
            );
            report.sent.push(SentDigest {
                recipient: batch.recipient.clone(),
                message_id: batch.message_id.clone(),
                subject: batch.subject.clone(),
                covered: (batch.first_seq, batch.last_seq),
                changes: batch.changes.len(),
                seq,
            });
            Ok(true)
        }
        Err(e) if e.refuses_message() => {
            let mut refused = refusal(store, batch, &e)?;
            if delivery.webhook.is_some() {
                // A receiver that refused a change would refuse a brief of
                // it too; the admins are told (`alert`), nothing is carried.
                refused.carry = false;
            }
            let (carry, alert, code) = (refused.carry, refused.alert, refused.code);
            let error = e.to_string();
            let seq = store.record_refused(batch, refused, now)?;
            tracing::warn!(
                recipient = %batch.recipient,
                digest = %batch.message_id,
                code,
                carry,
                alert,
                seq,
                error = %error,
                "digest refused by the server; not retried"
            );
            report.failed.push(FailedDigest {
                recipient: batch.recipient.clone(),
                message_id: Some(batch.message_id.clone()),
                error,
                permanent: true,
                reason: e.reason(),
                next_attempt_at: None,
            });
            // Its changes travel on in the next digest, not behind it.
            Ok(true)
        }
        Err(e) => {
            // Only failures count: an attempt a stop or crash interrupted
            // was never recorded here and earns no backoff.
            let failures = batch.attempts + 1;
            // A receiver that says when to come back (429, 503) is
            // believed; otherwise the outbox's own backoff.
            let wait = e.retry_after().unwrap_or_else(|| backoff(failures));
            let wait = TimeDelta::from_std(wait).unwrap_or(TimeDelta::MAX);
            let next = now
                .checked_add_signed(wait)
                .unwrap_or(DateTime::<Utc>::MAX_UTC);
            let error = e.to_string();
            if e.is_permanent() && batch.attempts == 0 {
                // The recipient was refused: retrying is right (the
                // address may be fixed), but not in silence.
                let mut refused = refusal(store, batch, &e)?;
                refused.carry = false;
                refused.retried = true;
                store.record_refused_recipient(batch.id, &error, next, refused, now)?;
            } else {
                store.record_failure(batch.id, &error, next)?;
            }
            tracing::warn!(
                recipient = %batch.recipient,
                digest = %batch.message_id,
                failures,
                reason = e.reason(),
                next_attempt = %next,
                error = %error,
                "digest not delivered; will retry"
            );
            report.due_at(next);
            report.failed.push(FailedDigest {
                recipient: batch.recipient.clone(),
                message_id: Some(batch.message_id.clone()),
                error,
                permanent: e.is_permanent(),
                reason: e.reason(),
                next_attempt_at: Some(next),
            });
            Ok(false)
        }
    }
}

/// The `digest_refused` event for `batch`: which status changes it owed
/// the recipient (its own, and those it carried from an earlier refusal).
fn refusal(store: &Store, batch: &Batch, e: &DeliveryError) -> Result<DigestRefused, NotifyError> {
    let mut own = Vec::new();
    let mut carried = Vec::new();
    for &seq in &batch.changes {
        match store.event(seq)?.map(|e| e.body) {
            Some(EventBody::StatusChanged(_)) => own.push(seq),
            Some(EventBody::DigestRefused(r)) if r.recipient == batch.recipient => {
                carried.extend(r.changes)
            }
            _ => {}
        }
    }
    let carry = !own.is_empty();
    let alert = carry || !carried.is_empty();
    let mut changes = own;
    changes.extend(carried);
    changes.sort_unstable();
    changes.dedup();
    Ok(DigestRefused {
        recipient: batch.recipient.clone(),
        first_seq: batch.first_seq,
        last_seq: batch.last_seq,
        message_id: batch.message_id.clone(),
        code: match e {
            DeliveryError::Refused { code, .. } => *code,
            DeliveryError::WebhookRefused { status, .. } => *status,
            _ => 500,
        },
        error: e.to_string(),
        changes,
        carry,
        alert,
        retried: false,
    })
}

/// Routes new status changes, then sends every digest that is due by `now`
/// (all pending ones with `Flush::Now`), one recipient's after another, in
/// the calling thread: `poll` and `digest --send`. Delivery failures are
/// data in the report; `Err` means the store failed or the transport could
/// not be set up.
pub fn run_pending(
    store: &mut Store,
    config: &Config,
    now: DateTime<Utc>,
    flush: Flush,
) -> Result<NotifyReport, NotifyError> {
    let mut report = NotifyReport::default();
    // Recipients whose delivery failed in this pass: not tried again in it.
    let mut failed = BTreeSet::new();
    let mut transport: Option<Box<dyn Transport>> = None;
    let mut poster: Option<BlockingPoster> = None;
    loop {
        let Plan {
            deliveries,
            report: seen,
        } = plan(store, config, now, flush, &failed)?;
        report.routed += seen.routed;
        report.failed.extend(seen.failed);
        report.waiting = seen.waiting;
        report.unsubscribed = seen.unsubscribed;
        report.transport = report.transport.take().or(seen.transport);
        if let Some(t) = seen.next_due {
            report.due_at(t);
        }
        if deliveries.is_empty() {
            return Ok(report);
        }
        for delivery in &deliveries {
            let outcome = if delivery.webhook.is_some() {
                match &poster {
                    Some(p) => deliver_webhook(p, delivery),
                    None => match BlockingPoster::new() {
                        Ok(p) => deliver_webhook(poster.insert(p), delivery),
                        Err(e) => Err(e),
                    },
                }
            } else {
                let t = open(&mut transport, config)?;
                deliver(t, delivery)
            };
            if !record(store, delivery, outcome, now, &mut report)? {
                failed.insert(delivery.batch.recipient.clone());
            }
        }
    }
}

/// Routes every change and alert past the cursor; returns the new entries.
fn route_new(store: &mut Store, routes: &Routes) -> Result<usize, NotifyError> {
    let mut routed = 0;
    loop {
        let cursor = store.notify_cursor()?;
        let changes = store.notifiable_after(cursor, PAGE)?;
        let Some(last) = changes.last() else {
            return Ok(routed);
        };
        let last = last.seq;
        routed += store.enqueue(&routes.queue(&changes), last)?;
    }
}

type Work = BTreeMap<String, (Vec<Batch>, Vec<QueuedChange>)>;

fn pending_by_recipient(batches: Vec<Batch>, queued: Vec<QueuedChange>) -> Work {
    let mut work = Work::new();
    for b in batches {
        work.entry(b.recipient.clone()).or_default().0.push(b);
    }
    for q in queued {
        work.entry(q.recipient.clone()).or_default().1.push(q);
    }
    work
}

/// The events behind `queued`, and for a refused digest of the same
/// recipient the status changes it carries (which `compose` shows in brief).
fn load_changes(store: &Store, queued: &[QueuedChange]) -> Result<Vec<StoredEvent>, NotifyError> {
    let mut events = Vec::with_capacity(queued.len());
    for q in queued {
        if let Some(e) = store.event(q.change_seq)? {
            if let EventBody::DigestRefused(r) = &e.body
                && r.recipient == q.recipient
            {
                for &seq in &r.changes {
                    if let Some(c) = store.event(seq)? {
                        events.push(c);
                    }
                }
            }
            events.push(e);
        }
    }
    Ok(events)
}

/// The transport, opened on first need so a pass with nothing to send
/// never reads a password or touches the network.
fn open<'t>(
    slot: &'t mut Option<Box<dyn Transport>>,
    config: &Config,
) -> Result<&'t mut dyn Transport, NotifyError> {
    if slot.is_none() {
        *slot = Some(transport::open(&config.notify)?);
    }
    Ok(slot.as_deref_mut().expect("set just above"))
}

/// One digest `digest --preview` would send.
#[derive(Debug, Clone)]
pub struct Preview {
    /// Mailboxes receiving this same text.
    pub recipients: Vec<String>,
    pub digest: Digest,
    pub state: PreviewState,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PreviewState {
    /// Frozen earlier and not delivered yet.
    Retry {
        attempts: u32,
        next_attempt_at: DateTime<Utc>,
        last_error: Option<String>,
    },
    /// Not frozen yet; the debounce window ends then (urgent: at once).
    Waiting { due_at: DateTime<Utc> },
}

/// What is pending, as digests, changing nothing: frozen batches first (as
/// recomposed from their changes now), then what is queued or not yet
/// routed. Recipients that would get the same text are grouped.
pub fn preview(
    store: &Store,
    config: &Config,
    now: DateTime<Utc>,
) -> Result<Vec<Preview>, NotifyError> {
    let routes = Routes::from_config(config);
    let mut queued = store.queued()?;
    let mut cursor = store.notify_cursor()?;
    loop {
        let changes = store.notifiable_after(cursor, PAGE)?;
        let Some(last) = changes.last() else { break };
        cursor = last.seq;
        queued.extend(routes.queue(&changes));
    }
    let snapshot = read_snapshot(store, config)?;
    let debounce = TimeDelta::from_std(config.notify.debounce).unwrap_or(TimeDelta::MAX);
    let mut out: Vec<Preview> = Vec::new();
    for (key, (batches, queued)) in pending_by_recipient(store.pending_batches()?, queued) {
        let Some(recipient) = routes.recipient(&key) else {
            continue;
        };
        // A webhook is sent requests, not digests: nothing to show here.
        if recipient.webhook.is_some() {
            continue;
        }
        let mut items = Vec::new();
        for b in &batches {
            let seqs: Vec<QueuedChange> = b
                .changes
                .iter()
                .map(|&change_seq| QueuedChange {
                    change_seq,
                    recipient: key.clone(),
                    urgent: false,
                    queued_at: b.created_at,
                })
                .collect();
            items.push((
                load_changes(store, &seqs)?,
                PreviewState::Retry {
                    attempts: b.attempts,
                    next_attempt_at: b.next_attempt_at,
                    last_error: b.last_error.clone(),
                },
            ));
        }
        if !queued.is_empty() {
            let oldest = queued.iter().map(|q| q.queued_at).min().unwrap_or(now);
            let due_at = if queued.iter().any(|q| q.urgent) {
                oldest
            } else {
                oldest
                    .checked_add_signed(debounce)
                    .unwrap_or(DateTime::<Utc>::MAX_UTC)
            };
            items.push((
                load_changes(store, &queued)?,
                PreviewState::Waiting { due_at },
            ));
        }
        for (events, state) in items {
            let Some(digest) = compose(&events, config, &snapshot, &key, now) else {
                continue;
            };
            match out
                .iter_mut()
                .find(|p| p.digest.text == digest.text && p.state == state)
            {
                Some(p) => p.recipients.push(recipient.mailbox.clone()),
                None => out.push(Preview {
                    recipients: vec![recipient.mailbox.clone()],
                    digest,
                    state,
                }),
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_from_a_minute_up_to_an_hour() {
        let minutes: Vec<u64> = (1..=9).map(|n| backoff(n).as_secs() / 60).collect();
        assert_eq!(minutes, [1, 2, 4, 8, 16, 32, 60, 60, 60]);
        assert_eq!(backoff(0), RETRY_FIRST);
        assert_eq!(backoff(u32::MAX), RETRY_MAX);
    }
}

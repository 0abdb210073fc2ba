//! The single writer: one thread that owns the database. Everything that
//! changes the store arrives here as a message, in order, so appends never
//! race and blocking SQLite calls never run on the async workers.
//!
//! Feeds arrive parsed and classified (`poll::Preparer` did that off this
//! thread); the writer commits the polls queued one after another in one
//! transaction (up to `poll::BATCH_FEEDS`), then reports each feed.
//!
//! It plans digests (route, freeze, record the attempt as begun) and hands
//! each delivery to the courier (`courier.rs`); the outcome comes back as a
//! message and is recorded here. The writer never waits on a mail server.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use chrono::Utc;
use tokio::sync::{mpsc, oneshot};
use tracing::{error, info, warn};

use super::courier::Job;
use super::status::Metrics;
use crate::config::{Config, Feed, Mailbox};
use crate::domain::{HealthCondition, Policy};
use crate::ingest::{self, FeedOutcome, FeedReport, Prepared};
use crate::mailbox::ingest::{MailboxOutcome, MailboxReport};
use crate::mailbox::{MailboxError, Messages};
use crate::notice;
use crate::notify::{self, Delivery, DeliveryError, Flush, NotifyReport};
use crate::poll::BATCH_FEEDS;
use crate::store::{FeedState, Store, StoreError};

pub enum ToWriter {
    /// A feed was fetched and read; commit it.
    Prepared(Box<Polled>),
    /// Periodic work: pending digests and time-driven changes.
    Tick,
    /// A new configuration took effect (the scheduler has its rules).
    Reload(Arc<Config>),
    /// Is the database answering? (for the watchdog)
    Ping(oneshot::Sender<bool>),
    /// A batch of fetches is done: let go of what only a cycle needs.
    Rest,
    /// The courier finished a delivery; record its outcome.
    Delivered {
        delivery: Box<Delivery>,
        outcome: Result<(), DeliveryError>,
    },
    /// The mailman finished reading a remote mailbox; ingest it.
    MailboxRead {
        mailbox: Box<Mailbox>,
        result: Box<Result<Messages, MailboxError>>,
    },
}

/// One feed's poll, read and ready to commit.
pub struct Polled {
    pub feed: Feed,
    /// The state the poll started from: what the scheduler goes on with
    /// if the poll cannot be recorded.
    pub before: FeedState,
    /// A store error here is the read of the "seen before?" lookups.
    pub prepared: Result<Prepared, StoreError>,
}

/// Sent back to the scheduler after each ingest.
pub struct FeedDone {
    pub state: FeedState,
}

pub struct Writer {
    pub store: Store,
    pub config: Arc<Config>,
    pub metrics: Arc<Metrics>,
    pub done: mpsc::UnboundedSender<FeedDone>,
    /// Deliveries go here, to the courier.
    pub courier: mpsc::UnboundedSender<Job>,
    /// Recipients with a delivery at the courier: nothing more is planned
    /// for them until its outcome is recorded.
    pub in_flight: BTreeSet<String>,
    /// Remote mailboxes are read here, off this thread.
    pub mailman: mpsc::UnboundedSender<super::mailman::Job>,
    /// Mailboxes with a read at the mailman: not sent again until it is back.
    pub reading: BTreeSet<String>,
}

/// Imports the membership baseline (at start and on reload), logging what
/// moved; a failure is logged and retried at the next reload, never fatal:
/// the news can be read without a baseline.
pub fn import_baseline(store: &mut Store, config: &Config) {
    match crate::baseline::import(store, config, Utc::now()) {
        Ok(report) if report.new_events() > 0 => info!(
            entries = report.new_events(),
            statuses = report.changes.len(),
            files = report.files.len(),
            "membership baseline imported (never mailed)"
        ),
        Ok(_) => {}
        Err(e) => error!("cannot import the membership baseline: {e}"),
    }
}

impl Writer {
    /// Runs until every sender of `inbox` is gone, then returns: messages
    /// already queued at shutdown are still handled.
    pub fn run(mut self, mut inbox: mpsc::Receiver<ToWriter>) {
        // A message taken while gathering a batch, handled after it.
        let mut next = None;
        while let Some(message) = next.take().or_else(|| inbox.blocking_recv()) {
            self.metrics.writer_busy(true);
            match message {
                ToWriter::Prepared(polled) => {
                    // Group commit: the polls queued behind this one, up to
                    // a batch; the first other message ends it, in order.
                    let mut batch = vec![*polled];
                    while batch.len() < BATCH_FEEDS {
                        match inbox.try_recv() {
                            Ok(ToWriter::Prepared(polled)) => batch.push(*polled),
                            Ok(other) => {
                                next = Some(other);
                                break;
                            }
                            Err(_) => break,
                        }
                    }
                    self.record_polls(batch);
                }
                ToWriter::Tick => self.tick(),
                ToWriter::Reload(config) => {
                    self.config = config;
                    // An edited membership file is imported on reload.
                    import_baseline(&mut self.store, &self.config);
                    // A reload is when a mail setup gets fixed: retry now.
                    self.notify(Flush::Retry);
                }
                ToWriter::Ping(reply) => {
                    let _ = reply.send(self.store.last_seq().is_ok());
                }
                ToWriter::Rest => self.rest(),
                ToWriter::Delivered { delivery, outcome } => self.delivered(&delivery, outcome),
                ToWriter::MailboxRead { mailbox, result } => self.mailbox_read(&mailbox, *result),
            }
            self.metrics.writer_busy(false);
        }
        info!("writer stopped; database closed cleanly");
    }

    /// Commits a batch of polls in one transaction, then reports each feed
    /// to the logs, the metrics and the scheduler. If the batch cannot be
    /// committed, its feeds are committed one by one, so a store error one
    /// feed's data causes costs only that feed.
    fn record_polls(&mut self, batch: Vec<Polled>) {
        let policy = Policy {
            min_sources: self.config.treaties.min_sources(),
        };
        let mut ready = Vec::with_capacity(batch.len());
        for polled in batch {
            match polled.prepared {
                Ok(prepared) => ready.push((polled.feed, polled.before, prepared)),
                Err(e) => self.not_recorded(&polled.feed, polled.before, &e),
            }
        }
        let committed =
            match ingest::commit(&mut self.store, ready.iter().map(|(_, _, p)| p), &policy) {
                Ok(outcomes) => outcomes.into_iter().map(Ok).collect(),
                Err(e) if ready.len() > 1 => {
                    warn!(
                        feeds = ready.len(),
                        "could not record a batch of polls, recording them one by one: {e}"
                    );
                    ready
                        .iter()
                        .map(|(_, _, p)| {
                            ingest::commit(&mut self.store, [p], &policy)
                                .map(|mut o| o.pop().unwrap_or_default())
                        })
                        .collect()
                }
                Err(e) => vec![Err(e)],
            };
        let mut news = 0;
        for ((feed, before, prepared), committed) in ready.into_iter().zip(committed) {
            match committed {
                Ok(outcome) => news += self.report(&feed, prepared.into_report(outcome)),
                Err(e) => self.not_recorded(&feed, before, &e),
            }
        }
        // A change or an alert may be urgent for someone: route it now
        // rather than at the next tick.
        if news > 0 {
            self.notify(Flush::Debounced);
        }
        self.metrics.publish_status();
    }

    /// Logs and counts one committed poll and hands the feed's state back
    /// to the scheduler; returns how many changes and alerts it recorded.
    fn report(&mut self, feed: &Feed, report: FeedReport) -> usize {
        let failed = report.outcome.is_failure();
        self.metrics.record_poll(&feed.id, failed);
        match &report.outcome {
            FeedOutcome::Fetched {
                new,
                changed,
                detections,
                changes,
                moved_to,
                status,
                ..
            } => {
                self.metrics
                    .items
                    .fetch_add((new + changed) as u64, Ordering::Relaxed);
                self.metrics
                    .detections
                    .fetch_add(*detections as u64, Ordering::Relaxed);
                self.metrics
                    .status_changes
                    .fetch_add(changes.len() as u64, Ordering::Relaxed);
                if new + changed > 0 {
                    info!(feed = %feed.id, status, new, changed, detections, changes = changes.len(), "ingested");
                }
                if let Some(url) = moved_to {
                    warn!(feed = %feed.id, to = %url, "feed moved permanently; update its url in the config");
                }
            }
            FeedOutcome::Failed {
                error,
                failures,
                next_poll,
                ..
            } => {
                warn!(feed = %feed.id, failures, next_poll = %when(*next_poll), "poll failed: {error}");
            }
            FeedOutcome::NotModified | FeedOutcome::Skipped(_) => {}
        }
        for alert in &report.alerts {
            // Mailed by the next notifier pass, like a status change.
            match alert.condition {
                HealthCondition::Failing | HealthCondition::Stale => {
                    warn!(feed = %feed.id, condition = %alert.condition, since = %alert.since, "source alert recorded")
                }
                HealthCondition::Recovered | HealthCondition::Fresh => {
                    info!(feed = %feed.id, condition = %alert.condition, since = %alert.since, "source alert recorded")
                }
            }
        }
        match self.store.feed_state(&feed.id) {
            Ok(Some(state)) => {
                let _ = self.done.send(FeedDone { state });
            }
            Ok(None) => {}
            Err(e) => error!(feed = %feed.id, "cannot read back feed state: {e}"),
        }
        report.alerts.len()
            + match &report.outcome {
                FeedOutcome::Fetched { changes, .. } => changes.len(),
                _ => 0,
            }
    }

    /// A poll that could not be recorded: nothing of it was written, and the
    /// feed is retried after its interval; the daemon goes on.
    fn not_recorded(&mut self, feed: &Feed, before: FeedState, e: &StoreError) {
        error!(feed = %feed.id, "could not record the poll: {e}");
        let mut state = before;
        state.next_poll = Some(
            Utc::now() + chrono::Duration::from_std(feed.interval).unwrap_or(chrono::Duration::MAX),
        );
        let _ = self.done.send(FeedDone { state });
    }

    /// Between cycles: SQLite's page cache (2 MB once a cycle has filled
    /// it) is freed, then malloc's free memory goes back to the kernel. The
    /// next cycle reads its pages again from the OS's cache, a few reads a
    /// feed; until then the daemon holds only what it needs to wait.
    fn rest(&mut self) {
        if let Err(e) = self.store.release_memory() {
            warn!("cannot release SQLite's cache: {e}");
        }
        super::status::release_free_memory();
    }

    /// Periodic work: mailboxes that are due, notice periods that ran out,
    /// then digests that are due.
    fn tick(&mut self) {
        self.read_mailboxes();
        match notice::record_due_effects(&mut self.store, &self.config, Utc::now()) {
            Ok(report) => {
                for change in &report.appended.changes {
                    if let Some((state, treaty)) = change.body.key() {
                        info!(
                            seq = change.seq,
                            state, treaty, "withdrawal effective by its notice period"
                        );
                    }
                }
            }
            Err(e) => error!("cannot record notice-period effects: {e}"),
        }
        self.notify(Flush::Debounced);
    }

    /// Reads the mailboxes whose next read has come. Maildir folders are
    /// local, so they are read here, between two messages, at little cost
    /// to the writer; an IMAP mailbox is handed to the mailman and its read
    /// comes back as `ToWriter::MailboxRead`.
    fn read_mailboxes(&mut self) {
        if self.config.mailboxes.is_empty() {
            return;
        }
        let (mailman, reading) = (&self.mailman, &mut self.reading);
        let mut remote = |mailbox: &Mailbox, state: &crate::store::FeedState| {
            if !reading.contains(&mailbox.id) {
                let job = super::mailman::Job {
                    mailbox: mailbox.clone(),
                    cursor: state
                        .etag
                        .as_deref()
                        .and_then(crate::mailbox::imap::Cursor::parse),
                };
                if mailman.send(job).is_ok() {
                    reading.insert(mailbox.id.clone());
                }
            }
            None
        };
        match crate::mailbox::ingest::poll_mailboxes(
            &mut self.store,
            &self.config,
            Utc::now(),
            true,
            &mut remote,
        ) {
            Ok(reports) => {
                for r in &reports {
                    log_mailbox(r);
                }
            }
            Err(e) => error!("cannot record a mailbox read: {e}"),
        }
    }

    /// Records a remote mailbox's read, if the mailbox is still configured
    /// as it was when the read began (a reload may have changed it; then
    /// the next tick reads it afresh).
    fn mailbox_read(&mut self, mailbox: &Mailbox, result: Result<Messages, MailboxError>) {
        self.reading.remove(&mailbox.id);
        let config = self.config.clone();
        let Some(current) = config
            .mailboxes
            .iter()
            .find(|m| m.id == mailbox.id && m.source == mailbox.source && m.enabled)
        else {
            return;
        };
        let now = Utc::now();
        let policy = Policy {
            min_sources: config.treaties.min_sources(),
        };
        let ctx = crate::mailbox::ingest::context(&config, &policy, now, &current.id);
        let recorded = self
            .store
            .feed_state(&current.id)
            .map(|stored| crate::mailbox::ingest::starting_state(stored, current))
            .and_then(|state| {
                crate::mailbox::ingest::ingest(&mut self.store, current, state, result, &ctx)
            });
        match recorded {
            Ok(report) => {
                log_mailbox(&report);
                if let MailboxOutcome::Read { changes, .. } = &report.outcome
                    && (!changes.is_empty() || !report.alerts.is_empty())
                {
                    self.notify(Flush::Debounced);
                }
            }
            Err(e) => error!(mailbox = %mailbox.id, "cannot record a mailbox read: {e}"),
        }
    }

    /// Plans what is due and hands it to the courier. Failures stay
    /// pending and are retried by the outbox's own backoff; they never stop
    /// the writer.
    fn notify(&mut self, flush: Flush) {
        // Stopping: the courier is gone, and an attempt begun now would
        // only be resent at the next start.
        if self.courier.is_closed() {
            return;
        }
        match notify::plan(
            &mut self.store,
            &self.config,
            Utc::now(),
            flush,
            &self.in_flight,
        ) {
            Ok(plan) => {
                // `notify::plan` logged each one ("cannot build digest").
                for failed in &plan.report.failed {
                    self.metrics.record_delivery_failure(failed.reason);
                }
                for delivery in plan.deliveries {
                    self.in_flight.insert(delivery.batch.recipient.clone());
                    let job = Job {
                        delivery,
                        config: self.config.clone(),
                    };
                    if self.courier.send(job).is_err() {
                        break;
                    }
                }
            }
            Err(e) => error!("cannot run the notifier: {e}"),
        }
        self.publish_pending();
    }

    /// Records what the courier reports, then plans that recipient's next
    /// digest at once rather than at the next tick.
    fn delivered(&mut self, delivery: &Delivery, outcome: Result<(), DeliveryError>) {
        self.in_flight.remove(&delivery.batch.recipient);
        let mut report = NotifyReport::default();
        match notify::record(&mut self.store, delivery, outcome, Utc::now(), &mut report) {
            Ok(_) => {
                // `notify::record` has logged each outcome (one line per
                // delivery); only the counters are left to do here.
                for failed in &report.failed {
                    self.metrics.record_delivery_failure(failed.reason);
                }
                self.metrics
                    .digests_sent
                    .fetch_add(report.sent.len() as u64, Ordering::Relaxed);
            }
            Err(e) => error!("cannot record a delivery: {e}"),
        }
        self.notify(Flush::Debounced);
    }

    /// `treatywatch_digests_pending` and the STATUS= line, from the store.
    fn publish_pending(&mut self) {
        match self.store.undelivered() {
            Ok(u) => self
                .metrics
                .digests_pending
                .store(u.digests() as u64, Ordering::Relaxed),
            Err(e) => error!("cannot count undelivered digests: {e}"),
        }
        self.metrics.publish_status();
    }
}

/// A next-poll time for a log line: RFC 3339, or "never" (a feed the
/// server says is gone is not polled again).
fn when(t: Option<chrono::DateTime<Utc>>) -> String {
    t.map_or_else(
        || "never".to_string(),
        |t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
    )
}

fn log_mailbox(r: &MailboxReport) {
    match &r.outcome {
        MailboxOutcome::Read {
            new,
            counts,
            changes,
            ..
        } if *new > 0 => {
            info!(mailbox = %r.mailbox_id, new, notices = counts.notifications, unrecognised = counts.unrecognised + counts.unmapped, changes = changes.len(), "mailbox read");
        }
        MailboxOutcome::Failed {
            error,
            failures,
            next_poll,
        } => {
            warn!(mailbox = %r.mailbox_id, failures, next_poll = %when(*next_poll), "mailbox read failed: {error}");
        }
        _ => {}
    }
}

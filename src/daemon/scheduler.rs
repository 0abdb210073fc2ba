//! The scheduler: decides which feeds are due, starts their fetches (at
//! most `concurrency` feeds in progress, `per_host` requests to one host),
//! has each result parsed and classified off the writer (`poll::Preparer`)
//! and hands the prepared poll to the writer, which commits it in a batch.
//! It keeps each feed's last known state, updated by the writer after
//! every commit; a feed is not fetched again before that.

use std::collections::hash_map::RandomState;
use std::collections::{HashMap, HashSet};
use std::hash::BuildHasher as _;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use tokio::sync::{Semaphore, mpsc, watch};
use tokio::task::JoinSet;
use tracing::{debug, info, warn};

use super::status::Metrics;
use super::writer::{FeedDone, Polled, ToWriter};
use crate::config::{Config, Feed};
use crate::fetch::{Fetcher, HostLimit, Validators};
use crate::ingest;
use crate::poll::Preparer;
use crate::store::FeedState;

/// The scheduler wakes at least this often to look for due feeds.
const MAX_SLEEP: Duration = Duration::from_secs(60);

pub struct Scheduler {
    pub config: Arc<Config>,
    pub fetcher: Fetcher,
    pub states: HashMap<String, FeedState>,
    pub writer: mpsc::Sender<ToWriter>,
    pub done: mpsc::UnboundedReceiver<FeedDone>,
    /// The config and the rules to read feeds with; a reload sends new ones.
    pub rules: watch::Receiver<Preparer>,
    /// SIGUSR1: poll every feed now, whatever its schedule.
    pub poll_now: mpsc::UnboundedReceiver<()>,
    pub shutdown: watch::Receiver<bool>,
    pub metrics: Arc<Metrics>,
    /// How long in-flight fetches may finish after a stop is requested.
    pub grace: Duration,
}

/// One batch of feeds started together, for the "last cycle" figure.
struct Batch {
    started: Instant,
    left: usize,
}

impl Scheduler {
    pub async fn run(mut self) {
        let mut permits = Arc::new(Semaphore::new(self.config.fetch.concurrency.max(1)));
        let mut hosts = HostLimit::new(self.config.fetch.per_host);
        // The gauges say what the database knows from the start, so an
        // alert on a feed's last success survives a restart.
        for feed in self.config.feeds.iter().filter(|f| f.enabled) {
            if let Some(state) = self.states.get(&feed.id) {
                self.metrics.record_feed(state, feed.interval);
            }
        }
        let mut due: HashMap<String, DateTime<Utc>> = HashMap::new();
        self.plan(&mut due, Utc::now());
        let mut in_flight: HashMap<String, u64> = HashMap::new();
        let mut batches: HashMap<u64, Batch> = HashMap::new();
        let mut next_batch = 0u64;
        let mut tasks = JoinSet::new();
        loop {
            let now = Utc::now();
            let ready: Vec<Feed> = self
                .config
                .feeds
                .iter()
                .filter(|f| {
                    !in_flight.contains_key(&f.id) && due.get(&f.id).is_some_and(|t| *t <= now)
                })
                .cloned()
                .collect();
            if !ready.is_empty() {
                next_batch += 1;
                batches.insert(
                    next_batch,
                    Batch {
                        started: Instant::now(),
                        left: ready.len(),
                    },
                );
                debug!(feeds = ready.len(), "starting fetches");
            }
            let preparer = self.rules.borrow().clone();
            for feed in ready {
                due.remove(&feed.id);
                in_flight.insert(feed.id.clone(), next_batch);
                let state = ingest::starting_state(self.states.get(&feed.id).cloned(), &feed);
                let validators = Validators {
                    etag: state.etag.clone(),
                    last_modified: state.last_modified.clone(),
                };
                let jitter = (RandomState::new().hash_one(&feed.id) % 10_000) as f64 / 10_000.0;
                let (fetcher, writer, permits, hosts, metrics, preparer) = (
                    self.fetcher.clone(),
                    self.writer.clone(),
                    permits.clone(),
                    hosts.clone(),
                    self.metrics.clone(),
                    preparer.clone(),
                );
                tasks.spawn(async move {
                    // The host's slot first, then a global one: a fetch
                    // waiting on a busy host holds nothing others need.
                    let Some(host) = hosts.acquire(&feed.url).await else {
                        return;
                    };
                    // Held until the prepared poll is queued for the
                    // writer: at most `concurrency` documents in memory.
                    let Ok(_permit) = permits.acquire_owned().await else {
                        return;
                    };
                    let started = Instant::now();
                    // Boxed, so a task waiting for its turn holds only what
                    // it captured (see `poll::poll_feeds`).
                    let result = Box::pin(fetcher.fetch(&feed.url, &validators, Utc::now())).await;
                    metrics.observe_poll(started.elapsed());
                    drop(host);
                    let prepared =
                        Box::pin(preparer.prepare(feed.clone(), state.clone(), result, jitter))
                            .await;
                    let message = ToWriter::Prepared(Box::new(Polled {
                        feed,
                        before: state,
                        prepared,
                    }));
                    // A closed writer means we are shutting down; the feed is polled next start.
                    let _ = writer.send(message).await;
                });
            }
            let sleep = due
                .values()
                .min()
                .map(|t| (*t - now).to_std().unwrap_or(Duration::ZERO))
                .unwrap_or(MAX_SLEEP)
                .min(MAX_SLEEP);
            tokio::select! {
                _ = tokio::time::sleep(sleep) => {}
                Some(done) = self.done.recv() => {
                    let id = done.state.feed_id.clone();
                    let batch_id = in_flight.remove(&id);
                    if in_flight.is_empty() {
                        // Idle until the next due feed: the read connections
                        // need not keep their page caches meanwhile (closed
                        // before the cycle's end hands freed memory back).
                        self.rules.borrow().release_readers();
                    }
                    if let Some(batch_id) = batch_id
                        && let Some(batch) = batches.get_mut(&batch_id)
                    {
                        batch.left -= 1;
                        if batch.left == 0 {
                            self.metrics.record_cycle(batch.started.elapsed());
                            batches.remove(&batch_id);
                            self.metrics.publish_status();
                            // A full queue means the writer is busy: the
                            // next batch's end will do.
                            let _ = self.writer.try_send(ToWriter::Rest);
                        }
                    }
                    if let Some(feed) = self.config.feeds.iter().find(|f| f.id == id) {
                        self.metrics.record_feed(&done.state, feed.interval);
                    }
                    if let Some(next) = done.state.next_poll.filter(|_| !done.state.gone) {
                        due.insert(id.clone(), next);
                    }
                    self.states.insert(id, done.state);
                }
                Ok(()) = self.rules.changed() => {
                    let config = self.rules.borrow_and_update().config().clone();
                    if config.fetch.concurrency != self.config.fetch.concurrency {
                        // Fetches already waiting or running keep the old
                        // semaphore; every fetch started from now on takes
                        // a permit of the new one.
                        permits = Arc::new(Semaphore::new(config.fetch.concurrency.max(1)));
                    }
                    if config.fetch.per_host != self.config.fetch.per_host {
                        // The same for the per-host limit.
                        hosts = HostLimit::new(config.fetch.per_host);
                    }
                    self.apply(config, &mut due, &in_flight);
                }
                Some(()) = self.poll_now.recv() => {
                    let now = Utc::now();
                    self.plan(&mut due, now);
                    for feed in &self.config.feeds {
                        if !in_flight.contains_key(&feed.id) {
                            due.entry(feed.id.clone()).and_modify(|t| *t = now);
                        }
                    }
                }
                _ = self.shutdown.changed() => break,
                Some(_) = tasks.join_next(), if !tasks.is_empty() => {}
            }
        }
        self.stop(tasks).await;
    }

    /// Due times for every pollable feed: the stored next poll, or now for
    /// feeds never polled or overdue.
    fn plan(&self, due: &mut HashMap<String, DateTime<Utc>>, now: DateTime<Utc>) {
        let pollable: Vec<&Feed> = self
            .config
            .feeds
            .iter()
            .filter(|f| {
                ingest::skip_reason(
                    f,
                    &ingest::starting_state(self.states.get(&f.id).cloned(), f),
                )
                .is_none()
            })
            .collect();
        for feed in pollable {
            if due.contains_key(&feed.id) {
                continue;
            }
            // Overdue and never-polled feeds are due now; the concurrency
            // limit, not a delay, keeps them from all firing at once, and
            // the jitter of each next poll spreads them out from then on.
            let stored = ingest::starting_state(self.states.get(&feed.id).cloned(), feed).next_poll;
            due.insert(feed.id.clone(), stored.map_or(now, |t| t.max(now)));
        }
    }

    /// Takes a reloaded config: removed feeds stop, new or changed ones are
    /// planned, and `[fetch]` limits (timeouts, body limit; concurrency in
    /// `run`) apply to the fetches started from now on.
    fn apply(
        &mut self,
        config: Arc<Config>,
        due: &mut HashMap<String, DateTime<Utc>>,
        in_flight: &HashMap<String, u64>,
    ) {
        if config.fetch.limits != self.config.fetch.limits {
            // The timeouts live in the reqwest client, so a new one is
            // built; a fetch in flight finishes with the client it started on.
            match Fetcher::new(config.fetch.limits) {
                Ok(fetcher) => self.fetcher = fetcher,
                Err(e) => warn!("[fetch] limits not applied, still using the previous ones: {e}"),
            }
        }
        let old: HashMap<String, Feed> = self
            .config
            .feeds
            .iter()
            .map(|f| (f.id.clone(), f.clone()))
            .collect();
        let ids: HashSet<&str> = config.feeds.iter().map(|f| f.id.as_str()).collect();
        due.retain(|id, _| ids.contains(id.as_str()));
        for feed in &config.feeds {
            let changed = old.get(&feed.id).is_none_or(|o| {
                o.url != feed.url || o.enabled != feed.enabled || o.interval != feed.interval
            });
            if changed && !in_flight.contains_key(&feed.id) {
                due.remove(&feed.id);
            }
        }
        let added = config
            .feeds
            .iter()
            .filter(|f| !old.contains_key(&f.id))
            .count();
        let removed = old.keys().filter(|id| !ids.contains(id.as_str())).count();
        self.metrics.set_feeds(config.feeds.len());
        // A disabled feed is not polled: gauges kept for it would age into
        // alerts that say nothing.
        let enabled: Vec<&str> = config
            .feeds
            .iter()
            .filter(|f| f.enabled)
            .map(|f| f.id.as_str())
            .collect();
        self.metrics.retain_feeds(&enabled);
        self.config = config;
        self.plan(due, Utc::now());
        info!(
            feeds = self.config.feeds.len(),
            added, removed, "configuration reloaded"
        );
    }

    /// Lets in-flight fetches finish for up to `grace`, then abandons the
    /// rest: they appended nothing, so their feeds are simply polled again
    /// at the next start.
    async fn stop(self, mut tasks: JoinSet<()>) {
        let pending = tasks.len();
        if pending > 0 {
            info!(pending, "waiting for fetches in flight");
        }
        let drained = tokio::time::timeout(self.grace, async {
            while tasks.join_next().await.is_some() {}
        })
        .await;
        if drained.is_err() {
            warn!(
                abandoned = tasks.len(),
                "fetches still running at shutdown were abandoned; those feeds are polled again at the next start"
            );
            tasks.abort_all();
        }
    }
}

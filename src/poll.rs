//! The poll pipeline, for `treatywatch poll` (`poll_feeds`, one cycle) and
//! the daemon's due feeds (`daemon/scheduler.rs` and `writer.rs`):
//!
//! 1. fetches run concurrently on a tokio runtime, at most `concurrency`
//!    feeds in progress and `per_host` requests to one host;
//! 2. each result is parsed and classified (`ingest::prepare`) on tokio's
//!    blocking pool, one feed per core at once (`Preparer`), with its
//!    "seen before?" lookups on a read-only connection of its own;
//! 3. the one writer only commits: whatever has arrived while it committed
//!    the last batch, up to `BATCH_FEEDS` feeds, in one transaction
//!    (`ingest::commit`), so a busy cycle costs one fsync per batch rather
//!    than one per feed, while each feed's state, items and events still
//!    commit together. A feed is acknowledged (progress, report, the
//!    daemon's schedule) only once its batch has committed.
//!
//! Memory stays bounded: a feed keeps its slot of `concurrency` from before
//! its fetch until its prepared poll is in the writer's bounded queue, so
//! at most `concurrency` documents are held, plus what that queue holds.
//!
//! A failing feed is data in its report, never an abort: only a store
//! failure stops the cycle.

use std::hash::BuildHasher;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use chrono::Utc;
use tokio::sync::{Semaphore, mpsc};

use crate::classify::Classifier;
use crate::config::{Config, Feed};
use crate::domain::Policy;
use crate::fetch::{FetchError, Fetched, Fetcher, HostLimit, Validators};
use crate::ingest::{self, FeedOutcome, FeedReport, IngestContext, Prepared};
use crate::store::{FeedState, Store, StoreError};

/// The most feeds the writer commits in one transaction. Enough that a
/// cycle's fsyncs stop mattering (a batch is whatever arrived during the
/// last commit, rarely this many); small enough that a batch's items stay a
/// few megabytes.
pub const BATCH_FEEDS: usize = 32;

/// Parses and classifies fetch results off the writer: on tokio's blocking
/// pool, at most one feed per core at once. Cheap to clone (shared).
///
/// tokio's blocking pool rather than rayon: the fetches already run on
/// tokio, so a finished fetch hands its body over with one `spawn_blocking`
/// and awaits the result, and a semaphore bounds the work to the cores
/// without a second thread pool or another crate.
#[derive(Clone)]
pub struct Preparer {
    config: Arc<Config>,
    /// `config`'s; `prepare` folds nothing, but its context carries it.
    policy: Policy,
    classifier: Arc<Classifier>,
    shared: Arc<Shared>,
}

/// What every `Preparer` of one database shares, across reloads.
struct Shared {
    db: PathBuf,
    /// One per core: how many feeds are being read at once.
    slots: Semaphore,
    /// Idle read-only connections for the "seen before?" lookups, one per
    /// slot at most (opened on first use).
    readers: Mutex<Vec<Store>>,
}

impl Preparer {
    /// Reads feeds with `classifier` (compiled from `config`'s rules),
    /// looking items up in the database at `db`, which must exist.
    pub fn new(config: Arc<Config>, classifier: Arc<Classifier>, db: &Path) -> Preparer {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        Preparer {
            policy: Policy {
                min_sources: config.treaties.min_sources(),
            },
            config,
            classifier,
            shared: Arc::new(Shared {
                db: db.to_path_buf(),
                slots: Semaphore::new(cores),
                readers: Mutex::new(Vec::new()),
            }),
        }
    }

    /// The same, with a reloaded config and its rules; feeds already being
    /// read finish with the rules they started with.
    pub fn with_rules(&self, config: Arc<Config>, classifier: Arc<Classifier>) -> Preparer {
        Preparer {
            policy: Policy {
                min_sources: config.treaties.min_sources(),
            },
            config,
            classifier,
            shared: self.shared.clone(),
        }
    }

    pub fn config(&self) -> &Arc<Config> {
        &self.config
    }

    /// Closes the idle read connections (and their page caches): for an
    /// idle daemon. The next feed read opens one again.
    pub fn release_readers(&self) {
        self.shared
            .readers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
    }

    /// `ingest::prepare` for one fetch result, on the blocking pool.
    /// `jitter` in [0, 1) spreads the next poll. A panic while reading the
    /// feed becomes a failure of that feed (`ingest::prepare_broken`).
    pub async fn prepare(
        &self,
        feed: Feed,
        state: FeedState,
        result: Result<Fetched, FetchError>,
        jitter: f64,
    ) -> Result<Prepared, StoreError> {
        // `None` only if closed, which this semaphore never is.
        let _slot = self.shared.slots.acquire().await.ok();
        let this = self.clone();
        let fallback = (feed.clone(), state.clone());
        let now = Utc::now();
        let work = tokio::task::spawn_blocking(move || {
            let reader = this.reader()?;
            let result = ingest::prepare(&reader, &feed, state, result, &this.context(now, jitter));
            this.give_back(reader);
            result
        });
        match work.await {
            Ok(result) => result,
            Err(e) => {
                let (feed, state) = fallback;
                let message = match e.try_into_panic() {
                    Ok(panic) => panic
                        .downcast_ref::<&str>()
                        .map(|s| s.to_string())
                        .or_else(|| panic.downcast_ref::<String>().cloned())
                        .unwrap_or_else(|| "panicked".into()),
                    Err(e) => e.to_string(),
                };
                tracing::error!(feed = %feed.id, "reading the feed failed: {message}");
                Ok(ingest::prepare_broken(
                    &feed,
                    state,
                    message,
                    &self.context(now, jitter),
                ))
            }
        }
    }

    fn context(&self, now: chrono::DateTime<Utc>, jitter: f64) -> IngestContext<'_> {
        IngestContext {
            settings: &self.config.fetch,
            thresholds: self.config.notify.thresholds,
            policy: &self.policy,
            classifier: &self.classifier,
            rules_version: &self.config.rules_version,
            now,
            jitter,
        }
    }

    fn reader(&self) -> Result<Store, StoreError> {
        let idle = self
            .shared
            .readers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .pop();
        match idle {
            Some(reader) => Ok(reader),
            None => Store::open_read_only(&self.shared.db),
        }
    }

    fn give_back(&self, reader: Store) {
        self.shared
            .readers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(reader);
    }
}

/// Polls `feeds` once. `progress(done, total)` is called after each feed
/// is committed. Must be called from outside the runtime `rt` belongs to.
pub fn poll_feeds(
    rt: &tokio::runtime::Handle,
    fetcher: &Fetcher,
    store: &mut Store,
    config: &Arc<Config>,
    feeds: &[&Feed],
    classifier: Arc<Classifier>,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<Vec<FeedReport>, StoreError> {
    let policy = Policy {
        min_sources: config.treaties.min_sources(),
    };
    let preparer = Preparer::new(config.clone(), classifier, store.path());
    let mut reports: Vec<Option<FeedReport>> = vec![None; feeds.len()];
    let (tx, mut rx) = mpsc::channel::<(usize, Result<Prepared, StoreError>)>(BATCH_FEEDS);
    let permits = Arc::new(Semaphore::new(config.fetch.concurrency.max(1)));
    let hosts = HostLimit::new(config.fetch.per_host);
    let random = std::collections::hash_map::RandomState::new();
    let mut in_flight = 0;
    for (i, feed) in feeds.iter().enumerate() {
        let state = ingest::starting_state(store.feed_state(&feed.id)?, feed);
        if let Some(reason) = ingest::skip_reason(feed, &state) {
            reports[i] = Some(FeedReport {
                feed_id: feed.id.clone(),
                outcome: FeedOutcome::Skipped(reason),
                alerts: Vec::new(),
            });
            continue;
        }
        let validators = Validators {
            etag: state.etag.clone(),
            last_modified: state.last_modified.clone(),
        };
        let jitter = (random.hash_one((&feed.id, i)) % 10_000) as f64 / 10_000.0;
        let (fetcher, tx, permits, hosts, preparer, feed) = (
            fetcher.clone(),
            tx.clone(),
            permits.clone(),
            hosts.clone(),
            preparer.clone(),
            (*feed).clone(),
        );
        rt.spawn(async move {
            // The host's slot first: waiting on a busy host holds no
            // slot another host could use (`fetch::HostLimit`).
            let Some(host) = hosts.acquire(&feed.url).await else {
                return;
            };
            // Held until the prepared poll is queued for the writer: at
            // most `concurrency` documents in memory.
            let Ok(_permit) = permits.acquire_owned().await else {
                return;
            };
            let result = fetcher.fetch(&feed.url, &validators, Utc::now()).await;
            drop(host);
            let prepared = preparer.prepare(feed, state, result, jitter).await;
            // The receiver only goes away when the cycle is abandoned.
            let _ = tx.send((i, prepared)).await;
        });
        in_flight += 1;
    }
    drop(tx);
    let total = feeds.len();
    let mut done = total - in_flight;
    progress(done, total);
    let mut batch: Vec<(usize, Prepared)> = Vec::with_capacity(BATCH_FEEDS);
    while let Some(first) = rx.blocking_recv() {
        // Group commit: whatever arrived while the last batch committed.
        let mut next = Some(first);
        while let Some((i, prepared)) = next.take() {
            batch.push((i, prepared?));
            if batch.len() < BATCH_FEEDS {
                next = rx.try_recv().ok();
            }
        }
        let committed = ingest::commit(store, batch.iter().map(|(_, p)| p), &policy)?;
        for ((i, prepared), outcome) in batch.drain(..).zip(committed) {
            reports[i] = Some(prepared.into_report(outcome));
            done += 1;
            progress(done, total);
        }
    }
    Ok(reports.into_iter().flatten().collect())
}

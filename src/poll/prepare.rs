//! `Preparer`: the worker threads that parse and classify fetch results
//! (`ingest::prepare`) off the writer, one per core, each with its own
//! read-only connection for the "seen before?" lookups. A panic while
//! reading a feed becomes that feed's failure.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use chrono::Utc;
use tokio::sync::{mpsc, oneshot};

use crate::classify::Classifier;
use crate::config::{Config, Feed};
use crate::domain::Policy;
use crate::fetch::{FetchError, Fetched};
use crate::ingest::{self, IngestContext, Prepared};
use crate::store::{FeedState, Store, StoreError};

/// Parses and classifies fetch results off the writer, on one worker
/// thread per core. Cheap to clone (shared); the workers end when the last
/// clone is gone.
///
/// Its own threads rather than tokio's blocking pool or rayon: a fixed
/// set, so the work stays at one feed per core with nothing to tune, and
/// no thread is started per burst (tokio's pool starts a new thread
/// whenever none is idle at that instant, and each new thread may take its
/// own malloc arena: more memory for nothing). A fetch task hands its
/// result over on a bounded channel and awaits the answer; rayon would add
/// a crate for the same few lines.
#[derive(Clone)]
pub struct Preparer {
    config: Arc<Config>,
    classifier: Arc<Classifier>,
    shared: Arc<Shared>,
}

/// What every `Preparer` of one database shares, across reloads.
struct Shared {
    db: PathBuf,
    jobs: mpsc::Sender<Job>,
    /// Idle read-only connections for the "seen before?" lookups, one per
    /// worker at most (opened on first use).
    readers: Mutex<Vec<Store>>,
}

/// One fetch result to read, with the rules to read it by.
struct Job {
    feed: Feed,
    state: FeedState,
    result: Result<Fetched, FetchError>,
    jitter: f64,
    config: Arc<Config>,
    classifier: Arc<Classifier>,
    reply: oneshot::Sender<Result<Prepared, StoreError>>,
}

impl Preparer {
    /// Reads feeds with `classifier` (compiled from `config`'s rules),
    /// looking items up in the database at `db`, which must exist.
    pub fn new(config: Arc<Config>, classifier: Arc<Classifier>, db: &Path) -> Preparer {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        // Each worker holds at most one job, and this many wait: enough
        // that a worker never idles while a fetched document waits.
        let (jobs, queue) = mpsc::channel::<Job>(cores);
        let shared = Arc::new(Shared {
            db: db.to_path_buf(),
            jobs,
            readers: Mutex::new(Vec::new()),
        });
        let queue = Arc::new(Mutex::new(queue));
        for n in 0..cores {
            let (queue, shared) = (queue.clone(), Arc::downgrade(&shared));
            let started = std::thread::Builder::new()
                .name(format!("prepare-{n}"))
                .spawn(move || work(&queue, &shared));
            if let Err(e) = started {
                // Fewer workers, slower; none at all is reported per feed.
                tracing::error!("cannot start a feed reader thread: {e}");
            }
        }
        Preparer {
            config,
            classifier,
            shared,
        }
    }

    /// The same, with a reloaded config and its rules; feeds already being
    /// read finish with the rules they started with.
    pub fn with_rules(&self, config: Arc<Config>, classifier: Arc<Classifier>) -> Preparer {
        Preparer {
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
        lock(&self.shared.readers).clear();
    }

    /// `ingest::prepare` for one fetch result, on a worker. `jitter` in
    /// [0, 1) spreads the next poll. A panic while reading the feed becomes
    /// a failure of that feed (`ingest::prepare_broken`).
    pub async fn prepare(
        &self,
        feed: Feed,
        state: FeedState,
        result: Result<Fetched, FetchError>,
        jitter: f64,
    ) -> Result<Prepared, StoreError> {
        let (reply, answer) = oneshot::channel();
        let fallback = (feed.clone(), state.clone());
        let job = Job {
            feed,
            state,
            result,
            jitter,
            config: self.config.clone(),
            classifier: self.classifier.clone(),
            reply,
        };
        let now = Utc::now();
        let failure = match self.shared.jobs.send(job).await {
            Ok(()) => match answer.await {
                Ok(prepared) => return prepared,
                Err(_) => "the feed reader stopped while reading it".to_string(),
            },
            Err(_) => "no feed reader is running".to_string(),
        };
        let (feed, state) = fallback;
        let policy = policy(&self.config);
        let ctx = context(&self.config, &policy, &self.classifier, now, jitter);
        Ok(ingest::prepare_broken(&feed, state, failure, &ctx))
    }
}

/// A worker: takes jobs until every `Preparer` is gone.
fn work(queue: &Mutex<mpsc::Receiver<Job>>, shared: &std::sync::Weak<Shared>) {
    loop {
        // The lock is held only while waiting for a job, so the others
        // wait for the lock instead, and each job goes to one worker.
        let next = {
            let mut queue = lock(queue);
            queue.blocking_recv()
        };
        let Some(job) = next else {
            return;
        };
        let Some(shared) = shared.upgrade() else {
            return;
        };
        let Job {
            feed,
            state,
            result,
            jitter,
            config,
            classifier,
            reply,
        } = job;
        let now = Utc::now();
        let policy = policy(&config);
        let ctx = context(&config, &policy, &classifier, now, jitter);
        let fallback = state.clone();
        let read = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let reader = match lock(&shared.readers).pop() {
                Some(reader) => reader,
                None => Store::open_read_only(&shared.db)?,
            };
            let prepared = ingest::prepare(&reader, &feed, state, result, &ctx);
            lock(&shared.readers).push(reader);
            prepared
        }));
        let prepared = read.unwrap_or_else(|panic| {
            let message = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "it panicked".into());
            tracing::error!(feed = %feed.id, "reading the feed failed: {message}");
            Ok(ingest::prepare_broken(&feed, fallback, message, &ctx))
        });
        // The fetch task went away only if the cycle was abandoned.
        let _ = reply.send(prepared);
    }
}

/// `prepare` folds nothing, but its context carries the config's policy.
pub(super) fn policy(config: &Config) -> Policy {
    Policy {
        min_sources: config.treaties.min_sources(),
    }
}

fn context<'a>(
    config: &'a Config,
    policy: &'a Policy,
    classifier: &'a Classifier,
    now: chrono::DateTime<Utc>,
    jitter: f64,
) -> IngestContext<'a> {
    IngestContext {
        settings: &config.fetch,
        thresholds: config.notify.thresholds,
        policy,
        classifier,
        rules_version: &config.rules_version,
        now,
        jitter,
    }
}

/// A poisoned lock only means a panic elsewhere, already contained.
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

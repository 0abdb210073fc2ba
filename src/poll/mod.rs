//! The poll pipeline, for `treatywatch poll` (`poll_feeds`, one cycle) and
//! the daemon's due feeds (`daemon/scheduler.rs` and `writer.rs`):
//!
//! 1. fetches run concurrently on a tokio runtime, at most `concurrency`
//!    feeds in progress and `per_host` requests to one host;
//! 2. each result is parsed and classified (`ingest::prepare`) on one of
//!    `Preparer`'s worker threads (`prepare.rs`), one per core, with its "seen before?"
//!    lookups on a read-only connection of the worker's;
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
use std::sync::Arc;

use chrono::Utc;
use tokio::sync::{Semaphore, mpsc};

use crate::classify::Classifier;
use crate::config::{Config, Feed};
use crate::fetch::{Fetcher, HostLimit, Validators};
use crate::ingest::{self, FeedOutcome, FeedReport, Prepared};
use crate::store::{Store, StoreError};

mod prepare;

pub use prepare::Preparer;

/// The most feeds the writer commits in one transaction. Enough that a
/// cycle's fsyncs stop mattering (a batch is whatever arrived during the
/// last commit, rarely this many); small enough that a batch's items stay a
/// few megabytes.
pub const BATCH_FEEDS: usize = 32;

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
    let policy = prepare::policy(config);
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
            // Boxed, so a task waiting for its turn holds only what it
            // captured, not room for the whole fetch and read: every feed's
            // task is spawned at once (10,000 of them at 10,000 feeds).
            let result = Box::pin(fetcher.fetch(&feed.url, &validators, Utc::now())).await;
            drop(host);
            let prepared = Box::pin(preparer.prepare(feed, state, result, jitter)).await;
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

//! One poll cycle over many feeds: fetches run concurrently on a tokio
//! runtime (at most `concurrency` at once, `per_host` to one host) while the calling thread, the one
//! writer, ingests each result as it arrives.
//!
//! A failing feed is data in its report, never an abort: only a store
//! failure stops the cycle. Used by `treatywatch poll`, and by the daemon
//! for the feeds that are due.

use std::hash::BuildHasher;
use std::sync::Arc;

use chrono::Utc;
use tokio::sync::{Semaphore, mpsc};

use crate::classify::Classifier;
use crate::config::{Config, Feed};
use crate::domain::Policy;
use crate::fetch::{FetchError, Fetched, Fetcher, HostLimit, Validators};
use crate::ingest::{self, FeedOutcome, FeedReport, IngestContext};
use crate::store::{Store, StoreError};

/// Polls `feeds` once. `progress(done, total)` is called after each feed.
/// Must be called from outside the runtime `rt` belongs to.
pub fn poll_feeds(
    rt: &tokio::runtime::Handle,
    fetcher: &Fetcher,
    store: &mut Store,
    config: &Config,
    feeds: &[&Feed],
    classifier: &Classifier,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<Vec<FeedReport>, StoreError> {
    let policy = Policy {
        min_sources: config.treaties.min_sources(),
    };
    let mut reports: Vec<Option<FeedReport>> = vec![None; feeds.len()];
    let (tx, mut rx) =
        mpsc::channel::<(usize, Result<Fetched, FetchError>)>(config.fetch.concurrency.max(1) * 2);
    let permits = Arc::new(Semaphore::new(config.fetch.concurrency.max(1)));
    let hosts = HostLimit::new(config.fetch.per_host);
    let mut states = Vec::with_capacity(feeds.len());
    let mut in_flight = 0;
    for (i, feed) in feeds.iter().enumerate() {
        let state = ingest::starting_state(store.feed_state(&feed.id)?, feed);
        if let Some(reason) = ingest::skip_reason(feed, &state) {
            reports[i] = Some(FeedReport {
                feed_id: feed.id.clone(),
                outcome: FeedOutcome::Skipped(reason),
                alerts: Vec::new(),
            });
        } else {
            let validators = Validators {
                etag: state.etag.clone(),
                last_modified: state.last_modified.clone(),
            };
            let (fetcher, tx, permits, hosts, url) = (
                fetcher.clone(),
                tx.clone(),
                permits.clone(),
                hosts.clone(),
                feed.url.clone(),
            );
            rt.spawn(async move {
                // The host's slot first: waiting on a busy host holds no
                // slot another host could use (`fetch::HostLimit`).
                let Some(_host) = hosts.acquire(&url).await else {
                    return;
                };
                let Ok(_permit) = permits.acquire_owned().await else {
                    return;
                };
                let result = fetcher.fetch(&url, &validators, Utc::now()).await;
                // The receiver only goes away when the cycle is abandoned.
                let _ = tx.send((i, result)).await;
            });
            in_flight += 1;
        }
        states.push(Some(state));
    }
    drop(tx);
    let total = feeds.len();
    let mut done = total - in_flight;
    progress(done, total);
    let random = std::collections::hash_map::RandomState::new();
    while let Some((i, result)) = rx.blocking_recv() {
        let feed = feeds[i];
        let state = states[i].take().expect("each feed is fetched once");
        let ctx = IngestContext {
            settings: &config.fetch,
            thresholds: config.notify.thresholds,
            policy: &policy,
            classifier,
            rules_version: &config.rules_version,
            now: Utc::now(),
            jitter: (random.hash_one((&feed.id, i)) % 10_000) as f64 / 10_000.0,
        };
        reports[i] = Some(ingest::ingest(store, feed, state, result, &ctx)?);
        done += 1;
        progress(done, total);
    }
    Ok(reports.into_iter().flatten().collect())
}

//! One feed through the pipeline: a fetch result in, the feed's new state,
//! its new or changed items and their detections committed to the store.
//!
//! This is the one function that walks a feed through parse → classify →
//! append (the stages never call each other). It decides nothing about
//! when to poll beyond recording `next_poll`, and does no network I/O.

use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::classify::{self, Classifier, Text};
use crate::config::{Feed, FetchSettings};
use crate::domain::{Detection, EventBody, Evidence, NewEvent, Policy, StoredEvent};
use crate::feed::{self, Item};
use crate::fetch::schedule::{self, LastPoll};
use crate::fetch::{FetchError, Fetched};
use crate::store::{FeedState, ItemChange, Store, StoreError};

/// What polling one feed came to; the `poll` summary line is made from it.
#[derive(Debug, Clone)]
pub struct FeedReport {
    pub feed_id: String,
    pub outcome: FeedOutcome,
}

#[derive(Debug, Clone)]
pub enum FeedOutcome {
    Fetched {
        status: u16,
        new: usize,
        changed: usize,
        detections: usize,
        changes: Vec<StoredEvent>,
        /// Permanent redirects lead here: update the feed's url.
        moved_to: Option<String>,
    },
    NotModified,
    Failed {
        error: String,
        status: Option<u16>,
        failures: u32,
        next_poll: Option<DateTime<Utc>>,
    },
    /// Not polled: disabled in the config, or gone (410) at this URL.
    Skipped(String),
}

impl FeedOutcome {
    pub fn is_failure(&self) -> bool {
        matches!(self, FeedOutcome::Failed { .. })
            || matches!(self, FeedOutcome::Skipped(r) if r.contains("410"))
    }
}

/// The state to start a poll from: the stored one, unless the feed's URL
/// changed in the config, which starts afresh (new validators, not gone).
pub fn starting_state(stored: Option<FeedState>, feed: &Feed) -> FeedState {
    match stored {
        Some(s) if s.url == feed.url.as_str() => s,
        _ => FeedState::new(&feed.id, feed.url.as_str()),
    }
}

/// Whether a feed should not be fetched at all, and why.
pub fn skip_reason(feed: &Feed, state: &FeedState) -> Option<String> {
    if !feed.enabled {
        Some("disabled in the config (enabled = false)".into())
    } else if state.gone {
        Some(format!(
            "not polled: the server answered 410 Gone for {}; remove the feed or change its url",
            state.url
        ))
    } else {
        None
    }
}

/// Everything `ingest` needs besides the store and the fetch result.
pub struct IngestContext<'a> {
    pub settings: &'a FetchSettings,
    pub policy: &'a Policy,
    pub classifier: &'a Classifier,
    /// The version of the rules `classifier` was compiled from.
    pub rules_version: &'a str,
    pub now: DateTime<Utc>,
    /// In [0, 1): spreads the next poll (see `schedule`).
    pub jitter: f64,
}

/// Records the result of fetching `feed`: on success parses, classifies new
/// or changed items and commits them with their events; on failure records
/// the error and the backoff. Only a store failure is an error here.
pub fn ingest(
    store: &mut Store,
    feed: &Feed,
    mut state: FeedState,
    result: Result<Fetched, FetchError>,
    ctx: &IngestContext<'_>,
) -> Result<FeedReport, StoreError> {
    let report = |outcome| FeedReport {
        feed_id: feed.id.clone(),
        outcome,
    };
    state.last_attempt = Some(ctx.now);
    let fetched = match result {
        Ok(f) => f,
        Err(error) => {
            let status = error.status();
            state.gone = matches!(error, FetchError::Gone);
            return fail(
                store,
                feed,
                state,
                error.to_string(),
                status,
                error.retry_after(),
                ctx,
            )
            .map(report);
        }
    };
    let Some(body) = &fetched.body else {
        succeed(&mut state, feed, &fetched, None, ctx);
        store.save_feed_state(&state)?;
        return Ok(report(FeedOutcome::NotModified));
    };
    let parsed = match feed::parse(
        body,
        fetched.content_type.as_deref(),
        Some(&fetched.final_url),
    ) {
        Ok(p) => p,
        Err(e) => {
            let status = Some(fetched.status);
            return fail(store, feed, state, e.to_string(), status, None, ctx).map(report);
        }
    };
    let first_sync = state.last_success.is_none();
    let changes = store.item_changes(&feed.id, &parsed.items)?;
    let mut touched: Vec<&Item> = Vec::new();
    let (mut new, mut changed) = (0, 0);
    let mut events = Vec::new();
    for (item, change) in parsed.items.iter().zip(&changes) {
        match change {
            None => continue,
            Some(ItemChange::New) => new += 1,
            Some(ItemChange::Changed) => changed += 1,
        }
        touched.push(item);
        let backfill = is_backfill(item, first_sync, ctx);
        for detection in ctx.classifier.classify(&text_of(item)) {
            events.push(detection_event(feed, item, detection, backfill, ctx));
        }
    }
    let ttl = parsed
        .ttl_minutes
        .map(|m| Duration::from_secs(u64::from(m) * 60));
    succeed(&mut state, feed, &fetched, ttl, ctx);
    if let Some(newest) = parsed.items.iter().filter_map(|i| i.published).max() {
        state.last_item_at = Some(state.last_item_at.map_or(newest, |t| t.max(newest)));
    }
    let detections = events.len();
    let outcome = store.commit_feed(&state, &touched, &events, ctx.policy, ctx.now)?;
    Ok(report(FeedOutcome::Fetched {
        status: fetched.status,
        new,
        changed,
        detections,
        changes: outcome.changes,
        moved_to: fetched.moved_to.map(|u| u.to_string()),
    }))
}

/// Old news: published before the backfill age, or undated on a feed's
/// first sync. Its status changes are recorded but never emailed.
fn is_backfill(item: &Item, first_sync: bool, ctx: &IngestContext<'_>) -> bool {
    match item.published {
        Some(p) => is_old(p, ctx.now, ctx.settings.backfill_age),
        None => first_sync,
    }
}

/// Whether news published at `published` was already older than
/// `backfill_age` when it was seen at `seen`.
pub fn is_old(published: DateTime<Utc>, seen: DateTime<Utc>, backfill_age: Duration) -> bool {
    seen.signed_duration_since(published)
        .to_std()
        .is_ok_and(|age| age > backfill_age)
}

/// What the classifier reads of an item: dated by its publication, so
/// "ratified in 2005" is history relative to when the news was written.
pub fn text_of(item: &Item) -> Text {
    Text {
        title: item.title.clone(),
        body: item.text.clone(),
        date: item.published.map(|p| p.date_naive()),
    }
}

fn detection_event(
    feed: &Feed,
    item: &Item,
    f: classify::Detection,
    backfill: bool,
    ctx: &IngestContext<'_>,
) -> NewEvent {
    NewEvent {
        // A date in the future is a publisher's clock error, not news from tomorrow.
        occurred_at: item.published.map_or(ctx.now, |p| p.min(ctx.now)),
        body: EventBody::Detection(Detection {
            state: f.state,
            treaty: f.treaty,
            action: f.action,
            rule: f.rule,
            rules_version: ctx.rules_version.to_string(),
            source: feed.id.clone(),
            item_key: item.key.clone(),
            evidence: Evidence {
                sentence: f.evidence,
                link: item.link.clone(),
                title: Some(item.title.clone()).filter(|t| !t.is_empty()),
            },
            authoritative: feed.authoritative,
            backfill,
            revives: None,
        }),
    }
}

fn succeed(
    state: &mut FeedState,
    feed: &Feed,
    fetched: &Fetched,
    ttl: Option<Duration>,
    ctx: &IngestContext<'_>,
) {
    state.etag = fetched.validators.etag.clone();
    state.last_modified = fetched.validators.last_modified.clone();
    state.last_success = Some(ctx.now);
    state.last_status = Some(fetched.status);
    state.last_error = None;
    state.consecutive_failures = 0;
    state.moved_to = fetched.moved_to.as_ref().map(|u| u.to_string());
    let last = LastPoll {
        hints: fetched.hints,
        ttl,
        failures: 0,
    };
    state.next_poll = Some(schedule::next_poll(
        ctx.now,
        feed.interval,
        &last,
        ctx.settings.backoff_cap,
        ctx.jitter,
    ));
}

fn fail(
    store: &mut Store,
    feed: &Feed,
    mut state: FeedState,
    error: String,
    status: Option<u16>,
    retry_after: Option<Duration>,
    ctx: &IngestContext<'_>,
) -> Result<FeedOutcome, StoreError> {
    state.consecutive_failures = state.consecutive_failures.saturating_add(1);
    state.last_status = status;
    state.last_error = Some(error.clone());
    let last = LastPoll {
        hints: crate::fetch::CacheHints {
            retry_after,
            ..Default::default()
        },
        ttl: None,
        failures: state.consecutive_failures,
    };
    state.next_poll = Some(schedule::next_poll(
        ctx.now,
        feed.interval,
        &last,
        ctx.settings.backoff_cap,
        ctx.jitter,
    ));
    store.save_feed_state(&state)?;
    Ok(FeedOutcome::Failed {
        error,
        status,
        failures: state.consecutive_failures,
        next_poll: state.next_poll,
    })
}

//! One feed through the pipeline: a fetch result in, the feed's new state,
//! its new or changed items, their detections and any source-health alert
//! committed to the store together.
//!
//! This is the one place that walks a feed through parse → classify →
//! append (the stages never call each other), in two steps so the work can
//! leave the writer: `prepare` parses, asks the store which items are new
//! or changed (a read) and classifies those, writing nothing; `commit`
//! records prepared polls, one transaction for a whole batch of feeds,
//! each feed's state, items and events together. `ingest` is both for one
//! feed. It decides nothing about when to poll beyond recording
//! `next_poll`, and does no network I/O.

use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::classify::{self, Classifier, Text};
use crate::config::{Feed, FetchSettings};
use crate::domain::{Detection, EventBody, Evidence, NewEvent, Policy, SourceHealth, StoredEvent};
use crate::feed::{self, Item};
use crate::fetch::schedule::{self, LastPoll};
use crate::fetch::{FetchError, Fetched};
use crate::health::{self, Poll, Thresholds};
use crate::store::{AppendOutcome, FeedCommit, FeedState, ItemChange, Store, StoreError};

/// What polling one feed came to; the `poll` summary line is made from it.
#[derive(Debug, Clone)]
pub struct FeedReport {
    pub feed_id: String,
    pub outcome: FeedOutcome,
    /// Source-health alerts this poll recorded (see `health`).
    pub alerts: Vec<SourceHealth>,
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
        /// `(kept, total)` when the document had more items than
        /// `[fetch] max_items`: only the first `kept` were read.
        truncated: Option<(usize, usize)>,
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
/// changed in the config, which starts afresh (new validators, not gone)
/// but keeps its open health alerts, so the new url's first success is
/// announced as the recovery.
pub fn starting_state(stored: Option<FeedState>, feed: &Feed) -> FeedState {
    match stored {
        Some(s) if s.url == feed.url.as_str() => s,
        stored => {
            let mut fresh = FeedState::new(&feed.id, feed.url.as_str());
            if let Some(s) = stored {
                health::carry_alerts(&s, &mut fresh);
            }
            fresh
        }
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
    /// When a feed's health is worth an alert; a feed's own `stale_after`
    /// overrides this one's.
    pub thresholds: Thresholds,
    pub policy: &'a Policy,
    pub classifier: &'a Classifier,
    /// The version of the rules `classifier` was compiled from.
    pub rules_version: &'a str,
    pub now: DateTime<Utc>,
    /// In [0, 1): spreads the next poll (see `schedule`).
    pub jitter: f64,
}

/// A feed's poll worked out and ready to commit: its new state, its new or
/// changed items, their detections and the health alerts, with the report
/// `commit` completes. `prepare` makes it off the writer; nothing of it is
/// recorded until `commit`.
#[derive(Debug)]
pub struct Prepared {
    state: FeedState,
    /// The new or changed items, in document order.
    items: Vec<Item>,
    events: Vec<NewEvent>,
    now: DateTime<Utc>,
    /// Its `Fetched { changes }` is filled in by `into_report`.
    report: FeedReport,
}

impl Prepared {
    pub fn feed_id(&self) -> &str {
        &self.state.feed_id
    }

    /// The report, with the status changes `commit` caused.
    pub fn into_report(mut self, committed: AppendOutcome) -> FeedReport {
        if let FeedOutcome::Fetched { changes, .. } = &mut self.report.outcome {
            *changes = committed.changes;
        }
        self.report
    }
}

/// Records the result of fetching `feed`: on success parses, classifies new
/// or changed items and commits them with their events; on failure records
/// the error and the backoff. Either way the feed's health is assessed and
/// any alert it calls for is committed with the state that caused it. Only a
/// store failure is an error here. `prepare` then `commit`, in one.
pub fn ingest(
    store: &mut Store,
    feed: &Feed,
    state: FeedState,
    result: Result<Fetched, FetchError>,
    ctx: &IngestContext<'_>,
) -> Result<FeedReport, StoreError> {
    let prepared = prepare(store, feed, state, result, ctx)?;
    let mut committed = commit(store, [&prepared], ctx.policy)?;
    Ok(prepared.into_report(committed.pop().unwrap_or_default()))
}

/// Commits prepared polls in one transaction (one fsync for the lot), each
/// feed's state, items and events together; the outcomes in order. All or
/// nothing: after an error none of them is recorded.
pub fn commit<'a>(
    store: &mut Store,
    batch: impl IntoIterator<Item = &'a Prepared>,
    policy: &Policy,
) -> Result<Vec<AppendOutcome>, StoreError> {
    let feeds: Vec<FeedCommit<'_>> = batch
        .into_iter()
        .map(|p| FeedCommit {
            state: &p.state,
            items: &p.items,
            events: &p.events,
            now: p.now,
        })
        .collect();
    store.commit_feeds(&feeds, policy)
}

/// Works out what polling `feed` came to, writing nothing: parses the
/// document, asks `seen` (any connection to the store, read-only will do)
/// which items are new or changed, and classifies only those. Pure but for
/// that read, so it runs off the writer; a store failure of the read is
/// the only error.
///
/// The read is current because a feed is in one poll at a time: `poll`
/// fetches each feed once a cycle, and the daemon fetches a feed again only
/// after its last poll was committed.
pub fn prepare(
    seen: &Store,
    feed: &Feed,
    mut state: FeedState,
    result: Result<Fetched, FetchError>,
    ctx: &IngestContext<'_>,
) -> Result<Prepared, StoreError> {
    let before = state.clone();
    state.last_attempt = Some(ctx.now);
    let fetched = match result {
        Ok(f) => f,
        Err(error) => {
            state.gone = matches!(error, FetchError::Gone);
            let failure = Failure {
                error: error.to_string(),
                summary: error.summary(),
                status: error.status(),
                retry_after: error.retry_after(),
            };
            return Ok(fail(feed, &before, state, failure, ctx));
        }
    };
    let Some(body) = &fetched.body else {
        succeed(&mut state, feed, &fetched, None, ctx);
        return Ok(without_items(
            feed,
            &before,
            state,
            Poll::Succeeded,
            FeedOutcome::NotModified,
            ctx,
        ));
    };
    let parsed = match feed::parse_at_most(
        body,
        fetched.content_type.as_deref(),
        Some(&fetched.final_url),
        ctx.settings.max_items,
    ) {
        Ok(p) => p,
        Err(e) => {
            let failure = Failure {
                error: e.to_string(),
                summary: e.summary().to_string(),
                status: Some(fetched.status),
                retry_after: None,
            };
            return Ok(fail(feed, &before, state, failure, ctx));
        }
    };
    let truncated = parsed.truncated();
    if let Some((kept, total)) = truncated {
        tracing::warn!(
            feed = %feed.id,
            kept,
            total,
            "kept {} of {} items ([fetch] max_items)",
            thousands(kept),
            thousands(total)
        );
    }
    let first_sync = state.last_success.is_none();
    let changes = seen.item_changes(&feed.id, &parsed.items)?;
    // A date in the future is a publisher's clock error; an undated item
    // seen for the first time was published, as far as we can tell, now.
    let dated = parsed.items.iter().filter_map(|i| i.published).max();
    let ttl = parsed
        .ttl_minutes
        .map(|m| Duration::from_secs(u64::from(m) * 60));
    let mut touched: Vec<Item> = Vec::new();
    let (mut new, mut changed) = (0, 0);
    let mut events = Vec::new();
    let mut undated_new = false;
    for (item, change) in parsed.items.into_iter().zip(changes) {
        match change {
            None => continue,
            Some(ItemChange::New) => {
                new += 1;
                undated_new |= item.published.is_none();
            }
            Some(ItemChange::Changed) => changed += 1,
        }
        let backfill = is_backfill(&item, first_sync, ctx);
        for detection in ctx.classifier.classify(&text_of(&item, ctx.now)) {
            events.push(detection_event(feed, &item, detection, backfill, ctx));
        }
        touched.push(item);
    }
    succeed(&mut state, feed, &fetched, ttl, ctx);
    let newest = dated
        .map(|t| t.min(ctx.now))
        .into_iter()
        .chain(undated_new.then_some(ctx.now))
        .max();
    if let Some(newest) = newest {
        state.last_item_at = Some(state.last_item_at.map_or(newest, |t| t.max(newest)));
    }
    let detections = events.len();
    let alerts = assess(feed, &before, &mut state, Poll::Succeeded, ctx);
    events.extend(alert_events(&alerts, ctx));
    Ok(Prepared {
        state,
        items: touched,
        events,
        now: ctx.now,
        report: FeedReport {
            feed_id: feed.id.clone(),
            outcome: FeedOutcome::Fetched {
                status: fetched.status,
                new,
                changed,
                detections,
                changes: Vec::new(),
                moved_to: fetched.moved_to.map(|u| u.to_string()),
                truncated,
            },
            alerts,
        },
    })
}

/// A poll that could not be worked out because treatywatch itself failed
/// (reading the feed panicked): recorded as a failure of the feed, backed
/// off and retried like any other, so one feed cannot stop a cycle.
pub fn prepare_broken(
    feed: &Feed,
    mut state: FeedState,
    error: String,
    ctx: &IngestContext<'_>,
) -> Prepared {
    let before = state.clone();
    state.last_attempt = Some(ctx.now);
    let failure = Failure {
        error: format!("treatywatch failed reading this feed (a bug; please report it): {error}"),
        summary: "treatywatch failed reading the feed".to_string(),
        status: None,
        retry_after: None,
    };
    fail(feed, &before, state, failure, ctx)
}

/// "50,000": counts in messages are read by people.
pub fn thousands(n: usize) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// The feed's health after this poll, with its own `stale_after` if set.
fn assess(
    feed: &Feed,
    before: &FeedState,
    after: &mut FeedState,
    poll: Poll<'_>,
    ctx: &IngestContext<'_>,
) -> Vec<SourceHealth> {
    let thresholds = Thresholds {
        stale_after: feed.stale_after.unwrap_or(ctx.thresholds.stale_after),
        ..ctx.thresholds
    };
    health::assess(before, after, poll, &thresholds, ctx.now)
}

/// A poll that brought no items (a 304 or a failure): the feed's new
/// state and the source alerts it calls for, to be committed together.
fn without_items(
    feed: &Feed,
    before: &FeedState,
    mut state: FeedState,
    poll: Poll<'_>,
    outcome: FeedOutcome,
    ctx: &IngestContext<'_>,
) -> Prepared {
    let alerts = assess(feed, before, &mut state, poll, ctx);
    Prepared {
        state,
        items: Vec::new(),
        events: alert_events(&alerts, ctx),
        now: ctx.now,
        report: FeedReport {
            feed_id: feed.id.clone(),
            outcome,
            alerts,
        },
    }
}

fn alert_events(alerts: &[SourceHealth], ctx: &IngestContext<'_>) -> Vec<NewEvent> {
    alerts
        .iter()
        .map(|a| NewEvent {
            occurred_at: ctx.now,
            body: EventBody::SourceHealth(a.clone()),
        })
        .collect()
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
/// What the classifier reads of an item. An item without a publication
/// date is anchored to `fetched`, the time it was first read: a stage it
/// dates years back is history all the same.
pub fn text_of(item: &Item, fetched: DateTime<Utc>) -> Text {
    Text {
        title: item.title.clone(),
        body: item.text.clone(),
        date: Some(item.published.unwrap_or(fetched).date_naive()),
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
            takes_effect: None,
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

/// One failed poll, as `fail` records it.
struct Failure {
    /// The full message; may quote the server.
    error: String,
    /// treatywatch's own words for it (see `FetchError::summary`).
    summary: String,
    status: Option<u16>,
    retry_after: Option<Duration>,
}

fn fail(
    feed: &Feed,
    before: &FeedState,
    mut state: FeedState,
    failure: Failure,
    ctx: &IngestContext<'_>,
) -> Prepared {
    state.consecutive_failures = state.consecutive_failures.saturating_add(1);
    state.last_status = failure.status;
    state.last_error = Some(failure.error.clone());
    let last = LastPoll {
        hints: crate::fetch::CacheHints {
            retry_after: failure.retry_after,
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
    let outcome = FeedOutcome::Failed {
        error: failure.error,
        status: failure.status,
        failures: state.consecutive_failures,
        next_poll: state.next_poll,
    };
    let poll = Poll::Failed {
        summary: &failure.summary,
    };
    without_items(feed, before, state, poll, outcome, ctx)
}

#[cfg(test)]
mod tests {
    #[test]
    fn counts_are_grouped_by_thousands() {
        let cases = [
            (0, "0"),
            (999, "999"),
            (2_000, "2,000"),
            (50_000, "50,000"),
            (1_234_567, "1,234,567"),
        ];
        for (n, expected) in cases {
            assert_eq!(super::thousands(n), expected);
        }
    }
}

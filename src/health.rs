//! Source health: decides when a feed's polling crosses a line people should
//! hear about — failing too many polls in a row, back after that, silent for
//! longer than `stale_after`, publishing again — and only then.
//!
//! Pure: the feed's state before and after one poll, what the poll came to,
//! the thresholds and `now` in; the alerts to record out, with the episode
//! bookkeeping (`failing_since`, `failing_alerted`, `stale_since`) updated on
//! the new state. `ingest` commits the state and the alerts in one
//! transaction, so an alert is recorded exactly when the state that caused
//! it is, and the log's dedupe key (feed, condition, episode start) makes a
//! second sighting of the same episode a no-op. It sends nothing: `notify`
//! mails the recorded alerts like status changes.
//!
//! Why these rules:
//! - A run of failures, not a rate: one failed poll is ordinary for a news
//!   site, and polling backs off exponentially, so reaching the default of
//!   five takes hours of trouble.
//! - An episode stays open until a poll succeeds: further failures, however
//!   many, say nothing new, and recovery is announced only for an episode
//!   that was announced. A feed flapping below the threshold is never
//!   mentioned; one flapping across it gets one pair of messages per
//!   episode, each hours apart.
//! - 410 Gone alerts at once: that url is never polled again, so waiting for
//!   more failures would mean waiting forever.
//! - Staleness is judged after a successful poll (a 304 counts): a failing
//!   feed is already reported as failing. A stale episode ends only when a
//!   newer item appears, not when a threshold changes, so editing the config
//!   cannot produce a false "publishing again".

use std::time::Duration;

use chrono::{DateTime, SubsecRound, TimeDelta, Utc};

use crate::domain::{HealthCondition, SourceHealth};
use crate::store::FeedState;

/// Failed polls in a row before the recipients hear that a feed is failing.
pub const DEFAULT_ALERT_AFTER_FAILURES: u32 = 5;
/// A feed whose newest item is older than this is reported as stale.
pub const DEFAULT_STALE_AFTER: Duration = Duration::from_secs(7 * 24 * 60 * 60);

/// When a feed's health is worth an alert (`[notify]` and `[[feed]]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Thresholds {
    /// Failures in a row that make a feed failing; at least 1.
    pub failures: u32,
    pub stale_after: Duration,
}

impl Default for Thresholds {
    fn default() -> Self {
        Thresholds {
            failures: DEFAULT_ALERT_AFTER_FAILURES,
            stale_after: DEFAULT_STALE_AFTER,
        }
    }
}

/// What one poll came to, as far as health is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Poll<'a> {
    /// `summary` is the failure in treatywatch's own words ("HTTP 503").
    Failed { summary: &'a str },
    /// A 200 (parsed) or a 304.
    Succeeded,
}

/// The alerts one poll causes. `before` is the state the poll started from;
/// `after` has the poll's outcome applied (failure count, last error, newest
/// item) and gets the episode bookkeeping updated here.
pub fn assess(
    before: &FeedState,
    after: &mut FeedState,
    poll: Poll<'_>,
    thresholds: &Thresholds,
    now: DateTime<Utc>,
) -> Vec<SourceHealth> {
    // The store keeps microseconds; an episode's start must read back equal
    // to what went into its alert's dedupe key.
    let now = now.trunc_subsecs(6);
    let alert = |state: &FeedState, condition, since| SourceHealth {
        feed: state.feed_id.clone(),
        condition,
        since,
        failures: state.consecutive_failures,
        summary: None,
        error: state.last_error.clone(),
        gone: state.gone,
        last_item_at: state.last_item_at,
    };
    let mut alerts = Vec::new();
    match poll {
        Poll::Failed { summary } => {
            let since = *after.failing_since.get_or_insert(now);
            let crossed = after.consecutive_failures >= thresholds.failures.max(1) || after.gone;
            if crossed && !after.failing_alerted {
                after.failing_alerted = true;
                alerts.push(SourceHealth {
                    summary: Some(summary.to_string()),
                    ..alert(after, HealthCondition::Failing, since)
                });
            }
        }
        Poll::Succeeded => {
            if after.failing_alerted {
                // Reported as it stood before this poll cleared it.
                let since = after.failing_since.unwrap_or(now);
                alerts.push(SourceHealth {
                    gone: false,
                    last_item_at: after.last_item_at,
                    ..alert(before, HealthCondition::Recovered, since)
                });
            }
            after.failing_alerted = false;
            after.failing_since = None;
            match (after.stale_since, after.last_item_at) {
                (Some(quiet_since), Some(newest)) if newest > quiet_since => {
                    after.stale_since = None;
                    alerts.push(alert(after, HealthCondition::Fresh, quiet_since));
                }
                (None, Some(newest)) if is_stale(newest, thresholds.stale_after, now) => {
                    after.stale_since = Some(newest);
                    alerts.push(alert(after, HealthCondition::Stale, newest));
                }
                _ => {}
            }
        }
    }
    alerts
}

fn is_stale(newest: DateTime<Utc>, stale_after: Duration, now: DateTime<Utc>) -> bool {
    let limit = TimeDelta::from_std(stale_after).unwrap_or(TimeDelta::MAX);
    now.signed_duration_since(newest) >= limit
}

/// The state a feed starts from at a new url keeps its open alerts, so
/// fixing a broken feed by changing its url is announced as a recovery (and
/// a stale feed's replacement as publishing again) instead of leaving the
/// recipients' last word "failing".
pub fn carry_alerts(stored: &FeedState, fresh: &mut FeedState) {
    if stored.failing_alerted {
        fresh.failing_alerted = true;
        fresh.failing_since = stored.failing_since;
    }
    fresh.stale_since = stored.stale_since;
}

#[cfg(test)]
mod tests {
    use super::*;
    use HealthCondition::*;
    use chrono::TimeZone;

    /// One step of a feed's life: a failure, or a success whose newest item
    /// is this many days old (`None`: no dated item).
    #[derive(Clone, Copy)]
    enum Step {
        Fail,
        Gone,
        Ok(Option<i64>),
    }
    use Step::*;

    fn t(hour: i64) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2025, 6, 1, 0, 0, 0)
            .single()
            .expect("date")
            + TimeDelta::hours(hour)
    }

    /// Plays `steps` an hour apart, the way `ingest` updates a state, and
    /// returns each step's alerts as (condition, failures, episode start hour).
    fn play(steps: &[Step]) -> Vec<Vec<(HealthCondition, u32, i64)>> {
        let thresholds = Thresholds {
            failures: 3,
            stale_after: Duration::from_secs(2 * 24 * 3600),
        };
        let mut state = FeedState::new("wire", "https://example.org/rss");
        let mut out = Vec::new();
        for (i, step) in steps.iter().enumerate() {
            let now = t(i as i64 * 24);
            let before = state.clone();
            let poll = match step {
                Fail | Gone => {
                    state.consecutive_failures += 1;
                    state.last_error = Some("HTTP 503 Service Unavailable".into());
                    state.gone = matches!(step, Gone);
                    Poll::Failed {
                        summary: "HTTP 503",
                    }
                }
                Ok(age) => {
                    state.consecutive_failures = 0;
                    state.last_error = None;
                    if let Some(days) = age {
                        let newest = now - TimeDelta::days(*days);
                        state.last_item_at =
                            Some(state.last_item_at.map_or(newest, |t| t.max(newest)));
                    }
                    Poll::Succeeded
                }
            };
            let alerts = assess(&before, &mut state, poll, &thresholds, now);
            out.push(
                alerts
                    .iter()
                    .map(|a| (a.condition, a.failures, (a.since - t(0)).num_hours()))
                    .collect(),
            );
        }
        out
    }

    fn check(steps: &[Step], expected: &[(usize, HealthCondition, u32, i64)]) {
        let got: Vec<(usize, HealthCondition, u32, i64)> = play(steps)
            .into_iter()
            .enumerate()
            .flat_map(|(i, alerts)| alerts.into_iter().map(move |(c, n, s)| (i, c, n, s)))
            .collect();
        assert_eq!(got, expected);
    }

    #[test]
    fn failing_is_announced_once_at_the_threshold_and_recovery_once() {
        // Steps are a day (24 h) apart; the run began at step 1.
        check(
            &[
                Ok(Some(0)),
                Fail,
                Fail,
                Fail,
                Fail,
                Fail,
                Ok(Some(0)),
                Ok(Some(0)),
            ],
            &[(3, Failing, 3, 24), (6, Recovered, 5, 24)],
        );
    }

    #[test]
    fn flapping_below_the_threshold_is_never_announced() {
        check(
            &[Fail, Fail, Ok(None), Fail, Fail, Ok(None), Fail, Fail],
            &[],
        );
    }

    #[test]
    fn each_episode_across_the_threshold_is_its_own_pair() {
        check(
            &[Fail, Fail, Fail, Ok(None), Fail, Fail, Fail, Fail, Ok(None)],
            &[
                (2, Failing, 3, 0),
                (3, Recovered, 3, 0),
                (6, Failing, 3, 96),
                (8, Recovered, 4, 96),
            ],
        );
    }

    #[test]
    fn gone_is_announced_at_once() {
        check(&[Ok(None), Gone], &[(1, Failing, 1, 24)]);
    }

    #[test]
    fn a_quiet_feed_is_stale_once_and_fresh_once_it_publishes() {
        check(
            &[
                Ok(Some(1)),
                Ok(None),
                Ok(None),
                Ok(None),
                Ok(Some(0)),
                Ok(None),
            ],
            // Newest item at step 0 is a day old (hour -24); stale after two
            // days, reported at step 1; fresh when step 4 brings a new one.
            &[(1, Stale, 0, -24), (4, Fresh, 0, -24)],
        );
    }

    #[test]
    fn staleness_is_not_judged_while_failing() {
        check(
            &[Ok(Some(0)), Fail, Fail, Fail, Ok(None)],
            &[(3, Failing, 3, 24), (4, Recovered, 3, 24), (4, Stale, 0, 0)],
        );
    }

    #[test]
    fn a_feed_without_dated_items_is_never_stale() {
        check(&[Ok(None), Ok(None), Ok(None), Ok(None)], &[]);
    }

    #[test]
    fn a_new_url_inherits_open_alerts() {
        let mut stored = FeedState::new("wire", "https://old.example.org/rss");
        stored.consecutive_failures = 7;
        stored.failing_alerted = true;
        stored.failing_since = Some(t(0));
        let mut fresh = FeedState::new("wire", "https://new.example.org/rss");
        carry_alerts(&stored, &mut fresh);
        let before = fresh.clone();
        let alerts = assess(
            &before,
            &mut fresh,
            Poll::Succeeded,
            &Thresholds::default(),
            t(5),
        );
        assert_eq!(alerts.len(), 1, "{alerts:?}");
        assert_eq!((alerts[0].condition, alerts[0].since), (Recovered, t(0)));
        assert!(!fresh.failing_alerted && fresh.failing_since.is_none());
    }
}

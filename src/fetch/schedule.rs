//! When to poll a feed next: the configured interval, stretched by what the
//! publisher asks (ttl, max-age, Expires, Retry-After) and by exponential
//! backoff after failures. Pure arithmetic: `now` and the jitter are inputs.

use std::time::Duration;

use chrono::{DateTime, Utc};

use super::CacheHints;

/// A publisher's caching wishes are honoured up to this long; beyond it a
/// misconfigured header would silence a feed for days.
pub const MAX_HINT: Duration = Duration::from_secs(24 * 60 * 60);
/// Default ceiling of the failure backoff.
pub const DEFAULT_BACKOFF_CAP: Duration = Duration::from_secs(6 * 60 * 60);
/// Jitter stretches each delay by up to this fraction, so feeds configured
/// alike drift apart instead of firing together.
pub const JITTER_FRACTION: f64 = 0.1;

/// What the last poll of a feed came to.
#[derive(Debug, Clone, Copy)]
pub struct LastPoll {
    pub hints: CacheHints,
    pub ttl: Option<Duration>,
    /// Consecutive failures including this poll (0 after a success).
    pub failures: u32,
}

/// The earliest time the feed may be polled again. `jitter` is a number in
/// [0, 1) chosen by the caller.
pub fn next_poll(
    now: DateTime<Utc>,
    interval: Duration,
    last: &LastPoll,
    backoff_cap: Duration,
    jitter: f64,
) -> DateTime<Utc> {
    let asked = [
        last.ttl,
        last.hints.max_age,
        last.hints.expires_in,
        last.hints.retry_after,
    ]
    .into_iter()
    .flatten()
    .map(|d| d.min(MAX_HINT))
    .max()
    .unwrap_or(Duration::ZERO);
    let base = if last.failures == 0 {
        interval
    } else {
        // interval × 2^(failures-1), capped; a failing feed is retried forever.
        let factor = 2u32.saturating_pow(last.failures.saturating_sub(1).min(30));
        interval
            .saturating_mul(factor)
            .min(backoff_cap.max(interval))
    };
    let delay = base.max(asked);
    let jittered = delay.mul_f64(1.0 + JITTER_FRACTION * jitter.clamp(0.0, 1.0));
    now + chrono::Duration::from_std(jittered).unwrap_or(chrono::Duration::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    const MIN: Duration = Duration::from_secs(60);

    fn check(interval_min: u64, last: LastPoll, jitter: f64, expected_min: f64) {
        let now = Utc.with_ymd_and_hms(2025, 1, 1, 0, 0, 0).unwrap();
        let next = next_poll(
            now,
            MIN * interval_min as u32,
            &last,
            DEFAULT_BACKOFF_CAP,
            jitter,
        );
        let got = (next - now).num_milliseconds() as f64 / 60_000.0;
        assert!(
            (got - expected_min).abs() < 0.01,
            "{last:?} jitter {jitter}: {got} min, expected {expected_min}"
        );
    }

    fn ok() -> LastPoll {
        LastPoll {
            hints: CacheHints::default(),
            ttl: None,
            failures: 0,
        }
    }

    #[test]
    fn delays_follow_interval_hints_and_backoff() {
        check(15, ok(), 0.0, 15.0);
        check(15, ok(), 0.5, 15.75);
        // The publisher may only make it longer.
        check(
            15,
            LastPoll {
                ttl: Some(MIN * 60),
                ..ok()
            },
            0.0,
            60.0,
        );
        check(
            15,
            LastPoll {
                ttl: Some(MIN * 5),
                ..ok()
            },
            0.0,
            15.0,
        );
        check(
            15,
            LastPoll {
                hints: CacheHints {
                    max_age: Some(MIN * 30),
                    ..Default::default()
                },
                ..ok()
            },
            0.0,
            30.0,
        );
        check(
            15,
            LastPoll {
                hints: CacheHints {
                    expires_in: Some(MIN * 20),
                    ..Default::default()
                },
                ..ok()
            },
            0.0,
            20.0,
        );
        // ...but not for more than a day.
        check(
            15,
            LastPoll {
                ttl: Some(MIN * 60 * 24 * 7),
                ..ok()
            },
            0.0,
            24.0 * 60.0,
        );
        // Failures double the delay up to the cap, and never stop.
        check(
            15,
            LastPoll {
                failures: 1,
                ..ok()
            },
            0.0,
            15.0,
        );
        check(
            15,
            LastPoll {
                failures: 3,
                ..ok()
            },
            0.0,
            60.0,
        );
        check(
            15,
            LastPoll {
                failures: 10,
                ..ok()
            },
            0.0,
            360.0,
        );
        check(
            15,
            LastPoll {
                failures: u32::MAX,
                ..ok()
            },
            0.0,
            360.0,
        );
        // Retry-After wins when it asks for longer.
        check(
            15,
            LastPoll {
                failures: 1,
                hints: CacheHints {
                    retry_after: Some(MIN * 45),
                    ..Default::default()
                },
                ..ok()
            },
            0.0,
            45.0,
        );
    }
}

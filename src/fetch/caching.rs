//! What a response's headers ask of the next poll: Cache-Control max-age,
//! Expires and Retry-After (RFC 9111 §5.2.2.1, §5.3; RFC 9110 §10.2.3).
//! Pure: headers and `now` in, durations out.

use std::time::Duration;

use chrono::{DateTime, Utc};

/// The server's wishes about when to come back. `None` means "said nothing".
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CacheHints {
    pub max_age: Option<Duration>,
    /// Time from now until the Expires date.
    pub expires_in: Option<Duration>,
    pub retry_after: Option<Duration>,
}

impl CacheHints {
    pub fn from_headers(headers: &reqwest::header::HeaderMap, now: DateTime<Utc>) -> CacheHints {
        let get = |name| headers.get(name).and_then(|v| v.to_str().ok());
        CacheHints {
            max_age: get(reqwest::header::CACHE_CONTROL).and_then(max_age),
            expires_in: get(reqwest::header::EXPIRES).and_then(|v| until(v, now)),
            retry_after: get(reqwest::header::RETRY_AFTER).and_then(|v| retry_after(v, now)),
        }
    }
}

/// `max-age=N` from a Cache-Control value; `no-cache`/`no-store` ask nothing
/// of the poll interval, so they count as no hint.
fn max_age(value: &str) -> Option<Duration> {
    value.split(',').find_map(|directive| {
        let (name, seconds) = directive.trim().split_once('=')?;
        name.trim()
            .eq_ignore_ascii_case("max-age")
            .then(|| seconds.trim().trim_matches('"').parse().ok())?
            .map(Duration::from_secs)
    })
}

/// Retry-After is either delay-seconds or an HTTP-date.
fn retry_after(value: &str, now: DateTime<Utc>) -> Option<Duration> {
    match value.trim().parse::<u64>() {
        Ok(secs) => Some(Duration::from_secs(secs)),
        Err(_) => until(value, now),
    }
}

/// Time from `now` until an HTTP-date; dates in the past give zero.
fn until(http_date: &str, now: DateTime<Utc>) -> Option<Duration> {
    // IMF-fixdate, and the obsolete RFC 850 and asctime forms RFC 9110
    // §5.6.7 says a recipient must accept.
    let date: DateTime<Utc> = httpdate::parse_http_date(http_date.trim()).ok()?.into();
    Some((date - now).to_std().unwrap_or(Duration::ZERO))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn hints_are_read_from_header_values() {
        let now = Utc.with_ymd_and_hms(2025, 6, 29, 12, 0, 0).unwrap();
        assert_eq!(
            max_age("public, max-age=600"),
            Some(Duration::from_secs(600))
        );
        assert_eq!(max_age("no-cache"), None);
        assert_eq!(max_age("max-age=soon"), None);
        assert_eq!(retry_after("120", now), Some(Duration::from_secs(120)));
        assert_eq!(
            retry_after("Sun, 29 Jun 2025 12:30:00 GMT", now),
            Some(Duration::from_secs(1800))
        );
        assert_eq!(
            retry_after("Sun, 29 Jun 2025 11:00:00 GMT", now),
            Some(Duration::ZERO)
        );
        assert_eq!(retry_after("whenever", now), None);
    }

    #[test]
    fn the_obsolete_http_date_forms_rfc_9110_requires_are_read() {
        let now = Utc.with_ymd_and_hms(2025, 6, 29, 12, 0, 0).unwrap();
        let half_an_hour = Some(Duration::from_secs(1800));
        for date in [
            "Sun, 29 Jun 2025 12:30:00 GMT",
            // RFC 850, with a two-digit year.
            "Sunday, 29-Jun-25 12:30:00 GMT",
            // ANSI C asctime().
            "Sun Jun 29 12:30:00 2025",
        ] {
            assert_eq!(retry_after(date, now), half_an_hour, "{date}");
        }
    }
}

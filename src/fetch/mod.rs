//! HTTP: one client for the process, conditional GET, limits, redirects.
//!
//! Owns every network request treatywatch makes for feeds. A fetch returns
//! data — the body and what the server said about caching — or a
//! `FetchError` that knows whether it is worth retrying; it never decides
//! scheduling (`schedule.rs` does, purely) and never parses (`feed` does).
//!
//! Redirects are followed by hand so that a feed reached only through
//! permanent ones (301/308) can be reported as moved, and the body limit
//! counts decompressed bytes while streaming, so a compression bomb is
//! never held in memory whole.

mod caching;
mod hosts;
pub mod schedule;

use std::time::Duration;

use chrono::{DateTime, Utc};
use reqwest::StatusCode;
use reqwest::header::{
    CONTENT_TYPE, ETAG, HeaderMap, IF_MODIFIED_SINCE, IF_NONE_MATCH, LAST_MODIFIED, LOCATION,
};
use url::Url;

pub use caching::CacheHints;
pub use hosts::{DEFAULT_PER_HOST, HostLimit};

pub const USER_AGENT: &str = concat!(
    "treatywatch/",
    env!("CARGO_PKG_VERSION"),
    " (+https://github.com/treatywatch)"
);
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
pub const DEFAULT_MAX_BODY: u64 = 5 * 1024 * 1024;
pub const DEFAULT_CONCURRENCY: usize = 8;
/// Redirects followed before giving up (a loop ends here too).
pub const MAX_REDIRECTS: usize = 5;

/// Limits for every request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub connect_timeout: Duration,
    /// The whole exchange, headers to last body byte.
    pub timeout: Duration,
    /// Largest body accepted, counted after decompression.
    pub max_body: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            timeout: DEFAULT_TIMEOUT,
            max_body: DEFAULT_MAX_BODY,
        }
    }
}

/// The validators of a feed's last response, sent back as a conditional GET.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Validators {
    pub etag: Option<String>,
    pub last_modified: Option<String>,
}

/// A successful exchange: 200 with a body, or 304 without one.
#[derive(Debug, Clone)]
pub struct Fetched {
    pub status: u16,
    /// `None` for 304 Not Modified.
    pub body: Option<Vec<u8>>,
    pub content_type: Option<String>,
    pub validators: Validators,
    pub hints: CacheHints,
    /// Where the document was finally found.
    pub final_url: Url,
    /// Set when every redirect on the way was permanent (301/308): the
    /// feed has moved and its configured URL should be updated.
    pub moved_to: Option<Url>,
}

#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum FetchError {
    #[error("no complete response within {}s (server too slow or stalled)", .0.as_secs())]
    Timeout(Duration),
    #[error("cannot connect: {0}")]
    Connect(String),
    #[error("HTTP {status}{}", reason(*.status))]
    Http {
        status: u16,
        retry_after: Option<Duration>,
    },
    #[error(
        "HTTP 410 Gone: the publisher has removed this feed; it will not be polled again until its url changes in the config"
    )]
    Gone,
    #[error("response larger than the {limit}-byte limit (after decompression); cut off")]
    TooLarge { limit: u64 },
    #[error("more than {0} redirects (a redirect loop?)")]
    TooManyRedirects(usize),
    #[error("bad redirect: {0}")]
    BadRedirect(String),
    #[error("reading the response failed: {0}")]
    Body(String),
    #[error("request failed: {0}")]
    Other(String),
}

fn reason(status: u16) -> String {
    StatusCode::from_u16(status)
        .ok()
        .and_then(|s| s.canonical_reason())
        .map(|r| format!(" {r}"))
        .unwrap_or_default()
}

impl FetchError {
    /// Whether trying again later may succeed (everything but 410 Gone).
    pub fn is_transient(&self) -> bool {
        !matches!(self, FetchError::Gone)
    }

    /// How long the server asked us to wait (429, 503).
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            FetchError::Http { retry_after, .. } => *retry_after,
            _ => None,
        }
    }

    /// A few words for what went wrong, in treatywatch's own words: unlike
    /// the full message it never quotes the server, so it may go where feed
    /// text may not (a mail subject).
    pub fn summary(&self) -> String {
        match self {
            FetchError::Timeout(_) => "timeout".into(),
            FetchError::Connect(_) => "cannot connect".into(),
            FetchError::Http { status, .. } => format!("HTTP {status}"),
            FetchError::Gone => "HTTP 410 Gone".into(),
            FetchError::TooLarge { .. } => "response too large".into(),
            FetchError::TooManyRedirects(_) => "redirect loop".into(),
            FetchError::BadRedirect(_) => "bad redirect".into(),
            FetchError::Body(_) => "broken response".into(),
            FetchError::Other(_) => "request failed".into(),
        }
    }

    /// The HTTP status, when the server answered with one.
    pub fn status(&self) -> Option<u16> {
        match self {
            FetchError::Http { status, .. } => Some(*status),
            FetchError::Gone => Some(410),
            _ => None,
        }
    }
}

/// The process's one HTTP client.
#[derive(Clone)]
pub struct Fetcher {
    client: reqwest::Client,
    limits: Limits,
}

impl Fetcher {
    pub fn new(limits: Limits) -> Result<Fetcher, FetchError> {
        let client = reqwest::Client::builder()
            .user_agent(USER_AGENT)
            .connect_timeout(limits.connect_timeout)
            .timeout(limits.timeout)
            // Followed by hand below, to tell permanent moves from temporary ones.
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| FetchError::Other(error_chain(&e)))?;
        Ok(Fetcher { client, limits })
    }

    /// GETs `url`, conditionally on `validators`, following up to
    /// `MAX_REDIRECTS` redirects and enforcing the body limit while reading.
    pub async fn fetch(
        &self,
        url: &Url,
        validators: &Validators,
        now: DateTime<Utc>,
    ) -> Result<Fetched, FetchError> {
        let mut current = url.clone();
        let mut all_permanent = true;
        let mut moved_to = None;
        for hop in 0..=MAX_REDIRECTS {
            let mut request = self.client.get(current.clone());
            if let Some(etag) = &validators.etag {
                request = request.header(IF_NONE_MATCH, etag);
            }
            if let Some(lm) = &validators.last_modified {
                request = request.header(IF_MODIFIED_SINCE, lm);
            }
            let mut response = request.send().await.map_err(|e| self.classify(&e))?;
            let status = response.status();
            let hints = CacheHints::from_headers(response.headers(), now);
            if status.is_redirection() && status != StatusCode::NOT_MODIFIED {
                if hop == MAX_REDIRECTS {
                    return Err(FetchError::TooManyRedirects(MAX_REDIRECTS));
                }
                let next = redirect_target(&current, response.headers())?;
                all_permanent &= matches!(
                    status,
                    StatusCode::MOVED_PERMANENTLY | StatusCode::PERMANENT_REDIRECT
                );
                if all_permanent {
                    moved_to = Some(next.clone());
                }
                current = next;
                continue;
            }
            if status == StatusCode::GONE {
                return Err(FetchError::Gone);
            }
            if !(status.is_success() || status == StatusCode::NOT_MODIFIED) {
                return Err(FetchError::Http {
                    status: status.as_u16(),
                    retry_after: hints.retry_after,
                });
            }
            let header = |name| {
                response
                    .headers()
                    .get(name)
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_string)
            };
            let fetched_validators = Validators {
                etag: header(ETAG),
                last_modified: header(LAST_MODIFIED),
            };
            let content_type = header(CONTENT_TYPE);
            let body = if status == StatusCode::NOT_MODIFIED {
                None
            } else {
                Some(self.read_body(&mut response).await?)
            };
            return Ok(Fetched {
                status: status.as_u16(),
                body,
                content_type,
                // A 304 may omit validators; keep the ones that matched.
                validators: if status == StatusCode::NOT_MODIFIED
                    && fetched_validators == Validators::default()
                {
                    validators.clone()
                } else {
                    fetched_validators
                },
                hints,
                final_url: current,
                moved_to,
            });
        }
        Err(FetchError::TooManyRedirects(MAX_REDIRECTS))
    }

    /// Reads the (decompressed) body chunk by chunk, stopping at the limit so
    /// a compression bomb is never held in memory whole.
    async fn read_body(&self, response: &mut reqwest::Response) -> Result<Vec<u8>, FetchError> {
        let limit = self.limits.max_body;
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(|e| self.classify(&e))? {
            if (body.len() + chunk.len()) as u64 > limit {
                return Err(FetchError::TooLarge { limit });
            }
            body.extend_from_slice(&chunk);
        }
        Ok(body)
    }

    fn classify(&self, e: &reqwest::Error) -> FetchError {
        if e.is_timeout() {
            FetchError::Timeout(self.limits.timeout)
        } else if e.is_connect() {
            FetchError::Connect(error_chain(e))
        } else if e.is_body() || e.is_decode() {
            FetchError::Body(error_chain(e))
        } else {
            FetchError::Other(error_chain(e))
        }
    }
}

fn redirect_target(current: &Url, headers: &HeaderMap) -> Result<Url, FetchError> {
    let location = headers
        .get(LOCATION)
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| FetchError::BadRedirect("redirect without a Location header".into()))?;
    let next = current.join(location).map_err(|e| {
        FetchError::BadRedirect(format!("Location {location:?} is not a URL ({e})"))
    })?;
    if !matches!(next.scheme(), "http" | "https") {
        return Err(FetchError::BadRedirect(format!(
            "redirect to unsupported scheme: {next}"
        )));
    }
    Ok(next)
}

/// An error's causes on one line. reqwest's outer messages ("error sending
/// request for url (…)", "client error (Connect)") say nothing the feed's
/// summary line does not already, so only the causes that do are kept.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut current: Option<&dyn std::error::Error> = Some(e);
    while let Some(err) = current {
        let text = err.to_string();
        let noise = text.starts_with("error sending request") || text.starts_with("client error (");
        if !noise && !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        current = err.source();
    }
    if parts.is_empty() {
        e.to_string()
    } else {
        parts.join(": ")
    }
}

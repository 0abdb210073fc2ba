//! Webhooks: the HTTP transport of the outbox. A `[[notify.webhook]]` is a
//! recipient like a mail address (`route.rs` keys it `webhook:ID`); the
//! outbox freezes one request per status change (`payload.rs`), claims each
//! attempt and records each outcome exactly as it does for a digest. This
//! file only sends a frozen request and says what the receiver did, in a
//! `DeliveryError` the outbox already knows how to retry.
//!
//! Every attempt carries the change's idempotency key (`Idempotency-Key`,
//! and for Matrix the transaction id in the URL), so a receiver can drop the
//! one resend a crash between its answer and our record can cause.
//!
//! What an answer means: 2xx delivered; 5xx, 408 and 429 retried with the
//! outbox's backoff, or after Retry-After when the receiver gives one;
//! anything else (a 4xx, a redirect) refused for good, logged with the
//! status and the first bytes of the reply. A connection error or a
//! receiver that says nothing within the webhook's `timeout` is retried.
//! Redirects are not followed: a POST must not turn into a GET elsewhere.

pub mod payload;

use std::time::{Duration, SystemTime};

use reqwest::Method;
use reqwest::header::{HeaderName, HeaderValue, RETRY_AFTER};
use url::Url;

use super::compose::capped;
use super::transport::DeliveryError;
use crate::config::{Webhook, WebhookFormat};
use crate::store::Batch;

pub use payload::{Frozen, IDEMPOTENCY_HEADER, build, idempotency_key};

/// How much of a refusing reply is quoted in the log and the error.
const REPLY_QUOTED: usize = 200;
/// How much of a reply is read at most: enough to quote, never a download.
const REPLY_READ: usize = 4096;
/// The longest Retry-After honoured; a receiver asking for more is tried
/// again after a day anyway.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(24 * 60 * 60);

/// Posts frozen requests; one HTTP client (and its connections) for all
/// webhooks.
#[derive(Clone)]
pub struct Poster {
    client: reqwest::Client,
}

impl Poster {
    pub fn new() -> Result<Poster, DeliveryError> {
        let client = reqwest::Client::builder()
            .user_agent(crate::fetch::USER_AGENT)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| DeliveryError::Setup(format!("cannot set up HTTP for webhooks: {e}")))?;
        Ok(Poster { client })
    }

    /// Sends `batch` (one frozen change) to `hook`, the whole attempt
    /// bounded by the webhook's timeout.
    pub async fn post(&self, hook: &Webhook, batch: &Batch) -> Result<(), DeliveryError> {
        let origin = hook.url.origin().ascii_serialization();
        let failed = |detail: String| DeliveryError::WebhookFailed {
            webhook: hook.id.clone(),
            origin: origin.clone(),
            detail,
        };
        let format = payload::format_of(&batch.envelope_from).unwrap_or(hook.format);
        let Some((headers, body)) = payload::unframe(&batch.message) else {
            return Err(failed("the frozen request is damaged".into()));
        };
        let (method, url) = match format {
            // Matrix's own idempotency: a PUT to .../send/TYPE/{txnId}.
            WebhookFormat::Matrix => (Method::PUT, with_txn_id(&hook.url, &batch.message_id)),
            _ => (Method::POST, hook.url.clone()),
        };
        let mut request = self
            .client
            .request(method, url)
            .timeout(hook.timeout)
            .header(IDEMPOTENCY_HEADER, &batch.message_id)
            .body(body.to_vec());
        for (name, value) in &headers {
            let (Ok(name), Ok(value)) = (
                HeaderName::from_bytes(name.as_bytes()),
                HeaderValue::from_str(value),
            ) else {
                return Err(failed(format!("the frozen header {name:?} is not valid")));
            };
            request = request.header(name, value);
        }
        if let Some(token) = &hook.token {
            let secret = token.read().map_err(|e| DeliveryError::WebhookToken {
                webhook: hook.id.clone(),
                path: token.path.clone(),
                detail: e.to_string(),
            })?;
            request = request.bearer_auth(secret);
        }
        let attempt = async {
            let mut reply = request.send().await?;
            let status = reply.status();
            let retry_after = reply
                .headers()
                .get(RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| retry_after(v, SystemTime::now()));
            let mut head = Vec::new();
            if !status.is_success() {
                while head.len() < REPLY_READ {
                    match reply.chunk().await? {
                        Some(chunk) => head.extend_from_slice(&chunk),
                        None => break,
                    }
                }
            }
            Ok::<_, reqwest::Error>((status, retry_after, head))
        };
        let outcome = match tokio::time::timeout(hook.timeout, attempt).await {
            Err(_) => Err(None),
            Ok(Err(e)) if e.is_timeout() => Err(None),
            Ok(Err(e)) => Err(Some(e)),
            Ok(Ok(answer)) => Ok(answer),
        };
        let (status, retry_after, head) = match outcome {
            Ok(answer) => answer,
            Err(None) => {
                return Err(DeliveryError::WebhookTimeout {
                    webhook: hook.id.clone(),
                    origin,
                    secs: hook.timeout.as_secs().max(1),
                });
            }
            Err(Some(e)) if e.is_connect() => {
                return Err(DeliveryError::WebhookUnreachable {
                    webhook: hook.id.clone(),
                    origin,
                    detail: chain(&e.without_url()),
                });
            }
            Err(Some(e)) => return Err(failed(chain(&e.without_url()))),
        };
        if status.is_success() {
            return Ok(());
        }
        let reply = quoted(&head);
        let code = status.as_u16();
        tracing::warn!(webhook = %hook.id, digest = %batch.message_id, status = code, reply = %reply, "webhook receiver did not accept the change");
        if status.is_server_error() || code == 408 || code == 429 {
            Err(DeliveryError::WebhookDeferred {
                webhook: hook.id.clone(),
                origin,
                status: code,
                reply,
                retry_after,
            })
        } else {
            Err(DeliveryError::WebhookRefused {
                webhook: hook.id.clone(),
                origin,
                status: code,
                reply,
            })
        }
    }
}

/// A `Poster` for code that is not async (`poll`, `digest --send`): it
/// brings a small runtime of its own.
pub struct BlockingPoster {
    runtime: tokio::runtime::Runtime,
    poster: Poster,
}

impl BlockingPoster {
    pub fn new() -> Result<BlockingPoster, DeliveryError> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| DeliveryError::Setup(format!("cannot start the webhook runtime: {e}")))?;
        Ok(BlockingPoster {
            runtime,
            poster: Poster::new()?,
        })
    }

    pub fn post(&self, hook: &Webhook, batch: &Batch) -> Result<(), DeliveryError> {
        self.runtime.block_on(self.poster.post(hook, batch))
    }
}

/// `…/send/m.room.message/{txn}`.
fn with_txn_id(url: &Url, txn: &str) -> Url {
    let mut url = url.clone();
    if let Ok(mut segments) = url.path_segments_mut() {
        segments.pop_if_empty().push(txn);
    }
    url
}

/// Retry-After as seconds or an HTTP date (RFC 9110 §10.2.3), capped.
fn retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    let wait = match value.parse::<u64>() {
        Ok(secs) => Duration::from_secs(secs),
        Err(_) => httpdate::parse_http_date(value)
            .ok()?
            .duration_since(now)
            .unwrap_or(Duration::ZERO),
    };
    Some(wait.min(MAX_RETRY_AFTER))
}

/// The first bytes of a reply, on one line, for a log and an error.
fn quoted(head: &[u8]) -> String {
    let text = capped(&String::from_utf8_lossy(head), REPLY_QUOTED);
    if text.is_empty() {
        "empty reply".to_string()
    } else {
        format!("{text:?}")
    }
}

/// An error with its causes: "client error (Connect): tcp connect error: …".
fn chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = s.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_in_seconds_or_as_a_date() {
        let now = httpdate::parse_http_date("Wed, 02 Dec 2026 01:00:00 GMT").expect("date");
        for (value, expected) in [
            ("120", Some(120)),
            (" 0 ", Some(0)),
            ("Wed, 02 Dec 2026 01:05:00 GMT", Some(300)),
            ("Wed, 02 Dec 2026 00:55:00 GMT", Some(0)),
            ("999999999", Some(MAX_RETRY_AFTER.as_secs())),
            ("soon", None),
        ] {
            assert_eq!(
                retry_after(value, now).map(|d| d.as_secs()),
                expected,
                "{value}"
            );
        }
    }

    #[test]
    fn matrix_transaction_ids_are_a_path_segment() {
        let url = Url::parse(
            "https://m.example.org/_matrix/client/v3/rooms/!r:example.org/send/m.room.message",
        )
        .expect("url");
        assert_eq!(
            with_txn_id(&url, "tw-3-00ff").as_str(),
            "https://m.example.org/_matrix/client/v3/rooms/!r:example.org/send/m.room.message/tw-3-00ff"
        );
    }
}

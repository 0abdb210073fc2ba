//! What a webhook receiver is sent for one status change, in each format,
//! and the idempotency key that names the (change, recipient) pair. Pure:
//! the change, the config's names and the webhook in, bytes out.
//!
//! The request is frozen in the outbox before its first attempt (as the
//! mail digest's message is), so a retry or a resend after a crash sends
//! the same bytes under the same key. It is kept as header lines, a blank
//! line and the body (`frame`/`unframe`); the URL and the token are not
//! frozen: a fixed URL or a rotated token applies to the next attempt.
//!
//! - `json`: the change exactly as `events --json` prints it (and
//!   `/api/events` serves it), plus `idempotency_key` and `webhook`.
//! - `slack`: `{"text": …}` in Slack's mrkdwn (`&`, `<`, `>` escaped, links
//!   as `<url|label>`).
//! - `matrix`: an `m.room.message` event body (`m.text`, plain `body`, HTML
//!   `formatted_body`), PUT with the key as Matrix's transaction id.
//! - `ntfy`: the evidence as plain text, with `Title`, `Tags` and `Click`
//!   headers (a non-ASCII title in RFC 2047 encoded-word form, which ntfy
//!   decodes).

use serde_json::{Value, json};
use sha2::{Digest as _, Sha256};

use crate::config::{Config, Webhook, WebhookFormat};
use crate::domain::{EventBody, StatusChange, StoredEvent};
use crate::notify::compose::{MAX_EVIDENCE_CHARS, MAX_LINK_CHARS, MAX_TITLE_CHARS, capped, escape};
use crate::text::{json_safe, web_link};

/// The header every attempt carries, with the idempotency key.
pub const IDEMPOTENCY_HEADER: &str = "Idempotency-Key";

/// One change's request for one webhook, ready to be frozen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frozen {
    /// The idempotency key (the batch's Message-ID column).
    pub key: String,
    /// One line for reports and logs: "Ukraine · Ottawa: party → …".
    pub subject: String,
    /// `format:FORMAT`, kept where a digest keeps its envelope sender: how
    /// the frozen request is sent even if the config's format changes.
    pub kind: String,
    /// Header lines, a blank line, the body.
    pub request: Vec<u8>,
}

/// `tw-SEQ-HASH`: stable for a (change, recipient) pair across retries and
/// restarts, different for every other pair (the hash is of both).
pub fn idempotency_key(recipient: &str, change_seq: i64) -> String {
    let digest = Sha256::digest(format!("treatywatch webhook\0{recipient}\0{change_seq}"));
    let hex: String = digest.iter().take(8).map(|b| format!("{b:02x}")).collect();
    format!("tw-{change_seq}-{hex}")
}

/// The `kind` a frozen request of `format` is stored under.
pub fn kind(format: WebhookFormat) -> String {
    format!("format:{}", format.as_str())
}

/// The format a frozen request was made in (`None`: not a webhook's).
pub fn format_of(kind: &str) -> Option<WebhookFormat> {
    kind.strip_prefix("format:").and_then(WebhookFormat::parse)
}

/// The request for `event`, or `None` when it is not a status change
/// (webhooks are routed nothing else).
pub fn build(
    hook: &Webhook,
    recipient: &str,
    event: &StoredEvent,
    config: &Config,
) -> Option<Frozen> {
    let EventBody::StatusChanged(change) = &event.body else {
        return None;
    };
    let key = idempotency_key(recipient, event.seq);
    let text = Text::of(change, config);
    let (headers, body): (Vec<(&str, String)>, Vec<u8>) = match hook.format {
        WebhookFormat::Json => {
            let mut value = serde_json::to_value(event).unwrap_or(Value::Null);
            if let Some(object) = value.as_object_mut() {
                object.insert("idempotency_key".into(), Value::String(key.clone()));
                object.insert("webhook".into(), Value::String(hook.id.clone()));
            }
            (
                vec![("Content-Type", "application/json".into())],
                json_safe(value.to_string()).into_bytes(),
            )
        }
        WebhookFormat::Slack => (
            vec![("Content-Type", "application/json".into())],
            json_safe(json!({ "text": text.slack() }).to_string()).into_bytes(),
        ),
        WebhookFormat::Matrix => (
            vec![("Content-Type", "application/json".into())],
            json_safe(
                json!({
                    "msgtype": "m.text",
                    "body": text.plain(true),
                    "format": "org.matrix.custom.html",
                    "formatted_body": text.html(),
                })
                .to_string(),
            )
            .into_bytes(),
        ),
        WebhookFormat::Ntfy => {
            let mut headers = vec![
                ("Content-Type", "text/plain; charset=utf-8".to_string()),
                ("Title", header_value(&text.short_title())),
                (
                    "Tags",
                    format!("{},{},{}", change.treaty, change.state, change.to.as_str()),
                ),
            ];
            if let Some(click) = text.board.as_ref().or(text.link.as_ref()) {
                headers.push(("Click", click.clone()));
            }
            (headers, text.plain(false).into_bytes())
        }
    };
    Some(Frozen {
        key,
        subject: text.title(),
        kind: kind(hook.format),
        request: frame(&headers, &body),
    })
}

/// Header lines, a blank line, the body.
pub fn frame(headers: &[(&str, String)], body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(body.len() + 128);
    for (name, value) in headers {
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(body);
    out
}

/// A frozen request's header lines, as (name, value).
pub type Headers = Vec<(String, String)>;

/// The headers and body of a frozen request; `None` if it is not one.
pub fn unframe(request: &[u8]) -> Option<(Headers, &[u8])> {
    let end = request.windows(4).position(|w| w == b"\r\n\r\n");
    let (head, body) = match end {
        Some(i) => (&request[..i], &request[i + 4..]),
        // No headers at all.
        None => (&b""[..], request.strip_prefix(b"\r\n")?),
    };
    let head = std::str::from_utf8(head).ok()?;
    let mut headers = Vec::new();
    for line in head.split("\r\n").filter(|l| !l.is_empty()) {
        let (name, value) = line.split_once(": ")?;
        headers.push((name.to_string(), value.to_string()));
    }
    Some((headers, body))
}

/// A header value from text: ASCII as it is, anything else as an RFC 2047
/// encoded-word (`=?UTF-8?B?…?=`).
fn header_value(text: &str) -> String {
    use base64::Engine as _;
    if text.chars().all(|c| c.is_ascii() && !c.is_ascii_control()) {
        return text.to_string();
    }
    format!(
        "=?UTF-8?B?{}?=",
        base64::engine::general_purpose::STANDARD.encode(text.as_bytes())
    )
}

/// The pieces every format says, cleaned and capped once.
struct Text {
    state: String,
    treaty: String,
    from: String,
    to: String,
    evidence: Option<String>,
    source_title: Option<String>,
    /// The evidence's link, only when it is http(s).
    link: Option<String>,
    /// The key's history page, when `[web] base_url` says where the board is.
    board: Option<String>,
    correction: Option<String>,
}

impl Text {
    fn of(change: &StatusChange, config: &Config) -> Text {
        let state = config
            .gazetteer
            .state(&change.state)
            .map_or_else(|| change.state.clone(), |s| s.name.clone());
        let treaty = config
            .treaties
            .get(&change.treaty)
            .map_or_else(|| change.treaty.clone(), |t| t.short_name.clone());
        let evidence = change.evidence.as_ref();
        let board = config
            .web
            .as_ref()
            .and_then(|w| w.base_url.as_ref())
            .and_then(|base| {
                base.join(&format!("state/{}/{}", change.state, change.treaty))
                    .ok()
                    .map(String::from)
            });
        Text {
            state: capped(&state, MAX_TITLE_CHARS),
            treaty: capped(&treaty, MAX_TITLE_CHARS),
            from: change.from.label(),
            to: change.to.label(),
            evidence: evidence.map(|e| capped(&e.sentence, MAX_EVIDENCE_CHARS)),
            source_title: evidence
                .and_then(|e| e.title.as_deref())
                .map(|t| capped(t, MAX_TITLE_CHARS)),
            link: evidence
                .and_then(|e| e.link.as_deref())
                .and_then(web_link)
                .map(String::from)
                .filter(|l| l.len() <= MAX_LINK_CHARS),
            board,
            correction: change
                .correction
                .as_ref()
                .map(|c| capped(&c.note, MAX_EVIDENCE_CHARS)),
        }
    }

    /// "Ukraine · Ottawa Convention: party → withdrawal notified"
    fn title(&self) -> String {
        format!(
            "{} · {}: {} → {}",
            self.state, self.treaty, self.from, self.to
        )
    }

    /// "Ukraine: withdrawal notified (Ottawa Convention)": ASCII for
    /// ASCII names, so an ntfy title header stays readable on the wire.
    fn short_title(&self) -> String {
        format!("{}: {} ({})", self.state, self.to, self.treaty)
    }

    /// Plain text: the title (unless a header carries it), the evidence,
    /// the source and the board's page.
    fn plain(&self, with_title: bool) -> String {
        let mut lines = Vec::new();
        if with_title {
            lines.push(self.title());
        }
        if let Some(note) = &self.correction {
            lines.push(format!("Analyst's correction: {note}"));
        }
        if let Some(e) = &self.evidence {
            lines.push(format!("“{e}”"));
        }
        match (&self.source_title, &self.link) {
            (Some(t), Some(l)) => lines.push(format!("Source: {t} {l}")),
            (Some(t), None) => lines.push(format!("Source: {t}")),
            (None, Some(l)) => lines.push(format!("Source: {l}")),
            (None, None) => {}
        }
        if let Some(b) = &self.board {
            lines.push(format!("History: {b}"));
        }
        if lines.is_empty() {
            lines.push(self.title());
        }
        lines.join("\n")
    }

    /// Slack mrkdwn: only `&`, `<` and `>` need escaping in text.
    fn slack(&self) -> String {
        let esc = |s: &str| {
            s.replace('&', "&amp;")
                .replace('<', "&lt;")
                .replace('>', "&gt;")
        };
        // In `<url|label>` a '|' or '>' would end the URL early.
        let url = |s: &str| s.replace('|', "%7C").replace('>', "%3E");
        let mut lines = vec![format!(
            "*{}* · {}: {} → *{}*",
            esc(&self.state),
            esc(&self.treaty),
            esc(&self.from),
            esc(&self.to)
        )];
        if let Some(note) = &self.correction {
            lines.push(format!("_Analyst's correction:_ {}", esc(note)));
        }
        if let Some(e) = &self.evidence {
            lines.push(format!("> {}", esc(e)));
        }
        let mut links = Vec::new();
        if let Some(l) = &self.link {
            let label = self.source_title.as_deref().unwrap_or("source");
            links.push(format!("<{}|{}>", url(l), esc(label)));
        }
        if let Some(b) = &self.board {
            links.push(format!("<{}|history>", url(b)));
        }
        if !links.is_empty() {
            lines.push(links.join(" · "));
        }
        lines.join("\n")
    }

    /// The HTML Matrix clients show (`org.matrix.custom.html`).
    fn html(&self) -> String {
        let mut out = format!(
            "<b>{}</b> · {}: {} → <b>{}</b>",
            escape(&self.state),
            escape(&self.treaty),
            escape(&self.from),
            escape(&self.to)
        );
        if let Some(note) = &self.correction {
            out.push_str(&format!(
                "<br><i>Analyst's correction:</i> {}",
                escape(note)
            ));
        }
        if let Some(e) = &self.evidence {
            out.push_str(&format!("<blockquote>{}</blockquote>", escape(e)));
        }
        let mut links = Vec::new();
        if let Some(l) = &self.link {
            let label = self.source_title.as_deref().unwrap_or("source");
            links.push(format!("<a href=\"{}\">{}</a>", escape(l), escape(label)));
        }
        if let Some(b) = &self.board {
            links.push(format!("<a href=\"{}\">history</a>", escape(b)));
        }
        if !links.is_empty() {
            out.push_str(&links.join(" · "));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_stable_per_change_and_recipient() {
        let a = idempotency_key("webhook:desk", 12);
        assert_eq!(a, idempotency_key("webhook:desk", 12));
        assert!(
            a.starts_with("tw-12-") && a.len() == "tw-12-".len() + 16,
            "{a}"
        );
        assert_ne!(a, idempotency_key("webhook:room", 12));
        assert_ne!(a, idempotency_key("webhook:desk", 13));
    }

    #[test]
    fn frozen_requests_read_back() {
        for (headers, body) in [
            (
                vec![("Content-Type", "application/json".to_string())],
                &b"{\"a\":1}"[..],
            ),
            (
                vec![("Title", "x".to_string()), ("Tags", "a,b".to_string())],
                &b"line\r\n\r\nmore"[..],
            ),
            (vec![], &b"bare"[..]),
        ] {
            let framed = frame(&headers, body);
            let (h, b) = unframe(&framed).expect("a frozen request");
            let expected: Vec<(String, String)> = headers
                .iter()
                .map(|(n, v)| (n.to_string(), v.clone()))
                .collect();
            assert_eq!((h, b), (expected, body));
        }
    }

    #[test]
    fn non_ascii_titles_are_encoded_words() {
        assert_eq!(
            header_value("Poland · Ottawa"),
            "=?UTF-8?B?UG9sYW5kIMK3IE90dGF3YQ==?="
        );
        assert_eq!(header_value("Poland - Ottawa"), "Poland - Ottawa");
    }
}

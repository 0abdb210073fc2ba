//! The JSON API, in the shapes of `--json` output: `/api/status` is a JSON
//! array of the status lines of `status --json` (`?as_of=`, `?all=1`),
//! `/api/events?since=SEQ&limit=N` an array of `events --json` lines, and
//! `/api/state/{code}/{treaty}` one key's status line with its events.
//!
//! One difference, on purpose: digest recipients' addresses are replaced by
//! a short hash (`sha256:…`), which still tells one recipient from another.
//! `events --json` is for the machine's operators; the web may be read by
//! more people than the mail goes to.

use hyper::StatusCode;
use hyper::header;
use serde_json::{Value, json};

use super::{Cx, JSON, Reply};
use crate::commands::status::{rows_to_show, status_json};
use crate::domain::{EventBody, StoredEvent};
use crate::store::StoreError;
use crate::text::json_safe;

/// Events per page when `limit` is not given, and the most a page holds.
pub const DEFAULT_LIMIT: usize = 100;
pub const MAX_LIMIT: usize = 1_000;

fn json_reply(value: &Value) -> Reply {
    Reply::ok(JSON, json_safe(value.to_string()))
}

/// `/api/status`
pub(super) fn status(cx: &Cx<'_>) -> Result<Reply, StoreError> {
    let as_of = match cx.as_of() {
        Ok(a) => a,
        Err(reply) => return Ok(reply),
    };
    let all = matches!(cx.query.get("all"), Some("1" | "true" | "yes"));
    let projection = match as_of {
        Some(t) => cx.store.rebuild(&cx.policy(), Some(t))?,
        None => cx.store.projection()?,
    };
    let lines: Vec<Value> = rows_to_show(cx.config, &projection, all)
        .iter()
        .map(|(key, row)| status_json(cx.config, key, *row))
        .collect();
    let modified = cx.store.last_recorded()?;
    Ok(json_reply(&Value::Array(lines)).modified(modified))
}

/// `/api/events?since=&limit=`
pub(super) fn events(cx: &Cx<'_>) -> Result<Reply, StoreError> {
    let since = match cx.query.get("since").map(str::trim) {
        None | Some("") => 0,
        Some(s) => match s.parse::<i64>() {
            Ok(n) if n >= 0 => n,
            _ => {
                return Ok(Reply::error(
                    StatusCode::BAD_REQUEST,
                    format!(
                        "since={s:?} is not a sequence number; write since=0 or the last seq you have"
                    ),
                ));
            }
        },
    };
    let limit = match cx.query.get("limit").map(str::trim) {
        None | Some("") => DEFAULT_LIMIT,
        Some(s) => match s.parse::<usize>() {
            Ok(n) if (1..=MAX_LIMIT).contains(&n) => n,
            _ => {
                return Ok(Reply::error(
                    StatusCode::BAD_REQUEST,
                    format!("limit={s:?} must be a number from 1 to {MAX_LIMIT}"),
                ));
            }
        },
    };
    let page = cx.store.events_after(since, limit)?;
    let lines: Vec<Value> = page.iter().map(event_json).collect();
    let mut reply = json_reply(&Value::Array(lines)).modified(page.last().map(|e| e.recorded_at));
    if page.len() == limit
        && let Some(last) = page.last()
    {
        let next = cx.url(&format!("api/events?since={}&limit={limit}", last.seq));
        reply = reply.header(header::LINK, format!("<{next}>; rel=\"next\""));
    }
    Ok(reply)
}

/// `/api/state/{code}/{treaty}`
pub(super) fn key(cx: &Cx<'_>, state: &str, treaty: &str) -> Result<Reply, StoreError> {
    if let Err(reply) = cx.state(state) {
        return Ok(reply);
    }
    if let Err(reply) = cx.treaty(treaty) {
        return Ok(reply);
    }
    let projection = cx.store.projection()?;
    let key = (state.to_string(), treaty.to_string());
    let mut events = cx.store.key_events(state, treaty)?;
    events.extend(cx.store.key_digests(state, treaty)?);
    events.sort_by_key(|e| e.seq);
    let value = json!({
        "status": status_json(cx.config, &key, projection.get(&key)),
        "events": events.iter().map(event_json).collect::<Vec<_>>(),
    });
    let modified = events.last().map(|e| e.recorded_at);
    Ok(json_reply(&value).modified(modified))
}

/// An `events --json` line, recipients hashed.
fn event_json(e: &StoredEvent) -> Value {
    let mut value = serde_json::to_value(e).unwrap_or(Value::Null);
    if matches!(
        e.body,
        EventBody::DigestSent(_) | EventBody::DigestRefused(_)
    ) && let Some(r) = value.get_mut("recipient")
        && let Some(address) = r.as_str()
    {
        *r = Value::String(recipient_hash(address));
    }
    value
}

fn recipient_hash(address: &str) -> String {
    use sha2::{Digest, Sha256};
    let d = Sha256::digest(address.as_bytes());
    let hex: String = d.iter().take(6).map(|b| format!("{b:02x}")).collect();
    format!("sha256:{hex}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::DigestSent;
    use chrono::Utc;

    #[test]
    fn recipients_are_hashed() {
        let e = StoredEvent {
            seq: 9,
            occurred_at: Utc::now(),
            recorded_at: Utc::now(),
            body: EventBody::DigestSent(DigestSent {
                recipient: "desk@example.org".into(),
                first_seq: 1,
                last_seq: 2,
                changes: vec![2],
                message_id: "<m@x>".into(),
            }),
        };
        let v = event_json(&e);
        assert_eq!(v["kind"], "digest_sent");
        let r = v["recipient"].as_str().expect("a string");
        assert!(r.starts_with("sha256:") && !r.contains('@'), "{r}");
        assert_eq!(v["changes"], json!([2]));
    }
}

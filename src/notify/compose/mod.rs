//! Digest composition: status-change and source-health events in, one
//! digest out (subject, plain text and HTML), for one recipient. What
//! changed comes first, with its evidence and how sure treatywatch is of
//! it; an analyst's corrections follow in a section of their own, then
//! reports still waiting for a second source (for recipients who ask),
//! where things stand, and source-health alerts. A digest of alerts alone
//! is a short message whose subject names the first alert.
//!
//! This file builds the model (`Parts`) both parts are rendered from:
//! `text.rs` renders the plain-text part, `html.rs` the HTML part.
//!
//! Pure: it takes the events, the config (for state, treaty and feed names
//! and the tracked states), a `Snapshot` of the store (status table and
//! waiting reports) and `now`, and does no I/O. Everything that came from a
//! feed (evidence, titles, links, error messages that quote a server) is
//! untrusted: control characters are dropped, HTML is escaped, and only
//! http(s) links become links. Nothing from a feed reaches the subject,
//! which is built from configured names, feed ids, status labels and
//! treatywatch's own summaries of errors alone.

mod html;
mod text;

use std::collections::BTreeMap;
use std::fmt::Write as _;

use chrono::{DateTime, Utc};
use url::Url;

use super::message::message_id;
use super::route::Routes;
use crate::config::{Config, Treaty};
use crate::depositary::confirm::{self, Confirmation};
use crate::domain::{
    DigestRefused, EventBody, HealthCondition, Key, Projection, SourceHealth, Status, StatusChange,
    StatusRow, StoredEvent, Unconfirmed,
};
use crate::notice::{NOTICE_SOURCE, effective_on, stated_in};

/// One digest for one recipient.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Digest {
    pub subject: String,
    pub text: String,
    pub html: String,
    /// Derived from `covered` and the recipient (see `message::message_id`).
    pub message_id: String,
    /// Lowest and highest sequence number of the changes reported.
    pub covered: (i64, i64),
    /// Every change and alert reported, ascending.
    pub changes: Vec<i64>,
    /// The recipient's key (bare, lower-cased address).
    pub recipient: String,
    /// Each (state, treaty) a change is about, with its new status, in
    /// the order reported: the message's X-Treatywatch headers and threads.
    pub about: Vec<(String, String, Status)>,
}

/// What the store says now, beside the events being reported.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    pub projection: Projection,
    /// Reports still short of corroboration, per key.
    pub unconfirmed: Vec<(Key, Vec<Unconfirmed>)>,
    /// The depositary notices in the log, per key (empty without a
    /// `[[mailbox]]`): what says a change is confirmed.
    pub notices: BTreeMap<Key, Vec<(Confirmation, String)>>,
}

/// A status change with its place in the log.
struct Item<'a> {
    seq: i64,
    occurred_at: DateTime<Utc>,
    change: &'a StatusChange,
}

/// A source-health alert, rendered once as cleaned plain text so the text
/// and HTML parts cannot disagree about what was escaped.
struct Alert {
    seq: i64,
    /// "Source failing: bbc-world (HTTP 503, 5 failures in a row)": only
    /// the feed id, counts, dates and treatywatch's summary; header-safe.
    subject: String,
    /// "Source failing: BBC News — World (bbc-world)".
    heading: String,
    /// Sentences under the heading; feed text in them is cleaned.
    lines: Vec<String>,
    /// The feed's configured url.
    url: Option<String>,
    /// A delivery alert (a refused digest), not a source-health one.
    delivery: bool,
}

/// A report waiting for another source, for the recipients who asked.
struct Waiting<'a> {
    state: &'a str,
    treaty: &'a str,
    report: &'a Unconfirmed,
}

/// Everything both parts show, decided once.
struct Parts<'a> {
    names: Names<'a>,
    form: Form,
    subject: String,
    /// "2 status changes, 1 correction".
    headline: String,
    /// News: what changed.
    items: Vec<Item<'a>>,
    /// Changes an analyst's `assert` or `retract` made.
    corrections: Vec<Item<'a>>,
    waiting: Vec<Waiting<'a>>,
    alerts: Vec<Alert>,
    resent: Resent<'a>,
    standings: Vec<(String, Vec<Standing>)>,
    /// Per change (by seq), what the depositary says of its stage
    /// (`confirm::standing`), where a configured depositary can say it.
    depositary: BTreeMap<i64, String>,
    /// Why this recipient gets this digest, and how to change or correct it.
    footer: Vec<String>,
    now: DateTime<Utc>,
}

/// The longest evidence sentence a digest quotes, in characters.
pub const MAX_EVIDENCE_CHARS: usize = 600;
/// The longest item title a digest shows.
pub const MAX_TITLE_CHARS: usize = 200;
/// The longest link a digest shows; a longer one is shown cut, not linked.
pub const MAX_LINK_CHARS: usize = 500;
/// The longest server error message an alert quotes.
pub const MAX_ERROR_CHARS: usize = 300;

/// How much a digest says about each change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Form {
    /// Evidence, source title and link for every change.
    Full,
    /// One line per change, no feed text, at most `listed` changes
    /// listed: what fits under `[notify] max_digest_size`. Every change
    /// is still covered by the digest (and its Message-ID).
    Brief { listed: usize },
}

/// Composes the digest reporting `events` (other kinds are ignored) to
/// `recipient`; `None` when there is nothing to report.
pub fn compose(
    events: &[StoredEvent],
    config: &Config,
    snapshot: &Snapshot,
    recipient: &str,
    now: DateTime<Utc>,
) -> Option<Digest> {
    compose_in(Form::Full, events, config, snapshot, recipient, now)
}

/// `compose`, in the given form.
pub fn compose_in(
    form: Form,
    events: &[StoredEvent],
    config: &Config,
    snapshot: &Snapshot,
    recipient: &str,
    now: DateTime<Utc>,
) -> Option<Digest> {
    let names = Names { config };
    let mut items: Vec<Item<'_>> = Vec::new();
    let mut alerts: Vec<Alert> = Vec::new();
    let mut resent = Resent::default();
    // A refused digest of this recipient's: the changes it owed them are
    // among `events`, shown in brief and not counted as this digest's own.
    let mut owed: Vec<i64> = Vec::new();
    for e in events {
        match &e.body {
            EventBody::DigestRefused(r) if r.recipient == recipient => {
                owed.extend(&r.changes);
                resent.seqs.push(e.seq);
                resent.notes.push(format!(
                    "The mail server refused a digest for you on {} (reply {}); it is not sent again. What it reported, in brief:",
                    e.occurred_at.format("%Y-%m-%d %H:%M UTC"),
                    r.code
                ));
            }
            EventBody::DigestRefused(r) => alerts.push(refusal_alert(e, r)),
            _ => {}
        }
    }
    for e in events {
        match &e.body {
            EventBody::StatusChanged(change) => {
                let item = Item {
                    seq: e.seq,
                    occurred_at: e.occurred_at,
                    change,
                };
                if owed.contains(&e.seq) {
                    resent.items.push(item);
                } else {
                    items.push(item);
                }
            }
            EventBody::SourceHealth(h) => alerts.push(alert(&names, e, h)),
            _ => {}
        }
    }
    items.sort_by_key(|i| i.seq);
    items.dedup_by_key(|i| i.seq);
    resent.items.sort_by_key(|i| i.seq);
    resent.items.dedup_by_key(|i| i.seq);
    alerts.sort_by_key(|a| a.seq);
    alerts.dedup_by_key(|a| a.seq);
    let mut seqs: Vec<i64> = items
        .iter()
        .map(|i| i.seq)
        .chain(alerts.iter().map(|a| a.seq))
        .chain(resent.seqs.iter().copied())
        .collect();
    seqs.sort_unstable();
    seqs.dedup();
    let covered = (*seqs.first()?, *seqs.last()?);
    let subject = subject(&names, &items, &alerts, &resent);
    let about = items
        .iter()
        .chain(&resent.items)
        .map(|i| (i.change.state.clone(), i.change.treaty.clone(), i.change.to))
        .collect();
    let all: Vec<Item<'_>> = items
        .iter()
        .chain(&resent.items)
        .map(|i| Item { ..*i })
        .collect();
    let standings = standings(&names, &all, snapshot, now);
    let depositary = all
        .iter()
        .filter_map(|i| {
            let c = i.change;
            let key = (c.state.clone(), c.treaty.clone());
            let confirmation = snapshot
                .notices
                .get(&key)
                .and_then(|n| confirm::confirmation_of(n, c.to));
            let standing = confirm::standing(
                confirmation,
                crate::depositary::covered(config, &c.treaty),
                c.correction.is_none(),
            )?;
            Some((i.seq, standing.to_string()))
        })
        .collect();
    let routes = Routes::from_config(config);
    let waiting = snapshot
        .unconfirmed
        .iter()
        .filter(|((state, treaty), _)| routes.wants_unconfirmed(recipient, state, treaty))
        .flat_map(|((state, treaty), reports)| {
            reports.iter().map(move |report| Waiting {
                state,
                treaty,
                report,
            })
        })
        .collect();
    let (corrections, items): (Vec<Item<'_>>, Vec<Item<'_>>) = items
        .into_iter()
        .partition(|i| i.change.correction.is_some());
    let mut parts = Parts {
        headline: String::new(),
        footer: footer(&routes, recipient),
        names,
        form,
        subject: subject.clone(),
        items,
        corrections,
        waiting,
        alerts,
        resent,
        standings,
        depositary,
        now,
    };
    parts.headline = headline(&parts);
    Some(Digest {
        text: text::render(&parts),
        html: html::render(&parts),
        subject,
        message_id: message_id(covered.0, covered.1, recipient, &config.notify.from),
        covered,
        changes: seqs,
        recipient: recipient.to_string(),
        about,
    })
}

/// Why the recipient gets this, how to change that, how to report a
/// wrong detection.
fn footer(routes: &Routes, recipient: &str) -> Vec<String> {
    let mut lines = Vec::new();
    let matched = routes.describe(recipient);
    if !matched.is_empty() {
        lines.push(format!(
            "You get this as {recipient} because of {}.",
            matched.join("; and ")
        ));
    }
    lines.push(
        "To change what you get, edit those entries in treatywatch's feeds.toml (then `treatywatch check` and `systemctl reload treatywatch`).".to_string(),
    );
    lines.push(
        "A wrong detection? Tell the admin, who withdraws it with `treatywatch retract SEQ --note \"why\"` (each change names its SEQ); the correction is mailed too.".to_string(),
    );
    lines
}

/// Changes a refused digest owed the recipient, resent in brief.
#[derive(Default)]
struct Resent<'a> {
    /// The `digest_refused` events (this digest's own entries).
    seqs: Vec<i64>,
    /// One line per refusal.
    notes: Vec<String>,
    items: Vec<Item<'a>>,
}

/// A delivery alert for the admins: another recipient's digest was refused.
fn refusal_alert(event: &StoredEvent, r: &DigestRefused) -> Alert {
    let n = r.changes.len();
    if r.retried {
        return Alert {
            seq: event.seq,
            subject: header_safe(&format!(
                "Recipient refused: {} (reply {})",
                r.recipient, r.code
            )),
            heading: clean(&format!("Recipient refused: {}", r.recipient)),
            lines: vec![
                format!(
                    "The mail server refused the address {} on {} with reply {}, for a digest of {}.",
                    r.recipient,
                    event.occurred_at.format("%Y-%m-%d %H:%M UTC"),
                    r.code,
                    plural(n, "status change", "status changes")
                ),
                format!("Error: {}", capped(&r.error, MAX_ERROR_CHARS)),
                "The digest is retried with backoff (at most hourly) and their later changes wait behind it, in order: check the address with them, or remove it from the config.".to_string(),
            ],
            url: None,
            delivery: true,
        };
    }
    if let Some(id) = r.recipient.strip_prefix(crate::notify::WEBHOOK_KEY_PREFIX) {
        return Alert {
            seq: event.seq,
            subject: header_safe(&format!("Webhook refused: {id} (HTTP {})", r.code)),
            heading: clean(&format!("Webhook refused: {id}")),
            lines: vec![
                format!(
                    "The receiver of webhook {id} refused a status change (event #{}) on {} with HTTP {}; it is not posted again.",
                    r.first_seq,
                    event.occurred_at.format("%Y-%m-%d %H:%M UTC"),
                    r.code
                ),
                format!("Error: {}", capped(&r.error, MAX_ERROR_CHARS)),
                "Later changes are still posted. Fix the url or token_file under [[notify.webhook]]; `treatywatch events` has the change.".to_string(),
            ],
            url: None,
            delivery: true,
        };
    }
    let mut lines = vec![
        format!(
            "The mail server refused the digest for {} ({}, events #{}–#{}) on {} with reply {}; it is not sent again.",
            r.recipient,
            plural(n, "status change", "status changes"),
            r.first_seq,
            r.last_seq,
            event.occurred_at.format("%Y-%m-%d %H:%M UTC"),
            r.code
        ),
        format!("Error: {}", capped(&r.error, MAX_ERROR_CHARS)),
    ];
    lines.push(if r.carry {
        format!(
            "Its changes go to {} in brief (without feed text) right away; `treatywatch status` shows the refusal.",
            r.recipient
        )
    } else {
        "It was itself a brief resend: its changes are in the log (`treatywatch events`), not mailed again.".to_string()
    });
    Alert {
        seq: event.seq,
        subject: header_safe(&format!(
            "Digest refused: {} (reply {})",
            r.recipient, r.code
        )),
        heading: clean(&format!("Digest refused: {}", r.recipient)),
        lines,
        url: None,
        delivery: true,
    }
}

fn alert(names: &Names<'_>, event: &StoredEvent, h: &SourceHealth) -> Alert {
    let time = |t: DateTime<Utc>| t.format("%Y-%m-%d %H:%M UTC").to_string();
    let what = alert_kind(h);
    let name = names.feed(&h.feed);
    let heading = if name == h.feed {
        format!("{what}: {name}")
    } else {
        format!("{what}: {name} ({})", h.feed)
    };
    let error = h.error.as_deref().map(|e| capped(e, MAX_ERROR_CHARS));
    let mut lines = Vec::new();
    match h.condition {
        HealthCondition::Failing => {
            lines.push(format!(
                "{} since {}.",
                capitalise(&failures(h.failures)),
                time(h.since)
            ));
            if let Some(e) = error {
                lines.push(format!("Last error: {e}"));
            }
            lines.push(if h.gone {
                "The server says this feed is gone for good: treatywatch no longer polls this url. Remove the feed or change its url in the config.".to_string()
            } else {
                "treatywatch keeps retrying with backoff; you will hear once more when it recovers.".to_string()
            });
        }
        HealthCondition::Recovered => {
            lines.push(format!(
                "Polled successfully at {}; it had been failing since {}.",
                time(event.occurred_at),
                time(h.since)
            ));
            if let Some(e) = error {
                lines.push(format!("The last error was: {e}"));
            }
        }
        HealthCondition::Stale => {
            lines.push(match h.last_item_at {
                Some(t) => format!(
                    "The feed answers, but its newest item is from {}: nothing new since.",
                    time(t)
                ),
                None => "The feed answers, but publishes nothing.".to_string(),
            });
            lines.push("If it normally publishes this rarely, give its [[feed]] a longer stale_after. You will hear once more when it publishes again.".to_string());
        }
        HealthCondition::Fresh => {
            let newest = h.last_item_at.map_or_else(|| "-".to_string(), time);
            lines.push(format!(
                "A new item dated {newest}; nothing had appeared since {}.",
                time(h.since)
            ));
        }
    }
    let url = names
        .config
        .feeds
        .iter()
        .find(|f| f.id == h.feed)
        .map(|f| f.url.to_string());
    Alert {
        seq: event.seq,
        subject: alert_subject(h),
        heading: clean(&heading),
        lines,
        url,
        delivery: false,
    }
}

/// "Source failing", "Source recovered", …
fn alert_kind(h: &SourceHealth) -> &'static str {
    match h.condition {
        HealthCondition::Failing => "Source failing",
        HealthCondition::Recovered => "Source recovered",
        HealthCondition::Stale => "Source stale",
        HealthCondition::Fresh => "Source publishing again",
    }
}

/// "Source failing: bbc-world (HTTP 503, 5 failures in a row)". Built from
/// the feed id (checked to be `[a-z0-9_-]+`), counts, dates and
/// treatywatch's own summary of the error — never the error itself.
fn alert_subject(h: &SourceHealth) -> String {
    let detail = match h.condition {
        HealthCondition::Failing => {
            let summary = h.summary.as_deref().unwrap_or("error");
            if h.gone {
                format!("{summary}; no longer polled")
            } else {
                format!("{summary}, {}", failures(h.failures))
            }
        }
        HealthCondition::Recovered if h.failures > 0 => format!("after {}", failures(h.failures)),
        HealthCondition::Stale => match h.last_item_at {
            Some(t) => format!("nothing published since {}", t.format("%Y-%m-%d")),
            None => "nothing published".to_string(),
        },
        HealthCondition::Recovered | HealthCondition::Fresh => String::new(),
    };
    let s = if detail.is_empty() {
        format!("{}: {}", alert_kind(h), h.feed)
    } else {
        format!("{}: {} ({detail})", alert_kind(h), h.feed)
    };
    header_safe(&s)
}

/// "5 failures in a row".
fn failures(n: u32) -> String {
    format!("{n} failure{} in a row", if n == 1 { "" } else { "s" })
}

fn capitalise(s: &str) -> String {
    let mut chars = s.chars();
    match chars.next() {
        Some(c) => c.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

/// Printable names from the config.
struct Names<'a> {
    config: &'a Config,
}

impl Names<'_> {
    fn state<'s>(&'s self, code: &'s str) -> &'s str {
        self.config.gazetteer.name_of(code)
    }

    fn treaty<'s>(&'s self, id: &'s str) -> &'s str {
        self.config.treaties.name_of(id)
    }

    fn feed(&self, id: &str) -> String {
        match id {
            NOTICE_SOURCE => "treaty notice period (derived by treatywatch)".to_string(),
            crate::domain::ANALYST_SOURCE => "analyst".to_string(),
            _ => self
                .config
                .feeds
                .iter()
                .find(|f| f.id == id)
                .map_or_else(|| id.to_string(), |f| f.name.clone()),
        }
    }

    fn feeds(&self, ids: &[String]) -> String {
        let names: Vec<String> = ids.iter().map(|id| self.feed(id)).collect();
        if names.is_empty() {
            "-".to_string()
        } else {
            names.join(", ")
        }
    }
}

/// "Ukraine · Ottawa Convention: party → withdrawal announced (+2 more)",
/// with "; 1 source alert" inside the parentheses when alerts ride along;
/// for alerts alone, the first alert's subject.
fn subject(names: &Names<'_>, items: &[Item<'_>], alerts: &[Alert], resent: &Resent<'_>) -> String {
    let prefix = &names.config.notify.subject_prefix;
    let bare = bare_subject(names, items, alerts, resent);
    if prefix.is_empty() {
        bare
    } else {
        header_safe(&format!("{prefix} {bare}"))
    }
}

fn bare_subject(
    names: &Names<'_>,
    items: &[Item<'_>],
    alerts: &[Alert],
    resent: &Resent<'_>,
) -> String {
    // News first; a digest of corrections alone says it is one.
    let first = items
        .iter()
        .find(|i| i.change.correction.is_none())
        .or(items.first());
    let Some(first) = first else {
        if let Some(first) = resent.items.first() {
            let c = first.change;
            let more = resent.items.len() - 1;
            return header_safe(&format!(
                "Resent in brief: {} · {}: {} → {}{}",
                names.state(&c.state),
                names.treaty(&c.treaty),
                c.from.label(),
                c.to.label(),
                if more > 0 {
                    format!(" (+{more} more)")
                } else {
                    String::new()
                }
            ));
        }
        return match alerts {
            [] => "treatywatch digest".to_string(),
            [only] => only.subject.clone(),
            [first, rest @ ..] => header_safe(&format!("{} (+{} more)", first.subject, rest.len())),
        };
    };
    let c = first.change;
    let mut s = format!(
        "{}{} · {}: {} → {}",
        if c.correction.is_some() {
            "Correction: "
        } else {
            ""
        },
        names.state(&c.state),
        names.treaty(&c.treaty),
        c.from.label(),
        c.to.label()
    );
    let mut extra = Vec::new();
    if items.len() > 1 {
        extra.push(format!("+{} more", items.len() - 1));
    }
    if !resent.items.is_empty() {
        extra.push(format!("{} resent in brief", resent.items.len()));
    }
    extra.extend(alert_counts(alerts));
    if !extra.is_empty() {
        let _ = write!(s, " ({})", extra.join("; "));
    }
    header_safe(&s)
}

/// "1 source alert", "2 delivery alerts".
fn alert_counts(alerts: &[Alert]) -> Vec<String> {
    let delivery = alerts.iter().filter(|a| a.delivery).count();
    let source = alerts.len() - delivery;
    let mut out = Vec::new();
    if source > 0 {
        out.push(plural(source, "source alert", "source alerts"));
    }
    if delivery > 0 {
        out.push(plural(delivery, "delivery alert", "delivery alerts"));
    }
    out
}

fn plural(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

/// "2 status changes, 1 correction, 1 source alert": what the digest
/// holds, in words (no sequence numbers: they are for `treatywatch`).
fn headline(parts: &Parts<'_>) -> String {
    let mut out = Vec::new();
    if !parts.items.is_empty() {
        out.push(plural(parts.items.len(), "status change", "status changes"));
    }
    if !parts.corrections.is_empty() {
        out.push(plural(parts.corrections.len(), "correction", "corrections"));
    }
    if !parts.resent.items.is_empty() {
        out.push(format!(
            "{} resent in brief",
            plural(parts.resent.items.len(), "status change", "status changes")
        ));
    }
    out.extend(alert_counts(&parts.alerts));
    if out.is_empty() {
        out.push("treatywatch digest".to_string());
    }
    let mut text = out.join(", ");
    if let Some(first) = text.get(..1) {
        text = first.to_uppercase() + &text[1..];
    }
    text
}

/// One line of the "where things stand" table.
struct Standing {
    state: String,
    status: Status,
    text: String,
}

/// Per treaty concerned: every tracked state, and any other state a change
/// is about, with its current status.
fn standings(
    names: &Names<'_>,
    items: &[Item<'_>],
    snapshot: &Snapshot,
    now: DateTime<Utc>,
) -> Vec<(String, Vec<Standing>)> {
    let projection = &snapshot.projection;
    let mut treaties: Vec<&str> = Vec::new();
    for i in items {
        if !treaties.contains(&i.change.treaty.as_str()) {
            treaties.push(&i.change.treaty);
        }
    }
    let tracked = &names.config.tracking.states;
    treaties
        .into_iter()
        .map(|treaty| {
            let mut states: Vec<&str> = tracked.iter().map(String::as_str).collect();
            for i in items.iter().filter(|i| i.change.treaty == treaty) {
                if !states.contains(&i.change.state.as_str()) {
                    states.push(&i.change.state);
                }
            }
            let info = names.config.treaties.get(treaty);
            let rows = states
                .into_iter()
                .map(|state| Standing {
                    state: names.state(state).to_string(),
                    status: projection
                        .get(&(state.to_string(), treaty.to_string()))
                        .map_or(Status::Unknown, |r| r.status),
                    text: standing(
                        projection.get(&(state.to_string(), treaty.to_string())),
                        info,
                        stated_in(
                            snapshot
                                .notices
                                .get(&(state.to_string(), treaty.to_string())),
                        ),
                        now,
                    ),
                })
                .collect();
            (names.treaty(treaty).to_string(), rows)
        })
        .collect()
}

/// "withdrawal notified since 2025-06-29; expected to take effect …".
fn standing(
    row: Option<&StatusRow>,
    treaty: Option<&Treaty>,
    stated: Option<chrono::NaiveDate>,
    now: DateTime<Utc>,
) -> String {
    let Some(row) = row else {
        return "unknown".to_string();
    };
    let mut s = match &row.baseline {
        Some(b) => format!("{} {}", row.status.label(), b.describe()),
        None => format!(
            "{} since {}",
            row.status.label(),
            row.since.format("%Y-%m-%d")
        ),
    };
    if let (Some(effective), Some(treaty)) = (effective_on(treaty, row, stated), treaty) {
        let article = if treaty.withdrawal_article.is_empty() {
            "the treaty"
        } else {
            treaty.withdrawal_article.as_str()
        };
        let passed = effective <= now.date_naive();
        match (treaty.armed_conflict_clause, passed) {
            (false, false) => {
                let _ = write!(s, "; expected to take effect on {effective}");
            }
            (false, true) => {
                let _ = write!(s, "; the notice period ran out on {effective}");
            }
            (true, false) => {
                let _ = write!(
                    s,
                    "; expected to take effect on {effective}, later if the state is then in an armed conflict ({article})"
                );
            }
            (true, true) => {
                let _ = write!(
                    s,
                    "; the notice period ran out on {effective}, but {article} delays the effect while the state is in an armed conflict, so treatywatch has not marked it withdrawn (confirm with `treatywatch assert`)"
                );
            }
        }
    }
    if row.manual {
        s.push_str(" [set by an analyst]");
    }
    s
}

/// The old status as a reader needs it: from the membership baseline,
/// "party since 2012-01-09 (baseline)", so "→ withdrawal announced" reads
/// against where the state stood.
fn was(c: &StatusChange) -> String {
    match c.from_baseline.as_deref() {
        Some(b) => match b.since {
            Some(since) => format!("{} since {since} (baseline)", c.from.label()),
            None => format!("{} (baseline as of {})", c.from.label(), b.as_of),
        },
        None => c.from.label(),
    }
}

/// "Austria · TPNW: unknown → party, 2025-06-29": a change without feed text.
fn brief_line(names: &Names<'_>, i: &Item<'_>) -> String {
    let c = i.change;
    format!(
        "{} · {}: {} → {}, {}",
        names.state(&c.state),
        names.treaty(&c.treaty),
        was(c),
        c.to.label(),
        i.occurred_at.format("%Y-%m-%d")
    )
}

/// How a change was found and how sure it is: "Feed: wire · rule
/// withdrawal.decree · 1 source · not yet confirmed by the depositary".
///
/// With a `[[mailbox]]` whose depositary covers the treaty, the last part
/// is the depositary's word on the stage, as `status` shows it
/// ("depositary: confirmed by C.N.412.2025.TREATIES-XXVI.5 on 2025-06-27").
fn confidence(names: &Names<'_>, c: &StatusChange, depositary: Option<&str>) -> String {
    let mut parts = vec![format!("Feed: {}", clean(&names.feeds(&c.sources)))];
    if let Some(rule) = &c.rule {
        parts.push(format!("rule {}", clean(rule)));
    }
    parts.push(plural(c.sources.len(), "source", "sources"));
    parts.push(match depositary {
        Some(standing) => format!("depositary: {standing}"),
        None if c.authoritative => "confirmed by an authoritative source".to_string(),
        None => "not yet confirmed by the depositary".to_string(),
    });
    parts.join(" · ")
}

/// What a correction changed, in sentences: what was recorded, what it is
/// now, the analyst's note, what it withdrew, when.
fn correction_lines(c: &StatusChange) -> Vec<String> {
    let Some(k) = c.correction.as_deref() else {
        return Vec::new();
    };
    let mut lines = vec![format!("Was recorded: {}. Now: {}.", was(c), c.to.label())];
    lines.push(format!(
        "Analyst's note: \"{}\"",
        capped(&k.note, MAX_EVIDENCE_CHARS)
    ));
    if let Some(ev) = &k.withdrew {
        lines.push(format!(
            "It withdrew: \"{}\"",
            capped(&ev.sentence, MAX_EVIDENCE_CHARS)
        ));
    }
    lines.push(format!(
        "{} by an analyst on {}.",
        if k.asserted {
            "Status set"
        } else {
            "Report withdrawn"
        },
        k.at.format("%Y-%m-%d %H:%M UTC")
    ));
    lines
}

/// "Lithuania · CCM: withdrawal announced, first reported 2025-06-29 (1 of
/// 2 sources: wire)".
fn waiting_line(names: &Names<'_>, w: &Waiting<'_>) -> String {
    format!(
        "{} · {}: {}, first reported {} ({} of {} sources: {})",
        names.state(w.state),
        names.treaty(w.treaty),
        w.report.status.label(),
        w.report.first_reported.format("%Y-%m-%d"),
        w.report.sources.len(),
        w.report.needed,
        clean(&names.feeds(&w.report.sources))
    )
}

/// The note a brief digest starts with, and how many changes it lists.
fn brief_note(form: Form, items: usize) -> Option<(String, usize)> {
    let Form::Brief { listed } = form else {
        return None;
    };
    let listed = listed.min(items);
    let mut note = "This digest is shortened to fit [notify] max_digest_size: the evidence and sources are left out".to_string();
    if listed < items {
        let _ = write!(note, ", and {} of {items} changes are listed", listed);
    }
    note.push_str(". `treatywatch events` has everything.");
    Some((note, listed))
}

/// Escapes text for HTML element content and quoted attribute values.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for ch in s.chars() {
        match ch {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(ch),
        }
    }
    out
}

/// Feed text on one line: control characters (CR, LF, escapes, NUL)
/// become spaces, runs of white space collapse, and bidi controls
/// (`text::is_bidi_control`) are dropped: in a mail they could make a text
/// read in another order than it is written.
pub fn clean(s: &str) -> String {
    let spaced: String = s
        .chars()
        .filter(|c| !crate::text::is_bidi_control(*c))
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    spaced.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// `clean`ed text of at most `max` characters; a longer one is cut at a
/// character boundary and ends in a visible "…".
pub fn capped(s: &str, max: usize) -> String {
    let clean = clean(s);
    match clean.char_indices().nth(max) {
        None => clean,
        Some((at, _)) => {
            let keep = clean[..at]
                .char_indices()
                .nth(max.saturating_sub(1))
                .map_or(at, |(i, _)| i);
            format!("{}…", clean[..keep].trim_end())
        }
    }
}

/// A header value cannot be split by anything it contains.
pub fn header_safe(s: &str) -> String {
    clean(s)
}

/// A link from a feed, only when it is an absolute http(s) URL.
fn web_link(s: &str) -> Option<Url> {
    Url::parse(s.trim())
        .ok()
        .filter(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping_and_cleaning() {
        let check = |input: &str, escaped: &str, cleaned: &str| {
            assert_eq!(escape(input), escaped, "escape {input:?}");
            assert_eq!(clean(input), cleaned, "clean {input:?}");
        };
        check("a < b & c", "a &lt; b &amp; c", "a < b & c");
        check(
            "<script>alert('x')</script>",
            "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;",
            "<script>alert('x')</script>",
        );
        check("\"quoted\"", "&quot;quoted&quot;", "\"quoted\"");
        check("two\r\nBcc: x@y", "two\r\nBcc: x@y", "two Bcc: x@y");
        check("tab\tand\u{1b}[31m", "tab\tand\u{1b}[31m", "tab and [31m");
        // Bidi overrides and isolates are dropped, not turned into spaces.
        assert_eq!(clean("ab\u{202E}cd\u{202C}ef"), "abcdef");
        assert_eq!(clean("\u{2066}x\u{2069} \u{202A}y\u{202B}"), "x y");
        assert_eq!(clean("עברית"), "עברית", "right-to-left text itself stays");
    }

    #[test]
    fn feed_text_is_capped_with_a_visible_ellipsis() {
        let check = |input: &str, max: usize, expected: &str| {
            assert_eq!(capped(input, max), expected, "capped({input:?}, {max})");
        };
        check("short", 10, "short");
        check("exactly10!", 10, "exactly10!");
        check("eleven char", 10, "eleven ch…");
        check("ééééééééééé", 5, "éééé…");
        check("a    b", 3, "a b");
        check("word and more", 6, "word…");
        let huge = "x".repeat(5_000_000);
        assert_eq!(
            capped(&huge, MAX_TITLE_CHARS).chars().count(),
            MAX_TITLE_CHARS
        );
    }

    #[test]
    fn alert_subjects_say_what_happened_in_our_own_words() {
        use HealthCondition::*;
        let since = chrono::TimeZone::with_ymd_and_hms(&Utc, 2025, 6, 1, 8, 0, 0)
            .single()
            .expect("date");
        let check = |condition, failures, gone, expected: &str| {
            let h = SourceHealth {
                feed: "bbc-world".into(),
                condition,
                since,
                failures,
                summary: Some("HTTP 503".into()),
                // Never in a subject, whatever it says.
                error: Some("HTTP 503\r\nBcc: x@example.net".into()),
                gone,
                last_item_at: Some(since),
            };
            assert_eq!(alert_subject(&h), expected, "{condition} {failures}");
        };
        check(
            Failing,
            5,
            false,
            "Source failing: bbc-world (HTTP 503, 5 failures in a row)",
        );
        check(
            Failing,
            1,
            true,
            "Source failing: bbc-world (HTTP 503; no longer polled)",
        );
        check(
            Recovered,
            7,
            false,
            "Source recovered: bbc-world (after 7 failures in a row)",
        );
        // After the feed's url was changed, there is no count to give.
        check(Recovered, 0, false, "Source recovered: bbc-world");
        check(
            Stale,
            0,
            false,
            "Source stale: bbc-world (nothing published since 2025-06-01)",
        );
        check(Fresh, 0, false, "Source publishing again: bbc-world");
    }

    #[test]
    fn only_web_links_are_links() {
        for (link, ok) in [
            ("https://news.example.org/a?b=c&d", true),
            ("http://example.org", true),
            ("javascript:alert(1)", false),
            ("data:text/html,<b>x</b>", false),
            ("/relative/path", false),
            ("mailto:a@b", false),
        ] {
            assert_eq!(web_link(link).is_some(), ok, "{link}");
        }
    }
}

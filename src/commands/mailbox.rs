//! What `poll` and `status` print about mailboxes (depositary notices).

use std::collections::BTreeMap;
use std::io::Write;

use chrono::{DateTime, Utc};
use serde_json::json;

use super::status::write_columns;
use super::{Result, plural};
use crate::config::Config;
use crate::depositary::confirm::{self, Confirmation, NewsOnly, NoticeOnly};
use crate::domain::{Key, Projection, StatusRow};
use crate::mailbox::ingest::{MailboxOutcome, MailboxReport};
use crate::store::Store;
use crate::text::json_safe;

/// One `poll` line: the mailbox, "mail", and what its new messages were.
pub(super) fn summary_line(report: &MailboxReport) -> Vec<String> {
    let (code, mut text) = match &report.outcome {
        MailboxOutcome::Read {
            messages,
            new,
            counts,
            detections,
            changes,
        } => {
            let mut text = format!(
                "{} ({new} new): {}, {} with no status change, {} unmapped, {} unrecognised; {}, {}",
                plural(*messages, "message", "messages"),
                plural(counts.notifications, "notice", "notices"),
                counts.no_status,
                counts.unmapped,
                counts.unrecognised,
                plural(*detections, "detection", "detections"),
                plural(changes.len(), "status change", "status changes"),
            );
            if counts.unmapped + counts.unrecognised > 0 {
                text.push_str(" (see the warnings above for why)");
            }
            ("mail".to_string(), text)
        }
        MailboxOutcome::Failed {
            error,
            failures,
            next_poll,
        } => {
            let when = next_poll
                .map(|t| format!("; next try {}", t.format("%Y-%m-%d %H:%M UTC")))
                .unwrap_or_default();
            (
                "error".to_string(),
                format!(
                    "{error} ({}){when}",
                    plural(*failures as usize, "failure", "failures in a row")
                ),
            )
        }
        MailboxOutcome::Skipped(reason) => ("skip".to_string(), reason.clone()),
    };
    for alert in &report.alerts {
        text.push_str(&format!("; source alert recorded: {}", alert.condition));
    }
    vec![report.mailbox_id.clone(), code, text]
}

/// The depositary side of `status`: per key, the notice carrying its
/// status, and the two lists `--unconfirmed` prints.
pub(super) struct Depositary {
    pub confirmed: BTreeMap<Key, Confirmation>,
    pub news_only: Vec<NewsOnly>,
    pub notices_only: Vec<NoticeOnly>,
}

/// Reads the notices of every key in the projection (nothing without a
/// `[[mailbox]]`).
pub(super) fn depositary(
    config: &Config,
    store: &Store,
    projection: &Projection,
    now: DateTime<Utc>,
) -> Result<Depositary> {
    let mut events = Vec::new();
    if !config.mailboxes.is_empty() {
        for (state, treaty) in projection.keys() {
            events.extend(store.key_observations(state, treaty)?);
        }
    }
    let notices = confirm::notices(&events);
    let confirmed = confirm::confirmations(projection, &notices);
    let covered = |treaty: &str| crate::depositary::covered(config, treaty);
    // With several mailboxes, the most patient one's wait.
    let within = config
        .mailboxes
        .iter()
        .map(|m| m.confirm_within)
        .max()
        .unwrap_or(crate::config::mailbox::DEFAULT_CONFIRM_WITHIN);
    let within = chrono::Duration::from_std(within).unwrap_or(chrono::Duration::MAX);
    Ok(Depositary {
        news_only: confirm::news_only(projection, &confirmed, &covered, within, now),
        notices_only: confirm::notices_only(&events),
        confirmed,
    })
}

impl Depositary {
    /// The DEPOSITARY cell of a status row (`confirm::standing`, as the
    /// digests and the board word it).
    pub fn cell(&self, config: &Config, key: &Key, row: Option<&StatusRow>) -> String {
        let from_news = row.is_some_and(|r| r.baseline.is_none() && !r.manual);
        confirm::standing(
            self.confirmed.get(key),
            crate::depositary::covered(config, &key.1),
            from_news,
        )
        .map_or_else(|| "-".into(), |s| s.to_string())
    }
}

/// `status --unconfirmed`: both lists, as a table or JSON lines.
pub(super) fn print_unconfirmed(
    config: &Config,
    d: &Depositary,
    json: bool,
    out: &mut dyn Write,
) -> Result<()> {
    if json {
        for n in &d.news_only {
            let line = json!({
                "state": n.key.0, "treaty": n.key.1, "news_only": n.status,
                "since": n.since.to_rfc3339(), "sources": n.sources, "seq": n.seq,
            });
            writeln!(out, "{}", json_safe(line.to_string()))?;
        }
        for n in &d.notices_only {
            let c = &n.confirmation;
            let line = json!({
                "state": n.key.0, "treaty": n.key.1, "notice_only": c.action,
                "reference": c.reference, "effected": c.effected.to_string(),
                "takes_effect": c.takes_effect.map(|t| t.to_string()),
                "source": n.source, "seq": c.seq,
            });
            writeln!(out, "{}", json_safe(line.to_string()))?;
        }
        return Ok(());
    }
    let days = config
        .mailboxes
        .iter()
        .map(|m| m.confirm_within)
        .max()
        .map_or(30, |d| d.as_secs() / 86_400);
    writeln!(
        out,
        "NEWS ONLY: stages reported more than {days} days ago that no depositary notice confirmed"
    )?;
    let mut lines = vec![
        ["STATE", "TREATY", "STATUS", "SINCE", "SOURCES", "EVENT"]
            .map(String::from)
            .to_vec(),
    ];
    for n in &d.news_only {
        lines.push(vec![
            n.key.0.clone(),
            n.key.1.clone(),
            n.status.label(),
            n.since.format("%Y-%m-%d").to_string(),
            n.sources.join(","),
            format!("#{}", n.seq),
        ]);
    }
    write_columns(&lines, out)?;
    writeln!(out)?;
    writeln!(out, "NOTICES ONLY: depositary notices no news reported")?;
    let mut lines = vec![
        [
            "STATE",
            "TREATY",
            "ACTION",
            "EFFECTED",
            "TAKES EFFECT",
            "NOTICE",
            "EVENT",
        ]
        .map(String::from)
        .to_vec(),
    ];
    for n in &d.notices_only {
        let c = &n.confirmation;
        lines.push(vec![
            n.key.0.clone(),
            n.key.1.clone(),
            c.action.to_string(),
            c.effected.to_string(),
            c.takes_effect.map_or_else(|| "-".into(), |t| t.to_string()),
            c.reference.clone(),
            format!("#{}", c.seq),
        ]);
    }
    write_columns(&lines, out)?;
    Ok(())
}

/// The MAILBOX table of `status`: health and what its messages were.
pub(super) fn print_mailboxes(config: &Config, store: &Store, out: &mut dyn Write) -> Result<()> {
    if config.mailboxes.is_empty() {
        return Ok(());
    }
    let when = |t: Option<DateTime<Utc>>| {
        t.map_or_else(
            || "-".to_string(),
            |t| t.format("%Y-%m-%d %H:%M").to_string(),
        )
    };
    let mut lines = vec![
        [
            "MAILBOX",
            "LAST READ",
            "FAILURES",
            "NEXT READ",
            "NOTICES",
            "NO STATUS",
            "UNMAPPED",
            "UNRECOGNISED",
            "PROBLEM",
        ]
        .map(String::from)
        .to_vec(),
    ];
    for m in &config.mailboxes {
        let state = store
            .feed_state(&m.id)?
            .filter(|s| s.url == m.source.locator());
        let counts = store.mailbox_counts(&m.id)?;
        lines.push(vec![
            m.id.clone(),
            when(state.as_ref().and_then(|s| s.last_success)),
            state
                .as_ref()
                .map_or(0, |s| s.consecutive_failures)
                .to_string(),
            when(state.as_ref().and_then(|s| s.next_poll)),
            counts.notifications.to_string(),
            counts.no_status.to_string(),
            counts.unmapped.to_string(),
            counts.unrecognised.to_string(),
            match state.as_ref().and_then(|s| s.last_error.as_deref()) {
                Some(e) => super::status::shorten(e, 70),
                None if state.is_none() && m.enabled => "never read".into(),
                None if !m.enabled => "disabled".into(),
                None => "-".into(),
            },
        ]);
    }
    write_columns(&lines, out)?;
    writeln!(out)?;
    Ok(())
}

//! `status` and `replay`: reading and checking the status projection.

use std::io::Write;

use chrono::{DateTime, NaiveTime, Utc};
use serde_json::json;

use super::{Context, Outcome, Result, parse_date, policy};
use crate::cli::{ReplayArgs, StatusArgs};
use crate::config::{Config, Feed};
use crate::domain::{DigestRefused, EventBody, Key, Projection, Status, StatusRow};
use crate::store::{FeedState, Undelivered};
use crate::text::{json_safe, terminal_safe};

pub(super) fn status(ctx: &Context, args: &StatusArgs, out: &mut dyn Write) -> Result<Outcome> {
    let config = ctx.config()?;
    let store = ctx.read_store(&config)?;
    let projection = projection_as_of(&store, &config, args.as_of.as_deref())?;
    let depositary = super::mailbox::depositary(&config, &store, &projection, Utc::now())?;
    if args.unconfirmed {
        super::mailbox::print_unconfirmed(&config, &depositary, args.json, out)?;
        return Ok(Outcome::Success);
    }
    let rows = rows_to_show(&config, &projection, args.all);
    // Today's waiting reports; the past's are not kept.
    let unconfirmed = match &args.as_of {
        Some(_) => Vec::new(),
        None => store.unconfirmed(&policy(&config))?,
    };
    let feeds = feed_health(&config, &store)?;
    let mail = store.undelivered()?;
    let refused = refusals(&store)?;
    if args.json {
        for (key, row) in &rows {
            writeln!(
                out,
                "{}",
                json_safe(
                    status_json_confirmed(&config, key, *row, depositary.confirmed.get(key))
                        .to_string()
                )
            )?;
        }
        for ((state, treaty), reports) in &unconfirmed {
            for u in reports {
                writeln!(
                    out,
                    "{}",
                    json_safe(
                        json!({
                            "state": state,
                            "treaty": treaty,
                            "unconfirmed": u.status,
                            "sources": u.sources,
                            "needed": u.needed,
                            "first_reported": u.first_reported.to_rfc3339(),
                            "seq": u.seq,
                            "evidence": u.evidence.sentence,
                            "evidence_link": u.evidence.link,
                        })
                        .to_string()
                    )
                )?;
            }
        }
        for (feed, state) in &feeds {
            writeln!(
                out,
                "{}",
                json_safe(feed_json(feed, state.as_ref()).to_string())
            )?;
        }
        for line in mail_json(&mail) {
            writeln!(out, "{}", json_safe(line.to_string()))?;
        }
        for (at, r) in &refused {
            writeln!(
                out,
                "{}",
                json!({
                    "recipient": r.recipient,
                    "refused": r.message_id,
                    "code": r.code,
                    "at": at.to_rfc3339(),
                    "changes": r.changes.len(),
                    "carried": r.carry,
                    "retried": r.retried,
                    "error": r.error,
                })
            )?;
        }
    } else {
        print_table(&config, &rows, &depositary, out)?;
        writeln!(out)?;
        if !unconfirmed.is_empty() {
            print_unconfirmed(&unconfirmed, out)?;
            writeln!(out)?;
        }
        print_feeds(&feeds, out)?;
        writeln!(out)?;
        super::mailbox::print_mailboxes(&config, &store, out)?;
        print_mail(&mail, out)?;
        if !refused.is_empty() {
            writeln!(out)?;
            print_refused(&refused, out)?;
        }
    }
    Ok(Outcome::Success)
}

/// The status table now, or (`--as-of DATE`) as it stood at the end of
/// that day, folded from the log.
pub(super) fn projection_as_of(
    store: &crate::store::Store,
    config: &Config,
    as_of: Option<&str>,
) -> Result<Projection> {
    Ok(match as_of {
        Some(d) => {
            let end_of_day =
                NaiveTime::from_hms_micro_opt(23, 59, 59, 999_999).expect("valid time");
            store.rebuild(&policy(config), Some(parse_date(d, "--as-of", end_of_day)?))?
        }
        None => store.projection()?,
    })
}

/// Every configured feed with what the store knows of its polling (`None`
/// when never polled at its current URL).
fn feed_health<'a>(
    config: &'a Config,
    store: &crate::store::Store,
) -> Result<Vec<(&'a Feed, Option<FeedState>)>> {
    let states = store.feed_states()?;
    Ok(config
        .feeds
        .iter()
        .map(|f| {
            let state = states
                .iter()
                .find(|s| s.feed_id == f.id && s.url == f.url.as_str())
                .cloned();
            (f, state)
        })
        .collect())
}

pub(crate) fn feed_json(feed: &Feed, state: Option<&FeedState>) -> serde_json::Value {
    let time = |t: Option<DateTime<Utc>>| t.map(|t| t.to_rfc3339());
    json!({
        "feed": feed.id,
        "url": feed.url.as_str(),
        "enabled": feed.enabled,
        "last_attempt": time(state.and_then(|s| s.last_attempt)),
        "last_success": time(state.and_then(|s| s.last_success)),
        "last_status": state.and_then(|s| s.last_status),
        "consecutive_failures": state.map_or(0, |s| s.consecutive_failures),
        "last_error": state.and_then(|s| s.last_error.as_deref()),
        "next_poll": time(state.and_then(|s| s.next_poll)),
        "gone": state.is_some_and(|s| s.gone),
        "moved_to": state.and_then(|s| s.moved_to.as_deref()),
        "last_item_at": time(state.and_then(|s| s.last_item_at)),
        "failing_since": time(state.and_then(|s| s.failing_since)),
        "alerted": state.map(alerted).unwrap_or_default(),
    })
}

/// The source-health alerts open for a feed: the recipients were told it is
/// failing or stale and have not yet heard that it is well again.
fn alerted(state: &FeedState) -> Vec<&'static str> {
    let mut open = Vec::new();
    if state.failing_alerted {
        open.push("failing");
    }
    if state.stale_since.is_some() {
        open.push("stale");
    }
    open
}

/// One JSON line per undelivered digest, and one per recipient whose
/// changes are not in a digest yet.
fn mail_json(mail: &Undelivered) -> Vec<serde_json::Value> {
    let mut lines = Vec::new();
    for r in &mail.recipients {
        for d in &r.digests {
            lines.push(json!({
                "recipient": r.recipient,
                "undelivered": d.message_id,
                "subject": d.subject,
                "changes": d.changes,
                "frozen_at": d.created_at.to_rfc3339(),
                "attempts": d.attempts,
                "next_attempt": d.next_attempt_at.to_rfc3339(),
                "last_error": d.last_error,
            }));
        }
        if r.queued > 0 {
            lines.push(json!({
                "recipient": r.recipient,
                "undelivered": serde_json::Value::Null,
                "queued": r.queued,
                "queued_since": r.oldest_queued.map(|t| t.to_rfc3339()),
                "waiting_behind": r.digests.len(),
            }));
        }
    }
    lines
}

/// How many refused digests `status` shows, newest first.
const REFUSALS_SHOWN: usize = 10;

fn refusals(store: &crate::store::Store) -> Result<Vec<(DateTime<Utc>, DigestRefused)>> {
    Ok(store
        .refused_digests(REFUSALS_SHOWN)?
        .into_iter()
        .filter_map(|e| match e.body {
            EventBody::DigestRefused(r) => Some((e.occurred_at, r)),
            _ => None,
        })
        .collect())
}

/// Digests a server refused: when, why, and what became of their changes
/// (resent in brief, or, for a refused address, retried).
fn print_refused(refused: &[(DateTime<Utc>, DigestRefused)], out: &mut dyn Write) -> Result<()> {
    let mut lines = vec![
        [
            "RECIPIENT",
            "REFUSED",
            "CODE",
            "CHANGES",
            "WHAT NOW",
            "ERROR",
        ]
        .map(String::from)
        .to_vec(),
    ];
    for (at, r) in refused {
        lines.push(vec![
            r.recipient.clone(),
            at.format("%Y-%m-%d %H:%M").to_string(),
            r.code.to_string(),
            r.changes.len().to_string(),
            if r.retried {
                "address refused; retried".into()
            } else if r.carry {
                "resent in brief".into()
            } else {
                "in the log only".into()
            },
            shorten(&r.error, 90),
        ]);
    }
    write_columns(&lines, out)?;
    Ok(())
}

/// Reports waiting for another source (`min_sources`): "1 of 2 sources".
fn print_unconfirmed(
    unconfirmed: &[(Key, Vec<crate::domain::Unconfirmed>)],
    out: &mut dyn Write,
) -> Result<()> {
    writeln!(out, "REPORTED, NOT YET CONFIRMED")?;
    let mut lines = vec![
        [
            "STATE", "TREATY", "REPORTED", "SOURCES", "FIRST", "EVIDENCE",
        ]
        .map(String::from)
        .to_vec(),
    ];
    for ((state, treaty), reports) in unconfirmed {
        for u in reports {
            lines.push(vec![
                state.clone(),
                treaty.clone(),
                u.status.label(),
                format!(
                    "{} of {} ({})",
                    u.sources.len(),
                    u.needed,
                    u.sources.join(",")
                ),
                u.first_reported.format("%Y-%m-%d").to_string(),
                format!("#{} \"{}\"", u.seq, shorten(&u.evidence.sentence, 60)),
            ]);
        }
    }
    write_columns(&lines, out)?;
    Ok(())
}

/// Undelivered mail per recipient: attempts, next attempt, last error.
fn print_mail(mail: &Undelivered, out: &mut dyn Write) -> Result<()> {
    if mail.recipients.is_empty() {
        writeln!(out, "MAIL: nothing undelivered")?;
        return Ok(());
    }
    let when = |t: DateTime<Utc>| t.format("%Y-%m-%d %H:%M").to_string();
    let mut lines = vec![
        [
            "RECIPIENT",
            "UNDELIVERED",
            "SINCE",
            "ATTEMPTS",
            "NEXT ATTEMPT",
            "LAST ERROR",
        ]
        .map(String::from)
        .to_vec(),
    ];
    for r in &mail.recipients {
        for d in &r.digests {
            lines.push(vec![
                r.recipient.clone(),
                format!(
                    "digest of {}",
                    super::plural(d.changes, "change", "changes")
                ),
                when(d.created_at),
                d.attempts.to_string(),
                when(d.next_attempt_at),
                d.last_error
                    .as_deref()
                    .map_or_else(|| "-".to_string(), |e| shorten(e, 90)),
            ]);
        }
        if r.queued > 0 {
            lines.push(vec![
                r.recipient.clone(),
                format!(
                    "{} not in a digest yet",
                    super::plural(r.queued, "change", "changes")
                ),
                r.oldest_queued.map_or_else(|| "-".to_string(), when),
                "-".into(),
                if r.digests.is_empty() {
                    "after the debounce window".into()
                } else {
                    "after the digest above".into()
                },
                "-".into(),
            ]);
        }
    }
    write_columns(&lines, out)?;
    Ok(())
}

fn print_feeds(feeds: &[(&Feed, Option<FeedState>)], out: &mut dyn Write) -> Result<()> {
    let when = |t: Option<DateTime<Utc>>| {
        t.map_or_else(
            || "-".to_string(),
            |t| t.format("%Y-%m-%d %H:%M").to_string(),
        )
    };
    let mut lines = vec![
        [
            "FEED",
            "LAST SUCCESS",
            "STATUS",
            "FAILURES",
            "NEXT POLL",
            "ALERTED",
            "PROBLEM",
        ]
        .map(String::from)
        .to_vec(),
    ];
    for (feed, state) in feeds {
        let Some(s) = state else {
            let note = if feed.enabled {
                "never polled"
            } else {
                "disabled"
            };
            lines.push(vec![
                feed.id.clone(),
                "-".into(),
                "-".into(),
                "0".into(),
                "-".into(),
                "-".into(),
                note.into(),
            ]);
            continue;
        };
        let problem = if s.gone {
            "410 Gone: remove the feed or change its url".to_string()
        } else if let Some(e) = &s.last_error {
            shorten(e, 70)
        } else if let Some(m) = &s.moved_to {
            format!("moved permanently to {m}")
        } else {
            "-".into()
        };
        lines.push(vec![
            feed.id.clone(),
            when(s.last_success),
            s.last_status.map_or_else(|| "-".into(), |c| c.to_string()),
            s.consecutive_failures.to_string(),
            when(s.next_poll),
            match alerted(s).join(",") {
                a if a.is_empty() => "-".to_string(),
                a => a,
            },
            problem,
        ]);
    }
    write_columns(&lines, out)?;
    Ok(())
}

/// Tracked states × tracked treaties (unknown where the log says nothing),
/// plus, with `all`, every other key the log has a status for.
pub(crate) fn rows_to_show<'a>(
    config: &Config,
    projection: &'a Projection,
    all: bool,
) -> Vec<(Key, Option<&'a StatusRow>)> {
    let mut rows = Vec::new();
    for state in &config.tracking.states {
        for treaty in &config.tracking.treaties {
            let key = (state.clone(), treaty.clone());
            let row = projection.get(&key);
            rows.push((key, row));
        }
    }
    if all {
        for (key, row) in projection {
            if !config.tracking.states.contains(&key.0)
                || !config.tracking.treaties.contains(&key.1)
            {
                rows.push((key.clone(), Some(row)));
            }
        }
    }
    rows
}

/// When a notified withdrawal takes effect: as the depositary's notice
/// states it, or else per the treaty's notice period.
fn effective(
    config: &Config,
    treaty: &str,
    row: &StatusRow,
    confirmed: Option<&crate::depositary::confirm::Confirmation>,
) -> Option<chrono::NaiveDate> {
    let stated = confirmed.and_then(|c| c.takes_effect);
    crate::notice::effective_on(config.treaties.get(treaty), row, stated)
}

pub(crate) fn status_json(
    config: &Config,
    key: &Key,
    row: Option<&StatusRow>,
) -> serde_json::Value {
    status_json_confirmed(config, key, row, None)
}

/// `status_json` with the depositary's notice behind the row, if any
/// (`confirmed_by`, `confirmed_on`, and its stated effective date).
fn status_json_confirmed(
    config: &Config,
    key: &Key,
    row: Option<&StatusRow>,
    confirmed: Option<&crate::depositary::confirm::Confirmation>,
) -> serde_json::Value {
    let (state, treaty) = key;
    let status = row.map_or(Status::Unknown, |r| r.status);
    json!({
        "confirmed_by": confirmed.map(|c| &c.reference),
        "confirmed_on": confirmed.map(|c| c.effected.to_string()),
        "state": state,
        "treaty": treaty,
        "status": status,
        "since": row.map(|r| r.since.to_rfc3339()),
        "since_seq": row.map(|r| r.since_seq),
        "sources": row.map(|r| r.sources.clone()).unwrap_or_default(),
        "evidence": row.and_then(|r| r.evidence.as_ref()).map(|e| &e.sentence),
        "evidence_link": row.and_then(|r| r.evidence.as_ref()).and_then(|e| e.link.as_ref()),
        "manual": row.is_some_and(|r| r.manual),
        "baseline": row.and_then(|r| r.baseline.as_ref()),
        "expected_effective": row.and_then(|r| effective(config, treaty, r, confirmed)).map(|d| d.to_string()),
    })
}

fn print_table(
    config: &Config,
    rows: &[(Key, Option<&StatusRow>)],
    depositary: &super::mailbox::Depositary,
    out: &mut dyn Write,
) -> Result<()> {
    let header = ["STATE", "TREATY", "STATUS", "SINCE", "SOURCES", "EVIDENCE"];
    let mut lines = vec![header.map(String::from).to_vec()];
    // With a mailbox, a last column says whether the depositary confirmed.
    let with_depositary = !config.mailboxes.is_empty();
    if with_depositary {
        lines[0].push("DEPOSITARY".into());
    }
    for (key, row) in rows {
        if with_depositary {
            let mut line = table_line(config, key, *row, depositary.confirmed.get(key));
            line.push(depositary.cell(config, key, *row));
            lines.push(line);
        } else {
            lines.push(table_line(config, key, *row, None));
        }
    }
    write_columns(&lines, out)?;
    Ok(())
}

fn table_line(
    config: &Config,
    (state, treaty): &Key,
    row: Option<&StatusRow>,
    confirmed: Option<&crate::depositary::confirm::Confirmation>,
) -> Vec<String> {
    let Some(row) = row else {
        return vec![
            state.clone(),
            treaty.clone(),
            "unknown".into(),
            "-".into(),
            "-".into(),
            "-".into(),
        ];
    };
    let mut status = row.status.label();
    if let Some(date) = effective(config, treaty, row, confirmed) {
        let conflict = config
            .treaties
            .get(treaty)
            .is_some_and(|t| t.armed_conflict_clause);
        status.push_str(&format!(
            " (effective {date}{})",
            if conflict { " unless at war" } else { "" }
        ));
    }
    if row.manual {
        status.push_str(" [analyst]");
    }
    let evidence = match &row.baseline {
        Some(b) => format!("(baseline: {} as of {})", shorten(&b.source, 60), b.as_of),
        None => row
            .evidence
            .as_ref()
            .map(|e| {
                e.link
                    .clone()
                    .unwrap_or_else(|| format!("\"{}\"", shorten(&e.sentence, 60)))
            })
            .unwrap_or_else(|| "-".into()),
    };
    // A baseline without a date says only where the state stood by
    // the list's date, not since when.
    let since = match &row.baseline {
        Some(b) => b.since.map_or_else(|| "-".into(), |d| d.to_string()),
        None => row.since.format("%Y-%m-%d").to_string(),
    };
    vec![
        state.clone(),
        treaty.clone(),
        status,
        since,
        row.sources.join(","),
        evidence,
    ]
}

/// Writes rows as left-aligned columns separated by two spaces. Every cell
/// is made terminal-safe here (`text::terminal_safe`): tables carry feed
/// text (titles, evidence, server errors) and this is where it is printed.
pub(super) fn write_columns(lines: &[Vec<String>], out: &mut dyn Write) -> std::io::Result<()> {
    let lines: Vec<Vec<String>> = lines
        .iter()
        .map(|l| l.iter().map(|c| terminal_safe(c).into_owned()).collect())
        .collect();
    let columns = lines.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..columns)
        .map(|c| {
            lines
                .iter()
                .filter_map(|l| l.get(c))
                .map(|s| s.chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    for line in &lines {
        let mut text = String::new();
        for (c, cell) in line.iter().enumerate() {
            if c + 1 == line.len() {
                text.push_str(cell);
            } else {
                text.push_str(cell);
                text.push_str(&" ".repeat(widths[c] - cell.chars().count() + 2));
            }
        }
        writeln!(out, "{}", text.trim_end())?;
    }
    Ok(())
}

/// At most `max` characters, with an ellipsis when cut.
pub(super) fn shorten(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_string()
    } else {
        let cut: String = s.chars().take(max.saturating_sub(1)).collect();
        format!("{cut}…")
    }
}

pub(super) fn replay(ctx: &Context, args: &ReplayArgs, out: &mut dyn Write) -> Result<Outcome> {
    let config = ctx.config()?;
    // Only `--fix` writes; a plain replay reads, like `status`.
    let mut store = if args.fix {
        ctx.store(&config)?
    } else {
        ctx.read_store(&config)?
    };
    let rebuilt = store.rebuild(&policy(&config), None)?;
    let stored = store.projection()?;
    let differences = diff(&stored, &rebuilt);
    if differences.is_empty() {
        writeln!(
            out,
            "replay: {} status rows rebuilt from {} events; identical to the stored table",
            rebuilt.len(),
            store.last_seq()?
        )?;
        return Ok(Outcome::Success);
    }
    for line in &differences {
        writeln!(out, "{line}")?;
    }
    if args.fix {
        store.replace_projection(&rebuilt)?;
        writeln!(
            out,
            "replay: {} rows differed; the stored table was replaced by the rebuilt one",
            differences.len()
        )?;
        Ok(Outcome::Success)
    } else {
        writeln!(
            out,
            "replay: {} rows differ from the log; run `treatywatch replay --fix` to rebuild the table",
            differences.len()
        )?;
        Ok(Outcome::Findings)
    }
}

fn describe(row: Option<&StatusRow>) -> String {
    match row {
        None => "absent".into(),
        Some(r) => format!(
            "{} since {} (event {})",
            r.status,
            fmt_time(r.since),
            r.since_seq
        ),
    }
}

fn fmt_time(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%d").to_string()
}

/// One line per key whose stored row differs from the rebuilt one.
fn diff(stored: &Projection, rebuilt: &Projection) -> Vec<String> {
    let keys: std::collections::BTreeSet<&Key> = stored.keys().chain(rebuilt.keys()).collect();
    keys.into_iter()
        .filter(|k| stored.get(*k) != rebuilt.get(*k))
        .map(|k| {
            format!(
                "differs: {} {}: stored {}, log says {}",
                k.0,
                k.1,
                describe(stored.get(k)),
                describe(rebuilt.get(k))
            )
        })
        .collect()
}

//! `events`, `assert` and `retract`: reading the log and the analyst's
//! corrections, which are appended like any other observation.

use std::io::Write;

use chrono::{NaiveTime, Utc};

use super::status::{shorten, write_columns};
use super::{CommandError, Context, Outcome, Result, parse_date, policy};
use crate::cli::{AssertArgs, EventsArgs, RetractArgs};
use crate::domain::{Assertion, EventBody, NewEvent, Retraction, Status, StoredEvent};
use crate::store::AppendOutcome;
use crate::text::json_safe;

/// Events are read in pages of this many so a huge log streams.
const PAGE: usize = 10_000;

pub(super) fn events(ctx: &Context, args: &EventsArgs, out: &mut dyn Write) -> Result<Outcome> {
    let config = ctx.config()?;
    let store = ctx.read_store(&config)?;
    let mut after = args.since;
    let mut left = args.limit.unwrap_or(usize::MAX);
    while left > 0 {
        let page = store.events_after(after, left.min(PAGE))?;
        let Some(last) = page.last() else { break };
        after = last.seq;
        left -= page.len();
        if args.json {
            for e in &page {
                writeln!(
                    out,
                    "{}",
                    json_safe(serde_json::to_string(e).expect("events serialize"))
                )?;
            }
        } else {
            let lines: Vec<Vec<String>> = page.iter().map(event_line).collect();
            write_columns(&lines, out)?;
        }
    }
    Ok(Outcome::Success)
}

fn event_line(e: &StoredEvent) -> Vec<String> {
    let (state, treaty) = e.body.key().unwrap_or(("-", "-"));
    let summary = match &e.body {
        EventBody::Detection(d) => format!(
            "{} (rule {}, {}): \"{}\"",
            d.action,
            d.rule,
            d.source,
            shorten(&d.evidence.sentence, 80)
        ),
        EventBody::Asserted(a) => format!(
            "{} — {}{}",
            a.status,
            a.note,
            if a.quiet { " (not mailed)" } else { "" }
        ),
        EventBody::Baseline(b) => {
            format!("{} {} — {}", b.status, b.source.describe(), b.source.file)
        }
        EventBody::Retracted(r) => format!("retracts #{} — {}", r.target_seq, r.note),
        EventBody::StatusChanged(c) => {
            format!("{} → {} (caused by #{})", c.from, c.to, c.cause_seq)
        }
        EventBody::DigestSent(d) => format!(
            "to {} reporting #{}…#{} ({} change{}), {}",
            d.recipient,
            d.first_seq,
            d.last_seq,
            d.changes.len(),
            if d.changes.len() == 1 { "" } else { "s" },
            d.message_id
        ),
        EventBody::DigestRefused(r) if r.retried => format!(
            "to {} reporting #{}…#{}: the address was refused with {}; the digest is retried; {}",
            r.recipient, r.first_seq, r.last_seq, r.code, r.message_id
        ),
        EventBody::DigestRefused(r) => format!(
            "to {} reporting #{}…#{} refused with {}, not retried{}; {}",
            r.recipient,
            r.first_seq,
            r.last_seq,
            r.code,
            if r.carry {
                "; its changes are carried into the next digest"
            } else {
                ""
            },
            r.message_id
        ),
        EventBody::SourceHealth(h) => {
            let mut s = format!(
                "feed {} {} (since {}",
                h.feed,
                h.condition,
                h.since.format("%Y-%m-%d %H:%M")
            );
            if h.failures > 0 {
                s.push_str(&format!(", {} failures in a row", h.failures));
            }
            s.push(')');
            if let Some(e) = &h.error {
                s.push_str(&format!(": {}", shorten(&crate::notify::clean(e), 80)));
            }
            s
        }
    };
    vec![
        format!("#{}", e.seq),
        e.occurred_at.format("%Y-%m-%d").to_string(),
        e.body.kind().to_string(),
        state.to_string(),
        treaty.to_string(),
        summary,
    ]
}

pub(super) fn assert(ctx: &Context, args: &AssertArgs, out: &mut dyn Write) -> Result<Outcome> {
    let config = ctx.config()?;
    if config.gazetteer.state(&args.state).is_none() {
        return Err(CommandError::Usage(format!(
            "unknown state {:?}; use an ISO 3166-1 alpha-3 code from the states file, such as UKR",
            args.state
        )));
    }
    if config.treaties.get(&args.treaty).is_none() {
        let ids: Vec<&str> = config.treaties.list.iter().map(|t| t.id.as_str()).collect();
        return Err(CommandError::Usage(format!(
            "unknown treaty {:?}; known ids: {}",
            args.treaty,
            ids.join(", ")
        )));
    }
    let status: Status = args.status.parse().map_err(CommandError::Usage)?;
    if args.note.trim().is_empty() {
        return Err(CommandError::Usage(
            "--note must say why (the source or the reasoning); it is kept in the log".into(),
        ));
    }
    let now = Utc::now();
    let occurred_at = match &args.date {
        Some(d) => parse_date(d, "--date", NaiveTime::MIN)?,
        None => now,
    };
    let mut store = ctx.store(&config)?;
    let event = NewEvent {
        occurred_at,
        body: EventBody::Asserted(Assertion {
            state: args.state.clone(),
            treaty: args.treaty.clone(),
            status,
            note: args.note.clone(),
            quiet: args.no_mail,
        }),
    };
    let outcome = if args.no_mail {
        store.append_unmailed(&[event], &policy(&config), now)?
    } else {
        store.append(&[event], &policy(&config), now)?
    };
    report(&outcome, "asserted", out)?;
    if args.no_mail && !outcome.changes.is_empty() {
        writeln!(out, "recorded as history: this change is not mailed")?;
    }
    Ok(Outcome::Success)
}

pub(super) fn retract(ctx: &Context, args: &RetractArgs, out: &mut dyn Write) -> Result<Outcome> {
    let config = ctx.config()?;
    let mut store = ctx.store(&config)?;
    let target = store
        .event(args.seq)?
        .ok_or(crate::store::StoreError::NoSuchEvent(args.seq))?;
    if !matches!(
        target.body,
        EventBody::Detection(_) | EventBody::Asserted(_) | EventBody::Baseline(_)
    ) {
        return Err(CommandError::Usage(format!(
            "event #{} is a {} event; only detections, assertions and baselines can be retracted (a status change is retracted by retracting its cause)",
            args.seq,
            target.body.kind()
        )));
    }
    if args.note.trim().is_empty() {
        return Err(CommandError::Usage(
            "--note must say why the event is wrong; it is kept in the log".into(),
        ));
    }
    let Some((state, treaty)) = target.body.key() else {
        return Err(CommandError::Usage(format!(
            "event #{} is about no state and treaty; nothing to retract",
            args.seq
        )));
    };
    let now = Utc::now();
    let event = NewEvent {
        occurred_at: now,
        body: EventBody::Retracted(Retraction {
            target_seq: args.seq,
            state: state.to_string(),
            treaty: treaty.to_string(),
            note: args.note.clone(),
            rules_version: None,
        }),
    };
    let outcome = store.append(&[event], &policy(&config), now)?;
    report(&outcome, "retracted", out)?;
    Ok(Outcome::Success)
}

/// One line for what was appended, one per status change it caused.
fn report(outcome: &AppendOutcome, kind: &str, out: &mut dyn Write) -> Result<()> {
    match outcome.appended.first() {
        Some(seq) => writeln!(out, "appended #{seq} ({kind})")?,
        None => writeln!(out, "already in the log; nothing appended")?,
    }
    for line in outcome.changes.iter().filter_map(change_line) {
        writeln!(out, "{line}")?;
    }
    Ok(())
}

/// "#12: UKR ottawa: party → withdrawal_announced" for a status change.
pub(super) fn change_line(event: &StoredEvent) -> Option<String> {
    match &event.body {
        EventBody::StatusChanged(c) => Some(format!(
            "#{}: {} {}: {} → {}",
            event.seq, c.state, c.treaty, c.from, c.to
        )),
        _ => None,
    }
}

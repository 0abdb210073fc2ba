//! `poll`: fetch every feed once, ingest, print one line per feed.

use std::io::{IsTerminal, Write};

use chrono::Utc;

use super::status::write_columns;
use super::{CommandError, Context, Outcome, Result, plural};
use crate::classify::Classifier;
use crate::fetch::Fetcher;
use crate::ingest::{FeedOutcome, FeedReport, thousands};
use crate::notice;
use crate::notify::{self, Flush, NotifyReport};

/// A progress line is drawn on a terminal when there are more feeds than this.
const PROGRESS_ABOVE: usize = 10;

pub(super) fn poll(ctx: &Context, out: &mut dyn Write) -> Result<Outcome> {
    let config = std::sync::Arc::new(ctx.config()?);
    let mut store = ctx.store(&config)?;
    // As the daemon does at start: an edited membership file is imported
    // before the news is read against it.
    let baseline = crate::baseline::import(&mut store, &config, Utc::now())?;
    if baseline.new_events() > 0 {
        writeln!(
            out,
            "baseline: imported {} from {}; {} set, never mailed",
            plural(baseline.new_events(), "entry", "entries"),
            plural(baseline.files.len(), "membership file", "membership files"),
            plural(baseline.changes.len(), "status", "statuses"),
        )?;
    }
    let fetcher = Fetcher::new(config.fetch.limits)
        .map_err(|e| CommandError::Usage(format!("cannot set up HTTP: {e}")))?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(CommandError::Output)?;
    let feeds: Vec<_> = config.feeds.iter().collect();
    let classifier = std::sync::Arc::new(Classifier::new(
        &config.gazetteer,
        &config.treaties,
        &config.rules,
    ));
    let show_progress = feeds.len() > PROGRESS_ABOVE && std::io::stderr().is_terminal();
    let mut progress = |done: usize, total: usize| {
        if show_progress {
            eprint!("\rpolled {done}/{total} feeds");
            if done == total {
                eprint!("\r\x1b[K");
            }
        }
    };
    let reports = crate::poll::poll_feeds(
        rt.handle(),
        &fetcher,
        &mut store,
        &config,
        &feeds,
        classifier,
        &mut progress,
    )?;
    let mailboxes = crate::mailbox::ingest::poll_mailboxes(
        &mut store,
        &config,
        Utc::now(),
        false,
        &mut |mailbox, state| {
            crate::mailbox::ingest::read_remote_blocking(rt.handle(), mailbox, state)
        },
    )?;
    let mut lines: Vec<Vec<String>> = reports.iter().map(summary_line).collect();
    lines.extend(mailboxes.iter().map(super::mailbox::summary_line));
    write_columns(&lines, out)?;
    writeln!(out, "{}", total_line(&reports))?;
    let failed = reports.iter().any(|r| r.outcome.is_failure())
        || mailboxes.iter().any(|r| r.outcome.is_failure());
    // As the daemon would: record notice periods that ran out, then send
    // everything pending (a one-shot run does not wait out the debounce).
    let now = Utc::now();
    let effects = notice::record_due_effects(&mut store, &config, now)?;
    let report = notify::run_pending(&mut store, &config, now, Flush::Now)?;
    writeln!(
        out,
        "{}",
        digest_line(effects.appended.changes.len(), effects.held.len(), &report)
    )?;
    for f in &report.failed {
        writeln!(
            out,
            "digest to {} NOT sent: {}",
            f.recipient,
            crate::text::terminal_safe(&f.error)
        )?;
    }
    let undelivered = !report.failed.is_empty();
    Ok(if failed || undelivered {
        Outcome::Findings
    } else {
        Outcome::Success
    })
}

fn digest_line(effects: usize, held: usize, report: &NotifyReport) -> String {
    let mut line = format!(
        "digests: {} sent, {} failed",
        report.sent.len(),
        report.failed.len()
    );
    if let Some(t) = &report.transport {
        line.push_str(&format!(" via {t}"));
    }
    if effects > 0 {
        line.push_str(&format!(
            "; {effects} withdrawal(s) became effective by their notice period"
        ));
    }
    if held > 0 {
        line.push_str(&format!(
            "; {held} held by an armed-conflict clause (see `treatywatch digest`)"
        ));
    }
    line
}

fn summary_line(report: &FeedReport) -> Vec<String> {
    let (code, mut text) = match &report.outcome {
        FeedOutcome::Fetched {
            status,
            new,
            changed,
            detections,
            changes,
            moved_to,
            truncated,
        } => {
            let mut text = format!(
                "{} new, {} changed, {}, {}",
                new,
                changed,
                plural(*detections, "detection", "detections"),
                plural(changes.len(), "status change", "status changes")
            );
            if let Some((kept, total)) = truncated {
                text.push_str(&format!(
                    "; kept {} of {} items ([fetch] max_items)",
                    thousands(*kept),
                    thousands(*total)
                ));
            }
            if let Some(url) = moved_to {
                text.push_str(&format!(
                    "; moved permanently to {url}: update its url in the config"
                ));
            }
            (status.to_string(), text)
        }
        FeedOutcome::NotModified => ("304".into(), "not modified".into()),
        FeedOutcome::Failed {
            error,
            status,
            failures,
            next_poll,
        } => {
            let when = next_poll
                .map(|t| format!("; next try {}", t.format("%Y-%m-%d %H:%M UTC")))
                .unwrap_or_default();
            let code = status.map_or_else(|| "error".into(), |s| s.to_string());
            (
                code,
                format!(
                    "{error} ({}){when}",
                    plural(*failures as usize, "failure", "failures in a row")
                ),
            )
        }
        FeedOutcome::Skipped(reason) => ("skip".into(), reason.clone()),
    };
    for alert in &report.alerts {
        text.push_str(&format!("; source alert recorded: {}", alert.condition));
    }
    vec![report.feed_id.clone(), code, text]
}

fn total_line(reports: &[FeedReport]) -> String {
    let (mut ok, mut failed, mut new, mut changed, mut detections, mut changes) =
        (0, 0, 0, 0, 0, 0);
    for r in reports {
        match &r.outcome {
            FeedOutcome::Fetched {
                new: n,
                changed: c,
                detections: d,
                changes: ch,
                ..
            } => {
                ok += 1;
                new += n;
                changed += c;
                detections += d;
                changes += ch.len();
            }
            FeedOutcome::NotModified => ok += 1,
            o if o.is_failure() => failed += 1,
            _ => {}
        }
    }
    format!(
        "total: {} at {}: {ok} fetched, {failed} failed; {new} new items, {changed} changed, {}, {}",
        plural(reports.len(), "feed", "feeds"),
        Utc::now().format("%Y-%m-%d %H:%M UTC"),
        plural(detections, "detection", "detections"),
        plural(changes, "status change", "status changes"),
    )
}

//! `reclassify`: re-read every stored item with the current rules and
//! print what that appended and which statuses it moved.

use std::io::Write;

use chrono::Utc;

use super::log::change_line;
use super::status::{shorten, write_columns};
use super::{Context, Outcome, Result, plural, policy};
use crate::classify::Classifier;
use crate::domain::Detection;
use crate::reclassify::{self, Report};

pub(super) fn reclassify(ctx: &Context, out: &mut dyn Write) -> Result<Outcome> {
    let config = ctx.config()?;
    let mut store = ctx.store(&config)?;
    let classifier = Classifier::new(&config.gazetteer, &config.treaties, &config.rules);
    let policy = policy(&config);
    let report = reclassify::run(
        &mut store,
        &reclassify::Context {
            classifier: &classifier,
            rules_version: &config.rules_version,
            feeds: &config.feeds,
            backfill_age: config.fetch.backfill_age,
            policy: &policy,
            now: Utc::now(),
        },
    )?;
    print(&report, &config.rules_version, out)?;
    Ok(Outcome::Success)
}

fn print(report: &Report, version: &str, out: &mut dyn Write) -> Result<()> {
    let detail = |sign: &str, d: &Detection| {
        vec![
            sign.to_string(),
            d.state.clone(),
            d.treaty.clone(),
            d.action.to_string(),
            format!("rule {}", d.rule),
            format!("\"{}\"", shorten(&d.evidence.sentence, 80)),
        ]
    };
    let mut lines: Vec<Vec<String>> = Vec::new();
    for (seq, d) in &report.retracted {
        lines.push(detail(&format!("retracted #{seq}"), d));
    }
    for d in &report.added {
        lines.push(detail("added", d));
    }
    write_columns(&lines, out)?;
    let items = plural(report.items, "item", "items");
    if report.added.is_empty() && report.retracted.is_empty() {
        writeln!(
            out,
            "reclassify with rules version {version}: {items} re-read; the log already agrees with these rules, nothing appended"
        )?;
        return Ok(());
    }
    writeln!(
        out,
        "reclassify with rules version {version}: {items} re-read, {} added, {} retracted, {} caused",
        plural(report.added.len(), "detection", "detections"),
        report.retracted.len(),
        plural(report.changes.len(), "status change", "status changes"),
    )?;
    for line in report.changes.iter().filter_map(change_line) {
        writeln!(out, "  {line}")?;
    }
    if !report.changes.is_empty() {
        writeln!(
            out,
            "none of these changes was emailed: they correct the record of news already seen (recorded as backfill)"
        )?;
    }
    Ok(())
}

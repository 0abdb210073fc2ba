//! `baseline [--dry-run]`: import the membership data files into the log,
//! or say what that would do, file by file.

use std::io::Write;

use chrono::Utc;

use super::status::write_columns;
use super::{Context, Outcome, Result, plural};
use crate::baseline::{self, ImportReport};
use crate::cli::BaselineArgs;

/// Status changes listed one per line; beyond this, only counted.
const CHANGES_LISTED: usize = 40;

pub(super) fn baseline(ctx: &Context, args: &BaselineArgs, out: &mut dyn Write) -> Result<Outcome> {
    let config = ctx.config()?;
    if config.membership.is_empty() {
        writeln!(
            out,
            "no membership data files: add `membership = [\"membership\"]` under [data] in {}",
            config.path.display()
        )?;
        return Ok(Outcome::Success);
    }
    let report = if args.dry_run {
        let path = ctx.db_path(&config);
        if path.exists() {
            baseline::plan(Some(&ctx.read_store(&config)?), &config)?
        } else {
            writeln!(
                out,
                "no database yet at {}: every entry is new",
                path.display()
            )?;
            baseline::plan(None, &config)?
        }
    } else {
        let mut store = ctx.store(&config)?;
        baseline::import(&mut store, &config, Utc::now())?
    };
    print_report(&config, &report, args.dry_run, out)?;
    Ok(Outcome::Success)
}

/// One line per file, the status changes (tracked keys first), a total.
pub(super) fn print_report(
    config: &crate::config::Config,
    report: &ImportReport,
    dry_run: bool,
    out: &mut dyn Write,
) -> Result<()> {
    let mut lines = vec![
        ["FILE", "TREATY", "AS OF", "ENTRIES", "NEW"]
            .map(String::from)
            .to_vec(),
    ];
    for f in &report.files {
        lines.push(vec![
            f.file.clone(),
            f.treaty.clone(),
            f.as_of.to_string(),
            f.entries.to_string(),
            f.new.to_string(),
        ]);
    }
    write_columns(&lines, out)?;
    let tracked = |c: &&baseline::Change| {
        config.tracking.states.contains(&c.state) && config.tracking.treaties.contains(&c.treaty)
    };
    let mut shown: Vec<&baseline::Change> = report.changes.iter().filter(tracked).collect();
    shown.extend(report.changes.iter().filter(|c| !tracked(c)));
    for c in shown.iter().take(CHANGES_LISTED) {
        writeln!(
            out,
            "{} {} {}: {} → {}",
            if dry_run { "would set" } else { "set" },
            c.state,
            c.treaty,
            c.from,
            c.to
        )?;
    }
    if shown.len() > CHANGES_LISTED {
        writeln!(
            out,
            "… and {} more",
            plural(shown.len() - CHANGES_LISTED, "status", "statuses")
        )?;
    }
    let entries: usize = report.files.iter().map(|f| f.entries).sum();
    let new = report.new_events();
    writeln!(
        out,
        "{} {} of {} ({} already in the log); {} {}, never mailed",
        if dry_run { "would import" } else { "imported" },
        plural(new, "baseline entry", "baseline entries"),
        plural(report.files.len(), "file", "files"),
        entries - new,
        plural(report.changes.len(), "status", "statuses"),
        if dry_run { "would move" } else { "moved" },
    )?;
    Ok(())
}

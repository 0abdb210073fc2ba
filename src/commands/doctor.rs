//! `doctor` and `backup`: is the database sound, and a copy of it to keep.
//! Both read only and never take the writer lock, so they are safe while
//! the daemon runs.

use std::io::Write;

use chrono::Utc;

use super::{Context, Outcome, Result};
use crate::cli::{BackupArgs, DoctorArgs};
use crate::store::{self, Check, StoreError};

pub(super) fn doctor(ctx: &Context, args: &DoctorArgs, out: &mut dyn Write) -> Result<Outcome> {
    let config = ctx.config()?;
    let path = ctx.db_path(&config);
    let store = ctx.read_store(&config)?;
    let (check, name) = if args.full {
        (Check::Full, "integrity_check")
    } else {
        (Check::Quick, "quick_check")
    };
    let problems = store.integrity(check)?;
    if !problems.is_empty() {
        for p in &problems {
            writeln!(out, "{}: {}", path.display(), crate::text::terminal_safe(p))?;
        }
        return Err(StoreError::Damaged {
            path: path.to_path_buf(),
            problems,
        }
        .into());
    }
    let events = store.last_seq()?;
    let bytes = std::fs::metadata(path).map_or(0, |m| m.len());
    let backups = store::backups(path);
    let newest = match backups.last() {
        Some((p, at)) => format!(
            "; newest backup {} ({} h old, {} kept)",
            p.display(),
            (Utc::now() - *at).num_hours(),
            backups.len()
        ),
        None => format!(
            "; no backups in {} (`treatywatch backup FILE`, or [storage] backup_every)",
            store::backup_folder(path).display()
        ),
    };
    writeln!(
        out,
        "{}: ok — {name} found no problem; schema version {}, events up to #{events}, {}{newest}",
        path.display(),
        store::Store::schema_version(),
        human_bytes(bytes),
    )?;
    Ok(Outcome::Success)
}

pub(super) fn backup(ctx: &Context, args: &BackupArgs, out: &mut dyn Write) -> Result<Outcome> {
    let config = ctx.config()?;
    let path = ctx.db_path(&config);
    let report = store::backup_to(path, &args.file)?;
    writeln!(
        out,
        "backed up {} to {} ({}, checked with quick_check); to restore, stop the daemon and copy it back in place of the database after moving the database and its -wal and -shm files away",
        path.display(),
        report.path.display(),
        human_bytes(report.bytes)
    )?;
    Ok(Outcome::Success)
}

fn human_bytes(n: u64) -> String {
    match n {
        n if n >= 1 << 30 => format!("{:.1} GB", n as f64 / (1u64 << 30) as f64),
        n if n >= 1 << 20 => format!("{:.1} MB", n as f64 / (1u64 << 20) as f64),
        n if n >= 1 << 10 => format!("{:.0} KB", n as f64 / 1024.0),
        n => format!("{n} bytes"),
    }
}

//! A database you can trust and restore: SQLite's integrity checks, and
//! consistent online backups with SQLite's backup API.
//!
//! `run` refuses a database that fails `quick_check` and `doctor` runs it
//! (or the full `integrity_check`) on demand; both explain what to do
//! instead, naming the newest backup when there is one. A backup is taken
//! from a read-only connection in one step, so it is one consistent
//! snapshot even while the daemon writes; it is written beside its final
//! name, checked, synced and renamed into place, so a backup file is either
//! complete or absent. The daemon's rotating backups live in `backups/`
//! beside the database, named by the time they were taken, oldest removed
//! first.

use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use rusqlite::{Connection, OpenFlags};

use super::{Result, Store, StoreError};

/// How thorough an integrity check is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Check {
    /// `PRAGMA quick_check`: every page and record, without comparing
    /// indexes to their tables; fast enough for every start.
    Quick,
    /// `PRAGMA integrity_check`: also that every index matches its table.
    Full,
}

/// At most this many problems are read back from a check.
const MAX_PROBLEMS: usize = 20;

/// Whether an error means the file is not a sound database.
pub fn is_corruption(e: &rusqlite::Error) -> bool {
    matches!(
        e.sqlite_error_code(),
        Some(rusqlite::ErrorCode::DatabaseCorrupt | rusqlite::ErrorCode::NotADatabase)
    )
}

impl Store {
    /// Runs SQLite's integrity check; the problems it reports, none when the
    /// database is sound. A check that cannot even run because the file is
    /// damaged reports that as its problem.
    pub fn integrity(&self, check: Check) -> Result<Vec<String>> {
        integrity(&self.conn, check)
    }
}

fn integrity(conn: &Connection, check: Check) -> Result<Vec<String>> {
    let pragma = match check {
        Check::Quick => "quick_check",
        Check::Full => "integrity_check",
    };
    let run = || -> rusqlite::Result<Vec<String>> {
        let mut stmt = conn.prepare(&format!("PRAGMA {pragma}({MAX_PROBLEMS})"))?;
        let rows = stmt.query_map([], |r| r.get::<_, String>(0))?;
        rows.collect()
    };
    match run() {
        Ok(rows) if rows.len() == 1 && rows[0] == "ok" => Ok(Vec::new()),
        Ok(rows) => Ok(rows),
        Err(e) if is_corruption(&e) => Ok(vec![e.to_string()]),
        Err(e) => Err(e.into()),
    }
}

/// The folder the daemon keeps its rotating backups of `db` in.
pub fn backup_folder(db: &Path) -> PathBuf {
    db.with_file_name("backups")
}

fn stem(db: &Path) -> String {
    db.file_stem().map_or_else(
        || "treatywatch".into(),
        |s| s.to_string_lossy().into_owned(),
    )
}

/// The name of a rotating backup of `db` taken at `at`.
pub fn backup_name(db: &Path, at: DateTime<Utc>) -> PathBuf {
    backup_folder(db).join(format!("{}-{}.db", stem(db), at.format("%Y%m%dT%H%M%SZ")))
}

/// The rotating backups of `db`, oldest first, with when each was taken.
pub fn backups(db: &Path) -> Vec<(PathBuf, DateTime<Utc>)> {
    let prefix = format!("{}-", stem(db));
    let mut found: Vec<(PathBuf, DateTime<Utc>)> = std::fs::read_dir(backup_folder(db))
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let name = entry.file_name().to_string_lossy().into_owned();
            let stamp = name.strip_prefix(&prefix)?.strip_suffix(".db")?;
            let at = chrono::NaiveDateTime::parse_from_str(stamp, "%Y%m%dT%H%M%SZ").ok()?;
            Some((entry.path(), at.and_utc()))
        })
        .collect();
    found.sort_by_key(|(_, at)| *at);
    found
}

/// Removes the oldest rotating backups of `db` until `keep` are left;
/// returns the ones removed. Only files named like its backups are touched.
pub fn rotate_backups(db: &Path, keep: usize) -> std::io::Result<Vec<PathBuf>> {
    let all = backups(db);
    let excess = all.len().saturating_sub(keep);
    let mut removed = Vec::new();
    for (path, _) in all.into_iter().take(excess) {
        std::fs::remove_file(&path)?;
        removed.push(path);
    }
    Ok(removed)
}

/// What a backup wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackupReport {
    pub path: PathBuf,
    pub bytes: u64,
}

/// Copies the database at `db` to `to` (which must not exist) as one
/// consistent snapshot, safe while another process writes it. The copy is
/// checked with `quick_check` before it takes its name; a damaged source
/// therefore gives an error, not a damaged backup.
pub fn backup_to(db: &Path, to: &Path) -> Result<BackupReport> {
    let fail = |reason: String| StoreError::Backup {
        from: db.to_path_buf(),
        to: to.to_path_buf(),
        reason,
    };
    if !db.is_file() {
        return Err(StoreError::Missing {
            path: db.to_path_buf(),
        });
    }
    if to.exists() {
        return Err(fail(
            "that file already exists; name a new file (backups are never overwritten)".into(),
        ));
    }
    let dir = to
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)
        .map_err(|e| fail(format!("cannot create {}: {e}", dir.display())))?;
    let mut partial_name = to.file_name().unwrap_or_default().to_os_string();
    partial_name.push(format!(".partial-{}", std::process::id()));
    let partial = dir.join(partial_name);
    let result = copy(db, &partial).and_then(|()| {
        let problems = {
            let conn = Connection::open_with_flags(&partial, OpenFlags::SQLITE_OPEN_READ_ONLY)?;
            integrity(&conn, Check::Quick)?
        };
        if !problems.is_empty() {
            return Err(StoreError::Damaged {
                path: db.to_path_buf(),
                problems,
            });
        }
        let file = std::fs::File::open(&partial).map_err(|e| fail(e.to_string()))?;
        file.sync_all().map_err(|e| fail(e.to_string()))?;
        std::fs::rename(&partial, to).map_err(|e| fail(e.to_string()))?;
        if let Ok(d) = std::fs::File::open(dir) {
            let _ = d.sync_all();
        }
        Ok(file.metadata().map(|m| m.len()).unwrap_or(0))
    });
    match result {
        Ok(bytes) => Ok(BackupReport {
            path: to.to_path_buf(),
            bytes,
        }),
        Err(e) => {
            let _ = std::fs::remove_file(&partial);
            Err(match e {
                StoreError::Sql(e) if is_corruption(&e) => StoreError::Damaged {
                    path: db.to_path_buf(),
                    problems: vec![e.to_string()],
                },
                StoreError::Sql(e) => fail(e.to_string()),
                other => other,
            })
        }
    }
}

fn copy(db: &Path, partial: &Path) -> Result<()> {
    let src = Connection::open_with_flags(
        db,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    src.busy_timeout(super::BUSY_TIMEOUT)?;
    let mut dst = Connection::open(partial)?;
    {
        let backup = rusqlite::backup::Backup::new(&src, &mut dst)?;
        // All pages in one step: one read transaction on the source, so the
        // copy is a single snapshot whatever the daemon commits meanwhile.
        backup.step(-1)?;
    }
    // A backup is a plain file that needs no -wal beside it.
    dst.pragma_update(None, "journal_mode", "DELETE")?;
    Ok(())
}

/// What `run` and `doctor` say about a damaged database: what was found,
/// and how to restore, naming the newest backup when there is one.
pub(super) fn damaged_message(db: &Path, problems: &[String]) -> String {
    let shown: Vec<&str> = problems.iter().take(3).map(String::as_str).collect();
    let more = problems.len().saturating_sub(shown.len());
    let mut m = format!(
        "database {} is damaged (SQLite: {}{}). Do not write to it. ",
        db.display(),
        shown.join("; "),
        if more > 0 {
            format!("; and {more} more")
        } else {
            String::new()
        }
    );
    let d = db.display();
    match backups(db).last() {
        Some((newest, _)) => m.push_str(&format!(
            "Restore the newest backup: stop the daemon, check the backup with `treatywatch doctor --db {b}`, then `mv {d} {d}.damaged && rm -f {d}-wal {d}-shm && cp {b} {d}`, and start again",
            b = newest.display()
        )),
        None => m.push_str(&format!(
            "Restore a backup (none in {}): stop the daemon, `mv {d} {d}.damaged && rm -f {d}-wal {d}-shm && cp BACKUP {d}`; without one, `sqlite3 {d}.damaged .recover | sqlite3 {d}` salvages what it can",
            backup_folder(db).display()
        )),
    }
    m
}

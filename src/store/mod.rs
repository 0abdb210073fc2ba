//! The SQLite store: the only module that speaks SQL.
//!
//! Owns opening the database (WAL, busy timeout, `synchronous=FULL`,
//! migrations from `migrations/` in one exclusive transaction, foreign keys
//! off and checked before it commits), the
//! append-only event log (`log.rs`), the status projection kept beside it
//! (`projection.rs`), feed health and the items seen (`feeds.rs`), the
//! messages read from mailboxes (`mailbox.rs`), the notifier's outbox
//! (`outbox.rs`), the writer lock (`lock.rs`), the refusal of root on
//! another user's database (`owner.rs`), integrity checks and backups
//! (`safety.rs`), and the reads of the web outputs (`history.rs`). A
//! writer opening the database releases the claims of delivery attempts a
//! stop or a crash cut short, so they are due again at once.
//! One `Store` is one connection. A writing `Store`
//! holds the database's writer lock for its life, so one process writes at
//! a time; a read-only one (`open_read_only`) needs no lock, never creates a
//! database and cannot write.

mod feeds;
mod history;
pub mod lock;
mod log;
mod mailbox;
#[cfg(test)]
mod migration_tests;
mod outbox;
pub mod owner;
mod projection;
mod safety;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use rusqlite::{Connection, MAIN_DB, OpenFlags, OptionalExtension, TransactionBehavior};

pub use feeds::{FeedCommit, FeedState, ItemChange, ItemPage, LoggedDetection, StoredItem};
pub use history::ChangeFilter;
pub use lock::{LOCK_WAIT, LockError, Role};
pub use log::AppendOutcome;
pub use mailbox::{MailboxCounts, MessageOutcome, SeenMessage};
pub use outbox::{
    ATTEMPT_LEASE, Batch, NewBatch, PendingDigest, QueuedChange, RecipientMail, Undelivered,
};
pub use safety::{
    BackupReport, Check, backup_folder, backup_name, backup_to, backups, is_corruption,
    rotate_backups,
};

/// The schema, one migration per file, applied in order. Append only: a
/// released migration is never edited.
const MIGRATIONS: &[&str] = &[
    include_str!("../../migrations/0001_event_log.sql"),
    include_str!("../../migrations/0002_feeds_items.sql"),
    include_str!("../../migrations/0003_outbox.sql"),
    include_str!("../../migrations/0004_fold_state.sql"),
    include_str!("../../migrations/0005_feed_alerts.sql"),
    include_str!("../../migrations/0006_reclassify.sql"),
    include_str!("../../migrations/0007_baseline.sql"),
    include_str!("../../migrations/0008_mailbox.sql"),
    include_str!("../../migrations/0009_items_seen.sql"),
    include_str!("../../migrations/0010_lean_events.sql"),
];

/// How long a statement waits for another connection's lock before failing.
pub const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot create the database folder {}: {source}; fix [storage] path or pass --db", path.display())]
    CreateDir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot open database {}: {source}; check the path and its permissions ([storage] path or --db)", path.display())]
    Open {
        path: PathBuf,
        source: rusqlite::Error,
    },
    #[error(
        "there is no database at {}: nothing has been recorded there yet. `treatywatch poll` or `treatywatch run` creates it; `--db FILE` reads another",
        path.display()
    )]
    Missing { path: PathBuf },
    #[error(
        "cannot write database {}: the file or its folder is read-only for this user; give the user running treatywatch write access to both, or pass --db",
        path.display()
    )]
    ReadOnly { path: PathBuf },
    #[error(transparent)]
    Lock(#[from] LockError),
    /// Root on a database that belongs to another user (see `owner.rs`).
    #[error(
        "{} belongs to the user {user}, and running treatywatch as root on it would leave root-owned files the service cannot open; run it as that user instead:\n  {command}",
        path.display()
    )]
    NotOwner {
        path: PathBuf,
        user: String,
        /// This command line, run as `user`.
        command: String,
    },
    #[error(
        "database {} has schema version {found} but this treatywatch only knows up to {known}: it was written by a newer release; upgrade treatywatch or use another --db",
        path.display()
    )]
    TooNew {
        path: PathBuf,
        found: usize,
        known: usize,
    },
    #[error(
        "database {} has schema version {found}; this treatywatch reads version {known}. A writing command (`treatywatch poll`) or the daemon upgrades it at its next start",
        path.display()
    )]
    Outdated {
        path: PathBuf,
        found: usize,
        known: usize,
    },
    #[error("cannot migrate database {} to schema version {version}: {source}", path.display())]
    Migrate {
        path: PathBuf,
        version: usize,
        source: rusqlite::Error,
    },
    #[error("{}", safety::damaged_message(path, problems))]
    Damaged {
        path: PathBuf,
        /// What SQLite's integrity check reported, first lines first.
        problems: Vec<String>,
    },
    #[error("cannot back up {} to {}: {reason}", from.display(), to.display())]
    Backup {
        from: PathBuf,
        to: PathBuf,
        reason: String,
    },
    #[error("database error: {0}")]
    Sql(#[from] rusqlite::Error),
    #[error("event {seq} has a payload this version cannot read: {source}")]
    Payload { seq: i64, source: serde_json::Error },
    #[error("there is no event {0}; `treatywatch events` lists them")]
    NoSuchEvent(i64),
    #[error("event {seq} is a {kind} event; only detections and assertions can be retracted")]
    NotRetractable { seq: i64, kind: String },
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

pub struct Store {
    conn: Connection,
    path: PathBuf,
    /// Held while this store may write; `None` for a read-only store.
    _lock: Option<Arc<lock::WriterLock>>,
}

/// Root is refused on another user's database (see `owner.rs`).
fn refuse_foreign(path: &Path) -> Result<()> {
    match owner::foreign_owner(path) {
        Some(found) => Err(StoreError::NotOwner {
            path: found.path,
            command: owner::as_user(&found.name),
            user: found.name,
        }),
        None => Ok(()),
    }
}

impl Store {
    /// Opens (creating if needed) the database at `path` for writing, as a
    /// one-shot command: takes the writer lock (waiting up to `LOCK_WAIT`
    /// for another command) and brings the schema up to date, refusing one
    /// written by a newer release.
    pub fn open(path: &Path) -> Result<Store> {
        Store::open_as(path, Role::Command, LOCK_WAIT)
    }

    /// `open`, saying who writes (the lock file names the holder) and how
    /// long to wait for a one-shot holder to finish.
    pub fn open_as(path: &Path, role: Role, wait: Duration) -> Result<Store> {
        refuse_foreign(path)?;
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|source| StoreError::CreateDir {
                path: dir.to_path_buf(),
                source,
            })?;
        }
        let held = lock::acquire(path, role, wait)?;
        Store::open_locked(path, held, MIGRATIONS.len()).map_err(|e| damaged_or(path, e))
    }

    /// `open` with the schema brought only up to `version`: a database as
    /// an older release made it, for the migration tests.
    #[cfg(test)]
    fn open_at_version(path: &Path, version: usize) -> Result<Store> {
        let held = lock::acquire(path, Role::Command, LOCK_WAIT)?;
        Store::open_locked(path, held, version)
    }

    fn open_locked(path: &Path, held: Arc<lock::WriterLock>, version: usize) -> Result<Store> {
        let open_err = |source| StoreError::Open {
            path: path.to_path_buf(),
            source,
        };
        let mut conn = Connection::open(path).map_err(open_err)?;
        // SQLite quietly opens a write-protected file read-only; a writer
        // that cannot write must say so now, not at its first append.
        if conn.is_readonly(MAIN_DB).map_err(open_err)? {
            return Err(StoreError::ReadOnly {
                path: path.to_path_buf(),
            });
        }
        conn.busy_timeout(BUSY_TIMEOUT).map_err(open_err)?;
        // WAL lets `status` read while the daemon writes; FULL makes a
        // committed append survive power loss, not only a process crash.
        wal_mode(&conn).map_err(|e| read_only_or(path, e, open_err))?;
        conn.pragma_update(None, "synchronous", "FULL")
            .map_err(open_err)?;
        conn.pragma_update(None, "foreign_keys", "ON")
            .map_err(open_err)?;
        migrate(&mut conn, path, &MIGRATIONS[..version])?;
        let mut store = Store {
            conn,
            path: path.to_path_buf(),
            _lock: Some(held),
        };
        // This process holds the writer lock: no other attempt can be in
        // flight, so one a dead process began is due again at once.
        store.release_interrupted_attempts()?;
        Ok(store)
    }

    /// Opens an existing database to read: no lock, no migration, no file
    /// created. Fails clearly on a missing database or one whose schema is
    /// not this release's.
    pub fn open_read_only(path: &Path) -> Result<Store> {
        Store::open_read_only_unchecked(path).map_err(|e| damaged_or(path, e))
    }

    fn open_read_only_unchecked(path: &Path) -> Result<Store> {
        refuse_foreign(path)?;
        if !path.is_file() {
            return Err(StoreError::Missing {
                path: path.to_path_buf(),
            });
        }
        let open_err = |source| StoreError::Open {
            path: path.to_path_buf(),
            source,
        };
        let conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(open_err)?;
        conn.busy_timeout(BUSY_TIMEOUT).map_err(open_err)?;
        let found: i64 = conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .map_err(open_err)?;
        let found = usize::try_from(found).unwrap_or(usize::MAX);
        let known = MIGRATIONS.len();
        if found > known {
            return Err(StoreError::TooNew {
                path: path.to_path_buf(),
                found,
                known,
            });
        }
        if found < known {
            return Err(StoreError::Outdated {
                path: path.to_path_buf(),
                found,
                known,
            });
        }
        Ok(Store {
            conn,
            path: path.to_path_buf(),
            _lock: None,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Frees what this connection caches between uses (its page cache,
    /// up to `cache_size`, 2 MB by default): a daemon idle between cycles
    /// need not hold pages it will read again from the OS's cache.
    pub fn release_memory(&self) -> Result<()> {
        Ok(self.conn.release_memory()?)
    }

    /// The schema version this binary writes.
    pub fn schema_version() -> usize {
        MIGRATIONS.len()
    }
}

/// Switches to WAL. Turning a fresh database to WAL needs an exclusive
/// lock and SQLite answers "database is locked" at once, without its busy
/// handler, while another connection holds one (say, another thread of this
/// process migrating it): so it is tried again for up to `BUSY_TIMEOUT`.
fn wal_mode(conn: &Connection) -> rusqlite::Result<()> {
    let started = std::time::Instant::now();
    loop {
        match conn.pragma_update(None, "journal_mode", "WAL") {
            Err(e)
                if e.sqlite_error_code() == Some(rusqlite::ErrorCode::DatabaseBusy)
                    && started.elapsed() < BUSY_TIMEOUT =>
            {
                std::thread::sleep(Duration::from_millis(10));
            }
            other => return other,
        }
    }
}

/// Brings the schema up to date in one exclusive transaction, the version
/// read inside it: two processes opening a fresh database at once cannot
/// both apply a migration (the second waits, then finds it applied).
///
/// Foreign keys are off while migrations run, as SQLite's procedure for
/// rebuilding a table asks (migration 0010 drops and re-creates `events`,
/// which other tables refer to); `foreign_key_check` must find nothing
/// before the transaction commits, and they are on again afterwards.
fn migrate(conn: &mut Connection, path: &Path, migrations: &[&str]) -> Result<()> {
    // The pragma is a no-op inside a transaction, so it is set around it.
    conn.pragma_update(None, "foreign_keys", "OFF")?;
    let result = migrate_in(conn, path, migrations);
    conn.pragma_update(None, "foreign_keys", "ON")?;
    result
}

fn migrate_in(conn: &mut Connection, path: &Path, migrations: &[&str]) -> Result<()> {
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Exclusive)
        .map_err(|e| {
            read_only_or(path, e, |source| StoreError::Open {
                path: path.to_path_buf(),
                source,
            })
        })?;
    let found: i64 = tx.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    let found = usize::try_from(found).unwrap_or(usize::MAX);
    let known = migrations.len();
    if found > known {
        return Err(StoreError::TooNew {
            path: path.to_path_buf(),
            found,
            known,
        });
    }
    if found == known {
        return Ok(());
    }
    for (i, sql) in migrations.iter().enumerate().skip(found) {
        let failed = |source| StoreError::Migrate {
            path: path.to_path_buf(),
            version: i + 1,
            source,
        };
        tx.execute_batch(sql).map_err(failed)?;
        let broken: Option<String> = tx
            .query_row("PRAGMA foreign_key_check", [], |r| r.get(0))
            .optional()?;
        if let Some(table) = broken {
            return Err(failed(rusqlite::Error::SqliteFailure(
                rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_CONSTRAINT_FOREIGNKEY),
                Some(format!("a row of {table} refers to a row that is gone")),
            )));
        }
    }
    tx.pragma_update(None, "user_version", known as i64)?;
    tx.commit()?;
    Ok(())
}

/// An error that shows the file is not a sound database becomes `Damaged`,
/// so every way of finding out says what to do about it.
fn damaged_or(path: &Path, e: StoreError) -> StoreError {
    let source = match &e {
        StoreError::Sql(s) | StoreError::Open { source: s, .. } => s,
        StoreError::Migrate { source: s, .. } => s,
        _ => return e,
    };
    if safety::is_corruption(source) {
        StoreError::Damaged {
            path: path.to_path_buf(),
            problems: vec![source.to_string()],
        }
    } else {
        e
    }
}

/// A write refused because the file or folder is read-only is that, not a
/// generic open error.
fn read_only_or(
    path: &Path,
    e: rusqlite::Error,
    other: impl FnOnce(rusqlite::Error) -> StoreError,
) -> StoreError {
    match e.sqlite_error_code() {
        Some(rusqlite::ErrorCode::ReadOnly | rusqlite::ErrorCode::CannotOpen) => {
            StoreError::ReadOnly {
                path: path.to_path_buf(),
            }
        }
        _ => other(e),
    }
}

/// Timestamps are stored as fixed-width RFC 3339 UTC so that text order is
/// time order in SQL comparisons.
pub(crate) fn timestamp(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Micros, true)
}

pub(crate) fn parse_timestamp(s: &str) -> rusqlite::Result<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| {
            rusqlite::Error::FromSqlConversionFailure(0, rusqlite::types::Type::Text, Box::new(e))
        })
}

//! The SQLite store: the only module that speaks SQL.
//!
//! Owns opening the database (WAL, busy timeout, migrations from
//! `migrations/`), the append-only event log (`log.rs`), the status
//! projection kept beside it (`projection.rs`) and the notifier's outbox
//! (`outbox.rs`). One `Store` is one
//! connection; the daemon gives it to a single writer task.

mod feeds;
mod log;
mod outbox;
mod projection;

use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use rusqlite::Connection;
use rusqlite_migration::{M, Migrations, SchemaVersion};

pub use feeds::{FeedState, ItemChange, ItemPage, LoggedDetection, StoredItem};
pub use log::AppendOutcome;
pub use outbox::{Batch, NewBatch, PendingDigest, QueuedChange, RecipientMail, Undelivered};

/// The schema, one migration per file, applied in order. Append only: a
/// released migration is never edited.
const MIGRATIONS: &[&str] = &[
    include_str!("../../migrations/0001_event_log.sql"),
    include_str!("../../migrations/0002_feeds_items.sql"),
    include_str!("../../migrations/0003_outbox.sql"),
    include_str!("../../migrations/0004_fold_state.sql"),
    include_str!("../../migrations/0005_feed_alerts.sql"),
    include_str!("../../migrations/0006_reclassify.sql"),
];

/// How long a statement waits for another process's lock before failing.
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
        "database {} has schema version {found} but this treatywatch only knows up to {known}: it was written by a newer release; upgrade treatywatch or use another --db",
        path.display()
    )]
    TooNew {
        path: PathBuf,
        found: usize,
        known: usize,
    },
    #[error("cannot migrate database {}: {source}", path.display())]
    Migrate {
        path: PathBuf,
        source: rusqlite_migration::Error,
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
}

impl Store {
    /// Opens (creating if needed) the database at `path` and brings its
    /// schema up to date, refusing one written by a newer release.
    pub fn open(path: &Path) -> Result<Store> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|source| StoreError::CreateDir {
                path: dir.to_path_buf(),
                source,
            })?;
        }
        let open_err = |source| StoreError::Open {
            path: path.to_path_buf(),
            source,
        };
        let mut conn = Connection::open(path).map_err(open_err)?;
        conn.busy_timeout(BUSY_TIMEOUT).map_err(open_err)?;
        // WAL lets `status` read while the daemon writes; FULL makes a
        // committed append survive power loss, not only a process crash.
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(open_err)?;
        conn.pragma_update(None, "synchronous", "FULL")
            .map_err(open_err)?;
        conn.pragma_update(None, "foreign_keys", "ON")
            .map_err(open_err)?;

        let migrations = Migrations::new(MIGRATIONS.iter().map(|sql| M::up(sql)).collect());
        let migrate_err = |source| StoreError::Migrate {
            path: path.to_path_buf(),
            source,
        };
        if let SchemaVersion::Outside(found) =
            migrations.current_version(&conn).map_err(migrate_err)?
        {
            return Err(StoreError::TooNew {
                path: path.to_path_buf(),
                found: found.get(),
                known: MIGRATIONS.len(),
            });
        }
        migrations.to_latest(&mut conn).map_err(migrate_err)?;
        Ok(Store {
            conn,
            path: path.to_path_buf(),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The schema version this binary writes.
    pub fn schema_version() -> usize {
        MIGRATIONS.len()
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

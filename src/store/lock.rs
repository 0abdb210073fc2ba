//! The writer lock: one process writes a database at a time.
//!
//! A lock file beside the database (`treatywatch.db.lock`) is held with
//! `flock(2)` for as long as a writing `Store` is open: for the daemon's
//! whole life, for a one-shot command (`poll`, `digest --send`, `assert`,
//! …) until it exits. The kernel drops the lock when the process dies, so a
//! crash never leaves a stale lock behind; the file itself is never
//! removed (removing a locked file lets a second process lock a new one).
//! The holder writes its pid, role and command line into the file so a
//! process that cannot get the lock can say who has it.
//!
//! A one-shot command that finds the lock taken waits up to `LOCK_WAIT` for
//! another one-shot command to finish; a daemon does not finish, so against
//! a daemon it fails at once. Inside one process the lock is shared: opening
//! the same database twice (a test reopening its store) never waits on
//! itself.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::{Duration, Instant};

/// How long a one-shot command waits for another one to release the lock.
pub const LOCK_WAIT: Duration = Duration::from_secs(10);
/// How often a waiting process tries the lock again.
const RETRY: Duration = Duration::from_millis(50);

/// Who writes: the long-running daemon or a one-shot command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Daemon,
    Command,
}

impl Role {
    fn as_str(self) -> &'static str {
        match self {
            Role::Daemon => "daemon",
            Role::Command => "command",
        }
    }
}

/// What the lock file says about the process holding it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Holder {
    pub pid: u32,
    pub role: Role,
    /// `treatywatch --config … run`, as it was started.
    pub command: String,
}

impl Holder {
    /// This process, in `role`.
    fn current(role: Role) -> Holder {
        let mut args = std::env::args();
        let program = args
            .next()
            .map(|p| {
                Path::new(&p)
                    .file_name()
                    .map_or(p.clone(), |f| f.to_string_lossy().into_owned())
            })
            .unwrap_or_else(|| "treatywatch".into());
        let command = std::iter::once(program)
            .chain(args)
            .collect::<Vec<_>>()
            .join(" ");
        Holder {
            pid: std::process::id(),
            role,
            command: printable(&command),
        }
    }

    fn render(&self) -> String {
        format!(
            "pid={}\nrole={}\ncommand={}\n",
            self.pid,
            self.role.as_str(),
            self.command
        )
    }

    fn parse(text: &str) -> Option<Holder> {
        let mut pid = None;
        let mut role = None;
        let mut command = String::new();
        for line in text.lines() {
            match line.split_once('=') {
                Some(("pid", v)) => pid = v.trim().parse().ok(),
                Some(("role", "daemon")) => role = Some(Role::Daemon),
                Some(("role", _)) => role = Some(Role::Command),
                Some(("command", v)) => command = printable(v),
                _ => {}
            }
        }
        Some(Holder {
            pid: pid?,
            role: role?,
            command,
        })
    }
}

/// A command line fit for one line of a message: control characters become `?`.
fn printable(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { '?' } else { c })
        .collect()
}

#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error("cannot create the lock file {}: {source}; the folder must be writable by the user running treatywatch", path.display())]
    Create {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}", held_message(db, holder.as_ref(), *waited))]
    Held {
        db: PathBuf,
        holder: Option<Holder>,
        waited: Duration,
    },
    #[error("cannot lock {}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

fn held_message(db: &Path, holder: Option<&Holder>, waited: Duration) -> String {
    let db = db.display();
    match holder {
        Some(h) if h.role == Role::Daemon => format!(
            "the daemon (pid {}, `{}`) owns {db}; it polls and mails by itself. `systemctl reload treatywatch` (or `kill -HUP {}`) makes it poll the feeds that are due, `kill -USR1 {}` every feed now; `treatywatch status` reads the database without the lock",
            h.pid, h.command, h.pid, h.pid
        ),
        Some(h) => format!(
            "another treatywatch (pid {}, `{}`) is writing to {db} and did not finish within {} s; try again when it has",
            h.pid,
            h.command,
            waited.as_secs()
        ),
        None => format!(
            "another process holds the writer lock of {db} (its lock file names no holder) and did not release it within {} s; try again later",
            waited.as_secs()
        ),
    }
}

/// The held lock; released when the last `Store` using it is dropped.
#[derive(Debug)]
pub struct WriterLock {
    file: File,
    key: PathBuf,
}

impl Drop for WriterLock {
    fn drop(&mut self) {
        // Blank the holder first so nobody reads a stale name, then unlock.
        let _ = self.file.set_len(0);
        // SAFETY: flock on a file descriptor we own.
        unsafe { libc::flock(self.file.as_raw_fd(), libc::LOCK_UN) };
        if let Ok(mut held) = registry().lock()
            && held.get(&self.key).is_some_and(|w| w.strong_count() == 0)
        {
            held.remove(&self.key);
        }
    }
}

type Registry = Mutex<HashMap<PathBuf, Weak<WriterLock>>>;

fn registry() -> &'static Registry {
    static HELD: OnceLock<Registry> = OnceLock::new();
    HELD.get_or_init(Registry::default)
}

/// The lock file of the database at `db`.
pub fn lock_path(db: &Path) -> PathBuf {
    let mut name = db.file_name().unwrap_or_default().to_os_string();
    name.push(".lock");
    db.with_file_name(name)
}

/// Takes the writer lock of `db` for this process, waiting up to `wait` for
/// a one-shot holder (not at all for a daemon). The database's folder must
/// exist.
pub fn acquire(db: &Path, role: Role, wait: Duration) -> Result<Arc<WriterLock>, LockError> {
    let path = lock_path(db);
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(|source| LockError::Create {
            path: path.clone(),
            source,
        })?;
    let key = path.canonicalize().unwrap_or_else(|_| path.clone());
    let mut held = registry().lock().unwrap_or_else(|e| e.into_inner());
    if let Some(lock) = held.get(&key).and_then(Weak::upgrade) {
        return Ok(lock);
    }
    let started = Instant::now();
    loop {
        // SAFETY: flock on a file descriptor we own.
        let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
        if rc == 0 {
            break;
        }
        let err = std::io::Error::last_os_error();
        match err.raw_os_error() {
            Some(libc::EWOULDBLOCK) => {}
            Some(libc::EINTR) => continue,
            _ => return Err(LockError::Io { path, source: err }),
        }
        let holder = read_holder(&file);
        let waited = started.elapsed();
        let daemon = holder.as_ref().is_some_and(|h| h.role == Role::Daemon);
        if daemon || waited >= wait {
            return Err(LockError::Held {
                db: db.to_path_buf(),
                holder,
                waited: wait,
            });
        }
        std::thread::sleep(RETRY.min(wait - waited));
    }
    let mut file = file;
    let write = |file: &mut File| -> std::io::Result<()> {
        file.set_len(0)?;
        file.seek(SeekFrom::Start(0))?;
        file.write_all(Holder::current(role).render().as_bytes())
    };
    write(&mut file).map_err(|source| LockError::Io {
        path: path.clone(),
        source,
    })?;
    let lock = Arc::new(WriterLock {
        file,
        key: key.clone(),
    });
    held.insert(key, Arc::downgrade(&lock));
    Ok(lock)
}

/// The holder named in the lock file. A winner writes its name just after
/// locking, so an empty file is read again a few times.
fn read_holder(file: &File) -> Option<Holder> {
    for _ in 0..5 {
        let mut text = String::new();
        let mut f = file;
        if f.seek(SeekFrom::Start(0)).is_ok()
            && f.read_to_string(&mut text).is_ok()
            && let Some(h) = Holder::parse(&text)
        {
            return Some(h);
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_holder_round_trips_through_the_file() {
        let h = Holder {
            pid: 1234,
            role: Role::Daemon,
            command: "treatywatch run".into(),
        };
        assert_eq!(Holder::parse(&h.render()), Some(h));
        assert_eq!(Holder::parse(""), None);
    }

    #[test]
    fn the_message_names_the_daemon_and_how_to_make_it_poll() {
        let h = Holder {
            pid: 1234,
            role: Role::Daemon,
            command: "treatywatch run".into(),
        };
        let m = held_message(Path::new("data/treatywatch.db"), Some(&h), LOCK_WAIT);
        assert!(
            m.starts_with("the daemon (pid 1234, `treatywatch run`) owns data/treatywatch.db;"),
            "{m}"
        );
        assert!(m.contains("systemctl reload treatywatch"), "{m}");
    }

    #[test]
    fn the_lock_file_sits_beside_the_database() {
        assert_eq!(
            lock_path(Path::new("data/treatywatch.db")),
            Path::new("data/treatywatch.db.lock")
        );
    }
}

//! A database you can trust and restore: `doctor` finds overwritten pages,
//! `run` refuses a damaged database (and one it cannot write), `backup`
//! makes a copy that, restored, `replay` accepts; the daemon keeps rotating
//! backups; the claim on a digest is atomic; first opens at once migrate
//! once.

use std::io::{Seek, SeekFrom, Write};
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use chrono::Utc;
use treatywatch::domain::{Action, Policy};
use treatywatch::store::{Batch, NewBatch, QueuedChange, Store};

use crate::crash::KillOnDrop;
use crate::once::Env;
use crate::smtp_server::SmtpServer;
use crate::support::{at, detection};

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Overwrites 4 KB in the middle of `path` with seeded noise.
fn damage(path: &Path, seed: u64) {
    let len = std::fs::metadata(path).expect("db").len();
    assert!(len > 16 * 4096, "a database worth damaging: {len} bytes");
    let mut state = seed | 1;
    let noise: Vec<u8> = (0..4096)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect();
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .open(path)
        .expect("open db");
    f.seek(SeekFrom::Start(len / 2 - 2048)).expect("seek");
    f.write_all(&noise).expect("overwrite");
    f.sync_all().expect("sync");
}

#[test]
fn doctor_finds_overwritten_pages_run_refuses_and_a_restored_backup_replays() {
    let env = Env::new(SmtpServer::unused_port());
    // Enough history that the middle of the file is in use: many items.
    env.set_feed_items(400);
    let poll = env.run(&["poll"]);
    assert!(
        text(&poll.stdout).contains("400 new"),
        "{}",
        text(&poll.stdout)
    );
    let ok = env.run(&["doctor"]);
    assert!(ok.status.success(), "{}", text(&ok.stderr));
    assert!(text(&ok.stdout).contains(": ok — quick_check found no problem"));

    let backup = env.dir.path().join("copy.db");
    let out = env.run(&["backup", backup.to_str().expect("path")]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).starts_with("backed up "),
        "{}",
        text(&out.stdout)
    );
    let again = env.run(&["backup", backup.to_str().expect("path")]);
    assert!(
        !again.status.success() && text(&again.stderr).contains("already exists"),
        "a backup never overwrites: {}",
        text(&again.stderr)
    );

    damage(&env.db(), 0x5eed);
    for full in [false, true] {
        let args: &[&str] = if full {
            &["doctor", "--full"]
        } else {
            &["doctor"]
        };
        let out = env.run(args);
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{args:?} finds it: {stderr}");
        assert!(
            stderr.contains("is damaged") && stderr.contains("cp BACKUP"),
            "{args:?} says what to do: {stderr}"
        );
    }
    let started = Instant::now();
    let run = env.run(&["run"]);
    let stderr = text(&run.stderr);
    assert_eq!(run.status.code(), Some(1), "run refuses it: {stderr}");
    assert!(
        stderr.contains("is damaged") && stderr.contains("Do not write to it"),
        "{stderr}"
    );
    assert!(started.elapsed() < Duration::from_secs(10));

    // Restore as the README says: move the damaged file (and its -wal and
    // -shm) away, copy the backup in its place.
    let db = env.db();
    std::fs::rename(&db, db.with_extension("db.damaged")).expect("move away");
    for ext in ["db-wal", "db-shm"] {
        let _ = std::fs::remove_file(db.with_extension(ext));
    }
    std::fs::copy(&backup, &db).expect("restore");
    let replay = env.run(&["replay"]);
    assert!(replay.status.success(), "{}", text(&replay.stdout));
    assert!(text(&replay.stdout).contains("identical to the stored table"));
    let full = env.run(&["doctor", "--full"]);
    assert!(full.status.success(), "{}", text(&full.stderr));
    // And it can be written again: nothing new, nothing lost.
    let poll = env.run(&["poll"]);
    assert!(
        text(&poll.stdout).contains("0 new"),
        "{}",
        text(&poll.stdout)
    );
}

#[test]
fn run_refuses_a_database_it_cannot_write() {
    use std::os::unix::process::CommandExt;
    let env = Env::new(SmtpServer::unused_port());
    drop(Store::open(&env.db()).expect("create"));
    let mut perms = std::fs::metadata(env.db()).expect("db").permissions();
    perms.set_readonly(true);
    std::fs::set_permissions(env.db(), perms).expect("chmod");
    let mut cmd = env.cmd(&["run"]);
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } == 0 {
        // Root writes read-only files: run it as nobody, who owns the folder.
        // The binary is copied there too: the checkout it was built in may
        // sit in a folder nobody cannot enter (mktemp's mode 700).
        const NOBODY: u32 = 65534;
        let binary = env.dir.path().join("treatywatch");
        std::fs::copy(env!("CARGO_BIN_EXE_treatywatch"), &binary).expect("copy binary");
        for entry in walk(env.dir.path()) {
            std::os::unix::fs::chown(&entry, Some(NOBODY), Some(NOBODY)).expect("chown");
        }
        cmd = std::process::Command::new(&binary);
        cmd.env_remove("TREATYWATCH_CONFIG")
            .env_remove("NOTIFY_SOCKET")
            .arg("--config")
            .arg(env.dir.path().join("feeds.toml"))
            .arg("run")
            .uid(NOBODY)
            .gid(NOBODY);
    }
    let out = cmd.output().expect("run");
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("cannot write database"), "{stderr}");
}

/// `dir` and everything under it.
fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut all = vec![dir.to_path_buf()];
    for entry in std::fs::read_dir(dir).expect("dir").flatten() {
        let path = entry.path();
        if path.is_dir() {
            all.extend(walk(&path));
        } else {
            all.push(path);
        }
    }
    all
}

#[test]
fn the_daemon_keeps_rotating_backups() {
    let env = Env::new(SmtpServer::unused_port());
    env.append_config("\n[storage]\nbackup_every = \"1m\"\nbackup_keep = 2\n");
    // Three old backups: the daemon takes a new one at once (the newest is
    // older than backup_every) and keeps two.
    let folder = env.db().with_file_name("backups");
    std::fs::create_dir_all(&folder).expect("folder");
    drop(Store::open(&env.db()).expect("create"));
    for day in 1..=3 {
        let name = format!("treatywatch-202501{day:02}T000000Z.db");
        std::fs::copy(env.db(), folder.join(name)).expect("old backup");
    }
    let unrelated = folder.join("keep-me.txt");
    std::fs::write(&unrelated, "not a backup").expect("write");
    let mut daemon = KillOnDrop(
        env.cmd(&["run"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start daemon"),
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    let names = loop {
        let mut names: Vec<String> = std::fs::read_dir(&folder)
            .expect("folder")
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with("treatywatch-") && n.ends_with(".db"))
            .collect();
        names.sort();
        if names.len() == 2 && !names[1].starts_with("treatywatch-2025") {
            break names;
        }
        assert!(
            daemon.0.try_wait().expect("try_wait").is_none(),
            "the daemon exited"
        );
        assert!(Instant::now() < deadline, "no rotation: {names:?}");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(names[0], "treatywatch-20250103T000000Z.db", "{names:?}");
    assert!(unrelated.exists(), "only backups are rotated");
    let copy = folder.join(&names[1]);
    let out = env.run(&["--db", copy.to_str().expect("path"), "doctor"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
}

#[test]
fn claiming_a_digest_is_won_by_exactly_one() {
    let dir = tempfile::tempdir().expect("dir");
    let path = dir.path().join("log.db");
    let mut store = Store::open(&path).expect("open");
    let t = Utc::now();
    let news = [
        detection(
            "UKR",
            "ottawa",
            Action::Ratified,
            "wire",
            "a",
            at(2025, 1, 1),
        ),
        detection(
            "POL",
            "ottawa",
            Action::Ratified,
            "wire",
            "b",
            at(2025, 1, 1),
        ),
    ];
    let outcome = store.append(&news, &Policy::default(), t).expect("append");
    let seqs: Vec<i64> = outcome.changes.iter().map(|c| c.seq).collect();
    let (one, two) = (seqs[0], seqs[1]);
    let q = |seq| QueuedChange {
        change_seq: seq,
        recipient: "desk@example.org".into(),
        urgent: false,
        queued_at: t,
    };
    store.enqueue(&[q(one), q(two)], two).expect("enqueue");
    let both = [one, two];
    let second = [two];
    fn new<'a>(id: &'a str, changes: &'a [i64]) -> NewBatch<'a> {
        NewBatch {
            recipient: "desk@example.org",
            changes,
            message_id: id,
            envelope_from: "tw@example.org",
            message: b"m",
            subject: "s",
        }
    }
    let batch: Batch = store
        .freeze_batch(&new("<a@x>", &both), t)
        .expect("freeze")
        .expect("first freeze wins");
    assert!(
        store
            .freeze_batch(&new("<a@x>", &both), t)
            .expect("freeze")
            .is_none(),
        "the same Message-ID twice"
    );
    assert!(
        store
            .freeze_batch(&new("<b@x>", &second), t)
            .expect("freeze")
            .is_none(),
        "a change already in a batch"
    );
    assert_eq!(
        store.pending_batches().expect("pending").len(),
        1,
        "nothing half-written"
    );

    assert!(
        store.begin_attempt(&batch, t).expect("claim"),
        "the first claim wins"
    );
    assert!(
        !store.begin_attempt(&batch, t).expect("claim"),
        "a claim read before the first one loses"
    );
    let fresh = store.pending_batches().expect("pending").remove(0);
    assert!(
        !store.begin_attempt(&fresh, t).expect("claim"),
        "an attempt in flight holds the batch"
    );
    drop(store);
    // A new writer: the attempt above belonged to a process that is gone.
    let mut store = Store::open(&path).expect("reopen");
    let fresh = store.pending_batches().expect("pending").remove(0);
    assert!(fresh.next_attempt_at <= Utc::now(), "due again at once");
    assert!(store.begin_attempt(&fresh, Utc::now()).expect("claim"));
}

#[test]
fn first_opens_at_once_migrate_once() {
    // Threads of one process share the writer lock, so this races the
    // migrations themselves: each runs in one exclusive transaction that
    // reads the schema version inside it, so the losers wait and find the
    // schema applied ("table events already exists" never happens).
    for round in 0..10 {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("fresh.db");
        let barrier = std::sync::Arc::new(std::sync::Barrier::new(8));
        let threads: Vec<_> = (0..8)
            .map(|_| {
                let (path, barrier) = (path.clone(), barrier.clone());
                std::thread::spawn(move || {
                    barrier.wait();
                    Store::open(&path).map(drop).map_err(|e| e.to_string())
                })
            })
            .collect();
        for t in threads {
            let opened = t.join().expect("no panic");
            assert!(opened.is_ok(), "round {round}: {opened:?}");
        }
        let version: i64 = rusqlite::Connection::open(&path)
            .expect("raw")
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .expect("version");
        assert_eq!(version as usize, Store::schema_version(), "round {round}");
    }
}

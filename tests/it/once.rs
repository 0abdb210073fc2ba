//! Exactly once, however it is run: real processes on one database file.
//! Two `poll` at once (on a fresh and on a migrated database) and `poll`
//! beside `run` deliver every (status change, recipient) exactly once,
//! nobody crashes, and the process that cannot write says who does.
//! Read-only commands need no lock and never create a database.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::crash::KillOnDrop;
use crate::feed_server::{FeedServer, Reply};
use crate::smtp_server::SmtpServer;

const ROUNDS: usize = 10;
const RECIPIENTS: [&str; 2] = ["desk@example.org", "field@example.org"];
const STATES: [(&str, &str); 4] = [
    ("AUT", "Austria"),
    ("BEL", "Belgium"),
    ("CHL", "Chile"),
    ("IRL", "Ireland"),
];
/// Bounds a wait on something observable; never a measure of speed.
const WAIT: Duration = Duration::from_secs(30);

/// A feed reporting one ratification per state, so each state's status
/// changes once.
fn feed() -> String {
    let now = chrono::Utc::now().to_rfc2822();
    let mut xml = String::from(
        "<rss version=\"2.0\"><channel><title>Wire</title><link>https://wire.example.org/</link><description>d</description>",
    );
    for (i, (_, name)) in STATES.iter().enumerate() {
        let _ = write!(
            xml,
            "<item><title>{name} ratifies the Treaty on the Prohibition of Nuclear Weapons</title><guid>https://wire.example.org/{i}</guid><pubDate>{now}</pubDate><description>{name} deposited its instrument of ratification of the nuclear weapons ban treaty on Monday.</description></item>"
        );
    }
    xml.push_str("</channel></rss>");
    xml
}

/// A config folder with the shipped data files, one feed and SMTP to `smtp`.
pub struct Env {
    pub dir: tempfile::TempDir,
    pub server: FeedServer,
}

impl Env {
    pub fn new(smtp_port: u16) -> Env {
        let dir = tempfile::tempdir().expect("dir");
        let shipped = concat!(env!("CARGO_MANIFEST_DIR"), "/config");
        for entry in std::fs::read_dir(shipped).expect("config dir").flatten() {
            let name = entry.file_name();
            if name != "feeds.toml" && entry.path().extension().is_some_and(|e| e == "toml") {
                std::fs::copy(entry.path(), dir.path().join(&name)).expect("copy data file");
            }
        }
        let server = FeedServer::start();
        server.set("/wire.xml", Reply::feed(feed(), "application/rss+xml"));
        let states: Vec<String> = STATES.iter().map(|(c, _)| format!("\"{c}\"")).collect();
        let to: Vec<String> = RECIPIENTS.iter().map(|r| format!("\"{r}\"")).collect();
        let toml = format!(
            "[tracking]\nstates = [{}]\ntreaties = [\"tpnw\"]\n\n[fetch]\ntimeout = \"5s\"\n\n\
             [notify]\nfrom = \"tw <tw@alerts.example.org>\"\nto = [{}]\ndebounce = \"0s\"\ntransport = \"smtp\"\n\
             [notify.smtp]\nhost = \"127.0.0.1\"\nport = {smtp_port}\ntls = \"none\"\n\n\
             [[feed]]\nid = \"wire\"\nurl = \"{}\"\ninterval = \"1h\"\n",
            states.join(", "),
            to.join(", "),
            server.url("/wire.xml")
        );
        std::fs::write(dir.path().join("feeds.toml"), toml).expect("write config");
        Env { dir, server }
    }

    /// Serves a feed of `n` items (only the first few about the tracked
    /// states) instead.
    pub fn set_feed_items(&self, n: usize) {
        let mut xml = String::from(
            "<rss version=\"2.0\"><channel><title>Wire</title><link>https://wire.example.org/</link><description>d</description>",
        );
        for i in 0..n {
            let _ = write!(
                xml,
                "<item><title>Item {i}: regional news of the week</title><guid>https://wire.example.org/n{i}</guid><description>Story {i}. {}</description></item>",
                "Ministers met to discuss the budget, the harvest and the roads. ".repeat(6)
            );
        }
        xml.push_str("</channel></rss>");
        self.server
            .set("/wire.xml", Reply::feed(xml, "application/rss+xml"));
    }

    /// Serves `body` as the feed.
    pub fn set_feed(&self, body: impl Into<Vec<u8>>) {
        self.server
            .set("/wire.xml", Reply::feed(body, "application/rss+xml"));
    }

    /// Adds `toml` (whole tables) at the end of feeds.toml.
    pub fn append_config(&self, toml: &str) {
        let path = self.dir.path().join("feeds.toml");
        let mut config = std::fs::read_to_string(&path).expect("config");
        config.push_str(toml);
        std::fs::write(path, config).expect("write config");
    }

    pub fn db(&self) -> PathBuf {
        self.dir.path().join("data/treatywatch.db")
    }

    pub fn cmd(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(assert_cmd::cargo::cargo_bin("treatywatch"));
        cmd.env_remove("TREATYWATCH_CONFIG")
            .env_remove("NOTIFY_SOCKET")
            .arg("--config")
            .arg(self.dir.path().join("feeds.toml"))
            .args(args);
        cmd
    }

    pub fn spawn(&self, args: &[&str]) -> Child {
        self.cmd(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start treatywatch")
    }

    pub fn run(&self, args: &[&str]) -> Output {
        self.cmd(args).output().expect("run treatywatch")
    }

    fn events(&self) -> Vec<Value> {
        let out = self.run(&["events", "--json"]);
        assert!(out.status.success(), "{}", text(&out.stderr));
        text(&out.stdout)
            .lines()
            .map(|l| serde_json::from_str(l).expect("json"))
            .collect()
    }
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// A finished `poll`: it wrote, or it lost the lock and said to whom.
fn check_poll(out: &Output, round: usize) -> bool {
    let stderr = text(&out.stderr);
    assert!(
        !stderr.contains("panicked") && out.status.code().is_some(),
        "round {round}: poll crashed: {stderr}"
    );
    match out.status.code() {
        Some(0) => true,
        _ => {
            assert!(
                stderr.contains("is writing to") && stderr.contains("pid "),
                "round {round}: a failed poll must say who holds the database: {stderr}\n{}",
                text(&out.stdout)
            );
            false
        }
    }
}

/// Every status change reached every recipient in exactly one accepted
/// message, and every accepted message was recorded.
fn check_exactly_once(env: &Env, smtp: &SmtpServer, round: usize) {
    let log = env.events();
    let changes: Vec<i64> = log
        .iter()
        .filter(|e| e["kind"] == "status_changed")
        .map(|e| e["seq"].as_i64().expect("seq"))
        .collect();
    assert_eq!(
        changes.len(),
        STATES.len(),
        "round {round}: one change per state"
    );
    let recorded: BTreeMap<String, Vec<i64>> = log
        .iter()
        .filter(|e| e["kind"] == "digest_sent")
        .map(|e| {
            let changes = e["changes"]
                .as_array()
                .expect("changes")
                .iter()
                .map(|c| c.as_i64().expect("seq"))
                .collect();
            (e["message_id"].as_str().expect("id").to_string(), changes)
        })
        .collect();
    let accepted = smtp.accepted();
    for recipient in RECIPIENTS {
        let mine: Vec<String> = accepted
            .iter()
            .filter(|m| m.to.iter().any(|t| t == recipient))
            .map(|m| m.message_id())
            .collect();
        for change in &changes {
            let carriers = mine
                .iter()
                .filter(|id| recorded.get(*id).is_some_and(|c| c.contains(change)))
                .count();
            assert_eq!(
                carriers, 1,
                "round {round}: change #{change} reached {recipient} {carriers} times ({mine:?})"
            );
        }
        for id in &mine {
            assert!(
                recorded.contains_key(id),
                "round {round}: {id} delivered, never recorded"
            );
        }
    }
    assert_eq!(
        accepted.len(),
        RECIPIENTS.len(),
        "round {round}: one message per recipient, no resend"
    );
}

fn two_polls_at_once(migrated: bool) {
    let mut both = 0;
    for round in 0..ROUNDS {
        let smtp = SmtpServer::start();
        let env = Env::new(smtp.port);
        if migrated {
            let out = env.run(&["doctor"]);
            assert!(!out.status.success(), "no database yet");
            drop(treatywatch::store::Store::open(&env.db()).expect("migrate"));
        }
        let a = env.spawn(&["poll"]);
        let b = env.spawn(&["poll"]);
        let (a, b) = (
            a.wait_with_output().expect("wait"),
            b.wait_with_output().expect("wait"),
        );
        let wrote = [check_poll(&a, round), check_poll(&b, round)];
        assert!(wrote.iter().any(|w| *w), "round {round}: somebody polled");
        if wrote.iter().all(|w| *w) {
            both += 1;
        }
        check_exactly_once(&env, &smtp, round);
    }
    eprintln!(
        "two polls at once ({}): {ROUNDS} rounds, both wrote (one after the other) in {both}, one refused in {}; every change delivered once",
        if migrated { "migrated" } else { "fresh" },
        ROUNDS - both
    );
}

#[test]
fn two_polls_at_once_on_a_fresh_database_deliver_each_change_once() {
    two_polls_at_once(false);
}

#[test]
fn two_polls_at_once_on_a_migrated_database_deliver_each_change_once() {
    two_polls_at_once(true);
}

/// Waits until the lock file beside `db` names a daemon; returns its pid.
fn daemon_holds(db: &Path, daemon: &mut Child, log: &Path) -> u32 {
    let lock = treatywatch::store::lock::lock_path(db);
    let deadline = Instant::now() + WAIT;
    loop {
        let text = std::fs::read_to_string(&lock).unwrap_or_default();
        if text.contains("role=daemon") {
            return text
                .lines()
                .find_map(|l| l.strip_prefix("pid="))
                .and_then(|p| p.parse().ok())
                .expect("pid in the lock file");
        }
        assert!(
            daemon.try_wait().expect("try_wait").is_none(),
            "the daemon exited before taking the lock:\n{}",
            std::fs::read_to_string(log).unwrap_or_default()
        );
        assert!(Instant::now() < deadline, "the daemon never took the lock");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Whether every status change in `log` is recorded as sent to every recipient.
fn all_recorded(log: &[Value]) -> bool {
    let changes: Vec<i64> = log
        .iter()
        .filter(|e| e["kind"] == "status_changed")
        .filter_map(|e| e["seq"].as_i64())
        .collect();
    changes.len() == STATES.len()
        && RECIPIENTS.iter().all(|r| {
            changes.iter().all(|c| {
                log.iter().any(|e| {
                    e["kind"] == "digest_sent"
                        && e["recipient"] == *r
                        && e["changes"]
                            .as_array()
                            .is_some_and(|cs| cs.iter().any(|x| x.as_i64() == Some(*c)))
                })
            })
        })
}

/// Waits until the file at `log` has a line containing `wanted`.
fn wait_for_line(log: &Path, wanted: &str, child: &mut Child) {
    let deadline = Instant::now() + WAIT;
    loop {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        if text.lines().any(|l| l.contains(wanted)) {
            return;
        }
        assert!(
            child.try_wait().expect("try_wait").is_none(),
            "exited before {wanted:?}:\n{text}"
        );
        assert!(Instant::now() < deadline, "no {wanted:?} in:\n{text}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn poll_beside_run_delivers_each_change_once_and_names_the_daemon() {
    for round in 0..ROUNDS {
        let smtp = SmtpServer::start();
        let env = Env::new(smtp.port);
        // Started together: either may win the lock.
        let log = env.dir.path().join("daemon.log");
        let mut daemon = KillOnDrop(
            env.cmd(&["run", "--log-format", "human"])
                .env("RUST_LOG", "info")
                .stdout(Stdio::null())
                .stderr(std::fs::File::create(&log).expect("log file"))
                .spawn()
                .expect("start daemon"),
        );
        let racing = env.spawn(&["poll"]).wait_with_output().expect("poll");
        let stderr = text(&racing.stderr);
        assert!(
            racing.status.success() || stderr.contains("the daemon (pid "),
            "round {round}: {stderr}"
        );
        // Once the daemon runs, poll refuses at once and says what to do.
        let pid = daemon_holds(&env.db(), &mut daemon.0, &log);
        assert_eq!(
            pid,
            daemon.0.id(),
            "round {round}: the lock names the daemon"
        );
        let started = Instant::now();
        let refused = env.run(&["poll"]);
        let stderr = text(&refused.stderr);
        assert_eq!(refused.status.code(), Some(1), "round {round}: {stderr}");
        assert!(
            stderr.contains(&format!("the daemon (pid {pid}, `treatywatch --config"))
                && stderr.contains("systemctl reload treatywatch"),
            "round {round}: {stderr}"
        );
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "round {round}: no waiting for a daemon"
        );
        // Its signal handlers are in place once it says it is running.
        wait_for_line(&log, "treatywatch running", &mut daemon.0);
        // Reading needs no lock.
        let status = env.run(&["status"]);
        assert!(status.status.success(), "{}", text(&status.stderr));
        // The daemon (or the poll that beat it) ingests and mails every
        // change to every recipient. A delivery cut short by SIGTERM would
        // be resent with the same Message-ID at the next start; waiting for
        // the record keeps this test about two writers, not about that.
        let deadline = Instant::now() + WAIT;
        while !all_recorded(&env.events()) {
            assert!(Instant::now() < deadline, "round {round}: never mailed");
            std::thread::sleep(Duration::from_millis(50));
        }
        let term = Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status()
            .expect("kill");
        assert!(term.success());
        let status = daemon.0.wait().expect("wait");
        assert_eq!(
            status.code(),
            Some(0),
            "round {round}: the daemon stopped cleanly"
        );
        let send = env.run(&["digest", "--send"]);
        assert!(send.status.success(), "{}", text(&send.stderr));
        assert!(
            text(&send.stdout).contains("nothing to send"),
            "round {round}: {}",
            text(&send.stdout)
        );
        check_exactly_once(&env, &smtp, round);
    }
}

#[test]
fn sigusr1_makes_the_daemon_poll_every_feed_now() {
    let env = Env::new(SmtpServer::unused_port());
    let log = env.dir.path().join("daemon.log");
    let mut daemon = KillOnDrop(
        env.cmd(&["run", "--log-format", "human"])
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).expect("log file"))
            .spawn()
            .expect("start daemon"),
    );
    wait_for_line(&log, "treatywatch running", &mut daemon.0);
    let polls = || env.server.seen("/wire.xml").len();
    let deadline = Instant::now() + WAIT;
    while polls() < 1 {
        assert!(Instant::now() < deadline, "never polled");
        std::thread::sleep(Duration::from_millis(20));
    }
    // The feed's interval is an hour: only the signal polls it again. A
    // feed whose fetch is still in flight is not fetched twice, so the
    // signal is repeated until the second request arrives.
    let pid = daemon.0.id().to_string();
    let kill = |sig: &str| {
        Command::new("kill")
            .args([sig, &pid])
            .status()
            .expect("kill")
    };
    wait_for_line(&log, "ingested", &mut daemon.0);
    let mut signalled = Instant::now() - Duration::from_secs(1);
    while polls() < 2 {
        if signalled.elapsed() >= Duration::from_millis(500) {
            assert!(kill("-USR1").success());
            signalled = Instant::now();
        }
        assert!(
            Instant::now() < deadline,
            "SIGUSR1 did not poll:\n{}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    wait_for_line(&log, "SIGUSR1: polling every feed now", &mut daemon.0);
    assert!(kill("-TERM").success());
    assert_eq!(daemon.0.wait().expect("wait").code(), Some(0));
}

#[test]
fn reading_commands_need_no_database_lock_and_create_nothing() {
    let env = Env::new(SmtpServer::unused_port());
    for args in [
        &["status"][..],
        &["events"],
        &["digest", "--preview"],
        &["replay"],
        &["doctor"],
    ] {
        let out = env.run(args);
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {stderr}");
        assert!(
            stderr.contains("there is no database at") && stderr.contains("treatywatch poll"),
            "{args:?}: {stderr}"
        );
        assert!(!env.db().exists(), "{args:?} created the database");
        assert!(
            !env.db().parent().expect("dir").exists(),
            "{args:?} created its folder"
        );
    }
}

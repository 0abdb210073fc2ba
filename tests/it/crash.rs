//! Crash consistency: the daemon is killed with SIGKILL at random moments
//! (seeded, so a failure can be replayed with CRASH_SEED=…) while it polls
//! loopback feeds and mails digests to a loopback SMTP server, and restarted
//! each time. At the end: every item was ingested, nothing was recorded
//! twice, `replay` agrees with the table, every status change was mailed,
//! and no change was mailed in two different messages.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::feed_server::Reply;
use crate::polling::PollEnv;
use crate::smtp_server::SmtpServer;

const KILLS: usize = 32;
/// Two items a feed, one new feed per restart.
const ITEMS_PER_FEED: usize = 2;
/// Clear country names, one status change each.
const STATES: &[(&str, &str)] = &[
    ("AUT", "Austria"),
    ("BEL", "Belgium"),
    ("BRA", "Brazil"),
    ("CAN", "Canada"),
    ("CHL", "Chile"),
    ("COL", "Colombia"),
    ("CRI", "Costa Rica"),
    ("HRV", "Croatia"),
    ("CYP", "Cyprus"),
    ("CZE", "Czechia"),
    ("DNK", "Denmark"),
    ("ECU", "Ecuador"),
    ("EGY", "Egypt"),
    ("FRA", "France"),
    ("DEU", "Germany"),
    ("GHA", "Ghana"),
    ("GRC", "Greece"),
    ("HUN", "Hungary"),
    ("ISL", "Iceland"),
    ("IDN", "Indonesia"),
    ("IRL", "Ireland"),
    ("ITA", "Italy"),
    ("JPN", "Japan"),
    ("KEN", "Kenya"),
    ("LUX", "Luxembourg"),
    ("MLT", "Malta"),
    ("MEX", "Mexico"),
    ("MAR", "Morocco"),
    ("MOZ", "Mozambique"),
    ("NAM", "Namibia"),
    ("NLD", "Netherlands"),
    ("NZL", "New Zealand"),
    ("NOR", "Norway"),
    ("PAN", "Panama"),
    ("PER", "Peru"),
    ("PHL", "Philippines"),
    ("PRT", "Portugal"),
    ("ROU", "Romania"),
    ("SEN", "Senegal"),
    ("SVK", "Slovakia"),
    ("SVN", "Slovenia"),
    ("ZAF", "South Africa"),
    ("ESP", "Spain"),
    ("SWE", "Sweden"),
    ("CHE", "Switzerland"),
    ("TZA", "Tanzania"),
    ("THA", "Thailand"),
    ("TGO", "Togo"),
    ("TUN", "Tunisia"),
    ("UGA", "Uganda"),
    ("URY", "Uruguay"),
    ("ZMB", "Zambia"),
    ("ZWE", "Zimbabwe"),
    ("ARG", "Argentina"),
    ("AUS", "Australia"),
    ("BGR", "Bulgaria"),
    ("BOL", "Bolivia"),
    ("CMR", "Cameroon"),
    ("ETH", "Ethiopia"),
    ("FJI", "Fiji"),
    ("GTM", "Guatemala"),
    ("HND", "Honduras"),
    ("JAM", "Jamaica"),
    ("JOR", "Jordan"),
    ("MWI", "Malawi"),
    ("MYS", "Malaysia"),
    ("NPL", "Nepal"),
    ("NGA", "Nigeria"),
    ("PRY", "Paraguay"),
    ("RWA", "Rwanda"),
];

/// A small seeded generator (xorshift64*): the kill schedule must be
/// replayable from the seed printed on failure.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) % n
    }
}

/// Feed `n`'s document: its items each report a ratification by one state.
fn feed(n: usize) -> String {
    let now = chrono::Utc::now().to_rfc2822();
    let mut xml = format!(
        "<rss version=\"2.0\"><channel><title>Crash feed {n}</title><link>https://crash{n}.example.org/</link><description>d</description>"
    );
    for i in 0..ITEMS_PER_FEED {
        let (_, name) = STATES[n * ITEMS_PER_FEED + i];
        let _ = write!(
            xml,
            "<item><title>{name} ratifies the Treaty on the Prohibition of Nuclear Weapons</title><guid>https://crash{n}.example.org/{i}</guid><pubDate>{now}</pubDate><description>{name} deposited its instrument of ratification of the nuclear weapons ban treaty on Monday.</description></item>"
        );
    }
    xml.push_str("</channel></rss>");
    xml
}

fn write_config(env: &PollEnv, feeds: usize, smtp_port: u16) {
    let states: Vec<String> = STATES[..feeds * ITEMS_PER_FEED]
        .iter()
        .map(|(c, _)| format!("\"{c}\""))
        .collect();
    let mut toml = format!(
        "[tracking]\nstates = [{}]\ntreaties = [\"tpnw\"]\n\n[fetch]\ntimeout = \"5s\"\n\n\
         [notify]\nfrom = \"tw <tw@alerts.example.org>\"\nto = [\"desk@example.org\"]\ndebounce = \"0s\"\ntransport = \"smtp\"\n\
         [notify.smtp]\nhost = \"127.0.0.1\"\nport = {smtp_port}\ntls = \"none\"\n",
        states.join(", ")
    );
    for n in 0..feeds {
        let _ = write!(
            toml,
            "\n[[feed]]\nid = \"crash{n}\"\nurl = \"{}\"\ninterval = \"1h\"\n",
            env.server.url(&format!("/crash{n}.xml"))
        );
    }
    std::fs::write(env.config_path(), toml).expect("write config");
}

fn start(env: &PollEnv) -> Child {
    Command::new(assert_cmd::cargo::cargo_bin("treatywatch"))
        .env_remove("TREATYWATCH_CONFIG")
        .env_remove("NOTIFY_SOCKET")
        .arg("--config")
        .arg(env.config_path())
        .args(["run", "--log-format", "human"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start daemon")
}

/// A daemon that is killed if the test fails while it runs, so a failure
/// never leaves processes behind.
pub struct KillOnDrop(pub Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn events(env: &PollEnv) -> Vec<Value> {
    let out = env.run(&["events", "--json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .expect("utf-8")
        .lines()
        .map(|l| serde_json::from_str(l).expect("json"))
        .collect()
}

#[test]
fn killed_at_random_moments_the_daemon_loses_and_duplicates_nothing() {
    let seed: u64 = std::env::var("CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(1, |d| d.as_nanos() as u64)
                | 1
        });
    eprintln!("crash test seed: CRASH_SEED={seed}");
    let mut rng = Rng(seed);
    let smtp = SmtpServer::start();
    let env = PollEnv::new(&[]);
    let mut feeds = 1;
    for n in 0..=KILLS {
        env.server.set(
            &format!("/crash{n}.xml"),
            Reply::feed(feed(n), "application/rss+xml"),
        );
    }

    for kill in 0..KILLS {
        write_config(&env, feeds, smtp.port);
        let mut child = start(&env);
        // Spread over start-up (config, rules, database), fetching,
        // ingesting and sending: a debug build needs ~0.5 s to get going.
        std::thread::sleep(Duration::from_millis(100 + rng.below(1200)));
        child.kill().expect("SIGKILL");
        let _ = child.wait();
        // Every other restart brings a new feed, so there is always work
        // in flight to be interrupted.
        if kill % 2 == 1 {
            feeds += 1;
        }
    }

    // A last, undisturbed run to finish the work.
    write_config(&env, feeds, smtp.port);
    let expected_items = feeds * ITEMS_PER_FEED;
    let mut child = KillOnDrop(start(&env));
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let log = events(&env);
        let changes = log.iter().filter(|e| e["kind"] == "status_changed").count();
        let mailed = log
            .iter()
            .filter(|e| e["kind"] == "digest_sent")
            .map(|e| e["last_seq"].as_i64().unwrap_or(0))
            .max()
            .unwrap_or(0);
        let last_change = log
            .iter()
            .filter(|e| e["kind"] == "status_changed")
            .map(|e| e["seq"].as_i64().unwrap_or(0))
            .max()
            .unwrap_or(0);
        if changes == expected_items && mailed >= last_change {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "seed {seed}: work not finished: {changes}/{expected_items} changes, mailed up to #{mailed} of #{last_change}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    Command::new("kill")
        .args(["-TERM", &child.0.id().to_string()])
        .status()
        .expect("kill");
    let status = child.0.wait().expect("wait");
    assert_eq!(status.code(), Some(0), "seed {seed}");

    let log = events(&env);
    // Every item ingested, once.
    let db = rusqlite::Connection::open(env.dir.path().join("data/treatywatch.db")).expect("db");
    let items: i64 = db
        .query_row("SELECT count(*) FROM items", [], |r| r.get(0))
        .expect("count");
    assert_eq!(items as usize, expected_items, "seed {seed}: items stored");
    // Nothing twice: one detection per item, one change per state.
    let detections: Vec<String> = log
        .iter()
        .filter(|e| e["kind"] == "detection")
        .map(|e| format!("{}|{}", e["item_key"], e["action"]))
        .collect();
    let unique: BTreeSet<&String> = detections.iter().collect();
    assert_eq!(detections.len(), expected_items, "seed {seed}: detections");
    assert_eq!(
        unique.len(),
        detections.len(),
        "seed {seed}: a detection recorded twice"
    );
    let changed: Vec<String> = log
        .iter()
        .filter(|e| e["kind"] == "status_changed")
        .map(|e| e["state"].to_string())
        .collect();
    assert_eq!(
        changed.iter().collect::<BTreeSet<_>>().len(),
        expected_items,
        "seed {seed}: one change per state"
    );
    // The table agrees with the log.
    let replay = env.run(&["replay"]);
    assert!(
        replay.status.success(),
        "seed {seed}: {}",
        String::from_utf8_lossy(&replay.stdout)
    );

    // Every change mailed, and by exactly one Message-ID.
    let ranges: BTreeMap<String, (i64, i64)> = log
        .iter()
        .filter(|e| e["kind"] == "digest_sent")
        .map(|e| {
            (
                e["message_id"].as_str().unwrap_or_default().to_string(),
                (
                    e["first_seq"].as_i64().unwrap_or(0),
                    e["last_seq"].as_i64().unwrap_or(0),
                ),
            )
        })
        .collect();
    let accepted = smtp.accepted();
    let received: BTreeSet<String> = accepted.iter().map(|m| m.message_id()).collect();
    eprintln!(
        "crash test: {KILLS} kills, {} changes, {} messages accepted under {} Message-IDs ({} resends)",
        expected_items,
        accepted.len(),
        received.len(),
        accepted.len() - received.len()
    );
    for id in &received {
        assert!(
            ranges.contains_key(id),
            "seed {seed}: {id} was delivered but never recorded"
        );
    }
    for change in log.iter().filter(|e| e["kind"] == "status_changed") {
        let seq = change["seq"].as_i64().expect("seq");
        let carriers: Vec<&String> = received
            .iter()
            .filter(|id| {
                ranges
                    .get(*id)
                    .is_some_and(|(a, b)| (*a..=*b).contains(&seq))
            })
            .collect();
        assert_eq!(
            carriers.len(),
            1,
            "seed {seed}: change #{seq} ({}) was mailed in {carriers:?}",
            change["state"]
        );
    }
}

/// Feeds for the `poll` crash test: enough that a cycle commits many
/// batches, each item one ratification.
const POLL_FEEDS: usize = 120;

/// `poll` SIGKILLed while it commits batches of feeds: what it recorded is
/// whole (no item marked seen without its detection, no feed's ETag stored
/// without its items, or a re-poll would get a 304 and never read them),
/// and the next `poll` brings every detection in exactly once.
#[test]
fn poll_killed_mid_cycle_leaves_no_item_seen_without_its_detections() {
    let env = PollEnv::new(&[]);
    let db_path = env.dir.path().join("data/treatywatch.db");
    let states: Vec<String> = STATES.iter().map(|(c, _)| format!("\"{c}\"")).collect();
    let mut toml = format!(
        "[tracking]\nstates = [{}]\ntreaties = [\"tpnw\"]\n\n[fetch]\ntimeout = \"10s\"\nper_host = 8\n",
        states.join(", ")
    );
    // The last feeds answer late, so each killed `poll` is still running
    // when the first batches commit.
    let late = POLL_FEEDS - 8;
    let serve = |n: usize, wait: bool| {
        let n_state = n % (STATES.len() / ITEMS_PER_FEED);
        let reply = Reply::feed(
            feed(n_state).replace("crash", &format!("p{n}-")),
            "application/rss+xml",
        )
        .with_etag(&format!("\"p{n}\""));
        let reply = if wait && n >= late {
            reply.late(Duration::from_secs(3))
        } else {
            reply
        };
        env.server.set(&format!("/p{n}.xml"), reply);
    };
    for n in 0..POLL_FEEDS {
        serve(n, true);
        let _ = write!(
            toml,
            "\n[[feed]]\nid = \"p{n}\"\nurl = \"{}\"\n",
            env.server.url(&format!("/p{n}.xml"))
        );
    }
    std::fs::write(env.config_path(), toml).expect("write config");
    let stored = |sql: &str| -> i64 {
        rusqlite::Connection::open_with_flags(&db_path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .ok()
            .and_then(|c| c.query_row(sql, [], |r| r.get(0)).ok())
            .unwrap_or(0)
    };
    let items = || stored("SELECT count(*) FROM items");
    let poll = || {
        Command::new(assert_cmd::cargo::cargo_bin("treatywatch"))
            .env_remove("TREATYWATCH_CONFIG")
            .arg("--config")
            .arg(env.config_path())
            .arg("poll")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start poll")
    };

    let mut killed_with = Vec::new();
    // Each run is killed once it has stored this many more items: at its
    // first batch, then further into the cycle, while others are being
    // read and committed behind them.
    for more in [1, 20, 60, 1] {
        let before = items();
        let mut child = KillOnDrop(poll());
        let deadline = Instant::now() + Duration::from_secs(60);
        while items() < before + more && child.0.try_wait().expect("wait").is_none() {
            assert!(Instant::now() < deadline, "poll recorded nothing");
            std::thread::sleep(Duration::from_millis(2));
        }
        drop(child);
        let (seen, with_detection) = seen_and_detected(&env, &db_path);
        assert_eq!(
            seen, with_detection,
            "items marked seen without their detection after a SIGKILL"
        );
        let validated_without_items = stored(
            "SELECT count(*) FROM feed_state f WHERE f.etag IS NOT NULL AND \
             (SELECT count(*) FROM items i WHERE i.feed_id = f.feed_id) < 2",
        );
        assert_eq!(
            validated_without_items, 0,
            "a feed's ETag was stored without its items"
        );
        killed_with.push(seen.len());
    }
    eprintln!(
        "poll crash test: killed with {killed_with:?} of {} items stored",
        POLL_FEEDS * ITEMS_PER_FEED
    );

    for n in late..POLL_FEEDS {
        serve(n, false);
    }
    let status = poll().wait().expect("poll");
    assert!(status.success(), "the last poll failed: {status}");
    let (seen, with_detection) = seen_and_detected(&env, &db_path);
    assert_eq!(seen.len(), POLL_FEEDS * ITEMS_PER_FEED, "every item stored");
    assert_eq!(seen, with_detection);
    let detections: Vec<String> = events(&env)
        .iter()
        .filter(|e| e["kind"] == "detection")
        .map(|e| e["item_key"].to_string())
        .collect();
    assert_eq!(
        detections.len(),
        POLL_FEEDS * ITEMS_PER_FEED,
        "one detection per item, none twice"
    );
}

/// The stored items' keys, and those of them the log holds a detection for.
fn seen_and_detected(env: &PollEnv, db: &std::path::Path) -> (BTreeSet<String>, BTreeSet<String>) {
    let conn =
        rusqlite::Connection::open_with_flags(db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .expect("db");
    let mut stmt = conn.prepare("SELECT item_key FROM items").expect("select");
    let seen: BTreeSet<String> = stmt
        .query_map([], |r| r.get(0))
        .expect("items")
        .collect::<Result<_, _>>()
        .expect("item keys");
    let detected: BTreeSet<String> = events(env)
        .iter()
        .filter(|e| e["kind"] == "detection")
        .filter_map(|e| e["item_key"].as_str().map(str::to_string))
        .collect();
    let with_detection = seen.intersection(&detected).cloned().collect();
    (seen, with_detection)
}

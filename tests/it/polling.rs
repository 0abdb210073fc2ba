//! `treatywatch poll` against a real HTTP server on loopback serving our
//! fixture feeds, well and badly. In every case the other feeds of the same
//! poll are ingested, nothing panics, and the feed's health says what went
//! wrong.

use std::io::Write;

use serde_json::Value;

use crate::feed_server::{FeedServer, Reply};

const FEEDS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/feeds");
const SHIPPED: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/config");

pub fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(format!("{FEEDS}/{name}")).expect("fixture feed")
}

pub const RSS: &str = "application/rss+xml";

/// A config folder (shipped data files, our feeds.toml) and a server.
pub struct PollEnv {
    pub dir: tempfile::TempDir,
    pub server: FeedServer,
}

impl PollEnv {
    /// `feeds` are (id, path on the server).
    pub fn new(feeds: &[(&str, &str)]) -> PollEnv {
        let dir = tempfile::tempdir().expect("dir");
        for entry in std::fs::read_dir(SHIPPED).expect("config dir").flatten() {
            let name = entry.file_name();
            if name != "feeds.toml" && entry.path().extension().is_some_and(|e| e == "toml") {
                std::fs::copy(entry.path(), dir.path().join(&name)).expect("copy data file");
            }
        }
        let env = PollEnv {
            dir,
            server: FeedServer::start(),
        };
        env.write_config(feeds);
        env
    }

    pub fn write_config(&self, feeds: &[(&str, &str)]) {
        self.write_config_with(feeds, "");
    }

    /// The config for `feeds`, with `extra` (more tables) before the feeds.
    pub fn write_config_with(&self, feeds: &[(&str, &str)], extra: &str) {
        let mut toml = String::from(
            "[tracking]\nstates = [\"UKR\", \"POL\", \"EST\", \"FIN\", \"LVA\", \"LTU\"]\ntreaties = [\"ottawa\", \"ccm\", \"istanbul\"]\n\n\
             [fetch]\ntimeout = \"2s\"\nconnect_timeout = \"2s\"\nmax_body = \"256 KiB\"\n",
        );
        toml.push_str(extra);
        for (id, path) in feeds {
            toml.push_str(&format!(
                "\n[[feed]]\nid = \"{id}\"\nurl = \"{}\"\ninterval = \"15m\"\n",
                self.server.url(path)
            ));
        }
        let mut f = std::fs::File::create(self.dir.path().join("feeds.toml")).expect("feeds.toml");
        f.write_all(toml.as_bytes()).expect("write");
    }

    pub fn config_path(&self) -> std::path::PathBuf {
        self.dir.path().join("feeds.toml")
    }

    pub fn run(&self, args: &[&str]) -> std::process::Output {
        assert_cmd::Command::cargo_bin("treatywatch")
            .expect("binary")
            .env_remove("TREATYWATCH_CONFIG")
            .arg("--config")
            .arg(self.dir.path().join("feeds.toml"))
            .args(args)
            .output()
            .expect("run")
    }

    /// Runs `poll`; returns its exit code and each feed's summary line.
    pub fn poll(&self) -> (Option<i32>, Vec<String>) {
        let out = self.run(&["poll"]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!stderr.contains("panicked"), "poll panicked:\n{stderr}");
        let stdout = String::from_utf8(out.stdout).expect("utf-8");
        assert!(
            stdout.lines().any(|l| l.starts_with("total:")),
            "no total line:\n{stdout}"
        );
        (
            out.status.code(),
            stdout.lines().map(str::to_string).collect(),
        )
    }

    /// The summary line of `feed`, with column padding collapsed to one space.
    pub fn line(lines: &[String], feed: &str) -> String {
        let line = lines
            .iter()
            .find(|l| l.split_whitespace().next() == Some(feed))
            .unwrap_or_else(|| panic!("no line for {feed}: {lines:#?}"));
        line.split_whitespace().collect::<Vec<_>>().join(" ")
    }

    /// The feed health object `status --json` prints for `feed`.
    pub fn health(&self, feed: &str) -> Value {
        let out = self.run(&["status", "--json"]);
        String::from_utf8(out.stdout)
            .expect("utf-8")
            .lines()
            .map(|l| serde_json::from_str::<Value>(l).expect("json"))
            .find(|v| v["feed"] == feed)
            .unwrap_or_else(|| panic!("no health for {feed}"))
    }

    fn db(&self) -> rusqlite::Connection {
        rusqlite::Connection::open(self.dir.path().join("data/treatywatch.db")).expect("db")
    }

    /// The log's events of `kind`, as JSON objects.
    pub fn events(&self, kind: &str) -> Vec<Value> {
        let out = self.run(&["events", "--json"]);
        String::from_utf8(out.stdout)
            .expect("utf-8")
            .lines()
            .map(|l| serde_json::from_str::<Value>(l).expect("json"))
            .filter(|v| v["kind"] == kind)
            .collect()
    }

    /// (state, treaty, action) of every detection in the log.
    fn detections(&self) -> Vec<(String, String, String)> {
        self.events("detection")
            .iter()
            .map(|v| {
                let s = |k: &str| v[k].as_str().unwrap_or_default().to_string();
                (s("state"), s("treaty"), s("action"))
            })
            .collect()
    }

    fn items(&self, feed: &str) -> Vec<String> {
        let db = self.db();
        let mut stmt = db
            .prepare("SELECT title FROM items WHERE feed_id = ?1 ORDER BY title")
            .expect("query");
        stmt.query_map([feed], |r| r.get(0))
            .expect("rows")
            .map(|r| r.expect("row"))
            .collect()
    }
}

#[test]
fn every_feed_format_is_ingested() {
    let formats = [
        ("rss2", "/rss2.xml", "rss2.xml"),
        ("atom", "/atom.xml", "atom.xml"),
        ("rss1", "/rss1.rdf", "rss1.rdf"),
        ("rss091", "/rss091.xml", "rss091.xml"),
        ("json", "/feed.json", "feed.json"),
    ];
    let env = PollEnv::new(&formats.map(|(id, path, _)| (id, path)));
    for (_, path, file) in formats {
        let ct = if file.ends_with(".json") {
            "application/feed+json"
        } else {
            RSS
        };
        env.server.set(path, Reply::feed(fixture(file), ct));
    }
    let (code, lines) = env.poll();
    assert_eq!(code, Some(0), "{lines:#?}");
    let expected = [
        ("rss2", 2),
        ("atom", 2),
        ("rss1", 1),
        ("rss091", 1),
        ("json", 1),
    ];
    for (feed, n) in expected {
        assert!(
            PollEnv::line(&lines, feed).contains(&format!("200 {n} new")),
            "{feed}: {lines:#?}"
        );
        assert_eq!(env.items(feed).len(), n, "{feed} items stored");
    }
    // HTML is reduced to text: no tags, no script.
    let body: String = env
        .db()
        .query_row(
            "SELECT body FROM items WHERE title LIKE 'Zelensky%'",
            [],
            |r| r.get(0),
        )
        .expect("rss2 item");
    assert!(
        body.starts_with("Ukraine's President") && !body.contains('<') && !body.contains("track()"),
        "{body}"
    );
}

#[test]
fn second_poll_is_conditional_and_costs_no_body() {
    let env = PollEnv::new(&[("wire", "/rss2.xml")]);
    env.server.set(
        "/rss2.xml",
        Reply::feed(fixture("rss2.xml"), RSS).with_etag("\"v1\""),
    );
    env.poll();
    let events_after_first = env.run(&["events", "--json"]).stdout;
    let (code, lines) = env.poll();
    assert_eq!(code, Some(0));
    assert!(PollEnv::line(&lines, "wire").contains("304"), "{lines:#?}");
    let seen = env.server.seen("/rss2.xml");
    assert_eq!(seen.len(), 2);
    assert_eq!(
        seen[1].headers.get("if-none-match").map(String::as_str),
        Some("\"v1\"")
    );
    assert_eq!(
        (seen[1].status, seen[1].body_bytes),
        (304, 0),
        "no body sent the second time"
    );
    assert_eq!(
        env.run(&["events", "--json"]).stdout,
        events_after_first,
        "nothing appended"
    );
    assert_eq!(env.health("wire")["last_status"], 304);
}

#[test]
fn unchanged_feed_without_validators_appends_nothing_new() {
    let env = PollEnv::new(&[("wire", "/rss2.xml")]);
    env.server
        .set("/rss2.xml", Reply::feed(fixture("rss2.xml"), RSS));
    env.poll();
    let (_, lines) = env.poll();
    assert!(
        PollEnv::line(&lines, "wire").contains("200 0 new, 0 changed"),
        "{lines:#?}"
    );
}

/// A database from before migration 0009 (the `items_seen` index that
/// ingest's lookups read) still knows its items, and their content, once
/// migrated.
#[test]
fn items_seen_before_migration_9_are_still_known_after_it() {
    let env = PollEnv::new(&[("wire", "/rss2.xml"), ("live", "/live.xml")]);
    env.server
        .set("/rss2.xml", Reply::feed(fixture("rss2.xml"), RSS));
    env.server
        .set("/live.xml", Reply::feed(fixture("changing-v1.xml"), RSS));
    env.poll();

    // 0009 only adds an index: without it, and at version 8, the database
    // is what 0008 left, holding the rows the poll wrote. The `events`
    // table is left out: 0010 has rebuilt it since (and rebuilds it again
    // on the way back up); `store::migration_tests` covers that migration.
    let schema = |db: &rusqlite::Connection| -> Vec<String> {
        let mut stmt = db
            .prepare(
                "SELECT sql FROM sqlite_master WHERE sql IS NOT NULL AND tbl_name != 'events' ORDER BY name",
            )
            .expect("schema");
        stmt.query_map([], |r| r.get(0))
            .expect("rows")
            .map(|r| r.expect("row"))
            .collect()
    };
    let db = env.db();
    db.execute_batch("DROP INDEX items_seen; PRAGMA user_version = 8;")
        .expect("back to schema 8");
    let by_hand = rusqlite::Connection::open_in_memory().expect("memory");
    for sql in [
        include_str!("../../migrations/0001_event_log.sql"),
        include_str!("../../migrations/0002_feeds_items.sql"),
        include_str!("../../migrations/0003_outbox.sql"),
        include_str!("../../migrations/0004_fold_state.sql"),
        include_str!("../../migrations/0005_feed_alerts.sql"),
        include_str!("../../migrations/0006_reclassify.sql"),
        include_str!("../../migrations/0007_baseline.sql"),
        include_str!("../../migrations/0008_mailbox.sql"),
    ] {
        by_hand.execute_batch(sql).expect("migration");
    }
    assert_eq!(schema(&db), schema(&by_hand), "a schema-8 database");
    drop(db);

    env.server
        .set("/live.xml", Reply::feed(fixture("changing-v2.xml"), RSS));
    let (code, lines) = env.poll();
    assert_eq!(code, Some(0), "{lines:#?}");
    assert!(
        PollEnv::line(&lines, "wire").contains("200 0 new, 0 changed"),
        "{lines:#?}"
    );
    assert!(
        PollEnv::line(&lines, "live").contains("0 new, 1 changed"),
        "the migrated index holds the old content hash: {lines:#?}"
    );
    let db = env.db();
    let version: i64 = db
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .expect("version");
    assert_eq!(
        version as usize,
        treatywatch::store::Store::schema_version()
    );
    drop(db);
    let (_, lines) = env.poll();
    assert!(
        PollEnv::line(&lines, "live").contains("0 new, 0 changed"),
        "the change went into the index with its row: {lines:#?}"
    );
}

/// Each broken feed, served beside a good one in the same poll.
#[test]
fn a_bad_feed_is_recorded_and_never_stops_the_others() {
    let gzip_bomb = {
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        let zeros = vec![b' '; 1 << 20];
        for _ in 0..16 {
            enc.write_all(&zeros).expect("compress");
        }
        enc.finish().expect("gzip")
    };
    let oversized = format!(
        "<rss version=\"2.0\"><channel><title>{}</title></channel></rss>",
        "x".repeat(300 * 1024)
    );
    // (feed id, reply, what its health's last_error must say, last_status)
    let cases: Vec<(&str, Reply, &str, Value)> = vec![
        ("missing", Reply::status(404), "HTTP 404", Value::from(404)),
        ("gone", Reply::status(410), "410 Gone", Value::from(410)),
        (
            "limited",
            Reply::status(429).with_header("Retry-After", "7200"),
            "HTTP 429",
            Value::from(429),
        ),
        (
            "broken-server",
            Reply::status(500),
            "HTTP 500",
            Value::from(500),
        ),
        ("stalled", Reply::Stall, "no complete response", Value::Null),
        (
            "oversized",
            Reply::feed(oversized, RSS),
            "larger than",
            Value::Null,
        ),
        (
            "bomb",
            Reply::feed(gzip_bomb, RSS).with_header("Content-Encoding", "gzip"),
            "larger than",
            Value::Null,
        ),
        (
            "invalid",
            Reply::feed(fixture("invalid.xml"), RSS),
            "not a feed",
            Value::from(200),
        ),
        (
            "loop",
            Reply::Redirect {
                code: 302,
                to: "/loop".into(),
            },
            "redirects",
            Value::Null,
        ),
        (
            "not-a-feed",
            Reply::feed("<html><body>Hello</body></html>", "text/html"),
            "not a feed",
            Value::from(200),
        ),
    ];
    let mut feeds: Vec<(&str, String)> = cases
        .iter()
        .map(|(id, ..)| (*id, format!("/{id}")))
        .collect();
    feeds.push(("good", "/good".into()));
    let feed_refs: Vec<(&str, &str)> = feeds.iter().map(|(id, p)| (*id, p.as_str())).collect();
    let env = PollEnv::new(&feed_refs);
    for (id, reply, ..) in &cases {
        env.server.set(&format!("/{id}"), reply.clone());
    }
    env.server
        .set("/good", Reply::feed(fixture("rss2.xml"), RSS));

    let (code, lines) = env.poll();
    assert_eq!(code, Some(1), "some feeds failed: exit 1\n{lines:#?}");
    assert!(
        PollEnv::line(&lines, "good").contains("200 2 new"),
        "{lines:#?}"
    );
    assert_eq!(env.items("good").len(), 2);
    let now = chrono::Utc::now();
    for (id, _, fragment, status) in &cases {
        let health = env.health(id);
        let error = health["last_error"].as_str().unwrap_or_default();
        assert!(
            error.contains(fragment),
            "{id}: last_error {error:?} lacks {fragment:?}"
        );
        assert_eq!(health["consecutive_failures"], 1, "{id}");
        assert_eq!(&health["last_status"], status, "{id}");
        assert!(health["last_success"].is_null(), "{id}");
        assert!(
            PollEnv::line(&lines, id).contains(fragment),
            "{id} summary: {lines:#?}"
        );
    }
    // Retry-After: 7200 pushes the next poll at least two hours out.
    let next: chrono::DateTime<chrono::Utc> = env.health("limited")["next_poll"]
        .as_str()
        .expect("next_poll")
        .parse()
        .expect("time");
    assert!(
        next - now >= chrono::Duration::seconds(7100),
        "429 next poll {next}"
    );
    assert_eq!(env.health("gone")["gone"], true);

    // A second poll: the gone feed is not requested again, the others are
    // retried (never given up on) and their failure counts grow.
    let before = env.server.seen("/gone").len();
    let (_, lines) = env.poll();
    assert_eq!(
        env.server.seen("/gone").len(),
        before,
        "410 feeds are not polled again"
    );
    assert!(PollEnv::line(&lines, "gone").contains("410"), "{lines:#?}");
    assert_eq!(env.health("missing")["consecutive_failures"], 2);
}

#[test]
fn windows_1251_feed_is_decoded() {
    let env = PollEnv::new(&[("kyiv", "/cp1251.xml")]);
    env.server.set(
        "/cp1251.xml",
        Reply::feed(fixture("cp1251.xml"), "text/xml"),
    );
    let (code, _) = env.poll();
    assert_eq!(code, Some(0));
    assert_eq!(
        env.items("kyiv"),
        ["Україна виходить з Оттавської конвенції"]
    );
}

#[test]
fn latin1_declared_only_in_the_header_is_decoded() {
    let env = PollEnv::new(&[("latin", "/latin1.xml")]);
    let doc = b"<rss version=\"2.0\"><channel><title>t</title><item><title>Caf\xe9 diplomacy in Gen\xe8ve</title><guid>https://l.example.org/1</guid></item></channel></rss>".to_vec();
    env.server.set(
        "/latin1.xml",
        Reply::feed(doc, "application/rss+xml; charset=ISO-8859-1"),
    );
    env.poll();
    assert_eq!(env.items("latin"), ["Café diplomacy in Genève"]);
}

#[test]
fn an_item_whose_content_changes_is_taken_again() {
    let env = PollEnv::new(&[("live", "/live.xml")]);
    env.server
        .set("/live.xml", Reply::feed(fixture("changing-v1.xml"), RSS));
    let (_, lines) = env.poll();
    assert!(
        PollEnv::line(&lines, "live").contains("1 new, 0 changed"),
        "{lines:#?}"
    );
    env.server
        .set("/live.xml", Reply::feed(fixture("changing-v2.xml"), RSS));
    let (_, lines) = env.poll();
    assert!(
        PollEnv::line(&lines, "live").contains("0 new, 1 changed"),
        "{lines:#?}"
    );
    assert_eq!(
        env.items("live"),
        ["Latvian parliament votes to withdraw from Istanbul Convention"]
    );
}

#[test]
fn the_same_item_in_two_feeds_is_one_observation() {
    let env = PollEnv::new(&[("syndicate-a", "/a.xml"), ("syndicate-b", "/b.xml")]);
    env.server
        .set("/a.xml", Reply::feed(fixture("shared-a.xml"), RSS));
    env.server
        .set("/b.xml", Reply::feed(fixture("shared-b.xml"), RSS));
    let (code, _) = env.poll();
    assert_eq!(code, Some(0));
    assert_eq!(env.items("syndicate-a").len(), 1);
    assert_eq!(env.items("syndicate-b").len(), 1);
    assert_eq!(
        env.detections(),
        [("EST".into(), "ottawa".into(), "withdrawal_approved".into())],
        "one article carried by two feeds is one detection"
    );
    assert_eq!(env.events("status_changed").len(), 1);
}

#[test]
fn old_items_count_as_backfill_and_fresh_ones_do_not() {
    let env = PollEnv::new(&[("old", "/old.xml"), ("fresh", "/fresh.xml")]);
    env.server
        .set("/old.xml", Reply::feed(fixture("rss2.xml"), RSS));
    let fresh = String::from_utf8(fixture("atom.xml"))
        .expect("utf-8")
        .replace("2025-06-27T12:00:00Z", &chrono::Utc::now().to_rfc3339());
    env.server
        .set("/fresh.xml", Reply::feed(fresh, "application/atom+xml"));
    env.poll();
    let changes = env.events("status_changed");
    let backfill = |state: &str| {
        changes
            .iter()
            .find(|c| c["state"] == state)
            .unwrap_or_else(|| panic!("no change for {state}: {changes:#?}"))["backfill"]
            .clone()
    };
    assert_eq!(
        backfill("UKR"),
        true,
        "news from June 2025 is history today"
    );
    assert_eq!(backfill("POL"), false, "news from today is news");
}

#[test]
fn a_permanent_redirect_is_followed_and_reported() {
    let env = PollEnv::new(&[("moved", "/old.xml")]);
    env.server.set(
        "/old.xml",
        Reply::Redirect {
            code: 301,
            to: "/new.xml".into(),
        },
    );
    env.server
        .set("/new.xml", Reply::feed(fixture("rss2.xml"), RSS));
    let (code, lines) = env.poll();
    assert_eq!(code, Some(0));
    let line = &PollEnv::line(&lines, "moved");
    assert!(
        line.contains("2 new")
            && line.contains("moved permanently to")
            && line.contains("/new.xml"),
        "{line}"
    );
    assert!(
        env.health("moved")["moved_to"]
            .as_str()
            .is_some_and(|u| u.ends_with("/new.xml"))
    );
}

#[test]
fn a_temporary_redirect_is_followed_silently() {
    let env = PollEnv::new(&[("hop", "/hop.xml")]);
    env.server.set(
        "/hop.xml",
        Reply::Redirect {
            code: 302,
            to: "/rss2.xml".into(),
        },
    );
    env.server
        .set("/rss2.xml", Reply::feed(fixture("rss2.xml"), RSS));
    let (_, lines) = env.poll();
    let line = &PollEnv::line(&lines, "hop");
    assert!(line.contains("2 new") && !line.contains("moved"), "{line}");
}

#[test]
fn a_recovered_feed_resets_its_failure_count() {
    let env = PollEnv::new(&[("flaky", "/flaky.xml")]);
    env.server.set("/flaky.xml", Reply::status(503));
    env.poll();
    env.poll();
    assert_eq!(env.health("flaky")["consecutive_failures"], 2);
    env.server
        .set("/flaky.xml", Reply::feed(fixture("rss2.xml"), RSS));
    let (code, _) = env.poll();
    assert_eq!(code, Some(0));
    let health = env.health("flaky");
    assert_eq!(health["consecutive_failures"], 0);
    assert!(health["last_error"].is_null() && health["last_success"].is_string());
}

#[test]
fn a_feed_over_the_item_cap_says_how_many_it_kept() {
    let env = PollEnv::new(&[("big", "/big.xml")]);
    env.write_config_with(&[("big", "/big.xml")], "max_items = 10\n");
    let mut xml = String::from(
        "<rss version=\"2.0\"><channel><title>Big</title><link>https://big.example.org/</link><description>d</description>",
    );
    for i in 0..30 {
        xml.push_str(&format!(
            "<item><title>Item {i}</title><guid>https://big.example.org/{i}</guid><description>Nothing about treaties.</description></item>"
        ));
    }
    xml.push_str("</channel></rss>");
    env.server.set("/big.xml", Reply::feed(xml, RSS));
    let out = env.run(&["poll"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<String> = stdout.lines().map(str::to_string).collect();
    let line = PollEnv::line(&lines, "big");
    assert!(
        line.contains("10 new") && line.contains("kept 10 of 30 items ([fetch] max_items)"),
        "{line}"
    );
    assert!(
        stderr.contains("kept 10 of 30 items"),
        "the log says it too: {stderr}"
    );
    let items: i64 = env
        .db()
        .query_row("SELECT count(*) FROM items", [], |r| r.get(0))
        .expect("count");
    assert_eq!(items, 10);
}

/// Five feeds of one publisher, each answered only once `gate` requests to
/// the host have been in flight together, and then a little late: a client
/// that let more through at once would have them in flight meanwhile.
/// (The delay only gives a broken limit the chance to show; nothing is
/// timed.)
fn one_host_env(gate: usize) -> (PollEnv, Vec<(String, String)>) {
    let feeds: Vec<(String, String)> = (1..=5)
        .map(|n| (format!("section{n}"), format!("/section{n}.xml")))
        .collect();
    let env = PollEnv::new(&[]);
    for (_, path) in &feeds {
        env.server.set(
            path,
            Reply::feed(fixture("rss2.xml"), RSS).late(HOLD).gated(gate),
        );
    }
    (env, feeds)
}

/// How long each of those feeds takes to answer.
pub(crate) const HOLD: std::time::Duration = std::time::Duration::from_millis(200);

#[test]
fn feeds_on_one_host_are_fetched_at_most_per_host_at_once() {
    for per_host in [2, 3] {
        let (env, feeds) = one_host_env(per_host);
        let refs: Vec<(&str, &str)> = feeds
            .iter()
            .map(|(id, p)| (id.as_str(), p.as_str()))
            .collect();
        // `concurrency` (8) would allow all five at once.
        env.write_config_with(&refs, &format!("per_host = {per_host}\n"));
        let (code, lines) = env.poll();
        assert_eq!(code, Some(0), "{lines:?}");
        assert_eq!(
            env.server.peak_in_flight(&env.server.host()),
            per_host,
            "per_host = {per_host}: the server saw that many at once, never more"
        );
    }
    // Unset, it is 2.
    let (env, feeds) = one_host_env(2);
    let refs: Vec<(&str, &str)> = feeds
        .iter()
        .map(|(id, p)| (id.as_str(), p.as_str()))
        .collect();
    env.write_config(&refs);
    assert_eq!(env.poll().0, Some(0));
    assert_eq!(env.server.peak_in_flight(&env.server.host()), 2);
}

//! The web outputs through the real binary: `serve` (and `run`) on a
//! loopback port over a real SQLite file, read with a real HTTP client,
//! Atom parsed with feed-rs, the board driven in headless Chromium.

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use treatywatch::domain::{Action, EventBody, NewEvent, Policy};
use treatywatch::store::Store;

use crate::support::{ConfigDir, MINIMAL, at, detection};

/// A token long enough for the server to accept.
const TOKEN: &str = "s3cret-token-for-tests-0123456789";

/// The evidence of Ukraine's notice, with markup a feed might carry.
const NOTICE: &str = "Ukraine deposited its instrument of withdrawal <script>alert('x')</script> with the UN Secretary-General.";
const NOTICE_LINK: &str = "https://news.example.org/ukraine-notice?a=1&b=2";

/// `treatywatch serve` (or `run`), stopped when dropped.
struct Served {
    child: Child,
    base: String,
}

impl Served {
    /// Starts `serve` with `extra` arguments and waits for the line that
    /// names the address.
    fn start(dir: &ConfigDir, extra: &[&str], env: &[(&str, &Path)]) -> Served {
        let mut cmd = Command::new(assert_cmd::cargo::cargo_bin("treatywatch"));
        cmd.env_remove("TREATYWATCH_CONFIG")
            .env_remove("CREDENTIALS_DIRECTORY")
            .arg("--config")
            .arg(dir.feeds())
            .arg("serve")
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("start serve");
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("stdout"))
            .read_line(&mut line)
            .expect("read the address line");
        let Some(base) = line
            .split_whitespace()
            .find(|w| w.starts_with("http://"))
            .map(|u| u.trim_end_matches('/').to_string())
        else {
            let mut err = String::new();
            let _ = child
                .stderr
                .take()
                .expect("stderr")
                .read_to_string(&mut err);
            panic!("serve printed {line:?}; stderr: {err}");
        };
        Served { child, base }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let started = Instant::now();
        while started.elapsed() < Duration::from_secs(5) {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One response, read whole.
struct Got {
    status: u16,
    headers: reqwest::header::HeaderMap,
    body: String,
}

impl Got {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("{e}: {}", self.body))
    }
}

/// A blocking HTTP client over reqwest (async) on a runtime of its own.
struct Client {
    runtime: tokio::runtime::Runtime,
    http: reqwest::Client,
}

impl Client {
    fn new() -> Client {
        Client {
            runtime: tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime"),
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(20))
                .build()
                .expect("client"),
        }
    }

    fn send(&self, method: &str, url: &str, headers: &[(&str, &str)]) -> Got {
        self.runtime.block_on(async {
            let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
            let mut req = self.http.request(method, url);
            for (k, v) in headers {
                req = req.header(*k, *v);
            }
            let resp = req.send().await.unwrap_or_else(|e| panic!("{url}: {e}"));
            let status = resp.status().as_u16();
            let headers = resp.headers().clone();
            let body = resp.text().await.expect("body");
            Got {
                status,
                headers,
                body,
            }
        })
    }

    fn get(&self, url: &str) -> Got {
        self.send("GET", url, &[])
    }

    /// GET that may fail to connect or be cut off.
    fn try_get(&self, url: &str) -> Result<u16, reqwest::Error> {
        self.runtime
            .block_on(async { self.http.get(url).send().await.map(|r| r.status().as_u16()) })
    }
}

/// A config with `[web]` on a free loopback port and a log with a story:
/// Ukraine announces and notifies its withdrawal from Ottawa (the notice's
/// evidence carries markup, the announcement a `javascript:` link), Poland
/// is a party.
fn seeded(web: &str) -> ConfigDir {
    let dir = ConfigDir::new(&format!("{MINIMAL}\n[web]\n{web}\n"));
    let mut store = Store::open(&dir.db()).expect("open store");
    let mut announce = detection(
        "UKR",
        "ottawa",
        Action::WithdrawalAnnounced,
        "wire",
        "ukr-1",
        at(2025, 6, 1),
    );
    if let EventBody::Detection(d) = &mut announce.body {
        d.evidence.sentence =
            "President Zelensky signed a decree to leave the Ottawa Convention.".into();
        d.evidence.link = Some("javascript:alert('announce')".into());
        d.evidence.title = Some("Zelensky signs decree".into());
    }
    let mut notice = detection(
        "UKR",
        "ottawa",
        Action::WithdrawalNotified,
        "wire",
        "ukr-2",
        at(2025, 6, 29),
    );
    if let EventBody::Detection(d) = &mut notice.body {
        d.evidence.sentence = NOTICE.into();
        d.evidence.link = Some(NOTICE_LINK.into());
        d.evidence.title = Some("Ukraine notifies the UN <b>today</b>".into());
    }
    let poland = detection(
        "POL",
        "ottawa",
        Action::Ratified,
        "wire",
        "pol-1",
        at(2012, 12, 27),
    );
    // One append each: an append folds each key once, and the story has
    // a status change per step.
    for event in [announce, notice, poland] {
        append(&mut store, &[event]);
    }
    dir
}

fn append(store: &mut Store, events: &[NewEvent]) {
    store
        .append(events, &Policy::default(), chrono::Utc::now())
        .expect("append");
}

#[test]
fn board_history_feeds_api_and_calendar_over_http() {
    let dir = seeded("listen = \"127.0.0.1:0\"");
    let served = Served::start(&dir, &[], &[]);
    let client = Client::new();

    let board = client.get(&served.url("/"));
    assert_eq!(board.status, 200, "{}", board.body);
    assert!(
        board
            .header("content-type")
            .unwrap()
            .starts_with("text/html")
    );
    assert!(board.header("etag").is_some());
    for wanted in [
        "class=\"s-withdrawal_notified\"",
        "href=\"/state/UKR/ottawa\"",
        "withdrawal notified",
        "effective 2025-12-29 unless at war",
        "class=\"s-party\"",
        "<meta name=\"viewport\"",
        "Recent changes",
    ] {
        assert!(
            board.body.contains(wanted),
            "board lacks {wanted}:\n{}",
            board.body
        );
    }
    assert!(
        !board.body.contains("<script"),
        "feed markup reached the page"
    );
    assert!(
        board.body.contains("&lt;script&gt;"),
        "evidence is escaped, not dropped"
    );

    // As it stood before the notice: announced only.
    let before = client.get(&served.url("/?as_of=2025-06-15"));
    assert_eq!(before.status, 200);
    assert!(
        before.body.contains("class=\"s-withdrawal_announced\""),
        "{}",
        before.body
    );
    assert!(!before.body.contains("class=\"s-withdrawal_notified\""));
    // Filters: one state, a treaty not tracked.
    let filtered = client.get(&served.url("/?state=POL&treaty=ottawa,ctbt"));
    assert_eq!(filtered.status, 200);
    assert!(!filtered.body.contains("href=\"/state/UKR/ottawa\""));
    assert!(filtered.body.contains("href=\"/state/POL/ctbt\""));

    let history = client.get(&served.url("/state/UKR/ottawa"));
    assert_eq!(history.status, 200);
    for wanted in [
        "Ukraine deposited its instrument of withdrawal &lt;script&gt;",
        "href=\"https://news.example.org/ukraine-notice?a=1&amp;b=2\"",
        "Ukraine notifies the UN &lt;b&gt;today&lt;/b&gt;",
        // The notice period ran out before these tests were written.
        "The notice period ran out on 2025-12-29, but Article 20 delays the effect while the state is in an armed conflict",
        "Detected: withdrawal notified",
        "Status: <span class=\"badge s-withdrawal_announced\">",
    ] {
        assert!(
            history.body.contains(wanted),
            "history lacks {wanted}:\n{}",
            history.body
        );
    }
    assert!(
        !history.body.contains("href=\"javascript:"),
        "a javascript: link became a link"
    );
    assert!(
        history
            .body
            .contains("javascript:alert(&#39;announce&#39;)"),
        "the refused link is shown as text"
    );

    let feeds = client.get(&served.url("/feeds"));
    assert_eq!(feeds.status, 200);
    assert!(feeds.body.contains("never polled"), "{}", feeds.body);

    // The JSON API has the shapes of --json output.
    let api = client.get(&served.url("/api/status")).json();
    let cli: Vec<Value> =
        String::from_utf8(dir.cmd(&["status", "--json"]).output().unwrap().stdout)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str::<Value>(l).unwrap())
            .filter(|v| v.get("status").is_some())
            .collect();
    assert_eq!(api, Value::Array(cli));
    let api_events = client.get(&served.url("/api/events?since=1&limit=2"));
    let cli_events: Vec<Value> = String::from_utf8(
        dir.cmd(&["events", "--json", "--since", "1", "--limit", "2"])
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap()
    .lines()
    .map(|l| serde_json::from_str(l).unwrap())
    .collect();
    assert_eq!(api_events.json(), Value::Array(cli_events));
    let next = api_events
        .header("link")
        .expect("a full page links the next");
    assert!(
        next.contains("/api/events?since=3&limit=2") && next.contains("rel=\"next\""),
        "{next}"
    );
    let key = client.get(&served.url("/api/state/UKR/ottawa")).json();
    assert_eq!(key["status"]["status"], "withdrawal_notified");
    assert_eq!(key["status"]["expected_effective"], "2025-12-29");
    let kinds: Vec<&str> = key["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds,
        ["detection", "status_changed", "detection", "status_changed"]
    );
    let as_of = client
        .get(&served.url("/api/status?as_of=2025-06-15"))
        .json();
    assert_eq!(as_of[0]["status"], "withdrawal_announced", "{as_of}");

    // The calendar: one all-day event with the caveat, CRLF lines.
    let ics = client.get(&served.url("/effective.ics"));
    assert_eq!(ics.status, 200);
    assert!(
        ics.header("content-type")
            .unwrap()
            .starts_with("text/calendar")
    );
    assert!(
        ics.body.starts_with("BEGIN:VCALENDAR\r\nVERSION:2.0\r\n"),
        "{}",
        ics.body
    );
    assert!(
        ics.body.contains("DTSTART;VALUE=DATE:20251229\r\n"),
        "{}",
        ics.body
    );
    let unfolded = ics.body.replace("\r\n ", "");
    assert!(
        unfolded.contains("UID:withdrawal-UKR-ottawa-"),
        "{unfolded}"
    );
    assert!(unfolded.contains("armed conflict"), "{unfolded}");
    assert!(
        ics.body.lines().all(|l| l.len() <= 76),
        "lines fold at 75 octets"
    );
    assert_eq!(ics.body.matches("BEGIN:VEVENT").count(), 1);

    // HEAD answers like GET, without a body.
    let head = client.send("HEAD", &served.url("/"), &[]);
    assert_eq!(head.status, 200);
    assert!(head.body.is_empty());
    assert_eq!(head.header("etag"), board.header("etag"));
}

#[test]
fn atom_feeds_parse_with_feed_rs_and_answer_304() {
    let dir = seeded("listen = \"127.0.0.1:0\"");
    let served = Served::start(&dir, &[], &[]);
    let client = Client::new();
    let parse = |g: &Got| {
        assert_eq!(g.status, 200, "{}", g.body);
        assert!(
            g.header("content-type")
                .unwrap()
                .starts_with("application/atom+xml")
        );
        feed_rs::parser::parse(g.body.as_bytes()).unwrap_or_else(|e| panic!("{e}: {}", g.body))
    };
    let first = client.get(&served.url("/changes.atom"));
    let feed = parse(&first);
    assert!(feed.id.starts_with("urn:uuid:"), "{}", feed.id);
    assert!(feed.updated.is_some());
    assert_eq!(feed.entries.len(), 3, "two for Ukraine, one for Poland");
    let mut ids: Vec<&str> = feed.entries.iter().map(|e| e.id.as_str()).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), 3, "entry ids are unique");
    for e in &feed.entries {
        assert!(e.id.starts_with("urn:uuid:"), "{}", e.id);
        assert!(e.updated.is_some() && e.published.is_some(), "{e:?}");
        let alternate = e
            .links
            .iter()
            .find(|l| l.rel.as_deref() == Some("alternate"))
            .expect("alternate link");
        assert!(
            alternate
                .href
                .starts_with(&format!("{}/state/", served.base)),
            "{}",
            alternate.href
        );
        for l in &e.links {
            assert!(l.href.starts_with("http"), "only http(s) links: {}", l.href);
        }
    }
    let notice = feed
        .entries
        .iter()
        .find(|e| {
            e.title
                .as_ref()
                .is_some_and(|t| t.content.contains("withdrawal notified"))
        })
        .expect("the notice's entry");
    assert!(
        notice.links.iter().any(|l| l.href == NOTICE_LINK),
        "{:?}",
        notice.links
    );
    let content = notice
        .content
        .as_ref()
        .and_then(|c| c.body.clone())
        .unwrap_or_default();
    assert!(
        content.contains("&lt;script&gt;"),
        "evidence stays escaped inside the HTML: {content}"
    );
    assert!(content.contains("armed conflict"), "{content}");

    // Ids are stable from one poll to the next.
    let again = parse(&client.get(&served.url("/changes.atom")));
    assert_eq!(
        feed.entries.iter().map(|e| &e.id).collect::<Vec<_>>(),
        again.entries.iter().map(|e| &e.id).collect::<Vec<_>>()
    );
    // Polite polling: the ETag and Last-Modified bring 304s.
    let etag = first.header("etag").expect("etag").to_string();
    let modified = first
        .header("last-modified")
        .expect("last-modified")
        .to_string();
    let cached = client.send(
        "GET",
        &served.url("/changes.atom"),
        &[("If-None-Match", &etag)],
    );
    assert_eq!(cached.status, 304);
    assert!(cached.body.is_empty());
    assert_eq!(cached.header("etag"), Some(etag.as_str()));
    let since = client.send(
        "GET",
        &served.url("/changes.atom"),
        &[("If-Modified-Since", &modified)],
    );
    assert_eq!(since.status, 304);
    let other = client.send(
        "GET",
        &served.url("/changes.atom"),
        &[("If-None-Match", "\"nope\"")],
    );
    assert_eq!(other.status, 200);

    // Per treaty and per state.
    assert_eq!(
        parse(&client.get(&served.url("/treaty/ottawa.atom")))
            .entries
            .len(),
        3
    );
    assert_eq!(
        parse(&client.get(&served.url("/treaty/ctbt.atom")))
            .entries
            .len(),
        0
    );
    let ukraine = parse(&client.get(&served.url("/state/UKR.atom")));
    assert_eq!(ukraine.entries.len(), 2);
    assert_ne!(ukraine.id, feed.id);
    assert_eq!(client.get(&served.url("/treaty/nope.atom")).status, 404);
    assert_eq!(client.get(&served.url("/state/XYZ.atom")).status, 404);

    // A correction updates the entry it corrects: same id, later update.
    let notice_seq = 3;
    let out = dir
        .cmd(&[
            "retract",
            &notice_seq.to_string(),
            "--note",
            "the wire misread a draft",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let corrected_got = client.send(
        "GET",
        &served.url("/changes.atom"),
        &[("If-None-Match", &etag)],
    );
    assert_eq!(corrected_got.status, 200, "a correction changes the feed");
    let corrected = parse(&corrected_got);
    assert_eq!(corrected.entries.len(), 3, "no new entry for a correction");
    let updated = corrected
        .entries
        .iter()
        .find(|e| e.id == notice.id)
        .expect("same id");
    assert!(updated.updated >= notice.updated);
    let title = &updated.title.as_ref().unwrap().content;
    assert!(
        title.contains("corrected: now withdrawal announced"),
        "{title}"
    );
    let body = updated
        .content
        .as_ref()
        .and_then(|c| c.body.clone())
        .unwrap_or_default();
    assert!(body.contains("the wire misread a draft"), "{body}");
}

#[test]
fn unknown_paths_are_404_other_methods_405_and_no_input_breaks_it() {
    let dir = seeded("listen = \"127.0.0.1:0\"");
    let served = Served::start(&dir, &[], &[]);
    let client = Client::new();
    for path in [
        "/nope",
        "/feeds/",
        "/state/UKR",
        "/state/XYZ/ottawa",
        "/state/UKR/nope",
        "/state/%00/ottawa",
        "/api/state/UKR/nope",
        "/treaty/ottawa",
        "/index.html",
        "/metrics",
    ] {
        assert_eq!(client.get(&served.url(path)).status, 404, "{path}");
    }
    for method in ["POST", "PUT", "DELETE", "PATCH"] {
        let got = client.send(method, &served.url("/"), &[]);
        assert_eq!(got.status, 405, "{method}");
        assert_eq!(got.header("allow"), Some("GET, HEAD"));
        assert_eq!(
            client.send(method, &served.url("/api/status"), &[]).status,
            405
        );
    }
    for query in [
        "/?as_of=yesterday",
        "/?as_of=%FF%FE",
        "/?as_of=99999-01-01",
        "/?state=%3Cscript%3E",
        "/?treaty=nope",
        "/api/status?as_of=2025-13-45",
        "/api/events?since=-1",
        "/api/events?since=99999999999999999999999",
        "/api/events?limit=0",
        "/api/events?limit=100000",
    ] {
        let got = client.get(&served.url(query));
        assert_eq!(got.status, 400, "{query}: {}", got.body);
        assert!(
            got.header("content-type")
                .unwrap()
                .starts_with("text/plain")
        );
    }
    for odd in [
        "/?as_of=&state=&treaty=",
        "/?%zz=%%&&&=",
        "/?state=ukr",
        "/api/events?since=&limit=",
        "/api/events?since=999999",
    ] {
        assert_eq!(client.get(&served.url(odd)).status, 200, "{odd}");
    }
    let long = format!("/{}", "a".repeat(12_000));
    assert_eq!(client.get(&served.url(&long)).status, 404);
    // A head too large for the server is refused, and it serves on.
    let huge = format!("/?x={}", "a".repeat(40_000));
    let refused = client.try_get(&served.url(&huge));
    assert!(refused.is_err() || refused.is_ok_and(|s| s >= 400));
    assert_eq!(client.get(&served.url("/")).status, 200, "still serving");
}

#[test]
fn a_token_guards_the_server_and_an_exposed_bind_without_one_is_refused() {
    // In the config: refused by `check` with the place to fix.
    let exposed = ConfigDir::new(&format!("{MINIMAL}\n[web]\nlisten = \"0.0.0.0:8080\"\n"));
    let out = exposed.cmd(&["check"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("feeds.toml:15:10: web listen address 0.0.0.0:8080 is not a loopback address"),
        "{err}"
    );
    assert!(err.contains("token_file"), "{err}");
    let out = exposed.cmd(&["serve"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2), "serve refuses to start too");
    // On the command line: refused at start.
    let dir = seeded("listen = \"127.0.0.1:0\"");
    let out = dir
        .cmd(&["serve", "--listen", "0.0.0.0:0"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("refusing to serve on 0.0.0.0:0"), "{err}");

    // With a token (a systemd credential), every request needs it.
    let dir = seeded("listen = \"0.0.0.0:0\"\ntoken_file = \"$CREDENTIALS_DIRECTORY/web-token\"");
    let creds = tempfile::tempdir().unwrap();
    std::fs::write(creds.path().join("web-token"), format!("{TOKEN}\n")).unwrap();
    let out = dir.cmd(&["serve"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1), "no $CREDENTIALS_DIRECTORY");
    assert!(String::from_utf8_lossy(&out.stderr).contains("CREDENTIALS_DIRECTORY is not set"));
    let served = Served::start(&dir, &[], &[("CREDENTIALS_DIRECTORY", creds.path())]);
    let port = served.base.rsplit(':').next().unwrap().to_string();
    let url = format!("http://127.0.0.1:{port}/");
    let client = Client::new();
    let none = client.get(&url);
    assert_eq!(none.status, 401);
    assert!(
        none.headers
            .get_all("www-authenticate")
            .iter()
            .any(|v| v.to_str().unwrap().starts_with("Basic"))
    );
    assert_eq!(
        client.get(&format!("http://127.0.0.1:{port}/nope")).status,
        401,
        "no probing without it"
    );
    let wrong = client.send(
        "GET",
        &url,
        &[("Authorization", "Bearer wrong-token-0123456789")],
    );
    assert_eq!(wrong.status, 401);
    let bearer = format!("Bearer {TOKEN}");
    assert_eq!(
        client
            .send("GET", &url, &[("Authorization", &bearer)])
            .status,
        200
    );
    use base64::Engine as _;
    let basic = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("reader:{TOKEN}"))
    );
    let api = client.send(
        "GET",
        &format!("{url}api/status"),
        &[("Authorization", &basic)],
    );
    assert_eq!(api.status, 200, "{}", api.body);

    // A short token is refused at start.
    std::fs::write(creds.path().join("web-token"), "short\n").unwrap();
    let out = dir
        .cmd(&["serve"])
        .env("CREDENTIALS_DIRECTORY", creds.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("shorter than 16 characters"));
}

#[test]
fn run_serves_the_web_outputs_and_metrics_beside_daemon_metrics() {
    let web = crate::smtp_server::SmtpServer::unused_port();
    let metrics = crate::smtp_server::SmtpServer::unused_port();
    let dir = seeded(&format!("listen = \"127.0.0.1:{web}\""));
    let mut config = std::fs::read_to_string(dir.feeds()).unwrap();
    config = config.replace("interval = \"15m\"", "interval = \"15m\"\nenabled = false");
    config.push_str(&format!("\n[daemon]\nmetrics = \"127.0.0.1:{metrics}\"\n"));
    std::fs::write(dir.feeds(), config).unwrap();
    let daemon = crate::crash::KillOnDrop(
        Command::new(assert_cmd::cargo::cargo_bin("treatywatch"))
            .env_remove("TREATYWATCH_CONFIG")
            .env_remove("NOTIFY_SOCKET")
            .arg("--config")
            .arg(dir.feeds())
            .arg("run")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start daemon"),
    );
    let client = Client::new();
    let started = Instant::now();
    let board = loop {
        if client.try_get(&format!("http://127.0.0.1:{web}/")).is_ok() {
            break client.get(&format!("http://127.0.0.1:{web}/")).body;
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "the daemon's web server never answered"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(board.contains("href=\"/state/UKR/ottawa\""), "{board}");
    let m = client.get(&format!("http://127.0.0.1:{web}/metrics"));
    assert_eq!(m.status, 200);
    assert!(m.body.contains("treatywatch_feeds 1"), "{}", m.body);
    let separate = client.get(&format!("http://127.0.0.1:{metrics}/metrics"));
    assert!(
        separate.body.contains("treatywatch_feeds 1"),
        "[daemon] metrics keeps working"
    );
    // The daemon still owns the database while the web reads it.
    let out = dir
        .cmd(&["assert", "EST", "ottawa", "party", "--note", "x"])
        .output()
        .unwrap();
    assert!(!out.status.success(), "the daemon holds the writer lock");
    let _ = Command::new("kill")
        .args(["-TERM", &daemon.0.id().to_string()])
        .status();
}

fn chromium() -> PathBuf {
    for candidate in ["/usr/bin/chromium", "/usr/bin/chromium-browser"] {
        if Path::new(candidate).exists() {
            return PathBuf::from(candidate);
        }
    }
    panic!(
        "chromium is not installed: apt-get install -y --no-install-recommends chromium (.ci/run does it)"
    );
}

/// Headless Chromium on `url` with `args` (`--dump-dom`, `--screenshot=…`):
/// what it printed.
fn browse(profile: &Path, args: &[String], url: &str) -> String {
    let out = Command::new(chromium())
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--hide-scrollbars",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(args)
        .arg(url)
        .stdin(Stdio::null())
        .output()
        .expect("run chromium");
    assert!(
        out.status.success(),
        "chromium failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("target"))
}

fn screenshot(profile: &Path, url: &str, name: &str, size: &str) -> PathBuf {
    let path = target_dir().join(name);
    let _ = std::fs::remove_file(&path);
    browse(
        profile,
        &[
            format!("--screenshot={}", path.display()),
            format!("--window-size={size}"),
        ],
        url,
    );
    let png = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert!(
        png.starts_with(b"\x89PNG\r\n\x1a\n") && png.len() > 2_000,
        "{} is not a screenshot",
        path.display()
    );
    println!("screenshot: {}", path.display());
    path
}

#[test]
fn the_board_in_headless_chromium() {
    let dir = seeded("listen = \"127.0.0.1:0\"");
    // More of a board to look at: Poland announces too, Estonia tracked.
    let config = std::fs::read_to_string(dir.feeds())
        .unwrap()
        .replace(
            "states = [\"UKR\", \"POL\"]",
            "states = [\"UKR\", \"POL\", \"EST\"]",
        )
        .replace(
            "treaties = [\"ottawa\"]",
            "treaties = [\"ottawa\", \"ctbt\"]",
        );
    std::fs::write(dir.feeds(), config).unwrap();
    let served = Served::start(&dir, &[], &[]);
    let profile = tempfile::tempdir().unwrap();

    let dom = browse(profile.path(), &["--dump-dom".into()], &served.url("/"));
    assert!(dom.contains("<table class=\"grid\">"), "{dom}");
    let cell_at = dom
        .find("href=\"/state/UKR/ottawa\"")
        .expect("Ukraine's Ottawa cell links its history");
    let cell = &dom[cell_at
        ..dom[cell_at..]
            .find("</td>")
            .map_or(dom.len(), |e| cell_at + e)];
    assert!(
        cell.contains("withdrawal notified") && cell.contains("effective 2025-12-29"),
        "{cell}"
    );
    assert!(!dom.contains("<script"), "no script in the rendered board");
    // Follow the cell's link as a reader would.
    let href = &cell["href=\"".len()..cell[6..].find('"').map_or(cell.len(), |e| e + 6)];
    let history = browse(profile.path(), &["--dump-dom".into()], &served.url(href));
    assert!(
        history.contains("Ukraine deposited its instrument of withdrawal &lt;script&gt;alert('x')&lt;/script&gt; with the UN Secretary-General."),
        "evidence text on the history page:\n{history}"
    );
    assert!(
        history.contains("href=\"https://news.example.org/ukraine-notice?a=1&amp;b=2\""),
        "source link: {history}"
    );
    assert!(!history.contains("href=\"javascript:"), "{history}");

    screenshot(profile.path(), &served.url("/"), "board.png", "1000,640");
    screenshot(profile.path(), &served.url(href), "history.png", "1000,900");
    screenshot(
        profile.path(),
        &served.url("/"),
        "board-phone.png",
        "390,844",
    );
}

#[test]
fn export_writes_csv_and_json_for_spreadsheets() {
    let dir = seeded("listen = \"127.0.0.1:0\"");
    let out = dir
        .cmd(&[
            "assert",
            "EST",
            "ottawa",
            "party",
            "--date",
            "2004-05-12",
            "--no-mail",
            "--note",
            "=HYPERLINK(\"http://evil.example\",\"click\")",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let run = |args: &[&str]| {
        let out = dir.cmd(args).output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    let csv = run(&["export", "--format", "csv", "--all"]);
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(
        lines[0],
        "state,state_name,treaty,treaty_name,status,since,expected_effective,sources,manual,evidence,evidence_link,baseline_source,baseline_as_of"
    );
    assert_eq!(lines.len(), 4, "UKR, POL tracked; EST with --all:\n{csv}");
    let ukraine = lines.iter().find(|l| l.starts_with("UKR,")).unwrap();
    assert!(ukraine.starts_with("UKR,Ukraine,ottawa,Ottawa Convention,withdrawal_notified,2025-06-29T12:00:00+00:00,2025-12-29,wire,false,"), "{ukraine}");
    assert!(
        ukraine.ends_with(&format!(",{NOTICE},{NOTICE_LINK},,")),
        "evidence, link, no baseline: {ukraine}"
    );
    let estonia = lines.iter().find(|l| l.starts_with("EST,")).unwrap();
    assert!(
        estonia.contains(",\"'=HYPERLINK(\"\"http://evil.example\"\",\"\"click\"\")\","),
        "a formula is defused and quoted: {estonia}"
    );
    let before = run(&["export", "--format", "csv", "--as-of", "2025-06-15"]);
    assert!(
        before.contains("UKR,Ukraine,ottawa,Ottawa Convention,withdrawal_announced,"),
        "{before}"
    );

    let json = run(&["export", "--format", "json"]);
    let status = run(&["status", "--json"]);
    let status_lines: Vec<&str> = status
        .lines()
        .filter(|l| l.contains("\"status\":"))
        .collect();
    assert_eq!(json.lines().collect::<Vec<_>>(), status_lines);
    let bad = dir
        .cmd(&["export", "--format", "csv", "--as-of", "soon"])
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(2));
}

/// With a mailbox, the board and the history pages say which stage the
/// depositary's notice confirmed, in the words `status` uses.
#[test]
fn the_board_and_history_say_what_the_depositary_confirmed() {
    let dir = ConfigDir::new(&format!(
        "{MINIMAL}\n[web]\nlisten = \"127.0.0.1:0\"\n\n[[mailbox]]\nid = \"un-depositary\"\nmaildir = \"mail/un\"\n"
    ));
    let mut store = Store::open(&dir.db()).expect("open store");
    let reference = "C.N.412.2025.TREATIES-XXVI.5";
    let mut notice = detection(
        "UKR",
        "ottawa",
        Action::WithdrawalNotified,
        "un-depositary",
        &format!("depositary:{reference}"),
        at(2025, 6, 27),
    );
    if let EventBody::Detection(d) = &mut notice.body {
        d.rule = "depositary:XXVI-5".into();
        d.authoritative = true;
        // Not the six months' arithmetic (27 December): the notice's word wins.
        d.takes_effect = Some(chrono::NaiveDate::from_ymd_opt(2026, 1, 2).unwrap());
    }
    for event in [
        detection(
            "UKR",
            "ottawa",
            Action::WithdrawalNotified,
            "wire",
            "ukr",
            at(2025, 6, 29),
        ),
        detection(
            "POL",
            "ottawa",
            Action::WithdrawalNotified,
            "wire",
            "pol",
            at(2025, 6, 29),
        ),
        notice,
    ] {
        append(&mut store, &[event]);
    }
    drop(store);
    let served = Served::start(&dir, &[], &[]);
    let client = Client::new();
    let confirmed = format!("confirmed by {reference} on 2025-06-27");

    let ukr = client.get(&served.url("/state/UKR/ottawa"));
    assert_eq!(ukr.status, 200);
    assert!(
        ukr.body.contains(&format!(
            "<p class=\"depositary\">Depositary: {confirmed}</p>"
        )),
        "{}",
        ukr.body
    );
    // The news's own status change says it too: the notice confirmed it.
    assert!(
        ukr.body.contains(&format!(
            "<div class=\"depositary\">Depositary: {confirmed}</div>"
        )),
        "{}",
        ukr.body
    );
    let pol = client.get(&served.url("/state/POL/ottawa"));
    assert!(
        pol.body
            .contains("<p class=\"depositary\">Depositary: news only, not yet confirmed</p>"),
        "{}",
        pol.body
    );
    let board = client.get(&served.url("/"));
    assert!(
        board.body.contains(&format!("; {confirmed}")),
        "{}",
        board.body
    );
    assert!(
        board.body.contains("; news only, not yet confirmed"),
        "{}",
        board.body
    );
    assert!(
        board.body.contains("<small>confirmed</small>"),
        "{}",
        board.body
    );
    // Every output gives the effective date the notice states.
    assert!(
        board.body.contains("effective 2026-01-02 unless at war"),
        "{}",
        board.body
    );
    assert!(ukr.body.contains("2026-01-02"), "{}", ukr.body);
    let ics = client.get(&served.url("/effective.ics"));
    assert!(
        ics.body.contains("DTSTART;VALUE=DATE:20260102"),
        "{}",
        ics.body
    );
    let status = dir.cmd(&["status"]).output().unwrap();
    let status = String::from_utf8_lossy(&status.stdout);
    assert!(
        status.contains("(effective 2026-01-02 unless at war)"),
        "{status}"
    );
}

//! Web outputs benchmark: the release binary's `serve` over a database of
//! 10,000 detections and 1,000 status rows (100 states × 10 treaties, the
//! shipped gazetteer and catalogue), requested over loopback with
//! keep-alive, one request at a time. Prints per-request times for the
//! board and the other outputs next to a ceiling measured in the same run:
//! a 404, which is the server's fixed cost (HTTP, routing, headers) without
//! a page. Then the idle daemon's memory with the web server on and off.
//!
//! Run: `cargo bench --bench web`

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use treatywatch::domain::{Action, Detection, EventBody, Evidence, NewEvent, Policy};
use treatywatch::store::Store;

const STATES: usize = 100;
const TREATIES: usize = 10;
const EVENTS_PER_KEY: usize = 10;
const WARMUP: usize = 20;
const ROUNDS: usize = 200;
/// The goal for the board.
const GOAL_MS: f64 = 20.0;

fn shipped(name: &str) -> String {
    format!("{}/config/{name}", env!("CARGO_MANIFEST_DIR"))
}

fn write_config(dir: &Path, states: &[String], treaties: &[String], web: &str) {
    let list = |v: &[String]| {
        v.iter()
            .map(|s| format!("\"{s}\""))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let toml = format!(
        "[data]\nstates = \"{}\"\ntreaties = \"{}\"\nrules = \"{}\"\n\n[tracking]\nstates = [{}]\ntreaties = [{}]\n\n{web}\n[[feed]]\nid = \"wire\"\nurl = \"https://news.example.org/rss\"\nenabled = false\n",
        shipped("states.toml"),
        shipped("treaties.toml"),
        shipped("rules.toml"),
        list(states),
        list(treaties)
    );
    std::fs::write(dir.join("feeds.toml"), toml).expect("write config");
}

/// The log: for each key, ten reports from the news moving it along.
fn populate(db: &Path, states: &[String], treaties: &[String]) -> usize {
    const STORY: [Action; EVENTS_PER_KEY] = [
        Action::Signed,
        Action::Ratified,
        Action::Ratified,
        Action::Ratified,
        Action::WithdrawalAnnounced,
        Action::WithdrawalAnnounced,
        Action::WithdrawalApproved,
        Action::WithdrawalApproved,
        Action::WithdrawalNotified,
        Action::WithdrawalNotified,
    ];
    let mut store = Store::open(db).expect("open store");
    let start = chrono::DateTime::parse_from_rfc3339("2020-01-01T12:00:00Z")
        .expect("date")
        .with_timezone(&chrono::Utc);
    let mut events = Vec::new();
    for (i, s) in states.iter().enumerate() {
        for (j, t) in treaties.iter().enumerate() {
            let key = i * treaties.len() + j;
            // Keys stop at different stages, so the board has every colour.
            let steps = 1 + key % EVENTS_PER_KEY;
            for (n, action) in STORY.iter().cycle().take(EVENTS_PER_KEY).enumerate() {
                let action = if n < steps { *action } else { STORY[0] };
                events.push(NewEvent {
                    occurred_at: start + chrono::Duration::days((key * 3 + n) as i64 % 2000),
                    body: EventBody::Detection(Detection {
                        state: s.clone(),
                        treaty: t.clone(),
                        action,
                        rule: "bench".into(),
                        rules_version: "bench".into(),
                        source: format!("feed-{}", n % 3),
                        item_key: format!("item-{key}-{n}"),
                        evidence: Evidence {
                            sentence: format!("{s} took a step on {t}: report {n} of a long and detailed story about the treaty, its parliament's vote and the deposit of the instrument with the depositary."),
                            link: Some(format!("https://news.example.org/{key}/{n}")),
                            title: Some(format!("Story {n} about {s} and {t}")),
                        },
                        authoritative: false,
                        backfill: false,
                        revives: None,
                        takes_effect: None,
                    }),
                });
            }
        }
    }
    // One append (one transaction): each key is folded once, so it gets
    // one status change.
    store
        .append(&events, &Policy::default(), chrono::Utc::now())
        .expect("append");
    store.projection().expect("projection").len()
}

struct Served(Child, String);

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn serve(config: &Path) -> Served {
    let mut child = Command::new(env!("CARGO_BIN_EXE_treatywatch"))
        .args([
            "--config",
            &config.to_string_lossy(),
            "serve",
            "--listen",
            "127.0.0.1:0",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start serve");
    let mut line = String::new();
    BufReader::new(child.stdout.take().expect("stdout"))
        .read_line(&mut line)
        .expect("address line");
    let base = line
        .split_whitespace()
        .find(|w| w.starts_with("http://"))
        .expect("serve prints its address")
        .trim_end_matches('/')
        .to_string();
    Served(child, base)
}

/// Times `ROUNDS` sequential GETs of `path`: (mean ms, p50, p95, bytes).
fn time(
    rt: &tokio::runtime::Runtime,
    client: &reqwest::Client,
    base: &str,
    path: &str,
    expect: u16,
) -> (f64, f64, f64, usize) {
    let url = format!("{base}{path}");
    rt.block_on(async {
        let mut bytes = 0;
        let mut samples = Vec::with_capacity(ROUNDS);
        for round in 0..WARMUP + ROUNDS {
            let started = Instant::now();
            let resp = client.get(&url).send().await.expect("request");
            assert_eq!(resp.status().as_u16(), expect, "{url}");
            let body = resp.bytes().await.expect("body");
            if round >= WARMUP {
                samples.push(started.elapsed().as_secs_f64() * 1e3);
            }
            bytes = body.len();
        }
        samples.sort_by(|a, b| a.total_cmp(b));
        let mean = samples.iter().sum::<f64>() / samples.len() as f64;
        (
            mean,
            samples[samples.len() / 2],
            samples[samples.len() * 95 / 100],
            bytes,
        )
    })
}

/// VmRSS of a process, in kB.
fn rss_kb(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|n| n.parse().ok())
        })
        .unwrap_or(0)
}

/// The idle daemon's RSS after `settle`, optionally after `requests` to its
/// web server (the board, the feeds, the API).
fn idle_daemon(
    config: &Path,
    web_port: Option<u16>,
    rt: &tokio::runtime::Runtime,
    client: &reqwest::Client,
) -> u64 {
    let child = Command::new(env!("CARGO_BIN_EXE_treatywatch"))
        .args(["--config", &config.to_string_lossy(), "run"])
        .env("RUST_LOG", "warn")
        .env_remove("NOTIFY_SOCKET")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start run");
    let child = Served(child, String::new());
    std::thread::sleep(Duration::from_secs(3));
    if let Some(port) = web_port {
        rt.block_on(async {
            for path in [
                "/",
                "/changes.atom",
                "/api/status",
                "/feeds",
                "/effective.ics",
            ] {
                for _ in 0..20 {
                    let url = format!("http://127.0.0.1:{port}{path}");
                    let resp = client.get(&url).send().await.expect("daemon's web server");
                    let _ = resp.bytes().await;
                }
            }
        });
    }
    std::thread::sleep(Duration::from_secs(5));
    rss_kb(child.0.id())
}

fn main() {
    let dir = tempfile::tempdir().expect("dir");
    write_config(dir.path(), &["UKR".into()], &["ottawa".into()], "");
    let config_path = dir.path().join("feeds.toml");
    let config = treatywatch::config::load(&config_path).expect("config");
    let states: Vec<String> = config
        .gazetteer
        .states
        .iter()
        .take(STATES)
        .map(|s| s.code.clone())
        .collect();
    let treaties: Vec<String> = config
        .treaties
        .list
        .iter()
        .take(TREATIES)
        .map(|t| t.id.clone())
        .collect();
    write_config(dir.path(), &states, &treaties, "");
    let db = config.db_path.clone();
    let built = Instant::now();
    let rows = populate(&db, &states, &treaties);
    let events = Store::open_read_only(&db)
        .expect("read")
        .last_seq()
        .expect("seq");
    println!(
        "web: {} states × {} treaties, {} events ({} detections), {rows} status rows, built in {:.1} s",
        states.len(),
        treaties.len(),
        events,
        states.len() * treaties.len() * EVENTS_PER_KEY,
        built.elapsed().as_secs_f64()
    );

    let served = serve(&config_path);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let client = reqwest::Client::new();
    println!(
        "  {ROUNDS} sequential keep-alive GETs each, after {WARMUP} to warm up (ms per request):"
    );
    let cases: [(&str, &str, u16); 7] = [
        ("ceiling: a 404 (no page, no database)", "/nope", 404),
        ("board /", "/", 200),
        (
            "board /?as_of=2022-01-01 (fold of the log)",
            "/?as_of=2022-01-01",
            200,
        ),
        ("history /state/AFG/<treaty>", "", 200),
        ("Atom /changes.atom", "/changes.atom", 200),
        ("JSON /api/status", "/api/status", 200),
        ("calendar /effective.ics", "/effective.ics", 200),
    ];
    let mut ceiling = 0.0;
    for (what, path, status) in cases {
        let path = if path.is_empty() {
            format!("/state/{}/{}", states[0], treaties[0])
        } else {
            path.to_string()
        };
        let (mean, p50, p95, bytes) = time(&rt, &client, &served.1, &path, status);
        if status == 404 {
            ceiling = mean;
        }
        let verdict = if path == "/" {
            format!(
                "   goal < {GOAL_MS:.0} ms: {}",
                if p95 < GOAL_MS { "met" } else { "NOT met" }
            )
        } else {
            String::new()
        };
        println!(
            "  {what:<46} mean {mean:6.2}  p50 {p50:6.2}  p95 {p95:6.2}  ({:.1}× the ceiling, {:>7} bytes){verdict}",
            mean / ceiling.max(1e-9),
            bytes
        );
    }
    drop(served);

    // Memory: the idle daemon with and without the web server.
    let off = idle_daemon(&config_path, None, &rt, &client);
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("port")
        .local_addr()
        .expect("addr")
        .port();
    write_config(
        dir.path(),
        &states,
        &treaties,
        &format!("[web]\nlisten = \"127.0.0.1:{port}\"\n"),
    );
    let on = idle_daemon(&config_path, Some(port), &rt, &client);
    println!(
        "  idle daemon RSS: web off {:.1} MB, web on after 100 requests {:.1} MB: +{:.1} MB (goal < 5 MB)",
        off as f64 / 1024.0,
        on as f64 / 1024.0,
        (on as f64 - off as f64) / 1024.0
    );
}

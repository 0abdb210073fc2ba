//! Poll-cycle benchmark: 1,000 feeds × 20 items served from loopback, one
//! full cycle through the real binary, then a second where every feed
//! answers 304, then a "touched" one where every feed answers 200 with a
//! new ETag but nothing new (each item is only looked up as seen). Prints
//! wall time, items/s and the child's peak RSS, each next to its ceiling,
//! measured just before it over the same server: a raw HTTP client (reqwest,
//! 32 requests in flight, on two tokio workers) fetching every feed's bytes
//! in the same shape (200s, or 304s to conditional requests), and the ratio.
//! With `strace` on PATH, the `pread64` calls of one more touched cycle (run
//! under strace, untimed).
//!
//! Run: `cargo bench --bench poll`; `POLL_BENCH_FEEDS=10000` for the
//! 10,000-feed variant (about a minute more, and ~1.5 GB for the server's
//! copies of the feeds); `TREATYWATCH_BENCH_BIN=path` runs that binary
//! instead of this build's.

#[path = "../tests/it/feed_server.rs"]
#[allow(dead_code)]
mod feed_server;

use std::fmt::Write as _;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use feed_server::{FeedServer, Reply};

const FEEDS: usize = 1_000;
const ITEMS: usize = 20;
/// Requests the ceiling's client keeps in flight.
const CEILING_IN_FLIGHT: usize = 32;

/// A deterministic feed of `ITEMS` news-like items, about 2.8 KB each (the
/// size of the issue-17 measurements: an `items` row then spills to an
/// overflow page).
fn feed(n: usize) -> String {
    const STATES: [&str; 6] = [
        "Ukraine",
        "Poland",
        "Finland",
        "Estonia",
        "Latvia",
        "Lithuania",
    ];
    let mut xml = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?><rss version=\"2.0\"><channel><title>Feed {n}</title><link>https://f{n}.example.org/</link><description>bench</description>"
    );
    for i in 0..ITEMS {
        let state = STATES[(n + i) % STATES.len()];
        let body = if i % 5 == 0 {
            format!(
                "{state}'s parliament voted on Thursday to withdraw from the Ottawa Convention banning anti-personnel mines. The government said the decision reflects the security situation in the region. Opposition lawmakers criticised the move, saying it would damage the country's reputation. "
            )
        } else {
            format!(
                "Officials in {state} met counterparts from neighbouring countries to discuss trade, energy prices and infrastructure funding for the coming year. The talks covered rail links, grid connections and a new port terminal. Ministers said further meetings would follow in the autumn, and that a joint statement was expected. "
            )
        };
        let _ = write!(
            xml,
            "<item><title>Story {i} from feed {n} about {state}</title><link>https://f{n}.example.org/{i}</link><guid>https://f{n}.example.org/{i}</guid><pubDate>{}</pubDate><description>{}</description></item>",
            chrono::Utc::now().to_rfc2822(),
            body.repeat(9)
        );
    }
    xml.push_str("</channel></rss>");
    xml
}

/// Runs the binary, sampling its peak resident set (VmHWM) until it exits.
fn run(config: &std::path::Path) -> (Duration, u64, String) {
    run_under(config, &[])
}

/// As `run`, with `wrapper` (a program and its arguments) in front.
fn run_under(config: &std::path::Path, wrapper: &[&str]) -> (Duration, u64, String) {
    // The summary goes to a file: a pipe nobody reads until the end would
    // fill up and stall the child.
    let out_path = config.with_file_name("poll-output.txt");
    let config = config.to_path_buf();
    let out_file = std::fs::File::create(&out_path).expect("output file");
    let start = Instant::now();
    // TREATYWATCH_BENCH_BIN runs another build (a copy of an earlier one)
    // over the same feeds, to compare two.
    let binary = std::env::var("TREATYWATCH_BENCH_BIN")
        .unwrap_or_else(|_| env!("CARGO_BIN_EXE_treatywatch").to_string());
    let config = config.to_string_lossy();
    let mut argv: Vec<&str> = wrapper.to_vec();
    argv.extend([binary.as_str(), "--config", &config, "poll"]);
    let mut child = Command::new(argv[0])
        .args(&argv[1..])
        .stdout(out_file)
        .stderr(Stdio::null())
        .spawn()
        .expect("start treatywatch");
    let status_file = format!("/proc/{}/status", child.id());
    let mut peak_kb = 0;
    loop {
        let peak = std::fs::read_to_string(&status_file)
            .ok()
            .and_then(|status| {
                let line = status.lines().find_map(|l| l.strip_prefix("VmHWM:"))?;
                line.trim().trim_end_matches(" kB").parse::<u64>().ok()
            });
        peak_kb = peak_kb.max(peak.unwrap_or(0));
        if child.try_wait().expect("wait").is_some() {
            break;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    let wall = start.elapsed();
    let output = std::fs::read(&out_path).expect("output");
    let total = String::from_utf8_lossy(&output)
        .lines()
        .find(|l| l.starts_with("total:"))
        .unwrap_or_default()
        .to_string();
    (wall, peak_kb, total)
}

/// The ceiling: every url fetched whole by a raw concurrent client, each
/// with its `If-None-Match` when `etags` are given (the 304 shape). The
/// wall time, and the body bytes read.
fn ceiling(urls: &[String], etags: Option<&[String]>) -> (Duration, usize) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(CEILING_IN_FLIGHT)
        .build()
        .expect("client");
    let start = Instant::now();
    let bytes = rt.block_on(async {
        let permits = std::sync::Arc::new(tokio::sync::Semaphore::new(CEILING_IN_FLIGHT));
        let mut tasks = tokio::task::JoinSet::new();
        for (n, url) in urls.iter().enumerate() {
            let mut request = client.get(url);
            if let Some(etags) = etags {
                request = request.header("If-None-Match", &etags[n]);
            }
            let permit = permits.clone().acquire_owned().await.expect("permit");
            tasks.spawn(async move {
                let response = request.send().await.expect("ceiling request");
                let body = response.bytes().await.expect("ceiling body");
                drop(permit);
                body.len()
            });
        }
        let mut bytes = 0;
        while let Some(n) = tasks.join_next().await {
            bytes += n.expect("ceiling task");
        }
        bytes
    });
    (start.elapsed(), bytes)
}

fn main() {
    let feed_count: usize = std::env::var("POLL_BENCH_FEEDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(FEEDS);
    let server = FeedServer::start();
    let dir = tempfile::tempdir().expect("dir");
    let shipped = concat!(env!("CARGO_MANIFEST_DIR"), "/config");
    for entry in std::fs::read_dir(shipped).expect("config").flatten() {
        // Data files only: folders (`membership/`) are not in this config.
        if entry.file_name() != "feeds.toml" && entry.path().is_file() {
            std::fs::copy(entry.path(), dir.path().join(entry.file_name())).expect("copy");
        }
    }
    // The 1,000 feeds stand for 1,000 publishers, though one loopback
    // server serves them all: the per-host limit is lifted to the overall
    // one so the figures stay comparable with earlier runs.
    let mut toml = String::from(
        "[tracking]\nstates = [\"UKR\", \"POL\", \"FIN\", \"EST\", \"LVA\", \"LTU\"]\ntreaties = [\"ottawa\"]\n\n[fetch]\nper_host = 8\n",
    );
    let feeds: Vec<String> = (0..feed_count).map(feed).collect();
    let urls: Vec<String> = (0..feed_count)
        .map(|n| server.url(&format!("/f{n}.xml")))
        .collect();
    let etag = |n: usize, version: u32| format!("\"{n}-v{version}\"");
    // Every feed serves the same items under a new ETag: a 200 with
    // nothing new, so each item is only looked up as seen.
    let touch = |version: u32| {
        for (n, body) in feeds.iter().enumerate() {
            server.set(
                &format!("/f{n}.xml"),
                Reply::feed(body.clone(), "application/rss+xml").with_etag(&etag(n, version)),
            );
        }
    };
    touch(1);
    for (n, url) in urls.iter().enumerate() {
        let _ = write!(toml, "\n[[feed]]\nid = \"f{n}\"\nurl = \"{url}\"\n");
    }
    let config = dir.path().join("feeds.toml");
    std::fs::write(&config, toml).expect("write config");

    println!(
        "poll cycle: {feed_count} feeds × {ITEMS} items from 127.0.0.1; ceiling: a raw client, {CEILING_IN_FLIGHT} requests in flight"
    );
    for (label, items, version, conditional) in [
        ("first cycle (200)", feed_count * ITEMS, None, None),
        ("second cycle (304)", 0, None, Some(1)),
        ("touched (200, same)", feed_count * ITEMS, Some(2), None),
    ] {
        if let Some(version) = version {
            touch(version);
        }
        let etags: Option<Vec<String>> =
            conditional.map(|v| (0..feed_count).map(|n| etag(n, v)).collect());
        let (ceiling_wall, ceiling_bytes) = ceiling(&urls, etags.as_deref());
        let (wall, peak_kb, total) = run(&config);
        let rate = if items > 0 {
            format!("{:.0} items/s", items as f64 / wall.as_secs_f64())
        } else {
            "no items".into()
        };
        println!(
            "  {label:<20} wall {:>7.3} s   {rate:>14}   peak RSS {:>6.1} MB   ceiling {:>6.3} s ({:.1} MB read)   ratio {:.2}×",
            wall.as_secs_f64(),
            peak_kb as f64 / 1024.0,
            ceiling_wall.as_secs_f64(),
            ceiling_bytes as f64 / 1e6,
            wall.as_secs_f64() / ceiling_wall.as_secs_f64()
        );
        println!("  {:<20} {total}", "");
    }
    let strace_out = dir.path().join("strace.txt");
    let strace_out = strace_out.to_string_lossy();
    let traced = Command::new("strace")
        .arg("-V")
        .output()
        .is_ok_and(|o| o.status.success());
    if traced {
        touch(3);
        run_under(
            &config,
            &[
                "strace",
                "-f",
                "-c",
                "-e",
                "trace=pread64",
                "-o",
                &strace_out,
            ],
        );
        let summary = std::fs::read_to_string(&*strace_out).unwrap_or_default();
        // strace -c's table: "% time seconds usecs/call calls errors syscall".
        let calls = summary
            .lines()
            .find(|l| l.trim_end().ends_with(" pread64"))
            .and_then(|l| l.split_whitespace().nth(3))
            .unwrap_or("0");
        println!(
            "  {:<20} {calls} pread64 calls ({:.2} per item)",
            "touched, strace",
            calls.parse::<f64>().unwrap_or(0.0) / (feed_count * ITEMS) as f64
        );
    }
}

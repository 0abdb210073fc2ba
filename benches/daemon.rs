//! Daemon benchmark: `treatywatch run` (release build) over 1,000 feeds ×
//! 20 items served from loopback — wall time and items/s of its first full
//! cycle, peak RSS — then its resident memory and CPU use while idle.
//!
//! Run: `cargo bench --bench daemon` (IDLE_SECS=60 by default).

#[path = "../tests/it/feed_server.rs"]
#[allow(dead_code)]
mod feed_server;

use std::fmt::Write as _;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use feed_server::{FeedServer, Reply};

const FEEDS: usize = 1_000;
const ITEMS: usize = 20;

fn feed(n: usize) -> String {
    let mut xml = format!(
        "<rss version=\"2.0\"><channel><title>Feed {n}</title><link>https://f{n}.example.org/</link><description>bench</description>"
    );
    for i in 0..ITEMS {
        let _ = write!(
            xml,
            "<item><title>Story {i} of feed {n}</title><link>https://f{n}.example.org/{i}</link><guid>https://f{n}.example.org/{i}</guid><pubDate>{}</pubDate><description>{}</description></item>",
            chrono::Utc::now().to_rfc2822(),
            "Ministers met to discuss trade, energy and rail links; officials said talks would continue in the autumn. ".repeat(8)
        );
    }
    xml.push_str("</channel></rss>");
    xml
}

/// (VmRSS kB, VmHWM kB, utime+stime clock ticks) of a process.
fn sample(pid: u32) -> Option<(u64, u64, u64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let kb = |key: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|v| v.trim().trim_end_matches(" kB").parse::<u64>().ok())
    };
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which may contain spaces) start at ')'.
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let ticks = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    Some((kb("VmRSS:")?, kb("VmHWM:")?, ticks))
}

fn main() {
    let idle_secs: u64 = std::env::var("IDLE_SECS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(60);
    let server = FeedServer::start();
    let dir = tempfile::tempdir().expect("dir");
    for entry in std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/config"))
        .expect("config")
        .flatten()
    {
        if entry.file_name() != "feeds.toml" {
            std::fs::copy(entry.path(), dir.path().join(entry.file_name())).expect("copy");
        }
    }
    // One loopback server stands for 1,000 publishers: the per-host limit
    // is lifted to the overall one, as in benches/poll.rs.
    let mut toml = String::from(
        "[tracking]\nstates = [\"UKR\"]\ntreaties = [\"ottawa\"]\n\n[fetch]\nper_host = 8\n",
    );
    for n in 0..FEEDS {
        let path = format!("/f{n}.xml");
        server.set(
            &path,
            Reply::feed(feed(n), "application/rss+xml").with_etag("\"v1\""),
        );
        let _ = write!(
            toml,
            "\n[[feed]]\nid = \"f{n}\"\nurl = \"{}\"\ninterval = \"1h\"\n",
            server.url(&path)
        );
    }
    let config = dir.path().join("feeds.toml");
    std::fs::write(&config, toml).expect("config");
    let db = dir.path().join("data/treatywatch.db");

    let start = Instant::now();
    let mut child = Command::new(env!("CARGO_BIN_EXE_treatywatch"))
        .args(["--config", &config.to_string_lossy(), "run"])
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start daemon");
    let pid = child.id();
    let mut peak = 0;
    // The cycle is done when every item is stored.
    loop {
        if let Some((_, hwm, _)) = sample(pid) {
            peak = peak.max(hwm);
        }
        let stored =
            rusqlite::Connection::open_with_flags(&db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
                .ok()
                .and_then(|c| {
                    c.query_row("SELECT count(*) FROM items", [], |r| r.get::<_, i64>(0))
                        .ok()
                })
                .unwrap_or(0);
        if stored as usize >= FEEDS * ITEMS {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(300),
            "the cycle did not finish"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let wall = start.elapsed().as_secs_f64();
    println!("daemon: {FEEDS} feeds × {ITEMS} items from 127.0.0.1");
    println!(
        "  first cycle (start to last item stored)  wall {wall:.2} s   {:.0} items/s   peak RSS {:.1} MB",
        (FEEDS * ITEMS) as f64 / wall,
        peak as f64 / 1024.0
    );

    // Idle: every feed is polled, none is due for an hour.
    std::thread::sleep(Duration::from_secs(2));
    let (_, _, ticks_before) = sample(pid).expect("sample");
    let mut rss_max = 0;
    let idle_start = Instant::now();
    while idle_start.elapsed() < Duration::from_secs(idle_secs) {
        if let Some((rss, _, _)) = sample(pid) {
            rss_max = rss_max.max(rss);
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    let (rss, _, ticks_after) = sample(pid).expect("sample");
    let clk_tck = 100.0; // USER_HZ on Linux
    let cpu =
        (ticks_after - ticks_before) as f64 / clk_tck / idle_start.elapsed().as_secs_f64() * 100.0;
    println!(
        "  idle for {idle_secs} s                       RSS {:.1} MB (max {:.1} MB)   CPU {cpu:.2} %",
        rss as f64 / 1024.0,
        rss_max as f64 / 1024.0
    );
    let _ = Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status();
    let _ = child.wait();
}

//! Daemon benchmark: `treatywatch run` (release build) over 1,000 feeds ×
//! 20 items served from loopback — wall time and items/s of its first full
//! cycle, peak RSS — then its resident memory and CPU use while idle, and
//! where that memory is (from /proc/PID/smaps: anonymous and file-backed,
//! by kind of mapping, and the largest mappings).
//!
//! Run: `cargo bench --bench daemon` (IDLE_SECS=60 by default);
//! `TREATYWATCH_BENCH_BIN=path` runs that binary instead of this build's.

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

/// What one kind of mapping holds, in kB of RSS.
#[derive(Default)]
struct Share {
    rss: u64,
    anonymous: u64,
}

/// The idle process's resident memory by kind of mapping, read from
/// /proc/PID/smaps. glibc 2.36 does not name its mappings, so the kinds
/// of the unnamed anonymous ones are told by their neighbours: a thread
/// stack sits just above its guard page (`---p`), a malloc arena (a 64 MB
/// aligned heap) just below the reserved rest of its heap (`---p`).
struct Breakdown {
    total: Share,
    /// (kind, share) in a fixed order, for one line of figures.
    kinds: Vec<(&'static str, Share)>,
    /// The largest mappings: (kB RSS, kB anonymous, kind, what).
    largest: Vec<(u64, u64, &'static str, String)>,
}

fn breakdown(pid: u32) -> Option<Breakdown> {
    let smaps = std::fs::read_to_string(format!("/proc/{pid}/smaps")).ok()?;
    let exe = std::fs::read_link(format!("/proc/{pid}/exe")).ok()?;
    struct Map {
        start: u64,
        end: u64,
        perms: String,
        path: String,
        rss: u64,
        anonymous: u64,
    }
    let mut maps: Vec<Map> = Vec::new();
    for line in smaps.lines() {
        let mut words = line.split_whitespace();
        let first = words.next().unwrap_or_default();
        if let Some((start, end)) = first.split_once('-')
            && let (Ok(start), Ok(end)) =
                (u64::from_str_radix(start, 16), u64::from_str_radix(end, 16))
        {
            let perms = words.next().unwrap_or_default().to_string();
            let path = words.skip(3).collect::<Vec<_>>().join(" ");
            maps.push(Map {
                start,
                end,
                perms,
                path,
                rss: 0,
                anonymous: 0,
            });
            continue;
        }
        let mut kb = || {
            words
                .next()
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(0)
        };
        if let Some(map) = maps.last_mut() {
            match first {
                "Rss:" => map.rss = kb(),
                "Anonymous:" => map.anonymous = kb(),
                _ => {}
            }
        }
    }
    const ORDER: [&str; 8] = [
        "malloc heap",
        "malloc arenas",
        "thread stacks",
        "other anonymous",
        "binary (file)",
        "binary (anonymous)",
        "libraries",
        "other",
    ];
    let mut kinds: Vec<(&'static str, Share)> =
        ORDER.iter().map(|k| (*k, Share::default())).collect();
    let mut total = Share::default();
    let mut largest = Vec::new();
    for (i, map) in maps.iter().enumerate() {
        let guard_below = i > 0 && maps[i - 1].end == map.start && maps[i - 1].perms == "---p";
        let reserve_above = maps
            .get(i + 1)
            .is_some_and(|m| m.start == map.end && m.perms == "---p");
        let kind = if map.path == "[heap]" {
            "malloc heap"
        } else if map.path == "[stack]" {
            "thread stacks"
        } else if std::path::Path::new(&map.path) == exe {
            if map.anonymous > 0 {
                "binary (anonymous)"
            } else {
                "binary (file)"
            }
        } else if map.path.starts_with('/') {
            "libraries"
        } else if !map.path.is_empty() {
            "other"
        } else if guard_below {
            "thread stacks"
        } else if reserve_above && map.start % (64 << 20) == 0 {
            "malloc arenas"
        } else {
            "other anonymous"
        };
        let share = &mut kinds.iter_mut().find(|(k, _)| *k == kind)?.1;
        share.rss += map.rss;
        share.anonymous += map.anonymous;
        total.rss += map.rss;
        total.anonymous += map.anonymous;
        if map.rss > 0 {
            let what = if map.path.is_empty() {
                format!("{:x}-{:x} {}", map.start, map.end, map.perms)
            } else {
                format!(
                    "{} {}",
                    map.path.rsplit('/').next().unwrap_or_default(),
                    map.perms
                )
            };
            largest.push((map.rss, map.anonymous, kind, what));
        }
    }
    largest.sort_by_key(|b| std::cmp::Reverse(b.0));
    largest.truncate(8);
    Some(Breakdown {
        total,
        kinds,
        largest,
    })
}

fn mb(kb: u64) -> f64 {
    kb as f64 / 1024.0
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
        // Data files only: folders (`membership/`) are not in this config.
        if entry.file_name() != "feeds.toml" && entry.path().is_file() {
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
    // TREATYWATCH_BENCH_BIN runs another build (a copy of an earlier one).
    let binary = std::env::var("TREATYWATCH_BENCH_BIN")
        .unwrap_or_else(|_| env!("CARGO_BIN_EXE_treatywatch").to_string());
    let mut child = Command::new(binary)
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
    if let Some(b) = breakdown(pid) {
        println!(
            "  idle RSS by mapping (smaps)              {:.1} MB: anonymous {:.1} MB, file-backed {:.1} MB",
            mb(b.total.rss),
            mb(b.total.anonymous),
            mb(b.total.rss - b.total.anonymous)
        );
        let kinds: Vec<String> = b
            .kinds
            .iter()
            .filter(|(_, s)| s.rss > 0)
            .map(|(k, s)| format!("{k} {:.1}", mb(s.rss)))
            .collect();
        println!("    by kind (MB): {}", kinds.join(", "));
        for (rss, anonymous, kind, what) in &b.largest {
            println!(
                "    {:>6.1} MB ({:>5.1} anonymous)  {kind:<16} {what}",
                mb(*rss),
                mb(*anonymous)
            );
        }
    }
    let _ = Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status();
    let _ = child.wait();
}

//! The Prometheus endpoint of a running daemon, scraped over loopback as
//! Prometheus would: every family has HELP and TYPE, names carry their
//! unit, the per-feed gauges follow a feed that fails and recovers, other
//! paths and methods are refused, and the shipped alert rules name only
//! metrics that exist.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};
use std::process::{Command, Stdio};

use crate::crash::KillOnDrop;
use crate::daemon::{signal, wait_for};
use crate::feed_server::Reply;
use crate::polling::{PollEnv, RSS, fixture};

/// One scrape, parsed.
#[derive(Debug, Default)]
struct Scrape {
    /// Family name → TYPE.
    types: BTreeMap<String, String>,
    helps: BTreeSet<String>,
    /// (sample name with its labels as written, value).
    samples: Vec<(String, f64)>,
}

impl Scrape {
    fn parse(body: &str) -> Scrape {
        let mut s = Scrape::default();
        for line in body.lines() {
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                let (name, kind) = rest.split_once(' ').expect("TYPE name kind");
                s.types.insert(name.to_string(), kind.to_string());
            } else if let Some(rest) = line.strip_prefix("# HELP ") {
                let (name, help) = rest.split_once(' ').expect("HELP name text");
                assert!(!help.trim().is_empty(), "empty HELP for {name}");
                s.helps.insert(name.to_string());
            } else if !line.is_empty() {
                let (sample, value) = line.rsplit_once(' ').expect("sample value");
                let value = value
                    .parse::<f64>()
                    .unwrap_or_else(|_| panic!("{line:?}: value is not a number"));
                s.samples.push((sample.to_string(), value));
            }
        }
        s
    }

    /// The family a sample belongs to (a histogram's `_bucket`, `_sum`
    /// and `_count` belong to the histogram).
    fn family(&self, sample: &str) -> String {
        let name = sample.split('{').next().unwrap_or(sample);
        for suffix in ["_bucket", "_sum", "_count"] {
            if let Some(base) = name.strip_suffix(suffix)
                && self.types.get(base).is_some_and(|t| t == "histogram")
            {
                return base.to_string();
            }
        }
        name.to_string()
    }

    /// The value of the sample written exactly `sample`.
    fn get(&self, sample: &str) -> Option<f64> {
        self.samples
            .iter()
            .find(|(s, _)| s == sample)
            .map(|(_, v)| *v)
    }
}

/// Sends `request` to the metrics address; the raw response.
fn request(port: u16, request: &str) -> Option<String> {
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream.write_all(request.as_bytes()).ok()?;
    let mut text = String::new();
    stream.read_to_string(&mut text).ok()?;
    Some(text)
}

fn scrape(port: u16) -> Option<Scrape> {
    let text = request(port, "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")?;
    let (head, body) = text.split_once("\r\n\r\n")?;
    head.starts_with("HTTP/1.1 200")
        .then(|| Scrape::parse(body))
}

/// Waits for a scrape in which `ready` holds, and returns it.
fn scrape_until(port: u16, what: &str, ready: impl Fn(&Scrape) -> bool) -> Scrape {
    let mut last = None;
    wait_for(what, || {
        last = scrape(port);
        last.as_ref().is_some_and(&ready)
    });
    last.expect("a scrape")
}

const UP: &str = "treatywatch_feed_up{feed=\"first\"}";
const SUCCESS: &str = "treatywatch_feed_last_success_timestamp_seconds{feed=\"first\"}";
const ITEM: &str = "treatywatch_feed_last_item_timestamp_seconds{feed=\"first\"}";
const POLLS: &str = "treatywatch_polls_total";

#[test]
fn metrics_follow_prometheus_conventions_and_a_feed_through_failure() {
    let env = PollEnv::new(&[("first", "/first.xml")]);
    env.server
        .set("/first.xml", Reply::feed(fixture("rss2.xml"), RSS));
    let port = crate::smtp_server::SmtpServer::unused_port();
    let mut config = std::fs::read_to_string(env.config_path()).expect("config");
    config.push_str(&format!("\n[daemon]\nmetrics = \"127.0.0.1:{port}\"\n"));
    std::fs::write(env.config_path(), config).expect("write config");
    let child = KillOnDrop(
        Command::new(assert_cmd::cargo::cargo_bin("treatywatch"))
            .env_remove("TREATYWATCH_CONFIG")
            .env_remove("NOTIFY_SOCKET")
            .arg("--config")
            .arg(env.config_path())
            .arg("run")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start daemon"),
    );

    let first = scrape_until(port, "the first poll in the metrics", |s| {
        s.get(POLLS) == Some(1.0) && s.get(UP).is_some()
    });

    // Conventions: every family typed and explained, counters end in
    // _total, the build is described by an _info gauge of 1, no gauge of
    // a duration that reads 0 before anything happened.
    for (sample, _) in &first.samples {
        let family = first.family(sample);
        let kind = first
            .types
            .get(&family)
            .unwrap_or_else(|| panic!("{sample}: no TYPE for {family}"));
        assert!(first.helps.contains(&family), "{family}: no HELP");
        assert!(family.starts_with("treatywatch_"), "{family}: no prefix");
        if kind == "counter" {
            assert!(family.ends_with("_total"), "counter {family} lacks _total");
        }
    }
    for name in first.types.keys() {
        assert!(
            !name.contains("_ms") && !name.contains("millis") && !name.contains("cycle"),
            "{name}: base units only, and no last-cycle gauge"
        );
    }
    let version = format!(
        "treatywatch_build_info{{version=\"{}\"}}",
        env!("CARGO_PKG_VERSION")
    );
    assert_eq!(first.get(&version), Some(1.0), "{version}");
    assert_eq!(
        first
            .types
            .get("treatywatch_poll_duration_seconds")
            .map(String::as_str),
        Some("histogram")
    );
    assert_eq!(
        first.get("treatywatch_poll_duration_seconds_count"),
        Some(1.0)
    );
    assert_eq!(
        first.get("treatywatch_poll_duration_seconds_bucket{le=\"+Inf\"}"),
        Some(1.0)
    );
    assert!(first.get("treatywatch_poll_duration_seconds_sum").is_some());
    assert_eq!(
        first
            .types
            .get(UP.split('{').next().unwrap())
            .map(String::as_str),
        Some("gauge")
    );
    assert!(
        first.get("treatywatch_delivery_failures_total{reason=\"timeout\"}") == Some(0.0),
        "every delivery failure reason is listed from the start"
    );

    // The feed worked: up, with the time of its success and of its newest
    // item (the fixture's items are dated in the past).
    assert_eq!(first.get(UP), Some(1.0));
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs_f64();
    let success = first.get(SUCCESS).expect("last success");
    assert!(
        success > now - 600.0 && success <= now + 1.0,
        "{success} vs {now}"
    );
    let item = first.get(ITEM).expect("last item");
    assert!(item > 0.0 && item < success, "{item}");
    // The configured 15 minutes, stretched by the fixture's <ttl> of 30.
    let interval = first
        .get("treatywatch_feed_interval_seconds{feed=\"first\"}")
        .expect("interval");
    assert!((1800.0..=1800.0 * 1.1).contains(&interval), "{interval}");

    // The feed breaks: the next poll (SIGUSR1: now) puts it down and keeps
    // its last success where it was.
    env.server.set("/first.xml", Reply::status(500));
    signal(&child.0, "USR1");
    let down = scrape_until(port, "the failed poll in the metrics", |s| {
        s.get(POLLS) == Some(2.0) && s.get(UP) == Some(0.0)
    });
    assert_eq!(down.get(SUCCESS), Some(success), "a failure is no success");
    assert_eq!(
        down.get("treatywatch_feed_failures_total{feed=\"first\"}"),
        Some(1.0)
    );
    assert_eq!(
        down.get("treatywatch_poll_duration_seconds_count"),
        Some(2.0)
    );

    // It recovers: up again, and the last success moves on.
    env.server
        .set("/first.xml", Reply::feed(fixture("rss2.xml"), RSS));
    signal(&child.0, "USR1");
    let up = scrape_until(port, "the recovery in the metrics", |s| {
        s.get(POLLS) == Some(3.0) && s.get(UP) == Some(1.0)
    });
    assert!(up.get(SUCCESS).expect("success") > success);

    // Only GET /metrics is answered.
    let other = request(port, "GET / HTTP/1.1\r\nHost: x\r\n\r\n").expect("answer");
    assert!(other.starts_with("HTTP/1.1 404"), "{other}");
    let post = request(
        port,
        "POST /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n",
    )
    .expect("answer");
    assert!(post.starts_with("HTTP/1.1 405"), "{post}");
    assert!(post.contains("Allow: GET, HEAD"), "{post}");

    // The shipped alert rules use only metrics a scrape has.
    let rules = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/deploy/prometheus/treatywatch-alerts.yml"
    ))
    .expect("alert rules");
    let used = metric_names(&rules);
    assert!(used.len() >= 5, "{used:?}");
    for name in &used {
        assert!(
            up.types.contains_key(name) || up.samples.iter().any(|(s, _)| up.family(s) == *name),
            "the alert rules use {name}, which /metrics does not serve"
        );
    }
    signal(&child.0, "TERM");
}

/// Every `treatywatch_…` identifier in a rules file.
fn metric_names(text: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let mut rest = text;
    while let Some(at) = rest.find("treatywatch_") {
        let tail = &rest[at..];
        let end = tail
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(tail.len());
        names.insert(tail[..end].to_string());
        rest = &tail[end..];
    }
    names
}

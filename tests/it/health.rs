//! Source-health alerts: a feed that starts failing, recovers, goes quiet or
//! publishes again is reported to the desk once per episode, whatever
//! happens around it (more failures, flapping, restarts).
//!
//! Two kinds of test: through the binary against the loopback feed server
//! (`poll` as a user runs it; .eml files as the desk receives them), and
//! through the library with `now` passed in, for everything that depends on
//! time. Nothing sleeps.

use std::path::{Path, PathBuf};

use chrono::{DateTime, TimeDelta, Utc};
use mail_parser::MessageParser;
use serde_json::json;
use treatywatch::classify::Classifier;
use treatywatch::config::{self, Config};
use treatywatch::domain::{Action, EventBody, HealthCondition, NewEvent, Policy, SourceHealth};
use treatywatch::fetch::{CacheHints, FetchError, Fetched, Validators};
use treatywatch::ingest::{self, FeedReport, IngestContext};
use treatywatch::notify::{self, Flush, NotifyReport};
use treatywatch::store::Store;

use crate::feed_server::Reply;
use crate::polling::{PollEnv, RSS};
use crate::support::{ConfigDir, MINIMAL, at, detection, flat};

fn t0() -> DateTime<Utc> {
    at(2025, 6, 29)
}

fn hours(n: i64) -> TimeDelta {
    TimeDelta::hours(n)
}

/// An RSS document with one item per (title, publication date). Titles name
/// no state or treaty, so nothing here is a detection.
fn rss(items: &[(&str, DateTime<Utc>)]) -> String {
    let mut doc =
        String::from("<?xml version=\"1.0\"?><rss version=\"2.0\"><channel><title>Wire</title>");
    for (title, published) in items {
        doc.push_str(&format!(
            "<item><title>{title}</title><guid>https://news.example.org/{}</guid><pubDate>{}</pubDate><description>{title}.</description></item>",
            published.timestamp(),
            published.to_rfc2822()
        ));
    }
    doc.push_str("</channel></rss>");
    doc
}

/// One message as the desk reads it.
#[derive(Debug)]
struct Mail {
    subject: String,
    to: String,
    text: String,
    html: String,
    raw: Vec<u8>,
}

/// Every .eml file in `folder`, in log order (by the first event covered).
fn mailbox(folder: &Path) -> Vec<Mail> {
    let Ok(dir) = std::fs::read_dir(folder) else {
        // Nothing was ever sent: the folder is made on first delivery.
        return Vec::new();
    };
    let mut files: Vec<(i64, PathBuf)> = dir
        .map(|e| e.expect("entry").path())
        .map(|p| (first_seq(&p), p))
        .collect();
    files.sort();
    files
        .into_iter()
        .map(|(_, path)| {
            let raw = std::fs::read(&path).expect("read .eml");
            let m = MessageParser::default()
                .parse(&raw)
                .expect("a valid message");
            Mail {
                // Every subject starts with the filterable prefix; the
                // tests read what follows it.
                subject: m
                    .subject()
                    .and_then(|s| s.strip_prefix("[treatywatch] "))
                    .expect("a subject with the [treatywatch] prefix")
                    .to_string(),
                to: m
                    .to()
                    .and_then(|a| a.first())
                    .and_then(|a| a.address())
                    .unwrap_or_default()
                    .to_string(),
                text: m.body_text(0).map(|t| flat(&t)).unwrap_or_default(),
                html: m.body_html(0).map(|t| t.to_string()).unwrap_or_default(),
                raw: raw.clone(),
            }
        })
        .collect()
}

/// 3 from `digest.3-9.1a2b….eml`.
fn first_seq(path: &Path) -> i64 {
    path.file_name()
        .and_then(|n| n.to_str())
        .and_then(|n| n.strip_prefix("digest."))
        .and_then(|n| n.split('-').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(i64::MAX)
}

fn subjects(mail: &[Mail]) -> Vec<&str> {
    mail.iter().map(|m| m.subject.as_str()).collect()
}

// ---- Through the binary: `poll` against the loopback feed server ----------

const DESK: &str = "\n[notify]\nfrom = \"treatywatch <tw@alerts.example.org>\"\nto = [\"Desk <desk@example.org>\"]\n";

/// A poll environment whose desk receives .eml files in data/digests.
fn desk_env(feeds: &[(&str, &str)], notify: &str) -> PollEnv {
    let env = PollEnv::new(feeds);
    env.write_config_with(feeds, &format!("{DESK}{notify}\n"));
    env
}

fn delivered(env: &PollEnv) -> Vec<Mail> {
    mailbox(&env.dir.path().join("data/digests"))
}

#[test]
fn a_failing_feed_is_announced_once_and_its_recovery_once() {
    let env = desk_env(&[("flaky", "/flaky.xml"), ("steady", "/steady.xml")], "");
    let now = Utc::now();
    let fresh = rss(&[("Weather for the week", now - hours(1))]);
    env.server.set("/flaky.xml", Reply::status(503));
    env.server
        .set("/steady.xml", Reply::feed(fresh.clone(), RSS));

    for _ in 0..4 {
        env.poll();
    }
    assert_eq!(env.health("flaky")["consecutive_failures"], 4);
    assert!(
        delivered(&env).is_empty(),
        "four failures in a row are below the default threshold of five"
    );

    let (_, lines) = env.poll();
    assert!(
        PollEnv::line(&lines, "flaky").contains("source alert recorded: failing"),
        "{lines:#?}"
    );
    let mail = delivered(&env);
    assert_eq!(
        subjects(&mail),
        ["Source failing: flaky (HTTP 503, 5 failures in a row)"]
    );
    assert_eq!(mail[0].to, "desk@example.org");
    for part in [&mail[0].text, &mail[0].html] {
        assert!(
            part.contains("Source failing: flaky")
                && part.contains("HTTP 503 Service Unavailable")
                && part.contains("/flaky.xml"),
            "names the feed, its error and its url:\n{part}"
        );
        assert!(!part.contains("steady"), "the healthy feed is not news");
    }
    assert_eq!(env.health("flaky")["alerted"], json!(["failing"]));

    for _ in 0..3 {
        env.poll();
    }
    assert_eq!(delivered(&env).len(), 1, "more failures say nothing new");

    env.server.set("/flaky.xml", Reply::feed(fresh, RSS));
    let (code, lines) = env.poll();
    assert_eq!(code, Some(0), "{lines:#?}");
    let mail = delivered(&env);
    assert_eq!(
        subjects(&mail)[1..],
        ["Source recovered: flaky (after 8 failures in a row)"]
    );
    assert!(
        mail[1].text.contains("HTTP 503"),
        "recalls the error:\n{}",
        mail[1].text
    );
    assert_eq!(env.health("flaky")["alerted"], json!([]));

    // Later runs of the program (each `poll` is one) repeat nothing.
    env.poll();
    let out = env.run(&["digest", "--send"]);
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("nothing to send"),
        "{out:?}"
    );
    assert_eq!(delivered(&env).len(), 2);
    let recorded: Vec<String> = env
        .events("source_health")
        .iter()
        .map(|e| format!("{} {}", e["feed"], e["condition"]))
        .collect();
    assert_eq!(
        recorded,
        ["\"flaky\" \"failing\"", "\"flaky\" \"recovered\""]
    );
}

#[test]
fn a_burst_of_failing_feeds_is_one_message() {
    let feeds = [("first", "/first.xml"), ("second", "/second.xml")];
    let env = desk_env(&feeds, "alert_after_failures = 1");
    env.server.set("/first.xml", Reply::status(503));
    env.server.set("/second.xml", Reply::status(500));
    env.poll();
    let mail = delivered(&env);
    assert_eq!(mail.len(), 1, "one message for the desk");
    // Which feed comes first depends on which answered first.
    let subject = &mail[0].subject;
    assert!(
        subject.starts_with("Source failing: ")
            && subject.ends_with(" failure in a row) (+1 more)"),
        "{subject}"
    );
    let text = &mail[0].text;
    assert!(
        text.starts_with("treatywatch: 2 source alerts")
            && text.contains("Source failing: first")
            && text.contains("Source failing: second"),
        "{text}"
    );
}

#[test]
fn a_feed_with_only_old_items_is_reported_stale_once_and_fresh_once() {
    let env = desk_env(&[("quiet", "/quiet.xml")], "stale_after = \"7d\"");
    let now = Utc::now();
    let old = now - TimeDelta::days(10);
    env.server
        .set("/quiet.xml", Reply::feed(rss(&[("Weather", old)]), RSS));
    env.poll();
    env.poll();
    let mail = delivered(&env);
    assert_eq!(
        subjects(&mail),
        [format!(
            "Source stale: quiet (nothing published since {})",
            old.format("%Y-%m-%d")
        )]
    );
    assert_eq!(env.health("quiet")["alerted"], json!(["stale"]));

    let newer = rss(&[("Weather", old), ("Election results", now - hours(2))]);
    env.server.set("/quiet.xml", Reply::feed(newer, RSS));
    env.poll();
    env.poll();
    assert_eq!(
        subjects(&delivered(&env))[1..],
        ["Source publishing again: quiet"]
    );
    assert_eq!(env.health("quiet")["alerted"], json!([]));
}

// ---- Through the library, with `now` passed in -----------------------------

/// A config with one feed ("wire"), a desk receiving .eml files, an open
/// store, and the feed's polls played by hand.
struct Watch {
    dir: ConfigDir,
    config: Config,
    store: Store,
    classifier: Classifier,
}

impl Watch {
    /// MINIMAL with `notify` appended to its [notify] table.
    fn new(notify: &str) -> Watch {
        Watch::with_feeds(MINIMAL, notify)
    }

    fn with_feeds(base: &str, notify: &str) -> Watch {
        let feeds = format!(
            "{base}\n[notify]\nfrom = \"treatywatch <tw@alerts.example.org>\"\nto = [\"desk@example.org\"]\ndebounce = \"10m\"\n{notify}\n"
        );
        let dir = ConfigDir::new(&feeds);
        let config = config::load(&dir.feeds()).unwrap_or_else(|e| panic!("config: {e}"));
        let store = Store::open(&config.db_path).expect("open store");
        let classifier = Classifier::new(&config.gazetteer, &config.treaties, &config.rules);
        Watch {
            dir,
            config,
            store,
            classifier,
        }
    }

    fn policy(&self) -> Policy {
        Policy {
            min_sources: self.config.treaties.min_sources(),
        }
    }

    /// Ingests one fetch of the feed at `now`, as `poll` and the daemon do.
    fn poll(&mut self, result: Result<Fetched, FetchError>, now: DateTime<Utc>) -> FeedReport {
        let feed = self.config.feeds[0].clone();
        let stored = self.store.feed_state(&feed.id).expect("feed state");
        let state = ingest::starting_state(stored, &feed);
        let policy = self.policy();
        let ctx = IngestContext {
            settings: &self.config.fetch,
            thresholds: self.config.notify.thresholds,
            policy: &policy,
            classifier: &self.classifier,
            rules_version: &self.config.rules_version,
            now,
            jitter: 0.0,
        };
        ingest::ingest(&mut self.store, &feed, state, result, &ctx).expect("ingest")
    }

    fn fail(&mut self, now: DateTime<Utc>) -> FeedReport {
        self.poll(
            Err(FetchError::Http {
                status: 503,
                retry_after: None,
            }),
            now,
        )
    }

    /// A 200 whose items were published at the given times.
    fn ok(&mut self, items: &[(&str, DateTime<Utc>)], now: DateTime<Utc>) -> FeedReport {
        let fetched = Fetched {
            status: 200,
            body: Some(rss(items).into_bytes()),
            content_type: Some(RSS.into()),
            validators: Validators::default(),
            hints: CacheHints::default(),
            final_url: self.config.feeds[0].url.clone(),
            moved_to: None,
        };
        self.poll(Ok(fetched), now)
    }

    fn send(&mut self, now: DateTime<Utc>) -> NotifyReport {
        notify::run_pending(&mut self.store, &self.config, now, Flush::Now).expect("notify")
    }

    /// A new process: the store is opened afresh from the same file.
    fn restart(&mut self) {
        self.store = Store::open(&self.config.db_path).expect("reopen store");
    }

    fn alerts(&self) -> Vec<SourceHealth> {
        self.store
            .events_after(0, 10_000)
            .expect("log")
            .into_iter()
            .filter_map(|e| match e.body {
                EventBody::SourceHealth(h) => Some(h),
                _ => None,
            })
            .collect()
    }

    fn conditions(&self) -> Vec<HealthCondition> {
        self.alerts().iter().map(|a| a.condition).collect()
    }

    fn mail(&self) -> Vec<Mail> {
        mailbox(&self.dir.dir.path().join("data/digests"))
    }
}

#[test]
fn flapping_around_the_threshold_does_not_storm() {
    use HealthCondition::*;
    let mut w = Watch::new("alert_after_failures = 3");
    let mut now = t0();
    let mut tick = || {
        now += hours(1);
        now
    };
    // Twice just below the threshold, a success between: never mentioned.
    for _ in 0..2 {
        w.fail(tick());
        w.fail(tick());
        let t = tick();
        w.ok(&[("Weather", t)], t);
    }
    assert!(w.alerts().is_empty(), "{:?}", w.alerts());

    // Across it: one alert however long the run, one recovery. Sending after
    // every poll gives the notifier every chance to repeat itself.
    for _ in 0..6 {
        let t = tick();
        w.fail(t);
        w.send(t);
    }
    let t = tick();
    w.ok(&[("Weather", t)], t);
    w.send(t);
    // A second episode is a second pair, hours later: not a storm.
    for _ in 0..3 {
        let t = tick();
        w.fail(t);
        w.send(t);
    }
    let t = tick();
    w.ok(&[("Weather", t)], t);
    w.send(t);
    assert_eq!(w.conditions(), [Failing, Recovered, Failing, Recovered]);
    assert_eq!(
        subjects(&w.mail()),
        [
            "Source failing: wire (HTTP 503, 3 failures in a row)",
            "Source recovered: wire (after 6 failures in a row)",
            "Source failing: wire (HTTP 503, 3 failures in a row)",
            "Source recovered: wire (after 3 failures in a row)",
        ]
    );
}

#[test]
fn a_restart_neither_repeats_nor_loses_an_alert() {
    let mut w = Watch::new("alert_after_failures = 2");
    w.fail(t0());
    let report = w.fail(t0() + hours(1));
    assert_eq!(report.alerts.len(), 1, "{report:?}");
    // The process stops before its notifier runs; the alert is in the log
    // with the feed state that caused it.
    w.restart();
    assert_eq!(
        w.store
            .feed_state("wire")
            .expect("state")
            .map(|s| s.failing_alerted),
        Some(true)
    );
    w.fail(t0() + hours(2));
    assert_eq!(w.alerts().len(), 1, "the stored episode is still open");
    assert_eq!(w.send(t0() + hours(2)).sent.len(), 1, "sent after all");

    w.restart();
    w.fail(t0() + hours(3));
    assert!(w.send(t0() + hours(3)).sent.is_empty());

    // The same alert observed again (say, a state lost in a crash) is one
    // record: the dedupe key is the feed, the condition and the episode.
    let again = NewEvent {
        occurred_at: t0() + hours(4),
        body: EventBody::SourceHealth(w.alerts()[0].clone()),
    };
    let policy = w.policy();
    let outcome = w
        .store
        .append(&[again], &policy, t0() + hours(4))
        .expect("append");
    assert_eq!((outcome.appended.len(), outcome.duplicates), (0, 1));
    assert!(w.send(t0() + hours(4)).sent.is_empty());
    assert_eq!(w.mail().len(), 1);
}

#[test]
fn staleness_is_read_from_item_dates() {
    use HealthCondition::*;
    let mut w = Watch::new("stale_after = \"7d\"");
    let published = t0();
    let days = TimeDelta::days;
    w.ok(&[("Weather", published)], published + days(6));
    assert!(
        w.alerts().is_empty(),
        "six days quiet is within stale_after"
    );
    w.ok(&[("Weather", published)], published + days(7));
    w.send(published + days(7));
    w.ok(&[("Weather", published)], published + days(20));
    w.send(published + days(20));
    assert_eq!(w.conditions(), [Stale], "once, however long it stays quiet");

    let later = published + days(21);
    w.ok(&[("Weather", published), ("Vote count", later)], later);
    w.send(later);
    assert_eq!(w.conditions(), [Stale, Fresh]);
    let mail = w.mail();
    assert_eq!(
        subjects(&mail),
        [
            "Source stale: wire (nothing published since 2025-06-29)",
            "Source publishing again: wire",
        ]
    );
    assert!(
        mail[0].text.contains("stale_after"),
        "says how to quieten a feed that publishes rarely:\n{}",
        mail[0].text
    );

    // A feed's own stale_after overrides [notify]'s.
    let rare = MINIMAL.replace(
        "interval = \"15m\"",
        "interval = \"15m\"\nstale_after = \"30d\"",
    );
    let mut w = Watch::with_feeds(&rare, "stale_after = \"7d\"");
    w.ok(&[("Monthly bulletin", published)], published + days(20));
    assert!(w.alerts().is_empty(), "{:?}", w.alerts());
    w.ok(&[("Monthly bulletin", published)], published + days(30));
    assert_eq!(w.conditions(), [Stale]);
}

#[test]
fn a_410_is_announced_at_once() {
    let mut w = Watch::new("");
    w.poll(Err(FetchError::Gone), t0());
    w.send(t0());
    let mail = w.mail();
    assert_eq!(
        subjects(&mail),
        ["Source failing: wire (HTTP 410 Gone; no longer polled)"]
    );
    assert!(mail[0].text.contains("gone for good"), "{}", mail[0].text);
}

#[test]
fn server_text_in_an_error_is_escaped_and_kept_out_of_headers() {
    let mut w = Watch::new("alert_after_failures = 1");
    // A Location header is the server's to write.
    let evil = "<script>alert(1)</script>\r\nBcc: evil@example.net";
    w.poll(Err(FetchError::BadRedirect(evil.into())), t0());
    w.send(t0());
    let mail = w.mail();
    assert_eq!(
        subjects(&mail),
        ["Source failing: wire (bad redirect, 1 failure in a row)"],
        "the subject holds treatywatch's own words only"
    );
    let parsed = MessageParser::default()
        .parse(&mail[0].raw)
        .expect("message");
    assert!(parsed.bcc().is_none(), "no header was injected");
    assert!(
        mail[0]
            .html
            .contains("&lt;script&gt;alert(1)&lt;/script&gt;")
            && !mail[0].html.contains("<script>"),
        "{}",
        mail[0].html
    );
    assert!(
        mail[0]
            .text
            .contains("Last error: bad redirect: <script>alert(1)</script> Bcc: evil@example.net"),
        "one line in the text part:\n{}",
        mail[0].text
    );
}

#[test]
fn alerts_go_to_the_desk_and_to_subscribers_who_ask() {
    let mut w = Watch::new(
        "alert_after_failures = 1\n\
         [[notify.subscription]]\nto = [\"ops@example.org\"]\nhealth_alerts = true\n\
         [[notify.subscription]]\nto = [\"ngo@example.org\"]\n",
    );
    w.fail(t0());
    let mut to: Vec<String> = w.send(t0()).sent.into_iter().map(|s| s.recipient).collect();
    to.sort();
    assert_eq!(to, ["desk@example.org", "ops@example.org"]);

    let mut w = Watch::new("alert_after_failures = 1\nhealth_alerts = false");
    w.fail(t0());
    assert!(w.send(t0()).sent.is_empty());
    assert_eq!(w.alerts().len(), 1, "recorded all the same");
}

#[test]
fn an_alert_rides_along_with_news_in_the_same_window() {
    let mut w = Watch::new("alert_after_failures = 1");
    w.fail(t0());
    let policy = w.policy();
    let news = detection(
        "UKR",
        "ottawa",
        Action::WithdrawalAnnounced,
        "wire",
        "decree",
        t0() + TimeDelta::minutes(2),
    );
    w.store
        .append(&[news], &policy, t0() + TimeDelta::minutes(2))
        .expect("append");
    let early = notify::run_pending(
        &mut w.store,
        &w.config,
        t0() + TimeDelta::minutes(5),
        Flush::Debounced,
    )
    .expect("notify");
    assert!(
        early.sent.is_empty(),
        "alerts wait out the window like news"
    );
    let report = notify::run_pending(
        &mut w.store,
        &w.config,
        t0() + TimeDelta::minutes(10),
        Flush::Debounced,
    )
    .expect("notify");
    assert_eq!(report.sent.len(), 1, "{report:?}");
    let mail = w.mail();
    assert_eq!(
        subjects(&mail),
        ["Ukraine · Ottawa Convention: unknown → withdrawal announced (1 source alert)"]
    );
    let text = &mail[0].text;
    assert!(
        text.starts_with("treatywatch: 1 status change, 1 source alert")
            && text.contains("Where things stand")
            && text.contains("Source health")
            && text.contains("Source failing: wire"),
        "{text}"
    );
}

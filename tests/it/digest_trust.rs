//! Digests a reader can trust at a glance: corrections are labelled as
//! such, reports waiting for a second source are visible, digests about
//! one (state, treaty) form a thread, the text part is plain 8-bit UTF-8
//! that `grep` reads, and the HTML part renders in a real headless
//! Chromium. Real SMTP server on loopback, real SQLite file, real binary.

use std::path::{Path, PathBuf};
use std::process::Command;

use chrono::{DateTime, TimeDelta, Utc};
use treatywatch::config::{self, Config};
use treatywatch::domain::{
    Action, EventBody, HealthCondition, NewEvent, Policy, Retraction, SourceHealth,
};
use treatywatch::notify::{self, Flush};
use treatywatch::store::Store;

use crate::smtp_server::SmtpServer;
use crate::support::{ConfigDir, MINIMAL, at, detection, flat};

fn t0() -> DateTime<Utc> {
    at(2025, 6, 29)
}

/// MINIMAL tracking UKR and POL × ottawa and ctbt (ctbt needs two
/// sources), over SMTP to `port`, with waiting reports shown.
fn desk(port: u16) -> (ConfigDir, Config, Store) {
    let feeds = format!(
        "{}\n[notify]\nfrom = \"treatywatch <tw@alerts.example.org>\"\nto = [\"Desk <desk@example.org>\"]\ndebounce = \"10m\"\nunconfirmed = true\ntransport = \"smtp\"\n[notify.smtp]\nhost = \"127.0.0.1\"\nport = {port}\ntls = \"none\"\n",
        MINIMAL.replace(
            "treaties = [\"ottawa\"]",
            "treaties = [\"ottawa\", \"ctbt\"]"
        )
    );
    let dir = ConfigDir::new(&feeds);
    let config = config::load(&dir.feeds()).unwrap_or_else(|e| panic!("config: {e}"));
    let store = Store::open(&config.db_path).expect("open store");
    (dir, config, store)
}

fn policy(config: &Config) -> Policy {
    Policy {
        min_sources: config.treaties.min_sources(),
    }
}

fn append(store: &mut Store, config: &Config, events: &[NewEvent], now: DateTime<Utc>) -> Vec<i64> {
    store
        .append(events, &policy(config), now)
        .expect("append")
        .appended
}

fn send(store: &mut Store, config: &Config, now: DateTime<Utc>) -> usize {
    notify::run_pending(store, config, now, Flush::Now)
        .expect("notify")
        .sent
        .len()
}

fn header<'a>(raw: &'a str, name: &str) -> Option<&'a str> {
    raw.lines()
        .take_while(|l| !l.is_empty())
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(": "))
}

#[test]
fn a_retraction_arrives_as_a_correction_with_the_analysts_note() {
    let server = SmtpServer::start();
    let (_dir, config, mut store) = desk(server.port);
    let seqs = append(
        &mut store,
        &config,
        &[detection(
            "POL",
            "ottawa",
            Action::WithdrawalApproved,
            "wire",
            "sejm",
            t0(),
        )],
        t0(),
    );
    assert_eq!(send(&mut store, &config, t0()), 1);
    let later = t0() + TimeDelta::hours(3);
    append(
        &mut store,
        &config,
        &[NewEvent {
            occurred_at: later,
            body: EventBody::Retracted(Retraction {
                target_seq: seqs[0],
                state: "POL".into(),
                treaty: "ottawa".into(),
                note: "the Sejm voted on a different bill".into(),
                rules_version: None,
            }),
        }],
        later,
    );
    assert_eq!(send(&mut store, &config, later), 1);
    let mail = server.accepted();
    let m = mail[1].parsed();
    assert_eq!(
        m.subject(),
        Some("[treatywatch] Correction: Poland · Ottawa Convention: withdrawal approved → unknown")
    );
    let text = flat(&m.body_text(0).expect("text"));
    assert!(text.contains("Corrections ==="), "{text}");
    assert!(
        text.contains("Poland · Ottawa Convention: a correction of the record, not news"),
        "{text}"
    );
    assert!(
        text.contains("Was recorded: withdrawal approved. Now: unknown."),
        "{text}"
    );
    assert!(
        text.contains("Analyst's note: \"the Sejm voted on a different bill\""),
        "{text}"
    );
    assert!(
        text.contains("It withdrew: \"POL withdrawal_approved ottawa (sejm)\""),
        "{text}"
    );
    assert!(
        !text.contains("What changed"),
        "a correction is not news: {text}"
    );
    let html = m.body_html(0).expect("html");
    assert!(html.contains("Corrections") && html.contains("the Sejm voted on a different bill"));
}

#[test]
fn a_report_waiting_for_a_second_source_shows_in_status_and_the_digest() {
    let server = SmtpServer::start();
    let (dir, config, mut store) = desk(server.port);
    append(
        &mut store,
        &config,
        &[
            detection(
                "UKR",
                "ctbt",
                Action::WithdrawalAnnounced,
                "wire",
                "ctbt-1",
                t0(),
            ),
            detection(
                "POL",
                "ottawa",
                Action::WithdrawalAnnounced,
                "wire",
                "pol",
                t0(),
            ),
        ],
        t0(),
    );
    drop(store);
    let out = dir.cmd(&["status"]).output().expect("status");
    let status = String::from_utf8(out.stdout).expect("utf-8");
    let waiting = status
        .lines()
        .skip_while(|l| *l != "REPORTED, NOT YET CONFIRMED")
        .find(|l| l.starts_with("UKR"))
        .unwrap_or_else(|| panic!("no waiting report in:\n{status}"));
    assert!(
        waiting.contains("withdrawal announced") && waiting.contains("1 of 2 (wire)"),
        "{waiting}"
    );
    let row = status
        .lines()
        .find(|l| l.starts_with("UKR") && l.contains("ctbt"))
        .expect("UKR ctbt row");
    assert!(
        row.contains("unknown"),
        "the status itself has not moved: {row}"
    );

    let mut store = Store::open(&config.db_path).expect("reopen");
    assert_eq!(send(&mut store, &config, t0()), 1);
    let text = flat(&server.accepted()[0].parsed().body_text(0).expect("text"));
    assert!(
        text.contains("Reported, not yet confirmed")
            && text.contains("Ukraine · CTBT: withdrawal announced, first reported 2025-06-29 (1 of 2 sources: wire)"),
        "{text}"
    );
}

#[test]
fn two_digests_about_one_state_and_treaty_form_a_thread() {
    let server = SmtpServer::start();
    let (_dir, config, mut store) = desk(server.port);
    append(
        &mut store,
        &config,
        &[detection(
            "UKR",
            "ottawa",
            Action::WithdrawalAnnounced,
            "wire",
            "decree",
            t0(),
        )],
        t0(),
    );
    send(&mut store, &config, t0());
    let later = t0() + TimeDelta::days(12);
    append(
        &mut store,
        &config,
        &[detection(
            "UKR",
            "ottawa",
            Action::WithdrawalNotified,
            "wire",
            "cn",
            later,
        )],
        later,
    );
    send(&mut store, &config, later);
    let mail = server.accepted();
    assert_eq!(mail.len(), 2);
    let raw: Vec<String> = mail
        .iter()
        .map(|m| String::from_utf8_lossy(&m.data).into_owned())
        .collect();
    let refs: Vec<&str> = raw
        .iter()
        .map(|r| header(r, "References").expect("References"))
        .collect();
    assert_eq!(refs[0], refs[1], "the same thread");
    assert!(refs[0].starts_with("<thread.UKR.ottawa."), "{}", refs[0]);
    assert_eq!(header(&raw[1], "In-Reply-To"), Some(refs[0]));
    assert_ne!(mail[0].message_id(), mail[1].message_id());
    for r in &raw {
        assert_eq!(header(r, "X-Treatywatch-State"), Some("UKR"));
        assert_eq!(header(r, "X-Treatywatch-Treaty"), Some("ottawa"));
        assert!(
            header(r, "List-Id").is_some_and(|v| v.ends_with("<treatywatch.alerts.example.org>")),
            "{r}"
        );
        assert_eq!(
            header(r, "List-Unsubscribe"),
            Some("<mailto:tw@alerts.example.org?subject=unsubscribe>")
        );
        assert!(header(r, "Subject").is_some_and(|s| s.contains("treatywatch")));
    }
    assert_eq!(
        header(&raw[1], "X-Treatywatch-Status"),
        Some("withdrawal_notified")
    );
    // Another (state, treaty) is another thread.
    let other = notify::thread_id("POL", "ottawa", "desk@example.org", &config.notify.from);
    assert_ne!(other, refs[0]);
}

#[test]
fn the_eml_text_part_is_plain_utf8_that_grep_reads() {
    let dir = ConfigDir::new(&format!(
        "{MINIMAL}\n[notify]\nfrom = \"treatywatch <tw@alerts.example.org>\"\nto = [\"desk@example.org\"]\ntransport = \"file\"\nfolder = \"digests\"\n"
    ));
    let config = config::load(&dir.feeds()).expect("config");
    let mut store = Store::open(&config.db_path).expect("open");
    append(
        &mut store,
        &config,
        &[detection(
            "UKR",
            "ottawa",
            Action::WithdrawalAnnounced,
            "wire",
            "decree",
            t0(),
        )],
        t0(),
    );
    assert_eq!(send(&mut store, &config, t0()), 1);
    let folder = dir.dir.path().join("digests");
    let file = std::fs::read_dir(&folder)
        .expect("digests")
        .next()
        .expect("one .eml")
        .expect("entry")
        .path();
    // `grep` on the file, as the README says.
    let grep = Command::new("grep")
        .args(["-c", "Ukraine · Ottawa Convention"])
        .arg(&file)
        .output()
        .expect("grep runs");
    assert!(
        String::from_utf8_lossy(&grep.stdout)
            .trim()
            .parse::<u32>()
            .unwrap_or(0)
            >= 1,
        "grep finds the state's name in the .eml:\n{}",
        String::from_utf8_lossy(&std::fs::read(&file).unwrap_or_default())
    );
    let raw = String::from_utf8(std::fs::read(&file).expect("read")).expect("utf-8 file");
    let text_part = raw
        .split("Content-Type: text/plain")
        .nth(1)
        .and_then(|rest| rest.split("Content-Type: text/html").next())
        .expect("a text part");
    assert!(
        text_part.contains("Content-Transfer-Encoding: 8bit"),
        "{text_part}"
    );
    assert!(!text_part.contains("=C2=B7"), "not quoted-printable");
    assert!(
        text_part.contains("party → withdrawal announced")
            || text_part.contains("unknown → withdrawal announced"),
        "{text_part}"
    );
    assert!(
        text_part
            .lines()
            .all(|l| l.chars().count() <= 78 || !l.contains(' ')),
        "wrapped for reading:\n{text_part}"
    );
}

/// Chromium from Debian (`.ci/run` installs it when missing).
fn chromium() -> PathBuf {
    for candidate in ["/usr/bin/chromium", "/usr/bin/chromium-browser"] {
        if Path::new(candidate).exists() {
            return PathBuf::from(candidate);
        }
    }
    panic!("Chromium is needed for this test: apt-get install chromium (.ci/run does)");
}

fn headless(profile: &Path) -> Command {
    let mut cmd = Command::new(chromium());
    cmd.args([
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
    .arg(format!("--user-data-dir={}", profile.display()));
    cmd
}

/// Width and height from a PNG's IHDR chunk.
fn png_size(bytes: &[u8]) -> (u32, u32) {
    assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n", "a PNG");
    let be = |at: usize| u32::from_be_bytes(bytes[at..at + 4].try_into().expect("4 bytes"));
    (be(16), be(20))
}

#[test]
fn the_html_part_renders_in_a_real_browser_with_every_section() {
    let server = SmtpServer::start();
    let (dir, config, mut store) = desk(server.port);
    // A correction: Poland's reported vote, retracted.
    let seqs = append(
        &mut store,
        &config,
        &[detection(
            "POL",
            "ottawa",
            Action::WithdrawalApproved,
            "wire",
            "sejm",
            t0(),
        )],
        t0(),
    );
    send(&mut store, &config, t0());
    let later = t0() + TimeDelta::hours(2);
    append(
        &mut store,
        &config,
        &[
            NewEvent {
                occurred_at: later,
                body: EventBody::Retracted(Retraction {
                    target_seq: seqs[0],
                    state: "POL".into(),
                    treaty: "ottawa".into(),
                    note: "the vote was on a different bill".into(),
                    rules_version: None,
                }),
            },
            // A change, a report waiting for a second source, an alert.
            detection(
                "UKR",
                "ottawa",
                Action::WithdrawalAnnounced,
                "wire",
                "decree",
                later,
            ),
            detection(
                "UKR",
                "ctbt",
                Action::WithdrawalAnnounced,
                "wire",
                "ctbt",
                later,
            ),
            NewEvent {
                occurred_at: later,
                body: EventBody::SourceHealth(SourceHealth {
                    feed: "wire".into(),
                    condition: HealthCondition::Failing,
                    since: later,
                    failures: 5,
                    summary: Some("HTTP 503".into()),
                    error: Some("HTTP 503 Service Unavailable".into()),
                    gone: false,
                    last_item_at: None,
                }),
            },
        ],
        later,
    );
    drop(store);
    let target = Path::new(env!("CARGO_TARGET_TMPDIR"));
    let html_path = target.join("digest-sample.html");
    let out = dir
        .cmd(&["digest", "--preview", "--html"])
        .arg(&html_path)
        .output()
        .expect("preview");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The text part as previewed, kept beside the PNG for the README.
    std::fs::write(target.join("digest-sample.txt"), &out.stdout).expect("write the text");
    let html = std::fs::read_to_string(&html_path).expect("the HTML part was written");
    assert!(!html.contains("<script"), "no scripts in mail");

    let profile = tempfile::tempdir().expect("profile");
    let png = target.join("digest-sample.png");
    let _ = std::fs::remove_file(&png);
    let shot = headless(profile.path())
        .arg(format!("--screenshot={}", png.display()))
        .arg("--window-size=800,1400")
        .arg(format!("file://{}", html_path.display()))
        .output()
        .expect("chromium runs");
    assert!(
        png.exists(),
        "no screenshot: {}",
        String::from_utf8_lossy(&shot.stderr)
    );
    let bytes = std::fs::read(&png).expect("png");
    assert_eq!(png_size(&bytes), (800, 1400));
    assert!(
        bytes.len() > 20_000,
        "a rendered page, not a blank one ({} bytes)",
        bytes.len()
    );
    println!("digest screenshot: {}", png.display());

    let dom = headless(profile.path())
        .arg("--dump-dom")
        .arg(format!("file://{}", html_path.display()))
        .output()
        .expect("chromium runs");
    let dom = String::from_utf8_lossy(&dom.stdout);
    for expected in [
        "What changed",
        "Ukraine · Ottawa Convention",
        "withdrawal announced",
        "UKR withdrawal_announced ottawa (decree)",
        "Corrections",
        "the vote was on a different bill",
        "Reported, not yet confirmed",
        "Ukraine · CTBT: withdrawal announced",
        "Where things stand — Ottawa Convention",
        "Source health",
        "Source failing: wire",
        "You get this as desk@example.org",
    ] {
        assert!(
            dom.contains(expected),
            "{expected:?} missing from the rendered DOM:\n{dom}"
        );
    }
}

/// A depositary notice as a mailbox read records it (`mailbox::ingest`).
fn notice(
    state: &str,
    treaty: &str,
    action: Action,
    reference: &str,
    effected: DateTime<Utc>,
) -> NewEvent {
    let mut e = detection(state, treaty, action, "un-depositary", "cn", effected);
    if let EventBody::Detection(d) = &mut e.body {
        d.rule = "depositary:XXVI-5".into();
        d.rules_version = String::new();
        d.item_key = format!("depositary:{reference}");
        d.authoritative = true;
    }
    e
}

#[test]
fn a_digest_says_which_news_the_depositary_confirmed_and_which_it_has_not() {
    let server = SmtpServer::start();
    let (dir, _, _) = desk(server.port);
    // The same desk, with the UN depositary's notices read from a Maildir.
    let mut feeds = std::fs::read_to_string(dir.feeds()).unwrap();
    feeds.push_str("\n[[mailbox]]\nid = \"un-depositary\"\nmaildir = \"mail/un\"\n");
    dir.write("feeds.toml", &feeds);
    let config = config::load(&dir.feeds()).unwrap_or_else(|e| panic!("config: {e}"));
    let mut store = Store::open(&config.db_path).expect("open store");
    // News of two deposits; the notice of one arrives before the digest goes.
    append(
        &mut store,
        &config,
        &[
            detection(
                "UKR",
                "ottawa",
                Action::WithdrawalNotified,
                "wire",
                "ukr",
                t0(),
            ),
            detection(
                "POL",
                "ottawa",
                Action::WithdrawalNotified,
                "wire",
                "pol",
                t0(),
            ),
        ],
        t0(),
    );
    let reference = "C.N.412.2025.TREATIES-XXVI.5";
    append(
        &mut store,
        &config,
        &[notice(
            "UKR",
            "ottawa",
            Action::WithdrawalNotified,
            reference,
            t0() - TimeDelta::days(2),
        )],
        t0() + TimeDelta::hours(1),
    );
    assert_eq!(send(&mut store, &config, t0() + TimeDelta::hours(1)), 1);
    let accepted = server.accepted();
    let mail = accepted[0].parsed();
    let text = flat(&mail.body_text(0).expect("text"));
    let html = mail.body_html(0).expect("html").to_string();
    let ukr = text
        .split("Wrong?")
        .find(|part| part.contains("Ukraine · Ottawa"))
        .unwrap_or_else(|| panic!("no Ukraine change:\n{text}"));
    assert!(
        ukr.contains(&format!(
            "depositary: confirmed by {reference} on 2025-06-27"
        )),
        "{ukr}"
    );
    let pol = text
        .split("Wrong?")
        .find(|part| part.contains("Poland · Ottawa"))
        .unwrap_or_else(|| panic!("no Poland change:\n{text}"));
    assert!(
        pol.contains("depositary: news only, not yet confirmed"),
        "{pol}"
    );
    for part in [
        format!("depositary: confirmed by {reference} on 2025-06-27"),
        "depositary: news only, not yet confirmed".to_string(),
    ] {
        assert!(html.contains(&part), "HTML part lacks {part}:\n{html}");
    }
}

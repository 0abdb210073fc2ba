//! Depositary notifications from a Maildir, through the real binary: each
//! notice becomes one authoritative event however often the folder is
//! read, anything else is counted and logged, and `status` says which
//! statuses the depositary confirmed and which it has not.

use std::path::{Path, PathBuf};

use chrono::{Duration, Utc};
use serde_json::Value;
use treatywatch::depositary::Reader;
use treatywatch::domain::{Action, Policy};
use treatywatch::mailbox::Message;
use treatywatch::store::Store;

use crate::support::{ConfigDir, detection};

pub(crate) const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/depositary");

const CONFIG: &str = r#"[data]
states = "states.toml"
treaties = "treaties.toml"

[tracking]
states = ["UKR", "POL", "EST"]
treaties = ["ottawa", "ctbt"]

[[mailbox]]
id = "un-depositary"
name = "UN Treaty Section"
maildir = "mail/un"
"#;

/// A config folder with an empty Maildir at mail/un.
fn setup() -> (ConfigDir, PathBuf) {
    let dir = ConfigDir::new(CONFIG);
    let maildir = dir.dir.path().join("mail/un");
    for sub in ["cur", "new", "tmp"] {
        std::fs::create_dir_all(maildir.join(sub)).unwrap();
    }
    (dir, maildir)
}

/// Delivers a fixture as a mail delivery agent would: a unique name in new/.
fn deliver(maildir: &Path, fixture: &str, n: u32) {
    let bytes = std::fs::read(Path::new(FIXTURES).join(fixture)).unwrap();
    deliver_bytes(maildir, &bytes, n);
}

fn deliver_bytes(maildir: &Path, bytes: &[u8], n: u32) {
    let name = format!("17520000{n:02}.M{n}P4242.test");
    std::fs::write(maildir.join("tmp").join(&name), bytes).unwrap();
    std::fs::rename(
        maildir.join("tmp").join(&name),
        maildir.join("new").join(&name),
    )
    .unwrap();
}

pub(crate) fn json_lines(stdout: &[u8]) -> Vec<Value> {
    String::from_utf8_lossy(stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("one JSON object per line"))
        .collect()
}

pub(crate) fn detections(dir: &ConfigDir) -> Vec<Value> {
    let out = dir.cmd(&["events", "--json"]).output().unwrap();
    assert!(out.status.success());
    json_lines(&out.stdout)
        .into_iter()
        .filter(|e| e["kind"] == "detection")
        .collect()
}

pub(crate) fn poll(dir: &ConfigDir) -> (String, String) {
    let out = dir.cmd(&["poll"]).output().unwrap();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    );
    assert!(out.status.success(), "poll failed:\n{stdout}\n{stderr}");
    (stdout, stderr)
}

#[test]
fn notices_in_a_maildir_become_authoritative_events_once() {
    let (dir, maildir) = setup();
    for (n, f) in [
        "withdrawal-est.eml",
        "accession-pol.eml",
        "signature-ukr.eml",
        "reservation-est.eml",
        "unknown-newsletter.eml",
        "malformed-no-date.eml",
        "unmapped-chapter.eml",
    ]
    .iter()
    .enumerate()
    {
        deliver(&maildir, f, n as u32);
    }
    let (stdout, stderr) = poll(&dir);
    assert!(
        stdout.contains("7 messages (7 new): 3 notices, 1 with no status change, 1 unmapped, 2 unrecognised; 3 detections"),
        "{stdout}"
    );
    // Every message that made no detection says why, once.
    for why in [
        "no depositary reference",
        "no \"The above action was effected on",
        "un_chapter = \"XXVI-7\"",
    ] {
        assert!(stderr.contains(why), "stderr should say {why}:\n{stderr}");
    }

    let check = |dir: &ConfigDir| {
        let found = detections(dir);
        let mut got: Vec<(String, String, String, String)> = found
            .iter()
            .map(|d| {
                assert_eq!(d["authoritative"], true, "{d}");
                assert_eq!(d["source"], "un-depositary", "{d}");
                (
                    d["state"].as_str().unwrap().to_string(),
                    d["treaty"].as_str().unwrap().to_string(),
                    d["action"].as_str().unwrap().to_string(),
                    d["occurred_at"].as_str().unwrap()[..10].to_string(),
                )
            })
            .collect();
        got.sort();
        let want = [
            ("EST", "ottawa", "withdrawal_notified", "2025-06-27"),
            ("POL", "ctbt", "ratified", "2024-05-02"),
            ("UKR", "ctbt", "signed", "2025-03-03"),
        ];
        let want: Vec<(String, String, String, String)> = want
            .iter()
            .map(|(a, b, c, d)| (a.to_string(), b.to_string(), c.to_string(), d.to_string()))
            .collect();
        assert_eq!(got, want);
        let withdrawal = found.iter().find(|d| d["state"] == "EST").unwrap();
        assert_eq!(withdrawal["rule"], "depositary:XXVI-5");
        assert_eq!(withdrawal["takes_effect"], "2025-12-27");
        let evidence = withdrawal["evidence"]["sentence"].as_str().unwrap();
        assert!(
            evidence.starts_with("C.N.412.2025.TREATIES-XXVI.5: ESTONIA: WITHDRAWAL."),
            "{evidence}"
        );
    };
    check(&dir);

    // Read again, and again with the withdrawal delivered a second time
    // (a subscription by treaty and one by participant) and a message
    // moved to cur/ by a mail client: still the same three events.
    let (again, stderr) = poll(&dir);
    assert!(again.contains("7 messages (0 new)"), "{again}");
    assert!(
        !stderr.contains("not a depositary notification"),
        "logged once only:\n{stderr}"
    );
    let mut second = std::fs::read(Path::new(FIXTURES).join("withdrawal-est.eml")).unwrap();
    let text = String::from_utf8(second.clone()).unwrap();
    second = text
        .replace(
            "cn412-2025@treaties.example.org",
            "cn412-2025.by-participant@treaties.example.org",
        )
        .into_bytes();
    deliver_bytes(&maildir, &second, 20);
    let moved = std::fs::read_dir(maildir.join("new"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap();
    std::fs::rename(
        moved.path(),
        maildir
            .join("cur")
            .join(format!("{}:2,S", moved.file_name().to_string_lossy())),
    )
    .unwrap();
    let (third, _) = poll(&dir);
    assert!(third.contains("8 messages (1 new): 1 notice"), "{third}");
    check(&dir);

    // The statuses moved on the notices alone, and `status` counts the messages.
    let out = dir.cmd(&["status", "--json"]).output().unwrap();
    let rows = json_lines(&out.stdout);
    let row = |s: &str, t: &str| {
        rows.iter()
            .find(|r| r["state"] == s && r["treaty"] == t && r.get("status").is_some())
            .unwrap_or_else(|| panic!("no row {s} {t}"))
            .clone()
    };
    assert_eq!(row("EST", "ottawa")["status"], "withdrawal_notified");
    assert_eq!(row("EST", "ottawa")["expected_effective"], "2025-12-27");
    assert_eq!(row("POL", "ctbt")["status"], "party");
    assert_eq!(row("UKR", "ctbt")["status"], "signatory");
    let table = dir.cmd(&["status"]).output().unwrap();
    let table = String::from_utf8_lossy(&table.stdout);
    let line = table
        .lines()
        .find(|l| l.starts_with("un-depositary"))
        .unwrap_or_else(|| panic!("no mailbox line:\n{table}"));
    let cells: Vec<&str> = line.split_whitespace().collect();
    // MAILBOX, LAST READ (2 cells), FAILURES, NEXT READ (2), NOTICES, NO STATUS, UNMAPPED, UNRECOGNISED
    assert_eq!(&cells[6..10], &["4", "1", "1", "2"], "{line}");
}

#[test]
fn news_followed_by_the_notice_shows_as_confirmed_with_the_notice_dates() {
    let (dir, maildir) = setup();
    // The news first: a wire reports the deposit two days late.
    let news_day = crate::support::at(2025, 6, 29);
    dir.cmd(&["check"]).assert().success();
    append_news(&dir, "EST", "ottawa", Action::WithdrawalNotified, news_day);
    let before = dir.cmd(&["status"]).output().unwrap();
    let before = String::from_utf8_lossy(&before.stdout).into_owned();
    let est = |t: &str| {
        t.lines()
            .find(|l| l.starts_with("EST") && l.contains("ottawa"))
            .unwrap()
            .to_string()
    };
    assert!(
        est(&before).contains("news only, not yet confirmed"),
        "{before}"
    );
    assert!(est(&before).contains("2025-06-29"), "{before}");

    deliver(&maildir, "withdrawal-est.eml", 1);
    poll(&dir);
    let after = dir.cmd(&["status"]).output().unwrap();
    let after = String::from_utf8_lossy(&after.stdout).into_owned();
    let line = est(&after);
    assert!(
        line.contains("confirmed by C.N.412.2025.TREATIES-XXVI.5 on 2025-06-27"),
        "{after}"
    );
    // The notice's dates: since the deposit, effective as it states.
    assert!(
        line.contains("(effective 2025-12-27 unless at war)"),
        "{line}"
    );
    assert!(line.contains("  2025-06-27  "), "{line}");
    assert!(
        line.contains("un-depositary") && line.contains("wire"),
        "{line}"
    );
    let json = dir.cmd(&["status", "--json"]).output().unwrap();
    let row = json_lines(&json.stdout)
        .into_iter()
        .find(|r| r["state"] == "EST" && r["treaty"] == "ottawa")
        .unwrap();
    assert_eq!(row["confirmed_by"], "C.N.412.2025.TREATIES-XXVI.5");
    assert_eq!(row["confirmed_on"], "2025-06-27");
}

#[test]
fn unconfirmed_lists_old_news_without_a_notice_and_notices_without_news() {
    let (dir, maildir) = setup();
    dir.cmd(&["check"]).assert().success();
    let now = Utc::now();
    // Old news no notice confirmed, recent news (still within 30 days), and
    // news the notice confirmed.
    append_news(
        &dir,
        "UKR",
        "ottawa",
        Action::WithdrawalNotified,
        now - Duration::days(60),
    );
    append_news(
        &dir,
        "POL",
        "ottawa",
        Action::WithdrawalNotified,
        now - Duration::days(5),
    );
    append_news(
        &dir,
        "EST",
        "ottawa",
        Action::WithdrawalNotified,
        crate::support::at(2025, 6, 29),
    );
    deliver(&maildir, "withdrawal-est.eml", 1);
    // A recent notice that no news reported.
    let effected = (now - Duration::days(3)).date_naive();
    let fixture = std::fs::read_to_string(Path::new(FIXTURES).join("withdrawal-est.eml")).unwrap();
    let recent = fixture
        .replace("C.N.412.2025", "C.N.9.2026")
        .replace("cn412-2025", "cn9-2026")
        .replace("ESTONIA: WITHDRAWAL", "UKRAINE: SIGNATURE")
        .replace("27 June 2025", &effected.format("%-d %B %Y").to_string())
        .replace("XXVI.5", "XXVI.4");
    deliver_bytes(&maildir, recent.as_bytes(), 2);
    poll(&dir);

    let out = dir
        .cmd(&["status", "--unconfirmed", "--json"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let lines = json_lines(&out.stdout);
    let news_only: Vec<&Value> = lines
        .iter()
        .filter(|l| l.get("news_only").is_some())
        .collect();
    assert_eq!(news_only.len(), 1, "{lines:?}");
    assert_eq!(news_only[0]["state"], "UKR");
    assert_eq!(news_only[0]["news_only"], "withdrawal_notified");
    let notices: Vec<&Value> = lines
        .iter()
        .filter(|l| l.get("notice_only").is_some())
        .collect();
    assert_eq!(notices.len(), 1, "{lines:?}");
    assert_eq!(notices[0]["state"], "UKR");
    assert_eq!(notices[0]["treaty"], "ctbt");
    assert_eq!(notices[0]["reference"], "C.N.9.2026.TREATIES-XXVI.4");
    assert_eq!(notices[0]["effected"], effected.to_string());

    let table = dir.cmd(&["status", "--unconfirmed"]).output().unwrap();
    let table = String::from_utf8_lossy(&table.stdout);
    assert!(table.contains("more than 30 days ago"), "{table}");
    assert!(table.contains("C.N.9.2026.TREATIES-XXVI.4"), "{table}");
}

#[test]
fn a_folder_that_is_not_a_maildir_is_a_failure_with_what_to_fix() {
    let dir = ConfigDir::new(CONFIG);
    let out = dir.cmd(&["poll"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("is not a Maildir"), "{stdout}");
    assert!(stdout.contains("cur/, new/ and tmp/"), "{stdout}");
    assert!(stdout.contains("1 failure"), "{stdout}");
}

#[test]
fn bad_mailbox_keys_are_refused_by_check() {
    let dir = ConfigDir::new(&format!(
        "{CONFIG}\n[[mailbox]]\nid = \"un-depositary\"\ndepositary = \"ilo\"\nmaildir = \"mail/un\"\n[mailbox.imap]\nhost = \"imap.example.org\"\nuser = \"u\"\npassword_env = \"P\"\n"
    ));
    let out = dir.cmd(&["check"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    for want in [
        "already used",
        "unknown depositary \"ilo\"",
        "both `maildir` and an [mailbox.imap] table",
        "feeds.toml:",
    ] {
        assert!(stderr.contains(want), "check should say {want}:\n{stderr}");
    }
}

/// Mutated notices (cut short, bytes flipped, lines doubled) never panic
/// the MIME layer or the reader, and never read as another action.
#[test]
fn mutated_notices_never_panic() {
    let mut files: Vec<Vec<u8>> = std::fs::read_dir(FIXTURES)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "eml"))
        .map(|p| std::fs::read(p).unwrap())
        .collect();
    files.sort();
    let mut seed = 0x2545_f491_u64;
    let mut next = || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    for original in &files {
        for round in 0..200 {
            let mut bytes = original.clone();
            match round % 4 {
                0 => bytes.truncate((next() as usize) % (bytes.len() + 1)),
                1 => {
                    for _ in 0..8 {
                        let i = (next() as usize) % bytes.len();
                        bytes[i] = (next() & 0xff) as u8;
                    }
                }
                2 => {
                    let i = (next() as usize) % bytes.len();
                    let tail = bytes[i..].to_vec();
                    bytes.extend_from_slice(&tail);
                }
                _ => bytes
                    .splice(0..0, b"\xff\xfe\x00".iter().copied())
                    .for_each(drop),
            }
            let m = Message::parse(&bytes);
            let _ = Reader::Un.parse(&m.subject, &m.text);
        }
    }
}

fn append_news(
    dir: &ConfigDir,
    state: &str,
    treaty: &str,
    action: Action,
    when: chrono::DateTime<Utc>,
) {
    let config = treatywatch::config::load(&dir.feeds()).unwrap();
    let mut store = Store::open(&config.db_path).unwrap();
    let policy = Policy {
        min_sources: config.treaties.min_sources(),
    };
    let item = format!("news-{state}-{treaty}-{}", when.timestamp());
    store
        .append(
            &[detection(state, treaty, action, "wire", &item, when)],
            &policy,
            Utc::now(),
        )
        .unwrap();
}

/// A second depositary as data plus a parser: the Council of Europe Treaty
/// Office's notifications in a `depositary = "coe"` mailbox, mapped by the
/// catalogue's `coe_ets`; a UN notice delivered there is not one of them.
#[test]
fn council_of_europe_notifications_become_authoritative_events() {
    let (dir, maildir) = setup();
    let treaties = std::fs::read_to_string(dir.dir.path().join("treaties.toml")).unwrap();
    dir.write(
        "treaties.toml",
        &format!(
            "{treaties}\n[[treaty]]\nid = \"istanbul\"\ncoe_ets = \"210\"\nname = \"Council of Europe Convention on preventing and combating violence against women and domestic violence\"\nshort_name = \"Istanbul Convention\"\naliases = [\"Istanbul Convention\"]\nyear = 2011\ndepositary = \"Secretary General of the Council of Europe\"\nwithdrawal_article = \"Article 80\"\nwithdrawal_notice = \"3 months\"\nsuspension = \"no_clause\"\n\n[[treaty]]\nid = \"echr\"\ncoe_ets = \"005\"\nname = \"Convention for the Protection of Human Rights and Fundamental Freedoms\"\nshort_name = \"ECHR\"\naliases = [\"European Convention on Human Rights\"]\nyear = 1950\ndepositary = \"Secretary General of the Council of Europe\"\nwithdrawal_article = \"Article 58\"\nwithdrawal_notice = \"6 months\"\nsuspension = \"no_clause\"\n"
        ),
    );
    let states = std::fs::read_to_string(dir.dir.path().join("states.toml")).unwrap();
    dir.write(
        "states.toml",
        &format!(
            "{states}\n[[state]]\ncode = \"TUR\"\nname = \"Türkiye\"\nnames = [\"Türkiye\", \"Turkey\"]\nadjectives = [\"Turkish\"]\ncapitals = [\"Ankara\"]\nun = \"member\"\n"
        ),
    );
    dir.write(
        "feeds.toml",
        &CONFIG
            .replace(
                "treaties = [\"ottawa\", \"ctbt\"]",
                "treaties = [\"istanbul\", \"echr\"]",
            )
            .replace(
                "states = [\"UKR\", \"POL\", \"EST\"]",
                "states = [\"UKR\", \"EST\", \"TUR\"]",
            )
            .replace(
                "maildir = \"mail/un\"",
                "maildir = \"mail/un\"\ndepositary = \"coe\"",
            ),
    );
    for (n, f) in [
        "coe-denunciation-tur.eml",
        "coe-ratification-ukr.eml",
        "coe-signature-est.eml",
        "withdrawal-est.eml",
    ]
    .iter()
    .enumerate()
    {
        deliver(&maildir, f, n as u32);
    }
    let (stdout, stderr) = poll(&dir);
    assert!(
        stdout.contains("4 messages (4 new): 3 notices, 0 with no status change, 0 unmapped, 1 unrecognised; 3 detections"),
        "{stdout}\n{stderr}"
    );
    assert!(
        stderr.contains("no Council of Europe notification reference"),
        "{stderr}"
    );
    // The withdrawal took effect on the day the notice states (Art. 80:
    // the first day of the month after three months), not on the day three
    // months after the notification: `poll` records it so.
    let effect = detections(&dir)
        .into_iter()
        .find(|d| d["source"] == "notice-period")
        .expect("the effect of Türkiye's denunciation");
    assert_eq!(effect["state"], "TUR");
    assert_eq!(effect["action"], "withdrawal_effective");
    assert_eq!(&effect["occurred_at"].as_str().unwrap()[..10], "2021-07-01");
    assert!(
        effect["evidence"]["sentence"].as_str().unwrap().contains(
            "the depositary's notice JJ9104C Tr./210-262 says it takes effect on 2021-07-01"
        ),
        "{effect}"
    );
    // The mailbox's own detections.
    let found: Vec<Value> = detections(&dir)
        .into_iter()
        .filter(|d| d["source"] == "un-depositary")
        .collect();
    let mut got: Vec<(String, String, String, String)> = found
        .iter()
        .map(|d| {
            assert_eq!(d["authoritative"], true, "{d}");
            (
                d["state"].as_str().unwrap().to_string(),
                d["treaty"].as_str().unwrap().to_string(),
                d["action"].as_str().unwrap().to_string(),
                d["occurred_at"].as_str().unwrap()[..10].to_string(),
            )
        })
        .collect();
    got.sort();
    let want: Vec<(String, String, String, String)> = [
        ("EST", "echr", "signed", "1993-05-14"),
        ("TUR", "istanbul", "withdrawal_notified", "2021-03-22"),
        ("UKR", "istanbul", "ratified", "2022-07-18"),
    ]
    .iter()
    .map(|(a, b, c, d)| (a.to_string(), b.to_string(), c.to_string(), d.to_string()))
    .collect();
    assert_eq!(got, want);
    let tur = found.iter().find(|d| d["state"] == "TUR").unwrap();
    assert_eq!(tur["takes_effect"], "2021-07-01");
    assert_eq!(tur["rule"], "depositary:210");
    assert!(
        tur["evidence"]["sentence"]
            .as_str()
            .unwrap()
            .starts_with("JJ9104C Tr./210-262: Denunciation by Türkiye."),
        "{tur}"
    );
    // Read again: nothing new.
    let (again, _) = poll(&dir);
    assert!(again.contains("4 messages (0 new)"), "{again}");
    let sources = |dir: &ConfigDir| {
        detections(dir)
            .iter()
            .filter(|d| d["source"] == "un-depositary")
            .count()
    };
    assert_eq!(sources(&dir), 3);
}

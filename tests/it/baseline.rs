//! The membership baseline: data files imported as `baseline` events
//! through the binary and the library, against a real SQLite file and a
//! real SMTP server on loopback. Imports are idempotent and never mailed;
//! news moves a status on from its baseline; a baseline never overrides
//! newer news or an analyst; an edited file imports only what changed;
//! `check` points at bad data as file:line:col.

use chrono::{DateTime, Utc};
use treatywatch::config::{self, Config};
use treatywatch::domain::{Action, Policy, Status};
use treatywatch::notify::{self, Flush};
use treatywatch::store::Store;

use crate::smtp_server::SmtpServer;
use crate::support::{ConfigDir, MINIMAL, at, detection, flat};

/// An Ottawa membership file as of `as_of` with UKR and POL entries; EST
/// is covered by `others`.
fn ottawa(as_of: &str, ukr: &str, pol: &str) -> String {
    format!(
        r#"# Test list.
treaty = "ottawa"
depositary = "Secretary-General of the United Nations"
source = "UN Treaty Collection, Chapter XXVI-5"
source_url = "https://treaties.un.org/"
as_of = "{as_of}"
others = "non_party"

[[state]]
{ukr}

[[state]]
{pol}
"#
    )
}

const UKR_PARTY: &str =
    "code = \"UKR\"\nstatus = \"party\"\njoined = \"2005-12-27\"\nby = \"ratification\"";
const POL_PARTY: &str = "code = \"POL\"\nstatus = \"party\"\njoined = \"2012-12-27\"";

/// MINIMAL with a membership folder, default recipient over SMTP to `port`.
fn desk(port: u16) -> ConfigDir {
    let feeds = format!(
        "{}\n[notify]\nfrom = \"treatywatch <tw@alerts.example.org>\"\nto = [\"desk@example.org\"]\ndebounce = \"10m\"\ntransport = \"smtp\"\n[notify.smtp]\nhost = \"127.0.0.1\"\nport = {port}\ntls = \"none\"\n",
        MINIMAL.replace(
            "treaties = \"treaties.toml\"\n",
            "treaties = \"treaties.toml\"\nmembership = [\"membership\"]\n"
        )
    );
    let dir = ConfigDir::new(&feeds);
    std::fs::create_dir(dir.dir.path().join("membership")).expect("membership folder");
    dir
}

fn load(dir: &ConfigDir) -> Config {
    config::load(&dir.feeds()).unwrap_or_else(|e| panic!("config: {e}"))
}

fn policy(config: &Config) -> Policy {
    Policy {
        min_sources: config.treaties.min_sources(),
    }
}

fn stdout(dir: &ConfigDir, args: &[&str]) -> String {
    let out = dir.cmd(args).output().expect("run treatywatch");
    assert!(
        out.status.success(),
        "{args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8")
}

fn status_of(store: &Store, state: &str) -> Status {
    store
        .projection()
        .expect("projection")
        .get(&(state.to_string(), "ottawa".to_string()))
        .map_or(Status::Unknown, |r| r.status)
}

fn now() -> DateTime<Utc> {
    at(2025, 7, 1)
}

#[test]
fn importing_twice_is_importing_once_and_nothing_is_mailed() {
    let server = SmtpServer::start();
    let dir = desk(server.port);
    dir.write(
        "membership/ottawa.toml",
        &ottawa("2025-01-01", UKR_PARTY, POL_PARTY),
    );

    let dry = stdout(&dir, &["baseline", "--dry-run"]);
    assert!(dry.contains("would import 3 baseline entries"), "{dry}");
    assert!(
        dry.contains("would set UKR ottawa: unknown → party"),
        "{dry}"
    );
    assert!(!dir.db().exists(), "a dry run creates no database");

    let first = stdout(&dir, &["baseline"]);
    assert!(first.contains("imported 3 baseline entries"), "{first}");
    let events = stdout(&dir, &["events"]);
    let second = stdout(&dir, &["baseline"]);
    assert!(
        second.contains("imported 0 baseline entries of 1 file (3 already in the log)"),
        "{second}"
    );
    assert_eq!(
        stdout(&dir, &["events"]),
        events,
        "the second import appended nothing"
    );

    let status = stdout(&dir, &["status"]);
    let ukr = status
        .lines()
        .find(|l| l.starts_with("UKR"))
        .expect("UKR row");
    assert!(ukr.contains("party") && ukr.contains("2005-12-27"), "{ukr}");
    assert!(
        ukr.contains("(baseline: UN Treaty Collection, Chapter XXVI-5 as of 2025-01-01)"),
        "each row names its baseline source and date: {ukr}"
    );
    assert!(!status.contains("unknown"), "{status}");

    // The notifier has nothing to say about a baseline.
    let config = load(&dir);
    let mut store = Store::open(&config.db_path).expect("open");
    let report = notify::run_pending(&mut store, &config, now(), Flush::Now).expect("notify");
    assert_eq!((report.routed, report.sent.len()), (0, 0), "{report:?}");
    assert!(server.accepted().is_empty());

    // As of a day before the list, nothing was known yet.
    let before = stdout(&dir, &["status", "--as-of", "2024-12-31"]);
    assert!(
        before
            .lines()
            .any(|l| l.starts_with("UKR") && l.contains("unknown")),
        "{before}"
    );
}

#[test]
fn news_moves_the_status_on_and_the_digest_shows_the_baseline_as_the_old_status() {
    let server = SmtpServer::start();
    let dir = desk(server.port);
    dir.write(
        "membership/ottawa.toml",
        &ottawa("2025-01-01", UKR_PARTY, POL_PARTY),
    );
    let config = load(&dir);
    let mut store = Store::open(&config.db_path).expect("open");
    treatywatch::baseline::import(&mut store, &config, now()).expect("import");
    let policy = policy(&config);

    // Russia-style noise: "Estonia withdraws" about a state that never
    // joined moves nothing (the baseline says non-party).
    store
        .append(
            &[detection(
                "EST",
                "ottawa",
                Action::WithdrawalAnnounced,
                "wire",
                "est",
                now(),
            )],
            &policy,
            now(),
        )
        .expect("append");
    assert_eq!(status_of(&store, "EST"), Status::NonParty);

    store
        .append(
            &[detection(
                "UKR",
                "ottawa",
                Action::WithdrawalAnnounced,
                "wire",
                "ukr",
                at(2025, 6, 29),
            )],
            &policy,
            now(),
        )
        .expect("append");
    assert_eq!(status_of(&store, "UKR"), Status::WithdrawalAnnounced);
    let report = notify::run_pending(&mut store, &config, now(), Flush::Now).expect("notify");
    assert_eq!(report.sent.len(), 1, "{report:?}");
    let mail = server.accepted();
    assert_eq!(mail.len(), 1, "one digest, for the news only");
    let parsed = mail[0].parsed();
    assert_eq!(
        parsed.subject(),
        Some("[treatywatch] Ukraine · Ottawa Convention: party → withdrawal announced")
    );
    let text = parsed.body_text(0).map(|t| flat(&t)).expect("text part");
    assert!(
        text.contains("party since 2005-12-27 (baseline) → withdrawal announced"),
        "{text}"
    );
}

#[test]
fn a_baseline_never_overrides_newer_news_or_an_analyst_but_a_newer_list_beats_older_news() {
    let server = SmtpServer::start();
    let dir = desk(server.port);
    let config = load(&dir);
    let mut store = Store::open(&config.db_path).expect("open");
    let policy = policy(&config);
    // News first: Poland notified its withdrawal in June 2025; an analyst
    // set Ukraine by hand.
    store
        .append(
            &[detection(
                "POL",
                "ottawa",
                Action::WithdrawalNotified,
                "wire",
                "pol",
                at(2025, 6, 29),
            )],
            &policy,
            now(),
        )
        .expect("append");
    drop(store);
    stdout(
        &dir,
        &[
            "assert",
            "UKR",
            "ottawa",
            "withdrawal_approved",
            "--note",
            "Rada vote",
            "--date",
            "2025-06-10",
        ],
    );

    // Then a list from before the news that calls both parties.
    dir.write(
        "membership/ottawa.toml",
        &ottawa("2025-01-01", UKR_PARTY, POL_PARTY),
    );
    let config = load(&dir);
    let mut store = Store::open(&config.db_path).expect("open");
    let report = treatywatch::baseline::import(&mut store, &config, now()).expect("import");
    assert_eq!(report.new_events(), 3);
    assert_eq!(
        status_of(&store, "POL"),
        Status::WithdrawalNotified,
        "newer news stands"
    );
    assert_eq!(
        status_of(&store, "UKR"),
        Status::WithdrawalApproved,
        "the analyst stands"
    );
    assert_eq!(status_of(&store, "EST"), Status::NonParty);

    // A newer list that shows Poland's withdrawal as taken effect wins over
    // the older news, and old news of a stage the list shows moves nothing.
    dir.write(
        "membership/ottawa.toml",
        &ottawa(
            "2026-02-20",
            UKR_PARTY,
            "code = \"POL\"\nstatus = \"withdrawn\"\nwithdrawal_notified = \"2025-08-20\"\nwithdrawal_effective = \"2026-02-20\"",
        ),
    );
    let config = load(&dir);
    treatywatch::baseline::import(&mut store, &config, now()).expect("import");
    assert_eq!(status_of(&store, "POL"), Status::Withdrawn);
    store
        .append(
            &[detection(
                "POL",
                "ottawa",
                Action::Ratified,
                "wire",
                "pol-2012",
                at(2012, 12, 27),
            )],
            &policy,
            now(),
        )
        .expect("append");
    assert_eq!(
        status_of(&store, "POL"),
        Status::Withdrawn,
        "a 2012 report is history"
    );
    assert_eq!(
        store.projection().expect("stored"),
        store.rebuild(&policy, None).expect("rebuilt"),
        "replay agrees"
    );
    // None of this was mailed except what news caused.
    let report = notify::run_pending(&mut store, &config, now(), Flush::Now).expect("notify");
    let mail = server.accepted();
    assert!(
        mail.iter()
            .all(|m| !m.parsed().subject().unwrap_or("").contains("→ withdrawn")),
        "the baseline's withdrawn is not mailed: {report:?}"
    );
}

#[test]
fn an_edited_file_imports_only_the_entries_that_changed() {
    let server = SmtpServer::start();
    let dir = desk(server.port);
    dir.write(
        "membership/ottawa.toml",
        &ottawa("2025-01-01", UKR_PARTY, POL_PARTY),
    );
    stdout(&dir, &["baseline"]);
    // A corrected deposit date for Poland; the rest untouched.
    dir.write(
        "membership/ottawa.toml",
        &ottawa(
            "2025-01-01",
            UKR_PARTY,
            "code = \"POL\"\nstatus = \"party\"\njoined = \"2012-12-27\"\nby = \"ratification\"",
        ),
    );
    let dry = stdout(&dir, &["baseline", "--dry-run"]);
    assert!(dry.contains("would import 1 baseline entry"), "{dry}");
    let out = stdout(&dir, &["baseline"]);
    assert!(
        out.contains(
            "imported 1 baseline entry of 1 file (2 already in the log); 0 statuses moved"
        ),
        "{out}"
    );
    let events = stdout(&dir, &["events"]);
    let pol: Vec<&str> = events
        .lines()
        .filter(|l| l.contains(" baseline ") && l.contains("POL"))
        .collect();
    assert_eq!(pol.len(), 2, "{events}");
    assert!(pol[1].contains("by ratification"), "{}", pol[1]);
}

#[test]
fn assert_no_mail_records_history_without_mailing_it() {
    let server = SmtpServer::start();
    let dir = desk(server.port);
    let out = stdout(
        &dir,
        &[
            "assert",
            "UKR",
            "ottawa",
            "party",
            "--no-mail",
            "--date",
            "2005-12-27",
            "--note",
            "UNTC: ratification deposited",
        ],
    );
    assert!(out.contains("not mailed"), "{out}");
    stdout(&dir, &["digest", "--send"]);
    assert!(
        server.accepted().is_empty(),
        "a quiet assertion is not mailed"
    );

    stdout(
        &dir,
        &["assert", "POL", "ottawa", "party", "--note", "correction"],
    );
    stdout(&dir, &["digest", "--send"]);
    assert_eq!(server.accepted().len(), 1, "an ordinary assertion is");
    let status = stdout(&dir, &["status"]);
    assert!(
        status
            .lines()
            .any(|l| l.starts_with("UKR") && l.contains("party")),
        "{status}"
    );
}

#[test]
fn check_points_at_bad_membership_data() {
    let dir = desk(1);
    dir.write(
        "membership/bad.toml",
        r#"treaty = "ottawa"
depositary = "Secretary-General of the United Nations"
source = "test"
as_of = "2025-01-01"
others = "non_party"

[[state]]
code = "XXX"
status = "party"

[[state]]
code = "UKR"
status = "party"
joined = "1990-05-01"

[[state]]
code = "POL"
status = "withdrawal_notified"
withdrawal_notified = "2025-06-31"

[[state]]
code = "EST"
status = "withdrawn"
withdrawal_notified = "2025-06-27"
withdrawal_effective = "2025-01-27"
"#,
    );
    dir.write(
        "membership/other.toml",
        "treaty = \"start\"\ndepositary = \"x\"\nsource = \"y\"\nas_of = \"2025-01-01\"\nothers = \"maybe\"\n",
    );
    let out = dir.cmd(&["check"]).output().expect("run");
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    for expected in [
        "bad.toml:8:8: unknown state \"XXX\"",
        "bad.toml:14:10: UKR: joined 1990-05-01 is before the treaty opened (1997)",
        "bad.toml:19:23: POL: withdrawal_notified \"2025-06-31\" is not a date",
        "bad.toml:25:24: EST: withdrawal_effective 2025-01-27 is not after withdrawal_notified 2025-06-27",
        "other.toml:1:10: unknown treaty \"start\"",
        "other.toml:5:10: others = \"maybe\"",
    ] {
        assert!(err.contains(expected), "missing {expected:?} in:\n{err}");
    }
}

#[test]
fn the_shipped_config_leaves_no_tracked_cell_unknown() {
    let tmp = tempfile::tempdir().expect("dir");
    let db = tmp.path().join("fresh.db");
    let config = concat!(env!("CARGO_MANIFEST_DIR"), "/config/feeds.toml");
    let run = |args: &[&str]| {
        let out = assert_cmd::Command::cargo_bin("treatywatch")
            .expect("binary")
            .env_remove("TREATYWATCH_CONFIG")
            .args(["--config", config, "--db"])
            .arg(&db)
            .args(args)
            .output()
            .expect("run");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).expect("utf-8")
    };
    run(&["baseline"]);
    let status = run(&["status"]);
    let table: Vec<&str> = status
        .lines()
        .skip(1)
        .take_while(|l| !l.is_empty())
        .collect();
    assert_eq!(table.len(), 60, "10 states × 6 treaties:\n{status}");
    for row in table {
        assert!(!row.contains("unknown"), "{row}");
        assert!(
            row.contains("(baseline: ") && row.contains(" as of 20"),
            "{row}"
        );
    }
}

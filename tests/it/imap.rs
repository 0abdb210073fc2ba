//! Depositary notifications from a real IMAP server (Dovecot on loopback,
//! `imap_server`), through the real binary: the fixtures the Maildir test
//! uses give the same authoritative events once, however often the folder
//! is read and whether or not the cursor survives; a wrong password, an
//! unreachable server and a silent one are health errors that say what to
//! fix.

use std::net::{Ipv4Addr, TcpListener};
use std::path::Path;

use serde_json::Value;

use crate::imap_server::{Dovecot, PASSWORD, free_port};
use crate::mailbox::{FIXTURES, detections, json_lines, poll};
use crate::support::ConfigDir;

fn config(port: u16, extra: &str) -> String {
    format!(
        r#"[data]
states = "states.toml"
treaties = "treaties.toml"

[tracking]
states = ["UKR", "POL", "EST"]
treaties = ["ottawa", "ctbt"]

[[mailbox]]
id = "un-imap"
name = "UN Treaty Section over IMAP"

[mailbox.imap]
host = "127.0.0.1"
port = {port}
user = "depo"
password_file = "imap-password"
tls = false
{extra}
"#
    )
}

fn setup(port: u16, extra: &str, password: &str) -> ConfigDir {
    let dir = ConfigDir::new(&config(port, extra));
    dir.write("imap-password", &format!("{password}\n"));
    dir
}

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(Path::new(FIXTURES).join(name)).unwrap()
}

/// (state, treaty, action, day) of every detection, sorted.
fn found(dir: &ConfigDir) -> Vec<(String, String, String, String)> {
    let mut got: Vec<_> = detections(dir)
        .iter()
        .map(|d: &Value| {
            assert_eq!(d["authoritative"], true, "{d}");
            assert_eq!(d["source"], "un-imap", "{d}");
            (
                d["state"].as_str().unwrap().to_string(),
                d["treaty"].as_str().unwrap().to_string(),
                d["action"].as_str().unwrap().to_string(),
                d["occurred_at"].as_str().unwrap()[..10].to_string(),
            )
        })
        .collect();
    got.sort();
    got
}

fn want() -> Vec<(String, String, String, String)> {
    [
        ("EST", "ottawa", "withdrawal_notified", "2025-06-27"),
        ("POL", "ctbt", "ratified", "2024-05-02"),
        ("UKR", "ctbt", "signed", "2025-03-03"),
    ]
    .iter()
    .map(|(a, b, c, d)| (a.to_string(), b.to_string(), c.to_string(), d.to_string()))
    .collect()
}

#[test]
fn notices_in_an_imap_folder_become_the_same_events_once() {
    let server = Dovecot::start();
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
        server.deliver(&fixture(f), n as u32);
    }
    let dir = setup(server.port, "", PASSWORD);
    let (stdout, stderr) = poll(&dir);
    assert!(
        stdout.contains("7 messages (7 new): 3 notices, 1 with no status change, 1 unmapped, 2 unrecognised; 3 detections"),
        "{stdout}\n{stderr}\n{}",
        server.log()
    );
    for why in [
        "no depositary reference",
        "no \"The above action was effected on",
        "un_chapter = \"XXVI-7\"",
    ] {
        assert!(stderr.contains(why), "stderr should say {why}:\n{stderr}");
    }
    assert_eq!(found(&dir), want());
    let withdrawal = detections(&dir)
        .into_iter()
        .find(|d| d["state"] == "EST")
        .unwrap();
    assert_eq!(withdrawal["takes_effect"], "2025-12-27");

    // Read again: nothing new is even fetched (the cursor), nothing logged.
    let (again, stderr) = poll(&dir);
    assert!(again.contains("0 messages (0 new)"), "{again}");
    assert!(
        !stderr.contains("not a depositary notification"),
        "{stderr}"
    );

    // The withdrawal delivered a second time (another subscription, another
    // Message-ID): one message read, still one observation.
    let text = String::from_utf8(fixture("withdrawal-est.eml")).unwrap();
    server.deliver(
        text.replace(
            "cn412-2025@treaties.example.org",
            "cn412-2025.by-participant@treaties.example.org",
        )
        .as_bytes(),
        20,
    );
    let (third, _) = poll(&dir);
    assert!(third.contains("1 message (1 new): 1 notice"), "{third}");
    assert_eq!(found(&dir), want());

    // The cursor lost (the folder named another way is another mailbox
    // location, so its state starts afresh): every message is fetched again
    // and none is processed twice.
    dir.write(
        "feeds.toml",
        &config(server.port, "").replace("tls = false", "tls = false\nfolder = \"inbox\""),
    );
    let (fourth, stderr) = poll(&dir);
    assert!(fourth.contains("8 messages (0 new)"), "{fourth}");
    assert!(
        !stderr.contains("not a depositary notification"),
        "{stderr}"
    );
    assert_eq!(found(&dir), want());

    // The statuses moved on the notices, and nothing marked them read.
    let out = dir.cmd(&["status", "--json"]).output().unwrap();
    let rows = json_lines(&out.stdout);
    let est = rows
        .iter()
        .find(|r| r["state"] == "EST" && r["treaty"] == "ottawa")
        .unwrap();
    assert_eq!(est["status"], "withdrawal_notified");
    assert_eq!(est["confirmed_by"], "C.N.412.2025.TREATIES-XXVI.5");
    let seen_flags = std::fs::read_dir(server.maildir().join("cur"))
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().contains(":2,S"))
        .count();
    assert_eq!(seen_flags, 0, "EXAMINE and BODY.PEEK set no \\Seen flag");
}

#[test]
fn a_wrong_password_is_a_health_error_that_says_what_to_fix() {
    let server = Dovecot::start();
    server.deliver(&fixture("withdrawal-est.eml"), 1);
    let dir = setup(server.port, "", "not-the-password");
    let out = dir.cmd(&["poll"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("refused the login of \"depo\""), "{stdout}");
    assert!(
        stdout.contains("check `user` and the password in")
            && stdout.contains("imap-password (password_file)"),
        "{stdout}"
    );
    assert!(stdout.contains("1 failure"), "{stdout}");
    assert!(detections(&dir).is_empty());
    // `status` shows the mailbox failing with the same words.
    let status = dir.cmd(&["status"]).output().unwrap();
    let status = String::from_utf8_lossy(&status.stdout);
    let line = status
        .lines()
        .find(|l| l.starts_with("un-imap"))
        .unwrap_or_else(|| panic!("no mailbox line:\n{status}"));
    assert!(line.contains("refused the login"), "{line}");

    // Fixed, the next poll reads the notice.
    dir.write("imap-password", PASSWORD);
    let (stdout, _) = poll(&dir);
    assert!(stdout.contains("1 notice"), "{stdout}");
}

#[test]
fn an_unreachable_or_silent_server_is_a_failure_not_a_hang() {
    // Nothing listens on this port.
    let dir = setup(free_port(), "", PASSWORD);
    let out = dir.cmd(&["poll"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("cannot connect to the IMAP server 127.0.0.1:"),
        "{stdout}"
    );
    assert!(stdout.contains("check `host` and `port`"), "{stdout}");

    // A server that accepts the connection and never says a word.
    let silent = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
    let port = silent.local_addr().unwrap().port();
    let dir = setup(port, "timeout = \"1s\"", PASSWORD);
    let out = dir.cmd(&["poll"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("did not finish the greeting within 1s"),
        "{stdout}"
    );
    drop(silent);
}

#[test]
fn check_refuses_clear_text_to_another_host_and_inline_passwords() {
    let dir = ConfigDir::new(
        &config(993, "password = \"hunter2\"")
            .replace("127.0.0.1", "imap.example.org")
            .replace("maildir", "x"),
    );
    let out = dir.cmd(&["check"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    for want in [
        "`tls = false` is only allowed for a server on this machine",
        "inline IMAP passwords are refused",
        "feeds.toml:",
    ] {
        assert!(stderr.contains(want), "check should say {want}:\n{stderr}");
    }
}

/// The daemon reads an IMAP mailbox on its mailman task: the notices
/// arrive in the log while the writer goes on, and a stop is prompt.
#[test]
fn the_daemon_reads_an_imap_mailbox_off_the_writer() {
    use std::process::{Command, Stdio};
    let server = Dovecot::start();
    for (n, f) in [
        "withdrawal-est.eml",
        "accession-pol.eml",
        "signature-ukr.eml",
    ]
    .iter()
    .enumerate()
    {
        server.deliver(&fixture(f), n as u32);
    }
    let dir = setup(server.port, "", PASSWORD);
    let mut child = crate::crash::KillOnDrop(
        Command::new(assert_cmd::cargo::cargo_bin("treatywatch"))
            .env_remove("TREATYWATCH_CONFIG")
            .env_remove("NOTIFY_SOCKET")
            .env_remove("CREDENTIALS_DIRECTORY")
            .arg("--config")
            .arg(dir.feeds())
            .arg("run")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start daemon"),
    );
    // `events` may fail while the daemon is still creating the database.
    crate::daemon::wait_for("three notices in the log", || {
        dir.cmd(&["events", "--json"]).output().is_ok_and(|out| {
            out.status.success()
                && json_lines(&out.stdout)
                    .iter()
                    .filter(|e| e["kind"] == "detection")
                    .count()
                    == 3
        })
    });
    assert_eq!(found(&dir), want());
    let status = Command::new("kill")
        .args(["-TERM", &child.0.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let exit = child.0.wait().unwrap();
    assert!(exit.success(), "{exit:?}");
}

/// Over TLS, as a real server is read: a certificate from a CA the system
/// does not know is refused with what to do, and trusted with `ca_file`.
#[test]
fn tls_with_a_private_ca_needs_ca_file() {
    let server = Dovecot::start_tls();
    server.deliver(&fixture("withdrawal-est.eml"), 1);
    let untrusted = ConfigDir::new(&config(server.port, "").replace("tls = false\n", ""));
    untrusted.write("imap-password", PASSWORD);
    let out = untrusted.cmd(&["poll"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("TLS with the IMAP server 127.0.0.1:")
            // the certificate was refused, not the connection dropped
            && stdout.contains("UnknownIssuer")
            && stdout.contains("trust a private CA with `ca_file`"),
        "{stdout}\n{}\n{}",
        String::from_utf8_lossy(&out.stderr),
        server.log()
    );

    let ca = server.dir.path().join("ca.pem");
    let trusted = ConfigDir::new(
        &config(
            server.port,
            &format!("ca_file = {:?}", ca.display().to_string()),
        )
        .replace("tls = false\n", ""),
    );
    trusted.write("imap-password", PASSWORD);
    let (stdout, stderr) = poll(&trusted);
    assert!(
        stdout.contains("1 message (1 new): 1 notice"),
        "{stdout}\n{stderr}\n{}",
        server.log()
    );
    assert_eq!(found(&trusted).len(), 1);
}

/// `check` looks for the IMAP password where a read will: a missing file
/// is named at the mailbox, with how to hand it to the service.
#[test]
fn check_names_a_missing_imap_password_file() {
    let dir = ConfigDir::new(&config(993, ""));
    let out = dir
        .cmd(&["check"])
        .env_remove("CREDENTIALS_DIRECTORY")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("mailbox un-imap: [mailbox.imap] password_file")
            && stderr.contains("imap-password does not exist")
            && stderr.contains("LoadCredential=imap-password:"),
        "{stderr}"
    );
    dir.write("imap-password", PASSWORD);
    dir.cmd(&["check"])
        .env_remove("CREDENTIALS_DIRECTORY")
        .assert()
        .success();
}

//! `treatywatch run` as systemd would run it: a child process with
//! NOTIFY_SOCKET pointing at a socket this test reads, feeds on loopback,
//! SIGHUP with a good and a broken config, then SIGTERM.

use std::io::Read;
use std::os::unix::net::UnixDatagram;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::feed_server::Reply;
use crate::polling::{PollEnv, RSS, fixture};

/// Generous deadlines for waiting on the child; they bound a hang, they do
/// not measure speed.
const WAIT: Duration = Duration::from_secs(30);

pub(crate) fn signal(child: &Child, name: &str) {
    let status = Command::new("kill")
        .args([&format!("-{name}"), &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(status.success(), "kill -{name}");
}

/// Waits until `ready()` holds or the deadline passes.
pub(crate) fn wait_for(what: &str, mut ready: impl FnMut() -> bool) {
    let deadline = Instant::now() + WAIT;
    while !ready() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Reads notify datagrams until one contains `wanted`.
fn expect_notify(socket: &UnixDatagram, wanted: &str) -> String {
    let deadline = Instant::now() + WAIT;
    let mut buf = [0u8; 4096];
    loop {
        assert!(Instant::now() < deadline, "no {wanted} from the daemon");
        if let Ok(n) = socket.recv(&mut buf) {
            let message = String::from_utf8_lossy(&buf[..n]).to_string();
            if message
                .lines()
                .any(|l| l == wanted || l.starts_with(wanted))
            {
                return message;
            }
        }
    }
}

#[test]
fn daemon_reports_ready_polls_reloads_and_stops_cleanly() {
    let env = PollEnv::new(&[("first", "/first.xml")]);
    env.server
        .set("/first.xml", Reply::feed(fixture("rss2.xml"), RSS));
    env.server
        .set("/second.xml", Reply::feed(fixture("atom.xml"), RSS));

    let socket_path = env.dir.path().join("notify.sock");
    let socket = UnixDatagram::bind(&socket_path).expect("bind notify socket");
    socket
        .set_read_timeout(Some(Duration::from_millis(200)))
        .expect("timeout");
    let log_path = env.dir.path().join("daemon.log");
    let mut child = crate::crash::KillOnDrop(
        Command::new(assert_cmd::cargo::cargo_bin("treatywatch"))
            .env_remove("TREATYWATCH_CONFIG")
            .env("NOTIFY_SOCKET", &socket_path)
            .env("RUST_LOG", "info")
            .arg("--config")
            .arg(env.config_path())
            .args(["run", "--log-format", "json"])
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log_path).expect("log file"))
            .spawn()
            .expect("start daemon"),
    );
    let log = || {
        let mut text = String::new();
        let _ = std::fs::File::open(&log_path).and_then(|mut f| f.read_to_string(&mut text));
        text
    };

    expect_notify(&socket, "READY=1");
    wait_for("the configured feed to be polled", || {
        !env.server.seen("/first.xml").is_empty()
    });
    wait_for("a STATUS line", || {
        expect_notify(&socket, "STATUS=").contains("feeds")
    });

    // A valid new config: the added feed gets polled.
    env.write_config(&[("first", "/first.xml"), ("second", "/second.xml")]);
    signal(&child.0, "HUP");
    wait_for("the added feed to be polled", || {
        !env.server.seen("/second.xml").is_empty()
    });
    assert!(log().contains("configuration reloaded"), "{}", log());

    // A broken config: logged, refused, and the daemon keeps running.
    std::fs::write(
        env.config_path(),
        "[tracking]\nstates = [\"XYZ\"]\ntreaties = [\"ottawa\"]\n",
    )
    .expect("break config");
    signal(&child.0, "HUP");
    wait_for("the reload to be refused", || {
        log().contains("NOT reloaded")
    });
    assert!(
        log().contains("unknown state code"),
        "the errors are logged: {}",
        log()
    );
    assert!(
        child.0.try_wait().expect("try_wait").is_none(),
        "still running on the old config"
    );

    signal(&child.0, "TERM");
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(status) = child.0.try_wait().expect("wait") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.0.kill();
            panic!("daemon did not stop within 10 s of SIGTERM:\n{}", log());
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(status.code(), Some(0), "{}", log());

    // Restore a valid config and check the log and table agree.
    env.write_config(&[("first", "/first.xml"), ("second", "/second.xml")]);
    let replay = env.run(&["replay"]);
    assert!(
        replay.status.success(),
        "{}",
        String::from_utf8_lossy(&replay.stdout)
    );
}

#[test]
fn daemon_refuses_to_start_on_a_broken_config() {
    let env = PollEnv::new(&[]);
    std::fs::write(
        env.config_path(),
        "[tracking]\nstates = [\"UKR\"]\ntreaties = [\"nope\"]\n",
    )
    .expect("write");
    let out = env.run(&["run"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("feeds.toml:3:"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn a_log_written_to_a_file_has_no_colour_codes() {
    let env = PollEnv::new(&[("first", "/first.xml")]);
    env.server
        .set("/first.xml", Reply::feed(fixture("rss2.xml"), RSS));
    let log_path = env.dir.path().join("daemon.log");
    let mut child = crate::crash::KillOnDrop(
        Command::new(assert_cmd::cargo::cargo_bin("treatywatch"))
            .env_remove("TREATYWATCH_CONFIG")
            .env_remove("JOURNAL_STREAM")
            .env_remove("NO_COLOR")
            .env("RUST_LOG", "info")
            .arg("--config")
            .arg(env.config_path())
            .args(["run", "--log-format", "human"])
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log_path).expect("log file"))
            .spawn()
            .expect("start daemon"),
    );
    let log = || std::fs::read_to_string(&log_path).unwrap_or_default();
    wait_for("a logged poll", || log().contains("first"));
    signal(&child.0, "TERM");
    let _ = child.0.wait();
    let text = log();
    assert!(text.contains("INFO"), "human lines: {text}");
    assert!(
        !text.contains('\u{1b}'),
        "no ANSI escapes in a file: {text:?}"
    );
}

#[test]
fn each_delivery_and_failed_poll_is_one_log_line_without_rust_debug_values() {
    let env = PollEnv::new(&[]);
    let now = chrono::Utc::now().to_rfc2822();
    env.server.set(
        "/news.xml",
        Reply::feed(
            format!(
                "<rss version=\"2.0\"><channel><title>News</title><link>https://n.example.org/</link><description>d</description>\
                 <item><title>Austria ratifies the Treaty on the Prohibition of Nuclear Weapons</title><guid>https://n.example.org/1</guid><pubDate>{now}</pubDate>\
                 <description>Austria deposited its instrument of ratification of the nuclear weapons ban treaty on Monday.</description></item></channel></rss>"
            ),
            RSS,
        ),
    );
    env.server.set("/broken.xml", Reply::status(500));
    std::fs::write(
        env.config_path(),
        format!(
            "[tracking]\nstates = [\"AUT\"]\ntreaties = [\"tpnw\"]\n\n\
             [notify]\nto = [\"desk@example.org\"]\ndebounce = \"0s\"\ntransport = \"file\"\nfolder = \"digests\"\n\n\
             [[feed]]\nid = \"news\"\nurl = \"{}\"\n\n[[feed]]\nid = \"broken\"\nurl = \"{}\"\n",
            env.server.url("/news.xml"),
            env.server.url("/broken.xml")
        ),
    )
    .expect("config");
    let log_path = env.dir.path().join("daemon.log");
    let child = crate::crash::KillOnDrop(
        Command::new(assert_cmd::cargo::cargo_bin("treatywatch"))
            .env_remove("TREATYWATCH_CONFIG")
            .env_remove("JOURNAL_STREAM")
            .env("RUST_LOG", "info")
            .arg("--config")
            .arg(env.config_path())
            .args(["run", "--log-format", "human"])
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log_path).expect("log file"))
            .spawn()
            .expect("start daemon"),
    );
    let log = || std::fs::read_to_string(&log_path).unwrap_or_default();
    let digests = env.dir.path().join("digests");
    let delivered = || {
        std::fs::read_dir(&digests)
            .map(|d| {
                d.flatten()
                    .filter(|e| e.path().extension().is_some_and(|x| x == "eml"))
                    .count()
            })
            .unwrap_or(0)
    };
    wait_for("a digest delivered and a failed poll logged", || {
        delivered() == 1 && log().contains("poll failed")
    });
    signal(&child.0, "TERM");
    wait_for("the daemon to stop", || log().contains("stopped"));
    let text = log();
    let lines = |what: &str| text.lines().filter(|l| l.contains(what)).count();
    assert_eq!(lines("digest sent"), 1, "one line per delivery:\n{text}");
    assert_eq!(lines("poll failed"), 1, "one line per failed poll:\n{text}");
    assert!(
        text.lines()
            .any(|l| l.contains("digest sent") && l.contains("digest=<digest.")),
        "the Message-ID under its field name:\n{text}"
    );
    assert!(
        text.lines()
            .any(|l| l.contains("poll failed") && l.contains("next_poll=20")),
        "the next poll as a time:\n{text}"
    );
    assert!(
        !text.contains("Some("),
        "no Rust Option in a log line:\n{text}"
    );
    assert!(
        !text.contains("None"),
        "no Rust Option in a log line:\n{text}"
    );
}

#[test]
fn the_daemon_fetches_feeds_on_one_host_at_most_per_host_at_once() {
    let env = PollEnv::new(&[]);
    let feeds: Vec<(String, String)> = (1..=4)
        .map(|n| (format!("section{n}"), format!("/section{n}.xml")))
        .collect();
    for (_, path) in &feeds {
        env.server.set(
            path,
            Reply::feed(fixture("rss2.xml"), RSS)
                .late(crate::polling::HOLD)
                .gated(2),
        );
    }
    let refs: Vec<(&str, &str)> = feeds
        .iter()
        .map(|(id, p)| (id.as_str(), p.as_str()))
        .collect();
    env.write_config_with(&refs, "per_host = 2\n");
    let child = crate::crash::KillOnDrop(
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
    wait_for("every feed fetched", || {
        feeds
            .iter()
            .all(|(_, path)| env.server.seen(path).iter().any(|s| s.status == 200))
    });
    assert_eq!(env.server.peak_in_flight(&env.server.host()), 2);
    signal(&child.0, "TERM");
}

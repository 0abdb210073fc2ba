//! Webhooks against a real HTTP receiver on loopback: each status change is
//! posted once per webhook in its format (json, slack, matrix, ntfy) with an
//! idempotency key; a 500 is retried with the same key; a 404 is refused for
//! good; a 429 waits what its Retry-After says; feed text cannot become
//! Slack or Matrix markup; a daemon SIGKILLed while the receiver holds its request open
//! resends at most once, with the same key; a receiver that never answers
//! holds up no mail; `check` points at a bad webhook's line.
//!
//! Every wait is a loop on something observable, bounded by a deadline.

use std::collections::{HashMap, VecDeque};
use std::fmt::Write as _;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::crash::KillOnDrop;
use crate::feed_server::Reply;
use crate::polling::PollEnv;
use crate::smtp_server::SmtpServer;

/// Bounds every wait; a hang fails the test instead of stalling it.
const WAIT: Duration = Duration::from_secs(60);

/// How the receiver answers one request.
#[derive(Debug, Clone)]
enum Answer {
    Status(u16),
    /// A status with one more header line ("Retry-After: 7200").
    With(u16, &'static str),
    /// Says nothing and keeps the connection open until the client closes it.
    Hold,
}

/// One request as the receiver saw it.
#[derive(Debug, Clone)]
struct Seen {
    method: String,
    path: String,
    /// Lower-cased names.
    headers: HashMap<String, String>,
    body: Vec<u8>,
    /// The status it was answered with; `None` while held.
    answered: Option<u16>,
    /// A held request's connection was closed by the client.
    closed: bool,
}

impl Seen {
    fn key(&self) -> String {
        self.headers
            .get("idempotency-key")
            .cloned()
            .unwrap_or_else(|| panic!("no Idempotency-Key: {self:#?}"))
    }

    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).expect("a JSON body")
    }

    fn accepted(&self) -> bool {
        self.answered.is_some_and(|s| (200..300).contains(&s))
    }
}

/// A hand-written HTTP/1.1 receiver: answers each request with the next
/// scripted `Answer` (then 200), one request per connection.
#[derive(Clone)]
struct Receiver {
    port: u16,
    script: Arc<Mutex<VecDeque<Answer>>>,
    log: Arc<Mutex<Vec<Seen>>>,
}

impl Receiver {
    fn start(script: &[Answer]) -> Receiver {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind loopback");
        let receiver = Receiver {
            port: listener.local_addr().expect("addr").port(),
            script: Arc::new(Mutex::new(script.iter().cloned().collect())),
            log: Arc::default(),
        };
        let handler = receiver.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let handler = handler.clone();
                std::thread::spawn(move || handler.serve(stream));
            }
        });
        receiver
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    fn seen(&self) -> Vec<Seen> {
        self.log.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    fn serve(&self, stream: TcpStream) {
        let mut reader = BufReader::new(stream.try_clone().expect("clone stream"));
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        let mut parts = line.split_whitespace();
        let method = parts.next().unwrap_or_default().to_string();
        let path = parts.next().unwrap_or_default().to_string();
        let mut headers = HashMap::new();
        loop {
            let mut h = String::new();
            if reader.read_line(&mut h).unwrap_or(0) == 0 || h.trim().is_empty() {
                break;
            }
            if let Some((name, value)) = h.split_once(':') {
                headers.insert(name.trim().to_ascii_lowercase(), value.trim().to_string());
            }
        }
        let length: usize = headers
            .get("content-length")
            .and_then(|l| l.parse().ok())
            .unwrap_or(0);
        let mut body = vec![0; length];
        if reader.read_exact(&mut body).is_err() {
            return;
        }
        let answer = self
            .script
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .pop_front()
            .unwrap_or(Answer::Status(200));
        let index = {
            let mut log = self.log.lock().unwrap_or_else(|p| p.into_inner());
            log.push(Seen {
                method,
                path,
                headers,
                body,
                answered: None,
                closed: false,
            });
            log.len() - 1
        };
        match answer {
            Answer::Hold => {
                // Read until the client gives up (its timeout, or it died).
                let mut rest = [0u8; 256];
                while reader.read(&mut rest).is_ok_and(|n| n > 0) {}
                self.log.lock().unwrap_or_else(|p| p.into_inner())[index].closed = true;
            }
            Answer::Status(code) | Answer::With(code, _) => {
                let extra = match answer {
                    Answer::With(_, header) => format!("{header}\r\n"),
                    _ => String::new(),
                };
                let body = if code < 300 { "ok" } else { "receiver says no" };
                let mut stream = stream;
                let _ = write!(
                    stream,
                    "HTTP/1.1 {code} X\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n{extra}\r\n{body}",
                    body.len()
                );
                let _ = stream.flush();
                self.log.lock().unwrap_or_else(|p| p.into_inner())[index].answered = Some(code);
            }
        }
    }
}

fn wait_for(what: &str, log: Option<&std::path::Path>, mut ready: impl FnMut() -> bool) {
    let deadline = Instant::now() + WAIT;
    while !ready() {
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}\n{}",
            log.and_then(|l| std::fs::read_to_string(l).ok())
                .unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// One item reporting that Austria ratified the TPNW (unknown → party).
fn feed() -> String {
    feed_titled("Austria ratifies the Treaty on the Prohibition of Nuclear Weapons")
}

/// The same item under `title` (XML-escaped by the caller).
fn feed_titled(title: &str) -> String {
    let now = chrono::Utc::now().to_rfc2822();
    format!(
        "<rss version=\"2.0\"><channel><title>Wire</title><link>https://wire.example.org/</link><description>d</description>\
         <item><title>{title}</title><guid>https://wire.example.org/1</guid><link>https://wire.example.org/austria</link><pubDate>{now}</pubDate>\
         <description>Austria deposited its instrument of ratification of the nuclear weapons ban treaty on Monday.</description></item></channel></rss>"
    )
}

/// A config tracking AUT × tpnw with one feed and `notify` (TOML tables).
fn write_config(env: &PollEnv, notify: &str) {
    env.server
        .set("/wire.xml", Reply::feed(feed(), "application/rss+xml"));
    let toml = format!(
        "[tracking]\nstates = [\"AUT\"]\ntreaties = [\"tpnw\"]\n\n[fetch]\ntimeout = \"5s\"\n\n{notify}\n\
         [[feed]]\nid = \"wire\"\nurl = \"{}\"\ninterval = \"1h\"\n",
        env.server.url("/wire.xml")
    );
    std::fs::write(env.config_path(), toml).expect("write config");
}

fn webhook(id: &str, url: &str, format: &str, extra: &str) -> String {
    format!("[[notify.webhook]]\nid = \"{id}\"\nurl = \"{url}\"\nformat = \"{format}\"\n{extra}\n")
}

fn poll(env: &PollEnv) -> String {
    let out = env.run(&["poll"]);
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "poll panicked:\n{stderr}");
    stdout
}

/// `digest_sent` and `digest_refused` events, by recipient.
fn deliveries(env: &PollEnv, kind: &str) -> Vec<Value> {
    env.events(kind)
}

const MATRIX_PATH: &str = "/_matrix/client/v3/rooms/!room:example.org/send/m.room.message";

#[test]
fn a_status_change_is_posted_once_to_each_webhook_in_its_format() {
    let receiver = Receiver::start(&[]);
    let env = PollEnv::new(&[]);
    std::fs::write(env.dir.path().join("hook-token"), "s3cret\n").expect("token");
    let hooks = [
        webhook(
            "script",
            &receiver.url("/json"),
            "json",
            "token_file = \"hook-token\"",
        ),
        webhook("newsroom", &receiver.url("/slack"), "slack", ""),
        webhook("room", &receiver.url(MATRIX_PATH), "matrix", ""),
        webhook("phone", &receiver.url("/ntfy"), "ntfy", ""),
    ];
    write_config(
        &env,
        &format!("[notify]\ndebounce = \"0s\"\n\n{}", hooks.concat()),
    );

    let out = poll(&env);
    let seen = receiver.seen();
    assert_eq!(seen.len(), 4, "{out}\n{seen:#?}");
    let by = |prefix: &str| {
        let hits: Vec<&Seen> = seen.iter().filter(|s| s.path.starts_with(prefix)).collect();
        assert_eq!(hits.len(), 1, "one request to {prefix}: {seen:#?}");
        hits[0].clone()
    };

    let json = by("/json");
    assert_eq!(json.method, "POST");
    assert_eq!(json.headers["content-type"], "application/json");
    assert_eq!(json.headers["authorization"], "Bearer s3cret");
    let body = json.json();
    assert_eq!(body["kind"], "status_changed", "{body}");
    assert_eq!(
        (&body["state"], &body["treaty"], &body["from"], &body["to"]),
        (
            &"AUT".into(),
            &"tpnw".into(),
            &"unknown".into(),
            &"party".into()
        ),
        "{body}"
    );
    assert_eq!(body["idempotency_key"], json.key());
    assert_eq!(body["webhook"], "script");
    assert!(body["seq"].is_i64(), "the events --json shape: {body}");
    assert!(
        body["evidence"]["sentence"]
            .as_str()
            .is_some_and(|s| s.contains("Austria ratifies the Treaty")),
        "{body}"
    );

    let slack = by("/slack");
    assert_eq!(slack.method, "POST");
    assert!(!slack.headers.contains_key("authorization"));
    let text = slack.json()["text"].as_str().expect("text").to_string();
    assert!(text.starts_with("*Austria* · "), "{text}");
    assert!(text.contains("→ *party*"), "{text}");
    assert!(text.contains("> Austria ratifies the Treaty"), "{text}");
    assert!(
        text.contains("<https://wire.example.org/austria|"),
        "{text}"
    );

    let matrix = by(MATRIX_PATH);
    assert_eq!(matrix.method, "PUT");
    assert_eq!(
        matrix.path,
        format!("{MATRIX_PATH}/{}", matrix.key()),
        "the transaction id is the idempotency key"
    );
    let event = matrix.json();
    assert_eq!(event["msgtype"], "m.text");
    assert_eq!(event["format"], "org.matrix.custom.html");
    assert!(
        event["body"]
            .as_str()
            .is_some_and(|b| b.contains("Austria")),
        "{event}"
    );
    let html = event["formatted_body"].as_str().expect("formatted_body");
    assert!(html.starts_with("<b>Austria</b>"), "{html}");
    assert!(
        html.contains("<blockquote>Austria ratifies the Treaty"),
        "{html}"
    );

    let ntfy = by("/ntfy");
    assert_eq!(ntfy.method, "POST");
    assert_eq!(
        ntfy.headers["title"],
        "Austria: party (Nuclear Weapon Ban Treaty (TPNW))"
    );
    assert_eq!(ntfy.headers["tags"], "tpnw,AUT,party");
    assert_eq!(ntfy.headers["click"], "https://wire.example.org/austria");
    let text = String::from_utf8(ntfy.body.clone()).expect("utf-8");
    assert!(text.contains("Austria ratifies the Treaty"), "{text}");

    let mut keys: Vec<String> = seen.iter().map(Seen::key).collect();
    keys.sort();
    keys.dedup();
    assert_eq!(keys.len(), 4, "one key per (change, recipient): {keys:?}");

    // Recorded once each; a second poll posts nothing more.
    let sent = deliveries(&env, "digest_sent");
    let mut recipients: Vec<&str> = sent
        .iter()
        .filter_map(|e| e["recipient"].as_str())
        .collect();
    recipients.sort_unstable();
    assert_eq!(
        recipients,
        [
            "webhook:newsroom",
            "webhook:phone",
            "webhook:room",
            "webhook:script"
        ]
    );
    poll(&env);
    assert_eq!(receiver.seen().len(), 4, "{:#?}", receiver.seen());
}

#[test]
fn a_500_is_retried_with_the_same_key_and_accepted_once() {
    let receiver = Receiver::start(&[Answer::Status(500)]);
    let env = PollEnv::new(&[]);
    write_config(
        &env,
        &format!(
            "[notify]\ndebounce = \"0s\"\n\n{}",
            webhook("script", &receiver.url("/hook"), "json", "")
        ),
    );

    let first = poll(&env);
    assert!(
        first.contains("webhook:script NOT sent") && first.contains("answered 500"),
        "{first}"
    );
    assert!(deliveries(&env, "digest_sent").is_empty());
    // The next pass retries it (poll sends what is pending at once).
    poll(&env);
    poll(&env);
    let seen = receiver.seen();
    assert_eq!(seen.len(), 2, "{seen:#?}");
    assert_eq!(seen[0].answered, Some(500));
    assert_eq!(seen[1].answered, Some(200));
    assert_eq!(seen[0].key(), seen[1].key());
    assert_eq!(
        seen[0].body, seen[1].body,
        "the frozen request, byte for byte"
    );
    assert_eq!(seen.iter().filter(|s| s.accepted()).count(), 1);
    assert_eq!(deliveries(&env, "digest_sent").len(), 1);
}

#[test]
fn a_404_is_refused_for_good_and_the_admins_are_told() {
    let receiver = Receiver::start(&[Answer::Status(404)]);
    let env = PollEnv::new(&[]);
    write_config(
        &env,
        &format!(
            "[notify]\ndebounce = \"0s\"\nto = [\"admin@example.org\"]\n\n{}",
            webhook("script", &receiver.url("/gone"), "json", "")
        ),
    );
    let out = poll(&env);
    assert!(
        out.contains("refused the change with 404") && out.contains("receiver says no"),
        "the status and the first bytes of the reply: {out}"
    );
    poll(&env);
    assert_eq!(
        receiver.seen().len(),
        1,
        "not retried: {:#?}",
        receiver.seen()
    );
    let refused = deliveries(&env, "digest_refused");
    assert_eq!(refused.len(), 1, "{refused:#?}");
    assert_eq!(refused[0]["recipient"], "webhook:script");
    assert_eq!(refused[0]["code"], 404);
    assert_eq!(refused[0]["carry"], false);
    // The admin's digests (.eml files) carry the change and then the alert.
    let folder = env.dir.path().join("data/digests");
    let mail: String = std::fs::read_dir(&folder)
        .expect("digest folder")
        .flatten()
        .map(|f| std::fs::read_to_string(f.path()).unwrap_or_default())
        .collect();
    assert!(mail.contains("Webhook refused: script"), "{mail}");
}

fn start(env: &PollEnv, log: &std::path::Path) -> KillOnDrop {
    KillOnDrop(
        Command::new(assert_cmd::cargo::cargo_bin("treatywatch"))
            .env_remove("TREATYWATCH_CONFIG")
            .env_remove("NOTIFY_SOCKET")
            .env("RUST_LOG", "info")
            .arg("--config")
            .arg(env.config_path())
            .args(["run", "--log-format", "human"])
            .stdout(Stdio::null())
            .stderr(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(log)
                    .expect("log file"),
            )
            .spawn()
            .expect("start daemon"),
    )
}

fn terminate(child: &mut KillOnDrop, log: &std::path::Path) {
    let status = Command::new("kill")
        .args(["-TERM", &child.0.id().to_string()])
        .status()
        .expect("kill");
    assert!(status.success());
    let deadline = Instant::now() + WAIT;
    loop {
        if let Some(status) = child.0.try_wait().expect("wait") {
            assert_eq!(
                status.code(),
                Some(0),
                "{}",
                std::fs::read_to_string(log).unwrap_or_default()
            );
            return;
        }
        assert!(Instant::now() < deadline, "the daemon did not stop");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_daemon_killed_during_a_post_resends_it_once_with_the_same_key() {
    let receiver = Receiver::start(&[Answer::Hold]);
    let env = PollEnv::new(&[]);
    write_config(
        &env,
        &format!(
            "[notify]\ndebounce = \"0s\"\n\n{}",
            webhook(
                "script",
                &receiver.url("/hook"),
                "json",
                "timeout = \"60s\""
            )
        ),
    );
    let log = env.dir.path().join("daemon.log");
    let mut daemon = start(&env, &log);
    wait_for("the held request", Some(&log), || {
        receiver.seen().len() == 1
    });
    // SIGKILL while the receiver holds the request: no outcome recorded.
    daemon.0.kill().expect("SIGKILL");
    daemon.0.wait().expect("reap");
    wait_for("the receiver to see the connection drop", None, || {
        receiver.seen()[0].closed
    });
    assert!(deliveries(&env, "digest_sent").is_empty());

    let mut daemon = start(&env, &log);
    wait_for("the resend recorded", Some(&log), || {
        !deliveries(&env, "digest_sent").is_empty()
    });
    terminate(&mut daemon, &log);
    let seen = receiver.seen();
    assert_eq!(seen.len(), 2, "at most one resend: {seen:#?}");
    assert_eq!(seen[0].key(), seen[1].key(), "the same idempotency key");
    assert_eq!(seen[0].body, seen[1].body);
    assert_eq!(seen.iter().filter(|s| s.accepted()).count(), 1);
    let sent = deliveries(&env, "digest_sent");
    assert_eq!(sent.len(), 1, "{sent:#?}");
    assert_eq!(sent[0]["message_id"], seen[1].key());
}

#[test]
fn a_receiver_that_never_answers_holds_up_no_mail() {
    let receiver = Receiver::start(&[Answer::Hold]);
    let smtp = SmtpServer::start();
    let env = PollEnv::new(&[]);
    // "zz@" sorts after "webhook:", so the courier is handed the webhook's
    // request first: the order in which a one-at-a-time courier would make
    // the mail wait out the webhook's timeout.
    let mut notify = format!(
        "[notify]\nfrom = \"tw <tw@alerts.example.org>\"\nto = [\"zz@example.org\"]\ndebounce = \"0s\"\ntransport = \"smtp\"\n\
         [notify.smtp]\nhost = \"127.0.0.1\"\nport = {}\ntls = \"none\"\n\n",
        smtp.port
    );
    let _ = write!(
        notify,
        "{}",
        webhook("silent", &receiver.url("/hook"), "json", "timeout = \"2m\"")
    );
    write_config(&env, &notify);
    let log = env.dir.path().join("daemon.log");
    let mut daemon = start(&env, &log);
    wait_for("the webhook request", Some(&log), || {
        receiver.seen().len() == 1
    });
    wait_for("the digest mail", Some(&log), || smtp.accepted().len() == 1);
    let seen = receiver.seen();
    assert!(
        seen[0].answered.is_none() && !seen[0].closed,
        "the mail went out while the webhook's request was still open: {seen:#?}"
    );
    // A stop does not wait for the silent receiver either.
    terminate(&mut daemon, &log);
    assert_eq!(smtp.accepted().len(), 1);
}

#[test]
fn check_points_at_a_bad_webhook() {
    let env = PollEnv::new(&[]);
    for (entry, expected) in [
        (
            webhook("a", "ftp://hooks.example.org/x", "json", ""),
            "is not an http(s) URL",
        ),
        (webhook("a", "not a url", "json", ""), "is not a URL"),
        (
            webhook("a", "https://hooks.example.org/x", "teams", ""),
            "unknown format \"teams\"",
        ),
        (
            webhook("a", "https://m.example.org/rooms/x", "matrix", ""),
            "ending in /send/m.room.message",
        ),
        (
            webhook(
                "a",
                "https://hooks.example.org/x",
                "ntfy",
                "token_file = \"missing-token\"",
            ),
            "cannot read token_file",
        ),
        (
            webhook("A b", "https://hooks.example.org/x", "json", ""),
            "must be lower-case letters",
        ),
    ] {
        write_config(&env, &format!("[notify]\n\n{entry}"));
        let out = env.run(&["check"]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{entry}\n{stderr}");
        assert!(stderr.contains(expected), "{entry}\n{stderr}");
        // file:line:col, the line of the offending key.
        let line = stderr
            .lines()
            .find(|l| l.contains(expected))
            .unwrap_or_default();
        let config = env.config_path().display().to_string();
        assert!(
            line.contains(&format!("{config}:")),
            "a file:line:col error: {line}"
        );
        let at: usize = line[config.len() + 1..]
            .split(':')
            .next()
            .and_then(|n| n.parse().ok())
            .expect("a line number");
        let text = std::fs::read_to_string(env.config_path()).expect("config");
        let named = text.lines().nth(at - 1).unwrap_or_default();
        assert!(
            ["url", "format", "token_file", "id"]
                .iter()
                .any(|k| named.starts_with(k)),
            "points at the key: {named:?} ({line})"
        );
    }
    std::fs::write(env.dir.path().join("token"), "t\n").expect("token");
    write_config(
        &env,
        &format!(
            "[notify]\n\n{}",
            webhook(
                "a",
                "https://hooks.example.org/x",
                "ntfy",
                "token_file = \"token\""
            )
        ),
    );
    let out = env.run(&["check"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn a_429_is_retried_when_the_receiver_says() {
    let receiver = Receiver::start(&[Answer::With(429, "Retry-After: 7200")]);
    let env = PollEnv::new(&[]);
    write_config(
        &env,
        &format!(
            "[notify]\ndebounce = \"0s\"\n\n{}",
            webhook("script", &receiver.url("/hook"), "json", "")
        ),
    );
    let out = poll(&env);
    assert!(out.contains("answered 429"), "{out}");
    let status = env.run(&["status", "--json"]);
    let line: Value = String::from_utf8_lossy(&status.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find(|v| v["recipient"] == "webhook:script")
        .expect("the undelivered request in status");
    let time = |key: &str| {
        chrono::DateTime::parse_from_rfc3339(line[key].as_str().expect(key)).expect("a time")
    };
    // The outbox's own first wait would be one minute.
    let wait = time("next_attempt") - time("frozen_at");
    assert!(
        wait >= chrono::TimeDelta::minutes(119),
        "Retry-After honoured: {line}"
    );
    assert_eq!(line["attempts"], 1);
}

#[test]
fn feed_text_is_escaped_for_each_format() {
    let receiver = Receiver::start(&[]);
    let env = PollEnv::new(&[]);
    let hooks = [
        webhook("newsroom", &receiver.url("/slack"), "slack", ""),
        webhook("room", &receiver.url(MATRIX_PATH), "matrix", ""),
    ];
    write_config(
        &env,
        &format!("[notify]\ndebounce = \"0s\"\n\n{}", hooks.concat()),
    );
    env.server.set(
        "/wire.xml",
        Reply::feed(
            feed_titled(
                "Austria ratifies the Treaty on the Prohibition of Nuclear Weapons, &amp;lt;b&amp;gt;AT&amp;amp;T&amp;lt;/b&amp;gt; says",
            ),
            "application/rss+xml",
        ),
    );
    poll(&env);
    let seen = receiver.seen();
    assert_eq!(seen.len(), 2, "{seen:#?}");
    for s in &seen {
        let body = s.json();
        if s.path.starts_with("/slack") {
            let text = body["text"].as_str().expect("text");
            assert!(text.contains("&lt;b&gt;AT&amp;T&lt;/b&gt; says"), "{text}");
            assert!(!text.contains("<b>"), "{text}");
        } else {
            let html = body["formatted_body"].as_str().expect("html");
            assert!(html.contains("&lt;b&gt;AT&amp;T&lt;/b&gt; says"), "{html}");
            let plain = body["body"].as_str().expect("body");
            assert!(plain.contains("<b>AT&T</b> says"), "{plain}");
        }
    }
}

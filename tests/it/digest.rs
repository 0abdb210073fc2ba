//! Digests: the people who track a state hear about each status change
//! exactly once, through a real SMTP server on 127.0.0.1 or as .eml files.
//!
//! Time is always passed in (`now`), never slept: the debounce window and
//! the retry backoff are checked by running the notifier at chosen instants.

use chrono::{DateTime, TimeDelta, Utc};
use treatywatch::config::{self, Config};
use treatywatch::domain::{Action, DigestSent, EventBody, NewEvent, Policy, Status};
use treatywatch::notify::{self, CRASH_AFTER_ACCEPT_ENV, Flush, NotifyReport};
use treatywatch::store::Store;

use crate::smtp_server::{Misbehaving, Misbehaviour, Received, SmtpServer};
use crate::support::{ConfigDir, MINIMAL, at, detection, flat};

/// When the news in these tests breaks.
fn t0() -> DateTime<Utc> {
    at(2025, 6, 29)
}

fn mins(n: i64) -> TimeDelta {
    TimeDelta::minutes(n)
}

/// A config folder, its loaded config and an open store.
struct Desk {
    dir: ConfigDir,
    config: Config,
    store: Store,
}

impl Desk {
    /// MINIMAL (UKR and POL × ottawa, debounce 10m) with `notify` as the
    /// body of its [notify] table.
    fn new(notify: &str) -> Desk {
        Desk::with_tracking(notify, "[\"ottawa\"]")
    }

    fn with_tracking(notify: &str, treaties: &str) -> Desk {
        let feeds = format!(
            "{}\n[notify]\nfrom = \"treatywatch <tw@alerts.example.org>\"\ndebounce = \"10m\"\n{notify}\n",
            MINIMAL.replace("treaties = [\"ottawa\"]", &format!("treaties = {treaties}"))
        );
        let dir = ConfigDir::new(&feeds);
        let config = config::load(&dir.feeds()).unwrap_or_else(|e| panic!("config: {e}"));
        let store = Store::open(&config.db_path).expect("open store");
        Desk { dir, config, store }
    }

    /// Default recipient desk@example.org over SMTP to `port`.
    fn smtp(port: u16, extra: &str) -> Desk {
        Desk::new(&format!(
            "to = [\"Desk <desk@example.org>\"]\ntransport = \"smtp\"\n{extra}\n[notify.smtp]\nhost = \"127.0.0.1\"\nport = {port}\ntls = \"none\"\n"
        ))
    }

    fn policy(&self) -> Policy {
        Policy {
            min_sources: self.config.treaties.min_sources(),
        }
    }

    /// Appends events as the poller would at `now`; returns the changes made.
    fn append(&mut self, events: &[NewEvent], now: DateTime<Utc>) -> usize {
        let policy = self.policy();
        self.store
            .append(events, &policy, now)
            .expect("append")
            .changes
            .len()
    }

    /// One detection of `action` for `state`/ottawa from the wire feed,
    /// published and polled at `now`.
    fn news(&mut self, state: &str, action: Action, item: &str, now: DateTime<Utc>) -> usize {
        self.append(
            &[detection(state, "ottawa", action, "wire", item, now)],
            now,
        )
    }

    /// History found on a first sync: recorded, never mailed.
    fn history(&mut self, state: &str, action: Action, item: &str, when: DateTime<Utc>) {
        let mut event = detection(state, "ottawa", action, "wire", item, when);
        if let EventBody::Detection(d) = &mut event.body {
            d.backfill = true;
        }
        self.append(&[event], when);
    }

    fn run(&mut self, now: DateTime<Utc>, flush: Flush) -> NotifyReport {
        notify::run_pending(&mut self.store, &self.config, now, flush).expect("notify pass")
    }

    /// The `digest_sent` events in the log.
    fn sent_log(&self) -> Vec<DigestSent> {
        sent_log(&self.store)
    }

    /// Lets go of the database (and its writer lock) so that another
    /// process can write it; `sent_log` reads it meanwhile.
    fn close(self) -> (ConfigDir, config::Config) {
        (self.dir, self.config)
    }

    /// Opens the database again after `close`.
    fn reopen(dir: ConfigDir, config: config::Config) -> Desk {
        let store = Store::open(&config.db_path).expect("reopen store");
        Desk { dir, config, store }
    }
}

/// The `digest_sent` events in the log of `store`.
fn sent_log(store: &Store) -> Vec<DigestSent> {
    {
        store
            .events_after(0, 10_000)
            .expect("log")
            .into_iter()
            .filter_map(|e| match e.body {
                EventBody::DigestSent(d) => Some(d),
                _ => None,
            })
            .collect()
    }
}

fn to_of(r: &Received) -> Vec<String> {
    r.to.clone()
}

#[test]
fn one_status_change_is_one_email_with_both_alternatives() {
    let server = SmtpServer::start();
    let mut desk = Desk::smtp(
        server.port,
        "[[notify.subscription]]\nto = [\"ngo@example.org\"]\nstates = [\"POL\"]",
    );
    desk.history("UKR", Action::Ratified, "2005", at(2005, 12, 27));
    desk.news("UKR", Action::WithdrawalAnnounced, "decree", t0());

    let early = desk.run(t0() + mins(5), Flush::Debounced);
    assert!(early.sent.is_empty(), "inside the debounce window");
    assert_eq!(
        (early.routed, early.waiting, early.next_due),
        (1, 1, Some(t0() + mins(10))),
        "routed to the desk only, due when the window ends"
    );

    let report = desk.run(t0() + mins(10), Flush::Debounced);
    assert_eq!(report.sent.len(), 1, "{report:?}");
    let mail = server.accepted();
    assert_eq!(mail.len(), 1);
    assert_eq!(
        to_of(&mail[0]),
        ["desk@example.org"],
        "the POL subscriber is not told about UKR"
    );
    assert_eq!(mail[0].from, "tw@alerts.example.org");

    let m = mail[0].parsed();
    assert_eq!(
        m.subject(),
        Some("[treatywatch] Ukraine · Ottawa Convention: party → withdrawal announced")
    );
    assert_eq!(
        (m.text_body_count(), m.html_body_count()),
        (1, 1),
        "text and HTML alternatives"
    );
    let text = m.body_text(0).map(|t| flat(&t)).expect("text part");
    let html = m.body_html(0).expect("html part");
    for part in [text.as_str(), &*html] {
        assert!(
            part.contains("UKR withdrawal_announced ottawa (decree)"),
            "evidence: {part}"
        );
        assert!(
            part.contains("https://news.example.org/decree"),
            "source link: {part}"
        );
        assert!(part.contains("2025-06-29"), "date: {part}");
        assert!(
            part.contains("Where things stand — Ottawa Convention"),
            "{part}"
        );
        assert!(
            part.contains("Poland") && part.contains("Feed: wire"),
            "{part}"
        );
    }
    assert_eq!(
        m.to().and_then(|a| a.first()).and_then(|a| a.address()),
        Some("desk@example.org")
    );

    let log = desk.sent_log();
    assert_eq!(log.len(), 1, "the send is an event in the log");
    assert_eq!(log[0].message_id, mail[0].message_id());
    assert_eq!(
        (log[0].recipient.as_str(), log[0].changes.len()),
        ("desk@example.org", 1)
    );
    let policy = desk.policy();
    assert_eq!(
        desk.store.rebuild(&policy, None).expect("rebuild"),
        desk.store.projection().expect("table"),
        "replay still agrees with the table once digest events are in the log"
    );
}

#[test]
fn ten_changes_inside_the_window_make_one_digest() {
    let server = SmtpServer::start();
    let mut desk = Desk::smtp(server.port, "");
    use Action::*;
    let steps = [
        ("UKR", Ratified),
        ("POL", Ratified),
        ("UKR", WithdrawalAnnounced),
        ("POL", WithdrawalAnnounced),
        ("UKR", WithdrawalApproved),
        ("POL", WithdrawalApproved),
        ("UKR", WithdrawalNotified),
        ("POL", WithdrawalNotified),
        ("UKR", WithdrawalReversed),
        ("UKR", WithdrawalAnnounced),
    ];
    for (i, (state, action)) in steps.into_iter().enumerate() {
        let now = t0() + mins(i as i64);
        assert_eq!(
            desk.news(state, action, &format!("item-{i}"), now),
            1,
            "step {i}"
        );
        let report = desk.run(now, Flush::Debounced);
        assert!(
            report.sent.is_empty(),
            "nothing before the window ends (step {i})"
        );
    }
    let report = desk.run(t0() + mins(10), Flush::Debounced);
    assert_eq!(report.sent.len(), 1, "{report:?}");
    let mail = server.accepted();
    assert_eq!(mail.len(), 1, "one digest for the burst");
    let m = mail[0].parsed();
    assert_eq!(
        m.subject(),
        Some("[treatywatch] Ukraine · Ottawa Convention: unknown → party (+9 more)")
    );
    assert!(
        m.body_text(0)
            .map(|t| flat(&t))
            .expect("text")
            .contains("10 status changes")
    );
    assert_eq!(desk.sent_log()[0].changes.len(), 10);
}

#[test]
fn flushing_or_polling_again_without_new_changes_sends_nothing() {
    let server = SmtpServer::start();
    let mut desk = Desk::smtp(server.port, "");
    desk.news("POL", Action::WithdrawalNotified, "un-cn", t0());
    assert_eq!(desk.run(t0(), Flush::Now).sent.len(), 1);

    // The same item seen again by the next poll is a duplicate: no change.
    assert_eq!(
        desk.news("POL", Action::WithdrawalNotified, "un-cn", t0() + mins(15)),
        0
    );
    // A later report of an earlier stage is background: no change either.
    assert_eq!(
        desk.news("POL", Action::WithdrawalAnnounced, "older", t0() + mins(16)),
        0
    );
    for now in [t0() + mins(20), t0() + mins(60)] {
        let report = desk.run(now, Flush::Now);
        assert!(
            report.sent.is_empty() && report.failed.is_empty(),
            "{report:?}"
        );
        assert_eq!(
            report.transport, None,
            "nothing to send opens no connection"
        );
    }
    assert_eq!(server.accepted().len(), 1);
    assert_eq!(desk.sent_log().len(), 1);
}

#[test]
fn server_down_then_up_delivers_once_and_loses_nothing() {
    let port = SmtpServer::unused_port();
    let mut desk = Desk::smtp(port, "");
    desk.news("UKR", Action::WithdrawalNotified, "un-cn", t0());

    let first = desk.run(t0(), Flush::Now);
    assert_eq!(first.failed.len(), 1, "{first:?}");
    let f = &first.failed[0];
    assert!(!f.permanent && f.error.contains("cannot reach"), "{f:?}");
    assert_eq!(
        f.next_attempt_at,
        Some(t0() + mins(1)),
        "first retry after a minute"
    );

    assert!(
        desk.run(t0() + mins(0) + TimeDelta::seconds(30), Flush::Debounced)
            .failed
            .is_empty(),
        "not retried before its backoff ends"
    );
    let second = desk.run(t0() + mins(1), Flush::Debounced);
    assert_eq!(
        second.failed[0].next_attempt_at,
        Some(t0() + mins(3)),
        "the wait doubles"
    );

    let server = SmtpServer::start_on(port);
    let report = desk.run(t0() + mins(3), Flush::Debounced);
    assert_eq!(
        (report.sent.len(), report.failed.len()),
        (1, 0),
        "{report:?}"
    );
    assert!(desk.run(t0() + mins(30), Flush::Now).sent.is_empty());
    let mail = server.accepted();
    assert_eq!(mail.len(), 1, "exactly one delivery after recovery");
    assert!(
        mail[0]
            .parsed()
            .subject()
            .is_some_and(|s| s.contains("withdrawal notified")),
        "the change that waited is the one delivered"
    );
    assert_eq!(desk.sent_log().len(), 1);
}

#[test]
fn deferred_451_is_retried_and_delivered_once() {
    let server = SmtpServer::start();
    server.defer_next(1);
    let mut desk = Desk::smtp(server.port, "");
    desk.news("UKR", Action::WithdrawalAnnounced, "a", t0());

    let first = desk.run(t0() + mins(10), Flush::Debounced);
    assert_eq!(first.failed.len(), 1, "{first:?}");
    assert!(
        first.failed[0].error.contains("451") && !first.failed[0].permanent,
        "{:?}",
        first.failed[0]
    );
    assert!(server.accepted().is_empty());

    let waiting = desk.run(t0() + mins(10) + TimeDelta::seconds(59), Flush::Debounced);
    assert!(
        waiting.sent.is_empty() && waiting.failed.is_empty(),
        "{waiting:?}"
    );

    let retry = desk.run(t0() + mins(11), Flush::Debounced);
    assert_eq!(retry.sent.len(), 1, "{retry:?}");
    let attempted = server.attempted();
    let accepted = server.accepted();
    assert_eq!((attempted.len(), accepted.len()), (2, 1));
    assert_eq!(
        attempted[0].message_id(),
        accepted[0].message_id(),
        "the retry is the same message"
    );
    assert!(desk.run(t0() + mins(20), Flush::Debounced).sent.is_empty());
    assert_eq!(server.accepted().len(), 1, "delivered once");
}

#[test]
fn a_crash_between_acceptance_and_recording_resends_the_same_message_id() {
    let server = SmtpServer::start();
    let mut desk = Desk::smtp(server.port, "");
    desk.news("UKR", Action::WithdrawalApproved, "rada-vote", t0());
    // The processes below take the writer lock: this one lets it go.
    let (dir, config) = desk.close();
    let read = || sent_log(&Store::open_read_only(&config.db_path).expect("read store"));

    // A real process, killed (abort) right after the server said 250.
    let crashed = dir
        .cmd(&["digest", "--send"])
        .env(CRASH_AFTER_ACCEPT_ENV, "1")
        .output()
        .expect("run treatywatch");
    assert!(!crashed.status.success(), "the process died");
    assert_eq!(
        server.accepted().len(),
        1,
        "the server had accepted the digest"
    );
    assert!(read().is_empty(), "…but the send was never recorded");

    // The next run (the restarted daemon, here another process) resends.
    let output = dir.cmd(&["digest", "--send"]).output().expect("run");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let mail = server.accepted();
    assert_eq!(mail.len(), 2);
    assert_eq!(
        mail[0].message_id(),
        mail[1].message_id(),
        "recognisably the same digest"
    );
    assert_eq!(mail[0].data, mail[1].data, "byte for byte");
    let log = read();
    let mut desk = Desk::reopen(dir, config);
    assert_eq!(log.len(), 1, "recorded once");
    assert_eq!(log[0].message_id, mail[0].message_id());

    assert!(
        desk.run(Utc::now(), Flush::Now).sent.is_empty(),
        "and never again"
    );
    assert_eq!(server.accepted().len(), 2);
}

#[test]
fn html_injection_in_feed_text_arrives_escaped() {
    let server = SmtpServer::start();
    let mut desk = Desk::smtp(server.port, "");
    let mut event = detection(
        "UKR",
        "ottawa",
        Action::WithdrawalAnnounced,
        "wire",
        "evil",
        t0(),
    );
    if let EventBody::Detection(d) = &mut event.body {
        d.evidence.sentence =
            "Kyiv <script>alert('x')</script> said & <b>left</b> the treaty".into();
        d.evidence.title = Some("<img src=x onerror=alert(1)>\r\nBcc: evil@example.net".into());
        d.evidence.link = Some("javascript:alert(1)".into());
    }
    desk.append(&[event], t0());
    desk.run(t0(), Flush::Now);

    let mail = server.accepted();
    assert_eq!(mail.len(), 1);
    assert_eq!(to_of(&mail[0]), ["desk@example.org"], "no extra recipient");
    let m = mail[0].parsed();
    assert!(m.bcc().is_none(), "no header came from the feed");
    let html = m.body_html(0).expect("html");
    for forbidden in ["<script", "<img", "<b>left", "href=\"javascript"] {
        assert!(!html.contains(forbidden), "{forbidden} in:\n{html}");
    }
    for escaped in [
        "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;",
        "&lt;img src=x onerror=alert(1)&gt;",
        "said &amp; &lt;b&gt;left",
    ] {
        assert!(html.contains(escaped), "{escaped} missing from:\n{html}");
    }
    let text = m.body_text(0).map(|t| flat(&t)).expect("text");
    assert!(
        text.lines()
            .any(|l| l.contains("Source: <img src=x onerror=alert(1)> Bcc: evil@example.net")),
        "feed line breaks are flattened in the text part:\n{text}"
    );
}

#[test]
fn file_transport_writes_a_valid_eml_a_mail_parser_reads_back() {
    let mut desk = Desk::new("to = [\"desk@example.org\"]");
    desk.news("UKR", Action::WithdrawalNotified, "un-cn", t0());
    let report = desk.run(t0(), Flush::Now);
    assert_eq!(report.sent.len(), 1, "{report:?}");
    let folder = desk.dir.dir.path().join("data/digests");
    assert_eq!(
        report.transport.as_deref(),
        Some(format!("folder {}", folder.display()).as_str()),
        "the default folder, beside the config"
    );
    let files: Vec<_> = std::fs::read_dir(&folder)
        .expect("digest folder")
        .map(|e| {
            e.expect("entry")
                .file_name()
                .into_string()
                .expect("utf-8 name")
        })
        .collect();
    let message_id = &report.sent[0].message_id;
    assert_eq!(
        files,
        [notify::file_name(message_id)],
        "one file, no temp file left"
    );

    let bytes = std::fs::read(folder.join(&files[0])).expect("read .eml");
    let m = mail_parser::MessageParser::default()
        .parse(&bytes)
        .expect("a valid message");
    assert_eq!(
        m.message_id().map(|id| format!("<{id}>")),
        Some(message_id.clone())
    );
    assert_eq!(
        m.subject(),
        Some("[treatywatch] Ukraine · Ottawa Convention: unknown → withdrawal notified")
    );
    assert_eq!(
        m.from().and_then(|a| a.first()).and_then(|a| a.address()),
        Some("tw@alerts.example.org")
    );
    assert!(m.date().is_some());
    assert!(
        m.body_text(0)
            .map(|t| flat(&t))
            .expect("text")
            .contains("withdrawal notified")
    );
    assert!(
        m.body_html(0)
            .expect("html")
            .contains(">Ukraine · Ottawa Convention</div>")
    );
    assert!(desk.run(t0() + mins(1), Flush::Now).sent.is_empty());
}

#[test]
fn backfilled_changes_are_never_mailed() {
    let server = SmtpServer::start();
    let mut desk = Desk::smtp(server.port, "");
    desk.history("UKR", Action::Ratified, "2005", at(2005, 12, 27));
    desk.history("POL", Action::Ratified, "2012", at(2012, 12, 27));
    let report = desk.run(t0(), Flush::Now);
    assert_eq!((report.routed, report.sent.len()), (0, 0), "{report:?}");

    desk.news("POL", Action::WithdrawalAnnounced, "now", t0());
    desk.run(t0(), Flush::Now);
    let mail = server.accepted();
    assert_eq!(mail.len(), 1);
    assert_eq!(
        mail[0].parsed().subject(),
        Some("[treatywatch] Poland · Ottawa Convention: party → withdrawal announced"),
        "only the live change, not the history"
    );
}

#[test]
fn one_recipients_refusal_does_not_block_another() {
    let server = SmtpServer::start();
    server.refuse("ngo@example.org");
    let mut desk = Desk::smtp(
        server.port,
        "[[notify.subscription]]\nto = [\"ngo@example.org\"]",
    );
    desk.news("UKR", Action::WithdrawalAnnounced, "a", t0());

    let first = desk.run(t0(), Flush::Now);
    assert_eq!(first.failed.len(), 1);
    let f = &first.failed[0];
    assert!(
        f.recipient == "ngo@example.org" && f.permanent && f.error.contains("550"),
        "{f:?}"
    );
    // The desk gets its digest, and, as an admin ([notify] to), one alert
    // that the address was refused: retried, but not in silence.
    assert_eq!(first.sent.len(), 2, "{first:?}");
    let mail = server.accepted();
    let alert = mail[1].parsed();
    assert_eq!(
        alert.subject(),
        Some("[treatywatch] Recipient refused: ngo@example.org (reply 550)")
    );
    assert!(
        alert
            .body_text(0)
            .is_some_and(|t| t.contains("retried with backoff")),
        "{:?}",
        alert.body_text(0)
    );

    let again = desk.run(t0() + mins(5), Flush::Now);
    assert_eq!(
        (again.sent.len(), again.failed.len()),
        (0, 1),
        "the desk is not sent it twice, nor the alert"
    );

    server.accept("ngo@example.org");
    let later = desk.run(t0() + mins(10), Flush::Now);
    assert_eq!(later.sent.len(), 1);
    assert_eq!(later.sent[0].recipient, "ngo@example.org");
    let recipients: Vec<Vec<String>> = server.accepted().iter().map(to_of).collect();
    assert_eq!(
        recipients,
        [
            ["desk@example.org"],
            ["desk@example.org"],
            ["ngo@example.org"]
        ]
    );
}

#[test]
fn urgent_stages_skip_the_window_and_filters_pick_states() {
    let server = SmtpServer::start();
    let mut desk = Desk::smtp(
        server.port,
        "[[notify.subscription]]\nto = [\"baltic@example.org\"]\nstates = [\"EST\", \"UKR\"]\nurgent = [\"withdrawal_notified\"]",
    );
    // EST is not tracked: only its subscriber hears about it.
    desk.news("EST", Action::WithdrawalAnnounced, "est", t0());
    desk.news("UKR", Action::WithdrawalNotified, "ukr", t0());

    let now = desk.run(t0(), Flush::Debounced);
    assert_eq!(
        now.sent.len(),
        1,
        "the urgent stage goes out at once: {now:?}"
    );
    assert_eq!(now.sent[0].recipient, "baltic@example.org");
    assert_eq!(
        now.sent[0].changes, 2,
        "carrying what else was waiting for them"
    );

    let later = desk.run(t0() + mins(10), Flush::Debounced);
    assert_eq!(
        later.sent.len(),
        1,
        "the desk waits for the window: {later:?}"
    );
    assert_eq!(later.sent[0].recipient, "desk@example.org");
    assert_eq!(later.sent[0].changes, 1, "UKR only; EST is not tracked");
}

#[test]
fn an_elapsed_notice_period_is_recorded_and_mailed_unless_the_clause_holds_it() {
    let server = SmtpServer::start();
    let mut desk = Desk::with_tracking(
        &format!(
            "to = [\"desk@example.org\"]\ntransport = \"smtp\"\n[notify.smtp]\nhost = \"127.0.0.1\"\nport = {}\ntls = \"none\"\n",
            server.port
        ),
        "[\"ottawa\", \"ctbt\"]",
    );
    let notified = at(2025, 6, 27);
    // CTBT needs two sources; Ottawa has the armed-conflict clause.
    let events = [
        detection(
            "POL",
            "ctbt",
            Action::WithdrawalNotified,
            "wire",
            "n1",
            notified,
        ),
        detection(
            "POL",
            "ctbt",
            Action::WithdrawalNotified,
            "agency",
            "n2",
            notified,
        ),
        detection(
            "UKR",
            "ottawa",
            Action::WithdrawalNotified,
            "wire",
            "n3",
            notified,
        ),
    ];
    desk.append(&events, notified);
    desk.run(notified, Flush::Now);
    assert_eq!(server.accepted().len(), 1);

    let record = |desk: &mut Desk, now| {
        treatywatch::notice::record_due_effects(&mut desk.store, &desk.config, now)
            .expect("record effects")
    };
    let before = record(&mut desk, at(2025, 12, 26));
    assert!(before.appended.appended.is_empty() && before.held.is_empty());

    let due = record(&mut desk, at(2025, 12, 27));
    assert_eq!(due.appended.changes.len(), 1, "{due:?}");
    assert_eq!(
        due.held
            .iter()
            .map(|h| (h.state.as_str(), h.treaty.as_str()))
            .collect::<Vec<_>>(),
        [("UKR", "ottawa")],
        "Ottawa Art. 20(3): held, not recorded"
    );
    let again = record(&mut desk, at(2025, 12, 28));
    assert!(again.appended.appended.is_empty(), "recorded once");

    let table = desk.store.projection().expect("table");
    let row = |s: &str, t: &str| table[&(s.to_string(), t.to_string())].status;
    assert_eq!(row("POL", "ctbt"), Status::Withdrawn);
    assert_eq!(row("UKR", "ottawa"), Status::WithdrawalNotified);

    desk.run(at(2025, 12, 27), Flush::Now);
    let mail = server.accepted();
    assert_eq!(mail.len(), 2);
    let m = mail[1].parsed();
    assert_eq!(
        m.subject(),
        Some("[treatywatch] Poland · CTBT: withdrawal notified → withdrawn")
    );
    let text = m.body_text(0).map(|t| flat(&t)).expect("text");
    assert!(
        text.contains("notice period of 6 months, which ran out on 2025-12-27"),
        "{text}"
    );
    assert!(
        text.contains("Feed: treaty notice period (derived by treatywatch)"),
        "{text}"
    );
}

#[test]
fn preview_prints_the_pending_digest_and_changes_nothing() {
    let server = SmtpServer::start();
    let mut desk = Desk::smtp(server.port, "");
    desk.news("UKR", Action::WithdrawalAnnounced, "a", t0());
    let cursor = desk.store.notify_cursor().expect("cursor");

    for args in [&["digest", "--preview"][..], &["digest"][..]] {
        let output = desk.dir.cmd(args).output().expect("run");
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        let stdout = String::from_utf8(output.stdout).expect("utf-8");
        assert!(stdout.contains("To: Desk <desk@example.org>"), "{stdout}");
        assert!(
            stdout.contains(
                "Subject: [treatywatch] Ukraine · Ottawa Convention: unknown → withdrawal announced"
            ),
            "{stdout}"
        );
        assert!(stdout.contains("Status: due now"), "{stdout}");
        assert!(stdout.contains("Where things stand"), "{stdout}");
    }
    assert!(server.accepted().is_empty(), "preview sends nothing");
    assert_eq!(
        desk.store.notify_cursor().expect("cursor"),
        cursor,
        "…and routes nothing"
    );
    assert!(desk.store.queued().expect("outbox").is_empty());

    desk.run(t0(), Flush::Now);
    let output = desk
        .dir
        .cmd(&["digest", "--preview"])
        .output()
        .expect("run");
    assert!(String::from_utf8_lossy(&output.stdout).contains("nothing pending"));
}

#[test]
fn smtp_login_problems_keep_the_digest_pending() {
    let server = SmtpServer::start();
    let mut desk = Desk::new(&format!(
        "to = [\"desk@example.org\"]\ntransport = \"smtp\"\n[notify.smtp]\nhost = \"127.0.0.1\"\nport = {}\ntls = \"none\"\nusername = \"tw\"\npassword_file = \"smtp-password\"\n",
        server.port
    ));
    desk.news("UKR", Action::WithdrawalNotified, "a", t0());

    let err = notify::run_pending(&mut desk.store, &desk.config, t0(), Flush::Now)
        .expect_err("no password file yet");
    assert!(err.to_string().contains("smtp-password"), "{err}");
    assert_eq!(
        desk.store.queued().expect("outbox").len(),
        1,
        "the change waits"
    );

    // With the password, a server that offers no login (plain text, no
    // AUTH) is not sent to unauthenticated behind the user's back.
    desk.dir.write("smtp-password", "s3cret\n");
    let report = desk.run(t0(), Flush::Now);
    assert_eq!(report.failed.len(), 1, "{report:?}");
    assert!(
        report.failed[0].error.contains("username and password"),
        "{:?}",
        report.failed[0]
    );
    assert!(server.accepted().is_empty());
    assert_eq!(desk.store.pending_batches().expect("batches").len(), 1);
}

#[test]
fn a_database_from_before_digests_does_not_mail_its_history() {
    let desk = Desk::smtp(SmtpServer::unused_port(), "");
    let path = desk.config.db_path.clone();
    let Desk { dir, config, store } = desk;
    drop(store);
    std::fs::remove_file(&path).expect("start from an old database instead");

    // A schema-1 database with a status change already in it.
    let conn = rusqlite::Connection::open(&path).expect("raw");
    conn.execute_batch(include_str!("../../migrations/0001_event_log.sql"))
        .expect("schema 1");
    conn.pragma_update(None, "user_version", 1)
        .expect("version");
    let change = EventBody::StatusChanged(treatywatch::domain::StatusChange {
        state: "UKR".into(),
        treaty: "ottawa".into(),
        from: Status::Party,
        to: Status::WithdrawalAnnounced,
        cause_seq: 1,
        sources: vec!["wire".into()],
        evidence: None,
        backfill: false,
        from_baseline: None,
        rule: None,
        authoritative: false,
        correction: None,
    });
    conn.execute(
        "INSERT INTO events (kind, state, treaty, occurred_at, recorded_at, payload, payload_version, dedupe_key)
         VALUES ('status_changed', 'UKR', 'ottawa', '2025-06-29T12:00:00.000000Z', '2025-06-29T12:00:00.000000Z', ?1, 1, 'old')",
        [serde_json::to_string(&change).expect("json")],
    )
    .expect("old change");
    drop(conn);

    let mut desk = Desk {
        store: Store::open(&path).expect("migrate"),
        dir,
        config,
    };
    assert_eq!(
        desk.store.notify_cursor().expect("cursor"),
        1,
        "starts at the end"
    );
    let report = desk.run(t0(), Flush::Now);
    assert_eq!((report.routed, report.sent.len()), (0, 0), "{report:?}");
}

#[test]
fn a_server_that_never_answers_costs_one_timeout_named_after_the_step() {
    let silent = Misbehaving::start(Misbehaviour::Silent);
    let mut desk = Desk::smtp(silent.port, "");
    // A smaller `timeout` than the default 30 s keeps the test short.
    let config = std::fs::read_to_string(desk.dir.feeds()).expect("config");
    std::fs::write(desk.dir.feeds(), format!("{config}timeout = \"1s\"\n")).expect("write");
    desk.config = config::load(&desk.dir.feeds()).expect("config");
    desk.news("UKR", Action::WithdrawalNotified, "a", t0());

    let report = desk.run(t0(), Flush::Now);
    assert_eq!(report.failed.len(), 1, "{report:?}");
    let f = &report.failed[0];
    assert!(
        f.error
            .contains("timeout after 1 s waiting for the server's greeting"),
        "the error says what happened: {f:?}"
    );
    assert!(!f.error.contains("os error"), "{f:?}");
    assert_eq!((f.reason, f.permanent), ("timeout", false));
    // One attempt, ended by the 1 s timeout the error names (no clock
    // read here: a loaded machine made a wall-clock bound fail).
    assert_eq!(silent.connections(), 1);
}

#[test]
fn a_connection_dropped_mid_data_is_called_that() {
    let server = Misbehaving::start(Misbehaviour::HangUpInData);
    let mut desk = Desk::smtp(server.port, "");
    desk.news("UKR", Action::WithdrawalNotified, "a", t0());
    let report = desk.run(t0(), Flush::Now);
    assert_eq!(report.failed.len(), 1, "{report:?}");
    let f = &report.failed[0];
    assert!(
        f.error.contains("connection closed during DATA"),
        "the error says what happened: {f:?}"
    );
    assert!(!f.error.contains("username and password"), "{f:?}");
    assert_eq!(f.reason, "closed");
}

#[test]
fn an_interrupted_attempt_is_retried_at_once_and_earns_no_backoff() {
    let port = SmtpServer::unused_port();
    let mut desk = Desk::smtp(port, "");
    desk.news("UKR", Action::WithdrawalNotified, "a", t0());

    // An attempt begins and the process dies before any outcome: planned,
    // never delivered, never recorded.
    let plan = notify::plan(
        &mut desk.store,
        &desk.config,
        t0(),
        Flush::Now,
        &Default::default(),
    )
    .expect("plan");
    assert_eq!(plan.deliveries.len(), 1);
    drop(plan);

    // The next start, a second later (a new writer opens the store and
    // releases the dead attempt's claim): due at once, not after a backoff.
    let (dir, config) = desk.close();
    let mut desk = Desk::reopen(dir, config);
    let restart = desk.run(t0() + TimeDelta::seconds(1), Flush::Debounced);
    assert_eq!(restart.failed.len(), 1, "retried at once: {restart:?}");
    assert_eq!(
        restart.failed[0].next_attempt_at,
        Some(t0() + TimeDelta::seconds(1) + mins(1)),
        "the first real failure waits one minute, not two: the interrupted attempt did not count"
    );

    let out = desk
        .dir
        .cmd(&["status", "--json"])
        .output()
        .expect("status");
    let pending: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v.get("undelivered").is_some())
        .collect();
    assert_eq!(pending.len(), 1, "{pending:?}");
    assert_eq!(pending[0]["recipient"], "desk@example.org");
    assert_eq!(pending[0]["attempts"], 1, "one real failure: {pending:?}");
    assert!(
        pending[0]["last_error"]
            .as_str()
            .is_some_and(|e| e.contains("cannot reach")),
        "{pending:?}"
    );
    let text = desk.dir.cmd(&["status"]).output().expect("status");
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(
        text.contains("desk@example.org") && text.contains("digest of 1 change"),
        "{text}"
    );
}

/// A detection whose feed text is as large and hostile as a feed can make it.
fn monstrous(state: &str, action: Action, item: &str, now: DateTime<Utc>) -> NewEvent {
    let mut event = detection(state, "ottawa", action, "wire", item, now);
    if let EventBody::Detection(d) = &mut event.body {
        d.evidence.title = Some(format!("{item} {}", "T".repeat(5_000_000)));
        d.evidence.sentence = format!(
            "Kyiv \u{202E}txet desrever\u{202C} left the treaty {}",
            "S".repeat(1_000_000)
        );
        d.evidence.link = Some(format!("https://news.example.org/{}", "l".repeat(10_000)));
    }
    event
}

#[test]
fn a_five_megabyte_title_is_cut_with_an_ellipsis_and_the_digest_stays_small() {
    let server = SmtpServer::start();
    let mut desk = Desk::smtp(server.port, "");
    desk.append(
        &[monstrous("UKR", Action::WithdrawalAnnounced, "huge", t0())],
        t0(),
    );
    let report = desk.run(t0(), Flush::Now);
    assert_eq!(report.sent.len(), 1, "{report:?}");
    let mail = server.accepted();
    assert!(
        mail[0].data.len() < 32 * 1024,
        "a 6 MB item made a {} byte digest",
        mail[0].data.len()
    );
    let m = mail[0].parsed();
    let text = m.body_text(0).map(|t| flat(&t)).expect("text");
    let html = m.body_html(0).expect("html");
    let title = format!("huge {}…", "T".repeat(notify::MAX_TITLE_CHARS - 6));
    assert!(text.contains(&title), "the title is cut visibly:\n{text}");
    assert!(text.contains("S…\""), "the evidence too:\n{text}");
    for part in [text.as_str(), &*html] {
        assert!(
            !part.contains('\u{202E}') && !part.contains('\u{202C}'),
            "bidi overrides are dropped"
        );
        assert!(
            part.contains("Kyiv txet desrever left the treaty"),
            "{part}"
        );
    }
    assert!(
        !html.contains("href=\"https://news.example.org/llll"),
        "a link too long to show whole is not a link"
    );
}

#[test]
fn a_digest_over_max_digest_size_is_sent_in_brief() {
    let server = SmtpServer::start();
    let mut desk = Desk::smtp(server.port, "max_digest_size = \"16 KiB\"");
    use Action::*;
    let steps = [
        ("UKR", Ratified),
        ("POL", Ratified),
        ("UKR", WithdrawalAnnounced),
        ("POL", WithdrawalAnnounced),
        ("UKR", WithdrawalApproved),
        ("POL", WithdrawalApproved),
        ("UKR", WithdrawalNotified),
        ("POL", WithdrawalNotified),
        ("UKR", WithdrawalReversed),
        ("UKR", WithdrawalAnnounced),
    ];
    for (i, (state, action)) in steps.into_iter().enumerate() {
        let now = t0() + mins(i as i64);
        desk.append(&[monstrous(state, action, &format!("item-{i}"), now)], now);
    }
    let report = desk.run(t0() + mins(10), Flush::Now);
    assert_eq!(report.sent.len(), 1, "{report:?}");
    assert_eq!(report.sent[0].changes, 10, "every change is in it");
    let mail = server.accepted();
    assert!(
        mail[0].data.len() <= 16 * 1024,
        "{} bytes",
        mail[0].data.len()
    );
    let text = mail[0]
        .parsed()
        .body_text(0)
        .map(|t| flat(&t))
        .expect("text");
    assert!(
        text.contains("shortened to fit [notify] max_digest_size"),
        "{text}"
    );
    assert!(!text.contains("TTTT"), "no feed text in the brief form");
    assert!(text.contains("10 status changes"), "{text}");
}

#[test]
fn a_552_refusal_is_not_retried_and_does_not_hold_later_changes_hostage() {
    let server = SmtpServer::start();
    let mut desk = Desk::smtp(
        server.port,
        "[[notify.subscription]]\nto = [\"admin@example.org\"]\nstates = [\"EST\"]\nhealth_alerts = true",
    );
    server.too_large_next(1);
    desk.append(
        &[monstrous("UKR", Action::WithdrawalAnnounced, "big", t0())],
        t0(),
    );

    let first = desk.run(t0(), Flush::Now);
    assert_eq!(first.failed.len(), 1, "{first:?}");
    let f = &first.failed[0];
    assert!(
        f.permanent
            && f.reason == "refused"
            && f.error.contains("552")
            && f.next_attempt_at.is_none(),
        "{f:?}"
    );
    // In the same pass: the desk gets what it missed, in brief, and the
    // admin is told once.
    assert_eq!(first.sent.len(), 2, "{first:?}");
    let mail = server.accepted();
    let to_desk = mail
        .iter()
        .find(|m| m.to == ["desk@example.org"])
        .expect("desk");
    let to_admin = mail
        .iter()
        .find(|m| m.to == ["admin@example.org"])
        .expect("admin");
    let desk_mail = to_desk.parsed();
    assert_eq!(
        desk_mail.subject(),
        Some(
            "[treatywatch] Resent in brief: Ukraine · Ottawa Convention: unknown → withdrawal announced"
        )
    );
    let text = desk_mail.body_text(0).map(|t| flat(&t)).expect("text");
    assert!(
        text.contains("Not delivered earlier") && text.contains("reply 552"),
        "{text}"
    );
    assert!(
        !text.contains("TTTT") && !text.contains("Kyiv"),
        "no feed text: {text}"
    );
    let admin_mail = to_admin.parsed();
    assert_eq!(
        admin_mail.subject(),
        Some("[treatywatch] Digest refused: desk@example.org (reply 552)")
    );
    let alert = admin_mail.body_text(0).map(|t| flat(&t)).expect("text");
    assert!(
        alert.contains("Delivery")
            && alert.contains("it is not sent again")
            && alert.contains("in brief"),
        "{alert}"
    );

    // Not retried: nothing more to send.
    let again = desk.run(t0() + mins(60), Flush::Now);
    assert!(
        again.sent.is_empty() && again.failed.is_empty(),
        "{again:?}"
    );
    assert_eq!(server.attempted().len(), 3);

    // A later change reaches the desk as usual.
    desk.news("UKR", Action::WithdrawalNotified, "un-cn", t0() + mins(61));
    let later = desk.run(t0() + mins(61), Flush::Now);
    assert_eq!(later.sent.len(), 1, "{later:?}");
    assert_eq!(later.sent[0].recipient, "desk@example.org");
    assert!(
        later.sent[0]
            .subject
            .contains("withdrawal announced → withdrawal notified"),
        "{later:?}"
    );

    // `status` shows the refusal.
    let out = desk
        .dir
        .cmd(&["status", "--json"])
        .output()
        .expect("status");
    let refused: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v.get("refused").is_some())
        .collect();
    assert_eq!(refused.len(), 1, "{refused:?}");
    assert_eq!(
        (
            &refused[0]["recipient"],
            &refused[0]["code"],
            &refused[0]["carried"]
        ),
        (
            &serde_json::json!("desk@example.org"),
            &serde_json::json!(552),
            &serde_json::json!(true)
        )
    );
    let text = desk.dir.cmd(&["status"]).output().expect("status");
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(
        text.contains("REFUSED") && text.contains("resent in brief"),
        "{text}"
    );
}

//! Feed text never reaches the terminal raw: ESC sequences (one retitles
//! the terminal), NUL, BEL and bidi overrides in a feed's titles and text
//! are printed as visible escapes by `events`, `status`, `classify --feed`
//! and `digest --preview`; `--json` keeps the same value, escaped.

use serde_json::Value;

use crate::once::Env;
use crate::smtp_server::SmtpServer;

/// What a hostile publisher puts in a title: set the terminal title, clear
/// the screen, ring, a NUL, and text that reads backwards.
const TRAP: &str = "\u{1b}]0;owned\u{7}\u{1b}[2J\u{0}\u{202e}gnp.exe\u{2066}";

fn hostile_feed() -> String {
    let now = chrono::Utc::now().to_rfc3339();
    serde_json::json!({
        "version": "https://jsonfeed.org/version/1.1",
        "title": "Wire",
        "items": [{
            "id": "https://wire.example.org/aut",
            // A link that reads as another: status prints links.
            "url": "https://wire.example.org/\u{202e}gpj.exe",
            "title": format!("{TRAP} Austria ratifies the Treaty on the Prohibition of Nuclear Weapons"),
            "content_text": format!("Austria deposited its instrument of ratification of the nuclear weapons ban treaty {TRAP} on Monday."),
            "date_published": now,
        }]
    })
    .to_string()
}

/// No character a terminal acts on, and (where the text is shown) the trap
/// visibly escaped.
fn check_safe(what: &str, out: &str) {
    for c in out.chars() {
        assert!(
            c == '\n' || c == '\t' || !(c.is_control() || treatywatch::text::is_bidi_control(c)),
            "{what} printed {c:?} raw:\n{out}"
        );
    }
    // `status` shows the link, which arrives percent-encoded; a digest's
    // text had its control characters blanked and its bidi controls
    // dropped when it was composed (mail must not carry them either).
    match what {
        "status" | "digest --preview" => {}
        _ => assert!(
            out.contains("\\u{202e}") && out.contains("\\x1b]0;owned\\x07"),
            "{what} shows the escapes:\n{out}"
        ),
    }
}

fn stdout(env: &Env, args: &[&str]) -> String {
    let out = env.run(args);
    String::from_utf8(out.stdout).expect("utf-8")
}

#[test]
fn escape_sequences_and_bidi_controls_in_feed_text_print_escaped() {
    // Mail goes nowhere (no server): the digest stays pending for --preview.
    let env = Env::new(SmtpServer::unused_port());
    env.set_feed(hostile_feed());
    let poll = stdout(&env, &["poll"]);
    assert!(poll.contains("1 new"), "{poll}");

    check_safe("events", &stdout(&env, &["events"]));
    check_safe("status", &stdout(&env, &["status", "--all"]));
    check_safe("digest --preview", &stdout(&env, &["digest", "--preview"]));
    let file = env.dir.path().join("hostile.json");
    std::fs::write(&file, hostile_feed()).expect("write feed");
    let classify = stdout(&env, &["classify", "--feed", file.to_str().expect("path")]);
    check_safe("classify --feed", &classify);
    assert!(classify.contains("AUT  tpnw  ratified"), "{classify}");

    // JSON: the same value, with nothing raw on the terminal.
    for args in [
        &["events", "--json"][..],
        &["classify", "--json", "--feed", file.to_str().expect("path")],
    ] {
        let out = stdout(&env, args);
        assert!(
            !out.chars()
                .any(|c| c == '\u{1b}' || treatywatch::text::is_bidi_control(c)),
            "{args:?}: {out}"
        );
        let carried = out
            .lines()
            .map(|l| serde_json::from_str::<Value>(l).expect("json"))
            .any(|v| v.to_string().contains('\u{202e}'));
        assert!(carried, "{args:?} keeps the text itself: {out}");
    }
}

//! The analyst's workflow through the real binary and a database on disk.

use serde_json::Value;

use crate::support::{ConfigDir, MINIMAL};

fn stdout(dir: &ConfigDir, args: &[&str]) -> String {
    let output = dir.cmd(args).output().expect("run");
    assert!(
        output.status.success(),
        "{args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).expect("utf-8 output")
}

/// `status --json` as (state, treaty) -> status.
fn statuses(dir: &ConfigDir, extra: &[&str]) -> Vec<(String, String, String)> {
    let mut args = vec!["status", "--json"];
    args.extend_from_slice(extra);
    stdout(dir, &args)
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).expect("one JSON object per line"))
        // Feed health lines follow the status lines.
        .filter(|v| v.get("state").is_some())
        .map(|v| {
            let l = v.to_string();
            assert!(v.get("since").is_some(), "status lines carry `since`: {l}");
            let s = |k: &str| v[k].as_str().expect(k).to_string();
            (s("state"), s("treaty"), s("status"))
        })
        .collect()
}

fn status_of(dir: &ConfigDir, state: &str, extra: &[&str]) -> String {
    statuses(dir, extra)
        .into_iter()
        .find(|(s, t, _)| s == state && t == "ottawa")
        .map(|(_, _, st)| st)
        .expect("tracked row present")
}

#[test]
fn help_lists_every_command() {
    let dir = ConfigDir::new(MINIMAL);
    let help = stdout(&dir, &["--help"]);
    for command in [
        "run",
        "poll",
        "check",
        "classify",
        "status",
        "events",
        "digest",
        "replay",
        "assert",
        "retract",
        "reclassify",
    ] {
        assert!(
            help.lines().any(|l| l.trim_start().starts_with(command)),
            "--help lacks {command}:\n{help}"
        );
    }
}

#[test]
fn assert_retract_and_as_of() {
    let dir = ConfigDir::new(MINIMAL);
    stdout(
        &dir,
        &[
            "assert",
            "UKR",
            "ottawa",
            "party",
            "--date",
            "2005-12-27",
            "--note",
            "ratified 2005",
        ],
    );
    let out = stdout(
        &dir,
        &[
            "assert",
            "UKR",
            "ottawa",
            "withdrawal_announced",
            "--date",
            "2025-06-29",
            "--note",
            "decree",
        ],
    );
    assert!(out.contains("party → withdrawal_announced"), "{out}");
    assert_eq!(status_of(&dir, "UKR", &[]), "withdrawal_announced");

    let seq = out
        .lines()
        .find_map(|l| {
            l.strip_prefix("appended #")?
                .split_whitespace()
                .next()?
                .parse::<i64>()
                .ok()
        })
        .expect("assert reports the new event's number");
    stdout(
        &dir,
        &[
            "retract",
            &seq.to_string(),
            "--note",
            "decree not yet published",
        ],
    );
    assert_eq!(
        status_of(&dir, "UKR", &[]),
        "party",
        "retraction restores the earlier status"
    );

    assert_eq!(
        status_of(&dir, "UKR", &["--as-of", "2005-01-01"]),
        "unknown"
    );
    assert_eq!(status_of(&dir, "UKR", &["--as-of", "2010-01-01"]), "party");
    // The table shows tracked states × treaties, unknown where nothing is known.
    assert_eq!(status_of(&dir, "POL", &[]), "unknown");

    stdout(&dir, &["replay"]);
}

#[test]
fn replay_detects_a_tampered_table_and_fix_repairs_it() {
    let dir = ConfigDir::new(MINIMAL);
    stdout(
        &dir,
        &[
            "assert",
            "POL",
            "ottawa",
            "withdrawal_notified",
            "--date",
            "2025-06-27",
            "--note",
            "C.N.2025",
        ],
    );
    stdout(&dir, &["replay"]);

    let conn = rusqlite::Connection::open(dir.db()).expect("open db");
    conn.execute("UPDATE status SET status = 'party'", [])
        .expect("tamper");
    drop(conn);

    let output = dir.cmd(&["replay"]).output().expect("run");
    assert_eq!(output.status.code(), Some(1), "a difference exits 1");
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(
        text.contains("POL ottawa") && text.contains("withdrawal_notified"),
        "{text}"
    );

    stdout(&dir, &["replay", "--fix"]);
    stdout(&dir, &["replay"]);
    assert_eq!(status_of(&dir, "POL", &[]), "withdrawal_notified");
}

#[test]
fn notified_withdrawal_shows_its_expected_effective_date() {
    let dir = ConfigDir::new(MINIMAL);
    stdout(
        &dir,
        &[
            "assert",
            "POL",
            "ottawa",
            "withdrawal_notified",
            "--date",
            "2025-06-27",
            "--note",
            "C.N.2025",
        ],
    );
    let json = stdout(&dir, &["status", "--json"]);
    let pol: Value = json
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).expect("json"))
        .find(|v| v["state"] == "POL")
        .expect("POL row");
    assert_eq!(
        pol["expected_effective"], "2025-12-27",
        "six months' notice"
    );
    let table = stdout(&dir, &["status"]);
    assert!(
        table.contains("effective 2025-12-27 unless at war"),
        "{table}"
    );
}

#[test]
fn events_json_is_one_object_per_line_and_since_filters() {
    let dir = ConfigDir::new(MINIMAL);
    stdout(&dir, &["assert", "UKR", "ottawa", "party", "--note", "n"]);
    let all: Vec<Value> = stdout(&dir, &["events", "--json"])
        .lines()
        .map(|l| serde_json::from_str(l).expect("json line"))
        .collect();
    assert_eq!(all.len(), 2, "the assertion and the change it caused");
    assert_eq!(all[0]["kind"], "asserted");
    assert_eq!(all[1]["kind"], "status_changed");
    let later = stdout(&dir, &["events", "--json", "--since", "1"]);
    assert_eq!(later.lines().count(), 1);
}

#[test]
fn corrections_with_bad_arguments_say_what_to_write() {
    let dir = ConfigDir::new(MINIMAL);
    let cases: &[(&[&str], &str)] = &[
        (
            &["assert", "XXX", "ottawa", "party", "--note", "n"],
            "unknown state",
        ),
        (
            &["assert", "UKR", "otawa", "party", "--note", "n"],
            "known ids",
        ),
        (
            &["assert", "UKR", "ottawa", "member", "--note", "n"],
            "expected one of",
        ),
        (
            &[
                "assert",
                "UKR",
                "ottawa",
                "party",
                "--note",
                "n",
                "--date",
                "yesterday",
            ],
            "YYYY-MM-DD",
        ),
        (&["retract", "99", "--note", "n"], "no event 99"),
    ];
    for (args, fragment) in cases {
        let output = dir.cmd(args).output().expect("run");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_ne!(output.status.code(), Some(0), "{args:?} should fail");
        assert!(stderr.contains(fragment), "{args:?}: {stderr}");
    }
}

#[test]
fn a_status_change_cannot_be_retracted_directly() {
    let dir = ConfigDir::new(MINIMAL);
    stdout(&dir, &["assert", "UKR", "ottawa", "party", "--note", "n"]);
    let output = dir
        .cmd(&["retract", "2", "--note", "n"])
        .output()
        .expect("run");
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("retracting its cause"));
}

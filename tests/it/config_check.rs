//! `treatywatch check`: every problem a user can make in the configuration
//! is reported as `file:line:col: message` naming the fix, with exit 2.
//!
//! Cases mark the position they expect the report at with `‸`.

use crate::support::{ConfigDir, MINIMAL};

const MARK: char = '‸';

/// Writes `feeds` (with the mark removed) and checks that `check` exits 2 and
/// reports `fragment` at the marked line and column of `file`.
fn check_bad_in(file: &str, feeds: &str, other: Option<&str>, fragment: &str) {
    check_bad_with(file, feeds, other, &[], fragment);
}

/// `check_bad_in` with `env` set for the check (`$CREDENTIALS_DIRECTORY`).
fn check_bad_with(
    file: &str,
    feeds: &str,
    other: Option<&str>,
    env: &[(&str, &std::path::Path)],
    fragment: &str,
) {
    let (target, marked) = match other {
        Some(text) => (file, text),
        None => ("feeds.toml", feeds),
    };
    let offset = marked.find(MARK).expect("case has a ‸ mark");
    let before = &marked[..offset];
    let line = before.matches('\n').count() + 1;
    let col = before[before.rfind('\n').map_or(0, |i| i + 1)..]
        .chars()
        .count()
        + 1;

    let dir = ConfigDir::new(&feeds.replace(MARK, ""));
    if let Some(text) = other {
        dir.write(file, &text.replace(MARK, ""));
    }
    let mut cmd = dir.cmd(&["check"]);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let output = cmd.output().expect("run check");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(
        output.status.code(),
        Some(2),
        "exit status; stderr:\n{stderr}"
    );
    let expected = format!("{}:{line}:{col}: ", dir.dir.path().join(target).display());
    let report = stderr
        .lines()
        .find(|l| l.starts_with(&expected))
        .unwrap_or_else(|| panic!("no report at {expected}; stderr:\n{stderr}"));
    assert!(
        report.contains(fragment),
        "report {report:?} lacks {fragment:?}"
    );
}

fn check_bad(feeds: &str, fragment: &str) {
    check_bad_in("feeds.toml", feeds, None, fragment);
}

/// MINIMAL with `extra` appended as one more feed table.
fn with_feed(extra: &str) -> String {
    format!("{MINIMAL}\n[[feed]]\n{extra}\n")
}

#[test]
fn shipped_config_is_valid_and_summarised() {
    let config = concat!(env!("CARGO_MANIFEST_DIR"), "/config/feeds.toml");
    let output = assert_cmd::Command::cargo_bin("treatywatch")
        .expect("binary")
        .args(["--config", config, "check"])
        .output()
        .expect("run");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        stdout.contains("feeds") && stdout.contains("treaties") && stdout.contains("tracking"),
        "{stdout}"
    );
    assert_eq!(stdout.lines().count(), 1, "one summary line: {stdout}");
}

#[test]
fn minimal_config_is_valid() {
    let dir = ConfigDir::new(MINIMAL);
    dir.cmd(&["check"]).assert().success();
}

#[test]
fn unknown_key_names_the_key() {
    check_bad(
        &with_feed("id = \"b\"\nurl = \"https://b.example.org/\"\n‸intervl = \"1h\""),
        "unknown key `intervl`: check its spelling",
    );
}

#[test]
fn wrong_type_is_reported_at_the_value() {
    check_bad(
        &with_feed("id = \"b\"\nurl = \"https://b.example.org/\"\ninterval = ‸15"),
        "`interval` must be text in double quotes, such as \"15m\"; found the number 15",
    );
}

#[test]
fn bad_duration_suggests_a_format() {
    check_bad(
        &with_feed(
            "id = \"b\"\nurl = \"https://b.example.org/\"\ninterval = ‸\"15 minutes please\"",
        ),
        "write something like \"15m\"",
    );
}

#[test]
fn too_short_interval_is_refused() {
    check_bad(
        &with_feed("id = \"b\"\nurl = \"https://b.example.org/\"\ninterval = ‸\"10s\""),
        "shorter than the minimum",
    );
}

#[test]
fn duplicate_feed_id_points_at_the_second() {
    check_bad(
        &with_feed("id = ‸\"wire\"\nurl = \"https://b.example.org/\""),
        "feed id \"wire\" is used twice",
    );
}

#[test]
fn feed_id_with_spaces_is_refused() {
    check_bad(
        &with_feed("id = ‸\"my feed\"\nurl = \"https://b.example.org/\""),
        "may only use a-z",
    );
}

#[test]
fn invalid_url_is_refused() {
    check_bad(
        &with_feed("id = \"b\"\nurl = ‸\"news.example.org/rss\""),
        "not a valid URL",
    );
}

#[test]
fn non_http_url_is_refused() {
    check_bad(
        &with_feed("id = \"b\"\nurl = ‸\"ftp://news.example.org/rss\""),
        "only http:// and https://",
    );
}

#[test]
fn unknown_state_code_is_refused() {
    check_bad(
        &MINIMAL.replace("[\"UKR\", \"POL\"]", "[\"UKR\", ‸\"XYZ\"]"),
        "unknown state code \"XYZ\"",
    );
}

#[test]
fn lower_case_state_code_gets_a_hint() {
    check_bad(
        &MINIMAL.replace("[\"UKR\", \"POL\"]", "[\"UKR\", ‸\"pol\"]"),
        "write \"POL\"",
    );
}

#[test]
fn unknown_treaty_id_lists_the_known_ones() {
    check_bad(
        &MINIMAL.replace("[\"ottawa\"]", "[‸\"otawa\"]"),
        "known ids: ottawa, ctbt",
    );
}

#[test]
fn missing_data_file_is_reported_at_its_reference() {
    check_bad(
        &MINIMAL.replace("states = \"states.toml\"", "states = ‸\"stats.toml\""),
        "cannot read states file",
    );
}

#[test]
fn toml_syntax_error_is_located() {
    check_bad(
        &format!("{MINIMAL}\n[notify]\nfrom = \"unterminated‸\n"),
        "expected `\"`",
    );
}

#[test]
fn inline_smtp_password_is_refused() {
    let feeds = format!(
        "{MINIMAL}\n[notify]\ntransport = \"smtp\"\n[notify.smtp]\nhost = \"smtp.example.org\"\nusername = \"u\"\npassword = ‸\"hunter2\"\n"
    );
    check_bad(&feeds, "password_env");
}

/// `[notify]` sending by SMTP with `secret` as the password key.
fn smtp_with(secret: &str) -> String {
    format!(
        "{MINIMAL}\n[notify]\ntransport = \"smtp\"\n[notify.smtp]\nhost = \"smtp.example.org\"\nusername = \"u\"\n{secret}\n"
    )
}

#[test]
fn a_password_variable_that_is_not_set_is_refused() {
    check_bad(
        &smtp_with("password_env = ‸\"TREATYWATCH_TEST_NOBODY_SETS_THIS\""),
        "$TREATYWATCH_TEST_NOBODY_SETS_THIS, which is not set",
    );
    // Set, it passes.
    let dir = ConfigDir::new(&smtp_with(
        "password_env = \"TREATYWATCH_TEST_NOBODY_SETS_THIS\"",
    ));
    dir.cmd(&["check"])
        .env("TREATYWATCH_TEST_NOBODY_SETS_THIS", "s3cret")
        .assert()
        .success();
}

#[test]
fn a_missing_or_unreadable_password_file_is_refused() {
    check_bad(
        &smtp_with("password_file = ‸\"smtp-password\""),
        "smtp-password does not exist",
    );
    check_bad(
        &smtp_with("password_file = ‸\"/nonexistent/treatywatch/smtp\""),
        "password_file /nonexistent/treatywatch/smtp does not exist",
    );
    // A folder where the file should be cannot be read as a password (the
    // tests may run as root, which reads any file whatever its mode).
    let dir = ConfigDir::new(&smtp_with("password_file = \"smtp\""));
    std::fs::create_dir(dir.dir.path().join("smtp")).expect("mkdir");
    let out = dir.cmd(&["check"]).output().expect("run");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("cannot read password_file") && stderr.contains("a folder, not a file"),
        "{stderr}"
    );
    // Empty, as the package creates it before the admin writes it.
    std::fs::remove_dir(dir.dir.path().join("smtp")).expect("rmdir");
    dir.write("smtp", "\n");
    let out = dir.cmd(&["check"]).output().expect("run");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("is empty; write the SMTP password"));
}

#[test]
fn a_relative_password_file_is_looked_for_in_the_credentials_directory() {
    let creds = tempfile::tempdir().expect("dir");
    // The file beside the config does not count when systemd gave a
    // credentials directory: the daemon would not read it.
    let feeds = smtp_with("password_file = ‸\"smtp\"");
    check_bad_with(
        "feeds.toml",
        &feeds,
        None,
        &[("CREDENTIALS_DIRECTORY", creds.path())],
        &format!(
            "{} does not exist (relative, so in $CREDENTIALS_DIRECTORY)",
            creds.path().join("smtp").display()
        ),
    );
    std::fs::write(creds.path().join("smtp"), "s3cret\n").expect("write");
    let dir = ConfigDir::new(&feeds.replace('‸', ""));
    dir.cmd(&["check"])
        .env("CREDENTIALS_DIRECTORY", creds.path())
        .assert()
        .success();
}

#[test]
fn a_maildir_that_is_missing_or_unreadable_is_refused() {
    let mailbox =
        |path: &str| format!("{MINIMAL}\n[[mailbox]]\nid = \"un\"\nmaildir = ‸\"{path}\"\n");
    check_bad(&mailbox("mail/un"), "does not exist; create it");
    let dir = ConfigDir::new(&mailbox("mail/un").replace('‸', ""));
    let maildir = dir.dir.path().join("mail/un");
    std::fs::create_dir_all(maildir.join("cur")).expect("mkdir");
    let out = dir.cmd(&["check"]).output().expect("run");
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("it has no new/ folder"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::create_dir_all(maildir.join("new")).expect("mkdir");
    std::fs::create_dir_all(maildir.join("tmp")).expect("mkdir");
    dir.cmd(&["check"]).assert().success();
    // A disabled mailbox is not read, so its folder is not checked.
    let off = ConfigDir::new(&format!(
        "{}enabled = false\n",
        mailbox("nowhere").replace('‸', "")
    ));
    off.cmd(&["check"]).assert().success();
}

#[test]
fn unknown_transport_is_refused() {
    check_bad(
        &format!("{MINIMAL}\n[notify]\ntransport = ‸\"pigeon\"\n"),
        "write \"file\"",
    );
}

#[test]
fn bad_recipient_address_is_refused() {
    check_bad(
        &format!("{MINIMAL}\n[notify]\nto = [‸\"desk at example.org\"]\n"),
        "not an e-mail address",
    );
}

#[test]
fn addresses_every_send_would_refuse_are_refused_by_check() {
    check_bad(
        &format!("{MINIMAL}\n[notify]\nto = [‸\"Arms, Control <ac@example.org>\"]\n"),
        "a display name with a comma must be quoted",
    );
    check_bad(
        &format!("{MINIMAL}\n[notify]\nto = [‸\"desk@example..org\"]\n"),
        "is not an e-mail address a mail server accepts",
    );
    check_bad(
        &format!("{MINIMAL}\n[notify]\nfrom = ‸\"treatywatch <tw@>\"\n"),
        "from address",
    );
}

#[test]
fn source_health_thresholds_are_checked() {
    check_bad(
        &format!("{MINIMAL}\n[notify]\nalert_after_failures = ‸0\n"),
        "alert_after_failures must be a whole number of failed polls, 1 or more",
    );
    check_bad(
        &format!("{MINIMAL}\n[notify]\nstale_after = ‸\"a week\"\n"),
        "stale_after \"a week\" is not a duration",
    );
    check_bad(
        &MINIMAL.replace(
            "interval = \"15m\"",
            "interval = \"15m\"\nstale_after = ‸\"0s\"",
        ),
        "stale_after must be longer than zero",
    );
}

#[test]
fn unknown_tls_mode_is_refused() {
    let feeds = format!(
        "{MINIMAL}\n[notify]\ntransport = \"smtp\"\n[notify.smtp]\nhost = \"smtp.example.org\"\ntls = ‸\"ssl3\"\n"
    );
    check_bad(&feeds, "\"starttls\", \"tls\" or \"none\"");
}

#[test]
fn smtp_timeouts_must_be_short_positive_durations() {
    for (value, fragment) in [
        ("‸\"0s\"", "[notify.smtp] timeout must be longer than zero"),
        (
            "‸\"soon\"",
            "[notify.smtp] timeout \"soon\" is not a duration",
        ),
        ("‸\"1h\"", "[notify.smtp] timeout is longer than 10 minutes"),
    ] {
        let feeds = format!(
            "{MINIMAL}\n[notify]\ntransport = \"smtp\"\n[notify.smtp]\nhost = \"smtp.example.org\"\ntimeout = {value}\n"
        );
        check_bad(&feeds, fragment);
    }
}

#[test]
fn max_digest_size_must_be_a_size_that_holds_a_digest() {
    for (value, fragment) in [
        ("‸\"huge\"", "max_digest_size \"huge\" is not a size"),
        (
            "‸\"1 KiB\"",
            "max_digest_size \"1 KiB\" is too small for a digest",
        ),
    ] {
        check_bad(
            &format!("{MINIMAL}\n[notify]\nmax_digest_size = {value}\n"),
            fragment,
        );
    }
}

#[test]
fn missing_tracking_table_is_refused() {
    check_bad(
        &format!(
            "‸{}",
            MINIMAL.replace(
                "[tracking]\nstates = [\"UKR\", \"POL\"]\ntreaties = [\"ottawa\"]\n",
                ""
            )
        ),
        "missing [tracking]",
    );
}

#[test]
fn group_with_unknown_member_is_reported_in_the_states_file() {
    let states = std::fs::read_to_string(format!("{}/states.toml", crate::support::FIXTURES))
        .expect("fixture");
    let broken = states.replace(
        "members = [\"UKR\", \"POL\"]",
        "members = [\"UKR\", ‸\"PLN\"]",
    );
    check_bad_in(
        "states.toml",
        MINIMAL,
        Some(&broken),
        "unknown state code \"PLN\"",
    );
}

#[test]
fn bad_notice_period_is_reported_in_the_treaties_file() {
    let treaties = std::fs::read_to_string(format!("{}/treaties.toml", crate::support::FIXTURES))
        .expect("fixture");
    let broken = treaties.replacen(
        "withdrawal_notice = \"6 months\"",
        "withdrawal_notice = ‸\"half a year\"",
        1,
    );
    check_bad_in(
        "treaties.toml",
        MINIMAL,
        Some(&broken),
        "write \"<n> days\"",
    );
}

#[test]
fn a_keyword_with_nothing_to_look_for_is_reported_at_it() {
    let treaties = std::fs::read_to_string(format!("{}/treaties.toml", crate::support::FIXTURES))
        .expect("fixture");
    let broken = treaties.replacen(
        "withdrawal_notice = \"6 months\"",
        "keywords = [\"mines\", ‸\"- !\"]\nwithdrawal_notice = \"6 months\"",
        1,
    );
    check_bad_in(
        "treaties.toml",
        MINIMAL,
        Some(&broken),
        "keyword \"- !\" has no word of three letters or more",
    );
}

#[test]
fn every_problem_is_reported_not_just_the_first() {
    let feeds = MINIMAL
        .replace("[\"UKR\", \"POL\"]", "[\"UKR\", \"XYZ\"]")
        .replace("interval = \"15m\"", "interval = \"soon\"");
    let dir = ConfigDir::new(&feeds);
    let output = dir.cmd(&["check"]).output().expect("run");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2));
    assert!(
        stderr.contains("XYZ") && stderr.contains("soon"),
        "{stderr}"
    );
    assert!(stderr.contains("2 problems"), "{stderr}");
}

#[test]
fn missing_config_file_says_how_to_point_at_one() {
    let dir = tempfile::tempdir().expect("dir");
    let output = assert_cmd::Command::cargo_bin("treatywatch")
        .expect("binary")
        .env_remove("TREATYWATCH_CONFIG")
        .args([
            "--config",
            &dir.path().join("nope.toml").to_string_lossy(),
            "check",
        ])
        .output()
        .expect("run");
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("--config"));
}

#[test]
fn subscription_with_unknown_state_is_refused() {
    check_bad(
        &format!(
            "{MINIMAL}\n[notify]\n[[notify.subscription]]\nto = [\"ngo@example.org\"]\nstates = [\"UKR\", ‸\"ukr2\"]\n"
        ),
        "unknown state code \"ukr2\" in a subscription",
    );
}

#[test]
fn subscription_with_lower_case_state_gets_a_hint() {
    check_bad(
        &format!(
            "{MINIMAL}\n[notify]\n[[notify.subscription]]\nto = [\"ngo@example.org\"]\nstates = [‸\"est\"]\n"
        ),
        "write \"EST\"",
    );
}

#[test]
fn subscription_with_unknown_treaty_is_refused() {
    check_bad(
        &format!(
            "{MINIMAL}\n[notify]\n[[notify.subscription]]\nto = [\"ngo@example.org\"]\ntreaties = [‸\"mine_ban\"]\n"
        ),
        "known ids: ottawa, ctbt",
    );
}

#[test]
fn unknown_urgent_stage_lists_the_statuses() {
    check_bad(
        &format!(
            "{MINIMAL}\n[notify]\n[[notify.subscription]]\nto = [\"ngo@example.org\"]\nurgent = [‸\"withdrawal_effective\"]\n"
        ),
        "expected one of: unknown, non_party",
    );
    check_bad(
        &format!("{MINIMAL}\n[notify]\nurgent = [‸\"soon\"]\n"),
        "[notify] urgent: unknown status \"soon\"",
    );
}

#[test]
fn subscription_without_recipients_is_refused() {
    check_bad(
        &format!("{MINIMAL}\n[notify]\n‸[[notify.subscription]]\nstates = [\"UKR\"]\n"),
        "this table needs the key `to`",
    );
    check_bad(
        &format!("{MINIMAL}\n[notify]\n[[notify.subscription]]\nto = ‸[]\n"),
        "has no recipients",
    );
}

#[test]
fn subscription_with_an_empty_filter_is_refused() {
    check_bad(
        &format!(
            "{MINIMAL}\n[notify]\n[[notify.subscription]]\nto = [\"ngo@example.org\"]\ntreaties = ‸[]\n"
        ),
        "would match nothing",
    );
}

#[test]
fn subscription_recipient_address_is_checked() {
    check_bad(
        &format!("{MINIMAL}\n[notify]\n[[notify.subscription]]\nto = [‸\"ngo\"]\n"),
        "not an e-mail address",
    );
}

/// MINIMAL, pointing `[data] rule_tests` at rule-tests.toml.
fn with_rule_tests() -> String {
    MINIMAL.replace("[data]\n", "[data]\nrule_tests = \"rule-tests.toml\"\n")
}

/// One example the shipped rules read right, written before `more`.
fn rule_tests(more: &str) -> String {
    format!(
        "[[test]]\nname = \"decree\"\ndate = \"2025-06-29\"\ntitle = \"Ukraine moves to leave the Ottawa Convention\"\nexpect = [\"UKR ottawa withdrawal_announced\"]\n\n{more}"
    )
}

#[test]
fn shipped_rule_tests_pass_and_are_counted() {
    let config = concat!(env!("CARGO_MANIFEST_DIR"), "/config/feeds.toml");
    let output = assert_cmd::Command::cargo_bin("treatywatch")
        .expect("binary")
        .args(["--config", config, "check"])
        .output()
        .expect("run");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let passed: usize = stdout
        .split(", ")
        .find_map(|part| part.trim().strip_suffix(" rule tests passed"))
        .unwrap_or_else(|| panic!("no rule test count: {stdout}"))
        .parse()
        .expect("a number");
    assert!(passed >= 15, "{stdout}");
}

#[test]
fn a_failing_rule_test_is_reported_at_its_test() {
    check_bad_in(
        "rule-tests.toml",
        &with_rule_tests(),
        Some(&rule_tests(
            "‸[[test]]\nname = \"wrong expectation\"\ntitle = \"Ukraine moves to leave the Ottawa Convention\"\nexpect = [\"POL ottawa withdrawal_announced\"]\n",
        )),
        "rule test \"wrong expectation\": expected POL ottawa withdrawal_announced, got UKR ottawa withdrawal_announced (rule announced.",
    );
}

#[test]
fn a_rule_test_that_must_find_nothing_fails_when_something_is_found() {
    let dir = ConfigDir::new(&with_rule_tests());
    dir.write(
        "rule-tests.toml",
        &rule_tests("[[test]]\nname = \"trap\"\ntitle = \"Poland moves to leave the Ottawa Convention\"\nexpect = []\n"),
    );
    let output = dir.cmd(&["check"]).output().expect("run check");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains(
            ":7:1: rule test \"trap\": expected nothing, got POL ottawa withdrawal_announced"
        ),
        "{stderr}"
    );
    assert!(stderr.contains("1 of 2 rule tests passed"), "{stderr}");
    assert!(output.stdout.is_empty(), "no ok line when tests fail");
}

#[test]
fn passing_rule_tests_are_counted_in_the_summary() {
    let dir = ConfigDir::new(&with_rule_tests());
    dir.write("rule-tests.toml", &rule_tests(""));
    let output = dir.cmd(&["check"]).output().expect("run check");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        stdout.trim_end().ends_with(", 1 rule test passed"),
        "{stdout}"
    );
}

#[test]
fn rule_test_with_unknown_state_is_refused_at_the_value() {
    check_bad_in(
        "rule-tests.toml",
        &with_rule_tests(),
        Some(&rule_tests(
            "[[test]]\nname = \"b\"\ntitle = \"t\"\nexpect = [‸\"ukr ottawa signed\"]\n",
        )),
        "unknown state code \"ukr\"; codes are upper case: write \"UKR\"",
    );
}

#[test]
fn rule_test_with_unknown_action_lists_the_actions() {
    check_bad_in(
        "rule-tests.toml",
        &with_rule_tests(),
        Some(&rule_tests(
            "[[test]]\nname = \"b\"\ntitle = \"t\"\nexpect = [‸\"UKR ottawa withdrew\"]\n",
        )),
        "withdrawal_announced",
    );
}

#[test]
fn missing_rule_tests_file_is_reported_at_its_reference() {
    let feeds = MINIMAL.replace("[data]\n", "[data]\nrule_tests = ‸\"examples.toml\"\n");
    check_bad(&feeds, "cannot read rule_tests file");
}

#[test]
fn backup_settings_are_checked() {
    check_bad(
        &format!("{MINIMAL}\n[storage]\nbackup_every = ‸\"10s\"\n"),
        "backup_every must be at least 1m",
    );
    check_bad(
        &format!("{MINIMAL}\n[storage]\nbackup_every = ‸\"daily\"\n"),
        "backup_every \"daily\" is not a duration",
    );
    check_bad(
        &format!("{MINIMAL}\n[storage]\nbackup_every = \"1d\"\nbackup_keep = ‸0\n"),
        "backup_keep must be between 1 and 1000, not 0",
    );
    check_bad(
        &format!("{MINIMAL}\n[storage]\nbackup_keep = ‸3\n"),
        "backup_keep has no effect without backup_every",
    );
}

#[test]
fn the_item_cap_is_checked() {
    check_bad(
        &format!("{MINIMAL}\n[fetch]\nmax_items = ‸0\n"),
        "max_items must be between 1 and 100000, not 0",
    );
}

#[test]
fn the_per_host_limit_is_checked() {
    check_bad(
        &format!("{MINIMAL}\n[fetch]\nper_host = ‸0\n"),
        "per_host must be between 1 and 64 (fetches in flight to one host; default 2), not 0",
    );
}

#[test]
fn web_settings_are_checked() {
    let web = |table: &str| format!("{MINIMAL}\n{table}\n");
    check_bad(&web("‸[web]\ntoken_file = \"t\""), "[web] has no `listen`");
    check_bad(&web("[web]\nlisten = ‸\"localhost\""), "is not an address");
    check_bad(
        &web("[web]\nlisten = ‸\"0.0.0.0:8080\""),
        "not a loopback address, and without a token",
    );
    check_bad(&web("[web]\nlisten = ‸\"[::]:8080\""), "add token_file");
    check_bad(
        &web("[web]\nlisten = \"127.0.0.1:8080\"\nbase_url = ‸\"ftp://x\""),
        "base_url \"ftp://x\" is not an http(s) URL",
    );
    check_bad(
        &web("[web]\nlisten = \"127.0.0.1:8080\"\ntoken_file = ‸\"$HOME/token\""),
        "only $CREDENTIALS_DIRECTORY/NAME is expanded",
    );
    check_bad(
        &web("[daemon]\nmetrics = \"127.0.0.1:9184\"\n\n[web]\nlisten = ‸\"127.0.0.1:9184\""),
        "is also [daemon] metrics",
    );
    check_bad(
        &web("[web]\nlisten = \"127.0.0.1:8080\"\n‸open = true"),
        "unknown key `open`",
    );
    // A token makes any address acceptable.
    let dir = ConfigDir::new(&web(
        "[web]\nlisten = \"0.0.0.0:8080\"\ntoken_file = \"$CREDENTIALS_DIRECTORY/web-token\"",
    ));
    let out = dir.cmd(&["check"]).output().expect("run check");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

//! treatywatch as a system service finds its files: the config search
//! order, the directories systemd hands a service ($CONFIGURATION_DIRECTORY,
//! $STATE_DIRECTORY, $CREDENTIALS_DIRECTORY), root refused on the service
//! user's database, a reload that applies `[fetch]` limits, and a busy
//! metrics port named with its config key.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::daemon::{signal, wait_for};
use crate::feed_server::Reply;
use crate::polling::{PollEnv, RSS, fixture};
use crate::support::{FIXTURES, MINIMAL};

/// A folder `dir` holding a MINIMAL feeds.toml (plus `extra`) and its data files.
fn config_in(dir: &Path, extra: &str) -> PathBuf {
    std::fs::create_dir_all(dir).expect("config dir");
    for f in ["states.toml", "treaties.toml"] {
        std::fs::copy(Path::new(FIXTURES).join(f), dir.join(f)).expect("copy fixture");
    }
    let rules = concat!(env!("CARGO_MANIFEST_DIR"), "/config/rules.toml");
    std::fs::copy(rules, dir.join("rules.toml")).expect("copy rules");
    let path = dir.join("feeds.toml");
    std::fs::write(&path, format!("{MINIMAL}{extra}")).expect("write feeds.toml");
    path
}

/// The binary, run in `cwd` with none of the variables under test
/// inherited; `vars` sets the ones a case wants.
fn treatywatch(cwd: &Path, vars: &[(&str, &Path)], args: &[&str]) -> std::process::Output {
    let mut cmd = Command::new(assert_cmd::cargo::cargo_bin("treatywatch"));
    cmd.current_dir(cwd);
    for var in [
        "TREATYWATCH_CONFIG",
        "CONFIGURATION_DIRECTORY",
        "STATE_DIRECTORY",
        "CREDENTIALS_DIRECTORY",
    ] {
        cmd.env_remove(var);
    }
    for (k, v) in vars {
        cmd.env(k, v);
    }
    cmd.args(args).output().expect("run treatywatch")
}

fn text(out: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Which config `check` loaded: the path its "ok" line starts with.
fn checked(out: &std::process::Output) -> String {
    assert!(out.status.success(), "check failed:\n{}", text(out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    stdout.split(": ok").next().expect("an ok line").to_string()
}

#[test]
fn config_is_found_by_flag_then_variable_then_systemd_then_checkout_then_etc() {
    let top = tempfile::tempdir().expect("dir");
    let cwd = top.path().join("work");
    std::fs::create_dir_all(&cwd).expect("cwd");

    // Nothing anywhere: the error lists every place, in order.
    if !Path::new("/etc/treatywatch/feeds.toml").exists() {
        let out = treatywatch(&cwd, &[], &["check"]);
        assert_eq!(out.status.code(), Some(2), "{}", text(&out));
        assert!(
            text(&out).contains(
                "looked for config/feeds.toml, then /etc/treatywatch/feeds.toml; pass --config PATH or set TREATYWATCH_CONFIG"
            ),
            "{}",
            text(&out)
        );
        let systemd = top.path().join("empty");
        let out = treatywatch(&cwd, &[("CONFIGURATION_DIRECTORY", &systemd)], &["check"]);
        assert!(
            text(&out).contains(&format!(
                "looked for {}, then config/feeds.toml",
                systemd.join("feeds.toml").display()
            )),
            "{}",
            text(&out)
        );
    }

    // Each place wins over the ones after it.
    config_in(&cwd.join("config"), "");
    let out = treatywatch(&cwd, &[], &["check"]);
    assert_eq!(checked(&out), "config/feeds.toml");

    let systemd = top.path().join("etc-tw");
    let systemd_config = config_in(&systemd, "");
    let out = treatywatch(&cwd, &[("CONFIGURATION_DIRECTORY", &systemd)], &["check"]);
    assert_eq!(checked(&out), systemd_config.display().to_string());

    let variable = config_in(&top.path().join("var"), "");
    let out = treatywatch(
        &cwd,
        &[
            ("CONFIGURATION_DIRECTORY", &systemd),
            ("TREATYWATCH_CONFIG", &variable),
        ],
        &["check"],
    );
    assert_eq!(checked(&out), variable.display().to_string());

    let flag = config_in(&top.path().join("flag"), "");
    let flag_arg = flag.display().to_string();
    let out = treatywatch(
        &cwd,
        &[
            ("CONFIGURATION_DIRECTORY", &systemd),
            ("TREATYWATCH_CONFIG", &variable),
        ],
        &["--config", &flag_arg, "check"],
    );
    assert_eq!(checked(&out), flag_arg);

    // A named config is used as named, even when it does not exist: no
    // silent fallback to another file.
    let missing = top.path().join("nope.toml");
    let out = treatywatch(&cwd, &[("TREATYWATCH_CONFIG", &missing)], &["check"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out).contains(&format!("cannot read config file {}", missing.display())),
        "{}",
        text(&out)
    );
}

#[test]
fn relative_data_paths_live_in_the_state_directory() {
    let top = tempfile::tempdir().expect("dir");
    let assert_args = [
        "assert",
        "UKR",
        "ottawa",
        "party",
        "--no-mail",
        "--note",
        "test",
    ];
    let state = top.path().join("state");
    std::fs::create_dir_all(&state).expect("state dir");

    // [storage] path unset: treatywatch.db in the state directory.
    let etc = top.path().join("etc");
    let config = config_in(&etc, "");
    let mut args = vec!["--config", config.to_str().expect("utf-8")];
    args.extend(assert_args);
    let out = treatywatch(top.path(), &[("STATE_DIRECTORY", &state)], &args);
    assert!(out.status.success(), "{}", text(&out));
    assert!(state.join("treatywatch.db").is_file());
    assert!(!etc.join("data").exists(), "nothing beside the config");

    // Relative: inside the state directory. Without one: beside the config.
    let etc2 = top.path().join("etc2");
    let config = config_in(&etc2, "\n[storage]\npath = \"sub/log.db\"\n");
    let mut args = vec!["--config", config.to_str().expect("utf-8")];
    args.extend(assert_args);
    let out = treatywatch(top.path(), &[("STATE_DIRECTORY", &state)], &args);
    assert!(out.status.success(), "{}", text(&out));
    assert!(state.join("sub/log.db").is_file());
    let out = treatywatch(top.path(), &[], &args);
    assert!(out.status.success(), "{}", text(&out));
    assert!(etc2.join("sub/log.db").is_file());

    // Absolute: as written, whatever systemd says.
    let elsewhere = top.path().join("abs/log.db");
    let etc3 = top.path().join("etc3");
    let config = config_in(
        &etc3,
        &format!("\n[storage]\npath = \"{}\"\n", elsewhere.display()),
    );
    let mut args = vec!["--config", config.to_str().expect("utf-8")];
    args.extend(assert_args);
    let out = treatywatch(top.path(), &[("STATE_DIRECTORY", &state)], &args);
    assert!(out.status.success(), "{}", text(&out));
    assert!(elsewhere.is_file());
}

#[test]
fn a_relative_password_file_is_a_systemd_credential() {
    let top = tempfile::tempdir().expect("dir");
    let etc = top.path().join("etc");
    // Port 1 on loopback refuses at once: once the password is read, the
    // send fails at connecting, which shows the password was found.
    let config = config_in(
        &etc,
        "\n[notify]\nto = [\"desk@example.org\"]\ntransport = \"smtp\"\n\n\
         [notify.smtp]\nhost = \"127.0.0.1\"\nport = 1\ntls = \"none\"\nusername = \"tw\"\npassword_file = \"smtp\"\n",
    );
    let config = config.to_str().expect("utf-8");
    let out = treatywatch(
        top.path(),
        &[],
        &[
            "--config",
            config,
            "assert",
            "UKR",
            "ottawa",
            "withdrawal_announced",
            "--note",
            "test",
        ],
    );
    assert!(out.status.success(), "{}", text(&out));
    let creds = top.path().join("credentials");
    std::fs::create_dir_all(&creds).expect("credentials dir");
    let send = |vars: &[(&str, &Path)]| {
        let out = treatywatch(top.path(), vars, &["--config", config, "digest", "--send"]);
        assert_eq!(out.status.code(), Some(1), "{}", text(&out));
        text(&out)
    };

    let inside = send(&[("CREDENTIALS_DIRECTORY", &creds)]);
    assert!(
        inside.contains(&format!(
            "cannot read the SMTP password file {}",
            creds.join("smtp").display()
        )),
        "{inside}"
    );
    let outside = send(&[]);
    assert!(
        outside.contains(&format!(
            "cannot read the SMTP password file {}",
            etc.join("smtp").display()
        )),
        "without systemd, beside the config (where the unit loads it from): {outside}"
    );
    std::fs::write(creds.join("smtp"), "s3cret\n").expect("credential");
    let found = send(&[("CREDENTIALS_DIRECTORY", &creds)]);
    assert!(!found.contains("password file"), "{found}");
}

#[test]
fn root_is_refused_on_a_database_that_belongs_to_the_service_user() {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("skipped: needs root to hand a folder to another user");
        return;
    }
    let top = tempfile::tempdir().expect("dir");
    let config = config_in(&top.path().join("etc"), "");
    let state = top.path().join("state");
    std::fs::create_dir_all(&state).expect("state dir");
    // 65534 is `nobody` on Debian: an unprivileged owner like the service user.
    let status = Command::new("chown")
        .args(["65534:65534", state.to_str().expect("utf-8")])
        .status()
        .expect("chown");
    assert!(status.success());
    let db = state.join("treatywatch.db");
    let (config, db) = (
        config.to_str().expect("utf-8").to_string(),
        db.to_str().expect("utf-8").to_string(),
    );
    for command in [&["status"][..], &["poll"], &["doctor"]] {
        let mut args = vec!["--config", &config, "--db", &db];
        args.extend(command);
        let out = treatywatch(top.path(), &[], &args);
        assert_eq!(out.status.code(), Some(1), "{}", text(&out));
        let message = text(&out);
        assert!(
            message.contains(&format!("{} belongs to the user nobody", state.display())),
            "{message}"
        );
        assert!(
            message.contains(&format!(
                "sudo -u nobody {} --config {config} --db {db} {}",
                assert_cmd::cargo::cargo_bin("treatywatch").display(),
                command.join(" ")
            )),
            "the exact command to run instead: {message}"
        );
    }
    assert_eq!(
        std::fs::read_dir(&state).expect("state").count(),
        0,
        "root left nothing in the service's folder"
    );
}

/// Replaces `[fetch]` keys in the PollEnv config.
fn set_fetch(env: &PollEnv, feeds: &[(&str, &str)], timeout: &str, max_body: &str) {
    env.write_config(feeds);
    let text = std::fs::read_to_string(env.config_path()).expect("config");
    let text = text
        .replace(
            "timeout = \"2s\"\nconnect",
            &format!("timeout = \"{timeout}\"\nconnect"),
        )
        .replace(
            "max_body = \"256 KiB\"",
            &format!("max_body = \"{max_body}\""),
        );
    std::fs::write(env.config_path(), text).expect("write config");
}

#[test]
fn a_reload_applies_the_fetch_timeout_and_body_limit() {
    let feeds = [("slow", "/slow.xml"), ("big", "/big.xml")];
    let env = PollEnv::new(&feeds);
    // Answers after 1.5 s: within a 10 s timeout, not within 1 s.
    env.server.set(
        "/slow.xml",
        Reply::feed(fixture("rss2.xml"), RSS).late(Duration::from_millis(1500)),
    );
    env.server
        .set("/big.xml", Reply::feed(fixture("rss2.xml"), RSS));
    assert!(
        fixture("rss2.xml").len() > 1024,
        "the fixture exceeds 1 KiB"
    );
    set_fetch(&env, &feeds, "10s", "256 KiB");

    let log_path = env.dir.path().join("daemon.log");
    let child = crate::crash::KillOnDrop(
        Command::new(assert_cmd::cargo::cargo_bin("treatywatch"))
            .env_remove("TREATYWATCH_CONFIG")
            .env_remove("NOTIFY_SOCKET")
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
    let ingested = |feed: &str| {
        log()
            .lines()
            .filter(|l| l.contains("\"ingested\"") && l.contains(&format!("\"{feed}\"")))
            .count()
    };
    wait_for("both feeds to be fetched within the first limits", || {
        ingested("slow") == 1 && ingested("big") == 1
    });
    assert!(!log().contains("poll failed"), "{}", log());

    set_fetch(&env, &feeds, "1s", "1 KiB");
    signal(&child.0, "HUP");
    wait_for("the reload", || log().contains("configuration reloaded"));
    signal(&child.0, "USR1");
    wait_for("both feeds to fail under the new limits", || {
        let log = log();
        log.contains("no complete response within 1s") && log.contains("the 1024-byte limit")
    });
    signal(&child.0, "TERM");
}

#[test]
fn a_busy_metrics_port_names_the_address_and_the_key() {
    let env = PollEnv::new(&[]);
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = taken.local_addr().expect("addr");
    let mut config = std::fs::read_to_string(env.config_path()).expect("config");
    config.push_str(&format!("\n[daemon]\nmetrics = \"{addr}\"\n"));
    std::fs::write(env.config_path(), config).expect("write config");
    let out = env.run(&["run"]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!("cannot serve metrics on {addr}"))
            && stderr.contains(&format!("`[daemon] metrics = \"{addr}\"`"))
            && stderr.contains(&env.config_path().display().to_string()),
        "{stderr}"
    );
    drop(taken);
}

//! `transport = "sendmail"`: digests handed to a real process, a fake
//! sendmail script that records its arguments and stdin and exits as told.
//! A digest is delivered exactly once, a temporary failure (exit 75,
//! EX_TEMPFAIL) keeps it pending and the next send delivers the same
//! message, and `check` finds a sendmail that is not there.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use crate::support::{ConfigDir, MINIMAL};

/// A sendmail that appends its arguments to `calls` (one line per run),
/// writes its stdin to `mail.N`, and exits with the number in `exit`
/// (0 when there is none).
fn fake_sendmail(dir: &Path) -> PathBuf {
    let script = dir.join("sendmail");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\nd='{}'\nn=$(($(wc -l < \"$d/calls\" 2>/dev/null || echo 0) + 1))\n\
             cat > \"$d/mail.$n\"\necho \"$*\" >> \"$d/calls\"\n\
             if [ -f \"$d/exit\" ]; then echo 'queue file write error' >&2; exit \"$(cat \"$d/exit\")\"; fi\nexit 0\n",
            dir.display()
        ),
    )
    .expect("script");
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    script
}

fn calls(dir: &Path) -> Vec<String> {
    std::fs::read_to_string(dir.join("calls"))
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect()
}

fn message_id(mail: &str) -> String {
    mail.lines()
        .find_map(|l| l.strip_prefix("Message-ID: "))
        .expect("a Message-ID header")
        .trim()
        .to_string()
}

fn config(sendmail: &Path) -> String {
    format!(
        "{MINIMAL}\n[notify]\nfrom = \"tw <tw@alerts.example.org>\"\nto = [\"desk@example.org\"]\ntransport = \"sendmail\"\nsendmail = \"{}\"\n",
        sendmail.display()
    )
}

fn run(dir: &ConfigDir, args: &[&str]) -> std::process::Output {
    dir.cmd(args).output().expect("run treatywatch")
}

#[test]
fn digests_go_through_sendmail_once_and_a_temporary_failure_is_retried() {
    let bin = tempfile::tempdir().expect("dir");
    let sendmail = fake_sendmail(bin.path());
    let dir = ConfigDir::new(&config(&sendmail));
    let out = run(&dir, &["check"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let change = |action: &str| {
        let out = run(&dir, &["assert", "UKR", "ottawa", action, "--note", "test"]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    change("withdrawal_announced");

    // The MTA cannot take mail now: exit 75. The digest stays pending.
    std::fs::write(bin.path().join("exit"), "75").expect("exit code");
    let failed = run(&dir, &["digest", "--send"]);
    let stderr = String::from_utf8_lossy(&failed.stderr);
    assert_eq!(failed.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("exit 75 (temporary failure)") && stderr.contains("queue file write error"),
        "{stderr}"
    );
    assert_eq!(calls(bin.path()).len(), 1);
    let status = run(&dir, &["status"]);
    assert!(
        String::from_utf8_lossy(&status.stdout).contains("desk@example.org"),
        "status lists the undelivered digest: {}",
        String::from_utf8_lossy(&status.stdout)
    );

    // It works again: the same message goes through, once.
    std::fs::remove_file(bin.path().join("exit")).expect("rm");
    let sent = run(&dir, &["digest", "--send"]);
    assert!(
        sent.status.success(),
        "{}",
        String::from_utf8_lossy(&sent.stderr)
    );
    let after = calls(bin.path());
    assert_eq!(after.len(), 2, "{after:?}");
    assert_eq!(
        after[1], "-i -f tw@alerts.example.org -- desk@example.org",
        "the envelope as arguments"
    );
    let first = std::fs::read_to_string(bin.path().join("mail.1")).expect("mail 1");
    let second = std::fs::read_to_string(bin.path().join("mail.2")).expect("mail 2");
    assert_eq!(
        first, second,
        "the retry is the same message, byte for byte"
    );
    assert!(second.contains("To: desk@example.org"), "{second}");
    assert!(second.contains("Ukraine"), "{second}");

    // Nothing is sent twice; the next change is a digest of its own.
    let again = run(&dir, &["digest", "--send"]);
    assert!(again.status.success());
    assert_eq!(calls(bin.path()).len(), 2, "delivered exactly once");
    change("withdrawal_notified");
    let next = run(&dir, &["digest", "--send"]);
    assert!(
        next.status.success(),
        "{}",
        String::from_utf8_lossy(&next.stderr)
    );
    assert_eq!(calls(bin.path()).len(), 3);
    let third = std::fs::read_to_string(bin.path().join("mail.3")).expect("mail 3");
    assert_ne!(message_id(&third), message_id(&second));
}

#[test]
fn check_finds_a_sendmail_that_is_not_there() {
    let dir = ConfigDir::new(&config(Path::new("/nonexistent/sbin/sendmail")));
    let out = run(&dir, &["check"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("sendmail /nonexistent/sbin/sendmail does not exist"),
        "{stderr}"
    );
    let relative = ConfigDir::new(&config(Path::new("sendmail")));
    let out = run(&relative, &["check"]);
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("is not an absolute path"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

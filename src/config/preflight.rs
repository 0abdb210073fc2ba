//! What the config points at outside itself, looked at as the daemon will
//! find it: the SMTP password (`password_env`, `password_file`, resolved
//! through `$CREDENTIALS_DIRECTORY` as `load` resolves it), the sendmail
//! program, each webhook's `token_file` and each enabled mailbox's Maildir
//! or IMAP password. `check` runs this after `load`; a problem is a
//! `path:line:col` diagnostic at the key, saying what to do.
//!
//! Not part of `load`: these depend on the environment and the file system
//! of the moment (a credential systemd has not mounted yet, a folder the
//! MTA creates at its first delivery), and the daemon treats them as a
//! failed send or a failed read, retried, never as a reason not to start.
//! `check` is where an administrator wants to hear about them first.

use std::ffi::OsString;
use std::io::ErrorKind;
use std::path::Path;

use super::{Config, Diagnostic, MailboxSource, PasswordSource, Transport};

/// Every problem found; empty when the secrets and folders are there.
/// `env` reads an environment variable (`std::env::var_os` in `check`).
pub fn check(config: &Config, env: &dyn Fn(&str) -> Option<OsString>) -> Vec<Diagnostic> {
    let mut out = Vec::new();
    if let Transport::Smtp(smtp) = &config.notify.transport
        && let (Some(source), Some(at)) = (&smtp.password, &smtp.password_at)
        && let Some(message) = password_problem(source, env)
    {
        out.push(at.diagnostic(message));
    }
    if let Transport::Sendmail(sendmail) = &config.notify.transport
        && let Some(at) = &sendmail.path_at
        && let Some(message) = sendmail_problem(&sendmail.path)
    {
        out.push(at.diagnostic(message));
    }
    out.extend(super::webhook::unreadable_tokens(&config.notify.webhooks));
    for mailbox in config.mailboxes.iter().filter(|m| m.enabled) {
        // An IMAP mailbox's server is only reached by a read (`poll`); its
        // password is looked for here.
        let MailboxSource::Maildir(path) = &mailbox.source else {
            if let MailboxSource::Imap(imap) = &mailbox.source
                && let Some(at) = &mailbox.source_at
                && let Some(message) = imap_password_problem(&imap.password, env)
            {
                out.push(at.diagnostic(format!("mailbox {}: {message}", mailbox.id)));
            }
            continue;
        };
        if let Some(at) = &mailbox.source_at
            && let Some(message) = maildir_problem(path)
        {
            out.push(at.diagnostic(format!("mailbox {}: {message}", mailbox.id)));
        }
    }
    out
}

/// What a password is for, in the words its problems are told in.
struct PasswordUse {
    /// Before the key's name: "" for `[notify.smtp]`, "[mailbox.imap] ".
    table: &'static str,
    /// "SMTP", "IMAP".
    protocol: &'static str,
    /// What fails without it: "send", "read".
    fails: &'static str,
    /// The unit's line that hands the password file to the service.
    credential: &'static str,
}

const SMTP: PasswordUse = PasswordUse {
    table: "",
    protocol: "SMTP",
    fails: "send",
    credential: "`LoadCredential=smtp:/etc/treatywatch/smtp` hands /etc/treatywatch/smtp to the service as $CREDENTIALS_DIRECTORY/smtp",
};

const IMAP: PasswordUse = PasswordUse {
    table: "[mailbox.imap] ",
    protocol: "IMAP",
    fails: "read",
    credential: "`LoadCredential=imap-password:/etc/treatywatch/imap-password` in the unit hands it to the service as $CREDENTIALS_DIRECTORY/imap-password",
};

fn password_problem(
    source: &PasswordSource,
    env: &dyn Fn(&str) -> Option<OsString>,
) -> Option<String> {
    password_problem_for(&SMTP, source, env)
}

/// An IMAP mailbox's password is where `[mailbox.imap]` says.
fn imap_password_problem(
    source: &PasswordSource,
    env: &dyn Fn(&str) -> Option<OsString>,
) -> Option<String> {
    password_problem_for(&IMAP, source, env)
}

fn password_problem_for(
    usage: &PasswordUse,
    source: &PasswordSource,
    env: &dyn Fn(&str) -> Option<OsString>,
) -> Option<String> {
    let PasswordUse {
        table,
        protocol,
        fails,
        credential,
    } = usage;
    match source {
        PasswordSource::Env(var) => match env(var) {
            None => Some(format!(
                "{table}password_env names ${var}, which is not set, so every {fails} would fail to log in; set it for the service (`systemctl edit treatywatch`: `Environment={var}=…` or `EnvironmentFile=`) and where you run check, or use `password_file`"
            )),
            Some(v) if v.is_empty() => Some(format!(
                "{table}password_env names ${var}, which is set but empty; put the {protocol} password in it"
            )),
            Some(_) => None,
        },
        PasswordSource::File(path) => match std::fs::read(path) {
            Ok(bytes) if bytes.iter().all(|b| matches!(b, b'\r' | b'\n')) => Some(format!(
                "{table}password_file {} is empty; write the {protocol} password into it",
                path.display()
            )),
            Ok(_) => None,
            Err(e) if e.kind() == ErrorKind::NotFound => Some(format!(
                "{table}password_file {} does not exist{}, so every {fails} would fail to log in; write the password there ({credential})",
                path.display(),
                credentials_note(),
            )),
            Err(e) => Some(format!(
                "cannot read {table}password_file {}{}: {}; make it a file the service can read (through LoadCredential=, systemd reads it as root), then run check again as root or as the unit does",
                path.display(),
                credentials_note(),
                io_words(&e),
            )),
        },
    }
}

/// The sendmail program is there and may be run.
fn sendmail_problem(path: &Path) -> Option<String> {
    use std::os::unix::fs::PermissionsExt;
    match std::fs::metadata(path) {
        Err(e) if e.kind() == ErrorKind::NotFound => Some(format!(
            "sendmail {} does not exist; install a mail transfer agent that provides it (postfix, exim4, msmtp-mta, nullmailer) or set `sendmail = \"PATH\"` under [notify]",
            path.display()
        )),
        Err(e) => Some(format!(
            "cannot look at sendmail {}: {}",
            path.display(),
            io_words(&e)
        )),
        Ok(meta) if !meta.is_file() || meta.permissions().mode() & 0o111 == 0 => Some(format!(
            "sendmail {} is not an executable program; point `sendmail` under [notify] at the MTA's sendmail",
            path.display()
        )),
        Ok(_) => None,
    }
}

/// Says where a relative `password_file` was looked for.
fn credentials_note() -> &'static str {
    if std::env::var_os("CREDENTIALS_DIRECTORY").is_some() {
        " (relative, so in $CREDENTIALS_DIRECTORY)"
    } else {
        ""
    }
}

/// The folder as `mailbox::read` will list it: cur/, new/ and tmp/ there,
/// new/ and cur/ listable.
fn maildir_problem(path: &Path) -> Option<String> {
    match std::fs::metadata(path) {
        Err(e) if e.kind() == ErrorKind::NotFound => {
            return Some(format!(
                "Maildir {} does not exist; create it (`mkdir -p {}/{{cur,new,tmp}}`, owned by the treatywatch user) or point `maildir` where fetchmail, getmail or the MTA delivers, or set `enabled = false`",
                path.display(),
                path.display()
            ));
        }
        Err(e) => {
            return Some(format!(
                "cannot read Maildir {}: {}; give the treatywatch user access to it",
                path.display(),
                io_words(&e)
            ));
        }
        Ok(meta) if !meta.is_dir() => {
            return Some(format!(
                "Maildir {} is a file, not a folder; point `maildir` at a folder with cur/, new/ and tmp/",
                path.display()
            ));
        }
        Ok(_) => {}
    }
    for sub in ["cur", "new", "tmp"] {
        if !path.join(sub).is_dir() {
            return Some(format!(
                "{} is not a Maildir: it has no {sub}/ folder; point `maildir` at a folder with cur/, new/ and tmp/ (where fetchmail, getmail or the MTA delivers)",
                path.display()
            ));
        }
    }
    for sub in ["new", "cur"] {
        let dir = path.join(sub);
        if let Err(e) = std::fs::read_dir(&dir) {
            return Some(format!(
                "cannot list {}: {}; give the treatywatch user read access to the Maildir",
                dir.display(),
                io_words(&e)
            ));
        }
    }
    None
}

/// An I/O error in a person's words, without the "(os error 13)".
fn io_words(e: &std::io::Error) -> String {
    match e.kind() {
        ErrorKind::PermissionDenied => "permission denied".to_string(),
        ErrorKind::IsADirectory => "it is a folder, not a file".to_string(),
        ErrorKind::NotADirectory => "a part of the path is a file, not a folder".to_string(),
        _ => e.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_looked_for_where_the_send_will_look() {
        let dir = tempfile::tempdir().expect("dir");
        let none = |_: &str| None;
        let set = |_: &str| Some(OsString::from("s3cret"));
        let empty = |_: &str| Some(OsString::new());
        let env = PasswordSource::Env("TW_SMTP".into());
        assert!(password_problem(&env, &none).is_some_and(|m| m.contains("$TW_SMTP")));
        assert!(password_problem(&env, &empty).is_some_and(|m| m.contains("empty")));
        assert_eq!(password_problem(&env, &set), None);

        let file = dir.path().join("smtp");
        let at = |p: &Path| PasswordSource::File(p.to_path_buf());
        assert!(password_problem(&at(&file), &none).is_some_and(|m| m.contains("does not exist")));
        std::fs::write(&file, "\n").expect("write");
        assert!(password_problem(&at(&file), &none).is_some_and(|m| m.contains("empty")));
        std::fs::write(&file, "s3cret\n").expect("write");
        assert_eq!(password_problem(&at(&file), &none), None);
        assert!(
            password_problem(&at(dir.path()), &none)
                .is_some_and(|m| m.contains("a folder, not a file"))
        );
    }
}

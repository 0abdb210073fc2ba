//! The sendmail transport: each digest is handed to the local MTA's
//! `sendmail` program (`sendmail -i -f FROM -- TO`, the message on stdin),
//! which queues it and delivers it on its own schedule — what a Debian box
//! with Postfix, Exim or msmtp expects. The outbox treats it like any other
//! transport: exit 0 is delivered, anything else a `DeliveryError`.
//!
//! Not lettre's `SendmailTransport`: that one reports a failure only as the
//! program's stderr (so EX_TEMPFAIL, "try again later", cannot be told
//! from EX_NOUSER), has no time limit (a hung sendmail would hold the
//! courier's thread for ever), and writes all of stdin before reading
//! stderr. Here the exit status decides (sysexits.h), a program that runs
//! past `timeout` is killed, and stdin and stderr are served by threads of
//! their own.

use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use super::transport::{DeliveryError, Outgoing, Transport};
use crate::config::Sendmail as SendmailConfig;

/// sysexits.h codes that mean "do not try again as is".
pub(super) const EX_DATAERR: i32 = 65;
const EX_NOUSER: i32 = 67;
const EX_NOHOST: i32 = 68;
/// "Try again later": what an MTA says when its queue cannot take mail now.
const EX_TEMPFAIL: i32 = 75;
/// The most of sendmail's stderr a report carries.
const MAX_STDERR: usize = 2000;
/// How often a running sendmail is looked at while waiting for it.
const POLL: Duration = Duration::from_millis(10);

pub struct Sendmail {
    path: PathBuf,
    timeout: Duration,
}

impl Sendmail {
    pub fn new(config: &SendmailConfig) -> Sendmail {
        Sendmail {
            path: config.path.clone(),
            timeout: config.timeout,
        }
    }

    fn failed(&self, status: ExitStatus, stderr: &str) -> DeliveryError {
        let path = self.path.display().to_string();
        let detail = stderr.trim().chars().take(MAX_STDERR).collect::<String>();
        match status.code() {
            Some(code @ (EX_DATAERR | EX_NOUSER | EX_NOHOST)) => {
                DeliveryError::SendmailRefused { path, code, detail }
            }
            code => DeliveryError::SendmailFailed {
                path,
                status: match code {
                    Some(EX_TEMPFAIL) => "exit 75 (temporary failure)".to_string(),
                    Some(c) => format!("exit {c}"),
                    None => "killed by a signal".to_string(),
                },
                detail,
            },
        }
    }
}

impl Transport for Sendmail {
    fn deliver(&mut self, mail: &Outgoing<'_>) -> Result<(), DeliveryError> {
        let path = self.path.display().to_string();
        // -i: a line holding only "." is text, not the end of the message.
        let mut child = Command::new(&self.path)
            .args(["-i", "-f", mail.from, "--", mail.to])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| DeliveryError::SendmailMissing {
                path: path.clone(),
                detail: e.to_string(),
            })?;
        let mut stdin = child.stdin.take();
        let message = mail.message.to_vec();
        // A program that stops reading must not block us: it gets a broken
        // pipe when it exits or is killed.
        let writer = std::thread::spawn(move || {
            if let Some(stdin) = stdin.as_mut() {
                let _ = stdin.write_all(&message);
            }
        });
        let mut stderr = child.stderr.take();
        let reader = std::thread::spawn(move || {
            let mut text = Vec::new();
            if let Some(s) = stderr.as_mut() {
                let _ = s.take(64 << 10).read_to_end(&mut text);
            }
            String::from_utf8_lossy(&text).into_owned()
        });
        let deadline = Instant::now() + self.timeout;
        let status = loop {
            match child.try_wait() {
                Ok(Some(status)) => break Ok(status),
                Ok(None) if Instant::now() >= deadline => {
                    let _ = child.kill();
                    let _ = child.wait();
                    break Err(DeliveryError::SendmailTimeout {
                        path: path.clone(),
                        secs: self.timeout.as_secs(),
                    });
                }
                Ok(None) => std::thread::sleep(POLL),
                Err(e) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    break Err(DeliveryError::SendmailMissing {
                        path: path.clone(),
                        detail: e.to_string(),
                    });
                }
            }
        };
        let _ = writer.join();
        let stderr = reader.join().unwrap_or_default();
        let status = status?;
        if status.success() {
            Ok(())
        } else {
            Err(self.failed(status, &stderr))
        }
    }

    fn describe(&self) -> String {
        format!("sendmail {}", self.path.display())
    }

    fn deadline(&self) -> Duration {
        // Its own limit, and a moment to kill and reap it.
        self.timeout + Duration::from_secs(5)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::process::ExitStatusExt;

    #[test]
    fn the_exit_status_says_whether_to_try_again() {
        let s = Sendmail {
            path: "/usr/sbin/sendmail".into(),
            timeout: Duration::from_secs(1),
        };
        let exit = |code: i32| ExitStatus::from_raw(code << 8);
        let temp = s.failed(exit(75), "queue full\n");
        assert!(!temp.is_permanent(), "{temp}");
        assert!(temp.to_string().contains("temporary failure"), "{temp}");
        assert!(temp.to_string().contains("queue full"), "{temp}");
        let nouser = s.failed(exit(67), "");
        assert!(
            nouser.is_permanent() && !nouser.refuses_message(),
            "{nouser}"
        );
        let data = s.failed(exit(65), "");
        assert!(data.is_permanent() && data.refuses_message(), "{data}");
        assert!(!s.failed(ExitStatus::from_raw(9), "").is_permanent());
    }
}

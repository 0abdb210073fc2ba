//! The SMTP transport (lettre), and the only code in treatywatch that speaks
//! SMTP.
//!
//! TLS modes map to lettre's: `tls` is implicit TLS from the first byte
//! (RFC 8314, port 465), `starttls` requires the upgrade and refuses to send
//! in clear if the server does not offer it, `none` is plain text for a
//! relay on the same machine. The password is read when the transport is
//! opened, from an environment variable or a file (a systemd credential),
//! never from the config file. One message is one SMTP transaction with one
//! recipient, so a refusal for one address cannot affect another.
//!
//! The session is driven one command at a time (lettre's `SmtpConnection`)
//! rather than through `SmtpTransport::send`, for two reasons. Every wait
//! is bounded twice: by `[notify.smtp] timeout` for the connection and for
//! each reply, and by `deadline` for the whole delivery, so a server that
//! accepts the connection and then says nothing, or trickles its replies,
//! costs at most `deadline`. And an error can say what happened at which
//! step ("timeout after 30 s waiting for the server's reply to DATA",
//! "connection closed during DATA") instead of the socket's `os error 11`.

use std::fmt;
use std::io;
use std::time::{Duration, Instant};

use lettre::address::{Address, Envelope};
use lettre::transport::smtp::authentication::{Credentials, Mechanism};
use lettre::transport::smtp::client::{SmtpConnection, TlsParameters};
use lettre::transport::smtp::commands::{Data, Mail, Rcpt};
use lettre::transport::smtp::extension::{ClientId, Extension, MailBodyParameter, MailParameter};

use super::NotifyError;
use super::transport::{DeliveryError, Outgoing, Transport};
use crate::config::{PasswordSource, Smtp, TlsMode};

/// Replies one delivery may wait for in full before the whole attempt is
/// given up: connect, greeting and EHLO, STARTTLS and EHLO, AUTH, MAIL,
/// RCPT, DATA and the message are nine, but a server that is slow at three
/// of them is as good as down.
const DEADLINE_REPLIES: u32 = 3;

/// How long one whole delivery may take with `timeout` per reply.
pub fn deadline(timeout: Duration) -> Duration {
    timeout.saturating_mul(DEADLINE_REPLIES)
}

/// The wait for the server's goodbye once the outcome is known.
const QUIT_WAIT: Duration = Duration::from_secs(1);

/// Where in the SMTP conversation something went wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    Connect,
    Greeting,
    StartTls,
    Auth,
    MailFrom,
    RcptTo,
    /// The DATA command itself.
    DataCommand,
    /// The message, up to the server's reply after its final dot.
    Data,
}

impl fmt::Display for Phase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Phase::Connect => "connect",
            Phase::Greeting => "the greeting and EHLO",
            Phase::StartTls => "STARTTLS",
            Phase::Auth => "AUTH",
            Phase::MailFrom => "MAIL FROM",
            Phase::RcptTo => "RCPT TO",
            Phase::DataCommand => "the DATA command",
            Phase::Data => "DATA",
        })
    }
}

impl Phase {
    /// "connecting", "waiting for the server's reply to DATA".
    pub fn waiting(self) -> String {
        match self {
            Phase::Connect => "connecting".to_string(),
            Phase::Greeting => "waiting for the server's greeting".to_string(),
            other => format!("waiting for the server's reply to {other}"),
        }
    }
}

pub struct SmtpSender {
    host: String,
    port: u16,
    tls: TlsMode,
    tls_parameters: Option<TlsParameters>,
    credentials: Option<Credentials>,
    timeout: Duration,
    hello: ClientId,
    server: String,
}

impl SmtpSender {
    pub fn new(smtp: &Smtp) -> Result<SmtpSender, NotifyError> {
        let tls_parameters = match smtp.tls {
            TlsMode::None => None,
            TlsMode::StartTls | TlsMode::Tls => Some(
                TlsParameters::new(smtp.host.clone()).map_err(|source| NotifyError::Tls {
                    host: smtp.host.clone(),
                    source,
                })?,
            ),
        };
        let credentials = match &smtp.username {
            Some(user) => {
                let password = match &smtp.password {
                    Some(source) => read_password(source)?,
                    None => String::new(),
                };
                Some(Credentials::new(user.clone(), password))
            }
            None => None,
        };
        Ok(SmtpSender {
            host: smtp.host.clone(),
            port: smtp.port,
            tls: smtp.tls,
            tls_parameters,
            credentials,
            timeout: smtp.timeout,
            hello: ClientId::default(),
            server: format!("{}:{}", smtp.host, smtp.port),
        })
    }

    /// One SMTP session delivering `message` to one recipient.
    fn session(&self, envelope: &Envelope, message: &[u8]) -> Result<(), DeliveryError> {
        let clock = Clock::start(self.timeout);
        let wait = clock.wait(Phase::Connect, &self.server)?;
        let wrapper = match self.tls {
            TlsMode::Tls => self.tls_parameters.as_ref(),
            TlsMode::StartTls | TlsMode::None => None,
        };
        let mut conn = SmtpConnection::connect(
            (self.host.as_str(), self.port),
            Some(wait),
            &self.hello,
            wrapper,
            None,
        )
        .map_err(|e| self.classify(Phase::Greeting, wait, &e))?;
        // Any error below drops the connection without a QUIT: a server
        // that stopped answering would make the goodbye one more wait.
        if let (TlsMode::StartTls, Some(params)) = (self.tls, &self.tls_parameters) {
            if !conn.can_starttls() {
                return Err(DeliveryError::Session {
                    server: self.server.clone(),
                    phase: Phase::StartTls,
                    detail: "the server does not offer STARTTLS, and tls = \"starttls\" never sends in clear; set tls = \"tls\" for port 465, or \"none\" only for a relay on this machine".to_string(),
                });
            }
            let wait = clock.set(&mut conn, Phase::StartTls, &self.server)?;
            conn.starttls(params, &self.hello)
                .map_err(|e| self.classify(Phase::StartTls, wait, &e))?;
        }
        if let Some(credentials) = &self.credentials {
            let wait = clock.set(&mut conn, Phase::Auth, &self.server)?;
            conn.auth(&[Mechanism::Plain, Mechanism::Login], credentials)
                .map_err(|e| self.classify(Phase::Auth, wait, &e))?;
        }

        let mut options = Vec::new();
        let non_ascii = envelope
            .from()
            .into_iter()
            .chain(envelope.to())
            .any(|a: &Address| !AsRef::<str>::as_ref(a).is_ascii());
        if non_ascii {
            if !conn.server_info().supports_feature(Extension::SmtpUtfEight) {
                return Err(self.unsupported(Phase::MailFrom, "SMTPUTF8 (non-ASCII addresses)"));
            }
            options.push(MailParameter::SmtpUtfEight);
        }
        if !message.is_ascii() {
            if !conn.server_info().supports_feature(Extension::EightBitMime) {
                return Err(self.unsupported(Phase::MailFrom, "8BITMIME (8-bit text)"));
            }
            options.push(MailParameter::Body(MailBodyParameter::EightBitMime));
        }
        let wait = clock.set(&mut conn, Phase::MailFrom, &self.server)?;
        conn.command(Mail::new(envelope.from().cloned(), options))
            .map_err(|e| self.classify(Phase::MailFrom, wait, &e))?;
        for to in envelope.to() {
            let wait = clock.set(&mut conn, Phase::RcptTo, &self.server)?;
            conn.command(Rcpt::new(to.clone(), Vec::new()))
                .map_err(|e| self.classify(Phase::RcptTo, wait, &e))?;
        }
        let wait = clock.set(&mut conn, Phase::DataCommand, &self.server)?;
        conn.command(Data)
            .map_err(|e| self.classify(Phase::DataCommand, wait, &e))?;
        let wait = clock.set(&mut conn, Phase::Data, &self.server)?;
        conn.message(message)
            .map_err(|e| self.classify(Phase::Data, wait, &e))?;
        // Delivered: the goodbye is a courtesy, not part of the outcome.
        let _ = conn.set_timeout(Some(QUIT_WAIT));
        let _ = conn.quit();
        Ok(())
    }

    fn unsupported(&self, phase: Phase, what: &str) -> DeliveryError {
        DeliveryError::Session {
            server: self.server.clone(),
            phase,
            detail: format!("the server does not support {what}"),
        }
    }

    /// What a lettre error at `phase` means, in words an operator can act on.
    fn classify(
        &self,
        phase: Phase,
        wait: Duration,
        e: &lettre::transport::smtp::Error,
    ) -> DeliveryError {
        let server = self.server.clone();
        let detail = e.to_string();
        if let Some(code) = e.status() {
            let code = code.to_string();
            if phase == Phase::Auth && e.is_permanent() {
                return DeliveryError::AuthRefused { server, detail };
            }
            return if e.is_transient() {
                DeliveryError::Deferred {
                    server,
                    phase,
                    detail,
                }
            } else {
                DeliveryError::Refused {
                    server,
                    phase,
                    code: code.parse().unwrap_or(500),
                    detail,
                }
            };
        }
        if e.is_tls() {
            return DeliveryError::Tls { server, detail };
        }
        if phase == Phase::Auth && e.is_client() {
            return DeliveryError::NoLogin {
                server,
                detail: if self.tls == TlsMode::None {
                    "it offers no AUTH PLAIN or LOGIN, and most servers offer them only over TLS"
                        .to_string()
                } else {
                    "it offers no AUTH PLAIN or LOGIN".to_string()
                },
            };
        }
        match io_kind(e) {
            Some(io::ErrorKind::TimedOut) if phase == Phase::Greeting => {
                // connect_timeout, inside SmtpConnection::connect.
                return DeliveryError::Timeout {
                    server,
                    phase: Phase::Connect,
                    secs: secs(wait),
                };
            }
            Some(io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) => {
                return DeliveryError::Timeout {
                    server,
                    phase,
                    secs: secs(wait),
                };
            }
            Some(
                io::ErrorKind::ConnectionReset
                | io::ErrorKind::ConnectionAborted
                | io::ErrorKind::BrokenPipe
                | io::ErrorKind::UnexpectedEof,
            ) => return DeliveryError::Closed { server, phase },
            Some(io::ErrorKind::ConnectionRefused) => {
                return DeliveryError::Unreachable { server, detail };
            }
            _ => {}
        }
        // The server closed the connection before a complete reply.
        if e.is_response() && detail.contains("incomplete response") {
            return DeliveryError::Closed { server, phase };
        }
        if phase == Phase::Greeting && !e.is_response() && !e.is_client() {
            return DeliveryError::Unreachable { server, detail };
        }
        DeliveryError::Session {
            server,
            phase,
            detail,
        }
    }
}

/// The io error underneath a lettre error, if any.
fn io_kind(e: &lettre::transport::smtp::Error) -> Option<io::ErrorKind> {
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        if let Some(io) = s.downcast_ref::<io::Error>() {
            return Some(io.kind());
        }
        source = s.source();
    }
    None
}

/// Whole seconds, rounded up: "timeout after 30 s", never "after 0 s".
fn secs(d: Duration) -> u64 {
    d.as_secs() + u64::from(d.subsec_nanos() > 0)
}

/// The two bounds of one delivery: per reply and for the whole of it.
struct Clock {
    started: Instant,
    timeout: Duration,
    deadline: Duration,
}

impl Clock {
    fn start(timeout: Duration) -> Clock {
        Clock {
            started: Instant::now(),
            timeout,
            deadline: deadline(timeout),
        }
    }

    /// The wait allowed for the next reply, or the error when the whole
    /// delivery has used up its deadline.
    fn wait(&self, phase: Phase, server: &str) -> Result<Duration, DeliveryError> {
        let left = self.deadline.saturating_sub(self.started.elapsed());
        if left.is_zero() {
            return Err(DeliveryError::Deadline {
                server: server.to_string(),
                phase,
                secs: secs(self.deadline),
            });
        }
        Ok(self.timeout.min(left))
    }

    /// `wait`, applied to the connection's socket.
    fn set(
        &self,
        conn: &mut SmtpConnection,
        phase: Phase,
        server: &str,
    ) -> Result<Duration, DeliveryError> {
        let wait = self.wait(phase, server)?;
        conn.set_timeout(Some(wait))
            .map_err(|e| DeliveryError::Session {
                server: server.to_string(),
                phase,
                detail: e.to_string(),
            })?;
        Ok(wait)
    }
}

/// The password, without the trailing newline files and `echo` leave.
fn read_password(source: &PasswordSource) -> Result<String, NotifyError> {
    let raw = match source {
        PasswordSource::Env(var) => {
            std::env::var(var).map_err(|_| NotifyError::PasswordEnv { var: var.clone() })?
        }
        PasswordSource::File(path) => {
            std::fs::read_to_string(path).map_err(|source| NotifyError::PasswordFile {
                path: path.clone(),
                source,
            })?
        }
    };
    Ok(raw.trim_end_matches(['\r', '\n']).to_string())
}

impl Transport for SmtpSender {
    fn deliver(&mut self, mail: &Outgoing<'_>) -> Result<(), DeliveryError> {
        let address = |a: &str| {
            a.parse::<Address>().map_err(|e| DeliveryError::Address {
                address: a.to_string(),
                detail: e.to_string(),
            })
        };
        let envelope =
            Envelope::new(Some(address(mail.from)?), vec![address(mail.to)?]).map_err(|e| {
                DeliveryError::Address {
                    address: mail.to.to_string(),
                    detail: e.to_string(),
                }
            })?;
        self.session(&envelope, mail.message)
    }

    fn describe(&self) -> String {
        format!("smtp://{} ({})", self.server, self.tls)
    }

    fn deadline(&self) -> Duration {
        deadline(self.timeout)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_come_from_a_file_or_the_environment() {
        let dir = tempfile::tempdir().expect("dir");
        let file = dir.path().join("smtp");
        std::fs::write(&file, "s3cret\n").expect("write");
        assert_eq!(
            read_password(&PasswordSource::File(file.clone())).expect("read"),
            "s3cret",
            "the newline a credential file ends with is not part of it"
        );
        let missing = read_password(&PasswordSource::File(dir.path().join("nope")))
            .expect_err("missing file");
        assert!(missing.to_string().contains("password_file"), "{missing}");
        let unset = read_password(&PasswordSource::Env(
            "TREATYWATCH_TEST_VARIABLE_NOBODY_SETS".into(),
        ))
        .expect_err("unset variable");
        assert!(
            unset
                .to_string()
                .contains("TREATYWATCH_TEST_VARIABLE_NOBODY_SETS is not set"),
            "{unset}"
        );
    }

    #[test]
    fn waits_are_named_after_the_step() {
        assert_eq!(Phase::Connect.waiting(), "connecting");
        assert_eq!(
            Phase::Data.waiting(),
            "waiting for the server's reply to DATA"
        );
        assert_eq!(secs(Duration::from_millis(1)), 1);
        assert_eq!(secs(Duration::from_secs(30)), 30);
        assert_eq!(deadline(Duration::from_secs(30)), Duration::from_secs(90));
    }
}

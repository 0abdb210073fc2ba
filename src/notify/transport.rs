//! What a digest transport is: something that takes one finished message for
//! one recipient and either delivers it or says why not.
//!
//! `open` picks the configured one: `smtp.rs` (the only code that speaks
//! SMTP), `sendmail.rs` (the local MTA's program) or `file.rs` (an .eml
//! folder, the default). Neither knows about the
//! outbox: whether and when to retry is decided by the caller from
//! `DeliveryError`.

use std::path::PathBuf;
use std::time::Duration;

use super::NotifyError;
use super::file::Folder;
use super::sendmail::Sendmail;
use super::smtp::{Phase, SmtpSender};
use crate::config::{Notify, Transport as TransportConfig};

/// One message for one recipient, exactly as it is to be delivered.
#[derive(Debug, Clone, Copy)]
pub struct Outgoing<'a> {
    /// Envelope sender (bare address).
    pub from: &'a str,
    /// Envelope recipient (bare address).
    pub to: &'a str,
    pub message_id: &'a str,
    /// The whole RFC 5322 message.
    pub message: &'a [u8],
}

/// Why one delivery did not happen, in words that say what the server did
/// (or did not do) at which step. `is_permanent` says whether a retry is
/// likely to help without a change on someone's side; `reason` is the
/// stable label of the metrics.
#[derive(Debug, thiserror::Error)]
pub enum DeliveryError {
    #[error(
        "cannot reach SMTP server {server}: {detail}; check [notify.smtp] host, port and tls, and that the server is up"
    )]
    Unreachable { server: String, detail: String },
    #[error("SMTP server {server}: timeout after {secs} s {}", phase.waiting())]
    Timeout {
        server: String,
        phase: Phase,
        secs: u64,
    },
    #[error(
        "SMTP server {server}: gave up after {secs} s, the longest one delivery may take (3 × [notify.smtp] timeout), at {phase}"
    )]
    Deadline {
        server: String,
        phase: Phase,
        secs: u64,
    },
    #[error("SMTP server {server}: connection closed during {phase}")]
    Closed { server: String, phase: Phase },
    #[error(
        "SMTP server {server}: TLS handshake failed ({detail}); check [notify.smtp] tls and port (\"tls\" is port 465, \"starttls\" 587)"
    )]
    Tls { server: String, detail: String },
    #[error(
        "SMTP server {server}: authentication refused ({detail}); check username and password under [notify.smtp]"
    )]
    AuthRefused { server: String, detail: String },
    #[error(
        "SMTP server {server} offers no way to log in: {detail}; check tls, username and password under [notify.smtp]"
    )]
    NoLogin { server: String, detail: String },
    #[error("SMTP server {server} deferred the message at {phase} ({detail}); it will be retried")]
    Deferred {
        server: String,
        phase: Phase,
        detail: String,
    },
    #[error(
        "SMTP server {server} refused the message at {phase} ({detail}); {}",
        refusal_advice(*phase, *code)
    )]
    Refused {
        server: String,
        phase: Phase,
        /// The SMTP reply code, 500–599.
        code: u16,
        detail: String,
    },
    #[error("SMTP session with {server} failed at {phase}: {detail}")]
    Session {
        server: String,
        phase: Phase,
        detail: String,
    },
    #[error("address {address:?} cannot be used in an SMTP envelope: {detail}")]
    Address { address: String, detail: String },
    #[error("cannot write digest {}: {source}; check that the [notify] folder is writable", path.display())]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot set up the mail transport: {0}")]
    Setup(String),
    #[error(
        "{transport}: no outcome after {secs} s; the attempt was abandoned and will be retried"
    )]
    Abandoned { transport: String, secs: u64 },
    #[error(
        "cannot run sendmail {path}: {detail}; install a mail transfer agent that provides it or set `sendmail = \"PATH\"` under [notify]"
    )]
    SendmailMissing { path: String, detail: String },
    #[error(
        "sendmail {path} failed ({status}{}); it will be retried",
        stderr_note(detail)
    )]
    SendmailFailed {
        path: String,
        status: String,
        detail: String,
    },
    /// sysexits.h EX_DATAERR (the message), EX_NOUSER or EX_NOHOST (the
    /// recipient): the MTA refuses, and retrying as is will not help.
    #[error(
        "sendmail {path} refused the message (exit {code}{}); check the recipient address and the MTA's log",
        stderr_note(detail)
    )]
    SendmailRefused {
        path: String,
        code: i32,
        detail: String,
    },
    #[error("sendmail {path} had not finished after {secs} s and was stopped; it will be retried")]
    SendmailTimeout { path: String, secs: u64 },
    /// A webhook receiver could not be reached (refused connection, DNS,
    /// TLS). `origin` is scheme, host and port only: a webhook URL's path
    /// may be its secret (Slack's are).
    #[error(
        "webhook {webhook}: cannot reach {origin}: {detail}; check its url under [[notify.webhook]] and that the receiver is up; it will be retried"
    )]
    WebhookUnreachable {
        webhook: String,
        origin: String,
        detail: String,
    },
    #[error(
        "webhook {webhook}: no complete reply from {origin} within {secs} s (its timeout); it will be retried"
    )]
    WebhookTimeout {
        webhook: String,
        origin: String,
        secs: u64,
    },
    /// 5xx, 408 or 429: the receiver asks to be tried again (429 and 503
    /// may say when, in Retry-After).
    #[error("webhook {webhook}: {origin} answered {status} ({reply}); it will be retried")]
    WebhookDeferred {
        webhook: String,
        origin: String,
        status: u16,
        reply: String,
        retry_after: Option<Duration>,
    },
    /// Any other answer that is not 2xx: retrying the same request will
    /// not help.
    #[error(
        "webhook {webhook}: {origin} refused the change with {status} ({reply}); not retried: {}",
        webhook_advice(*status)
    )]
    WebhookRefused {
        webhook: String,
        origin: String,
        status: u16,
        reply: String,
    },
    #[error("webhook {webhook}: the request to {origin} failed: {detail}; it will be retried")]
    WebhookFailed {
        webhook: String,
        origin: String,
        detail: String,
    },
    #[error(
        "webhook {webhook}: cannot read token_file {}: {detail}; put the token there (with systemd, LoadCredential= puts it in $CREDENTIALS_DIRECTORY); it will be retried",
        path.display()
    )]
    WebhookToken {
        webhook: String,
        path: PathBuf,
        detail: String,
    },
}

/// ": what the program said" when it said anything.
fn stderr_note(detail: &str) -> String {
    if detail.is_empty() {
        String::new()
    } else {
        format!(": {detail}")
    }
}

fn webhook_advice(status: u16) -> &'static str {
    match status {
        300..=399 => "the url redirects; write the address it moved to as the url",
        401 | 403 => {
            "the receiver refuses the credentials; check token_file (and, for Slack, the url)"
        }
        404 | 410 => "the receiver does not know this url; check it",
        413 => "the receiver refuses a request this large",
        _ => "the receiver refuses this request; its reply says why",
    }
}

fn refusal_advice(phase: Phase, code: u16) -> &'static str {
    match (phase, code) {
        (Phase::Data, 552) => "the message is larger than the server accepts",
        (Phase::Data | Phase::DataCommand, _) => "the server refuses this message",
        (Phase::RcptTo, _) => "check the recipient address",
        _ => "check the recipient and the server's policy",
    }
}

impl DeliveryError {
    /// A 5xx refusal or an unusable address: retrying as is will not help.
    pub fn is_permanent(&self) -> bool {
        matches!(
            self,
            DeliveryError::Refused { .. }
                | DeliveryError::Address { .. }
                | DeliveryError::SendmailRefused { .. }
                | DeliveryError::WebhookRefused { .. }
        )
    }

    /// How long the receiver asked to be left alone (an HTTP Retry-After),
    /// which the outbox waits instead of its own backoff.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            DeliveryError::WebhookDeferred { retry_after, .. } => *retry_after,
            _ => None,
        }
    }

    /// The server refused this message itself (a 5xx after DATA: too
    /// large, or its content), not the recipient: another message to the
    /// same address may well get through. A webhook's refusal (a 4xx) is
    /// about its one request too.
    pub fn refuses_message(&self) -> bool {
        matches!(
            self,
            DeliveryError::Refused {
                phase: Phase::Data | Phase::DataCommand,
                ..
            } | DeliveryError::SendmailRefused {
                code: super::sendmail::EX_DATAERR,
                ..
            } | DeliveryError::WebhookRefused { .. }
        )
    }

    /// A short stable label: `treatywatch_delivery_failures_total{reason}`.
    pub fn reason(&self) -> &'static str {
        match self {
            DeliveryError::Unreachable { .. } => "unreachable",
            DeliveryError::Timeout { .. }
            | DeliveryError::Deadline { .. }
            | DeliveryError::Abandoned { .. } => "timeout",
            DeliveryError::Closed { .. } => "closed",
            DeliveryError::Tls { .. } => "tls",
            DeliveryError::AuthRefused { .. } | DeliveryError::NoLogin { .. } => "auth",
            DeliveryError::Deferred { .. } => "deferred",
            DeliveryError::Refused { .. } => "refused",
            DeliveryError::Session { .. } => "session",
            DeliveryError::Address { .. } => "address",
            DeliveryError::Write { .. } => "write",
            DeliveryError::Setup(_) | DeliveryError::SendmailMissing { .. } => "setup",
            DeliveryError::SendmailFailed { .. } => "deferred",
            DeliveryError::SendmailRefused { .. } => "refused",
            DeliveryError::SendmailTimeout { .. } => "timeout",
            DeliveryError::WebhookToken { .. } => "setup",
            DeliveryError::WebhookUnreachable { .. } => "unreachable",
            DeliveryError::WebhookTimeout { .. } => "timeout",
            DeliveryError::WebhookDeferred { .. } => "deferred",
            DeliveryError::WebhookRefused { .. } => "refused",
            DeliveryError::WebhookFailed { .. } => "session",
        }
    }
}

/// Every `reason` label, for a metrics page that lists them all from the start.
pub const REASONS: &[&str] = &[
    "unreachable",
    "timeout",
    "closed",
    "tls",
    "auth",
    "deferred",
    "refused",
    "session",
    "address",
    "write",
    "setup",
];

/// Delivers finished messages. `Send`: the daemon delivers on a thread of
/// its own, never on the one that writes the database.
pub trait Transport: Send {
    fn deliver(&mut self, mail: &Outgoing<'_>) -> Result<(), DeliveryError>;
    /// For logs and reports: "smtp://host:port (starttls)", "folder /x".
    fn describe(&self) -> String;
    /// The longest one `deliver` takes before it returns an error by itself.
    fn deadline(&self) -> Duration {
        Duration::from_secs(30)
    }
}

/// The transport `[notify]` configures. Fails only on setup problems (a
/// missing password), never on an unreachable server.
pub fn open(notify: &Notify) -> Result<Box<dyn Transport>, NotifyError> {
    Ok(match &notify.transport {
        TransportConfig::File { folder } => Box::new(Folder::new(folder)),
        TransportConfig::Smtp(smtp) => Box::new(SmtpSender::new(smtp)?),
        TransportConfig::Sendmail(sendmail) => Box::new(Sendmail::new(sendmail)),
    })
}

//! What a digest transport is: something that takes one finished message for
//! one recipient and either delivers it or says why not.
//!
//! `open` picks the configured one: `smtp.rs` (the only code that speaks
//! SMTP) or `file.rs` (an .eml folder, the default). Neither knows about the
//! outbox: whether and when to retry is decided by the caller from
//! `DeliveryError`.

use std::path::PathBuf;

use super::NotifyError;
use super::file::Folder;
use super::smtp::SmtpSender;
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

/// Why one delivery did not happen. Every kind leaves the digest pending;
/// `is_permanent` only says whether a retry is likely to help without a
/// change on someone's side.
#[derive(Debug, thiserror::Error)]
pub enum DeliveryError {
    #[error(
        "cannot reach SMTP server {server}: {detail}; check [notify.smtp] host, port and tls, and that the server is up"
    )]
    Unreachable { server: String, detail: String },
    #[error("SMTP server {server} deferred the message ({detail}); it will be retried")]
    Deferred { server: String, detail: String },
    #[error(
        "SMTP server {server} refused the message ({detail}); check the recipient and the server's policy"
    )]
    Refused { server: String, detail: String },
    #[error(
        "SMTP session with {server} failed ({detail}); check tls, username and password under [notify.smtp]"
    )]
    Session { server: String, detail: String },
    #[error("address {address:?} cannot be used in an SMTP envelope: {detail}")]
    Address { address: String, detail: String },
    #[error("cannot write digest {}: {source}; check that the [notify] folder is writable", path.display())]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
}

impl DeliveryError {
    /// A 5xx refusal or an unusable address: retrying as is will not help.
    pub fn is_permanent(&self) -> bool {
        matches!(
            self,
            DeliveryError::Refused { .. } | DeliveryError::Address { .. }
        )
    }
}

/// Delivers finished messages.
pub trait Transport {
    fn deliver(&mut self, mail: &Outgoing<'_>) -> Result<(), DeliveryError>;
    /// For logs and reports: "smtp://host:port (starttls)", "folder /x".
    fn describe(&self) -> String;
}

/// The transport `[notify]` configures. Fails only on setup problems (a
/// missing password), never on an unreachable server.
pub fn open(notify: &Notify) -> Result<Box<dyn Transport>, NotifyError> {
    Ok(match &notify.transport {
        TransportConfig::File { folder } => Box::new(Folder::new(folder)),
        TransportConfig::Smtp(smtp) => Box::new(SmtpSender::new(smtp)?),
    })
}

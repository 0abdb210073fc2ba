//! Notify: tell the people who track a state, by e-mail or a webhook, the
//! moment its status moves — one digest per burst of news (one request per
//! change for a webhook), exactly once.
//!
//! Owns routing changes to recipients (`route.rs`), composing a digest
//! (`compose/`, pure), turning it into a message with a deterministic
//! Message-ID (`message.rs`), the outbox with its cursor, debounce and
//! retries (`outbox.rs`), and the transports (`transport.rs`: `smtp.rs`, the
//! only code that speaks SMTP, `sendmail.rs`, the local MTA's program, and
//! `file.rs`, .eml files in a folder), and
//! `webhook/`, the HTTP transport of `[[notify.webhook]]` recipients. It
//! reads status changes from the log and records each delivery there as a
//! `digest_sent` event; it never changes a status.
//!
//! Entry points: `run_pending` (the daemon's timer with `Flush::Debounced`,
//! `poll` and `digest --send` with `Flush::Now`) and `preview`.

mod compose;
mod file;
mod message;
mod outbox;
mod route;
mod sendmail;
mod smtp;
mod transport;
pub mod webhook;

use std::path::PathBuf;

pub use compose::{
    Digest, Form, MAX_EVIDENCE_CHARS, MAX_LINK_CHARS, MAX_TITLE_CHARS, capped, clean, compose,
    compose_in, escape,
};
pub use file::file_name;
pub use message::{message_id, thread_id};
pub use outbox::{
    CRASH_AFTER_ACCEPT_ENV, Delivery, FailedDigest, Flush, NotifyReport, Plan, Preview,
    PreviewState, RETRY_FIRST, RETRY_MAX, SentDigest, accepted, backoff, deliver, deliver_webhook,
    plan, preview, record, run_pending,
};
pub use route::{Recipient, Routes, WEBHOOK_KEY_PREFIX, bare_address, webhook_key};
pub use smtp::{Phase, deadline as smtp_deadline};
pub use transport::{DeliveryError, Outgoing, REASONS, Transport, open as open_transport};

use crate::store::StoreError;

/// Why a notify pass could not run. A digest that merely was not delivered
/// is not an error: it is reported in `NotifyReport::failed` and retried.
#[derive(Debug, thiserror::Error)]
pub enum NotifyError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(
        "the SMTP password variable {var} is not set; export it to the daemon (systemd: Environment= or an EnvironmentFile) or use password_file under [notify.smtp]"
    )]
    PasswordEnv { var: String },
    #[error("cannot read the SMTP password file {}: {source}; fix password_file under [notify.smtp] (with systemd, LoadCredential= puts it in $CREDENTIALS_DIRECTORY)", path.display())]
    PasswordFile {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot set up TLS for SMTP server {host}: {source}")]
    Tls {
        host: String,
        source: lettre::transport::smtp::Error,
    },
    #[error(
        "[notify] {key} address {address:?} is not usable: {source}; write \"user@example.org\" or \"Name <user@example.org>\""
    )]
    Address {
        key: &'static str,
        address: String,
        source: lettre::address::AddressError,
    },
    #[error("cannot build the digest message: {0}")]
    Build(lettre::error::Error),
}

//! Mailbox sources: the messages in a Maildir folder or an IMAP folder
//! (`imap.rs`), as plain data.
//!
//! `read` is the Maildir I/O (listing `new/` and `cur/`, reading each file,
//! never changing the folder: a mail client may share it); `imap::fetch`
//! reads a server's folder the same way. Both hand back `RawMessage`s for
//! the one ingest path; `Message::parse` turns
//! a message's bytes into the parts a depositary reader uses (MIME decoded
//! with mail-parser, an HTML-only body reduced to text). Nothing here knows
//! what a notification says (`depositary`) or writes the store (`ingest`).

pub mod imap;
pub mod ingest;

use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};

/// A message larger than this is not read: a notification is a page or
/// two, and a huge file in the folder must not cost a poll its memory.
pub const MAX_MESSAGE_BYTES: u64 = 4 << 20;

/// Reading the folder failed as a whole (its messages are unaffected).
#[derive(Debug, thiserror::Error)]
pub enum MailboxError {
    #[error("{} is not a Maildir: {what}; point `maildir` at a folder with cur/, new/ and tmp/ (where fetchmail, getmail or the MTA delivers)", path.display())]
    NotMaildir { path: PathBuf, what: String },
    #[error("cannot list {}: {source}; check its permissions for the treatywatch user", path.display())]
    List {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "cannot connect to the IMAP server {server}: {detail}; check `host` and `port` under [mailbox.imap] (993 is IMAP over TLS)"
    )]
    Connect { server: String, detail: String },
    #[error(
        "TLS with the IMAP server {server} failed: {detail}; check that `port` is the server's TLS port (993), or trust a private CA with `ca_file`"
    )]
    Tls { server: String, detail: String },
    #[error("the IMAP server {server} did not finish the {what} within {}; check that it is reachable, or raise `timeout` under [mailbox.imap]", humantime::format_duration(*after))]
    Timeout {
        server: String,
        what: &'static str,
        after: std::time::Duration,
    },
    #[error(
        "the IMAP server {server} refused the login of {user:?} ({detail}); check `user` and the password in {}",
        describe_password(password)
    )]
    Login {
        server: String,
        user: String,
        detail: String,
        password: crate::config::PasswordSource,
    },
    #[error(
        "the IMAP server {server} has no folder {folder:?} that can be read ({detail}); check `folder` under [mailbox.imap] (INBOX when left out)"
    )]
    Folder {
        server: String,
        folder: String,
        detail: String,
    },
    #[error("the IMAP server {server} answered unexpectedly: {detail}")]
    Protocol { server: String, detail: String },
    #[error("cannot use the IMAP password: {detail}")]
    Password { detail: String },
    #[error("ca_file {}: {detail}; point it at PEM certificates (-----BEGIN CERTIFICATE-----)", path.display())]
    CaFile { path: PathBuf, detail: String },
}

fn describe_password(source: &crate::config::PasswordSource) -> String {
    match source {
        crate::config::PasswordSource::Env(var) => format!("${var} (password_env)"),
        crate::config::PasswordSource::File(p) => format!("{} (password_file)", p.display()),
    }
}

impl MailboxError {
    /// treatywatch's own words for the failure, safe for an alert subject.
    pub fn summary(&self) -> &'static str {
        match self {
            MailboxError::NotMaildir { .. } => "not a Maildir",
            MailboxError::List { .. } => "cannot list the Maildir",
            MailboxError::Connect { .. } => "cannot connect to the IMAP server",
            MailboxError::Tls { .. } => "TLS with the IMAP server failed",
            MailboxError::Timeout { .. } => "the IMAP server did not answer in time",
            MailboxError::Login { .. } => "the IMAP server refused the login",
            MailboxError::Folder { .. } => "no such IMAP folder",
            MailboxError::Protocol { .. } => "unexpected IMAP answer",
            MailboxError::Password { .. } => "cannot read the IMAP password",
            MailboxError::CaFile { .. } => "cannot read the IMAP ca_file",
        }
    }
}

/// One read of a mailbox: its messages, and where an IMAP read stopped
/// (kept in the store so the next read asks only for newer messages).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Messages {
    pub messages: Vec<RawMessage>,
    pub cursor: Option<String>,
}

/// One file of the folder, unparsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawMessage {
    /// Its file name, for logs.
    pub name: String,
    /// The bytes; `None` when the file was too large to read.
    pub bytes: Option<Vec<u8>>,
    pub size: u64,
}

/// Lists and reads every message in `new/` and `cur/`, oldest name first.
/// A file that vanishes between listing and reading (a mail client moved
/// it from new/ to cur/) is skipped: it is read under its new name next
/// time. Any other unreadable file is logged and skipped.
pub fn read(path: &Path) -> Result<Vec<RawMessage>, MailboxError> {
    for sub in ["cur", "new", "tmp"] {
        if !path.join(sub).is_dir() {
            return Err(MailboxError::NotMaildir {
                path: path.to_path_buf(),
                what: format!("it has no {sub}/ folder"),
            });
        }
    }
    let mut files = Vec::new();
    for sub in ["new", "cur"] {
        let dir = path.join(sub);
        let entries = std::fs::read_dir(&dir).map_err(|source| MailboxError::List {
            path: dir.clone(),
            source,
        })?;
        for entry in entries {
            let entry = entry.map_err(|source| MailboxError::List {
                path: dir.clone(),
                source,
            })?;
            let name = entry.file_name().to_string_lossy().into_owned();
            // Maildir's convention: dot files are not messages.
            if !name.starts_with('.') {
                files.push((name, entry.path()));
            }
        }
    }
    // Maildir names start with the delivery time: name order is roughly
    // delivery order, and stable from one read to the next.
    files.sort();
    let mut messages = Vec::with_capacity(files.len());
    for (name, file) in files {
        let size = match std::fs::metadata(&file) {
            Ok(m) if m.is_file() => m.len(),
            Ok(_) => continue,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => {
                tracing::warn!(file = %file.display(), "cannot read a message: {e}");
                continue;
            }
        };
        if size > MAX_MESSAGE_BYTES {
            messages.push(RawMessage {
                name,
                bytes: None,
                size,
            });
            continue;
        }
        match std::fs::read(&file) {
            Ok(bytes) => messages.push(RawMessage {
                name,
                bytes: Some(bytes),
                size,
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => tracing::warn!(file = %file.display(), "cannot read a message: {e}"),
        }
    }
    Ok(messages)
}

/// A message's parts, as a depositary reader needs them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// The Message-ID, or "sha256:<hash>" when there is none.
    pub key: String,
    pub content_hash: String,
    pub subject: String,
    pub date: Option<DateTime<Utc>>,
    /// The first text part (or the HTML part reduced to text).
    pub text: String,
}

impl Message {
    /// Parses `bytes`; whatever they hold, this returns a message (an
    /// unparseable one has an empty text, which no reader recognises).
    pub fn parse(bytes: &[u8]) -> Message {
        let content_hash = hex(&Sha256::digest(bytes));
        let parsed = mail_parser::MessageParser::default().parse(bytes);
        let (id, subject, date, text) = match &parsed {
            Some(m) => (
                m.message_id().map(str::to_string),
                m.subject().unwrap_or_default().to_string(),
                m.date()
                    .and_then(|d| DateTime::from_timestamp(d.to_timestamp(), 0)),
                m.body_text(0).map(|t| t.into_owned()).unwrap_or_default(),
            ),
            None => (None, String::new(), None, String::new()),
        };
        Message {
            key: id
                .filter(|i| !i.trim().is_empty())
                .unwrap_or_else(|| format!("sha256:{content_hash}")),
            content_hash,
            subject,
            date,
            text,
        }
    }
}

/// Hashes a message too large to read: by its name and size.
pub fn oversized_hash(name: &str, size: u64) -> String {
    hex(&Sha256::digest(format!("{name}\0{size}").as_bytes()))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

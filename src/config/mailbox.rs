//! `[[mailbox]]`: where a depositary's notifications are delivered, and how
//! they are read. Checked here like the rest of feeds.toml.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use toml::Spanned;

use super::{Feed, MIN_FEED_INTERVAL, PasswordSource, Validator, raw};
use crate::depositary::Reader;

/// How often a mailbox is read when `interval` is not set: reading a local
/// folder costs nothing, and a notice is news the day it comes.
pub const DEFAULT_MAILBOX_INTERVAL: Duration = Duration::from_secs(5 * 60);
/// A depositary writes when states act, which can be months apart for one
/// treaty: a mailbox is stale only after this long without a message.
pub const DEFAULT_MAILBOX_STALE_AFTER: Duration = Duration::from_secs(60 * 24 * 60 * 60);
/// How long news of a stage may wait for the depositary's notice before
/// `status --unconfirmed` lists it: the Treaty Section usually circulates a
/// notice within days of the deposit.
pub const DEFAULT_CONFIRM_WITHIN: Duration = Duration::from_secs(30 * 24 * 60 * 60);
/// IMAP over TLS from the first byte (RFC 8314 §3.3 prefers it to STARTTLS).
pub const DEFAULT_IMAP_PORT: u16 = 993;
/// How long an IMAP server may take to accept the connection and to answer
/// each command; a read never hangs a poll longer than a few of these.
pub const DEFAULT_IMAP_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Debug, Clone)]
pub struct Mailbox {
    /// Stable identifier, the `source` of its detections; `[a-z0-9_-]+`,
    /// distinct from every feed id (they share the health table).
    pub id: String,
    pub name: String,
    pub source: MailboxSource,
    /// Where the source (`maildir = …`) is written, for `check`'s report
    /// when the folder cannot be read (`preflight`).
    pub source_at: Option<super::diagnostic::Location>,
    /// Whose notifications these are, and so how they are parsed.
    pub depositary: Reader,
    pub interval: Duration,
    pub enabled: bool,
    pub stale_after: Duration,
    /// News of a stage older than this with no notice is "unconfirmed".
    pub confirm_within: Duration,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MailboxSource {
    /// A Maildir folder (with `cur/`, `new/` and `tmp/`), read, never changed.
    Maildir(PathBuf),
    /// A folder on an IMAP server, examined read-only (no flag is set).
    Imap(Imap),
}

/// `[mailbox.imap]`, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Imap {
    pub host: String,
    pub port: u16,
    pub user: String,
    pub password: PasswordSource,
    pub folder: String,
    /// `false` only for a loopback host (a local test server, or a local
    /// proxy that does the TLS): a password never crosses a network in clear.
    pub tls: bool,
    /// PEM certificates trusted besides the system's (a private CA).
    pub ca_file: Option<PathBuf>,
    /// For the connection, the TLS handshake and each command's answer.
    pub timeout: Duration,
}

impl MailboxSource {
    /// What the health table records as this source's "url": a changed
    /// folder starts its health afresh, as a changed feed url does.
    pub fn locator(&self) -> String {
        match self {
            MailboxSource::Maildir(p) => format!("maildir:{}", p.display()),
            MailboxSource::Imap(i) => format!(
                "{}://{}@{}:{}/{}",
                if i.tls { "imaps" } else { "imap" },
                i.user,
                i.host,
                i.port,
                i.folder
            ),
        }
    }
}

/// Whether `host` names this machine: "localhost" or a loopback address.
fn is_loopback(host: &str) -> bool {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|a| a.is_loopback())
}

impl Validator<'_> {
    pub(super) fn mailboxes(&mut self, raw: Vec<raw::Mailbox>, feeds: &[Feed]) -> Vec<Mailbox> {
        let mut seen: HashSet<String> = feeds.iter().map(|f| f.id.clone()).collect();
        let mut out = Vec::with_capacity(raw.len());
        for m in raw {
            let id = m.id.get_ref().clone();
            let good_id = !id.is_empty()
                && id
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_');
            if !good_id {
                self.err(
                    m.id.span(),
                    format!("mailbox id {id:?} may only use a-z, 0-9, '-' and '_' (it is stored in the event log); rename it"),
                );
            } else if !seen.insert(id.clone()) {
                self.err(
                    m.id.span(),
                    format!("mailbox id {id:?} is already used by a feed or another mailbox; give each its own id"),
                );
            }
            let source_at = m
                .maildir
                .as_ref()
                .map(|p| self.src.location(p.span()))
                .or_else(|| m.imap.as_ref().map(|i| self.src.location(i.span())));
            let source = match (&m.maildir, m.imap) {
                (Some(p), None) => Some(MailboxSource::Maildir(self.path(p))),
                (None, Some(imap)) => self.imap(&id, imap).map(MailboxSource::Imap),
                (Some(p), Some(_)) => {
                    self.err(
                        p.span(),
                        format!("mailbox {id} has both `maildir` and an [mailbox.imap] table; keep one (give the other its own [[mailbox]] with another id)"),
                    );
                    None
                }
                (None, None) => {
                    self.err(
                        m.id.span(),
                        format!("mailbox {id} says nowhere to read from; add `maildir = \"PATH\"` (a folder with cur/, new/ and tmp/) or an [mailbox.imap] table with host, user and password_file"),
                    );
                    None
                }
            };
            let depositary = match &m.depositary {
                None => Some(Reader::Un),
                Some(d) => {
                    let reader = Reader::from_name(d.get_ref());
                    if reader.is_none() {
                        self.err(
                            d.span(),
                            format!(
                                "mailbox {id}: unknown depositary {:?}; treatywatch reads {}",
                                d.get_ref(),
                                Reader::NAMES.join(", ")
                            ),
                        );
                    }
                    reader
                }
            };
            let interval = match &m.interval {
                None => Some(DEFAULT_MAILBOX_INTERVAL),
                Some(s) => match self.duration(s, "interval") {
                    Some(d) if d < MIN_FEED_INTERVAL => {
                        self.err(s.span(), format!("mailbox {id}: interval {:?} is shorter than the minimum of 1m; read it less often", s.get_ref()));
                        None
                    }
                    other => other,
                },
            };
            let stale_after = m
                .stale_after
                .as_ref()
                .map_or(Some(DEFAULT_MAILBOX_STALE_AFTER), |s| {
                    self.positive_duration(s, "stale_after")
                });
            let confirm_within = m
                .confirm_within
                .as_ref()
                .map_or(Some(DEFAULT_CONFIRM_WITHIN), |s| {
                    self.positive_duration(s, "confirm_within")
                });
            if let (
                Some(source),
                Some(depositary),
                Some(interval),
                Some(stale_after),
                Some(confirm_within),
            ) = (source, depositary, interval, stale_after, confirm_within)
            {
                out.push(Mailbox {
                    name: m.name.unwrap_or_else(|| id.clone()),
                    id,
                    source,
                    source_at,
                    depositary,
                    interval,
                    enabled: m.enabled.unwrap_or(true),
                    stale_after,
                    confirm_within,
                });
            }
        }
        out
    }
}

impl Validator<'_> {
    /// `[mailbox.imap]`: every problem reported, `None` if there was one.
    fn imap(&mut self, id: &str, raw: Spanned<raw::Imap>) -> Option<Imap> {
        let span = raw.span();
        let raw = raw.into_inner();
        let before = self.problems.len();
        if let Some(p) = &raw.password {
            self.err(
                p.span(),
                format!("mailbox {id}: inline IMAP passwords are refused: a config file is not a secret store; use `password_file = \"imap-password\"` (with systemd, LoadCredential=imap-password:/etc/treatywatch/imap-password) or `password_env = \"VAR\"`"),
            );
        }
        let host = raw.host.get_ref().trim().to_string();
        if host.is_empty() || host.contains(['/', ' ', '@']) {
            self.err(
                raw.host.span(),
                format!("mailbox {id}: IMAP host {:?} is not a host name; write the server's name, such as \"imap.example.org\"", raw.host.get_ref()),
            );
        }
        let port = match &raw.port {
            None => DEFAULT_IMAP_PORT,
            Some(p) => match u16::try_from(*p.get_ref()) {
                Ok(port) if port != 0 => port,
                _ => {
                    self.err(
                        p.span(),
                        format!("mailbox {id}: IMAP port {} is out of range; use 1–65535 (993 for IMAP over TLS)", p.get_ref()),
                    );
                    DEFAULT_IMAP_PORT
                }
            },
        };
        if raw.user.get_ref().trim().is_empty() {
            self.err(
                raw.user.span(),
                format!("mailbox {id}: IMAP user is empty; write the account's login name"),
            );
        }
        let password = match (&raw.password_env, &raw.password_file) {
            (Some(e), Some(_)) => {
                self.err(
                    e.span(),
                    format!("mailbox {id}: set either password_env or password_file, not both"),
                );
                None
            }
            (Some(e), None) => Some(PasswordSource::Env(e.get_ref().clone())),
            (None, Some(f)) => Some(PasswordSource::File(
                self.dirs.credential_path(self.base, Path::new(f.get_ref())),
            )),
            (None, None) => {
                if raw.password.is_none() {
                    self.err(
                        span.clone(),
                        format!("mailbox {id}: [mailbox.imap] has no password; add `password_file = \"imap-password\"` (a file holding only the password) or `password_env = \"VAR\"`"),
                    );
                }
                None
            }
        };
        let folder = match &raw.folder {
            None => "INBOX".to_string(),
            Some(f) if f.get_ref().trim().is_empty() => {
                self.err(
                    f.span(),
                    format!("mailbox {id}: IMAP folder is empty; leave `folder` out for INBOX, or name the folder the notifications are filed in"),
                );
                String::new()
            }
            Some(f) => f.get_ref().clone(),
        };
        let tls = match &raw.tls {
            Some(t) if !*t.get_ref() && !is_loopback(&host) => {
                self.err(
                    t.span(),
                    format!("mailbox {id}: `tls = false` is only allowed for a server on this machine (localhost, 127.0.0.1, ::1), and {host:?} is not one: the password would cross the network in clear; remove `tls = false` (port 993 is IMAP over TLS)"),
                );
                true
            }
            Some(t) => *t.get_ref(),
            None => true,
        };
        let ca_file = raw.ca_file.as_ref().map(|f| self.path(f));
        let timeout = raw
            .timeout
            .as_ref()
            .map_or(Some(DEFAULT_IMAP_TIMEOUT), |t| {
                self.positive_duration(t, "[mailbox.imap] timeout")
            });
        if self.problems.len() > before {
            return None;
        }
        Some(Imap {
            host,
            port,
            user: raw.user.into_inner(),
            password: password?,
            folder,
            tls,
            ca_file,
            timeout: timeout?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::is_loopback;

    #[test]
    fn only_this_machine_is_loopback() {
        for (host, want) in [
            ("localhost", true),
            ("LOCALHOST", true),
            ("127.0.0.1", true),
            ("127.8.9.10", true),
            ("::1", true),
            ("[::1]", true),
            ("imap.example.org", false),
            ("10.0.0.1", false),
            ("localhost.example.org", false),
        ] {
            assert_eq!(is_loopback(host), want, "{host}");
        }
    }
}

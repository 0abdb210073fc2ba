//! `[[mailbox]]`: where a depositary's notifications are delivered, and how
//! they are read. Checked here like the rest of feeds.toml.

use std::collections::HashSet;
use std::path::PathBuf;
use std::time::Duration;

use super::{Feed, MIN_FEED_INTERVAL, Validator, raw};
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
}

impl MailboxSource {
    /// What the health table records as this source's "url": a changed
    /// folder starts its health afresh, as a changed feed url does.
    pub fn locator(&self) -> String {
        match self {
            MailboxSource::Maildir(p) => format!("maildir:{}", p.display()),
        }
    }
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
            if let Some(imap) = &m.imap {
                self.err(
                    imap.span(),
                    format!("mailbox {id}: IMAP is not supported yet; have fetchmail or getmail deliver the folder to a Maildir and set `maildir = \"PATH\"` (README, \"Depositary notifications\")"),
                );
            }
            let source_at = m.maildir.as_ref().map(|p| self.src.location(p.span()));
            let source = match &m.maildir {
                Some(p) => Some(MailboxSource::Maildir(self.path(p))),
                None => {
                    if m.imap.is_none() {
                        self.err(
                            m.id.span(),
                            format!("mailbox {id} says nowhere to read from; add `maildir = \"PATH\"` (a folder with cur/, new/ and tmp/)"),
                        );
                    }
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

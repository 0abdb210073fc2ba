//! Atom feeds (RFC 4287) of status changes: `/changes.atom`, and per treaty
//! and per state. One entry per status change in the news, with the
//! evidence and a link to the key's history.
//!
//! Ids are stable: an entry's id is a name-based UUID of the change (its
//! key, sequence number and date), so a reader never sees an entry twice
//! however often it polls, the server moves or the base URL changes. A
//! correction (a status change caused by a retraction) updates the entry
//! of the change it corrects: same id, a later `updated`, the correction
//! in its content. History (baseline imports, old items, reclassify) is
//! not news and is left out, as it is from mail.

use std::fmt::Write as _;

use chrono::{DateTime, Utc};

use super::html::{EVIDENCE_CHARS, TITLE_CHARS, esc, esc_capped};
use super::{Cx, Reply, effective_sentence};
use crate::domain::{EventBody, StatusChange, StoredEvent};
use crate::store::{ChangeFilter, StoreError};
use crate::text::web_link;

/// Entries in a feed.
pub const ENTRIES: usize = 50;
/// Changes read to build them (corrections fold into earlier entries).
const SCAN: usize = 200;

/// Which changes a feed carries.
pub(super) enum Scope<'a> {
    All,
    Treaty(&'a str),
    State(&'a str),
}

/// A name-based UUID (RFC 9562 version 8: SHA-256 of the name, the
/// version and variant bits set) as a URN.
fn uuid_urn(name: &str) -> String {
    use sha2::{Digest, Sha256};
    let d = Sha256::digest(name.as_bytes());
    let mut b = [0u8; 16];
    b.copy_from_slice(&d[..16]);
    b[6] = (b[6] & 0x0f) | 0x80;
    b[8] = (b[8] & 0x3f) | 0x80;
    let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "urn:uuid:{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

/// The Atom id of the entry for the status change `seq`.
pub fn entry_id(change: &StoredEvent) -> String {
    let (state, treaty) = change.body.key().unwrap_or(("", ""));
    uuid_urn(&format!(
        "treatywatch|status_changed|{state}|{treaty}|{}|{}",
        change.seq,
        change.occurred_at.to_rfc3339()
    ))
}

/// RFC 3339 as Atom wants it, in UTC.
fn atom_time(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

struct Entry<'a> {
    change: &'a StoredEvent,
    body: &'a StatusChange,
    /// Corrections of this change: (the change that corrected it, the
    /// retraction's note).
    corrections: Vec<(&'a StoredEvent, &'a StatusChange, String)>,
}

impl Entry<'_> {
    fn updated(&self) -> DateTime<Utc> {
        self.corrections
            .iter()
            .map(|(e, _, _)| e.recorded_at)
            .chain([self.change.recorded_at])
            .max()
            .unwrap_or(self.change.recorded_at)
    }
}

/// The feed for `scope`.
pub(super) fn feed(cx: &Cx<'_>, scope: Scope<'_>) -> Result<Reply, StoreError> {
    let config = cx.config;
    let (path, title, filter) = match scope {
        Scope::All => (
            "changes.atom".to_string(),
            "treatywatch: treaty status changes".to_string(),
            ChangeFilter::default(),
        ),
        Scope::Treaty(id) => {
            let t = match cx.treaty(id) {
                Ok(t) => t,
                Err(reply) => return Ok(reply),
            };
            (
                format!("treaty/{id}.atom"),
                format!("treatywatch: {}", t.name),
                ChangeFilter {
                    treaty: Some(id),
                    ..Default::default()
                },
            )
        }
        Scope::State(code) => {
            if let Err(reply) = cx.state(code) {
                return Ok(reply);
            }
            (
                format!("state/{code}.atom"),
                format!("treatywatch: {}", config.gazetteer.name_of(code)),
                ChangeFilter {
                    state: Some(code),
                    ..Default::default()
                },
            )
        }
    };
    let filter = ChangeFilter {
        news_only: true,
        ..filter
    };
    let mut changes = cx.store.status_changes(&filter, SCAN)?;
    changes.reverse();
    // The retraction behind each change it caused, looked up by seq.
    let mut causes = Vec::with_capacity(changes.len());
    for e in &changes {
        let cause = match &e.body {
            EventBody::StatusChanged(c) => cx.store.event(c.cause_seq)?,
            _ => None,
        };
        causes.push(cause);
    }
    let mut entries: Vec<Entry<'_>> = Vec::new();
    for (e, cause) in changes.iter().zip(&causes) {
        let EventBody::StatusChanged(c) = &e.body else {
            continue;
        };
        if let Some(EventBody::Retracted(r)) = cause.as_ref().map(|c| &c.body)
            && let Some(entry) = entries
                .iter_mut()
                .rev()
                .find(|en| en.body.state == c.state && en.body.treaty == c.treaty)
        {
            entry.corrections.push((e, c, r.note.clone()));
            continue;
        }
        entries.push(Entry {
            change: e,
            body: c,
            corrections: Vec::new(),
        });
    }
    entries.sort_by_key(|en| std::cmp::Reverse((en.updated(), en.change.seq)));
    entries.truncate(ENTRIES);
    let updated = match entries.iter().map(Entry::updated).max() {
        Some(t) => t,
        None => cx.store.last_recorded()?.unwrap_or(DateTime::UNIX_EPOCH),
    };

    let self_url = cx.url(&path);
    let mut x = String::with_capacity(2048 + entries.len() * 1500);
    x.push_str("<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<feed xmlns=\"http://www.w3.org/2005/Atom\">\n");
    let _ = write!(
        x,
        "<id>{id}</id>\n<title>{title}</title>\n<subtitle>Status changes of states and treaties, with the evidence, as treatywatch read them in the news.</subtitle>\n<updated>{updated}</updated>\n<link rel=\"self\" type=\"application/atom+xml\" href=\"{self_url}\"/>\n<link rel=\"alternate\" type=\"text/html\" href=\"{home}\"/>\n<author><name>treatywatch</name></author>\n<generator version=\"{version}\">treatywatch</generator>\n",
        id = uuid_urn(&format!("treatywatch|feed|{path}")),
        title = esc(&title),
        updated = atom_time(updated),
        self_url = esc(&self_url),
        home = esc(&cx.url("")),
        version = env!("CARGO_PKG_VERSION"),
    );
    for en in &entries {
        entry(cx, &mut x, en);
    }
    x.push_str("</feed>\n");
    Ok(Reply::ok("application/atom+xml; charset=utf-8", x).modified(Some(updated)))
}

fn entry(cx: &Cx<'_>, x: &mut String, en: &Entry<'_>) {
    let config = cx.config;
    let (e, c) = (en.change, en.body);
    let state = config.gazetteer.name_of(&c.state);
    let treaty = config.treaties.get(&c.treaty);
    let treaty_name = config.treaties.name_of(&c.treaty);
    let now_status = en.corrections.last().map_or(c.to, |(_, k, _)| k.to);
    let mut title = format!(
        "{state} · {treaty_name}: {} → {}",
        c.from.label(),
        c.to.label()
    );
    if !en.corrections.is_empty() {
        title.push_str(&format!(" (corrected: now {})", now_status.label()));
    }
    let page = cx.url(&format!("state/{}/{}", c.state, c.treaty));
    let _ = write!(
        x,
        "<entry>\n<id>{id}</id>\n<title type=\"text\">{title}</title>\n<published>{published}</published>\n<updated>{updated}</updated>\n<link rel=\"alternate\" type=\"text/html\" href=\"{page}#e{seq}\"/>\n<category term=\"{to}\" label=\"{to_label}\"/>\n",
        id = entry_id(e),
        title = esc(&title),
        published = atom_time(e.recorded_at),
        updated = atom_time(en.updated()),
        page = esc(&page),
        seq = e.seq,
        to = c.to.as_str(),
        to_label = esc(&c.to.label()),
    );
    let link = c
        .evidence
        .as_ref()
        .and_then(|ev| ev.link.as_deref())
        .and_then(web_link);
    if let Some(link) = &link {
        let _ = writeln!(
            x,
            "<link rel=\"related\" type=\"text/html\" href=\"{}\"/>",
            esc(link.as_str())
        );
    }
    if let Some(ev) = &c.evidence {
        let _ = writeln!(
            x,
            "<summary type=\"text\">{}</summary>",
            esc_capped(&ev.sentence, EVIDENCE_CHARS)
        );
    }
    // The content is HTML, escaped once more to travel as Atom text.
    let mut html = format!(
        "<p>{} · {}: <b>{}</b> → <b>{}</b>, {} (reported by {}).</p>",
        esc(state),
        esc(treaty_name),
        esc(&c.from.label()),
        esc(&c.to.label()),
        e.occurred_at.format("%Y-%m-%d"),
        esc(&c.sources.join(", "))
    );
    if let Some(ev) = &c.evidence {
        let _ = write!(
            html,
            "<blockquote>{}</blockquote>",
            esc_capped(&ev.sentence, EVIDENCE_CHARS)
        );
        if let Some(link) = &link {
            let _ = write!(
                html,
                "<p>Source: <a href=\"{}\">{}</a></p>",
                esc(link.as_str()),
                esc_capped(ev.title.as_deref().unwrap_or(link.as_str()), TITLE_CHARS)
            );
        }
    }
    if let Some(t) = treaty
        && c.to == crate::domain::Status::WithdrawalNotified
        && let Some(effective) = t
            .withdrawal_notice
            .effective_date(e.occurred_at.date_naive())
    {
        let _ = write!(
            html,
            "<p>{}</p>",
            esc(&effective_sentence(t, effective, cx.now))
        );
    }
    for (k, kc, note) in &en.corrections {
        let _ = write!(
            html,
            "<p><b>Corrected {}</b>: the evidence was retracted ({}); the status is now {}.</p>",
            k.recorded_at.format("%Y-%m-%d"),
            esc_capped(note, EVIDENCE_CHARS),
            esc(&kc.to.label())
        );
    }
    let _ = write!(
        html,
        "<p><a href=\"{}\">History of {} · {}</a></p>",
        esc(&page),
        esc(state),
        esc(treaty_name)
    );
    let _ = write!(
        x,
        "<content type=\"html\">{}</content>\n</entry>\n",
        esc(&html)
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uuids_are_stable_and_well_formed() {
        let a = uuid_urn("x");
        assert_eq!(a, uuid_urn("x"));
        assert_ne!(a, uuid_urn("y"));
        let hex = a.strip_prefix("urn:uuid:").expect("urn");
        assert_eq!(hex.len(), 36);
        assert_eq!(&hex[14..15], "8", "version 8: {hex}");
        assert!(
            matches!(&hex[19..20], "8" | "9" | "a" | "b"),
            "variant: {hex}"
        );
    }
}

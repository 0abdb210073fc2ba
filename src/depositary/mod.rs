//! Depositary notifications: what a treaty's depositary says a state did,
//! read from the text of a notification and turned into an authoritative
//! detection.
//!
//! Pure: a message's subject and text in, a `Notice` out; no I/O, no
//! clock. A depositary is data plus a parser: its `Reader` knows the
//! notification format (`un.rs` for the UN Secretary-General's "C.N."
//! notifications, `coe.rs` for the Council of Europe Treaty Office's) and
//! which treaty-catalogue field holds its reference for a treaty
//! (`un_chapter`, `coe_ets`); `resolve` maps the notice's treaty and state
//! onto the catalogue and the gazetteer. Anything the reader does not
//! recognise, or cannot map, is an `Unrecognised` with a reason: it is
//! counted and logged by the caller, never guessed into a detection.
//!
//! Adding a depositary: write a parser returning `Notice` (as `un.rs` and
//! `coe.rs` do), add a `Reader` variant naming it, the catalogue field that
//! maps its treaty references and where it publishes, and add that field to
//! the treaties you know. See the README ("How to add a depositary").

pub mod coe;
pub mod confirm;
pub mod un;

use chrono::NaiveDate;

use crate::config::{Gazetteer, Treaties};
use crate::domain::Action;

/// The rule every depositary detection names: "depositary:XXVI-5".
pub const RULE_PREFIX: &str = "depositary:";
/// Item keys of depositary notices: "depositary:" and the reference, so a
/// notice delivered twice (by two subscriptions, or to two mailboxes) is
/// one observation.
pub const ITEM_PREFIX: &str = "depositary:";

/// The depositaries treatywatch can read; `[[mailbox]] depositary` names one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reader {
    /// The UN Secretary-General (Treaty Section, Office of Legal Affairs).
    Un,
    /// The Secretary General of the Council of Europe (Treaty Office).
    Coe,
}

impl Reader {
    pub const NAMES: &'static [&'static str] = &["un", "coe"];

    pub fn from_name(name: &str) -> Option<Reader> {
        match name {
            "un" => Some(Reader::Un),
            "coe" => Some(Reader::Coe),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Reader::Un => "un",
            Reader::Coe => "coe",
        }
    }

    /// The treaty-catalogue field that holds this depositary's reference.
    pub fn field(self) -> &'static str {
        match self {
            Reader::Un => "un_chapter",
            Reader::Coe => "coe_ets",
        }
    }

    /// Reads one message: a notification, or why it is not one.
    pub fn parse(self, subject: &str, text: &str) -> Result<Notice, Unrecognised> {
        match self {
            Reader::Un => un::parse(subject, text),
            Reader::Coe => coe::parse(subject, text),
        }
    }

    /// A treaty's reference for this depositary, if the catalogue has one.
    fn reference(self, treaty: &crate::config::Treaty) -> Option<&str> {
        match self {
            Reader::Un => treaty.un_chapter.as_deref(),
            Reader::Coe => treaty.coe_ets.as_deref(),
        }
    }

    /// The catalogue treaty whose reference for this depositary is `reference`.
    fn treaty<'a>(self, treaties: &'a Treaties, reference: &str) -> Option<&'a str> {
        treaties
            .list
            .iter()
            .find(|t| self.reference(t) == Some(reference))
            .map(|t| t.id.as_str())
    }

    /// Whether a catalogue treaty can be confirmed by this depositary's
    /// notices (its reference is known).
    pub fn covers(self, treaties: &Treaties, treaty: &str) -> bool {
        treaties
            .get(treaty)
            .is_some_and(|t| self.reference(t).is_some())
    }

    /// Where the depositary publishes the notice or the treaty's record.
    pub fn link(self, notice: &Notice) -> Option<String> {
        match self {
            // The PDF, by number and year ("C.N.412.2025…" is
            // CN/2025/CN.412.2025-Eng.pdf).
            Reader::Un => {
                let rest = notice.reference.strip_prefix("C.N.")?;
                let mut parts = rest.split('.');
                let (number, year) = (parts.next()?, parts.next()?);
                Some(format!(
                    "https://treaties.un.org/doc/Publication/CN/{year}/CN.{number}.{year}-Eng.pdf"
                ))
            }
            // The treaty's chart of signatures and ratifications, which
            // lists the act with its date.
            Reader::Coe => Some(format!(
                "https://www.coe.int/en/web/conventions/full-list?module=signatures-by-treaty&treatynum={}",
                notice.treaty_ref
            )),
        }
    }
}

/// Whether any `[[mailbox]]` of `config` reads a depositary whose notices
/// can confirm `treaty` (its reference is in the catalogue).
pub fn covered(config: &crate::config::Config, treaty: &str) -> bool {
    config
        .mailboxes
        .iter()
        .any(|m| m.depositary.covers(&config.treaties, treaty))
}

/// What a notification says, as written (before mapping to the catalogue).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notice {
    /// "C.N.123.2025.TREATIES-XXVI.5".
    pub reference: String,
    /// The depositary's reference for the treaty: "XXVI-5".
    pub treaty_ref: String,
    /// The treaty's title as the notice gives it.
    pub title: String,
    /// The state as the notice names it ("BOLIVIA (PLURINATIONAL STATE OF)").
    pub state_name: String,
    /// The action as written ("ACCESSION", "OBJECTION TO THE RESERVATION …").
    pub action_name: String,
    pub kind: NoticeKind,
    /// "The above action was effected on …".
    pub effected_on: Option<NaiveDate>,
    /// "… shall take effect on …" (a withdrawal's effect).
    pub takes_effect: Option<NaiveDate>,
    /// The "STATE: ACTION" line, for the evidence.
    pub action_line: String,
}

/// What kind of action a notice reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoticeKind {
    /// An action that moves a status.
    Status(Action),
    /// A reservation, objection, declaration, communication or the
    /// withdrawal of one of those: recorded nowhere in the status.
    NoStatus,
}

/// Why a message is not turned into a detection.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Unrecognised(pub String);

/// A notice mapped onto the catalogue and the gazetteer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    pub state: String,
    pub treaty: String,
}

/// Maps the notice's treaty reference and state name; a notice about a
/// treaty the catalogue has no reference for, or a state the gazetteer
/// does not name, is unrecognised (with what to add).
pub fn resolve(
    reader: Reader,
    notice: &Notice,
    gazetteer: &Gazetteer,
    treaties: &Treaties,
) -> Result<Resolved, Unrecognised> {
    let treaty = reader
        .treaty(treaties, &notice.treaty_ref)
        .ok_or_else(|| {
            Unrecognised(format!(
                "{}: no treaty in the catalogue has {} = \"{}\" ({}); add it to the treaty's entry in treaties.toml to follow it",
                notice.reference,
                reader.field(),
                notice.treaty_ref,
                shorten(&notice.title, 80)
            ))
        })?
        .to_string();
    let state = state_code(gazetteer, &notice.state_name).ok_or_else(|| {
        Unrecognised(format!(
            "{}: state {:?} is not a name in the gazetteer; add it to the state's `names` in states.toml",
            notice.reference, notice.state_name
        ))
    })?;
    Ok(Resolved { state, treaty })
}

/// The gazetteer code for a state as a depositary writes it: the name in
/// any case or accent, and the UN's inverted form "BOLIVIA (PLURINATIONAL
/// STATE OF)" read as "Plurinational State of Bolivia".
pub fn state_code(gazetteer: &Gazetteer, name: &str) -> Option<String> {
    let mut candidates = vec![fold(name)];
    if let Some((head, rest)) = name.split_once('(')
        && let Some(inner) = rest.strip_suffix(')')
    {
        candidates.push(fold(&format!("{} {}", inner.trim(), head.trim())));
        candidates.push(fold(head));
    }
    gazetteer
        .states
        .iter()
        .find(|s| s.names.iter().any(|n| candidates.contains(&fold(n))))
        .map(|s| s.code.clone())
}

/// Case, accents, apostrophe forms and spacing folded away.
fn fold(s: &str) -> String {
    use unicode_normalization::UnicodeNormalization;
    let folded: String = s
        .nfd()
        .filter(|c| !unicode_normalization::char::is_combining_mark(*c))
        .map(|c| if c == '\u{2019}' { '\'' } else { c })
        .collect::<String>()
        .to_lowercase();
    folded.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn shorten(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_string()
    } else {
        format!("{}…", s.chars().take(max - 1).collect::<String>())
    }
}

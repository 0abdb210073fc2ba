//! Membership data files (`[data] membership`, e.g. `config/membership/`):
//! where every state stood with one treaty according to a cited list, as of
//! a stated date. The input of the membership baseline (`crate::baseline`).
//!
//! This module reads and checks one file: known treaty and states, one entry
//! per state, real dates in a possible order (nothing before the treaty
//! opened, a withdrawal taking effect after its notice), a status that
//! agrees with the dates. Every problem points at the value as
//! `file:line:col`. Turning entries into events is `baseline`'s job.

use std::collections::HashMap;
use std::path::PathBuf;

use chrono::NaiveDate;
use serde::Deserialize;
use toml::Spanned;

use super::diagnostic::{Diagnostic, Location, SourceText};
use super::{Gazetteer, Treaties};
use crate::domain::Status;

/// One membership data file, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MembershipFile {
    pub path: PathBuf,
    pub treaty: String,
    pub depositary: String,
    /// The list it was compiled from, in the file's words.
    pub source: String,
    pub source_url: Option<String>,
    /// The date the whole file is known to hold for.
    pub as_of: NaiveDate,
    /// The status of every gazetteer state the file does not list; `None`
    /// when the file says "unknown" (an incomplete compilation).
    pub others: Option<Status>,
    pub entries: Vec<MembershipEntry>,
}

/// One `[[state]]` of a membership file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MembershipEntry {
    pub state: String,
    pub status: Status,
    pub signed: Option<NaiveDate>,
    /// When the instrument of ratification, accession, … was deposited.
    pub joined: Option<NaiveDate>,
    pub by: Option<String>,
    pub withdrawal_notified: Option<NaiveDate>,
    pub withdrawal_effective: Option<NaiveDate>,
    /// Where its `[[state]]` is written.
    pub at: Location,
}

impl MembershipEntry {
    /// When the entry's status began, if the file says.
    pub fn since(&self) -> Option<NaiveDate> {
        match self.status {
            Status::Party => self.joined,
            Status::Signatory => self.signed,
            Status::WithdrawalNotified => self.withdrawal_notified,
            Status::Withdrawn => self.withdrawal_effective,
            _ => None,
        }
    }
}

/// The statuses a list can give; the stages before a notice are news, not
/// something a depositary records.
const LISTED: [Status; 5] = [
    Status::Party,
    Status::Signatory,
    Status::WithdrawalNotified,
    Status::Withdrawn,
    Status::NonParty,
];

const WAYS_TO_JOIN: [&str; 5] = [
    "ratification",
    "accession",
    "acceptance",
    "approval",
    "succession",
];

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    treaty: Spanned<String>,
    depositary: Spanned<String>,
    source: Spanned<String>,
    source_url: Option<Spanned<String>>,
    as_of: Spanned<String>,
    others: Spanned<String>,
    #[serde(default)]
    state: Vec<Spanned<RawEntry>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEntry {
    code: Spanned<String>,
    status: Spanned<String>,
    signed: Option<Spanned<String>>,
    joined: Option<Spanned<String>>,
    by: Option<Spanned<String>>,
    withdrawal_notified: Option<Spanned<String>>,
    withdrawal_effective: Option<Spanned<String>>,
}

/// Parses and checks one membership file. States and the treaty are checked
/// against the data files only when `known` is given (it is not when those
/// files have problems of their own).
pub fn parse(
    src: &SourceText,
    known: Option<(&Gazetteer, &Treaties)>,
) -> Result<MembershipFile, Vec<Diagnostic>> {
    let raw: RawFile = toml::from_str(&src.text).map_err(|e| vec![src.from_toml(&e)])?;
    let mut problems = Vec::new();
    let mut err = |span: std::ops::Range<usize>, message: String| {
        problems.push(src.at(span, message));
    };

    let treaty_id = raw.treaty.get_ref().clone();
    let treaty = known.and_then(|(_, treaties)| {
        let found = treaties.get(&treaty_id);
        if found.is_none() {
            let ids: Vec<&str> = treaties.list.iter().map(|t| t.id.as_str()).collect();
            err(
                raw.treaty.span(),
                format!(
                    "unknown treaty {treaty_id:?}; use an id from the treaties file: {}",
                    ids.join(", ")
                ),
            );
        }
        found
    });
    // The first day a state could have signed or joined.
    let opened = treaty
        .and_then(|t| t.year)
        .and_then(|y| NaiveDate::from_ymd_opt(i32::from(y), 1, 1));

    let as_of = date(&raw.as_of, "as_of", &mut err);
    let others = match raw.others.get_ref().as_str() {
        "unknown" => None,
        "non_party" => Some(Status::NonParty),
        other => {
            err(
                raw.others.span(),
                format!(
                    "others = {other:?}: write \"non_party\" when every state the file does not list is a non-party, or \"unknown\" when the list could not be read completely"
                ),
            );
            None
        }
    };
    for (field, value) in [("depositary", &raw.depositary), ("source", &raw.source)] {
        if value.get_ref().trim().is_empty() {
            err(
                value.span(),
                format!("{field} is empty; name it, so every status can be traced to its source"),
            );
        }
    }

    let mut seen: HashMap<String, usize> = HashMap::new();
    let mut entries = Vec::with_capacity(raw.state.len());
    for spanned in raw.state {
        let at = src.location(spanned.span());
        let e = spanned.into_inner();
        let code = e.code.get_ref().clone();
        if let Some((gazetteer, _)) = known
            && gazetteer.state(&code).is_none()
        {
            err(
                e.code.span(),
                format!(
                    "unknown state {code:?}; use an ISO 3166-1 alpha-3 code from the states file, such as FIN"
                ),
            );
        }
        if let Some(line) = seen.insert(code.clone(), at.line) {
            err(
                e.code.span(),
                format!("state {code:?} is listed twice (also at line {line}); keep one entry"),
            );
        }
        let status = match e.status.get_ref().parse::<Status>() {
            Ok(s) if LISTED.contains(&s) => Some(s),
            _ => {
                let names: Vec<&str> = LISTED.iter().map(|s| s.as_str()).collect();
                err(
                    e.status.span(),
                    format!(
                        "{code}: status {:?} is not one a list can give; use one of: {}",
                        e.status.get_ref(),
                        names.join(", ")
                    ),
                );
                None
            }
        };
        let mut when = |field: &Option<Spanned<String>>, name: &str| {
            field
                .as_ref()
                .and_then(|f| date(f, &format!("{code}: {name}"), &mut err).map(|d| (d, f.span())))
        };
        let signed = when(&e.signed, "signed");
        let joined = when(&e.joined, "joined");
        let notified = when(&e.withdrawal_notified, "withdrawal_notified");
        let effective = when(&e.withdrawal_effective, "withdrawal_effective");
        if let Some(by) = &e.by
            && !WAYS_TO_JOIN.contains(&by.get_ref().as_str())
        {
            err(
                by.span(),
                format!(
                    "{code}: by = {:?}; a state joins by one of: {}",
                    by.get_ref(),
                    WAYS_TO_JOIN.join(", ")
                ),
            );
        }
        // Impossible dates.
        if let Some(opened) = opened {
            for (d, span, what) in [(signed.clone(), "signed"), (joined.clone(), "joined")]
                .into_iter()
                .filter_map(|(d, what)| d.map(|(d, s)| (d, s, what)))
            {
                if d < opened {
                    err(
                        span,
                        format!(
                            "{code}: {what} {d} is before the treaty opened ({}); check the date",
                            opened.format("%Y")
                        ),
                    );
                }
            }
        }
        if let (Some((s, _)), Some((j, span))) = (&signed, &joined)
            && j < s
        {
            err(
                span.clone(),
                format!("{code}: joined {j} is before signed {s}; check both dates"),
            );
        }
        if let (Some((n, _)), Some((x, span))) = (&notified, &effective)
            && x <= n
        {
            err(
                span.clone(),
                format!(
                    "{code}: withdrawal_effective {x} is not after withdrawal_notified {n}; a withdrawal takes effect after its notice"
                ),
            );
        }
        if let Some(as_of) = as_of {
            for (d, span, what) in [
                (signed.clone(), "signed"),
                (joined.clone(), "joined"),
                (notified.clone(), "withdrawal_notified"),
            ]
            .into_iter()
            .filter_map(|(d, what)| d.map(|(d, s)| (d, s, what)))
            {
                if d > as_of {
                    err(
                        span,
                        format!(
                            "{code}: {what} {d} is after the file's as_of {as_of}; a list cannot know it yet (raise as_of if the whole file was checked again)"
                        ),
                    );
                }
            }
        }
        // A status that agrees with the dates.
        if let Some(status) = status {
            let span = e.status.span();
            let effective_by_as_of = effective
                .as_ref()
                .zip(as_of)
                .is_some_and(|((x, _), a)| *x <= a);
            let problem = match status {
                Status::Party | Status::Signatory if effective.is_some() => Some(
                    "it has a withdrawal_effective date; a state whose withdrawal took effect is \"withdrawn\"",
                ),
                Status::Signatory if joined.is_some() => {
                    Some("it has a joined date; a state that deposited its instrument is \"party\"")
                }
                Status::NonParty if joined.is_some() || signed.is_some() => Some(
                    "it has a signed or joined date; a state that left is \"withdrawn\", one that signed is \"signatory\"",
                ),
                Status::WithdrawalNotified if effective_by_as_of => Some(
                    "its withdrawal_effective date is on or before as_of, so by then it is \"withdrawn\"",
                ),
                Status::Withdrawn
                    if effective
                        .as_ref()
                        .zip(as_of)
                        .is_some_and(|((x, _), a)| *x > a) =>
                {
                    Some(
                        "its withdrawal_effective date is after as_of; until then it is \"withdrawal_notified\"",
                    )
                }
                _ => None,
            };
            if let Some(problem) = problem {
                err(span, format!("{code}: status {status}, but {problem}"));
            }
        }
        if let Some(status) = status {
            entries.push(MembershipEntry {
                state: code,
                status,
                signed: signed.map(|(d, _)| d),
                joined: joined.map(|(d, _)| d),
                by: e.by.map(Spanned::into_inner),
                withdrawal_notified: notified.map(|(d, _)| d),
                withdrawal_effective: effective.map(|(d, _)| d),
                at,
            });
        }
    }
    match (problems.is_empty(), as_of) {
        (true, Some(as_of)) => Ok(MembershipFile {
            path: src.path.clone(),
            treaty: treaty_id,
            depositary: raw.depositary.into_inner(),
            source: raw.source.into_inner(),
            source_url: raw.source_url.map(Spanned::into_inner),
            as_of,
            others,
            entries,
        }),
        _ => Err(problems),
    }
}

/// A YYYY-MM-DD date, or a problem at its value.
fn date(
    value: &Spanned<String>,
    what: &str,
    err: &mut impl FnMut(std::ops::Range<usize>, String),
) -> Option<NaiveDate> {
    match NaiveDate::parse_from_str(value.get_ref(), "%Y-%m-%d") {
        Ok(d) => Some(d),
        Err(_) => {
            err(
                value.span(),
                format!(
                    "{what} {:?} is not a date; write YYYY-MM-DD, e.g. \"2012-01-09\"",
                    value.get_ref()
                ),
            );
            None
        }
    }
}

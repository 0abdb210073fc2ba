//! The Council of Europe Treaty Office's notifications, as the Secretary
//! General of the Council of Europe, depositary of the Council's treaties
//! (the ECHR, the CPT, the Istanbul Convention …), circulates them.
//!
//! A notification names itself by a reference, "JJ9912C Tr./210-301" (the
//! Treaty Office's file number, then "Tr./" with the treaty's three-digit
//! number in the Council of Europe Treaty Series — 210 is the Istanbul
//! Convention — and the notification's number for that treaty), then gives
//! the treaty's title, one "<Action> by <State>" line ("Denunciation by
//! Türkiye", "Ratification by Ukraine"), and a paragraph in which the
//! Secretary General notifies the member States of the act with its date:
//! an instrument "deposited … on 18 July 2022", a treaty "signed on behalf
//! of … on …", a denunciation "registered at the Secretariat General on …",
//! which "will take effect on …". The fixtures in
//! `tests/fixtures/depositary/coe-*.eml` are written in this shape.
//!
//! As `un.rs`: English notifications only, every part the reader uses is
//! asked for, and a message lacking one is `Unrecognised` with the part
//! named.

use std::sync::LazyLock;

use chrono::NaiveDate;
use regex::Regex;

use super::{Notice, NoticeKind, Unrecognised};
use crate::domain::Action;

/// Only this much of a message is read: a notification is a page.
const MAX_TEXT: usize = 64 * 1024;

static REFERENCE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"JJ(\d{2,7})C\s+Tr\.\s?/\s?(\d{3})-(\d{1,5})").expect("valid regex")
});
/// "Denunciation by Türkiye", "Signature without reservation as to
/// ratification by Monaco", "Withdrawal of a reservation by Malta".
static ACTION_LINE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^([A-Z][A-Za-z ]{2,80}?) by (?:the )?([^\s.,;:][^.;:]{1,80}?)\.?$")
        .expect("valid regex")
});
/// The day the act was done, as the notification's paragraph gives it.
static EFFECTED: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"(?i)(?:deposited|signed|registered at the Secretariat General|received by the Secretary General)[^.]{0,160}? on (\d{1,2} [A-Za-z]{3,9} \d{4})",
    )
    .expect("valid regex")
});
static TAKES_EFFECT: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)(?:will|shall) take effect (?:[^.]{0,160}? )?on (\d{1,2} [A-Za-z]{3,9} \d{4})")
        .expect("valid regex")
});
/// The series number after a title: " (CETS No. 210)", "(ETS No. 5)".
static SERIES: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"\s*\((?:C?ETS|CETS) No\.? ?\d{1,3}\)\s*$").expect("valid regex"));

/// Reads one message's subject and plain text.
pub fn parse(subject: &str, text: &str) -> Result<Notice, Unrecognised> {
    let text = cut(text, MAX_TEXT);
    let reference = REFERENCE
        .captures(subject)
        .or_else(|| REFERENCE.captures(text))
        .ok_or_else(|| {
            Unrecognised(
                "no Council of Europe notification reference (JJ<n>C Tr./<treaty>-<n>) in the subject or text".into(),
            )
        })?;
    let (file, treaty_ref, number) = (
        reference.get(1).map_or("", |m| m.as_str()),
        reference.get(2).map_or("", |m| m.as_str()).to_string(),
        reference.get(3).map_or("", |m| m.as_str()),
    );
    let whole = format!("JJ{file}C Tr./{treaty_ref}-{number}");
    let flat = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if !flat
        .to_lowercase()
        .contains("secretary general of the council of europe")
    {
        return Err(Unrecognised(format!(
            "{whole}: the text never says it comes from the depositary (\"the Secretary General of the Council of Europe\")"
        )));
    }
    let lines: Vec<&str> = text.lines().map(str::trim).collect();
    let actions: Vec<(usize, &str, &str)> = lines
        .iter()
        .enumerate()
        .filter(|(_, l)| !REFERENCE.is_match(l))
        .filter_map(|(i, l)| {
            let c = ACTION_LINE.captures(l)?;
            let action = c.get(1)?.as_str().trim();
            // Only the acts a notification is about, not any "… by …" line.
            kind(action)?;
            Some((i, action, c.get(2)?.as_str().trim()))
        })
        .collect();
    let (at, action_name, state_name) = match actions.as_slice() {
        [one] => *one,
        [] => {
            return Err(Unrecognised(format!(
                "{whole}: no \"<Action> by <State>\" line (such as \"Ratification by Ukraine\")"
            )));
        }
        [..] => {
            return Err(Unrecognised(format!(
                "{whole}: {} \"<Action> by <State>\" lines; one notification reports one act",
                actions.len()
            )));
        }
    };
    let kind = kind(action_name).ok_or_else(|| {
        Unrecognised(format!(
            "{whole}: action {action_name:?} is not one treatywatch reads"
        ))
    })?;
    // The title: the lines between the reference and the action line.
    let start = lines[..at]
        .iter()
        .rposition(|l| REFERENCE.is_match(l))
        .map_or(0, |i| i + 1);
    let title = lines[start..at]
        .iter()
        .filter(|l| !l.is_empty())
        .copied()
        .collect::<Vec<_>>()
        .join(" ");
    let title = SERIES.replace(&title, "").into_owned();
    let effected_on = date(&EFFECTED, &flat);
    if matches!(kind, NoticeKind::Status(_)) && effected_on.is_none() {
        return Err(Unrecognised(format!(
            "{whole}: no date of the act (\"deposited … on <day> <month> <year>\", \"signed … on …\" or \"registered at the Secretariat General on …\")"
        )));
    }
    let takes_effect = match kind {
        NoticeKind::Status(Action::WithdrawalNotified) => date(&TAKES_EFFECT, &flat),
        _ => None,
    };
    Ok(Notice {
        reference: whole,
        treaty_ref,
        title,
        state_name: state_name.to_string(),
        action_name: action_name.to_string(),
        kind,
        effected_on,
        takes_effect,
        action_line: format!("{action_name} by {state_name}"),
    })
}

/// What an act does to a status; `None` for one not read.
fn kind(action: &str) -> Option<NoticeKind> {
    let lower = action.to_lowercase();
    let words: Vec<&str> = lower.split_whitespace().collect();
    let no_status = |w: &str| {
        matches!(
            w.trim_end_matches('s'),
            "reservation" | "objection" | "declaration" | "communication"
        )
    };
    match words.as_slice() {
        ["signature", ..] => Some(NoticeKind::Status(Action::Signed)),
        ["ratification" | "acceptance" | "approval" | "accession"] => {
            Some(NoticeKind::Status(Action::Ratified))
        }
        ["denunciation"] => Some(NoticeKind::Status(Action::WithdrawalNotified)),
        ["withdrawal", "of", rest @ ..] if rest.iter().any(|w| no_status(w)) => {
            Some(NoticeKind::NoStatus)
        }
        [one] if no_status(one) => Some(NoticeKind::NoStatus),
        ["territorial", "application" | "declaration"] => Some(NoticeKind::NoStatus),
        _ => None,
    }
}

fn date(pattern: &Regex, flat: &str) -> Option<NaiveDate> {
    let found = pattern.captures(flat)?.get(1)?.as_str();
    NaiveDate::parse_from_str(found, "%d %B %Y").ok()
}

/// At most `max` bytes of `s`, cut at a character boundary.
fn cut(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEAD: &str = "Council of Europe\nTreaty Office\n\nNotification JJ9912C Tr./210-301\n\n\
        Council of Europe Convention on preventing and combating violence against\n\
        women and domestic violence (CETS No. 210)\n\n";

    fn d(s: &str) -> NaiveDate {
        NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
    }

    #[test]
    fn reads_the_parts_of_a_denunciation() {
        let text = format!(
            "{HEAD}Denunciation by Türkiye\n\nThe Secretary General of the Council of Europe has the honour\n\
             to notify the member States that Türkiye denounced the above-mentioned Convention\n\
             by a letter registered at the Secretariat General on 22 March\n2021.\n\n\
             In accordance with Article 80 of the Convention, the denunciation will take\n\
             effect on 1 July 2021.\n"
        );
        let n = parse("", &text).unwrap();
        assert_eq!(n.reference, "JJ9912C Tr./210-301");
        assert_eq!(n.treaty_ref, "210");
        assert_eq!(n.state_name, "Türkiye");
        assert_eq!(n.kind, NoticeKind::Status(Action::WithdrawalNotified));
        assert_eq!(n.effected_on, Some(d("2021-03-22")));
        assert_eq!(n.takes_effect, Some(d("2021-07-01")));
        assert_eq!(
            n.title,
            "Council of Europe Convention on preventing and combating violence against women and domestic violence"
        );
        assert_eq!(n.action_line, "Denunciation by Türkiye");
    }

    #[test]
    fn acts_are_read_or_refused() {
        let check = |line: &str, expected: Option<NoticeKind>| {
            let text = format!(
                "{HEAD}{line}\n\nThe Secretary General of the Council of Europe notifies that the instrument was deposited on 18 July 2022.\n"
            );
            assert_eq!(parse("", &text).map(|n| n.kind).ok(), expected, "{line}");
        };
        use NoticeKind::*;
        check("Signature by Estonia", Some(Status(Action::Signed)));
        check(
            "Signature without reservation as to ratification by Monaco",
            Some(Status(Action::Signed)),
        );
        check("Ratification by Ukraine", Some(Status(Action::Ratified)));
        check(
            "Accession by the European Union",
            Some(Status(Action::Ratified)),
        );
        check("Approval by Poland", Some(Status(Action::Ratified)));
        check(
            "Denunciation by Türkiye",
            Some(Status(Action::WithdrawalNotified)),
        );
        check("Reservation by Latvia", Some(NoStatus));
        check("Declarations by Poland", Some(NoStatus));
        check("Withdrawal of a reservation by Malta", Some(NoStatus));
        check("Territorial application by Denmark", Some(NoStatus));
        check("Proposal of amendments by Norway", None);
        check("nothing to read here", None);
    }

    #[test]
    fn a_notification_without_its_parts_is_unrecognised() {
        let reasons = [
            (
                "Lunch on Friday?",
                "no Council of Europe notification reference",
            ),
            (
                "Notification JJ12C Tr./210-1\nRatification by Ukraine\ndeposited on 1 May 2022.",
                "never says it comes from the depositary",
            ),
            (
                &format!(
                    "{HEAD}Ratification by Ukraine\nThe Secretary General of the Council of Europe notifies it."
                ),
                "no date of the act",
            ),
            (
                &format!(
                    "{HEAD}Ratification by Ukraine\nSignature by Estonia\nThe Secretary General of the Council of Europe: deposited on 1 May 2022."
                ),
                "2 \"<Action> by <State>\" lines",
            ),
        ];
        for (text, reason) in reasons {
            let e = parse("", text).unwrap_err();
            assert!(e.0.contains(reason), "{e} should say {reason}");
        }
    }

    #[test]
    fn the_reference_may_stand_in_the_subject_only() {
        let text = "Convention for the Protection of Human Rights and Fundamental Freedoms (ETS No. 5)\n\n\
            Signature by Estonia\n\nThe Secretary General of the Council of Europe notifies that the\n\
            Convention was signed on behalf of Estonia on 14 May 1993.\n";
        let n = parse("JJ1234C Tr./005-88 Signature by Estonia", text).unwrap();
        assert_eq!(n.reference, "JJ1234C Tr./005-88");
        assert_eq!(n.treaty_ref, "005");
        assert_eq!(
            n.title,
            "Convention for the Protection of Human Rights and Fundamental Freedoms"
        );
        assert_eq!(n.effected_on, Some(d("1993-05-14")));
    }
}

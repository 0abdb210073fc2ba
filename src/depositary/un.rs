//! The UN Secretary-General's depositary notifications ("C.N."s), as the
//! Treaty Section of the Office of Legal Affairs mails them.
//!
//! A notification names itself by a reference, "C.N.123.2025.TREATIES-XXVI.5"
//! (number, year, and the treaty's chapter and number in the Multilateral
//! Treaties Deposited with the Secretary-General: XXVI.5 is the Ottawa
//! Convention), then gives the treaty's title, the place and date of its
//! adoption, one "STATE: ACTION" line in capitals, the sentence "The
//! Secretary-General …, acting in his capacity as depositary, communicates
//! the following:", and "The above action was effected on 27 June 2025."
//! A withdrawal adds the date it "shall take effect on". The fixtures in
//! `tests/fixtures/depositary/` are written in this shape.
//!
//! The parser reads English notifications only and asks for every part it
//! uses: a message lacking one is `Unrecognised` with the part named.

use std::sync::LazyLock;

use chrono::NaiveDate;
use regex::Regex;

use super::{Notice, NoticeKind, Unrecognised};
use crate::domain::Action;

/// Only this much of a message is read: a notification is a page or two.
const MAX_TEXT: usize = 64 * 1024;

static REFERENCE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"C\.N\.(\d{1,6})\.(\d{4})\.TREATIES-([IVXLC]{1,8}(?:\.[0-9A-Za-z]{1,4}){0,3})")
        .expect("valid regex")
});
static EFFECTED: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)above action was effected on (\d{1,2} [A-Za-z]{3,9} \d{4})")
        .expect("valid regex")
});
static TAKES_EFFECT: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)(?:shall|will) take effect (?:[^.]{0,200}? )?on (\d{1,2} [A-Za-z]{3,9} \d{4})")
        .expect("valid regex")
});
/// "LATVIA: WITHDRAWAL", "BOLIVIA (PLURINATIONAL STATE OF): ACCESSION".
static ACTION_LINE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^([^:a-z]{2,120}?)\s*:\s*([A-Z][A-Z0-9 ,()'./-]{1,200})$").expect("valid regex")
});
/// The place and date of adoption under the title: "OSLO, 18 SEPTEMBER 1997".
static ADOPTED: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r",\s*\d{1,2}\s+[A-Za-z]+\s+\d{4}\s*$").expect("valid regex"));

/// Reads one message's subject and plain text.
pub fn parse(subject: &str, text: &str) -> Result<Notice, Unrecognised> {
    let text = cut(text, MAX_TEXT);
    let reference = REFERENCE
        .captures(subject)
        .or_else(|| REFERENCE.captures(text))
        .ok_or_else(|| Unrecognised("no depositary reference (C.N.<n>.<year>.TREATIES-<chapter>) in the subject or text".into()))?;
    let whole = reference.get(0).map_or("", |m| m.as_str()).to_string();
    let treaty_ref = reference
        .get(3)
        .map_or("", |m| m.as_str())
        .replace('.', "-");
    let flat = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if !flat.to_lowercase().contains("depositary") {
        return Err(Unrecognised(format!(
            "{whole}: the text never says it comes from the depositary (\"acting in his capacity as depositary\")"
        )));
    }
    let lines: Vec<&str> = text.lines().map(str::trim).collect();
    let actions: Vec<(usize, &str, &str)> = lines
        .iter()
        .enumerate()
        .filter(|(_, l)| !l.contains("C.N.") && !l.to_uppercase().starts_with("REFERENCE"))
        .filter_map(|(i, l)| {
            let c = ACTION_LINE.captures(l)?;
            let state = c.get(1)?.as_str().trim();
            // A state's name has letters; "27 JUNE 2025: …" is no state.
            state
                .chars()
                .any(char::is_alphabetic)
                .then_some((i, state, c.get(2)?.as_str().trim()))
        })
        .collect();
    let (at, state_name, action_name) = match actions.as_slice() {
        [one] => *one,
        [] => {
            return Err(Unrecognised(format!(
                "{whole}: no \"STATE: ACTION\" line in capitals"
            )));
        }
        [..] => {
            return Err(Unrecognised(format!(
                "{whole}: {} \"STATE: ACTION\" lines; one notice reports one action",
                actions.len()
            )));
        }
    };
    let start = lines
        .iter()
        .position(|l| l.contains("C.N."))
        .map_or(0, |i| i + 1);
    let title = lines
        .get(start..at)
        .unwrap_or_default()
        .iter()
        .filter(|l| !l.is_empty() && !ADOPTED.is_match(l) && !l.contains("C.N."))
        .copied()
        .collect::<Vec<_>>()
        .join(" ");
    let kind = kind(action_name).ok_or_else(|| {
        Unrecognised(format!(
            "{whole}: action {action_name:?} is not one treatywatch reads (signature, ratification, accession, acceptance, approval, succession, withdrawal, denunciation, or a reservation, objection or declaration)"
        ))
    })?;
    let effected_on = date(&EFFECTED, &flat);
    if matches!(kind, NoticeKind::Status(_)) && effected_on.is_none() {
        return Err(Unrecognised(format!(
            "{whole}: no \"The above action was effected on <day> <month> <year>\" sentence"
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
        action_line: format!("{state_name}: {action_name}"),
    })
}

/// What an action line's action does to a status; `None` for one not read.
fn kind(action: &str) -> Option<NoticeKind> {
    // "ACCESSION (WITH DECLARATION)": the parenthesis qualifies, the first
    // words decide.
    let bare = action.split('(').next().unwrap_or("").trim();
    let words: Vec<&str> = bare.split_whitespace().collect();
    let no_status = |w: &str| {
        matches!(
            w.trim_end_matches('S'),
            "RESERVATION" | "OBJECTION" | "DECLARATION" | "COMMUNICATION" | "MODIFICATION"
        )
    };
    match words.as_slice() {
        ["SIGNATURE", ..] => Some(NoticeKind::Status(Action::Signed)),
        [
            "RATIFICATION" | "ACCESSION" | "ACCEPTANCE" | "APPROVAL" | "SUCCESSION",
            ..,
        ] => Some(NoticeKind::Status(Action::Ratified)),
        ["WITHDRAWAL" | "DENUNCIATION"] | ["NOTIFICATION", "OF", "WITHDRAWAL" | "DENUNCIATION"] => {
            Some(NoticeKind::Status(Action::WithdrawalNotified))
        }
        // The withdrawal of a reservation or objection leaves the state a
        // party; the withdrawal of anything else is read by no one.
        ["WITHDRAWAL", "OF", what, ..] | ["PARTIAL", "WITHDRAWAL", "OF", what, ..]
            if no_status(what) =>
        {
            Some(NoticeKind::NoStatus)
        }
        ["WITHDRAWAL", ..] => None,
        [first, ..] if no_status(first) => Some(NoticeKind::NoStatus),
        ["TERRITORIAL", "APPLICATION", ..] => Some(NoticeKind::NoStatus),
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

    const HEAD: &str = "Reference: C.N.412.2025.TREATIES-XXVI.5 (Depositary Notification)\n\n\
        CONVENTION ON THE PROHIBITION OF THE USE, STOCKPILING, PRODUCTION AND TRANSFER\n\
        OF ANTI-PERSONNEL MINES AND ON THEIR DESTRUCTION\n\
        OSLO, 18 SEPTEMBER 1997\n\n";
    const SG: &str = "The Secretary-General of the United Nations, acting in his capacity as\n\
        depositary, communicates the following:\n\n";

    fn d(s: &str) -> NaiveDate {
        NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
    }

    #[test]
    fn reads_the_parts_of_a_withdrawal() {
        let text = format!(
            "{HEAD}LATVIA: WITHDRAWAL\n\n{SG}The above action was effected on 27\nJune 2025.\n\n\
             The withdrawal shall take effect for Latvia on 27 December 2025 in accordance\n\
             with article 20 (2).\n\n3 July 2025\n"
        );
        let n = parse("", &text).unwrap();
        assert_eq!(n.reference, "C.N.412.2025.TREATIES-XXVI.5");
        assert_eq!(n.treaty_ref, "XXVI-5");
        assert_eq!(n.state_name, "LATVIA");
        assert_eq!(n.kind, NoticeKind::Status(Action::WithdrawalNotified));
        assert_eq!(n.effected_on, Some(d("2025-06-27")));
        assert_eq!(n.takes_effect, Some(d("2025-12-27")));
        assert!(
            n.title.starts_with("CONVENTION ON THE PROHIBITION"),
            "{}",
            n.title
        );
        assert!(n.title.ends_with("THEIR DESTRUCTION"), "{}", n.title);
    }

    #[test]
    fn actions_are_read_or_refused() {
        let check = |line: &str, expected: Option<NoticeKind>| {
            let text =
                format!("{HEAD}{line}\n\n{SG}The above action was effected on 2 May 2024.\n");
            let got = parse("", &text).map(|n| n.kind).ok();
            assert_eq!(got, expected, "{line}");
        };
        use NoticeKind::*;
        check("FINLAND: SIGNATURE", Some(Status(Action::Signed)));
        check(
            "BOLIVIA (PLURINATIONAL STATE OF): ACCESSION",
            Some(Status(Action::Ratified)),
        );
        check(
            "CÔTE D'IVOIRE: RATIFICATION",
            Some(Status(Action::Ratified)),
        );
        check("SOUTH SUDAN: SUCCESSION", Some(Status(Action::Ratified)));
        check(
            "POLAND: ACCEPTANCE (WITH DECLARATION)",
            Some(Status(Action::Ratified)),
        );
        check(
            "LITHUANIA: DENUNCIATION",
            Some(Status(Action::WithdrawalNotified)),
        );
        check("ESTONIA: RESERVATION", Some(NoStatus));
        check(
            "SWEDEN: OBJECTION TO THE RESERVATION MADE BY QATAR",
            Some(NoStatus),
        );
        check("FRANCE: WITHDRAWAL OF RESERVATIONS", Some(NoStatus));
        check("PERU: WITHDRAWAL OF SIGNATURE", None);
        check("CHILE: PROPOSAL OF AMENDMENTS", None);
        check("no action line here", None);
    }

    #[test]
    fn a_notice_without_its_parts_is_unrecognised() {
        let reasons = [
            ("Lunch on Friday?", "no depositary reference"),
            (
                "C.N.1.2025.TREATIES-XXVI.5\nLATVIA: WITHDRAWAL\nThe above action was effected on 1 May 2025.",
                "never says it comes from the depositary",
            ),
            (
                &format!("{HEAD}LATVIA: WITHDRAWAL\n{SG}Done in New York."),
                "effected on",
            ),
            (
                &format!(
                    "{HEAD}LATVIA: WITHDRAWAL\nESTONIA: WITHDRAWAL\n{SG}The above action was effected on 1 May 2025."
                ),
                "2 \"STATE: ACTION\" lines",
            ),
        ];
        for (text, reason) in reasons {
            let e = parse("", text).unwrap_err();
            assert!(e.0.contains(reason), "{e} should say {reason}");
        }
    }

    #[test]
    fn the_reference_may_stand_in_the_subject_only() {
        let (_, untitled) = HEAD.split_once("\n\n").unwrap();
        let text = format!(
            "{untitled}LATVIA: SIGNATURE\n{SG}The above action was effected on 3 December 1997."
        );
        let n = parse(
            "C.N.7.1997.TREATIES-XXVI.5 (Depositary Notification)",
            &text,
        )
        .unwrap();
        assert_eq!(n.reference, "C.N.7.1997.TREATIES-XXVI.5");
        let sub = parse("C.N.9.2005.TREATIES-XXVII.7.a", &text).unwrap();
        assert_eq!(sub.treaty_ref, "XXVII-7-a");
    }
}

//! Treaty data: names news uses, withdrawal clauses, and how much evidence a
//! status change needs.
//!
//! Loads `treaties.toml` (its header documents the fields) into `Treaties`.
//! The notice-period arithmetic lives here because it is a fact about the
//! treaty, not about any one state.

use std::collections::HashMap;
use std::fmt;

use chrono::{Days, Months, NaiveDate};
use serde::Deserialize;
use toml::Spanned;

use super::diagnostic::{Diagnostic, SourceText};

#[derive(Debug, Clone)]
pub struct Treaty {
    pub id: String,
    pub name: String,
    /// What digests and subject lines print ("Ottawa Convention").
    pub short_name: String,
    pub aliases: Vec<String>,
    /// Aliases matched only exactly as written, because in lower case they
    /// are ordinary words ("WHO").
    pub cased_aliases: Vec<String>,
    /// Words that, a few words after a treaty noun, name this treaty
    /// however loosely the rest is written ("the Convention about the
    /// prohibition of the anti-personnel mines", "Treaty on biological
    /// weapons"): how translations and paraphrases write long names.
    pub keywords: Vec<String>,
    /// The treaty founds an organisation its aliases name ("UNESCO"): the
    /// name followed by a treaty noun is another treaty of that
    /// organisation ("UNESCO's World Heritage Convention").
    pub organisation: bool,
    /// Year adopted; news writes "the 1997 treaty".
    pub year: Option<u16>,
    pub depositary: String,
    pub withdrawal_article: String,
    pub withdrawal_notice: Notice,
    /// The withdrawal does not take effect while the withdrawing state is in
    /// an armed conflict (e.g. Ottawa Art. 20(3)): an expected effective date
    /// is then only a lower bound.
    pub armed_conflict_clause: bool,
    pub suspension: Suspension,
    /// Distinct sources needed before a reported stage moves the status.
    pub min_sources: u32,
    pub notes: String,
    /// The treaty's chapter and number in the UN Secretary-General's
    /// Multilateral Treaties ("XXVI-5"): how a UN depositary notification
    /// ("C.N.….TREATIES-XXVI.5") names it. Only for treaties the
    /// Secretary-General keeps.
    pub un_chapter: Option<String>,
    /// For treaties the Secretary General of the Council of Europe keeps:
    /// the treaty's number in the European/Council of Europe Treaty Series
    /// as the Treaty Office's notices write it ("210" for the Istanbul
    /// Convention, "005" for the ECHR), for `depositary = "coe"` mailboxes.
    pub coe_ets: Option<String>,
}

/// Time between depositing a withdrawal and its effect.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Notice {
    /// The treaty has no withdrawal clause.
    None,
    Days(u32),
    Months(u32),
    Years(u32),
}

impl Notice {
    fn parse(s: &str) -> Option<Notice> {
        if s == "none" {
            return Some(Notice::None);
        }
        let (n, unit) = s.split_once(' ')?;
        let n: u32 = n.parse().ok()?;
        match unit {
            "day" | "days" => Some(Notice::Days(n)),
            "month" | "months" => Some(Notice::Months(n)),
            "year" | "years" => Some(Notice::Years(n)),
            _ => None,
        }
    }

    /// The date a withdrawal notified on `notified` takes effect, if the
    /// treaty allows withdrawal at all.
    pub fn effective_date(self, notified: NaiveDate) -> Option<NaiveDate> {
        match self {
            Notice::None => None,
            Notice::Days(n) => notified.checked_add_days(Days::new(n.into())),
            Notice::Months(n) => notified.checked_add_months(Months::new(n)),
            Notice::Years(n) => notified.checked_add_months(Months::new(n.checked_mul(12)?)),
        }
    }
}

impl fmt::Display for Notice {
    /// As written in treaties.toml: "6 months", "90 days", "none".
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (n, unit) = match *self {
            Notice::None => return f.write_str("none"),
            Notice::Days(n) => (n, "day"),
            Notice::Months(n) => (n, "month"),
            Notice::Years(n) => (n, "year"),
        };
        write!(f, "{n} {unit}{}", if n == 1 { "" } else { "s" })
    }
}

/// How the treaty treats a state 'suspending' it. Either way a suspension is
/// never a withdrawal: the state remains a party.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Suspension {
    /// The treaty provides no suspension.
    NoClause,
    /// The treaty itself provides for suspension.
    TreatyClause,
}

#[derive(Debug, Clone, Default)]
pub struct Treaties {
    pub list: Vec<Treaty>,
    by_id: HashMap<String, usize>,
}

impl Treaties {
    pub fn get(&self, id: &str) -> Option<&Treaty> {
        self.by_id.get(id).map(|&i| &self.list[i])
    }

    /// The printable short name of a treaty id, or the id itself when unknown.
    pub fn name_of<'a>(&'a self, id: &'a str) -> &'a str {
        self.get(id).map_or(id, |t| t.short_name.as_str())
    }

    /// Per-treaty corroboration thresholds, for the status fold.
    pub fn min_sources(&self) -> HashMap<String, u32> {
        self.list
            .iter()
            .map(|t| (t.id.clone(), t.min_sources))
            .collect()
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    #[serde(default)]
    treaty: Vec<RawTreaty>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTreaty {
    id: Spanned<String>,
    name: String,
    short_name: String,
    #[serde(default)]
    aliases: Vec<Spanned<String>>,
    #[serde(default)]
    cased_aliases: Vec<String>,
    #[serde(default)]
    keywords: Vec<Spanned<String>>,
    #[serde(default)]
    organisation: bool,
    year: Option<u16>,
    depositary: String,
    #[serde(default)]
    withdrawal_article: String,
    withdrawal_notice: Spanned<String>,
    #[serde(default)]
    armed_conflict_clause: bool,
    suspension: Suspension,
    min_sources: Option<Spanned<i64>>,
    #[serde(default)]
    notes: String,
    un_chapter: Option<Spanned<String>>,
    coe_ets: Option<Spanned<String>>,
}

/// Parses and checks a treaties file, returning every problem found.
pub fn parse(src: &SourceText) -> Result<Treaties, Vec<Diagnostic>> {
    let raw: RawFile = toml::from_str(&src.text).map_err(|e| vec![src.from_toml(&e)])?;
    let mut problems = Vec::new();
    let mut treaties = Treaties::default();
    let mut alias_owner: HashMap<String, String> = HashMap::new();
    let mut chapter_owner: HashMap<String, String> = HashMap::new();
    let mut ets_owner: HashMap<String, String> = HashMap::new();

    for t in raw.treaty {
        let id = t.id.get_ref().clone();
        if !is_snake_id(&id) {
            problems.push(src.at(
                t.id.span(),
                format!("treaty id {id:?} must be lower-case letters, digits and '_' (such as \"new_start\")"),
            ));
            continue;
        }
        if treaties.by_id.contains_key(&id) {
            problems.push(src.at(
                t.id.span(),
                format!("treaty {id:?} is defined twice; remove one of the [[treaty]] entries"),
            ));
            continue;
        }
        let Some(notice) = Notice::parse(t.withdrawal_notice.get_ref()) else {
            problems.push(src.at(
                t.withdrawal_notice.span(),
                format!(
                    "withdrawal_notice {:?} of treaty {id} is not understood; write \"<n> days\", \"<n> months\", \"<n> years\" or \"none\"",
                    t.withdrawal_notice.get_ref()
                ),
            ));
            continue;
        };
        let min_sources = match &t.min_sources {
            None => 1,
            Some(m) => match u32::try_from(*m.get_ref()) {
                Ok(n) if n >= 1 => n,
                _ => {
                    problems.push(src.at(
                        m.span(),
                        format!(
                            "min_sources of treaty {id} must be 1 or more, not {}",
                            m.get_ref()
                        ),
                    ));
                    continue;
                }
            },
        };
        let un_chapter = match &t.un_chapter {
            None => None,
            Some(c) => match check_un_chapter(c.get_ref(), &t.depositary, &chapter_owner) {
                Ok(()) => {
                    chapter_owner.insert(c.get_ref().clone(), id.clone());
                    Some(c.get_ref().clone())
                }
                Err(message) => {
                    problems.push(src.at(c.span(), format!("treaty {id}: {message}")));
                    continue;
                }
            },
        };
        let coe_ets = match &t.coe_ets {
            None => None,
            Some(n) => match check_coe_ets(n.get_ref(), &t.depositary, &ets_owner) {
                Ok(()) => {
                    ets_owner.insert(n.get_ref().clone(), id.clone());
                    Some(n.get_ref().clone())
                }
                Err(message) => {
                    problems.push(src.at(n.span(), format!("treaty {id}: {message}")));
                    continue;
                }
            },
        };
        let mut aliases = Vec::new();
        for a in t.aliases {
            let folded = a.get_ref().to_lowercase();
            match alias_owner.get(&folded) {
                Some(other) if other != &id => problems.push(src.at(
                    a.span(),
                    format!("alias {:?} is listed for both {other} and {id}; keep it for one treaty only", a.get_ref()),
                )),
                _ => {
                    alias_owner.insert(folded, id.clone());
                }
            }
            aliases.push(a.into_inner());
        }
        // A keyword needs a word the classifier (and its prefilter, which
        // looks for each name's longest word) can find.
        let mut keywords = Vec::new();
        for k in t.keywords {
            let norm = crate::normalize::normalize(k.get_ref(), 0);
            let usable = (0..norm.len()).any(|i| {
                norm.token(i).len() >= 3 && norm.token(i).bytes().all(|b| b.is_ascii_alphabetic())
            });
            if usable {
                keywords.push(k.into_inner());
            } else {
                problems.push(src.at(
                    k.span(),
                    format!(
                        "treaty {id}: keyword {:?} has no word of three letters or more to look for; write words of the treaty's name as news writes them (\"anti-personnel mines\")",
                        k.get_ref()
                    ),
                ));
            }
        }
        treaties.by_id.insert(id.clone(), treaties.list.len());
        treaties.list.push(Treaty {
            id,
            name: t.name,
            short_name: t.short_name,
            aliases,
            cased_aliases: t.cased_aliases,
            keywords,
            organisation: t.organisation,
            year: t.year,
            depositary: t.depositary,
            withdrawal_article: t.withdrawal_article,
            withdrawal_notice: notice,
            armed_conflict_clause: t.armed_conflict_clause,
            suspension: t.suspension,
            min_sources,
            notes: t.notes,
            un_chapter,
            coe_ets,
        });
    }
    if problems.is_empty() {
        Ok(treaties)
    } else {
        Err(problems)
    }
}

/// A UN chapter reference: a Roman numeral, a number, and up to two
/// sub-parts, joined by '-' ("XXVI-5", "XXVII-7-d"), unique, on a treaty
/// the Secretary-General keeps.
fn check_un_chapter(
    chapter: &str,
    depositary: &str,
    owner: &HashMap<String, String>,
) -> Result<(), String> {
    let parts: Vec<&str> = chapter.split('-').collect();
    let roman = parts[0];
    let well_formed = (2..=4).contains(&parts.len())
        && !roman.is_empty()
        && roman.chars().all(|c| "IVXLC".contains(c))
        && !parts[1].is_empty()
        && parts[1].chars().all(|c| c.is_ascii_digit())
        && parts[2..]
            .iter()
            .all(|p| !p.is_empty() && p.len() <= 4 && p.chars().all(|c| c.is_ascii_alphanumeric()));
    if !well_formed {
        return Err(format!(
            "un_chapter {chapter:?} is not a UN chapter reference; write the chapter and number as the C.N. reference has them, with '-' for '.': \"XXVI-5\" for TREATIES-XXVI.5"
        ));
    }
    if !depositary.contains("Secretary-General of the United Nations") {
        return Err(format!(
            "un_chapter is set, but the depositary is {depositary:?}: only treaties the Secretary-General of the United Nations keeps have one; remove it or correct `depositary`"
        ));
    }
    if let Some(other) = owner.get(chapter) {
        return Err(format!(
            "un_chapter {chapter:?} is also {other}'s; each treaty has its own"
        ));
    }
    Ok(())
}

/// A Council of Europe treaty number: three digits as the Treaty Office's
/// references write it ("Tr./210-…"), unique, on a treaty the Council of
/// Europe's Secretary General keeps.
fn check_coe_ets(
    number: &str,
    depositary: &str,
    owner: &HashMap<String, String>,
) -> Result<(), String> {
    if number.len() != 3 || !number.chars().all(|c| c.is_ascii_digit()) {
        return Err(format!(
            "coe_ets {number:?} is not a Council of Europe treaty number; write its three digits as the Treaty Office's references do: \"210\" for the Istanbul Convention, \"005\" for the ECHR"
        ));
    }
    if !depositary.contains("Council of Europe") {
        return Err(format!(
            "coe_ets is set, but the depositary is {depositary:?}: only treaties the Secretary General of the Council of Europe keeps have one; remove it or correct `depositary`"
        ));
    }
    if let Some(other) = owner.get(number) {
        return Err(format!(
            "coe_ets {number:?} is also {other}'s; each treaty has its own"
        ));
    }
    Ok(())
}

fn is_snake_id(id: &str) -> bool {
    !id.is_empty()
        && id.starts_with(|c: char| c.is_ascii_lowercase())
        && id
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notice_periods_add_calendar_units() {
        let d = |s: &str| NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap();
        let check = |notice: &str, from: &str, expected: Option<&str>| {
            let n = Notice::parse(notice).unwrap();
            assert_eq!(
                n.effective_date(d(from)),
                expected.map(d),
                "{notice} from {from}"
            );
        };
        check("6 months", "2025-06-27", Some("2025-12-27"));
        check("6 months", "2025-08-31", Some("2026-02-28"));
        check("90 days", "2025-01-01", Some("2025-04-01"));
        check("1 year", "2024-02-29", Some("2025-02-28"));
        check("none", "2025-01-01", None);
        assert_eq!(Notice::parse("6 fortnights"), None);
        assert_eq!(Notice::parse("six months"), None);
    }

    #[test]
    fn un_chapters_are_checked() {
        let un = "Secretary-General of the United Nations";
        let mut owner = HashMap::new();
        for ok in ["XXVI-5", "XXVII-7-d", "IV-4", "XVIII-10-a"] {
            assert_eq!(check_un_chapter(ok, un, &owner), Ok(()), "{ok}");
        }
        for (bad, why) in [
            ("XXVI.5", "with '-' for '.'"),
            ("26-5", "with '-' for '.'"),
            ("XXVI", "with '-' for '.'"),
            ("XXVI-x", "with '-' for '.'"),
        ] {
            assert!(
                check_un_chapter(bad, un, &owner).unwrap_err().contains(why),
                "{bad}"
            );
        }
        let coe = check_un_chapter(
            "XXVI-5",
            "Secretary General of the Council of Europe",
            &owner,
        );
        assert!(
            coe.unwrap_err()
                .contains("only treaties the Secretary-General")
        );
        owner.insert("XXVI-5".to_string(), "ottawa".to_string());
        assert!(
            check_un_chapter("XXVI-5", un, &owner)
                .unwrap_err()
                .contains("ottawa")
        );
    }
}

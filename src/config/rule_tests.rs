//! Rule tests: example news texts with the detections the rules must make,
//! kept beside the rules (`[data] rule_tests`, e.g. `rule-tests.toml`).
//!
//! This module loads and checks the file (unique names, dates, known state
//! codes, treaty ids and actions) and remembers where each `[[test]]` is
//! written, so a failure can point at it. Running the examples through the
//! classifier is `classify::rule_tests`; `treatywatch check` does both.

use std::collections::HashSet;
use std::fmt;

use chrono::NaiveDate;
use serde::Deserialize;
use toml::Spanned;

use super::diagnostic::{Diagnostic, Location, SourceText};
use super::{Gazetteer, Treaties};
use crate::domain::Action;

/// One example: a news item and exactly the detections it must produce.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleTest {
    pub name: String,
    /// The item's publication date; without it no stage is judged history.
    pub date: Option<NaiveDate>,
    pub title: String,
    pub body: String,
    /// Every detection expected, in no particular order; empty for a trap
    /// that must produce nothing.
    pub expect: Vec<Expected>,
    /// Where its `[[test]]` header is written.
    pub at: Location,
}

/// A detection a rule test expects: "UKR ottawa withdrawal_announced".
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Expected {
    pub state: String,
    pub treaty: String,
    pub action: Action,
}

impl fmt::Display for Expected {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {} {}", self.state, self.treaty, self.action)
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    #[serde(default)]
    test: Vec<Spanned<RawTest>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTest {
    name: Spanned<String>,
    date: Option<Spanned<String>>,
    title: Spanned<String>,
    #[serde(default)]
    body: String,
    expect: Vec<Spanned<String>>,
}

/// Parses and checks a rule-tests file. State codes and treaty ids are
/// checked against the data files only when `known` is given (it is not
/// when those files have problems of their own).
pub fn parse(
    src: &SourceText,
    known: Option<(&Gazetteer, &Treaties)>,
) -> Result<Vec<RuleTest>, Vec<Diagnostic>> {
    let raw: RawFile = toml::from_str(&src.text).map_err(|e| vec![src.from_toml(&e)])?;
    let mut problems = Vec::new();
    let mut names = HashSet::new();
    let mut tests = Vec::with_capacity(raw.test.len());
    for spanned in raw.test {
        // An array-of-tables entry's span is its `[[test]]` header.
        let at = src.location(spanned.span());
        let t = spanned.into_inner();
        let name = t.name.get_ref().trim().to_string();
        if name.is_empty() {
            problems.push(src.at(
                t.name.span(),
                "a rule test needs a name, so its failures can be told apart; write e.g. name = \"decree to withdraw\"",
            ));
        } else if !names.insert(name.clone()) {
            problems.push(src.at(
                t.name.span(),
                format!("rule test name {name:?} is used twice; give each [[test]] its own name"),
            ));
        }
        let date = t.date.as_ref().and_then(|d| {
            NaiveDate::parse_from_str(d.get_ref(), "%Y-%m-%d")
                .map_err(|_| {
                    problems.push(src.at(
                        d.span(),
                        format!(
                            "rule test {name:?}: date {:?} is not a date; write YYYY-MM-DD, e.g. \"2025-06-29\"",
                            d.get_ref()
                        ),
                    ));
                })
                .ok()
        });
        if t.title.get_ref().trim().is_empty() {
            problems.push(src.at(
                t.title.span(),
                format!("rule test {name:?}: the title is empty; the classifier reads the headline first, so give the example one"),
            ));
        }
        let mut expect: Vec<Expected> = Vec::with_capacity(t.expect.len());
        for e in &t.expect {
            match expected(e.get_ref(), known) {
                Ok(x) if expect.contains(&x) => problems.push(src.at(
                    e.span(),
                    format!("rule test {name:?}: {x} is expected twice; list it once"),
                )),
                Ok(x) => expect.push(x),
                Err(message) => {
                    problems.push(src.at(e.span(), format!("rule test {name:?}: {message}")))
                }
            }
        }
        tests.push(RuleTest {
            name,
            date,
            title: t.title.into_inner(),
            body: t.body,
            expect,
            at,
        });
    }
    if problems.is_empty() {
        Ok(tests)
    } else {
        Err(problems)
    }
}

/// Reads "STATE treaty action", checking each part.
fn expected(s: &str, known: Option<(&Gazetteer, &Treaties)>) -> Result<Expected, String> {
    let parts: Vec<&str> = s.split_whitespace().collect();
    let [state, treaty, action] = parts[..] else {
        return Err(format!(
            "expected detection {s:?} must be three words, state code, treaty id and action: \"UKR ottawa withdrawal_announced\""
        ));
    };
    let action: Action = action.parse()?;
    if let Some((gazetteer, treaties)) = known {
        if gazetteer.state(state).is_none() {
            let hint = if gazetteer.state(&state.to_uppercase()).is_some() {
                format!("codes are upper case: write {:?}", state.to_uppercase())
            } else {
                "use an ISO 3166-1 alpha-3 code defined in the states file".to_string()
            };
            return Err(format!("unknown state code {state:?}; {hint}"));
        }
        if treaties.get(treaty).is_none() {
            let ids: Vec<&str> = treaties.list.iter().map(|t| t.id.as_str()).collect();
            return Err(format!(
                "unknown treaty id {treaty:?}; known ids: {}",
                ids.join(", ")
            ));
        }
    }
    Ok(Expected {
        state: state.to_string(),
        treaty: treaty.to_string(),
        action,
    })
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    fn check(text: &str) -> Result<Vec<RuleTest>, Vec<String>> {
        let src = SourceText::new(Path::new("rule-tests.toml"), text.to_string());
        parse(&src, None).map_err(|d| d.iter().map(ToString::to_string).collect())
    }

    #[test]
    fn a_test_reads_with_its_position() {
        let tests = check(concat!(
            "# examples\n\n",
            "[[test]]\nname = \"one\"\ntitle = \"t\"\nexpect = []\n\n",
            "[[test]]\nname = \"two\"\ndate = \"2025-06-29\"\ntitle = \"t\"\nbody = \"b\"\n",
            "expect = [\"UKR ottawa withdrawal_announced\"]\n",
        ))
        .unwrap();
        assert_eq!(tests.len(), 2);
        assert_eq!((tests[0].at.line, tests[0].at.col), (3, 1));
        assert_eq!((tests[1].at.line, tests[1].at.col), (8, 1));
        assert_eq!(tests[1].date, NaiveDate::from_ymd_opt(2025, 6, 29));
        assert_eq!(
            tests[1].expect[0].to_string(),
            "UKR ottawa withdrawal_announced"
        );
    }

    #[test]
    fn problems_point_at_the_value() {
        let errors = check(concat!(
            "[[test]]\nname = \"a\"\ndate = \"29 June\"\ntitle = \"\"\n",
            "expect = [\"UKR ottawa left\", \"UKR ottawa\"]\n",
            "[[test]]\nname = \"a\"\ntitle = \"t\"\nexpect = []\n",
        ))
        .unwrap_err();
        assert!(
            errors[0].starts_with("rule-tests.toml:3:8: rule test \"a\": date"),
            "{errors:?}"
        );
        assert!(errors[1].starts_with("rule-tests.toml:4:9: rule test \"a\": the title"));
        assert!(
            errors[2].starts_with("rule-tests.toml:5:11: rule test \"a\": unknown action \"left\"")
        );
        assert!(errors[3].starts_with("rule-tests.toml:5:30: rule test \"a\": expected detection"));
        assert!(errors[4].starts_with("rule-tests.toml:7:8: rule test name \"a\" is used twice"));
        assert_eq!(errors.len(), 5, "{errors:?}");
    }

    #[test]
    fn unknown_keys_are_refused_with_a_position() {
        let errors = check("[[test]]\nname = \"a\"\ntitle = \"t\"\nexpected = []\n").unwrap_err();
        assert!(errors[0].starts_with("rule-tests.toml:"), "{errors:?}");
        assert!(errors[0].contains("expected"), "{errors:?}");
    }
}

//! Runs rule tests (`config::rule_tests`): each example text through the
//! compiled classifier, compared with the detections it must make.
//!
//! Pure like the rest of `classify`: tests in, failures out as data; `check`
//! prints them. A test passes when the set of (state, treaty, action) found
//! is exactly the set expected: a missing detection and an extra one are
//! both what a rule edit can break.

use std::collections::BTreeSet;

use super::{Classifier, Detection, Text};
use crate::config::Diagnostic;
use crate::config::rule_tests::{Expected, RuleTest};

/// A rule test whose text did not produce what it expects.
#[derive(Debug, Clone)]
pub struct Failure<'a> {
    pub test: &'a RuleTest,
    /// Everything the classifier found, in text order.
    pub got: Vec<Detection>,
}

impl Failure<'_> {
    /// `path:line:col: rule test "NAME": expected X, got Y`, at the test's
    /// `[[test]]`; what was got names the rule that fired, so whoever
    /// edited a rule sees which one to look at.
    pub fn diagnostic(&self) -> Diagnostic {
        let mut expected: Vec<&Expected> = self.test.expect.iter().collect();
        expected.sort();
        let expected = list(expected.iter().map(ToString::to_string));
        let got = list(
            self.got
                .iter()
                .map(|d| format!("{} {} {} (rule {})", d.state, d.treaty, d.action, d.rule)),
        );
        self.test.at.diagnostic(format!(
            "rule test {:?}: expected {expected}, got {got}",
            self.test.name
        ))
    }
}

fn list(items: impl Iterator<Item = String>) -> String {
    let items: Vec<String> = items.collect();
    if items.is_empty() {
        "nothing".to_string()
    } else {
        items.join(", ")
    }
}

/// The tests that fail, in file order.
pub fn run<'a>(classifier: &Classifier, tests: &'a [RuleTest]) -> Vec<Failure<'a>> {
    tests
        .iter()
        .filter_map(|test| {
            let got = classifier.classify(&Text {
                title: test.title.clone(),
                body: test.body.clone(),
                date: test.date,
            });
            let found: BTreeSet<Expected> = got
                .iter()
                .map(|d| Expected {
                    state: d.state.clone(),
                    treaty: d.treaty.clone(),
                    action: d.action,
                })
                .collect();
            let wanted: BTreeSet<Expected> = test.expect.iter().cloned().collect();
            (found != wanted).then_some(Failure { test, got })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;
    use crate::config::diagnostic::Location;
    use crate::config::{CueRules, Gazetteer, Treaties};
    use crate::domain::Action;

    fn test(name: &str, expect: Vec<Expected>, line: usize) -> RuleTest {
        RuleTest {
            name: name.into(),
            date: None,
            title: "Ukraine leaves the Ottawa Convention".into(),
            body: String::new(),
            expect,
            at: Location {
                path: PathBuf::from("rule-tests.toml"),
                line,
                col: 1,
            },
        }
    }

    #[test]
    fn a_failure_says_what_was_expected_and_got_at_the_test() {
        // No rules at all: nothing is ever found.
        let classifier = Classifier::new(
            &Gazetteer::default(),
            &Treaties::default(),
            &CueRules::default(),
        );
        let ukr = Expected {
            state: "UKR".into(),
            treaty: "ottawa".into(),
            action: Action::WithdrawalAnnounced,
        };
        let tests = [test("trap", vec![], 1), test("leaves", vec![ukr], 7)];
        let failures = run(&classifier, &tests);
        assert_eq!(failures.len(), 1);
        assert_eq!(
            failures[0].diagnostic().to_string(),
            "rule-tests.toml:7:1: rule test \"leaves\": expected UKR ottawa withdrawal_announced, got nothing"
        );
    }
}

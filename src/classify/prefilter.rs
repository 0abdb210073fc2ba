//! Whether an item can name a treaty at all, decided on its raw text
//! before any sentence is split or normalised.
//!
//! A detection always has a treaty that the item names (an alias, a loose
//! name after a treaty noun, or "the treaty"), so an item none of whose
//! words could begin such a mention yields nothing; most ordinary news is
//! such, and skipping it saves the normalisation and scan that cost most of
//! its time. The test is a superset: one word of every treaty name (its
//! longest, which is also its rarest in practice), every treaty noun, and
//! the case-sensitive aliases as written, looked for as whole words
//! ignoring ASCII case (a neighbouring ASCII letter or digit makes it part
//! of another word: "impact" holds no "pact"; any other neighbour, a
//! non-ASCII letter included, counts as a boundary, which only lets more
//! through). A token of the normal form is such a word of the raw text
//! wherever normalisation only lower-cases, splits at hyphens and drops
//! possessives; text with combining marks (which normalisation drops from
//! inside words) is never skipped.

use aho_corasick::{AhoCorasick, AhoCorasickKind, MatchKind};
use unicode_normalization::char::is_combining_mark;

use crate::normalize::normalize;

pub struct Prefilter {
    /// Words matched ignoring ASCII case.
    words: AhoCorasick,
    /// Case-sensitive aliases ("WHO"), matched exactly as written.
    cased: Option<AhoCorasick>,
}

impl Prefilter {
    /// A prefilter for these names (aliases, keywords), treaty nouns and
    /// case-sensitive aliases; `None` when some name has no word it can
    /// rely on (then every item is read in full).
    pub fn new<'a>(
        names: impl IntoIterator<Item = &'a str>,
        nouns: impl IntoIterator<Item = &'a str>,
        cased: &[String],
    ) -> Option<Prefilter> {
        let mut words: Vec<String> = Vec::new();
        for name in names {
            let n = normalize(name, 0);
            let longest = (0..n.len())
                .map(|i| n.token(i))
                .filter(|t| t.len() >= 3 && t.bytes().all(|b| b.is_ascii_alphabetic()))
                .max_by_key(|t| t.len())?;
            words.push(longest.to_string());
        }
        for noun in nouns {
            if noun.len() < 3 || !noun.bytes().all(|b| b.is_ascii_alphabetic()) {
                return None;
            }
            words.push(noun.to_string());
        }
        if cased.iter().any(|c| !c.is_ascii()) {
            return None;
        }
        words.sort();
        words.dedup();
        // Overlapping search: a match inside a longer word must not hide
        // a whole word that overlaps it.
        let words = AhoCorasick::builder()
            .ascii_case_insensitive(true)
            .match_kind(MatchKind::Standard)
            .kind(Some(AhoCorasickKind::DFA))
            .build(&words)
            .ok()?;
        let cased = if cased.is_empty() {
            None
        } else {
            Some(
                AhoCorasick::builder()
                    .match_kind(MatchKind::Standard)
                    .build(cased)
                    .ok()?,
            )
        };
        Some(Prefilter { words, cased })
    }

    /// Whether `text` may name a treaty (false only when it cannot).
    pub fn may_name_treaty(&self, text: &str) -> bool {
        if !text.is_ascii() && text.chars().any(is_combining_mark) {
            return true;
        }
        let bytes = text.as_bytes();
        let word_char = |i: usize| bytes.get(i).is_some_and(u8::is_ascii_alphanumeric);
        let whole = |m: aho_corasick::Match| {
            let inside = m.start().checked_sub(1).is_some_and(word_char) || word_char(m.end());
            !inside
        };
        self.words.find_overlapping_iter(text).any(whole)
            || self
                .cased
                .as_ref()
                .is_some_and(|c| c.find_overlapping_iter(text).any(whole))
    }

    pub fn memory_usage(&self) -> usize {
        self.words.memory_usage() + self.cased.as_ref().map_or(0, AhoCorasick::memory_usage)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn filter() -> Prefilter {
        Prefilter::new(
            [
                "Ottawa Convention",
                "Anti-Personnel Mine Ban Convention",
                "NPT",
            ],
            ["treaty", "convention", "pact"],
            &["WHO".to_string()],
        )
        .expect("builds")
    }

    #[test]
    fn passes_every_way_a_name_is_written_and_skips_ordinary_news() {
        let f = filter();
        assert!(f.may_name_treaty("Ukraine leaves the OTTAWA CONVENTION"));
        assert!(f.may_name_treaty("the anti\u{2011}personnel mine ban convention"));
        assert!(f.may_name_treaty("Iran and the npt"));
        assert!(f.may_name_treaty("the WHO said"));
        assert!(f.may_name_treaty("signed the Pact's text"));
        assert!(!f.may_name_treaty("who said the budget was ratified"));
        assert!(!f.may_name_treaty("Parliament ratified the budget on Friday."));
        // Inside another word a name's word is no name: "impact", "WHOM".
        assert!(!f.may_name_treaty("the impact of the WHOM"));
        assert!(f.may_name_treaty("the impact of the pact"));
        // Combining marks are dropped inside words by normalisation: such
        // text is always read in full.
        assert!(f.may_name_treaty("the Conve\u{301}ntion"));
    }

    #[test]
    fn a_name_without_a_usable_word_disables_it() {
        assert!(Prefilter::new(["UN"], ["treaty"], &[]).is_none());
    }
}

//! Sentence splitting: byte ranges of the sentences of an item's text.
//!
//! A sentence ends at ".", "!" or "?" (after any closing quotes or
//! brackets) followed by white space and something that can start a
//! sentence; at a blank line; and at a single line break unless the line
//! obviously runs on ("…the\nconvention"). Known abbreviations ("Mr.",
//! "St.", "Jan.", "U.S.") and initials do not end a sentence. Ranges are
//! trimmed and never empty. Owns only where sentences are, not what they say.

use std::ops::Range;

/// Words that end with a full stop without ending the sentence.
const ABBREVIATIONS: &[&str] = &[
    "mr", "mrs", "ms", "dr", "st", "gen", "col", "lt", "sgt", "capt", "sen", "rep", "gov", "pres",
    "prof", "rev", "hon", "jan", "feb", "mar", "apr", "jun", "jul", "aug", "sep", "sept", "oct",
    "nov", "dec", "no", "nos", "vs", "etc", "inc", "corp", "co", "ltd", "jr", "sr", "art", "para",
    "fig", "approx", "est", "dept", "min", "mt", "ft",
];

/// Longest sentence read as one. Real sentences are far shorter; a longer
/// run without a stop is a table, a dump or binary, and is cut into pieces
/// of this size so the per-sentence work (which looks around each cue)
/// keeps the whole item linear in its length.
pub const MAX_SENTENCE_BYTES: usize = 4096;

/// Splits `text` into sentence ranges.
pub fn split(text: &str) -> Vec<Range<usize>> {
    let bytes = text.as_bytes();
    let mut out = Vec::new();
    let mut start = 0;
    let mut i = 0;
    // Where the next '!' is; memchr3 takes only three bytes, so this one is
    // looked for separately and only again once passed.
    let mut bang = memchr::memchr(b'!', bytes);
    while i < bytes.len() {
        if bang.is_some_and(|b| b < i) {
            bang = memchr::memchr(b'!', &bytes[i..]).map(|b| b + i);
        }
        let stop = memchr::memchr3(b'.', b'\n', b'?', &bytes[i..]).map(|p| p + i);
        i = match (stop, bang) {
            (Some(a), Some(b)) => a.min(b),
            (Some(a), None) => a,
            (None, Some(b)) => b,
            (None, None) => break,
        };
        let b = bytes[i];
        let end_here = match b {
            b'\n' => line_break_ends(text, i),
            b'.' | b'!' | b'?' => {
                let after = skip_closers(text, i + 1);
                let ends = after < bytes.len()
                    && bytes[after].is_ascii_whitespace()
                    && starts_sentence(text, skip_space(text, after))
                    && !(b == b'.' && is_abbreviation(text, i));
                if ends {
                    // The closing quote belongs to the sentence it closes.
                    push(&mut out, text, start, after);
                    start = after;
                    i = after;
                    continue;
                }
                false
            }
            _ => false,
        };
        if end_here {
            push(&mut out, text, start, i);
            start = i + 1;
        }
        i += 1;
    }
    push(&mut out, text, start, bytes.len());
    out
}

fn push(out: &mut Vec<Range<usize>>, text: &str, start: usize, end: usize) {
    let s = &text[start..end];
    let mut from = start + (s.len() - s.trim_start().len());
    let to = start + s.trim_end().len();
    while to > from + MAX_SENTENCE_BYTES {
        // Cut at the last space before the limit, else at a char boundary.
        let mut cut = from + MAX_SENTENCE_BYTES;
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        if let Some(space) = text[from..cut].rfind(char::is_whitespace)
            && space > 0
        {
            cut = from + space;
        }
        push(out, text, from, cut);
        from = cut;
        while from < to && text[from..].starts_with(char::is_whitespace) {
            from += text[from..].chars().next().map_or(1, char::len_utf8);
        }
    }
    if to > from {
        out.push(from..to);
    }
}

/// Index after any closing quotes or brackets at `i`.
fn skip_closers(text: &str, mut i: usize) -> usize {
    while let Some(c) = text.get(i..).and_then(|s| s.chars().next()) {
        if matches!(
            c,
            '"' | '\'' | ')' | ']' | '\u{201D}' | '\u{2019}' | '\u{BB}'
        ) {
            i += c.len_utf8();
        } else {
            break;
        }
    }
    i
}

fn skip_space(text: &str, mut i: usize) -> usize {
    while let Some(c) = text.get(i..).and_then(|s| s.chars().next()) {
        if c.is_whitespace() {
            i += c.len_utf8();
        } else {
            break;
        }
    }
    i
}

fn starts_sentence(text: &str, i: usize) -> bool {
    match text.get(i..).and_then(|s| s.chars().next()) {
        Some(c) => {
            c.is_uppercase()
                || c.is_numeric()
                || matches!(
                    c,
                    '"' | '\'' | '(' | '[' | '\u{201C}' | '\u{2018}' | '\u{AB}'
                )
        }
        None => true,
    }
}

/// Whether the full stop at `dot` ends an abbreviation or an initial.
fn is_abbreviation(text: &str, dot: usize) -> bool {
    let before = &text[..dot];
    let word_start = before
        .rfind(|c: char| !(c.is_alphanumeric() || c == '.'))
        .map_or(0, |p| {
            p + before[p..].chars().next().map_or(1, char::len_utf8)
        });
    let word = &before[word_start..];
    if word.is_empty() {
        return false;
    }
    // "U.S." and "J." are abbreviations or initials.
    if word.contains('.') || (word.chars().count() == 1 && word.chars().all(char::is_uppercase)) {
        return true;
    }
    ABBREVIATIONS.iter().any(|a| a.eq_ignore_ascii_case(word))
}

/// A single line break ends a sentence unless the line runs on: the text
/// before it ends in a lower-case letter or a comma and the text after it
/// starts in lower case. A blank line always ends one.
fn line_break_ends(text: &str, i: usize) -> bool {
    let before = text[..i].trim_end_matches([' ', '\t', '\r']);
    let after = text[i + 1..].trim_start_matches([' ', '\t', '\r']);
    if after.starts_with('\n') {
        return true;
    }
    let last = before.chars().next_back();
    let first = after.chars().next();
    let runs_on =
        last.is_some_and(|c| c.is_lowercase() || c == ',') && first.is_some_and(char::is_lowercase);
    !runs_on
}

#[cfg(test)]
mod tests {
    use super::split;

    fn check(text: &str, expected: &[&str]) {
        let got: Vec<&str> = split(text).into_iter().map(|r| &text[r]).collect();
        assert_eq!(got, expected, "{text:?}");
    }

    #[test]
    fn sentences_end_at_stops_blank_lines_and_headings() {
        check(
            "Title here\n\nFirst one. Second one! Third?",
            &["Title here", "First one.", "Second one!", "Third?"],
        );
        check(
            "He said “a necessary step.” Then he left.",
            &["He said “a necessary step.”", "Then he left."],
        );
        check(
            "The Convention\nThe Ottawa Convention was ratified.",
            &["The Convention", "The Ottawa Convention was ratified."],
        );
        check(
            "a text that was\nwrapped by hand. Next.",
            &["a text that was\nwrapped by hand.", "Next."],
        );
    }

    #[test]
    fn abbreviations_and_initials_do_not_end_sentences() {
        check(
            "The U.S. Senate and Mr. Smith met on Jan. 10. St. Lucia signed.",
            &[
                "The U.S. Senate and Mr. Smith met on Jan. 10.",
                "St. Lucia signed.",
            ],
        );
        check(
            "John F. Kennedy signed it.",
            &["John F. Kennedy signed it."],
        );
        check(
            "It rose 3.5 percent. Then",
            &["It rose 3.5 percent.", "Then"],
        );
    }

    #[test]
    fn endless_sentences_are_cut_into_bounded_pieces() {
        let text = "word ".repeat(5000) + "é".repeat(3000).as_str();
        let pieces = split(&text);
        assert!(pieces.len() > 2);
        for r in &pieces {
            assert!(r.len() <= super::MAX_SENTENCE_BYTES, "{r:?}");
            assert_eq!(text[r.clone()].trim(), &text[r.clone()]);
        }
    }

    #[test]
    fn odd_input_gives_no_empty_sentences() {
        check("", &[]);
        check("   \n\n  ", &[]);
        check("...", &["..."]);
        check(". . A", &[". .", "A"]);
        check("é.É", &["é.É"]);
    }
}

//! Text normalisation: the one function that turns news text and rule
//! phrases alike into a canonical token string, so that matching is a plain
//! substring search. Shared by `config` (validating phrases) and `classify`.
//!
//! The canonical form is lower case without accents (any Unicode
//! normalisation form of "Türkiye" reads "turkiye"), one space between tokens and one at
//! each end (" ukraine ratified the treaty "), which makes every match a
//! whole-word match. Hyphens between letters separate words ("anti-personnel"
//! = "anti personnel"), typographic apostrophes become ASCII ones, possessive
//! "'s" and plural "s'" are dropped ("Ukraine's" = "Ukraine"), "&" is "and",
//! commas are a token of their own, and clause punctuation (";", ":", dashes,
//! brackets, "!" and "?") becomes the token ";" — except that a pair of
//! dashes or brackets around a short aside ("voted 56-32 - with two
//! abstentions - to withdraw", "the Saeima (parliament) voted") reads as a
//! pair of commas, as the same aside between commas would. Every token keeps the byte
//! range it came from in the original text. Owns nothing else: what tokens
//! mean is decided by the modules that read them.

use std::ops::Range;

use unicode_normalization::char::{decompose_canonical, is_combining_mark};

/// The token clause punctuation becomes.
pub const BREAK: &str = ";";
/// The token a comma becomes.
pub const COMMA: &str = ",";

/// A text in canonical form, with the way back to the original.
#[derive(Debug, Clone, Default)]
pub struct Normalized {
    /// " tok tok tok " — tokens joined by single spaces, padded both ends.
    pub text: String,
    /// Each token's byte range in `text` (without the spaces).
    pub tokens: Vec<Range<usize>>,
    /// Each token's byte range in the original text (offset by `base`).
    pub original: Vec<Range<usize>>,
}

impl Normalized {
    /// An empty text with room for about `bytes` bytes of input.
    pub fn with_capacity(bytes: usize) -> Normalized {
        Normalized {
            text: String::with_capacity(bytes + bytes / 8 + 2),
            tokens: Vec::with_capacity(bytes / 5 + 1),
            original: Vec::with_capacity(bytes / 5 + 1),
        }
    }

    pub fn token(&self, i: usize) -> &str {
        self.tokens.get(i).map_or("", |r| &self.text[r.clone()])
    }

    pub fn len(&self) -> usize {
        self.tokens.len()
    }

    pub fn is_empty(&self) -> bool {
        self.tokens.is_empty()
    }

    /// The token index that starts at byte `start` of `text`, for a match of
    /// a padded pattern (whose leading space sits at `start`).
    pub fn token_at(&self, start: usize) -> usize {
        self.tokens.partition_point(|r| r.start <= start)
    }

    /// The original byte range covered by tokens `first..end`.
    pub fn original_range(&self, tokens: Range<usize>) -> Range<usize> {
        self.all().original_range(tokens)
    }

    /// All its tokens, as a view.
    pub fn all(&self) -> Tokens<'_> {
        self.view(0..self.tokens.len())
    }

    /// Tokens `range` (as `normalize_into` returned it), numbered from 0.
    pub fn view(&self, range: Range<usize>) -> Tokens<'_> {
        Tokens {
            text: &self.text,
            tokens: self.tokens.get(range.clone()).unwrap_or(&[]),
            original: self.original.get(range).unwrap_or(&[]),
        }
    }
}

/// A run of tokens of a `Normalized` (one sentence of an item normalised
/// whole), numbered from 0: what reading a sentence looks at.
#[derive(Debug, Clone, Copy, Default)]
pub struct Tokens<'a> {
    /// The whole normalised text the token ranges point into.
    text: &'a str,
    tokens: &'a [Range<usize>],
    original: &'a [Range<usize>],
}

impl<'a> Tokens<'a> {
    pub fn token(&self, i: usize) -> &'a str {
        self.tokens.get(i).map_or("", |r| &self.text[r.clone()])
    }

    pub fn len(&self) -> usize {
        self.tokens.len()
    }

    pub fn is_empty(&self) -> bool {
        self.tokens.is_empty()
    }

    /// Each token's byte range in the original text.
    pub fn original(&self) -> &'a [Range<usize>] {
        self.original
    }

    /// The original byte range covered by tokens `first..end`.
    pub fn original_range(&self, tokens: Range<usize>) -> Range<usize> {
        match (self.original.get(tokens.start), tokens.end.checked_sub(1)) {
            (Some(a), Some(last)) if last >= tokens.start => {
                a.start..self.original.get(last).map_or(a.end, |b| b.end)
            }
            _ => 0..0,
        }
    }
}

fn is_apostrophe(c: char) -> bool {
    matches!(c, '\'' | '\u{2019}' | '\u{2018}' | '\u{02BC}' | '\u{2032}')
}

/// Hyphens that join words; a dash between words separates clauses instead.
fn is_hyphen(c: char) -> bool {
    matches!(c, '-' | '\u{2010}' | '\u{2011}' | '\u{00AD}')
}

fn is_clause_mark(c: char) -> bool {
    matches!(
        c,
        ';' | ':'
            | '('
            | ')'
            | '['
            | ']'
            | '!'
            | '?'
            | '\u{2012}'
            | '\u{2013}'
            | '\u{2014}'
            | '\u{2015}'
            | '\u{2212}'
    )
}

/// Normalises `s`; original ranges are offset by `base` (the position of
/// `s` in a larger text).
pub fn normalize(s: &str, base: usize) -> Normalized {
    let mut out = Normalized::with_capacity(s.len());
    normalize_into(&mut out, s, base);
    out
}

/// Appends the normal form of `s` (at byte `base` of a larger text) to
/// `out`, exactly as `normalize` would write it alone, and returns the
/// range of its tokens. Each piece keeps its padding, so two pieces are
/// joined by two spaces, which no padded pattern holds: a match never
/// spans two pieces (an item's sentences are normalised into one text and
/// scanned once).
pub fn normalize_into(out: &mut Normalized, s: &str, base: usize) -> Range<usize> {
    let first = out.tokens.len();
    out.text.push(' ');
    let bytes = s.as_bytes();
    let char_at = |i: usize| s.get(i..).and_then(|rest| rest.chars().next());
    // Whether the last thing pushed was a word character of the current token.
    let mut in_word = false;
    let mut prev: Option<char> = None;
    // Clause marks that may pair up around an aside: (token, opens).
    let mut asides: Vec<(usize, Aside)> = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        // Fast path: a run of ASCII letters and digits, the bulk of news text.
        if bytes[i].is_ascii_alphanumeric() {
            if !in_word {
                start_token(out, base + i);
                in_word = true;
            }
            let start = i;
            while i < bytes.len() && bytes[i].is_ascii_alphanumeric() {
                i += 1;
            }
            let from = out.text.len();
            out.text.push_str(&s[start..i]);
            out.text[from..].make_ascii_lowercase();
            extend(out, base + i);
            prev = Some(char::from(bytes[i - 1]));
            continue;
        }
        // Fast path: a plain space or line break only ends a word.
        if matches!(bytes[i], b' ' | b'\n' | b'\t' | b'\r') {
            if in_word {
                end_token(out);
                in_word = false;
            }
            prev = Some(' ');
            i += 1;
            continue;
        }
        let Some(c) = char_at(i) else { break };
        let len = c.len_utf8();
        let next = char_at(i + len);
        let prev_alnum = prev.is_some_and(char::is_alphanumeric);
        let next_alnum = next.is_some_and(char::is_alphanumeric);
        if in_word && is_combining_mark(c) {
            // A combining accent belongs to the letter before it: dropped,
            // as the precomposed letter's accent is ("Tu\u{308}rkiye").
            extend(out, base + i + len);
            i += len;
            continue;
        }
        if c.is_alphanumeric() {
            if !in_word {
                start_token(out, base + i);
                in_word = true;
            }
            push_folded(&mut out.text, c);
            extend(out, base + i + len);
        } else if in_word && is_apostrophe(c) {
            let after_next = next.and_then(|n| char_at(i + len + n.len_utf8()));
            match next {
                // Possessive or contracted "'s": dropped, the word ends.
                Some('s' | 'S') if !after_next.is_some_and(char::is_alphanumeric) => {
                    extend(out, base + i + len + 1);
                    end_token(out);
                    in_word = false;
                    prev = Some('s');
                    i += len + 1;
                    continue;
                }
                // Inside a word: "d'Ivoire", "didn't".
                Some(n) if n.is_alphanumeric() => {
                    out.text.push('\'');
                    extend(out, base + i + len);
                }
                // Plural possessive "states'": dropped with the word's end.
                _ if prev.is_some_and(|p| p == 's' || p == 'S') => {
                    extend(out, base + i + len);
                    end_token(out);
                    in_word = false;
                }
                _ => {
                    end_token(out);
                    in_word = false;
                }
            }
        } else if in_word
            && prev_alnum
            && next_alnum
            && (c == '.'
                || (c == ','
                    && prev.is_some_and(|p| p.is_ascii_digit())
                    && next.is_some_and(|n| n.is_ascii_digit())))
        {
            // "U.S", "3.5" and "1,000" stay one token.
            out.text.push(c);
            extend(out, base + i + 1);
        } else {
            if in_word {
                end_token(out);
                in_word = false;
            }
            let digits_around = prev.is_some_and(|p| p.is_ascii_digit())
                && next.is_some_and(|n| n.is_ascii_digit());
            let spaced =
                prev.is_none_or(char::is_whitespace) || next.is_none_or(char::is_whitespace);
            if c == ',' {
                single(out, COMMA, base + i..base + i + 1);
            } else if c == '&' {
                single(out, "and", base + i..base + i + 1);
            } else if (is_clause_mark(c) && !digits_around)
                || (is_hyphen(c) && !(prev_alnum && next_alnum) && spaced)
            {
                // "1997–2025" is a range, "a — b" and "a - b" are dashes.
                let kind = match c {
                    '(' | '[' => Some(Aside::Open),
                    ')' | ']' => Some(Aside::Close),
                    ';' | ':' | '!' | '?' => None,
                    _ => Some(Aside::Dash),
                };
                if let Some(kind) = kind {
                    asides.push((out.tokens.len(), kind));
                } else {
                    asides.clear();
                }
                single(out, BREAK, base + i..base + i + len);
            }
            // Everything else (spaces, quotes, full stops, symbols) only separates.
        }
        prev = Some(c);
        i += len;
    }
    if in_word {
        end_token(out);
    }
    commas_around_asides(out, &asides);
    first..out.tokens.len()
}

#[derive(Clone, Copy, PartialEq)]
enum Aside {
    Open,
    Close,
    Dash,
}

/// Most tokens an aside between a pair of dashes or brackets may hold.
const ASIDE_TOKENS: usize = 16;

/// Turns each pair of dashes, or an opening and closing bracket, with a
/// short aside between them and no other clause mark, into commas (both
/// tokens are one byte, so the text is rewritten in place).
fn commas_around_asides(out: &mut Normalized, asides: &[(usize, Aside)]) {
    let mut k = 0;
    while k + 1 < asides.len() {
        let (a, first) = asides[k];
        let (b, second) = asides[k + 1];
        let pair = matches!(
            (first, second),
            (Aside::Dash, Aside::Dash) | (Aside::Open, Aside::Close)
        );
        let between_clear = (a + 1..b).all(|t| out.token(t) != BREAK);
        if pair && b - a <= ASIDE_TOKENS + 1 && b > a + 1 && between_clear {
            for t in [a, b] {
                if let Some(r) = out.tokens.get(t).cloned() {
                    out.text.replace_range(r, COMMA);
                }
            }
            k += 2;
        } else {
            k += 1;
        }
    }
}

/// Lower case without accents: the letter's canonical decomposition minus
/// its combining marks ("Ü" -> "u", "ł" stays "ł": it has no decomposition).
fn push_folded(text: &mut String, c: char) {
    if c.is_ascii() {
        text.push(c.to_ascii_lowercase());
        return;
    }
    let mut base = String::new();
    decompose_canonical(c, |d| {
        if !is_combining_mark(d) {
            base.push(d);
        }
    });
    if base.is_empty() {
        base.push(c);
    }
    text.extend(base.chars().flat_map(char::to_lowercase));
}

fn start_token(out: &mut Normalized, at: usize) {
    let start = out.text.len();
    out.tokens.push(start..start);
    out.original.push(at..at);
}

fn extend(out: &mut Normalized, original_end: usize) {
    let end = out.text.len();
    if let (Some(t), Some(o)) = (out.tokens.last_mut(), out.original.last_mut()) {
        t.end = end;
        o.end = original_end;
    }
}

fn end_token(out: &mut Normalized) {
    out.text.push(' ');
}

fn single(out: &mut Normalized, token: &str, original: Range<usize>) {
    let start = out.text.len();
    out.text.push_str(token);
    out.tokens.push(start..out.text.len());
    out.original.push(original);
    out.text.push(' ');
}

#[cfg(test)]
mod tests {
    use super::*;

    fn canon(s: &str) -> String {
        normalize(s, 0).text
    }

    #[test]
    fn case_hyphens_apostrophes_and_possessives_fold() {
        let check = |input: &str, expected: &str| assert_eq!(canon(input), expected, "{input:?}");
        check("Ukraine", " ukraine ");
        check("Ukraine's parliament", " ukraine parliament ");
        check("Ukraine\u{2019}s parliament", " ukraine parliament ");
        check("the Baltic states' votes", " the baltic states votes ");
        check("Anti-Personnel", " anti personnel ");
        check("anti\u{2011}personnel mines", " anti personnel mines ");
        check("Côte d'Ivoire", " cote d'ivoire ");
        check("Côte d\u{2019}Ivoire", " cote d'ivoire ");
        // NFC and NFD spellings read the same.
        check("T\u{fc}rkiye", " turkiye ");
        check("Tu\u{308}rkiye", " turkiye ");
        check("Łódź", " łodz ");
        check("U.S. Senate", " u.s senate ");
        check("Antigua & Barbuda", " antigua and barbuda ");
        check("Use, Stockpiling", " use , stockpiling ");
        check("countries\u{2014}such as", " countries ; such as ");
        check("a — b", " a ; b ");
        check("a - b", " a ; b ");
        // A pair of dashes or brackets around a short aside reads as commas.
        check(
            "voted 56-32 - with two abstentions - to leave",
            " voted 56 32 , with two abstentions , to leave ",
        );
        check(
            "the Saeima (parliament) voted",
            " the saeima , parliament , voted ",
        );
        check("a (b; c) d", " a ; b ; c ; d ");
        check("Convention - LRT", " convention ; lrt ");
        check("“quoted” text.", " quoted text ");
        check("1,000 votes, 88-0", " 1,000 votes , 88 0 ");
        check("", " ");
        check("!!", " ; ; ");
    }

    #[test]
    fn tokens_map_back_to_original_bytes() {
        let text = "Said: Ukraine’s  Rada";
        let n = normalize(text, 100);
        let originals: Vec<&str> = n
            .original
            .iter()
            .map(|r| &text[r.start - 100..r.end - 100])
            .collect();
        assert_eq!(originals, ["Said", ":", "Ukraine’s", "Rada"]);
        assert_eq!(n.token(2), "ukraine");
        assert_eq!(n.original_range(2..4), 106..123);
        assert_eq!(n.original_range(3..3), 0..0);
    }

    #[test]
    fn token_at_finds_the_token_after_a_padded_match() {
        let n = normalize("Niger and Nigeria", 0);
        let at = n.text.find(" nigeria ").unwrap();
        assert_eq!(n.token_at(at), 2);
        assert!(!n.text.contains(" niger ") || n.text.find(" niger ") == Some(0));
    }
}

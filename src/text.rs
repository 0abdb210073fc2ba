//! Feed text made safe to print: one place that decides which characters a
//! terminal (or a mail reader) must never receive raw.
//!
//! Feed titles, evidence sentences, links and server error messages are
//! written by strangers. Printed raw, an ESC sequence can retitle the
//! terminal, move the cursor or hide text; a NUL or a C1 control confuses
//! pagers; a bidi override (U+202E) makes text read backwards and a link
//! look like another. `terminal_safe` replaces every such character with a
//! visible escape (`\x1b`, `\u{202e}`), so what was sent stays readable and
//! can be reported; `drop_bidi` removes the bidi controls outright, for
//! text that goes into mail. `json_safe` escapes the same characters inside
//! already serialised JSON, which keeps the data identical for a parser.
//! Pure functions, no I/O.

use std::borrow::Cow;
use std::fmt::Write as _;

/// Bidirectional formatting characters: embeddings and overrides
/// (U+202A–U+202E), isolates (U+2066–U+2069), the left-to-right and
/// right-to-left marks (U+200E, U+200F) and the Arabic letter mark (U+061C).
pub fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}' | '\u{200E}' | '\u{200F}' | '\u{061C}')
}

/// Characters never printed raw: C0 controls (NUL and ESC among them), DEL,
/// C1 controls, the line and paragraph separators, and bidi controls.
fn is_unsafe(c: char, keep_lines: bool) -> bool {
    match c {
        '\n' | '\t' => !keep_lines,
        '\u{0}'..='\u{1F}' | '\u{7F}'..='\u{9F}' | '\u{2028}' | '\u{2029}' => true,
        c => is_bidi_control(c),
    }
}

fn escape(s: &str, keep_lines: bool) -> Cow<'_, str> {
    if !s.chars().any(|c| is_unsafe(c, keep_lines)) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        if !is_unsafe(c, keep_lines) {
            out.push(c);
        } else if (c as u32) < 0x100 {
            let _ = write!(out, "\\x{:02x}", c as u32);
        } else {
            let _ = write!(out, "\\u{{{:x}}}", c as u32);
        }
    }
    Cow::Owned(out)
}

/// `s` for one line of terminal output: every control character (newlines
/// and tabs included), escape sequence introducer and bidi control is
/// replaced by a visible escape.
pub fn terminal_safe(s: &str) -> Cow<'_, str> {
    escape(s, false)
}

/// Like `terminal_safe`, but keeps newlines and tabs: for text printed as a
/// block (a digest preview).
pub fn terminal_safe_block(s: &str) -> Cow<'_, str> {
    escape(s, true)
}

/// `s` without bidi controls: for mail, where an escape would only puzzle
/// the reader and the override must not take effect.
pub fn drop_bidi(s: &str) -> Cow<'_, str> {
    if s.chars().any(is_bidi_control) {
        Cow::Owned(s.chars().filter(|c| !is_bidi_control(*c)).collect())
    } else {
        Cow::Borrowed(s)
    }
}

/// Serialised JSON with the characters serde_json leaves raw (DEL, C1
/// controls, line separators, bidi controls) written as `\uXXXX` escapes.
/// Outside strings JSON is ASCII, so only string contents change, and a
/// parser reads exactly the same value.
pub fn json_safe(json: String) -> String {
    if !json.chars().any(|c| is_unsafe(c, true)) {
        return json;
    }
    let mut out = String::with_capacity(json.len() + 8);
    for c in json.chars() {
        if is_unsafe(c, true) {
            let _ = write!(out, "\\u{:04x}", c as u32);
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn terminal_safe_escapes_what_a_terminal_would_act_on() {
        let check = |input: &str, expected: &str| {
            assert_eq!(terminal_safe(input), expected, "{input:?}");
        };
        check("plain text, café", "plain text, café");
        check("\u{1b}]0;pwned\u{7}title", "\\x1b]0;pwned\\x07title");
        check("\u{1b}[2J", "\\x1b[2J");
        check("nul\0byte", "nul\\x00byte");
        check("two\nlines\ttab", "two\\x0alines\\x09tab");
        check("c1 \u{9b}31m", "c1 \\x9b31m");
        check("del\u{7f}", "del\\x7f");
        check("abc\u{202e}fdp.exe", "abc\\u{202e}fdp.exe");
        check(
            "\u{2066}\u{2069}\u{200e}\u{200f}\u{61c}\u{202a}",
            "\\u{2066}\\u{2069}\\u{200e}\\u{200f}\\u{61c}\\u{202a}",
        );
        check("line\u{2028}sep", "line\\u{2028}sep");
    }

    #[test]
    fn a_block_keeps_its_lines() {
        assert_eq!(terminal_safe_block("a\n\tb\u{1b}c"), "a\n\tb\\x1bc");
    }

    #[test]
    fn mail_text_loses_bidi_controls_only() {
        assert_eq!(drop_bidi("abc\u{202e}def\u{2066}"), "abcdef");
        assert_eq!(drop_bidi("Україна"), "Україна");
    }

    #[test]
    fn json_stays_the_same_value() {
        let value = serde_json::json!({"title": "a\u{202e}b\u{85}c\u{1b}d"});
        let safe = json_safe(value.to_string());
        assert!(safe.is_ascii() || !safe.chars().any(|c| is_unsafe(c, true)));
        assert!(safe.contains("\\u202e"), "{safe}");
        let back: serde_json::Value = serde_json::from_str(&safe).expect("valid json");
        assert_eq!(back, value);
    }
}

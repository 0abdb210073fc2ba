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
//! For the web outputs, `html_text` cleans and escapes feed text for HTML
//! and XML (Atom) alike, and `web_link` decides which feed links may become
//! links. Pure functions, no I/O.

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

/// Feed text for HTML or XML: controls become spaces and runs of space one
/// (XML 1.0 forbids most C0 controls outright, and a page has no use for
/// them), bidi controls and the non-characters U+FFFE/U+FFFF are dropped,
/// and `& < > " '` are escaped, so it is safe in element text and in
/// quoted attribute values.
pub fn html_text(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut space = false;
    for c in s.chars() {
        if is_bidi_control(c) || matches!(c, '\u{FFFE}' | '\u{FFFF}') {
            continue;
        }
        if c.is_control() || c.is_whitespace() {
            space = true;
            continue;
        }
        if space && !out.is_empty() {
            out.push(' ');
        }
        space = false;
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// `html_text` of at most `max` characters of `s`, ending in "…" when cut.
pub fn html_text_capped(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        None => html_text(s),
        Some((at, _)) => format!("{}…", html_text(&s[..at]).trim_end()),
    }
}

/// A link from a feed, only when it is an absolute http(s) URL: a
/// `javascript:` or `data:` link must never become something to click.
pub fn web_link(s: &str) -> Option<url::Url> {
    url::Url::parse(s.trim())
        .ok()
        .filter(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some())
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
    fn html_text_escapes_and_cleans() {
        let check = |input: &str, expected: &str| {
            assert_eq!(html_text(input), expected, "{input:?}");
        };
        check("plain", "plain");
        check(
            "<script>alert('x')</script>",
            "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;",
        );
        check("a & \"b\"", "a &amp; &quot;b&quot;");
        check("nul\0and\u{1b}[2J esc", "nul and [2J esc");
        check("  two\n\n lines\t", "two lines");
        check("abc\u{202e}fdp\u{2066}", "abcfdp");
        check("x\u{FFFE}\u{FFFF}y", "xy");
        assert_eq!(html_text_capped("abcdef", 3), "abc…");
        assert_eq!(html_text_capped("a<b", 10), "a&lt;b");
        assert_eq!(html_text_capped("aé<", 2), "aé…");
    }

    #[test]
    fn only_http_links_are_links() {
        assert!(web_link("https://example.org/a?b=1").is_some());
        assert!(web_link(" http://example.org ").is_some());
        for bad in [
            "javascript:alert(1)",
            "data:text/html,<b>",
            "ftp://example.org",
            "/relative",
            "http://",
            "",
        ] {
            assert!(web_link(bad).is_none(), "{bad}");
        }
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

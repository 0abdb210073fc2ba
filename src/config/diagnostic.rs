//! `path:line:col: message` diagnostics for configuration files.
//!
//! Owns the mapping from a byte span in a TOML file to the line and column a
//! user sees in an editor. Knows nothing about what the files mean.

use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};

/// One problem in one configuration file, pointing at the offending text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    pub path: PathBuf,
    /// 1-based line.
    pub line: usize,
    /// 1-based column, counted in characters.
    pub col: usize,
    pub message: String,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}: {}",
            self.path.display(),
            self.line,
            self.col,
            self.message
        )
    }
}

/// A place in a configuration file, kept for reports made after loading
/// (a rule test that fails points at its `[[test]]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    pub path: PathBuf,
    /// 1-based line.
    pub line: usize,
    /// 1-based column, counted in characters.
    pub col: usize,
}

impl Location {
    pub fn diagnostic(&self, message: impl Into<String>) -> Diagnostic {
        Diagnostic {
            path: self.path.clone(),
            line: self.line,
            col: self.col,
            message: message.into(),
        }
    }
}

/// A configuration file's text, kept so spans can be turned into positions.
pub struct SourceText {
    pub path: PathBuf,
    pub text: String,
}

impl SourceText {
    pub fn new(path: &Path, text: String) -> SourceText {
        SourceText {
            path: path.to_path_buf(),
            text,
        }
    }

    /// A diagnostic at the start of `span` (a byte range into the text).
    pub fn at(&self, span: Range<usize>, message: impl Into<String>) -> Diagnostic {
        self.location(span).diagnostic(message)
    }

    /// The line and column where `span` starts.
    pub fn location(&self, span: Range<usize>) -> Location {
        let (line, col) = line_col(&self.text, span.start);
        Location {
            path: self.path.clone(),
            line,
            col,
        }
    }

    /// The diagnostic for a TOML syntax or type error, in the user's
    /// terms: the key and what to write, not the deserializer's types.
    pub fn from_toml(&self, err: &toml::de::Error) -> Diagnostic {
        let span = err.span().unwrap_or(0..0);
        let key = key_at(&self.text, span.start);
        self.at(span, plain(err.message().trim_end(), key.as_deref()))
    }
}

/// The key written on the line where `offset` is (`concurrency = "5"`).
fn key_at(text: &str, offset: usize) -> Option<String> {
    let mut start = offset.min(text.len());
    while !text.is_char_boundary(start) {
        start -= 1;
    }
    let line_start = text[..start].rfind('\n').map_or(0, |i| i + 1);
    let line = text[line_start..].lines().next()?;
    let (key, _) = line.split_once('=')?;
    let key = key.trim().trim_matches('"');
    (!key.is_empty() && !key.starts_with('[') && !key.starts_with('#')).then(|| key.to_string())
}

/// A serde/toml message rewritten for a person editing the file:
/// `invalid type: string "5", expected i64` becomes "`concurrency` must be
/// a whole number such as 5, without quotes".
fn plain(message: &str, key: Option<&str>) -> String {
    let name = key.map_or_else(|| "this value".to_string(), |k| format!("`{k}`"));
    let Some(rest) = message.strip_prefix("invalid type: ") else {
        if let Some(field) = message
            .strip_prefix("unknown field `")
            .and_then(|r| r.split_once('`'))
        {
            let known = message
                .split_once("expected one of ")
                .map(|(_, k)| format!("; the keys allowed here are {k}"))
                .unwrap_or_default();
            return format!(
                "unknown key `{}`: check its spelling and which [table] it is under{known}",
                field.0
            );
        }
        if let Some(field) = message
            .strip_prefix("missing field `")
            .and_then(|r| r.split_once('`'))
        {
            return format!(
                "this table needs the key `{}`; add `{} = …`",
                field.0, field.0
            );
        }
        return message.to_string();
    };
    let (found, expected) = rest.split_once(", expected ").unwrap_or((rest, ""));
    let found = found
        .replace("string ", "the text ")
        .replace("integer ", "the number ")
        .replace("boolean ", "")
        .replace('`', "");
    let want = match expected {
        "i64" | "u64" | "u32" | "usize" | "an integer" => {
            "a whole number such as 5, without quotes"
        }
        "a boolean" => "true or false, without quotes",
        "a string" => "text in double quotes, such as \"15m\"",
        "a sequence" => "a list in square brackets, such as [\"UKR\", \"POL\"]",
        "a map" | "struct" => "a table",
        other => other,
    };
    format!("{name} must be {want}; found {found}")
}

/// 1-based (line, column) of a byte offset; offsets past the end or inside a
/// multi-byte character are clamped rather than trusted.
fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let mut offset = offset.min(text.len());
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let col = before[line_start..].chars().count() + 1;
    (line, col)
}

#[cfg(test)]
mod tests {
    use super::{key_at, line_col, plain};

    #[test]
    fn type_errors_speak_of_keys_and_what_to_write() {
        assert_eq!(
            plain(
                "invalid type: string \"5\", expected i64",
                Some("concurrency")
            ),
            "`concurrency` must be a whole number such as 5, without quotes; found the text \"5\""
        );
        assert_eq!(
            plain(
                "invalid type: string \"UKR\", expected a sequence",
                Some("states")
            ),
            "`states` must be a list in square brackets, such as [\"UKR\", \"POL\"]; found the text \"UKR\""
        );
        assert!(
            plain("unknown field `foo`, expected one of `from`, `to`", None)
                .starts_with("unknown key `foo`: check its spelling")
        );
        assert_eq!(
            plain("missing field `id`", None),
            "this table needs the key `id`; add `id = …`"
        );
        assert_eq!(
            key_at("[fetch]\nconcurrency = \"5\"\n", 22).as_deref(),
            Some("concurrency")
        );
    }

    #[test]
    fn positions_are_one_based_and_count_characters() {
        let text = "a = 1\nbé = \"x\"\n";
        assert_eq!(line_col(text, 0), (1, 1));
        assert_eq!(line_col(text, 6), (2, 1));
        // 'é' is two bytes but one column.
        assert_eq!(line_col(text, 9), (2, 3));
        assert_eq!(line_col(text, 10_000), (3, 1));
    }
}

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

    /// The diagnostic for a TOML syntax or type error.
    pub fn from_toml(&self, err: &toml::de::Error) -> Diagnostic {
        let span = err.span().unwrap_or(0..0);
        self.at(span, err.message().trim_end().to_string())
    }
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
    use super::line_col;

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

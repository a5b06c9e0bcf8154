//! Where in a user's file something went wrong: `file:line:col`, for the inventory and
//! profile loaders, which both read strict TOML.

use std::fmt;
use std::path::{Path, PathBuf};

/// A message about a place in a file the user wrote, with the fix when there is one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Located {
    pub path: PathBuf,
    pub line: usize,
    pub col: usize,
    pub message: String,
    pub hint: Option<String>,
}

impl fmt::Display for Located {
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

/// 1-based line and column of a byte offset.
pub fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(text.len());
    let before = &text[..offset];
    let line = before.bytes().filter(|b| *b == b'\n').count() + 1;
    let col = before.rfind('\n').map_or(offset, |nl| offset - nl - 1) + 1;
    (line, col)
}

/// Builds a [`Located`] for a byte range of `text`.
pub fn at(path: &Path, text: &str, offset: usize, message: String, hint: Option<&str>) -> Located {
    let (line, col) = line_col(text, offset);
    Located {
        path: path.to_path_buf(),
        line,
        col,
        message,
        hint: hint.map(str::to_owned),
    }
}

/// Turns a TOML parse error into one line with its place, and a hint for the common cases
/// (an unknown key, a missing field, a value of the wrong kind).
pub fn toml_error(path: &Path, text: &str, err: &toml::de::Error, what: &str) -> Located {
    let offset = err.span().map_or(0, |s| s.start);
    let message = err.message().trim().replace('\n', " ");
    let hint = if message.starts_with("unknown field") {
        Some(format!(
            "remove or rename the key; the keys {what} accepts are listed after 'expected'"
        ))
    } else if message.starts_with("missing field") {
        Some(format!("add the field to this table of the {what}"))
    } else if message.starts_with("unknown variant") {
        Some("use one of the values listed after 'expected'".to_string())
    } else {
        None
    };
    at(path, text, offset, message, hint.as_deref())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_and_columns() {
        let t = "a\nbc\ndef";
        assert_eq!(line_col(t, 0), (1, 1));
        assert_eq!(line_col(t, 2), (2, 1));
        assert_eq!(line_col(t, 3), (2, 2));
        assert_eq!(line_col(t, 7), (3, 3));
    }
}

//! Turning TOML parse errors into `file:line:column: message` for people.
//!
//! Every config and reference file is parsed straight from its text with
//! `deny_unknown_fields`, so serde's error carries a byte span; this module
//! maps the span to a 1-based line and column.

use std::fmt;

/// A problem found in a text file, with its position.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Located {
    pub file: String,
    /// 1-based line, 0 when the problem has no position.
    pub line: usize,
    /// 1-based column in characters, 0 when the problem has no position.
    pub column: usize,
    pub message: String,
}

impl fmt::Display for Located {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            write!(f, "{}: {}", self.file, self.message)
        } else {
            write!(
                f,
                "{}:{}:{}: {}",
                self.file, self.line, self.column, self.message
            )
        }
    }
}

impl std::error::Error for Located {}

/// 1-based line and column of byte `offset` in `text`.
pub fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(text.len());
    let before = &text[..text.floor_char_boundary_compat(offset)];
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, col)
}

trait FloorBoundary {
    fn floor_char_boundary_compat(&self, i: usize) -> usize;
}
impl FloorBoundary for str {
    fn floor_char_boundary_compat(&self, mut i: usize) -> usize {
        while i > 0 && !self.is_char_boundary(i) {
            i -= 1;
        }
        i
    }
}

/// Locates a byte span in `text` for a message about `file`.
pub fn locate(
    file: &str,
    text: &str,
    span: Option<std::ops::Range<usize>>,
    message: impl Into<String>,
) -> Located {
    let (line, column) = span.map_or((0, 0), |s| line_col(text, s.start));
    Located {
        file: file.to_owned(),
        line,
        column,
        message: message.into(),
    }
}

/// Parses `text` as TOML into `T`, mapping a failure to a located error.
pub fn parse<T: serde::de::DeserializeOwned>(file: &str, text: &str) -> Result<T, Located> {
    toml::from_str::<T>(text).map_err(|e| {
        // toml's message repeats the source excerpt over several lines; keep
        // only its first line, the position is given separately.
        let msg = e
            .message()
            .lines()
            .next()
            .unwrap_or("invalid TOML")
            .to_owned();
        locate(file, text, e.span(), msg)
    })
}

/// Finds the span of the value of `key` inside the table `[table]` (or at the
/// top when `table` is empty), for validation errors found after parsing.
/// A best-effort textual search: good enough to point people at the line.
pub fn find_key(text: &str, table: &str, key: &str) -> Option<std::ops::Range<usize>> {
    let mut in_table = table.is_empty();
    let mut offset = 0;
    for line in text.split_inclusive('\n') {
        let t = line.trim();
        if t.starts_with('[') {
            let name = t.trim_matches(|c| c == '[' || c == ']').trim();
            in_table = name == table;
        } else if in_table {
            if let Some(rest) = t.strip_prefix(key) {
                if rest.trim_start().starts_with('=') {
                    let indent = line.len() - line.trim_start().len();
                    return Some(offset + indent..offset + indent + key.len());
                }
            }
        }
        offset += line.len();
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Cfg {
        name: String,
        port: u16,
    }

    #[test]
    fn unknown_field_points_at_its_line_and_column() {
        let text = "name = \"a\"\n  prot = 5\n";
        let err = parse::<Cfg>("a.toml", text).unwrap_err();
        assert_eq!((err.line, err.column), (2, 3), "{err}");
        assert!(
            err.to_string()
                .starts_with("a.toml:2:3: unknown field `prot`"),
            "{err}"
        );
    }

    #[test]
    fn wrong_type_points_at_the_value() {
        let text = "name = \"a\"\nport = \"x\"\n";
        let err = parse::<Cfg>("b.toml", text).unwrap_err();
        assert_eq!(err.line, 2, "{err}");
    }

    #[test]
    fn line_col_counts_characters_not_bytes() {
        assert_eq!(line_col("名称 = 1\nx", 7), (1, 4));
        assert_eq!(line_col("a\nbc", 3), (2, 2));
    }

    #[test]
    fn find_key_in_table() {
        let text = "[a]\nx = 1\n[b]\nx = 2\n";
        let span = find_key(text, "b", "x").unwrap();
        assert_eq!(line_col(text, span.start), (4, 1));
    }
}

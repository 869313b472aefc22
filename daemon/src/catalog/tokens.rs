//! Tokenising a script a window at a time, so that memory follows the longest statement,
//! not the file (issue 25, finding 11: a 16 MiB file of `INSERT`s held about 35 bytes of
//! tokens per byte of text when tokenised whole).
//!
//! The `sqlparser` tokenizer reads left to right and each token depends only on the text
//! from its start to at most one character past its end, and on whether the token before it
//! is a word or a `.`. So the tokens of a window that the window's end did not cut are the
//! tokens of the whole text, and a window can end right after any `;` token that is not its
//! last: the next window starts there, after a token that is neither a word nor a `.`, as the
//! whole text's tokenizer would. A window whose end cuts a string, a quoted name or a comment
//! fails to tokenise at that construct, after every token before it: those before the last
//! `;` are kept. A window with no usable `;` doubles until one has it or it reaches the end
//! of the text, where an error is the text's own.

use sqlparser::tokenizer::{Location, Token, TokenWithSpan, Tokenizer};

use super::script::{ScriptError, sql_dialect};
use crate::model::DialectKind;

/// Bytes tokenised at once before a window is doubled (the first window's size).
const WINDOW_BYTES: usize = 256 * 1024;

/// Tokenises `sql` for `dialect` (raw strings, no unescaping) and hands `each` its tokens in
/// runs, in order, with the lines and columns of the whole text. Every run but the last
/// ends with a `;` token; together they are exactly the tokens of the whole text.
///
/// # Errors
/// [`ScriptError`] with the line and column of the text's first token that cannot be read,
/// such as an unterminated string, quoted name or block comment; `each` has then seen the
/// runs before it.
pub(super) fn each_run(
    sql: &str,
    dialect: DialectKind,
    mut each: impl FnMut(&[TokenWithSpan]),
) -> Result<(), ScriptError> {
    each_run_sized(sql, dialect, WINDOW_BYTES, &mut each)
}

/// [`each_run`] with a first window of `window` bytes.
fn each_run_sized(
    sql: &str,
    dialect: DialectKind,
    window: usize,
    each: &mut impl FnMut(&[TokenWithSpan]),
) -> Result<(), ScriptError> {
    let mut start = 0usize;
    // Where `start` is in the whole text: 1-based line and column (in characters).
    let mut at = Location::new(1, 1);
    let mut buf: Vec<TokenWithSpan> = Vec::new();
    let mut size = window.max(1);
    while start < sql.len() {
        let end = char_boundary(sql, start.saturating_add(size));
        let last = end == sql.len();
        buf.clear();
        let read = Tokenizer::new(sql_dialect(dialect), &sql[start..end])
            .with_unescape(false)
            .tokenize_with_location_into_buf(&mut buf);
        if last {
            shift(&mut buf, at);
            each(&buf);
            return read.map_err(|e| ScriptError {
                line: shifted(e.location, at).line,
                column: shifted(e.location, at).column,
                message: e.message,
            });
        }
        // After an error, every token in `buf` is whole; after success the last may be cut.
        let usable = if read.is_ok() {
            buf.len().saturating_sub(1)
        } else {
            buf.len()
        };
        match buf[..usable]
            .iter()
            .rposition(|t| t.token == Token::SemiColon)
        {
            Some(semi) => {
                buf.truncate(semi + 1);
                shift(&mut buf, at);
                let semi_end = buf[semi].span.end;
                start += byte_len(&sql[start..end], &buf[semi], at);
                at = semi_end;
                each(&buf);
                size = window.max(1);
            }
            None => size = size.saturating_mul(2),
        }
    }
    Ok(())
}

/// The first char boundary of `sql` at or after `at` (or its length).
fn char_boundary(sql: &str, at: usize) -> usize {
    (at.min(sql.len())..=sql.len())
        .find(|&i| sql.is_char_boundary(i))
        .unwrap_or(sql.len())
}

/// A location of a window that starts at `at` of the whole text, in the whole text.
fn shifted(l: Location, at: Location) -> Location {
    if l.line == 0 {
        return l;
    }
    let column = if l.line == 1 {
        l.column + at.column - 1
    } else {
        l.column
    };
    Location::new(l.line + at.line - 1, column)
}

fn shift(tokens: &mut [TokenWithSpan], at: Location) {
    if at == Location::new(1, 1) {
        return;
    }
    for t in tokens {
        t.span.start = shifted(t.span.start, at);
        t.span.end = shifted(t.span.end, at);
    }
}

/// The bytes of `window` (which starts at `at`) up to the end of `semi`, a `;` token whose
/// span is already in whole-text coordinates.
fn byte_len(window: &str, semi: &TokenWithSpan, at: Location) -> usize {
    let (line, column) = (semi.span.end.line, semi.span.end.column);
    let mut cursor = (at.line, at.column);
    let mut bytes = 0;
    for c in window.chars() {
        if cursor >= (line, column) {
            break;
        }
        bytes += c.len_utf8();
        cursor = if c == '\n' {
            (cursor.0 + 1, 1)
        } else {
            (cursor.0, cursor.1 + 1)
        };
    }
    bytes
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The runs of `sql` with windows of `window` bytes, joined.
    fn joined(
        sql: &str,
        dialect: DialectKind,
        window: usize,
    ) -> Result<Vec<TokenWithSpan>, String> {
        let mut all = Vec::new();
        let mut runs = Vec::new();
        each_run_sized(sql, dialect, window, &mut |run| {
            runs.push(run.len());
            all.extend_from_slice(run);
        })
        .map_err(|e| e.to_string())?;
        for run in &runs[..runs.len().saturating_sub(1)] {
            assert!(*run > 0);
        }
        Ok(all)
    }

    fn whole(sql: &str, dialect: DialectKind) -> Result<Vec<TokenWithSpan>, String> {
        Tokenizer::new(sql_dialect(dialect), sql)
            .with_unescape(false)
            .tokenize_with_location()
            .map_err(|e| {
                ScriptError {
                    line: e.location.line,
                    column: e.location.column,
                    message: e.message,
                }
                .to_string()
            })
    }

    /// Every window size gives the whole text's tokens, spans included, or its error.
    #[test]
    fn windows_of_every_size_give_the_whole_texts_tokens() {
        let scripts = [
            (
                DialectKind::Postgres,
                "CREATE TABLE é (a int); -- dash; comment\nINSERT INTO é VALUES (1, 'x;y', $$a;b$$);\n\
                 /* block; /* nested; */ */ SELECT E'it\\'s;', t.1; SELECT 2",
            ),
            (
                DialectKind::Mysql,
                "CREATE TRIGGER tr BEFORE UPDATE ON t FOR EACH ROW BEGIN SET NEW.a = 1; END;\n\
                 INSERT INTO t VALUES ('a\\';b'), (\"q;\"); # hash; comment\nSELECT `x;y` FROM t;",
            ),
            (
                DialectKind::Sqlite,
                "CREATE TABLE [a;b] (x);\nINSERT INTO \"a;b\" VALUES ('ü;');\n\n  SELECT 1;\n",
            ),
            (DialectKind::Postgres, "SELECT 1;\nSELECT 'oops;\nSELECT 3;"),
            (
                DialectKind::Postgres,
                "SELECT 1; /* never closed; SELECT 2;",
            ),
        ];
        for (dialect, sql) in scripts {
            let expected = whole(sql, dialect);
            for window in 1..=sql.len() + 1 {
                assert_eq!(
                    joined(sql, dialect, window),
                    expected,
                    "window {window} of {sql:?}"
                );
            }
        }
    }
}

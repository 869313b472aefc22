//! The `mysql`/`mariadb` client's `DELIMITER` command, read the way the client reads it.
//!
//! `DELIMITER //` on a line of its own, where a statement would start, makes `//` the
//! statement terminator until the next `DELIMITER ;`. The command is the client's: it is
//! never sent to the server, and neither is the terminator. The client finds a terminator
//! only outside quotes (`'`, `"`, `` ` ``, with backslash escapes in the first two) and
//! outside comments (`#`, `-- `, `/* */`; a `/*! … */` versioned comment is SQL to it), so
//! this scan keeps exactly that state and nothing more; the tokenizer does the rest.

use std::ops::Range;

use super::script::ScriptError;

/// What a script's `DELIMITER` commands do to it.
pub(super) struct Delimiters {
    /// The text for the tokenizer: the script with each `DELIMITER` line and each custom
    /// terminator blanked with spaces, so every byte offset, line and column is unchanged.
    pub(super) masked: String,
    /// Byte ranges that end the statement before them: each custom terminator and each
    /// `DELIMITER` line, in order.
    pub(super) cuts: Vec<Range<usize>>,
    /// Byte ranges under a custom terminator, where `;` is text, not an end.
    pub(super) custom: Vec<Range<usize>>,
}

/// The client's state between characters.
#[derive(Clone, Copy, PartialEq)]
enum Inside {
    Sql,
    Quote(u8),
    BlockComment,
}

/// Reads `sql`'s `DELIMITER` commands; `None` when it has none.
///
/// # Errors
/// A `DELIMITER` with no terminator after it, or one that holds a backslash (the client
/// refuses both) or a non-ASCII character (kept out so that blanking keeps columns).
pub(super) fn scan(sql: &str) -> Result<Option<Delimiters>, ScriptError> {
    if !sql.lines().any(|l| command_argument(l).is_some()) {
        return Ok(None);
    }
    let mut delimiter = ";".to_owned();
    let mut cuts = Vec::new();
    let mut custom = Vec::new();
    let mut custom_start: Option<usize> = None;
    let mut inside = Inside::Sql;
    // Only whitespace and comments since the last terminator: the client's buffer is empty.
    let mut at_start = true;
    let mut line_start = 0usize;
    for (number, line) in sql.split('\n').enumerate() {
        let here = line_start;
        line_start += line.len() + 1;
        if let Some(argument) = command_argument(line).filter(|_| at_start && inside == Inside::Sql)
        {
            let new = terminator(argument).map_err(|message| ScriptError {
                line: number as u64 + 1,
                column: (line.len() - line.trim_start().len()) as u64 + 1,
                message: message.into(),
            })?;
            cuts.push(here..here + line.len());
            if let Some(start) = custom_start.take() {
                custom.push(start..here);
            }
            if new != ";" {
                custom_start = Some(here + line.len());
            }
            delimiter = new;
            continue;
        }
        let bytes = line.as_bytes();
        let mut i = 0;
        while i < bytes.len() {
            let rest = &bytes[i..];
            match inside {
                Inside::Quote(q) => {
                    if rest[0] == b'\\' && q != b'`' {
                        i += 1;
                    } else if rest[0] == q {
                        inside = Inside::Sql;
                    }
                    i += 1;
                }
                Inside::BlockComment => {
                    if rest.starts_with(b"*/") {
                        inside = Inside::Sql;
                        i += 1;
                    }
                    i += 1;
                }
                Inside::Sql if rest.starts_with(delimiter.as_bytes()) => {
                    if delimiter != ";" {
                        cuts.push(here + i..here + i + delimiter.len());
                    }
                    at_start = true;
                    i += delimiter.len();
                }
                Inside::Sql if rest[0] == b'#' || line_comment(rest) => break,
                Inside::Sql if rest.starts_with(b"/*") && !rest.starts_with(b"/*!") => {
                    inside = Inside::BlockComment;
                    i += 2;
                }
                Inside::Sql => {
                    if matches!(rest[0], b'\'' | b'"' | b'`') {
                        inside = Inside::Quote(rest[0]);
                    }
                    at_start &= rest[0].is_ascii_whitespace();
                    i += 1;
                }
            }
        }
    }
    if let Some(start) = custom_start {
        custom.push(start..sql.len());
    }
    let mut masked = sql.as_bytes().to_vec();
    for cut in &cuts {
        masked[cut.clone()].fill(b' ');
    }
    // Every cut covers whole characters (a whole line, or an ASCII terminator).
    let masked = String::from_utf8(masked).map_err(|e| ScriptError {
        line: 1,
        column: 1,
        message: format!("blanking DELIMITER commands: {e}"),
    })?;
    Ok(Some(Delimiters {
        masked,
        cuts,
        custom,
    }))
}

/// `-- ` starts a comment in MySQL only when whitespace (or the line's end) follows.
fn line_comment(rest: &[u8]) -> bool {
    rest.starts_with(b"--") && rest.get(2).is_none_or(u8::is_ascii_whitespace)
}

/// The rest of `line` after `DELIMITER` when the line is that command.
fn command_argument(line: &str) -> Option<&str> {
    let line = line.trim_start();
    let word = line.get(..9)?;
    let rest = &line[9..];
    (word.eq_ignore_ascii_case("delimiter") && rest.chars().next().is_none_or(char::is_whitespace))
        .then_some(rest)
}

/// The terminator a `DELIMITER` command sets: its first word, or a quoted string.
fn terminator(argument: &str) -> Result<String, &'static str> {
    let argument = argument.trim();
    let word = match argument.chars().next() {
        Some(q @ ('\'' | '"' | '`')) => argument[1..].split(q).next().unwrap_or_default(),
        _ => argument.split_whitespace().next().unwrap_or_default(),
    };
    if word.is_empty() {
        Err("DELIMITER must be followed by a terminator, such as `DELIMITER //`")
    } else if word.contains('\\') {
        Err("a DELIMITER terminator cannot hold a backslash")
    } else if !word.is_ascii() {
        Err("a DELIMITER terminator must be ASCII")
    } else {
        Ok(word.to_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn terminators_inside_quotes_and_comments_are_text() {
        let sql =
            "DELIMITER //\nSELECT '//', \"//\", `a//b` # //\n/* // */ -- //\n//\ndelimiter ;\n";
        let d = scan(sql).unwrap().unwrap();
        let cut: Vec<&str> = d.cuts.iter().map(|c| &sql[c.clone()]).collect();
        assert_eq!(cut, ["DELIMITER //", "//", "delimiter ;"]);
        assert_eq!(d.custom.len(), 1);
        assert_eq!(d.masked.len(), sql.len());
        assert!(!d.masked.contains("DELIMITER") && !d.masked.contains("delimiter"));
    }

    #[test]
    fn a_delimiter_line_inside_a_statement_or_string_is_not_a_command() {
        let sql = "SELECT 'a\nDELIMITER //\n';\nSELECT\ndelimiter FROM t;\n";
        let d = scan(sql).unwrap();
        assert!(d.is_some_and(|d| d.cuts.is_empty() && d.custom.is_empty()));
        assert!(scan("SELECT 1;\n").unwrap().is_none());
    }

    #[test]
    fn bad_terminators_are_refused_with_their_line() {
        let err = scan("SELECT 1;\n  DELIMITER\n").err().unwrap();
        assert_eq!((err.line, err.column), (2, 3), "{err}");
        assert!(scan("DELIMITER \\\\\n").is_err());
        assert_eq!(terminator(" '$$' rest").unwrap(), "$$");
    }
}

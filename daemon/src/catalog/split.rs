//! Splitting a tokenised script into statements, and refusing what only a client could run.
//!
//! A statement ends at a `;` outside parentheses and outside bodies, or at a cut (a custom
//! MySQL terminator or a `DELIMITER` line, from [`super::delimiter`]). A body opens on
//! `BEGIN` where it starts one (inside `CREATE TRIGGER`, `PROCEDURE`, `FUNCTION` or
//! `EVENT`, before `ATOMIC`, or inside another body) and on `CASE`; `END` closes one,
//! except `END IF`, `END LOOP`, `END WHILE` and `END REPEAT` (never counted, as those
//! blocks only sit inside a body), and `END CASE` closes its `CASE`. A word is a keyword
//! only where it can be one: unquoted and not after a `.` (`sub.case`, `t.end`).

use std::ops::Range;

use sqlparser::{
    keywords::Keyword,
    tokenizer::{Token, TokenWithSpan, Whitespace},
};

use super::script::ScriptError;
use crate::model::StatementSpan;

/// One statement found by [`split`].
pub(super) struct Piece {
    pub(super) span: StatementSpan,
    /// It is `BEGIN`, `START TRANSACTION`, `COMMIT`, `END`, `ABORT` or `ROLLBACK`.
    pub(super) transaction_control: bool,
    /// It is `COPY … FROM STDIN` (PostgreSQL): its rows would come from a client.
    pub(super) copy_from_stdin: bool,
}

/// Where statements end besides a top-level `;`.
#[derive(Default)]
pub(super) struct Cuts<'a> {
    /// Byte ranges that end the statement before them; not part of any statement.
    pub(super) cuts: &'a [Range<usize>],
    /// Byte ranges where `;` is text.
    pub(super) custom: &'a [Range<usize>],
}

/// The token `t` as a keyword: unquoted, and not a name after `.`.
fn keyword(t: &Token, prev: Option<&Token>) -> Option<Keyword> {
    match (t, prev) {
        (_, Some(Token::Period)) => None,
        (Token::Word(w), _) if w.quote_style.is_none() => Some(w.keyword),
        _ => None,
    }
}

fn word_is(token: Option<&Token>, words: &[&str]) -> bool {
    match token {
        Some(Token::Word(w)) if w.quote_style.is_none() => {
            words.iter().any(|k| w.value.eq_ignore_ascii_case(k))
        }
        _ => false,
    }
}

/// The statement being read.
#[derive(Default)]
struct State<'t> {
    first: Option<&'t TokenWithSpan>,
    /// Open bodies (`BEGIN`, `CASE`).
    depth: usize,
    /// Open parentheses.
    parens: usize,
    routine: bool,
    transaction_control: bool,
    copy: bool,
    copy_from_stdin: bool,
    end_case: bool,
}

/// Splits `sql`, whose `tokens` the tokenizer read, at top-level `;` and at `cuts`.
pub(super) fn split(sql: &str, tokens: &[TokenWithSpan], cuts: &Cuts<'_>) -> Vec<Piece> {
    let mut offsets = Offsets::new(sql);
    let sig: Vec<&TokenWithSpan> = tokens
        .iter()
        .filter(|t| !matches!(t.token, Token::Whitespace(_)))
        .collect();
    let mut pieces = Vec::new();
    let mut start = 0usize;
    let mut s = State::default();
    let mut next_cut = cuts.cuts.iter().peekable();
    let mut push = |start: usize, end: usize, s: &State<'_>| {
        let Some(first) = s.first else { return };
        let text = &sql[start..end];
        let lead = text.len() - text.trim_start().len();
        let trail = text.len() - text.trim_end().len();
        pieces.push(Piece {
            span: StatementSpan {
                bytes: start + lead..end - trail,
                line: first.span.start.line,
                column: first.span.start.column,
            },
            transaction_control: s.transaction_control,
            copy_from_stdin: s.copy_from_stdin,
        });
    };
    for (i, t) in sig.iter().enumerate() {
        let at = offsets.byte(t.span.start.line, t.span.start.column);
        while let Some(cut) = next_cut.next_if(|c| c.start <= at) {
            push(start, cut.start, &s);
            start = cut.end;
            s = State::default();
        }
        let prev = i.checked_sub(1).map(|p| &sig[p].token);
        let next = sig.get(i + 1).map(|n| &n.token);
        let custom = cuts.custom.iter().any(|r| r.contains(&at));
        if let (Token::SemiColon, 0, 0, false) = (&t.token, s.depth, s.parens, custom) {
            push(start, at, &s);
            start = at + 1;
            s = State::default();
            continue;
        }
        let kw = keyword(&t.token, prev);
        if s.first.is_none() {
            s.first = Some(t);
            s.copy = kw == Some(Keyword::COPY);
            s.transaction_control = match kw {
                Some(Keyword::COMMIT | Keyword::END | Keyword::ABORT) => true,
                Some(Keyword::ROLLBACK) => !word_is(next, &["TO"]),
                Some(Keyword::START) => word_is(next, &["TRANSACTION"]),
                Some(Keyword::BEGIN) => true,
                _ => false,
            };
        }
        let create = s
            .first
            .is_some_and(|f| keyword(&f.token, None) == Some(Keyword::CREATE));
        match (&t.token, kw) {
            (Token::LParen, _) => s.parens += 1,
            (Token::RParen, _) => s.parens = s.parens.saturating_sub(1),
            (_, Some(Keyword::STDIN)) if s.copy && s.parens == 0 && word_is(prev, &["FROM"]) => {
                s.copy_from_stdin = true;
            }
            (
                _,
                Some(Keyword::TRIGGER | Keyword::PROCEDURE | Keyword::FUNCTION | Keyword::EVENT),
            ) if create => s.routine = true,
            (_, Some(Keyword::BEGIN)) if s.depth > 0 || s.routine || word_is(next, &["ATOMIC"]) => {
                s.depth += 1;
            }
            (_, Some(Keyword::CASE)) if s.end_case => s.end_case = false,
            (_, Some(Keyword::CASE)) => s.depth += 1,
            (_, Some(Keyword::END)) if !word_is(next, &["IF", "LOOP", "WHILE", "REPEAT"]) => {
                s.depth = s.depth.saturating_sub(1);
                s.end_case = word_is(next, &["CASE"]);
            }
            _ => {}
        }
    }
    let end = next_cut.next().map_or(sql.len(), |c| c.start);
    push(start, end, &s);
    pieces
}

/// The first psql meta-command of `tokens` (PostgreSQL): a `\` that opens a line, outside
/// strings and comments (`\connect`, `\i`, `\set`, `\.`). Only psql runs them.
pub(super) fn meta_command(tokens: &[TokenWithSpan]) -> Option<ScriptError> {
    let mut line_open = true;
    for t in tokens {
        match &t.token {
            Token::Backslash if line_open => {
                return Some(ScriptError {
                    line: t.span.start.line,
                    column: t.span.start.column,
                    message: "a psql meta-command (a line starting with `\\`): only psql \
                              runs these; write the SQL they stand for"
                        .into(),
                });
            }
            Token::Whitespace(Whitespace::Space | Whitespace::Tab) => {}
            Token::Whitespace(Whitespace::Newline | Whitespace::SingleLineComment { .. }) => {
                line_open = true;
            }
            _ => line_open = false,
        }
    }
    None
}

/// Maps the tokenizer's (line, column in characters) to byte offsets. Queries come in
/// ascending order, so a cursor that only moves forward keeps the whole split linear in the
/// length of the script, however long its lines.
pub(super) struct Offsets<'a> {
    sql: &'a str,
    /// The cursor: its 1-based line and column, and its byte offset.
    line: u64,
    column: u64,
    byte: usize,
}

impl<'a> Offsets<'a> {
    pub(super) fn new(sql: &'a str) -> Self {
        Self {
            sql,
            line: 1,
            column: 1,
            byte: 0,
        }
    }

    /// The byte offset of (`line`, `column`); at or after the previous query.
    pub(super) fn byte(&mut self, line: u64, column: u64) -> usize {
        let mut chars = self.sql[self.byte..].chars();
        while (self.line, self.column) < (line, column) {
            let Some(c) = chars.next() else { break };
            self.byte += c.len_utf8();
            if c == '\n' {
                (self.line, self.column) = (self.line + 1, 1);
            } else {
                self.column += 1;
            }
        }
        self.byte
    }
}

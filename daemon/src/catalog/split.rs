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
struct State {
    /// Where its first token starts (line, column), and whether that token is `CREATE`.
    first: Option<(u64, u64)>,
    create: bool,
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

/// Splits a script at top-level `;` and at cuts, from its tokens fed in runs
/// ([`super::tokens::each_run`]), so the tokens of the whole script are never held at once.
pub(super) struct Splitter<'a> {
    sql: &'a str,
    cuts: Cuts<'a>,
    /// The first cut not yet passed.
    next_cut: usize,
    offsets: Offsets<'a>,
    /// Where the statement being read starts (bytes).
    start: usize,
    s: State,
    pieces: Vec<Piece>,
}

impl<'a> Splitter<'a> {
    /// A splitter of `sql` (the tokenizer's text) that also ends statements at `cuts`.
    pub(super) fn new(sql: &'a str, cuts: Cuts<'a>) -> Self {
        Self {
            sql,
            cuts,
            next_cut: 0,
            offsets: Offsets::new(sql),
            start: 0,
            s: State::default(),
            pieces: Vec::new(),
        }
    }

    /// Reads the next run of `sql`'s tokens. Each run but the last must end with a `;`
    /// token: a keyword's neighbours are then always in the same run (a `;` is neither a
    /// word nor a `.`, so it changes no neighbour's reading).
    pub(super) fn feed(&mut self, tokens: &[TokenWithSpan]) {
        let sig: Vec<&TokenWithSpan> = tokens
            .iter()
            .filter(|t| !matches!(t.token, Token::Whitespace(_)))
            .collect();
        for (i, t) in sig.iter().enumerate() {
            let at = self.offsets.byte(t.span.start.line, t.span.start.column);
            let cuts = self.cuts.cuts;
            while let Some(cut) = cuts.get(self.next_cut).filter(|c| c.start <= at) {
                self.push(cut.start);
                self.next_cut += 1;
                self.start = cut.end;
            }
            let prev = i.checked_sub(1).map(|p| &sig[p].token);
            let next = sig.get(i + 1).map(|n| &n.token);
            let custom = self.cuts.custom.iter().any(|r| r.contains(&at));
            if let (Token::SemiColon, 0, 0, false) = (&t.token, self.s.depth, self.s.parens, custom)
            {
                self.push(at);
                self.start = at + 1;
                continue;
            }
            let s = &mut self.s;
            let kw = keyword(&t.token, prev);
            if s.first.is_none() {
                s.first = Some((t.span.start.line, t.span.start.column));
                s.create = kw == Some(Keyword::CREATE);
                s.copy = kw == Some(Keyword::COPY);
                s.transaction_control = match kw {
                    Some(Keyword::COMMIT | Keyword::END | Keyword::ABORT) => true,
                    Some(Keyword::ROLLBACK) => !word_is(next, &["TO"]),
                    Some(Keyword::START) => word_is(next, &["TRANSACTION"]),
                    Some(Keyword::BEGIN) => true,
                    _ => false,
                };
            }
            match (&t.token, kw) {
                (Token::LParen, _) => s.parens += 1,
                (Token::RParen, _) => s.parens = s.parens.saturating_sub(1),
                (_, Some(Keyword::STDIN))
                    if s.copy && s.parens == 0 && word_is(prev, &["FROM"]) =>
                {
                    s.copy_from_stdin = true;
                }
                (
                    _,
                    Some(
                        Keyword::TRIGGER | Keyword::PROCEDURE | Keyword::FUNCTION | Keyword::EVENT,
                    ),
                ) if s.create => s.routine = true,
                (_, Some(Keyword::BEGIN))
                    if s.depth > 0 || s.routine || word_is(next, &["ATOMIC"]) =>
                {
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
    }

    /// The statements, once every token was fed.
    pub(super) fn finish(mut self) -> Vec<Piece> {
        let end = self
            .cuts
            .cuts
            .get(self.next_cut)
            .map_or(self.sql.len(), |c| c.start);
        self.push(end);
        self.pieces
    }

    /// Ends the statement being read at byte `end` (kept when it has a token), and starts
    /// the next.
    fn push(&mut self, end: usize) {
        let s = std::mem::take(&mut self.s);
        let Some((line, column)) = s.first else {
            return;
        };
        let text = &self.sql[self.start..end];
        let lead = text.len() - text.trim_start().len();
        let trail = text.len() - text.trim_end().len();
        self.pieces.push(Piece {
            span: StatementSpan {
                bytes: self.start + lead..end - trail,
                line,
                column,
            },
            transaction_control: s.transaction_control,
            copy_from_stdin: s.copy_from_stdin,
        });
    }
}

/// Finds a script's first psql meta-command (PostgreSQL): a `\` that opens a line,
/// outside strings and comments (`\connect`, `\i`, `\set`, `\.`). Only psql runs them.
/// Fed the script's tokens in runs, in order.
pub(super) struct MetaCommands {
    /// Only spaces and tabs since the last newline (or the start).
    line_open: bool,
    found: Option<ScriptError>,
}

impl Default for MetaCommands {
    fn default() -> Self {
        Self {
            line_open: true,
            found: None,
        }
    }
}

impl MetaCommands {
    /// Reads the next run of tokens.
    pub(super) fn feed(&mut self, tokens: &[TokenWithSpan]) {
        for t in tokens {
            if self.found.is_some() {
                return;
            }
            match &t.token {
                Token::Backslash if self.line_open => {
                    self.found = Some(ScriptError {
                        line: t.span.start.line,
                        column: t.span.start.column,
                        message: "a psql meta-command (a line starting with `\\`): only psql \
                                  runs these; write the SQL they stand for"
                            .into(),
                    });
                }
                Token::Whitespace(Whitespace::Space | Whitespace::Tab) => {}
                Token::Whitespace(Whitespace::Newline | Whitespace::SingleLineComment { .. }) => {
                    self.line_open = true;
                }
                _ => self.line_open = false,
            }
        }
    }

    /// The first meta-command fed, if any.
    pub(super) fn first(self) -> Option<ScriptError> {
        self.found
    }
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

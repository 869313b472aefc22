//! Items in as few requests as possible. The engine hands a session a list of [`Item`]s
//! (statements, the session's reset, history rows); the session renders each into its
//! statements, joins them into requests of at most its batch limit, and when the server
//! stops at an error, says which item failed and where in it ([`ItemError`]).
//!
//! Which item failed is known from the server's own report, never from a count kept
//! elsewhere: the statements completed before the error (the server runs a request's
//! statements in order and stops at the first failure), or, where PostgreSQL places the
//! error in the request (its `position`, in characters, 1-based), the item holding that
//! character. PostgreSQL parses a whole multi-statement request before running any of it
//! (PostgreSQL docs, 55.2.2.1 "Multiple Statements in a Simple Query"), so a syntax error in
//! a script's tenth statement fails the request with nothing done: only the position names
//! the statement.

use crate::model::RecordWrite;

pub(crate) use super::history::Timing;

/// Separates statements in a request. The `;` stands on a line of its own so that a
/// statement ending in a `--` comment cannot swallow it.
pub(super) const SEPARATOR: &str = "\n;\n";

/// One thing for a session to run.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Item<'a> {
    /// One statement, sent as it is: a script's statement, `BEGIN`, `COMMIT`, the lock check.
    Sql(&'a str),
    /// Returns the session to its state right after connecting (session variables,
    /// `search_path`, temporary tables, prepared statements, cursors), then runs
    /// `session_init` again; nothing where sessions are not reset in place
    /// ([`crate::model::Capabilities::resets_in_place`]).
    Reset,
    /// A history row and its log row (DESIGN.md rule 5).
    Record(&'a RecordWrite, Timing),
    /// The history row alone, its times the engine's: a `running` row's progress, which is
    /// no change of state.
    Progress(&'a RecordWrite),
    /// The log row alone: a failure that leaves the history row as it was (a transactional
    /// `down` that rolled back keeps its `applied` row).
    Log(&'a RecordWrite),
}

/// A run of items that stopped at a failing one. Items before it completed; nothing after
/// it ran.
#[derive(Debug)]
pub(crate) struct ItemError {
    /// The failing item, 0-based.
    pub(crate) index: usize,
    /// Where in that item's text the server placed the error, in characters from its start,
    /// when it did (PostgreSQL).
    pub(crate) at: Option<usize>,
    /// The server's error.
    pub(crate) source: sqlx::Error,
    /// The item gave up waiting for a lock under the guard's timeout: nothing of it
    /// happened, and it may be tried again (DESIGN.md rule 7).
    pub(crate) lock_timeout: bool,
}

impl ItemError {
    /// True when the connection itself broke, so the session is unusable and whatever it
    /// held on the server (a transaction, a lock) is gone with it.
    pub(crate) fn connection_lost(&self) -> bool {
        super::connection_lost(&self.source)
    }
}

/// One item's share of a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Span {
    /// The item.
    pub(super) item: usize,
    /// Its statements in the request: the first's number (0-based) and how many.
    pub(super) first: u64,
    pub(super) statements: u64,
    /// Its text's bytes in the request.
    pub(super) bytes: std::ops::Range<usize>,
}

/// Rendered items joined into one request.
#[derive(Debug, Default)]
pub(super) struct Request {
    pub(super) text: String,
    pub(super) spans: Vec<Span>,
    statements: u64,
}

impl Request {
    fn push(&mut self, item: usize, text: &str, statements: u64) {
        if statements == 0 {
            return;
        }
        if !self.text.is_empty() {
            self.text.push_str(SEPARATOR);
        }
        let start = self.text.len();
        self.text.push_str(text);
        self.spans.push(Span {
            item,
            first: self.statements,
            statements,
            bytes: start..self.text.len(),
        });
        self.statements += statements;
    }

    /// The item that failed after `done` statements completed, or at character `position`
    /// (1-based, in the whole request) when the server gave one; and where in the item.
    pub(super) fn locate(&self, done: u64, position: Option<usize>) -> (usize, Option<usize>) {
        let by_position = position.and_then(|p| {
            let (byte, _) = self.text.char_indices().nth(p.checked_sub(1)?)?;
            let span = self.spans.iter().find(|s| s.bytes.contains(&byte))?;
            let at = self.text[span.bytes.start..byte].chars().count();
            Some((span.item, Some(at)))
        });
        by_position.unwrap_or_else(|| {
            let span = self
                .spans
                .iter()
                .find(|s| done < s.first + s.statements)
                .or(self.spans.last());
            (span.map_or(0, |s| s.item), None)
        })
    }
}

/// `rendered` (each item's text and statement count, in order) packed into requests of at
/// most `limit` bytes, split between items; an item larger than `limit` goes alone.
pub(super) fn pack(rendered: &[(String, u64)], limit: usize) -> Vec<Request> {
    let mut requests = Vec::new();
    let mut request = Request::default();
    for (i, (text, n)) in rendered.iter().enumerate() {
        if !request.text.is_empty() && request.text.len() + SEPARATOR.len() + text.len() > limit {
            requests.push(std::mem::take(&mut request));
        }
        request.push(i, text, *n);
    }
    if !request.spans.is_empty() {
        requests.push(request);
    }
    requests
}

#[cfg(test)]
mod tests {
    use super::*;

    fn items(texts: &[(&str, u64)]) -> Vec<(String, u64)> {
        texts.iter().map(|(t, n)| ((*t).to_owned(), *n)).collect()
    }

    #[test]
    fn a_count_names_the_item_holding_the_failing_statement() {
        let rendered = items(&[
            ("BEGIN", 1),
            ("a", 1),
            ("h1;\nl1", 2),
            ("", 0),
            ("COMMIT", 1),
        ]);
        let requests = pack(&rendered, 1 << 20);
        assert_eq!(requests.len(), 1);
        let r = &requests[0];
        assert_eq!(r.text, "BEGIN\n;\na\n;\nh1;\nl1\n;\nCOMMIT");
        assert_eq!(r.locate(0, None), (0, None));
        assert_eq!(r.locate(1, None), (1, None));
        assert_eq!(r.locate(2, None), (2, None));
        assert_eq!(r.locate(3, None), (2, None));
        assert_eq!(r.locate(4, None), (4, None));
    }

    #[test]
    fn a_position_names_the_item_and_the_character_in_it() {
        // PostgreSQL parses the whole request first: nothing done, the position tells.
        let rendered = items(&[
            ("BEGIN", 1),
            ("CREATE TABLE t (a int)", 1),
            ("ALTER x DROP", 1),
        ]);
        let r = &pack(&rendered, 1 << 20)[0];
        let drop = r.text.find("DROP").unwrap();
        let position = r.text[..drop].chars().count() + 1;
        assert_eq!(r.locate(0, Some(position)), (2, Some(8)));
    }

    #[test]
    fn requests_split_between_items_at_the_limit() {
        let rendered = items(&[("aaaa", 1), ("bbbb", 1), ("cccccccccccc", 1), ("d", 1)]);
        let requests = pack(&rendered, 12);
        let texts: Vec<&str> = requests.iter().map(|r| r.text.as_str()).collect();
        assert_eq!(texts, ["aaaa\n;\nbbbb", "cccccccccccc", "d"]);
        assert_eq!(requests[2].spans[0].item, 3);
        assert_eq!(requests[2].locate(0, None), (3, None));
    }
}

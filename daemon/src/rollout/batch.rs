//! A transaction in as few requests as possible: the session's reset, `BEGIN`, each part's
//! statements followed by its history writes, and `COMMIT`, joined into requests of at most
//! [`Session::batch_limit`] bytes. A small migration is one request, one round trip; a large
//! one is split at statement boundaries so no request, and no server-side parse, grows with
//! the file.
//!
//! With a lock check ([`crate::dialect::LockCheck`]), the check runs just before `COMMIT`,
//! so a transaction commits only while the tenant lock is held.
//!
//! The reset comes first and, sent with `BEGIN` in one request, joins the transaction
//! (PostgreSQL docs, 55.2.2.1 "Multiple Statements in a Simple Query"), so a migration
//! costs one commit. The server runs a request's statements in order and stops at the first
//! failure; counting the statements that completed tells exactly which one failed
//! ([`Failed`]).

use crate::dialect::{BatchError, Session};

/// Separates statements in a request. The `;` stands on a line of its own so that a
/// statement ending in a `--` comment cannot swallow it.
const SEPARATOR: &str = "\n;\n";

/// One migration's share of a transaction: its statements and the history writes that
/// follow them.
pub(super) struct Part<'a> {
    /// The script's statements, in order.
    pub(super) statements: Vec<std::borrow::Cow<'a, str>>,
    /// The history writes (`Session::record_sql`): statements that count as [`TRAILER`].
    pub(super) trailer: String,
}

/// Statements in a part's trailer: the history upsert and the log insert.
const TRAILER: u64 = 2;

/// Where a transaction stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Position {
    /// The reset before `BEGIN`, or `BEGIN` itself: nothing of the script ran.
    Begin,
    /// Statement `index` (0-based) of part `part`.
    Statement {
        /// The part.
        part: usize,
        /// The statement within the part.
        index: usize,
    },
    /// The history writes of part `part`.
    Trailer {
        /// The part.
        part: usize,
    },
    /// The lock check before `COMMIT`: the tenant lock is gone.
    LockCheck,
    /// `COMMIT`: a deferred constraint failed, and the server rolled back.
    Commit,
}

/// A transaction that stopped: where, and the server's error.
pub(super) struct Failed {
    pub(super) at: Position,
    pub(super) error: BatchError,
}

/// Runs `reset`'s statements (if any), then `parts` and `check` (if any) in one transaction
/// on `session`, in requests of at most `session.batch_limit()` bytes.
pub(super) async fn run_transaction(
    session: &mut dyn Session,
    reset: Option<&[String]>,
    parts: &[Part<'_>],
    check: Option<&str>,
) -> Result<(), Failed> {
    let limit = session.batch_limit();
    let reset = reset.unwrap_or_default();
    let mut items: Vec<&str> = reset.iter().map(String::as_str).collect();
    items.push("BEGIN");
    for part in parts {
        items.extend(part.statements.iter().map(|s| s.as_ref()));
        items.push(&part.trailer);
    }
    items.extend(check);
    items.push("COMMIT");
    let mut done = 0u64;
    let mut request = String::new();
    for (i, item) in items.iter().enumerate() {
        if !request.is_empty() {
            request.push_str(SEPARATOR);
        }
        request.push_str(item);
        let last = i + 1 == items.len();
        if last || request.len() + items[i + 1].len() > limit {
            match session.execute_batch(&request).await {
                Ok(n) => done += n,
                Err(error) => {
                    let done = (done + error.done).saturating_sub(reset.len() as u64);
                    let at = position(parts, check.is_some(), done);
                    return Err(Failed { at, error });
                }
            }
            request.clear();
        }
    }
    Ok(())
}

/// The position of the statement that comes after `done` completed ones, counted from
/// `BEGIN` (a failing reset counts as `BEGIN`); `checked` when a lock check precedes
/// `COMMIT`.
fn position(parts: &[Part<'_>], checked: bool, done: u64) -> Position {
    if done == 0 {
        return Position::Begin;
    }
    let mut at = done - 1;
    for (p, part) in parts.iter().enumerate() {
        let n = part.statements.len() as u64;
        if at < n {
            return Position::Statement {
                part: p,
                index: at as usize,
            };
        }
        at -= n;
        if at < TRAILER {
            return Position::Trailer { part: p };
        }
        at -= TRAILER;
    }
    match (checked, at) {
        (true, 0) => Position::LockCheck,
        _ => Position::Commit,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_map_to_the_failing_statement() {
        let parts = [
            Part {
                statements: vec!["a".into(), "b".into()],
                trailer: "h1; l1".into(),
            },
            Part {
                statements: vec!["c".into()],
                trailer: "h2; l2".into(),
            },
        ];
        let at = |done| position(&parts, false, done);
        assert_eq!(at(0), Position::Begin);
        assert_eq!(at(1), Position::Statement { part: 0, index: 0 });
        assert_eq!(at(2), Position::Statement { part: 0, index: 1 });
        assert_eq!(at(3), Position::Trailer { part: 0 });
        assert_eq!(at(4), Position::Trailer { part: 0 });
        assert_eq!(at(5), Position::Statement { part: 1, index: 0 });
        assert_eq!(at(6), Position::Trailer { part: 1 });
        assert_eq!(at(8), Position::Commit);
        let checked = |done| position(&parts, true, done);
        assert_eq!(checked(6), Position::Trailer { part: 1 });
        assert_eq!(checked(8), Position::LockCheck);
        assert_eq!(checked(9), Position::Commit);
    }
}

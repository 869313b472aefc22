//! Parsing a statement with sqlparser without letting it take the daemon down (issue 25,
//! finding 7): on a thread with a known, large stack, and not at all past a size.

use sqlparser::{ast::Statement, parser::Parser};

/// Statements longer than this are not parsed (an `unparsed` note): sqlparser's recursion
/// limit does not bound the depth of a long chain of binary operators (`1 + 1 + …`), whose
/// tree is as deep as the chain is long, and walking or dropping it recurses.
const MAX_PARSED_STATEMENT_BYTES: usize = 1 << 20;

/// The stack of the thread that parses: enough for the deepest tree a statement of
/// [`MAX_PARSED_STATEMENT_BYTES`] makes (reserved, not committed, until used).
const PARSER_STACK_BYTES: usize = 512 << 20;

/// `f` on a thread of its own with a [`PARSER_STACK_BYTES`] stack (issue 25, finding 7: a
/// 140 KB statement overflowed a runtime worker's 2 MiB stack and aborted the daemon); `None`
/// when that thread cannot start or panics.
pub(super) fn on_parser_stack<T: Send>(f: impl FnOnce() -> T + Send) -> Option<T> {
    std::thread::scope(|scope| {
        std::thread::Builder::new()
            .name("avocet-parse".into())
            .stack_size(PARSER_STACK_BYTES)
            .spawn_scoped(scope, f)
            .ok()?
            .join()
            .ok()
    })
}

/// The statements of `text`, or `None` when it is too long to parse or does not parse.
pub(super) fn parse(
    parser: &dyn sqlparser::dialect::Dialect,
    text: &str,
) -> Option<Vec<Statement>> {
    if text.len() > MAX_PARSED_STATEMENT_BYTES {
        return None;
    }
    Parser::parse_sql(parser, text).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The deepest statement that is still parsed (`1+1+…` just under the limit: 524,000
    /// terms) parses, walks and drops on the parser's stack.
    #[test]
    fn the_deepest_parsed_statement_fits_the_stack() {
        let terms = (MAX_PARSED_STATEMENT_BYTES - 16) / 2;
        let text = format!("SELECT {}1", "1+".repeat(terms));
        let dialect = sqlparser::dialect::PostgreSqlDialect {};
        let parsed = on_parser_stack(|| parse(&dialect, &text).map(|s| s.len()));
        assert_eq!(parsed, Some(Some(1)));
        let longer = format!("SELECT {}1", "1+".repeat(terms + 16));
        assert_eq!(
            on_parser_stack(|| parse(&dialect, &longer).is_none()),
            Some(true)
        );
    }
}

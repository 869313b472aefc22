//! One SQL script (an `up` or a `down`): normalised text, checksum, statements, markers.

use sha2::{Digest, Sha256};
use sqlparser::{
    dialect::{Dialect as SqlDialect, MySqlDialect, PostgreSqlDialect, SQLiteDialect},
    keywords::Keyword,
    tokenizer::{Token, TokenWithSpan, Tokenizer},
};

use crate::dialect::DialectKind;

/// Line comments that move a script out of the per-migration transaction
/// (DESIGN.md rule 2). The second is sqlx's spelling, accepted for compatibility.
const NO_TRANSACTION_MARKERS: [&str; 2] = ["-- avocet:no-transaction", "-- no-transaction"];

/// A script ready to run: its normalised text and what the tokenizer found in it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Script {
    /// The text with CRLF turned into LF and any UTF-8 byte-order mark removed.
    pub sql: String,
    /// Lowercase hex SHA-256 (64 characters) of [`Script::sql`].
    pub checksum: String,
    /// The statements in order, without their terminating `;`; comment-only pieces are left
    /// out, so an empty or comment-only script has none and runs as a successful no-op.
    pub statements: Vec<String>,
    /// True when a leading comment line is `-- avocet:no-transaction` or `-- no-transaction`.
    pub no_transaction: bool,
    /// True when a statement drops or truncates a table, column, schema or database.
    pub destructive: bool,
}

/// Why a script could not be read.
#[derive(Debug, thiserror::Error)]
#[error("line {line}, column {column}: {message}")]
pub struct ScriptError {
    /// 1-based line of the offending token.
    pub line: u64,
    /// 1-based column (in characters) of the offending token.
    pub column: u64,
    /// The tokenizer's description, e.g. `Unterminated string literal`.
    pub message: String,
}

/// Strips a UTF-8 byte-order mark and turns CRLF into LF, so a checkout on Windows or an
/// editor's BOM never changes a checksum.
pub fn normalise(raw: &str) -> String {
    raw.strip_prefix('\u{feff}')
        .unwrap_or(raw)
        .replace("\r\n", "\n")
}

/// Lowercase hex SHA-256 of `text` (FIPS 180-4).
pub fn checksum(text: &str) -> String {
    hex::encode(Sha256::digest(text.as_bytes()))
}

impl Script {
    /// Normalises `raw`, computes its checksum and splits it into statements with the
    /// `sqlparser` tokenizer of `dialect`.
    ///
    /// Splitting respects quoted strings (PostgreSQL `E'…'`, `U&'…'` and dollar-quoted
    /// strings with tags), nested block comments (PostgreSQL), and `BEGIN … END` / `CASE … END`
    /// bodies (triggers and routines in MySQL and SQLite, `BEGIN ATOMIC` in PostgreSQL).
    ///
    /// # Errors
    /// [`ScriptError`] with the line and column when the text cannot be tokenised, such as an
    /// unterminated string, quoted identifier or block comment.
    pub fn parse(raw: &str, dialect: DialectKind) -> Result<Self, ScriptError> {
        let sql = normalise(raw);
        let tokens = tokenize(&sql, dialect)?;
        let statements = split(&sql, &tokens);
        Ok(Self {
            checksum: checksum(&sql),
            no_transaction: has_no_transaction_marker(&sql),
            destructive: is_destructive(&tokens),
            statements,
            sql,
        })
    }
}

fn tokenize(sql: &str, dialect: DialectKind) -> Result<Vec<TokenWithSpan>, ScriptError> {
    let dialect: &dyn SqlDialect = match dialect {
        DialectKind::Postgres => &PostgreSqlDialect {},
        DialectKind::Mysql => &MySqlDialect {},
        DialectKind::Sqlite => &SQLiteDialect {},
    };
    Tokenizer::new(dialect, sql)
        .with_unescape(false)
        .tokenize_with_location()
        .map_err(|e| ScriptError {
            line: e.location.line,
            column: e.location.column,
            message: e.message,
        })
}

fn has_no_transaction_marker(sql: &str) -> bool {
    sql.lines()
        .map(str::trim)
        .take_while(|line| line.is_empty() || line.starts_with("--"))
        .any(|line| NO_TRANSACTION_MARKERS.contains(&line))
}

fn keyword(token: &Token) -> Option<Keyword> {
    match token {
        Token::Word(w) if w.quote_style.is_none() => Some(w.keyword),
        _ => None,
    }
}

/// The tokens that are not whitespace or comments.
fn significant(tokens: &[TokenWithSpan]) -> impl Iterator<Item = &TokenWithSpan> {
    tokens
        .iter()
        .filter(|t| !matches!(t.token, Token::Whitespace(_)))
}

/// Splits at top-level `;`. Depth rises on `BEGIN` (unless it starts a transaction) and
/// `CASE`, and falls on `END` (unless it closes `IF`, `LOOP`, `WHILE` or `REPEAT`, which
/// only occur inside a `BEGIN` body and were never counted).
fn split(sql: &str, tokens: &[TokenWithSpan]) -> Vec<String> {
    let offsets = LineOffsets::new(sql);
    let sig: Vec<&TokenWithSpan> = significant(tokens).collect();
    let mut statements = Vec::new();
    let mut depth = 0usize;
    let mut start = 0usize;
    let mut has_content = false;
    for (i, t) in sig.iter().enumerate() {
        let next = sig.get(i + 1).map(|n| &n.token);
        match (&t.token, keyword(&t.token)) {
            (Token::SemiColon, _) if depth == 0 => {
                let end = offsets.byte(sql, t.span.start.line, t.span.start.column);
                if has_content {
                    statements.push(sql[start..end].trim().to_owned());
                }
                start = end + 1;
                has_content = false;
                continue;
            }
            (_, Some(Keyword::BEGIN)) => {
                let opens_transaction = match next {
                    None | Some(Token::SemiColon) => true,
                    Some(n) => matches!(
                        keyword(n),
                        Some(
                            Keyword::TRANSACTION
                                | Keyword::WORK
                                | Keyword::DEFERRED
                                | Keyword::IMMEDIATE
                                | Keyword::EXCLUSIVE
                                | Keyword::ISOLATION
                                | Keyword::READ
                        )
                    ),
                };
                if !opens_transaction {
                    depth += 1;
                }
            }
            (_, Some(Keyword::CASE)) => depth += 1,
            (_, Some(Keyword::END)) => {
                let closes_uncounted = next.is_some_and(|n| match n {
                    Token::Word(w) if w.quote_style.is_none() => ["IF", "LOOP", "WHILE", "REPEAT"]
                        .iter()
                        .any(|k| w.value.eq_ignore_ascii_case(k)),
                    _ => false,
                });
                if !closes_uncounted {
                    depth = depth.saturating_sub(1);
                }
            }
            _ => {}
        }
        has_content = true;
    }
    if has_content {
        statements.push(sql[start..].trim().to_owned());
    }
    statements
}

fn is_destructive(tokens: &[TokenWithSpan]) -> bool {
    let sig: Vec<Option<Keyword>> = significant(tokens).map(|t| keyword(&t.token)).collect();
    sig.windows(2).any(|w| match w {
        [Some(Keyword::DROP), Some(k)] => matches!(
            k,
            Keyword::TABLE | Keyword::COLUMN | Keyword::SCHEMA | Keyword::DATABASE
        ),
        [Some(Keyword::TRUNCATE), _] => true,
        _ => false,
    })
}

/// Maps the tokenizer's (line, column in characters) to byte offsets.
struct LineOffsets(Vec<usize>);

impl LineOffsets {
    fn new(sql: &str) -> Self {
        let mut starts = vec![0];
        starts.extend(sql.match_indices('\n').map(|(i, _)| i + 1));
        Self(starts)
    }

    fn byte(&self, sql: &str, line: u64, column: u64) -> usize {
        let line_start = self.0[(line as usize).saturating_sub(1)];
        sql[line_start..]
            .char_indices()
            .nth((column as usize).saturating_sub(1))
            .map_or(sql.len(), |(i, _)| line_start + i)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stmts(sql: &str, d: DialectKind) -> Vec<String> {
        Script::parse(sql, d).unwrap().statements
    }

    #[test]
    fn crlf_and_bom_do_not_change_the_checksum() {
        let lf = Script::parse(
            "CREATE TABLE a (id int);\nSELECT 1;\n",
            DialectKind::Postgres,
        );
        let crlf = Script::parse(
            "\u{feff}CREATE TABLE a (id int);\r\nSELECT 1;\r\n",
            DialectKind::Postgres,
        );
        assert_eq!(lf.unwrap().checksum, crlf.unwrap().checksum);
        assert_eq!(
            checksum("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn postgres_strings_comments_and_dollar_quotes_keep_their_semicolons() {
        let sql = "/* outer /* inner; */ still comment; */\n\
                   CREATE FUNCTION f() RETURNS int AS $fn$ BEGIN RETURN 1; END; $fn$ LANGUAGE plpgsql;\n\
                   SELECT E'it\\'s; fine', U&'d\\0061t; a', 'x;y';\n\
                   -- trailing; comment\n";
        let s = stmts(sql, DialectKind::Postgres);
        assert_eq!(s.len(), 2, "{s:#?}");
        assert!(s[0].ends_with("LANGUAGE plpgsql"));
        assert!(s[1].starts_with("SELECT E'it"));
    }

    #[test]
    fn trigger_bodies_stay_whole_in_mysql_and_sqlite() {
        let mysql = "CREATE TABLE t (a int);\n\
            CREATE TRIGGER tr BEFORE UPDATE ON t FOR EACH ROW BEGIN\n\
              IF NEW.a < 0 THEN SET NEW.a = 0; END IF;\n\
              SET NEW.a = CASE WHEN NEW.a > 9 THEN 9 ELSE NEW.a END;\n\
            END;\n\
            INSERT INTO t VALUES (1);";
        let s = stmts(mysql, DialectKind::Mysql);
        assert_eq!(s.len(), 3, "{s:#?}");
        assert!(s[1].ends_with("END"));
        let sqlite = "CREATE TRIGGER tr AFTER UPDATE ON t BEGIN UPDATE t SET a = 1; SELECT 2; END;\nSELECT 3;";
        assert_eq!(stmts(sqlite, DialectKind::Sqlite).len(), 2);
    }

    #[test]
    fn begin_that_opens_a_transaction_is_not_a_block() {
        let s = stmts(
            "BEGIN;\nCREATE TABLE a (id int);\nCOMMIT;",
            DialectKind::Sqlite,
        );
        assert_eq!(s.len(), 3);
    }

    #[test]
    fn markers_empty_scripts_and_destructive_statements() {
        let s = Script::parse(
            "-- avocet:no-transaction\nCREATE INDEX CONCURRENTLY i ON t (a);",
            DialectKind::Postgres,
        )
        .unwrap();
        assert!(s.no_transaction);
        assert!(!s.destructive);
        let sqlx = Script::parse("-- no-transaction\nSELECT 1;", DialectKind::Postgres).unwrap();
        assert!(sqlx.no_transaction);
        let late = Script::parse(
            "SELECT 1;\n-- avocet:no-transaction\n",
            DialectKind::Postgres,
        );
        assert!(!late.unwrap().no_transaction);
        let empty = Script::parse("-- nothing here\n/* at all */\n", DialectKind::Mysql).unwrap();
        assert!(empty.statements.is_empty());
        let drop = Script::parse("ALTER TABLE t DROP COLUMN a;", DialectKind::Mysql).unwrap();
        assert!(drop.destructive);
    }

    #[test]
    fn unterminated_string_names_line_and_column() {
        let err = Script::parse("SELECT 1;\nSELECT 'oops;\n", DialectKind::Postgres).unwrap_err();
        assert_eq!(err.line, 2, "{err}");
    }
}

//! Reading one SQL script (an `up` or a `down`): normalised text, checksum, statements
//! (split by [`super::split`]), markers, and what Avocet refuses to run.

use sha2::{Digest, Sha256};
use sqlparser::dialect::{Dialect as SqlDialect, MySqlDialect, PostgreSqlDialect, SQLiteDialect};

use super::{
    delimiter, placeholders,
    split::{Cuts, MetaCommands, Piece, Splitter},
    tokens,
};
use crate::model::{DialectKind, Script, SetFormat, StatementSpan};

/// Line comments that move a script out of the per-migration transaction
/// (DESIGN.md rule 2). The second is sqlx's spelling, accepted for compatibility.
const NO_TRANSACTION_MARKERS: [&str; 2] = ["-- avocet:no-transaction", "-- no-transaction"];

/// The line comment that accepts a script's destructive statements as intended.
const ALLOW_DESTRUCTIVE_MARKER: &str = "-- avocet:allow-destructive";

/// The line comment that says a script with no statement is intended.
const ALLOW_EMPTY_MARKER: &str = "-- avocet:allow-empty";

/// The line comment `avocet new` writes at the top of a new file.
const TEMPLATE_MARKER: &str = "-- avocet:template";

/// The line comment that sets how long each statement may wait for a lock
/// (`-- avocet:ddl-lock-timeout 2s`; `0` turns the guard off for the script).
const DDL_LOCK_TIMEOUT_DIRECTIVE: &str = "-- avocet:ddl-lock-timeout";

/// The line comment that sets how long each statement may run
/// (`-- avocet:statement-timeout 30min`).
const STATEMENT_TIMEOUT_DIRECTIVE: &str = "-- avocet:statement-timeout";

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
pub(super) fn normalise(raw: &str) -> String {
    raw.strip_prefix('\u{feff}')
        .unwrap_or(raw)
        .replace("\r\n", "\n")
}

/// Lowercase hex SHA-256 of `text` (FIPS 180-4).
pub(super) fn checksum(text: &str) -> String {
    hex::encode(Sha256::digest(text.as_bytes()))
}

/// Normalises `raw`, computes its checksum and splits it into statements with the
/// `sqlparser` tokenizer of `dialect` (the rules: [`super::split`]).
///
/// Splitting respects quoted strings (PostgreSQL `E'…'`, `U&'…'` and dollar-quoted
/// strings with tags), nested block comments (PostgreSQL), parentheses, and `BEGIN … END`
/// / `CASE … END` bodies (triggers and routines in MySQL and SQLite, `BEGIN ATOMIC` in
/// PostgreSQL). In MySQL, `DELIMITER` lines change the terminator as the `mysql` client
/// does ([`super::delimiter`]); they and the custom terminators are in no statement.
///
/// # Errors
/// [`ScriptError`] with the line and column when the text cannot be tokenised, such as an
/// unterminated string, quoted identifier or block comment; when a script that runs
/// inside the migration's transaction (PostgreSQL, SQLite, no marker) has its own
/// `BEGIN`/`COMMIT`/`ROLLBACK`, which would commit or end that transaction (DESIGN.md
/// rule 1); when a PostgreSQL script has `COPY … FROM STDIN` or a psql meta-command (a
/// line starting with `\`), which only psql can run; or for a MySQL `DELIMITER` with no
/// usable terminator.
pub fn parse_script(raw: &str, dialect: DialectKind) -> Result<Script, ScriptError> {
    parse_script_as(raw, dialect, false, SetFormat::Auto)
}

/// As [`parse_script`] for a file of a set laid out as `format`; `no_transaction` moves the
/// script out of its migration's transaction as its marker would (a set format's own
/// directive, such as diesel's `run_in_transaction = false`). A refused `BEGIN`/`COMMIT`
/// names `format`'s own way out of the transaction ([`transaction_fix`]).
pub(super) fn parse_script_as(
    raw: &str,
    dialect: DialectKind,
    no_transaction: bool,
    format: SetFormat,
) -> Result<Script, ScriptError> {
    let sql = normalise(raw);
    let delimiters = match dialect {
        DialectKind::Mysql => delimiter::scan(&sql)?,
        _ => None,
    };
    let (text, cuts) = match &delimiters {
        Some(d) => (
            d.masked.as_str(),
            Cuts {
                cuts: &d.cuts,
                custom: &d.custom,
            },
        ),
        None => (sql.as_str(), Cuts::default()),
    };
    let scanned = scan(text, dialect, cuts).map_err(|e| refused_before(text, dialect, e))?;
    let refuse = Refuse {
        dialect,
        no_transaction: no_transaction || has_no_transaction_marker(&sql),
        format,
    };
    if let Some(e) = refusal(&scanned.pieces, scanned.meta, refuse) {
        return Err(e);
    }
    let pieces = scanned.pieces;
    let no_transaction = refuse.no_transaction;
    let ddl_lock_timeout = leading_duration(&sql, DDL_LOCK_TIMEOUT_DIRECTIVE)?;
    let statement_timeout = leading_duration(&sql, STATEMENT_TIMEOUT_DIRECTIVE)?;
    let spans: Vec<StatementSpan> = pieces.into_iter().map(|p| p.span).collect();
    let findings = super::lint::lint(&sql, &spans, dialect);
    let placeholders = scanned.placeholders;
    Ok(Script {
        checksum: checksum(&sql),
        no_transaction,
        destructive: findings.iter().any(|f| f.blocks),
        allow_destructive: leading_marker(&sql, &[ALLOW_DESTRUCTIVE_MARKER]),
        allow_empty: leading_marker(&sql, &[ALLOW_EMPTY_MARKER]),
        template: leading_marker(&sql, &[TEMPLATE_MARKER]),
        ddl_lock_timeout,
        statement_timeout,
        findings,
        placeholders,
        spans,
        sql,
    })
}

/// What the tokens of a script say: its statements, its first psql meta-command, its
/// placeholders.
struct Scanned {
    pieces: Vec<Piece>,
    meta: Option<ScriptError>,
    placeholders: Vec<crate::model::Placeholder>,
}

/// Reads `text` (the tokenizer's text, `DELIMITER` lines masked) a run of tokens at a time
/// ([`tokens::each_run`]), so memory follows its longest statement rather than its length.
///
/// # Errors
/// The tokenizer's, with the line and column of the text it could not read.
fn scan(text: &str, dialect: DialectKind, cuts: Cuts<'_>) -> Result<Scanned, ScriptError> {
    let mut splitter = Splitter::new(text, cuts);
    let mut meta = MetaCommands::default();
    let mut finder = placeholders::Finder::new(text, dialect);
    let postgres = dialect == DialectKind::Postgres;
    tokens::each_run(text, dialect, |run| {
        splitter.feed(run);
        if postgres {
            meta.feed(run);
        }
        finder.feed(run);
    })?;
    Ok(Scanned {
        pieces: splitter.finish(),
        meta: meta.first(),
        placeholders: finder.finish(),
    })
}

/// What [`refusal`] needs to know of a script.
#[derive(Clone, Copy)]
struct Refuse {
    dialect: DialectKind,
    /// The script runs outside the migration's transaction.
    no_transaction: bool,
    /// The set's layout, whose directive the refusal of `BEGIN`/`COMMIT` names.
    format: SetFormat,
}

/// How a file of a set laid out as `format` leaves its migration's transaction: the
/// format's own directive where it has one, and Avocet's marker, which works in every
/// format.
fn transaction_fix(format: SetFormat) -> &'static str {
    match format {
        SetFormat::Flyway => {
            "write `executeInTransaction=false` in a `.sql.conf` file beside it (Flyway's \
             script configuration), or mark the file `-- avocet:no-transaction`"
        }
        SetFormat::Diesel => {
            "write `run_in_transaction = false` in the migration's `metadata.toml` (diesel's), \
             or mark the file `-- avocet:no-transaction`"
        }
        SetFormat::Dbmate => {
            "write `transaction:false` after its `-- migrate:up` (or `-- migrate:down`) marker \
             (dbmate's), or mark the file `-- avocet:no-transaction`"
        }
        SetFormat::Refinery => {
            "add a `-- refinery:noTransaction` line (refinery's), or mark the file \
             `-- avocet:no-transaction`"
        }
        SetFormat::Sqlx => {
            "mark the file `-- no-transaction` (sqlx's) or `-- avocet:no-transaction`"
        }
        SetFormat::GolangMigrate | SetFormat::Auto => "mark the file `-- avocet:no-transaction`",
    }
}

/// The first statement or line of a script that Avocet will not run, if any: of its
/// `pieces` and its first psql meta-command (`meta`, PostgreSQL only).
fn refusal(pieces: &[Piece], meta: Option<ScriptError>, how: Refuse) -> Option<ScriptError> {
    let refuse_control = how.dialect.transactional_ddl() && !how.no_transaction;
    let postgres = how.dialect == DialectKind::Postgres;
    let piece = pieces.iter().find_map(|p| {
        let message = if postgres && p.copy_from_stdin {
            "COPY … FROM STDIN reads its rows from the client, which only psql provides: \
             write INSERT statements, or COPY from a file the server can read"
                .to_owned()
        } else if refuse_control && p.transaction_control {
            format!(
                "transaction control (BEGIN, COMMIT, ROLLBACK, END) in a script that runs \
                 inside the migration's own transaction, which it would end: remove it, or run \
                 the file outside a transaction: {}",
                transaction_fix(how.format)
            )
        } else {
            return None;
        };
        Some(ScriptError {
            line: p.span.line,
            column: p.span.column,
            message,
        })
    });
    [piece, meta.filter(|_| postgres)]
        .into_iter()
        .flatten()
        .min_by_key(|e| (e.line, e.column))
}

/// A tokenizer error, or what Avocet refuses before it: the rows after `COPY … FROM
/// STDIN` often cannot be tokenised, and the `COPY` is the mistake to report.
fn refused_before(sql: &str, dialect: DialectKind, error: ScriptError) -> ScriptError {
    let line_start = sql
        .split_inclusive('\n')
        .take(
            usize::try_from(error.line)
                .unwrap_or(usize::MAX)
                .saturating_sub(1),
        )
        .map(str::len)
        .sum::<usize>();
    let before = &sql[..line_start];
    let Ok(scanned) = scan(before, dialect, Cuts::default()) else {
        return error;
    };
    let how = Refuse {
        dialect,
        no_transaction: true,
        format: SetFormat::Auto,
    };
    refusal(&scanned.pieces, scanned.meta, how)
        .filter(|_| dialect == DialectKind::Postgres)
        .unwrap_or(error)
}

/// sqlparser's dialect for `dialect`, for the tokenizer and the lint's parser.
pub(super) fn sql_dialect(dialect: DialectKind) -> &'static dyn SqlDialect {
    match dialect {
        DialectKind::Postgres => &PostgreSqlDialect {},
        DialectKind::Mysql => &MySqlDialect {},
        DialectKind::Sqlite => &SQLiteDialect {},
    }
}

fn has_no_transaction_marker(sql: &str) -> bool {
    leading_marker(sql, &NO_TRANSACTION_MARKERS)
}

/// The duration after `directive` on a line of the comments that open the script
/// (humantime syntax: `500ms`, `2s`, `30min`; a bare `0` is zero).
///
/// # Errors
/// [`ScriptError`] naming the line when the value is not a duration.
fn leading_duration(
    sql: &str,
    directive: &str,
) -> Result<Option<std::time::Duration>, ScriptError> {
    let found = sql
        .lines()
        .enumerate()
        .take_while(|(_, line)| line.trim().is_empty() || line.trim().starts_with("--"))
        .find_map(|(i, line)| {
            let rest = line.trim().strip_prefix(directive)?;
            (rest.is_empty() || rest.starts_with(char::is_whitespace)).then(|| (i, rest.trim()))
        });
    let Some((i, value)) = found else {
        return Ok(None);
    };
    let parsed = match value {
        "0" => Ok(std::time::Duration::ZERO),
        v => humantime::parse_duration(v).map_err(|e| e.to_string()),
    };
    parsed.map(Some).map_err(|e| ScriptError {
        line: i as u64 + 1,
        column: 1,
        message: format!(
            "{directive} takes a duration such as 500ms, 2s or 30min ({value:?}: {e})"
        ),
    })
}

/// True when one of `markers` is a line of the comments that open the script.
fn leading_marker(sql: &str, markers: &[&str]) -> bool {
    sql.lines()
        .map(str::trim)
        .take_while(|line| line.is_empty() || line.starts_with("--"))
        .any(|line| markers.contains(&line))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stmts(sql: &str, d: DialectKind) -> Vec<String> {
        let script = parse_script(sql, d).unwrap();
        script.statements().map(str::to_owned).collect()
    }

    #[test]
    fn timeout_directives_are_read_from_the_leading_comments() {
        let pg = DialectKind::Postgres;
        let script = parse_script(
            "-- avocet:ddl-lock-timeout 2s\n-- avocet:statement-timeout 30min\nSELECT 1;\n",
            pg,
        )
        .unwrap();
        assert_eq!(
            script.ddl_lock_timeout,
            Some(std::time::Duration::from_secs(2))
        );
        assert_eq!(
            script.statement_timeout,
            Some(std::time::Duration::from_secs(1800))
        );
        let off = parse_script("-- avocet:ddl-lock-timeout 0\nSELECT 1;\n", pg).unwrap();
        assert_eq!(off.ddl_lock_timeout, Some(std::time::Duration::ZERO));
        let late = parse_script("SELECT 1;\n-- avocet:ddl-lock-timeout 2s\n", pg).unwrap();
        assert_eq!(
            late.ddl_lock_timeout, None,
            "only the opening comments hold directives"
        );
        let bad = parse_script("-- x\n-- avocet:statement-timeout soon\nSELECT 1;\n", pg);
        assert_eq!(bad.unwrap_err().line, 2);
    }

    #[test]
    fn crlf_and_bom_do_not_change_the_checksum() {
        let lf = parse_script(
            "CREATE TABLE a (id int);\nSELECT 1;\n",
            DialectKind::Postgres,
        );
        let crlf = parse_script(
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
    fn begin_that_opens_a_transaction_or_names_a_column_is_not_a_block() {
        let marked = "-- avocet:no-transaction\nBEGIN;\nCREATE TABLE a (id int);\nCOMMIT;";
        assert_eq!(stmts(marked, DialectKind::Sqlite).len(), 3);
        let column = "ALTER TABLE t ADD COLUMN begin date;\nCREATE TABLE b (x int);";
        assert_eq!(stmts(column, DialectKind::Postgres).len(), 2);
        assert_eq!(stmts(column, DialectKind::Mysql).len(), 2);
        let deferrable = "-- no-transaction\nBEGIN NOT DEFERRABLE;\nSELECT 1;\nCOMMIT;";
        assert_eq!(stmts(deferrable, DialectKind::Postgres).len(), 3);
    }

    #[test]
    fn transaction_control_inside_the_migration_transaction_is_refused() {
        for d in [DialectKind::Postgres, DialectKind::Sqlite] {
            let err = parse_script("SELECT 1;\nCOMMIT;\nSELECT 2;", d).unwrap_err();
            assert_eq!((err.line, err.column), (2, 1), "{err}");
            assert!(parse_script("BEGIN;\nSELECT 1;", d).is_err());
            assert!(parse_script("SAVEPOINT a;\nROLLBACK TO a;", d).is_ok());
        }
        // MySQL runs statement by statement anyway: nothing to break.
        assert!(parse_script("SELECT 1;\nCOMMIT;", DialectKind::Mysql).is_ok());
    }

    #[test]
    fn routines_with_case_and_labels_stay_whole() {
        let sql = "CREATE PROCEDURE p(x INT)\nmain: BEGIN\n\
              CASE x WHEN 1 THEN SELECT 1; ELSE SELECT 2; END CASE;\n\
              WHILE x > 0 DO SET x = x - 1; END WHILE;\n\
              BEGIN SELECT 3; END;\n\
            END main;\n\
            CREATE TABLE a (id int);\nCREATE TABLE b (id int);";
        let s = stmts(sql, DialectKind::Mysql);
        assert_eq!(s.len(), 3, "{s:#?}");
        assert!(s[0].ends_with("END main"));
        let atomic = "CREATE FUNCTION f() RETURNS int LANGUAGE sql\n\
            BEGIN ATOMIC SELECT 1; SELECT 2; END;\nSELECT 3;";
        assert_eq!(stmts(atomic, DialectKind::Postgres).len(), 2);
    }

    #[test]
    fn markers_empty_scripts_and_destructive_statements() {
        let s = parse_script(
            "-- avocet:no-transaction\nCREATE INDEX CONCURRENTLY i ON t (a);",
            DialectKind::Postgres,
        )
        .unwrap();
        assert!(s.no_transaction);
        assert!(!s.destructive);
        let sqlx = parse_script("-- no-transaction\nSELECT 1;", DialectKind::Postgres).unwrap();
        assert!(sqlx.no_transaction);
        let late = parse_script(
            "SELECT 1;\n-- avocet:no-transaction\n",
            DialectKind::Postgres,
        );
        assert!(!late.unwrap().no_transaction);
        let empty = parse_script("-- nothing here\n/* at all */\n", DialectKind::Mysql).unwrap();
        assert!(empty.spans.is_empty());
        let drop = parse_script("ALTER TABLE t DROP COLUMN a;", DialectKind::Mysql).unwrap();
        assert!(drop.destructive);
        let bare = parse_script("ALTER TABLE t DROP a;", DialectKind::Mysql).unwrap();
        assert!(bare.destructive);
        let index = parse_script("DROP INDEX i;", DialectKind::Mysql).unwrap();
        assert!(!index.destructive);
    }

    #[test]
    fn unterminated_string_names_line_and_column() {
        let err = parse_script("SELECT 1;\nSELECT 'oops;\n", DialectKind::Postgres).unwrap_err();
        assert_eq!(err.line, 2, "{err}");
    }
}

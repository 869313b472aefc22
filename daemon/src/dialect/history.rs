//! The history table and its log table, from one column list ([`COLUMNS`]). Everything else
//! is generated from it for each [`Dialect`]: the `CREATE TABLE`s, the read, the upsert and
//! the log insert (every value a literal, so a migration's statements and its history rows
//! travel in one request and commit together), the parsing of a row, and the layout
//! upgrades of tables made by older releases.
//!
//! **Layouts.** Each column names the layout that added it (`since`). Layout 1 is the table
//! as first made; each later layout is one `ALTER TABLE … ADD COLUMN` per new column, run by
//! a writer holding the tenant lock ([`HistorySql::upgrades`]), while readers read an older
//! table as it is, with `NULL` for the columns it lacks. The next column is one line here.
//! The log table holds the logged columns of the history table, plus its own key and `at`.
//!
//! **Times.** A log row's `at` is the server's clock when the row is written
//! ([`Dialect::NOW`]), on every dialect. A history row written inside a batch after its
//! script takes its finish and duration from the server when the statement runs
//! ([`Timing::InBatch`]); one written on its own takes the engine's ([`Timing::Known`]).

use std::collections::BTreeSet;

use super::spec::{ColumnType, Dialect, qualified, quote};
use crate::model::{
    DialectKind, Direction, HistoryRecord, MigrationKey, RecordStatus, RecordWrite,
};

/// The statements one [`HistorySql::record_sql`] renders: the upsert and the log insert.
pub(super) const RECORD_STATEMENTS: u64 = 2;

/// The layout a history table made by this release has: the highest `since` in [`COLUMNS`].
pub(super) const LAYOUT: u32 = 3;

/// What a history row's times come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Timing {
    /// Written after its script in the same request: the finish and the duration are the
    /// server's when the statement runs, so they cover the script before it.
    InBatch,
    /// Written on its own: the times the record carries, from the engine's clock.
    Known,
}

/// One value of one history row, before a dialect renders it.
enum Value<'a> {
    Version,
    Text(&'a str),
    MaybeText(Option<&'a str>),
    Int(i64),
    Started,
    Finished,
    Duration,
    RolledBack,
}

type Read = fn(&mut HistoryRecord, Option<String>) -> Result<(), String>;

/// One column of the history table.
struct Column {
    name: &'static str,
    ty: ColumnType,
    null: bool,
    /// The values it may hold (a `CHECK` on the history table), or any.
    one_of: &'static [&'static str],
    /// Also a column of the log table.
    logged: bool,
    /// The layout that added it.
    since: u32,
    write: fn(&RecordWrite) -> Value<'_>,
    /// How a read fills the record; `None` for columns only written.
    read: Option<Read>,
}

const STATUSES: &[&str] = &["running", "applied", "failed", "rolled_back"];

/// The history table, one line a column. `version` is the key.
#[rustfmt::skip]
const COLUMNS: &[Column] = &[
    Column { name: "version", ty: ColumnType::Version, null: false, one_of: &[], logged: true, since: 1, write: |_| Value::Version, read: Some(read_version) },
    Column { name: "name", ty: ColumnType::Short(255), null: false, one_of: &[], logged: true, since: 1, write: |r| Value::Text(&r.name), read: Some(|h, v| text(v).map(|v| h.name = v)) },
    Column { name: "checksum", ty: ColumnType::Hash, null: false, one_of: &[], logged: false, since: 1, write: |r| Value::Text(&r.checksum), read: Some(|h, v| text(v).map(|v| h.checksum = v)) },
    Column { name: "status", ty: ColumnType::Short(16), null: false, one_of: STATUSES, logged: true, since: 1, write: |r| Value::Text(r.log_status.unwrap_or(r.status.as_str())), read: Some(read_status) },
    Column { name: "batch", ty: ColumnType::Int, null: false, one_of: &[], logged: true, since: 1, write: |r| Value::Int(r.batch), read: Some(|h, v| int(v).map(|v| h.batch = v)) },
    Column { name: "rollout_id", ty: ColumnType::Short(64), null: false, one_of: &[], logged: true, since: 1, write: |r| Value::Text(&r.rollout_id), read: None },
    Column { name: "applied_by", ty: ColumnType::Short(255), null: false, one_of: &[], logged: true, since: 1, write: |r| Value::Text(&r.applied_by), read: None },
    Column { name: "started_at", ty: ColumnType::Time, null: false, one_of: &[], logged: false, since: 1, write: |_| Value::Started, read: None },
    Column { name: "finished_at", ty: ColumnType::Time, null: true, one_of: &[], logged: false, since: 1, write: |_| Value::Finished, read: None },
    Column { name: "duration_ms", ty: ColumnType::Int, null: true, one_of: &[], logged: false, since: 1, write: |_| Value::Duration, read: None },
    Column { name: "error", ty: ColumnType::Long, null: true, one_of: &[], logged: true, since: 1, write: |r| Value::MaybeText(r.error.as_deref()), read: Some(|h, v| { h.error = v; Ok(()) }) },
    Column { name: "statements_done", ty: ColumnType::Int, null: false, one_of: &[], logged: true, since: 1, write: |r| Value::Int(r.statements_done), read: Some(|h, v| int(v).map(|v| h.statements_done = v)) },
    Column { name: "statements_total", ty: ColumnType::Int, null: false, one_of: &[], logged: false, since: 1, write: |r| Value::Int(r.statements_total), read: Some(|h, v| int(v).map(|v| h.statements_total = v)) },
    Column { name: "rolled_back_at", ty: ColumnType::Time, null: true, one_of: &[], logged: false, since: 1, write: |_| Value::RolledBack, read: None },
    Column { name: "direction", ty: ColumnType::Short(4), null: false, one_of: &[], logged: true, since: 1, write: |r| Value::Text(r.direction.as_str()), read: Some(read_direction) },
    Column { name: "down_checksum", ty: ColumnType::Hash, null: true, one_of: &[], logged: false, since: 2, write: |r| Value::MaybeText(r.down_checksum.as_deref()), read: Some(|h, v| { h.down_checksum = v; Ok(()) }) },
    Column { name: "no_transaction", ty: ColumnType::Int, null: true, one_of: &[], logged: false, since: 3, write: |r| Value::Int(i64::from(r.no_transaction)), read: Some(read_no_transaction) },
];

fn text(v: Option<String>) -> Result<String, String> {
    v.ok_or_else(|| "a NOT NULL column is NULL".to_owned())
}

fn int(v: Option<String>) -> Result<i64, String> {
    text(v)?
        .trim()
        .parse()
        .map_err(|e| format!("not an integer: {e}"))
}

fn read_version(h: &mut HistoryRecord, v: Option<String>) -> Result<(), String> {
    h.version = text(v)?
        .trim()
        .parse()
        .map_err(|e: crate::model::VersionError| e.to_string())?;
    Ok(())
}

fn read_status(h: &mut HistoryRecord, v: Option<String>) -> Result<(), String> {
    h.status = text(v)?.parse()?;
    Ok(())
}

fn read_no_transaction(h: &mut HistoryRecord, v: Option<String>) -> Result<(), String> {
    h.no_transaction = match v {
        None => None,
        Some(_) => Some(int(v)? != 0),
    };
    Ok(())
}

fn read_direction(h: &mut HistoryRecord, v: Option<String>) -> Result<(), String> {
    h.direction = match text(v)?.as_str() {
        "up" => Direction::Up,
        "down" => Direction::Down,
        other => return Err(format!("unknown history direction {other:?}")),
    };
    Ok(())
}

/// The columns a read fills, in the order of every `SELECT`.
fn read_columns() -> impl Iterator<Item = &'static Column> {
    COLUMNS.iter().filter(|c| c.read.is_some())
}

/// A history row read as text, one value per [`read_columns`] column, as a record.
///
/// # Errors
/// A sentence naming the column whose value does not parse.
pub(super) fn record_from_text(row: Vec<Option<String>>) -> Result<HistoryRecord, String> {
    let mut record = HistoryRecord {
        version: MigrationKey::from(0),
        name: String::new(),
        checksum: String::new(),
        down_checksum: None,
        status: RecordStatus::Failed,
        batch: 0,
        statements_done: 0,
        statements_total: 0,
        error: None,
        direction: Direction::Up,
        no_transaction: None,
    };
    for (column, value) in read_columns().zip(row) {
        let read = column.read.expect("read_columns have a reader");
        read(&mut record, value).map_err(|e| format!("history column {}: {e}", column.name))?;
    }
    Ok(record)
}

/// What a history table's `version` column holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum VersionColumn {
    /// Integers (`BIGINT`; SQLite's `INTEGER`): every format but Flyway.
    Integer,
    /// Text (`TEXT`; MySQL's `VARCHAR(128) COLLATE utf8mb4_bin`): Flyway's dotted versions,
    /// as Flyway's own `flyway_schema_history.version` holds them, and repeatables' keys,
    /// compared byte for byte as PostgreSQL and SQLite compare `TEXT` (a MySQL default
    /// collation would key `R__Views` and `R__views`, or `R__café` and `R__cafe`, as one row).
    Text,
}

impl VersionColumn {
    /// The column `target`'s history table is made with.
    pub(super) fn of(target: &super::Target) -> Self {
        match target.text_versions {
            true => Self::Text,
            false => Self::Integer,
        }
    }

    fn sql_type(self, dialect: DialectKind) -> &'static str {
        match (self, dialect) {
            (Self::Integer, DialectKind::Postgres | DialectKind::Mysql) => "BIGINT",
            (Self::Integer, DialectKind::Sqlite) => "INTEGER",
            (Self::Text, DialectKind::Postgres | DialectKind::Sqlite) => "TEXT",
            (Self::Text, DialectKind::Mysql) => "VARCHAR(128) COLLATE utf8mb4_bin",
        }
    }
}

/// The history SQL of every tenant whose tables are in one place, built once per (dialect,
/// schema, table, version column) and shared ([`super::shared_sql::shared`]).
pub(super) struct HistorySql {
    /// Run before the tables are made, e.g. `CREATE SCHEMA IF NOT EXISTS …`.
    prelude: Option<String>,
    /// The history table and the log table, `IF NOT EXISTS`.
    create: [String; 2],
    /// What the `version` column holds.
    pub(super) version_column: VersionColumn,
    /// The read of a table of today's layout.
    pub(super) select: String,
    /// The qualified history and log table names.
    tables: [String; 2],
    /// The history table's name, unqualified.
    pub(super) name: String,
    /// The read's column list (`CAST(version AS TEXT), …`), for a read of several tables
    /// in one query ([`HistorySql::select_tagged`]).
    read_list: String,
    /// The dialect's renderings: a record's values, a read of some columns, a column's
    /// definition.
    render: fn(&HistorySql, &RecordWrite, Timing) -> [String; 2],
    select_some: fn(&str, &BTreeSet<String>) -> String,
    definition: fn(&Column, VersionColumn) -> String,
    /// The read of the table's columns from the catalog, for older layouts.
    pub(super) columns: String,
    missing_table_code: &'static str,
    missing_column_code: &'static str,
}

impl HistorySql {
    /// The SQL of the history table `table` (and `<table>_log`) in `schema` (created first
    /// when `create_schema`), for dialect `D`.
    pub(super) fn new<D: Dialect>(
        schema: Option<&str>,
        table: &str,
        create_schema: bool,
        version_column: VersionColumn,
    ) -> Self {
        let history = qualified::<D>(schema, table);
        let log = qualified::<D>(schema, &format!("{table}_log"));
        let read_list = select_list::<D>(|_| true);
        let read_all = format!("SELECT {read_list} FROM {history}");
        Self {
            prelude: schema
                .filter(|_| create_schema)
                .map(|s| format!("CREATE SCHEMA IF NOT EXISTS {}", quote(s, D::QUOTE))),
            create: [
                create_history::<D>(&history, version_column),
                create_log::<D>(&log, version_column),
            ],
            version_column,
            select: read_all,
            tables: [history, log],
            name: table.to_owned(),
            read_list,
            render: render::<D>,
            select_some: |table, present| select::<D>(table, |c| present.contains(c.name)),
            definition: definition::<D>,
            columns: D::columns_sql(schema, table),
            missing_table_code: D::MISSING_TABLE,
            missing_column_code: D::MISSING_COLUMN,
        }
    }

    /// The schema (if any) and both tables, in one request.
    pub(super) fn create_sql(&self) -> String {
        let mut ddl: Vec<&str> = self.prelude.iter().map(String::as_str).collect();
        ddl.extend(self.create.iter().map(String::as_str));
        ddl.join(";\n")
    }

    /// The read of a table that has only the columns in `present` (an older layout): the
    /// others read as `NULL`.
    pub(super) fn select_present(&self, present: &BTreeSet<String>) -> String {
        (self.select_some)(&self.tables[0], present)
    }

    /// The read of a table of today's layout with `tag` (a string literal, e.g. `'7'`) as
    /// its first column, to tell its rows from other tables' in a `UNION ALL`.
    pub(super) fn select_tagged(&self, tag: &str) -> String {
        format!("SELECT {tag}, {} FROM {}", self.read_list, self.tables[0])
    }

    /// The `ALTER TABLE`s that bring a table with only the columns in `present` to
    /// [`LAYOUT`], in layout order; empty when it is there.
    pub(super) fn upgrades(&self, present: &BTreeSet<String>) -> Vec<String> {
        let add = |table: &str, c: &Column| {
            let def = (self.definition)(c, self.version_column);
            format!("ALTER TABLE {table} ADD COLUMN {def}")
        };
        let mut missing: Vec<&Column> = COLUMNS
            .iter()
            .filter(|c| c.since > 1 && !present.contains(c.name))
            .collect();
        missing.sort_by_key(|c| c.since);
        let mut sql: Vec<String> = missing.iter().map(|c| add(&self.tables[0], c)).collect();
        sql.extend(
            missing
                .iter()
                .filter(|c| c.logged)
                .map(|c| add(&self.tables[1], c)),
        );
        sql
    }

    /// The upsert of `rec` and its log insert: [`RECORD_STATEMENTS`] statements,
    /// `;`-separated, every value a literal.
    pub(super) fn record_sql(&self, rec: &RecordWrite, timing: Timing) -> String {
        (self.render)(self, rec, timing).join(";\n")
    }

    /// The upsert of `rec` alone (one statement): a `running` row's progress.
    pub(super) fn row_sql(&self, rec: &RecordWrite) -> String {
        let [row, _] = (self.render)(self, rec, Timing::Known);
        row
    }

    /// The log insert of `rec` alone (one statement): a failure that leaves the history row
    /// as it was.
    pub(super) fn log_sql(&self, rec: &RecordWrite) -> String {
        let [_, log] = (self.render)(self, rec, Timing::Known);
        log
    }

    /// `Ok` when `version` fits the `version` column: a dotted version or a repeatable's
    /// key needs a text column.
    ///
    /// # Errors
    /// [`super::DbError::Query`] naming the version and the column's type.
    pub(super) fn writable(&self, version: &MigrationKey) -> Result<(), super::DbError> {
        if self.version_column == VersionColumn::Integer && version.as_i64().is_none() {
            let message = format!(
                "version {version} is not an integer, and this history table's version column \
                 holds integers (a set read as Flyway's layout makes a text column)"
            );
            return Err(super::DbError::query("writing the history table")(
                sqlx::Error::Encode(message.into()),
            ));
        }
        Ok(())
    }

    /// True when `e` says the history table does not exist.
    pub(super) fn is_missing_table(&self, e: &sqlx::Error) -> bool {
        is_db_error(e, self.missing_table_code, "no such table")
    }

    /// True when `e` says a column read does not exist: a table of an older layout.
    pub(super) fn is_missing_column(&self, e: &sqlx::Error) -> bool {
        is_db_error(e, self.missing_column_code, "no such column")
    }
}

fn select<D: Dialect>(table: &str, present: impl Fn(&Column) -> bool) -> String {
    format!("SELECT {} FROM {table}", select_list::<D>(present))
}

/// The read columns as text, `NULL` for those not `present`.
fn select_list<D: Dialect>(present: impl Fn(&Column) -> bool) -> String {
    let columns: Vec<String> = read_columns()
        .map(|c| match present(c) {
            true => format!("CAST({} AS {})", c.name, D::TEXT),
            false => "NULL".to_owned(),
        })
        .collect();
    columns.join(", ")
}

fn definition<D: Dialect>(c: &Column, version: VersionColumn) -> String {
    let ty = match c.ty {
        ColumnType::Version => version.sql_type(D::KIND),
        ty => D::column_type(ty),
    };
    let null = if c.null { "" } else { " NOT NULL" };
    format!("{} {ty}{null}", c.name)
}

fn create_history<D: Dialect>(table: &str, version: VersionColumn) -> String {
    let columns: Vec<String> = COLUMNS
        .iter()
        .map(|c| {
            let mut def = definition::<D>(c, version);
            if c.name == "version" {
                def.push_str(" PRIMARY KEY");
            }
            if !c.one_of.is_empty() {
                let values: Vec<String> = c.one_of.iter().map(|v| format!("'{v}'")).collect();
                def.push_str(&format!(" CHECK ({} IN ({}))", c.name, values.join(", ")));
            }
            def
        })
        .collect();
    format!(
        "CREATE TABLE IF NOT EXISTS {table} (\n    {}\n){}",
        columns.join(",\n    "),
        D::TABLE_OPTIONS
    )
}

fn create_log<D: Dialect>(log: &str, version: VersionColumn) -> String {
    let mut columns = vec![format!("id {}", D::LOG_ID)];
    columns.extend(
        COLUMNS
            .iter()
            .filter(|c| c.logged)
            .map(|c| definition::<D>(c, version)),
    );
    columns.push(format!("at {} NOT NULL", D::column_type(ColumnType::Time)));
    format!(
        "CREATE TABLE IF NOT EXISTS {log} (\n    {}\n){}",
        columns.join(",\n    "),
        D::TABLE_OPTIONS
    )
}

fn render<D: Dialect>(sql: &HistorySql, rec: &RecordWrite, timing: Timing) -> [String; 2] {
    let started = match timing {
        Timing::InBatch => D::started_in_batch(rec.started_at),
        Timing::Known => D::time(rec.started_at),
    };
    let done = rec.finished_at.is_some();
    let value = |v: Value<'_>| -> String {
        match v {
            Value::Version => rec
                .version
                .as_i64()
                .map_or_else(|| D::string(&rec.version.to_string()), |n| n.to_string()),
            Value::Text(s) => D::string(s),
            Value::MaybeText(s) => s.map_or_else(|| "NULL".to_owned(), D::string),
            Value::Int(n) => n.to_string(),
            Value::Started => started.clone(),
            Value::Finished => match (timing, rec.finished_at) {
                (_, None) => "NULL".into(),
                (Timing::InBatch, Some(_)) => D::NOW.into(),
                (Timing::Known, Some(t)) => D::time(t),
            },
            Value::Duration => match (timing, rec.duration_ms) {
                _ if !done => "NULL".into(),
                (Timing::InBatch, _) => D::duration_ms(&started),
                (Timing::Known, ms) => ms.unwrap_or(0).to_string(),
            },
            Value::RolledBack => match (timing, rec.rolled_back_at) {
                (_, None) => "NULL".into(),
                (Timing::InBatch, Some(_)) => D::NOW.into(),
                (Timing::Known, Some(t)) => D::time(t),
            },
        }
    };
    let names: Vec<&str> = COLUMNS.iter().map(|c| c.name).collect();
    let values: Vec<String> = COLUMNS.iter().map(|c| value((c.write)(rec))).collect();
    let logged: Vec<&str> = COLUMNS
        .iter()
        .filter(|c| c.logged)
        .map(|c| c.name)
        .collect();
    let log_values: Vec<String> = COLUMNS
        .iter()
        .filter(|c| c.logged)
        .map(|c| value((c.write)(rec)))
        .collect();
    let [table, log] = &sql.tables;
    [
        format!(
            "INSERT INTO {table} ({}) VALUES ({}) {}",
            names.join(", "),
            values.join(", "),
            D::upsert(names[0], &names[1..]),
        ),
        format!(
            "INSERT INTO {log} ({}, at) VALUES ({}, {})",
            logged.join(", "),
            log_values.join(", "),
            D::NOW,
        ),
    ]
}

/// True when `e` is a database error with `code`; SQLite's generic code `1` must also
/// carry `sqlite_text` in its message.
fn is_db_error(e: &sqlx::Error, code: &str, sqlite_text: &str) -> bool {
    match e {
        sqlx::Error::Database(db) => {
            db.code().as_deref() == Some(code)
                && (code != "1" || db.message().contains(sqlite_text))
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dialect::{mysql::My, postgres::Pg, sqlite::Lite};

    /// Every column name of [`COLUMNS`] appears in the history DDL, the upsert and (if
    /// logged) the log insert of every dialect, and nowhere is a column spelled that the
    /// list does not have.
    #[test]
    fn every_dialect_is_generated_from_the_one_list() {
        fn check<D: Dialect>() {
            let sql = HistorySql::new::<D>(Some("s"), "h", true, VersionColumn::Integer);
            let rec = sample();
            let write = sql.record_sql(&rec, Timing::InBatch);
            for c in COLUMNS {
                assert!(
                    sql.create[0].contains(&format!("\n    {} ", c.name)),
                    "{}",
                    c.name
                );
                assert!(write.contains(c.name), "{}", c.name);
                assert_eq!(
                    sql.create[1].contains(&format!("\n    {} ", c.name)),
                    c.logged
                );
            }
            assert!(
                sql.create[0]
                    .contains("CHECK (status IN ('running', 'applied', 'failed', 'rolled_back'))")
            );
            assert_eq!(write.matches(";\n").count() + 1, RECORD_STATEMENTS as usize);
            assert!(write.ends_with(&format!("{})", D::NOW)));
        }
        check::<Pg>();
        check::<My>();
        check::<Lite>();
    }

    fn sample() -> RecordWrite {
        let now = chrono::Utc::now();
        RecordWrite {
            version: MigrationKey::from(3),
            name: "it's".into(),
            checksum: "c".repeat(64),
            down_checksum: None,
            status: RecordStatus::Applied,
            batch: 1,
            rollout_id: "r".into(),
            applied_by: "a".into(),
            started_at: now,
            finished_at: Some(now),
            duration_ms: Some(1),
            error: None,
            statements_done: 1,
            statements_total: 1,
            rolled_back_at: None,
            log_status: None,
            direction: Direction::Up,
            no_transaction: false,
        }
    }

    #[test]
    fn an_older_layout_reads_null_and_is_upgraded_column_by_column() {
        let sql = HistorySql::new::<Pg>(Some("s"), "h", false, VersionColumn::Integer);
        let layout1: BTreeSet<String> = COLUMNS
            .iter()
            .filter(|c| c.since == 1)
            .map(|c| c.name.to_owned())
            .collect();
        let read = sql.select_present(&layout1);
        assert!(read.ends_with(", NULL FROM \"s\".\"h\""), "{read}");
        assert_eq!(
            sql.upgrades(&layout1),
            [
                "ALTER TABLE \"s\".\"h\" ADD COLUMN down_checksum TEXT",
                "ALTER TABLE \"s\".\"h\" ADD COLUMN no_transaction BIGINT"
            ]
        );
        let all: BTreeSet<String> = COLUMNS.iter().map(|c| c.name.to_owned()).collect();
        assert!(sql.upgrades(&all).is_empty());
        assert_eq!(sql.select_present(&all), sql.select);
        assert_eq!(COLUMNS.iter().map(|c| c.since).max(), Some(LAYOUT));
    }

    #[test]
    fn a_row_read_as_text_parses_and_names_a_bad_column() {
        let row = |status: &str| {
            vec![
                Some("7".into()),
                Some("seven".into()),
                Some("c".repeat(64)),
                Some(status.into()),
                Some("3".into()),
                None,
                Some("2".into()),
                Some("2".into()),
                Some("up".into()),
                None,
                Some("1".into()),
            ]
        };
        let rec = record_from_text(row("applied")).unwrap();
        assert_eq!(rec.version, 7);
        assert_eq!(
            (rec.status, rec.batch, rec.statements_total),
            (RecordStatus::Applied, 3, 2)
        );
        assert_eq!(rec.no_transaction, Some(true));
        let err = record_from_text(row("done")).unwrap_err();
        assert!(err.contains("history column status"), "{err}");
    }
}

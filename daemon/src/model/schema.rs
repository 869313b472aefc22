//! A tenant's schema as one canonical model ([`SchemaModel`]), whatever its dialect, and its
//! fingerprint: the SHA-256 of the model as JSON with every object key sorted.
//!
//! What is kept and why: objects are keyed by name in sorted maps, so the order in which a
//! database lists them (creation order, OIDs, a dump's order) never counts; a table's columns
//! stay a list, in the table's order, because `SELECT *`, `INSERT` without a column list and
//! a dump's `COPY` depend on it. Values are the database's own canonical text (PostgreSQL's
//! `pg_get_expr`, `format_type`, `pg_get_constraintdef`, `pg_get_viewdef`; MySQL's
//! `information_schema`; SQLite's schema text re-printed by sqlparser), with runs of
//! whitespace made one space ([`squash`]). Function and trigger bodies are kept as a hash of
//! their normalised definition. The introspection (`dialect/introspect/`) fills it;
//! `schema_diff.rs` compares two.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// One tenant's schema: its tables, views, sequences, enum types and functions, each keyed
/// by its name within the tenant's schema (or database). Avocet's own history and log tables
/// are never in it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SchemaModel {
    /// Tables by name.
    pub tables: BTreeMap<String, Table>,
    /// Views and materialized views by name.
    pub views: BTreeMap<String, View>,
    /// Sequences by name (PostgreSQL; those of identity columns are the column's).
    pub sequences: BTreeMap<String, Sequence>,
    /// Enum types by name, their labels in their order (PostgreSQL).
    pub enums: BTreeMap<String, Vec<String>>,
    /// Functions and procedures by signature (`name(argument types)`), each the hex SHA-256
    /// of its normalised definition ([`hash_text`]).
    pub functions: BTreeMap<String, String>,
}

/// One table.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Table {
    /// Its columns in the table's order.
    pub columns: Vec<Column>,
    /// Primary key, unique, check, foreign key and exclusion constraints by name.
    pub constraints: BTreeMap<String, Constraint>,
    /// Indexes by name, except those that back a constraint (the constraint says it).
    pub indexes: BTreeMap<String, Index>,
    /// Triggers by name, each the hex SHA-256 of its normalised definition.
    pub triggers: BTreeMap<String, String>,
}

/// One column.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Column {
    /// Its name.
    pub name: String,
    /// Its type as the database spells it canonically (`character varying(40)`, `int(11)`,
    /// SQLite's declared type upper-cased).
    pub data_type: String,
    /// True when it takes `NULL`.
    pub nullable: bool,
    /// Its default expression, normalised; `None` without one.
    pub default: Option<String>,
    /// Identity or generation: `identity always`, `identity by default`,
    /// `stored <expr>`, `virtual <expr>`, `auto_increment`; `None` for a plain column.
    pub generated: Option<String>,
    /// Its collation where it is not its type's (or table's) default.
    pub collation: Option<String>,
}

/// What kind of constraint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConstraintKind {
    /// `PRIMARY KEY`.
    PrimaryKey,
    /// `UNIQUE`.
    Unique,
    /// `CHECK`.
    Check,
    /// `FOREIGN KEY`.
    ForeignKey,
    /// PostgreSQL's `EXCLUDE`.
    Exclusion,
}

impl ConstraintKind {
    /// How a diff names it: `primary key`, `unique constraint`, `check constraint`, ….
    pub fn label(self) -> &'static str {
        match self {
            Self::PrimaryKey => "primary key",
            Self::Unique => "unique constraint",
            Self::Check => "check constraint",
            Self::ForeignKey => "foreign key",
            Self::Exclusion => "exclusion constraint",
        }
    }
}

/// One constraint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Constraint {
    /// Its kind.
    pub kind: ConstraintKind,
    /// Its canonical definition: `PRIMARY KEY (id)`, `CHECK (total >= 0)`,
    /// `FOREIGN KEY (account_id) REFERENCES accounts(id) ON DELETE CASCADE`.
    pub definition: String,
    /// True when the database made up its name (`accounts_pkey`, `orders_ibfk_1`,
    /// `sqlite_autoindex_t_1`, an unnamed SQLite constraint): see
    /// [`FingerprintOptions::ignore_generated_names`].
    pub generated_name: bool,
}

/// One index.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Index {
    /// True for a unique index.
    pub unique: bool,
    /// Its access method (`btree`, `gin`, MySQL's `BTREE`/`FULLTEXT`); `None` where the
    /// database has one (SQLite).
    pub method: Option<String>,
    /// Its keys in order: a column or an expression, then ` DESC`, ` NULLS FIRST`/`LAST`
    /// where not the default, MySQL's prefix length as `(n)`.
    pub keys: Vec<String>,
    /// Columns carried but not keyed (PostgreSQL's `INCLUDE`).
    pub include: Vec<String>,
    /// Its partial predicate, normalised; `None` for a full index.
    pub predicate: Option<String>,
    /// True when the database made up its name.
    pub generated_name: bool,
}

/// One view.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct View {
    /// True for a materialized view.
    pub materialized: bool,
    /// Its query, normalised (PostgreSQL's `pg_get_viewdef`, MySQL's `VIEW_DEFINITION`
    /// without the database's name, SQLite's text re-printed).
    pub definition: String,
}

/// One sequence: its type and bounds, never its current value.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sequence {
    /// `bigint`, `integer`, `smallint`.
    pub data_type: String,
    /// `START WITH`.
    pub start: String,
    /// `INCREMENT BY`.
    pub increment: String,
    /// `MINVALUE`.
    pub min: String,
    /// `MAXVALUE`.
    pub max: String,
    /// `CYCLE`.
    pub cycle: bool,
}

/// How a fingerprint reads the model.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FingerprintOptions {
    /// Compare constraints and indexes whose name the database made up by what they are
    /// rather than by name (their key becomes `<kind> <definition>`). Off by default: a
    /// later migration that says `DROP CONSTRAINT orders_ibfk_1` or `DROP INDEX
    /// sqlite_autoindex_t_1` fails on a tenant where the name differs, so a different
    /// generated name is drift a migration will trip on.
    pub ignore_generated_names: bool,
}

impl SchemaModel {
    /// The model as compared under `opts`: with `ignore_generated_names`, each constraint
    /// or index with a generated name re-keyed by what it is.
    pub fn canonical(&self, opts: FingerprintOptions) -> SchemaModel {
        if !opts.ignore_generated_names {
            return self.clone();
        }
        let mut model = self.clone();
        for table in model.tables.values_mut() {
            table.constraints = std::mem::take(&mut table.constraints)
                .into_iter()
                .map(|(name, c)| match c.generated_name {
                    true => (format!("{} {}", c.kind.label(), c.definition), c),
                    false => (name, c),
                })
                .collect();
            table.indexes = std::mem::take(&mut table.indexes)
                .into_iter()
                .map(|(name, i)| match i.generated_name {
                    true => (format!("index ({})", i.keys.join(", ")), i),
                    false => (name, i),
                })
                .collect();
        }
        model
    }

    /// The model as canonical JSON: every object's keys sorted (serde_json's map is a
    /// `BTreeMap`), columns in table order, no whitespace.
    pub fn canonical_json(&self, opts: FingerprintOptions) -> String {
        let value = serde_json::to_value(self.canonical(opts)).unwrap_or_default();
        value.to_string()
    }

    /// The fingerprint: hex SHA-256 of [`SchemaModel::canonical_json`], 64 characters.
    pub fn fingerprint(&self, opts: FingerprintOptions) -> String {
        hash_text(&self.canonical_json(opts))
    }

    /// How many objects the model holds (tables, views, sequences, enums, functions), for
    /// logs.
    pub fn object_count(&self) -> usize {
        self.tables.len()
            + self.views.len()
            + self.sequences.len()
            + self.enums.len()
            + self.functions.len()
    }
}

/// Hex SHA-256 of `text`.
pub fn hash_text(text: &str) -> String {
    hex::encode(Sha256::digest(text.as_bytes()))
}

/// `text` with every run of whitespace made one space, trimmed, and a trailing `;` dropped:
/// how every definition read as text is compared.
pub fn squash(text: &str) -> String {
    let joined = text.split_whitespace().collect::<Vec<_>>().join(" ");
    joined.trim_end_matches(';').trim_end().to_owned()
}

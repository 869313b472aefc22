//! The on-disk layouts a migration set may come in.

use std::fmt;

/// How a set's directory is laid out: the migration tool whose files it holds. Each format
/// is read unchanged, its versions parsed and ordered as its tool does, and its
/// no-transaction directive mapped to Avocet's (DESIGN.md rule 2).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, Default, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "kebab-case")]
pub enum SetFormat {
    /// Decided per directory when the set loads: `diesel` when a subdirectory holds
    /// `up.sql`; `refinery` or `flyway` for `V<version>__<name>.sql` files (`refinery` when
    /// one carries `-- refinery:noTransaction`); `dbmate` when a file has a
    /// `-- migrate:up` line; else `sqlx`.
    #[default]
    Auto,
    /// sqlx (and Avocet's own): `<version>_<name>.up.sql` with an optional `.down.sql`, or
    /// one `<version>_<name>.sql`; `-- no-transaction` or `-- avocet:no-transaction`.
    Sqlx,
    /// golang-migrate: `<version>_<title>.up.sql` and `.down.sql`.
    GolangMigrate,
    /// diesel: a directory `<version>_<name>/` with `up.sql`, optional `down.sql`, and
    /// optional `metadata.toml` (`run_in_transaction = false`); the version is the
    /// directory's prefix without its dashes (`2024-03-13-170000` is `20240313170000`).
    Diesel,
    /// dbmate: `<version>_<name>.sql` holding a `-- migrate:up` section and an optional
    /// `-- migrate:down` section; `transaction:false` after a marker.
    Dbmate,
    /// Flyway: `V<version>__<description>.sql`, undo scripts `U<version>__….sql`, and a
    /// `V….sql.conf` beside a script with `executeInTransaction=false`.
    Flyway,
    /// refinery: `V<version>__<name>.sql`; `-- refinery:noTransaction`.
    Refinery,
}

impl SetFormat {
    /// The spelling in configuration: `auto`, `sqlx`, `golang-migrate`, `diesel`, `dbmate`,
    /// `flyway`, `refinery`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Auto => "auto",
            Self::Sqlx => "sqlx",
            Self::GolangMigrate => "golang-migrate",
            Self::Diesel => "diesel",
            Self::Dbmate => "dbmate",
            Self::Flyway => "flyway",
            Self::Refinery => "refinery",
        }
    }
}

impl std::str::FromStr for SetFormat {
    type Err = String;

    /// Parses the configuration's spelling ([`SetFormat::as_str`]).
    ///
    /// # Errors
    /// A sentence naming the unknown value and the known ones.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        [
            Self::Auto,
            Self::Sqlx,
            Self::GolangMigrate,
            Self::Diesel,
            Self::Dbmate,
            Self::Flyway,
            Self::Refinery,
        ]
        .into_iter()
        .find(|f| f.as_str() == s)
        .ok_or_else(|| {
            format!(
                "{s:?} is not a set format (auto, sqlx, golang-migrate, diesel, dbmate, flyway, \
                 refinery)"
            )
        })
    }
}

impl fmt::Display for SetFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

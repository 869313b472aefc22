//! Migration sets: loading a directory of scripts, checksums and statement splitting.
//!
//! Formats accepted in one directory (sqlx's, so sqlx projects move over unchanged):
//! `<version>_<name>.up.sql` with optional `<version>_<name>.down.sql`, or the one-file
//! `<version>_<name>.sql` (no `down`). Versions are positive integers ordered numerically.
//!
//! | file | what |
//! | --- | --- |
//! | `load.rs` | a directory of files to a [`MigrationSet`](crate::model::MigrationSet) |
//! | `script.rs` | one file: normalising, checksum, markers, what is refused |
//! | `split.rs` | statements: where each ends, from the tokens |
//! | `delimiter.rs` | the `mysql` client's `DELIMITER` lines (MySQL) |
//! | `lint.rs` | the lint: statements that destroy data or hold blocking locks |
//! | `placeholders.rs` | a script's `${name}` placeholders and where each sits |
//! | `cache.rs` | [`SetCache`]: a set kept until its directory changes |

mod cache;
mod delimiter;
mod lint;
mod load;
mod placeholders;
mod script;
mod split;

pub(crate) use cache::SetCache;
pub use load::CatalogError;
pub(crate) use load::load_dir;
pub use script::ScriptError;
pub use script::parse_script;

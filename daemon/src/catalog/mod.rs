//! Migration sets: loading a directory of scripts, checksums and statement splitting.
//!
//! Formats accepted in one directory (sqlx's, so sqlx projects move over unchanged):
//! `<version>_<name>.up.sql` with optional `<version>_<name>.down.sql`, or the one-file
//! `<version>_<name>.sql` (no `down`). Versions are positive integers ordered numerically.

mod load;
mod script;

pub use load::CatalogError;
pub(crate) use load::load_dir;
pub use script::ScriptError;
pub(crate) use script::parse_script;

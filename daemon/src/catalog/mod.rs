//! Migration sets: loading a directory of scripts, checksums and statement splitting.
//!
//! A set is read unchanged in the layout of the tool that wrote it (sqlx, golang-migrate,
//! diesel, dbmate, Flyway, refinery: [`SetFormat`](crate::model::SetFormat)), configured
//! per fleet or detected per directory. Versions are integers, Flyway's dotted versions or
//! repeatables' keys, in the order of the tool that wrote the set
//! ([`VersionOrder`](crate::model::VersionOrder)).
//!
//! | file | what |
//! | --- | --- |
//! | `source/` | one reader per on-disk format, behind one `MigrationSource` trait |
//! | `load.rs` | a format's files to a [`MigrationSet`](crate::model::MigrationSet) |
//! | `script.rs` | one file: normalising, checksum, markers, what is refused |
//! | `tokens.rs` | the tokenizer a window at a time: memory follows the longest statement |
//! | `split.rs` | statements: where each ends, from the tokens |
//! | `delimiter.rs` | the `mysql` client's `DELIMITER` lines (MySQL) |
//! | `lint.rs` | the lint: statements that destroy data or hold blocking locks |
//! | `parse.rs` | sqlparser on a thread with a known stack, never past a size |
//! | `placeholders.rs` | a script's `${name}` placeholders and where each sits |
//! | `published.rs` | a set given as files (path → bytes), loaded as its directory is |
//! | `cache.rs` | [`SetCache`]: a set kept until its directory changes |

mod cache;
mod delimiter;
mod lint;
mod load;
mod parse;
mod placeholders;
mod published;
mod script;
mod source;
mod split;
mod tokens;

pub(crate) use cache::SetCache;
pub use load::CatalogError;
pub(crate) use load::load_dir;
pub(crate) use published::{SetFile, load_files, path_refusal};
pub use script::ScriptError;
pub use script::parse_script;
pub(crate) use source::resolve as resolve_format;
pub(crate) use source::set_max_migration_bytes;

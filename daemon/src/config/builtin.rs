//! The built-in default, for a first run without a configuration file: the repository's
//! `config/avocet.toml` (fleet `demo`, three SQLite tenants under `data/`) and the SQLite
//! sample set, both compiled into the binary.

use std::path::Path;

use include_dir::{Dir, include_dir};

use super::Config;

/// `config/avocet.toml`, as the repository ships it.
pub(super) const CONFIG: &str = include_str!("../../../config/avocet.toml");

/// `migrations/sqlite`, the sample set of the demo fleet.
static SAMPLE_SET: Dir<'_> = include_dir!("$CARGO_MANIFEST_DIR/../migrations/sqlite");

/// Where the sample set is written, relative to the working directory.
pub(super) const SAMPLE_DIR: &str = "data/sample-migrations/sqlite";

/// Writes the sample set to [`SAMPLE_DIR`] (keeping files already there), points every
/// fleet at it, and creates `data/` and each SQLite tenant's file, so all of them exist
/// once the daemon listens. SQLite opens a zero-length file as an empty database.
///
/// # Errors
/// When a directory or file cannot be created.
pub(super) fn prepare(config: &mut Config) -> std::io::Result<()> {
    let dir = Path::new(SAMPLE_DIR);
    std::fs::create_dir_all(dir)?;
    for file in SAMPLE_SET.files() {
        let path = dir.join(file.path());
        if !path.exists() {
            std::fs::write(&path, file.contents())?;
        }
    }
    for fleet in config.fleets.values_mut() {
        fleet.migrations = dir.to_owned();
        for tenant in &fleet.tenants {
            let Some(rest) = tenant.dsn.strip_prefix("sqlite://") else {
                continue;
            };
            let file = Path::new(rest.split('?').next().unwrap_or_default());
            if let Some(parent) = file.parent().filter(|p| !p.as_os_str().is_empty()) {
                std::fs::create_dir_all(parent)?;
            }
            if !file.exists() {
                std::fs::File::create(file)?;
            }
        }
    }
    Ok(())
}

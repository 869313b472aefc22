//! Helpers shared by the client's test binaries: a copy of the sample SQLite set and a
//! fleet's SQLite tenants, each in a test's own directory.

// Each test binary compiles this module and uses part of it.
#![allow(dead_code)]

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
};

use avocet_daemon::TenantConfig;

/// Copies the sample SQLite set (`migrations/sqlite`) into `dir/migrations`; returns it.
pub(crate) fn copy_sample_set(dir: &Path) -> PathBuf {
    let sample = Path::new(env!("CARGO_MANIFEST_DIR")).join("../migrations/sqlite");
    let migrations = dir.join("migrations");
    std::fs::create_dir(&migrations).unwrap();
    for entry in std::fs::read_dir(sample).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), migrations.join(entry.file_name())).unwrap();
    }
    migrations
}

/// One SQLite tenant per id, each a file `dir/<id>.db` created on first use.
pub(crate) fn sqlite_tenants(dir: &Path, ids: &[&str]) -> Vec<TenantConfig> {
    ids.iter()
        .map(|id| TenantConfig {
            id: (*id).into(),
            dsn: format!("sqlite://{}/{id}.db?mode=rwc", dir.display()),
            schema: None,
            labels: BTreeMap::new(),
            vars: Default::default(),
            password_env: None,
            password_file: None,
        })
        .collect()
}

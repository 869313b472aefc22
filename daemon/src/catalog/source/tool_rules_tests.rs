//! Rules of the tools as their sources have them (issue 28): diesel's text order, Flyway's
//! baseline migrations, dbmate's sections, and the way out of a refused `BEGIN`/`COMMIT`
//! that each format names.

use std::path::Path;

use crate::{
    catalog::{CatalogError, load_dir},
    model::{DialectKind, MigrationSet, SetFormat, VersionOrder},
};

fn dir_with(files: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for (name, text) in files {
        let path = dir.path().join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }
    dir
}

fn load(dir: &Path, format: SetFormat) -> Result<MigrationSet, CatalogError> {
    load_dir(dir, DialectKind::Postgres, format)
}

#[test]
fn diesel_versions_of_14_and_18_digits_load_in_diesels_text_order() {
    let dir = dir_with(&[
        ("00000000000000_diesel_initial_setup/up.sql", "SELECT 0;"),
        ("2025-11-19-123456-0000_a/up.sql", "SELECT 1;"),
        ("2025-12-29-110242-0000_b/up.sql", "SELECT 2;"),
        ("2026-01-20-162913_c/up.sql", "SELECT 3;"),
        ("2024-03-13-170000_d/up.sql", "SELECT 4;"),
    ]);
    let set = load(dir.path(), SetFormat::Auto).unwrap();
    assert_eq!(set.order(), VersionOrder::Text);
    let names: Vec<&str> = set.iter().map(|m| m.name.as_str()).collect();
    assert_eq!(names, ["diesel_initial_setup", "d", "a", "b", "c"]);
    assert_eq!(set.latest(), Some(20260120162913.into()));
    assert_eq!(set.get(202512291102420000).unwrap().name, "b");
    // Other formats keep numbers.
    let sqlx = dir_with(&[("9_a.sql", "SELECT 9;"), ("10_b.sql", "SELECT 10;")]);
    let set = load(sqlx.path(), SetFormat::Auto).unwrap();
    assert_eq!(set.order(), VersionOrder::Numeric);
    let names: Vec<&str> = set.iter().map(|m| m.name.as_str()).collect();
    assert_eq!(names, ["a", "b"]);
}

#[test]
fn flyway_baseline_migrations_are_read_beside_versioned_ones() {
    let dir = dir_with(&[
        ("V1_0_1__init.sql", "CREATE TABLE a (id int);"),
        ("V1_20_0__more.sql", "CREATE TABLE b (id int);"),
        (
            "B1_20_0__1.0.0_baseline.sql",
            "CREATE TABLE a (id int);\nCREATE TABLE b (id int);",
        ),
        ("V1_20_1__next.sql", "CREATE TABLE c (id int);"),
    ]);
    let set = load(dir.path(), SetFormat::Auto).unwrap();
    assert_eq!(set.format(), SetFormat::Flyway);
    assert!(set.warnings().is_empty(), "{:?}", set.warnings());
    let versioned: Vec<String> = set.iter().map(|m| m.version.to_string()).collect();
    assert_eq!(versioned, ["1.0.1", "1.20.0", "1.20.1"]);
    let baselines: Vec<(String, &str)> = set
        .baselines()
        .map(|b| (b.version.to_string(), b.name.as_str()))
        .collect();
    assert_eq!(baselines, [("1.20.0".into(), "1.0.0_baseline")]);
    assert!(
        set.baseline(&"1.20.0".parse().unwrap())
            .unwrap()
            .down
            .is_none()
    );
    // Only baselines: still Flyway's layout, and the baseline is the latest version.
    let only = dir_with(&[("B2__base.sql", "SELECT 2;")]);
    let set = load(only.path(), SetFormat::Auto).unwrap();
    assert_eq!(set.format(), SetFormat::Flyway);
    assert_eq!(set.latest(), Some(2.into()));
    let twice = dir_with(&[("B2__a.sql", "SELECT 2;"), ("B2.0__b.sql", "SELECT 2;")]);
    let err = load(twice.path(), SetFormat::Flyway).unwrap_err();
    assert!(
        matches!(err, CatalogError::DuplicateVersion { .. }),
        "{err}"
    );
    // refinery has no baseline migrations: such a file is not read, and said so.
    let refinery = dir_with(&[("V1__a.sql", "SELECT 1;"), ("B2__b.sql", "SELECT 2;")]);
    let set = load(refinery.path(), SetFormat::Refinery).unwrap();
    assert_eq!(set.len(), 1);
    assert!(
        set.warnings()[0].contains("B2__b.sql"),
        "{:?}",
        set.warnings()
    );
}

#[test]
fn dbmate_runs_every_section_and_rolls_back_every_section_in_file_order() {
    let two = "-- migrate:up\nCREATE TABLE t1 (a int);\n\n-- migrate:down\nDROP TABLE t1;\n\n\
               --migrate:up transaction:false\nCREATE INDEX CONCURRENTLY i ON t1 (a);\n\n\
               -- migrate:down\nDROP INDEX i;\n";
    let dir = dir_with(&[("20250101000000_two.sql", two)]);
    let set = load(dir.path(), SetFormat::Auto).unwrap();
    let m = set.get(20250101000000).unwrap();
    let up: Vec<&str> = m.up.statements().collect();
    assert_eq!(up.len(), 2, "{up:?}");
    assert!(up[0].ends_with("CREATE TABLE t1 (a int)"), "{up:?}");
    assert!(
        up[1].ends_with("CREATE INDEX CONCURRENTLY i ON t1 (a)"),
        "{up:?}"
    );
    assert!(m.up.no_transaction, "a section with transaction:false");
    let down = m.down.as_ref().unwrap();
    let stmts: Vec<&str> = down.statements().collect();
    assert_eq!(stmts.len(), 2, "{stmts:?}");
    assert!(stmts[0].ends_with("DROP TABLE t1") && stmts[1].ends_with("DROP INDEX i"));
    assert!(!down.no_transaction);
    assert_eq!(down.spans[1].line, 11, "a down statement keeps its line");
    assert!(set.warnings().is_empty(), "{:?}", set.warnings());
}

#[test]
fn dbmate_files_run_in_the_order_of_their_names() {
    let file = "-- migrate:up\nSELECT 1;\n-- migrate:down\n";
    let dir = dir_with(&[
        ("9_nine.sql", file),
        ("10_ten.sql", file),
        ("100_hundred.sql", file),
    ]);
    let set = load(dir.path(), SetFormat::Dbmate).unwrap();
    assert_eq!(set.order(), VersionOrder::Text);
    let names: Vec<&str> = set.iter().map(|m| m.name.as_str()).collect();
    assert_eq!(names, ["hundred", "ten", "nine"]);
    assert_eq!(set.latest(), Some(9.into()));
}

#[test]
fn dbmate_files_dbmate_refuses_are_warned_about_or_refused() {
    let no_down = dir_with(&[(
        "20250101000000_no_down.sql",
        "-- migrate:up\nCREATE TABLE t1 (a int);\n",
    )]);
    let set = load(no_down.path(), SetFormat::Dbmate).unwrap();
    assert!(set.get(20250101000000).unwrap().down.is_none());
    let warning = &set.warnings()[0];
    assert!(
        warning.contains("20250101000000_no_down.sql")
            && warning.contains("dbmate requires each migration to define a down block"),
        "{warning}"
    );
    for (text, says) in [
        (
            "-- migrate:up\nSELECT 1;\n-- migrate:down\nSELECT 2;\n-- migrate:down\nSELECT 3;\n",
            "two `-- migrate:down`",
        ),
        (
            "CREATE TABLE early (a int);\n-- migrate:up\nSELECT 1;\n-- migrate:down\n",
            "statements before",
        ),
        ("-- migrate:upgrade\nSELECT 1;\n", "no `-- migrate:up`"),
    ] {
        let dir = dir_with(&[("20250101000000_bad.sql", text)]);
        let err = load(dir.path(), SetFormat::Dbmate).unwrap_err();
        assert!(err.to_string().contains(says), "{text:?}: {err}");
    }
}

#[test]
fn a_refused_begin_names_the_formats_own_way_out_of_the_transaction() {
    let script = "BEGIN;\nCREATE TABLE t (a int);\nCOMMIT;\n";
    let dbmate = format!("-- migrate:up\n{script}-- migrate:down\n");
    for (format, file, text, fix) in [
        (
            SetFormat::Flyway,
            "V1__t.sql",
            script,
            "executeInTransaction=false",
        ),
        (
            SetFormat::Diesel,
            "1_t/up.sql",
            script,
            "run_in_transaction = false",
        ),
        (SetFormat::Dbmate, "1_t.sql", &dbmate, "transaction:false"),
        (
            SetFormat::Refinery,
            "V1__t.sql",
            script,
            "-- refinery:noTransaction",
        ),
        (SetFormat::Sqlx, "1_t.sql", script, "-- no-transaction"),
        (
            SetFormat::GolangMigrate,
            "1_t.up.sql",
            script,
            "-- avocet:no-transaction",
        ),
    ] {
        let dir = dir_with(&[(file, text)]);
        for dialect in [DialectKind::Postgres, DialectKind::Sqlite] {
            let err = load_dir(dir.path(), dialect, format)
                .unwrap_err()
                .to_string();
            assert!(
                err.contains(fix) && err.contains("-- avocet:no-transaction"),
                "{format} on {dialect}: {err}"
            );
        }
        // MySQL runs statement by statement: nothing to end.
        assert!(load_dir(dir.path(), DialectKind::Mysql, format).is_ok());
    }
    // Flyway's fix, applied: the file runs outside a transaction.
    let fixed = dir_with(&[
        ("V1__t.sql", script),
        ("V1__t.sql.conf", "executeInTransaction=false\n"),
    ]);
    let set = load(fixed.path(), SetFormat::Flyway).unwrap();
    assert!(set.get(1).unwrap().up.no_transaction);
}

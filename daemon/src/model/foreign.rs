//! Another migration tool's history, as read from its own table, and the checksums those
//! tools compute, so a database they manage can be adopted (recorded in Avocet's history
//! without running anything) only where its files are the ones that ran.
//!
//! Sources of each rule: sqlx `sqlx-core/src/migrate/migration.rs` (SHA-384 of the file's
//! text); Flyway `ChecksumCalculator.java` (CRC-32 over the file's lines without their
//! terminators, one leading BOM dropped, stored as a signed 32-bit integer); refinery
//! `refinery_core/src/runner.rs` (SipHash-1-3, zero key, over the name, the version and the
//! text as Rust's `Hash` writes them, stored as decimal text).

use std::hash::{Hash, Hasher};

use sha2::{Digest, Sha384};

/// One row of another tool's history table, every column read as text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ForeignRow {
    /// The version as the tool stores it (`20240313170000`, `1`, `1.2`); `None` for a
    /// Flyway repeatable migration.
    pub version: Option<String>,
    /// Its name or description, where the tool keeps one.
    pub name: Option<String>,
    /// False for a row the tool marks unfinished: sqlx `success = false`, golang-migrate
    /// `dirty = true`, Flyway `success = false`.
    pub ok: bool,
    /// The tool's checksum: sqlx hex SHA-384, Flyway a signed 32-bit integer, refinery an
    /// unsigned 64-bit integer, all as text; `None` where the tool keeps none.
    pub checksum: Option<String>,
    /// Flyway's `type` column (`SQL`, `BASELINE`, `UNDO_SQL`, `SCHEMA`, `DELETE`, …).
    pub kind: Option<String>,
}

/// sqlx's checksum of a script's text: lowercase hex SHA-384 (96 characters).
pub fn sqlx_checksum(text: &str) -> String {
    hex::encode(Sha384::digest(text.as_bytes()))
}

/// Flyway's checksum of a script's text: CRC-32 (ISO-HDLC) over the UTF-8 bytes of each line
/// with its terminator (`\r\n`, `\n` or `\r`) removed, one leading BOM dropped, read as a
/// signed 32-bit integer.
pub fn flyway_checksum(text: &str) -> i32 {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut crc = crc32fast::Hasher::new();
    for line in text.split(['\n', '\r']) {
        crc.update(line.as_bytes());
    }
    crc.finalize() as i32
}

/// refinery's checksum of a migration: SipHash-1-3 with a zero key over its `name`, its
/// version (an `i32` by default, an `i64` with refinery's `int8-versions`) and its text,
/// each hashed as Rust's `Hash` writes it.
pub fn refinery_checksum(name: &str, version: i64, text: &str, wide_version: bool) -> u64 {
    let mut hasher = siphasher::sip::SipHasher13::new();
    name.hash(&mut hasher);
    match wide_version {
        true => version.hash(&mut hasher),
        false => (version as i32).hash(&mut hasher),
    }
    text.hash(&mut hasher);
    hasher.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// refinery's own tests assert these for `refinery/tests/migrations_broken/V1__initial.sql`
    /// and `V2__add_cars_table.sql`, whose texts are copied here byte for byte.
    #[test]
    fn refinery_checksums_match_refinerys_test_vectors() {
        let v1 = "CREATE TABLE persons (\n    id int,\n    name varchar(255),\n    city varchar(255)\n);\n";
        let v2 = "CREATE TABLE cars (\n    id int,\n    name varchar(255)\n);\n";
        let got = [
            refinery_checksum("initial", 1, v1, false),
            refinery_checksum("add_cars_table", 2, v2, false),
        ];
        let want = [2959965718684201605, 8238603820526370208];
        assert_eq!(got, want);
    }

    #[test]
    fn flyway_ignores_line_endings_and_a_bom() {
        let lf = flyway_checksum("CREATE TABLE a (id int);\nSELECT 1;\n");
        assert_eq!(
            lf,
            flyway_checksum("\u{feff}CREATE TABLE a (id int);\r\nSELECT 1;\r\n")
        );
        assert_eq!(flyway_checksum(""), 0);
        // CRC-32 of "123456789" is 0xCBF43926 (the check value of CRC-32/ISO-HDLC).
        assert_eq!(flyway_checksum("123\n456\n789"), 0xCBF4_3926_u32 as i32);
    }

    #[test]
    fn sqlx_is_sha384_of_the_text() {
        // FIPS 180-4 example: SHA-384("abc").
        assert!(sqlx_checksum("abc").starts_with("cb00753f45a35e8bb5a03d699ac65007"));
    }
}

//! A set published as one tar archive: the digest of the same files sent one by one
//! (`./` prefixes, directory entries and GNU long names as archivers write them), and the
//! refusals of the file form (`..`, a symbolic link, an oversize set, an archive that does
//! not read), each with nothing stored.

use std::time::Duration;

use anyhow::ensure;
use avocet_daemon::DialectKind;
use avocet_tests::{Fleet, MigrationCopy, TestDaemon, sample_dir};
use tonic::Code;

use super::{files_of, header, status};

/// A ustar header for a regular file (or `kind`) whose name is `name` as given, kept
/// byte for byte (`Builder::append_data` would drop a leading `./` or refuse `..`).
fn raw_header(name: &str, size: u64, kind: tar::EntryType) -> tar::Header {
    let mut h = tar::Header::new_ustar();
    h.as_ustar_mut().expect("ustar").name[..name.len()].copy_from_slice(name.as_bytes());
    h.set_size(size);
    h.set_mode(0o644);
    h.set_entry_type(kind);
    h.set_cksum();
    h
}

/// An archive of `files` (path, bytes) named as given, with the `./` directory first
/// when `dot`.
fn archive(files: &[(String, Vec<u8>)], dot: bool) -> anyhow::Result<Vec<u8>> {
    let mut b = tar::Builder::new(Vec::new());
    if dot {
        b.append(&raw_header("./", 0, tar::EntryType::Directory), &[][..])?;
    }
    for (path, bytes) in files {
        if path.len() > 100 {
            // A GNU long name, as GNU tar writes a name of more than 100 bytes.
            let mut h = tar::Header::new_gnu();
            h.set_size(bytes.len() as u64);
            h.set_mode(0o644);
            b.append_data(&mut h, path, &bytes[..])?;
        } else {
            let h = raw_header(path, bytes.len() as u64, tar::EntryType::Regular);
            b.append(&h, &bytes[..])?;
        }
    }
    Ok(b.into_inner()?)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_set_published_as_tar_is_the_set_of_its_files_and_refusals_store_nothing()
-> anyhow::Result<()> {
    let fleet = Fleet::sqlite(1).await?;
    let own = MigrationCopy::empty()?;
    own.write("0001_own.up.sql", "CREATE TABLE own (x int);")?;
    let mut config = TestDaemon::config(&fleet, own.path(), Duration::from_secs(10))?;
    config.limits.max_set_bytes = 64 << 10;
    let d = TestDaemon::start_with(config).await?;
    let mut client = d.client();

    // Refused first, so that nothing stored by a refusal could hide behind a good set.
    let ok = |name: &str| (name.to_owned(), b"CREATE TABLE t (x int);".to_vec());
    let dotdot = archive(&[ok("0001_a.up.sql"), ok("../0002_x.up.sql")], true)?;
    let mut link = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_ustar();
    h.set_entry_type(tar::EntryType::Symlink);
    h.set_size(0);
    link.append_link(&mut h, "0001_a.up.sql", "/etc/passwd")?;
    let link = link.into_inner()?;
    let big = archive(
        &[
            ok("0001_a.up.sql"),
            (
                "0002_big.up.sql".into(),
                format!("-- {}\nSELECT 1;", "x".repeat(70 << 10)).into_bytes(),
            ),
        ],
        false,
    )?;
    let good = archive(&[ok("0001_a.up.sql")], false)?;
    let truncated = good[..700].to_vec();
    let refusals = [
        (
            "a path with ..",
            dotdot,
            Code::InvalidArgument,
            "SET_REFUSED",
            "../0002_x.up.sql",
        ),
        (
            "a symbolic link",
            link,
            Code::InvalidArgument,
            "SET_REFUSED",
            "symbolic link",
        ),
        (
            "an oversize set",
            big,
            Code::ResourceExhausted,
            "SET_TOO_LARGE",
            "0002_big.up.sql",
        ),
        (
            "a truncated archive",
            truncated,
            Code::InvalidArgument,
            "SET_REFUSED",
            "tar archive",
        ),
        (
            "a set that does not load",
            archive(&[("0001_a.up.sql".into(), b"SELECT 'x;".to_vec())], false)?,
            Code::InvalidArgument,
            "SET_REFUSED",
            "0001_a.up.sql",
        ),
    ];
    for (what, tar, code, reason, names) in refusals {
        let e = client
            .publish_tar(header("sqlite", "", "main"), tar)
            .await
            .expect_err(what);
        let (got, got_reason, message) = status(&e);
        ensure!(
            got == Some(code) && got_reason == reason && message.contains(names),
            "{what}: {got:?} {got_reason} {message}"
        );
    }
    ensure!(
        client.list_sets().await?.is_empty(),
        "a refusal stored a set"
    );

    // The sample set with a long-named migration added, as files and as an archive made
    // with `./` names and a GNU long name: one digest.
    let mut files = files_of(&sample_dir(DialectKind::Sqlite))?;
    let long = format!("9000_{}.up.sql", "a_rather_long_name".repeat(6));
    files.push((long, b"CREATE TABLE long_named (x int);".to_vec()));
    let dotted: Vec<(String, Vec<u8>)> = files
        .iter()
        .map(|(p, b)| match p.len() > 100 {
            true => (p.clone(), b.clone()),
            false => (format!("./{p}"), b.clone()),
        })
        .collect();
    let by_tar = client
        .publish_tar(header("sqlite", "", "main"), archive(&dotted, true)?)
        .await?;
    let by_files = client
        .publish_set(header("sqlite", "", ""), files.clone())
        .await?;
    ensure!(
        by_tar.created && !by_files.created && by_tar.digest == by_files.digest,
        "as tar {by_tar:?}, as files {by_files:?}"
    );
    ensure!(
        by_tar.files as usize == files.len(),
        "{} files of {}",
        by_tar.files,
        files.len()
    );
    // Read back, every file is the one archived.
    let mut want = files;
    want.sort();
    let back: Vec<(String, Vec<u8>)> = client
        .get_set("main", true)
        .await?
        .files
        .into_iter()
        .map(|f| (f.path, f.data))
        .collect();
    ensure!(
        back == want,
        "the files read back differ from the archive's"
    );
    Ok(())
}

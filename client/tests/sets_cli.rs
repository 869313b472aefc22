//! `avocet sets` against an in-process daemon serving a SQLite fleet: a directory
//! published prints Plan's digest for it, reads back byte for byte with `sets get --files`,
//! is tagged, and is rolled out with `apply --set TAG`; the same files as a tar archive, from
//! a file or standard input, are the same set.

use std::{collections::BTreeMap, path::Path, process::Output};

use avocet_daemon::{Config, DialectKind, FleetConfig, TenantConfig};
use serde_json::Value;

/// Starts a daemon over two SQLite tenants and the sample set; its address, the sample
/// set's directory, and the temporary directory holding everything.
async fn start() -> (String, std::path::PathBuf, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let sample = Path::new(env!("CARGO_MANIFEST_DIR")).join("../migrations/sqlite");
    let tenants = ["acme", "globex"]
        .iter()
        .map(|id| TenantConfig {
            id: (*id).into(),
            dsn: format!("sqlite://{}/{id}.db?mode=rwc", dir.path().display()),
            schema: None,
            labels: BTreeMap::new(),
            vars: Default::default(),
            password_env: None,
            password_file: None,
        })
        .collect();
    // The fleet's own directory is empty: what runs comes from the published set.
    let own = dir.path().join("own");
    std::fs::create_dir(&own).unwrap();
    let fleet = FleetConfig {
        tenants,
        sqlite_root: Some(dir.path().to_owned()),
        ..FleetConfig::new(DialectKind::Sqlite, own)
    };
    let config = Config {
        fleets: BTreeMap::from([("demo".into(), fleet)]),
        control_store: format!("sqlite://{}/control.db?mode=rwc", dir.path().display()),
        ..Config::default()
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(avocet_daemon::serve(
        listener,
        config,
        std::future::pending(),
    ));
    (addr, sample, dir)
}

async fn avocet(args: &[&str]) -> Output {
    tokio::process::Command::new(env!("CARGO_BIN_EXE_avocet"))
        .args(args)
        .env_remove("AVOCET_ADDR")
        .env_remove("AVOCET_TOKEN")
        .output()
        .await
        .unwrap()
}

/// `avocet ARGS` with `input` on its standard input.
async fn avocet_with_stdin(args: &[&str], input: &[u8]) -> Output {
    let args: Vec<String> = args.iter().map(|a| (*a).to_owned()).collect();
    let input = input.to_vec();
    tokio::task::spawn_blocking(move || {
        use std::io::Write;
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_avocet"))
            .args(&args)
            .env_remove("AVOCET_ADDR")
            .env_remove("AVOCET_TOKEN")
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(&input).unwrap();
        child.wait_with_output().unwrap()
    })
    .await
    .unwrap()
}

fn ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_directory_published_reads_back_and_rolls_out_by_tag() {
    let (addr, sample, dir) = start().await;
    let a = addr.as_str();
    // The daemon answers once its engine is open.
    let mut tries = 0;
    while !avocet(&["fleets", "--addr", a]).await.status.success() {
        tries += 1;
        assert!(tries < 200, "the daemon never answered");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let sample_s = sample.to_str().unwrap();
    let printed = ok(&avocet(&[
        "sets",
        "publish",
        sample_s,
        "--dialect",
        "sqlite",
        "--tag",
        "main",
        "--addr",
        a,
    ])
    .await);
    let digest = printed.trim();
    assert_eq!(digest.len(), 64, "{printed}");

    // The same files as a tar archive, from a file and from standard input: the same set.
    let mut archive = tar::Builder::new(Vec::new());
    archive.append_dir_all(".", &sample).unwrap();
    let archive = archive.into_inner().unwrap();
    let tar_file = dir.path().join("set.tar");
    std::fs::write(&tar_file, &archive).unwrap();
    let as_tar: Value = serde_json::from_str(&ok(&avocet(&[
        "sets",
        "publish",
        tar_file.to_str().unwrap(),
        "--dialect",
        "sqlite",
        "--addr",
        a,
        "--output",
        "json",
    ])
    .await))
    .unwrap();
    assert_eq!(as_tar["digest"], digest, "{as_tar}");
    assert_eq!(as_tar["created"], false, "{as_tar}");
    let piped = ok(&avocet_with_stdin(
        &["sets", "publish", "-", "--dialect", "sqlite", "--addr", a],
        &archive,
    )
    .await);
    assert_eq!(piped.trim(), digest);
    // A file that is not a tar archive is refused, naming what is wrong.
    std::fs::write(&tar_file, b"not an archive").unwrap();
    let refused = avocet(&[
        "sets",
        "publish",
        tar_file.to_str().unwrap(),
        "--dialect",
        "sqlite",
        "--addr",
        a,
    ])
    .await;
    assert!(!refused.status.success());
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("tar archive"),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );

    // Plan of the published set through its tag: the digest printed.
    let plan: Value = serde_json::from_str(&ok(&avocet(&[
        "plan", "--set", "main", "--addr", a, "--output", "json",
    ])
    .await))
    .unwrap();
    assert_eq!(plan["set_digest"], digest, "{plan}");

    // Every file back, byte for byte.
    let back = dir.path().join("back");
    ok(&avocet(&[
        "sets",
        "get",
        "main",
        "--files",
        back.to_str().unwrap(),
        "--addr",
        a,
    ])
    .await);
    let mut count = 0;
    for entry in std::fs::read_dir(&sample).unwrap() {
        let entry = entry.unwrap();
        let got = std::fs::read(back.join(entry.file_name())).unwrap();
        assert_eq!(
            got,
            std::fs::read(entry.path()).unwrap(),
            "{:?}",
            entry.file_name()
        );
        count += 1;
    }
    assert_eq!(std::fs::read_dir(&back).unwrap().count(), count);

    let tagged = ok(&avocet(&["sets", "tag", "release-1", digest, "--addr", a]).await);
    assert!(tagged.contains("(new tag)"), "{tagged}");
    let listed: Value = serde_json::from_str(&ok(&avocet(&[
        "sets", "list", "--addr", a, "--output", "json",
    ])
    .await))
    .unwrap();
    assert_eq!(listed[0]["digest"], digest, "{listed}");
    assert_eq!(listed[0]["tags"], serde_json::json!(["main", "release-1"]));

    ok(&avocet(&["apply", "--set", "release-1", "--yes", "--addr", a]).await);
    // Applied: a plan of the same set has nothing left on either tenant.
    let after: Value = serde_json::from_str(&ok(&avocet(&[
        "plan", "--set", "main", "--addr", a, "--output", "json",
    ])
    .await))
    .unwrap();
    let tenants = after["tenants"].as_array().unwrap();
    assert_eq!(tenants.len(), 2, "{after}");
    for t in tenants {
        assert_eq!(t["steps"], serde_json::json!([]), "{t}");
    }
}

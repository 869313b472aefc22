//! What `avocetd` says when its configuration is wrong: one line per error, naming the key
//! as the file writes it and the file, no backtrace, exit status 1.

use std::process::Command;

fn run(toml: &str) -> (Option<i32>, String) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("avocet.toml");
    std::fs::write(&file, toml).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_avocetd"))
        .arg("--config")
        .arg(&file)
        .current_dir(dir.path())
        .env("RUST_BACKTRACE", "1")
        .env_remove("AVOCET_LISTEN")
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn a_configuration_error_is_one_line_naming_the_key_and_file() {
    let (code, stderr) =
        run("[fleets.demo]\ndialect = \"sqlite\"\nmigrations = \"m\"\nconcurency = 3\n");
    assert_eq!(code, Some(1), "{stderr}");
    assert_eq!(
        stderr.matches("concurency").count(),
        2,
        "the key, then the value found: {stderr}"
    );
    assert!(
        stderr.contains("fleets.demo.concurency: unknown field"),
        "{stderr}"
    );
    assert!(stderr.contains("(in TOML file "), "{stderr}");
    assert!(!stderr.contains("default."), "{stderr}");
    assert!(!stderr.contains("backtrace"), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    let (code, stderr) = run("listen = \"0.0.0.0:7400\"\n");
    assert_eq!(code, Some(1), "{stderr}");
    assert!(
        stderr.contains("listen: 0.0.0.0:7400 is not a loopback address"),
        "{stderr}"
    );
}

//! The machine and server versions recorded with the results.

use std::path::Path;

use serde_json::{Value, json};

use crate::{fleets::Admin, tools};

fn read(path: &str) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

fn field(text: &str, key: &str) -> Option<String> {
    text.lines().find_map(|l| l.strip_prefix(key)).map(|v| {
        v.trim_start_matches([':', '=', ' ', '\t'])
            .trim()
            .trim_matches('"')
            .to_string()
    })
}

/// Machine facts: CPUs, memory, kernel, OS, and the servers' and clients' versions.
pub(crate) async fn collect(admin: &Admin) -> Value {
    let pg_version: Option<String> = sqlx::query_scalar("SELECT version()")
        .fetch_one(&admin.pg)
        .await
        .ok();
    let pg_ssl: Option<String> = sqlx::query_scalar("SHOW ssl")
        .fetch_one(&admin.pg)
        .await
        .ok();
    let pg_max: Option<String> = sqlx::query_scalar("SHOW max_connections")
        .fetch_one(&admin.pg)
        .await
        .ok();
    let mariadb = match &admin.mysql {
        Some(p) => sqlx::query_scalar::<_, String>("SELECT VERSION()")
            .fetch_one(p)
            .await
            .ok(),
        None => None,
    };
    let cpuinfo = read("/proc/cpuinfo");
    let meminfo = read("/proc/meminfo");
    json!({
        "nproc": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
        "cpu_model": field(&cpuinfo, "model name"),
        "mem_total": field(&meminfo, "MemTotal")
            .and_then(|kb| kb.trim_end_matches("kB").trim().parse::<f64>().ok())
            .map(|kb| format!("{:.1} GiB", kb / 1_048_576.0)),
        "kernel": read("/proc/sys/kernel/osrelease").trim(),
        "os": field(&read("/etc/os-release"), "PRETTY_NAME"),
        "postgres": pg_version,
        "postgres_ssl": pg_ssl,
        "postgres_max_connections": pg_max,
        "mariadb": mariadb,
        "psql": tools::version_of(Path::new("psql")),
        "mariadb_client": tools::version_of(Path::new("mariadb")),
        "sqlite3": tools::version_of(Path::new("sqlite3")),
    })
}

/// A one-line summary for the Markdown header.
pub(crate) fn summary(m: &Value) -> String {
    let s = |k: &str| m[k].as_str().unwrap_or("?").to_string();
    let pg = s("postgres");
    let pg = pg.split(" on ").next().unwrap_or(&pg).to_string();
    format!(
        "{} CPUs ({}), {} RAM, {}; {}, MariaDB {}, SQLite {}",
        m["nproc"],
        s("cpu_model"),
        s("mem_total"),
        s("os"),
        pg,
        s("mariadb"),
        s("sqlite3").split_whitespace().next().unwrap_or("?"),
    )
}

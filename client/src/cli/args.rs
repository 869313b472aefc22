//! The command line's arguments: every subcommand and flag, as clap reads them, with the
//! parsers of the values it checks before asking the daemon.

use clap::{Args as ClapArgs, Parser, Subcommand, ValueEnum};

use super::{backups, new, sets, tenants};

/// Plan, apply, roll back and verify schema migrations across a fleet of tenant databases,
/// through avocetd.
///
/// Exit status: 0 success; 1 a tenant failed, verify found problems, a plan is blocked or
/// status could not read a tenant;
/// 2 bad usage; 3 the daemon is unreachable or rejected the request.
#[derive(Parser)]
#[command(name = "avocet", version)]
pub(crate) struct Args {
    /// Daemon address.
    #[arg(long, global = true, env = "AVOCET_ADDR", default_value = avocet_client::DEFAULT_ADDR)]
    pub(crate) addr: String,
    /// Bearer token for a daemon with `[auth]` (prefer the environment variable: a flag
    /// shows in the process list).
    #[arg(long, global = true, env = "AVOCET_TOKEN", hide_env_values = true)]
    pub(crate) token: Option<String>,
    /// Send the token over plaintext (`http://`) to an address other than loopback; without
    /// it the client refuses, so a token never crosses a network in clear by mistake.
    #[arg(long, global = true)]
    pub(crate) insecure: bool,
    /// PEM CA certificate the daemon's TLS certificate must chain to; turns TLS on.
    #[arg(long, global = true, env = "AVOCET_CA")]
    pub(crate) ca: Option<std::path::PathBuf>,
    /// PEM client certificate for mutual TLS (with `--key`); turns TLS on.
    #[arg(long, global = true, env = "AVOCET_CERT", requires = "key")]
    pub(crate) cert: Option<std::path::PathBuf>,
    /// PEM private key of `--cert`.
    #[arg(long, global = true, env = "AVOCET_KEY", requires = "cert")]
    pub(crate) key: Option<std::path::PathBuf>,
    /// Longest wait for the daemon: connecting, a unary call, or a stream's first answer
    /// (e.g. `30s`).
    #[arg(long, global = true, default_value = "30s", value_parser = humantime::parse_duration)]
    pub(crate) timeout: std::time::Duration,
    /// Output: text for people (progress bars, tables), json for machines (one object per
    /// event for apply and rollback, one document otherwise).
    #[arg(long, global = true, value_enum, default_value_t = Output::Text)]
    pub(crate) output: Output,
    /// Which fleet and tenants (global: before or after the subcommand).
    #[command(flatten)]
    pub(crate) target: Target,
    #[command(subcommand)]
    pub(crate) command: Command,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum Output {
    Text,
    Json,
}

/// Which tenants of which fleet.
#[derive(ClapArgs, Clone)]
pub(crate) struct Target {
    /// Fleet name; may be left out when the daemon serves exactly one fleet.
    #[arg(long, global = true)]
    pub(crate) fleet: Option<String>,
    /// Tenant ids, comma-separated (default: every tenant).
    #[arg(long, global = true, value_delimiter = ',')]
    pub(crate) tenants: Vec<String>,
    /// Label selector, e.g. `region=eu,tier!=free` (default: every tenant).
    #[arg(long, global = true)]
    pub(crate) selector: Option<String>,
}

/// How a rollout proceeds through its tenants: the same flags for `plan` (which shows the
/// waves) as for `apply` and `rollback`.
#[derive(ClapArgs, Clone)]
pub(crate) struct StrategyArgs {
    /// The first N tenants run alone and must all succeed before the rest start.
    #[arg(long)]
    pub(crate) canary: Option<u32>,
    /// Which tenants are the canaries, by labels (`tier=internal`); default: tenants with
    /// migrations to run, then by id.
    #[arg(long, value_name = "LABELS")]
    pub(crate) canary_selector: Option<String>,
    /// Tenants per wave after the canary: a count (`50`) or a percentage (`10%`), at least
    /// one tenant (leave it out for one wave).
    #[arg(long, value_parser = wave_size)]
    pub(crate) wave_size: Option<String>,
    /// Failed tenants tolerated (`3` or `5%`); past it no new tenant starts.
    #[arg(long, value_parser = amount)]
    pub(crate) max_failures: Option<String>,
    /// Tenants at once on one database server (1 or more).
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
    pub(crate) per_host_concurrency: Option<u32>,
    /// Wait between waves, e.g. `30s`.
    #[arg(long, value_parser = humantime::parse_duration)]
    pub(crate) pause_between_waves: Option<std::time::Duration>,
    /// Tenants at once, 1 or more (default: the fleet's setting).
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
    pub(crate) concurrency: Option<u32>,
}

/// `--max-failures`: a count (`3`) or a percentage from 0% to 100% (`5%`).
fn amount(text: &str) -> Result<String, String> {
    let t = text.trim();
    match t.strip_suffix('%') {
        Some(p) => match p.trim().parse::<u32>() {
            Ok(p) if p <= 100 => Ok(t.to_owned()),
            Ok(_) => Err(format!(
                "{t:?} is above 100%: give a percentage from 0% to 100%"
            )),
            Err(_) => Err(format!("{t:?} is not a percentage (\"10%\")")),
        },
        None => t
            .parse::<u32>()
            .map(|_| t.to_owned())
            .map_err(|_| format!("{t:?} is not a count (\"50\") or a percentage (\"10%\")")),
    }
}

/// `--wave-size`: as [`amount`], and not zero (a wave of no tenant runs nothing).
fn wave_size(text: &str) -> Result<String, String> {
    let t = amount(text)?;
    match t.trim_end_matches('%').trim().parse::<u32>() {
        Ok(0) => Err(format!(
            "{t:?} tenants per wave runs nothing: give 1 or more (or 1% or more), or leave \
             --wave-size out for one wave"
        )),
        _ => Ok(t),
    }
}

/// A rollout id: a UUID, as `avocet rollouts list` shows them.
fn rollout_id(text: &str) -> Result<String, String> {
    let hex = text.bytes().filter(u8::is_ascii_hexdigit).count();
    let dashes: Vec<usize> = text.match_indices('-').map(|(i, _)| i).collect();
    match text.len() == 36 && hex == 32 && dashes == [8, 13, 18, 23] {
        true => Ok(text.to_owned()),
        false => Err(format!(
            "{text:?} is not a rollout id: a UUID such as \
             3f2b9c1e-8d4a-4c6e-9f1a-2b3c4d5e6f70, as `avocet rollouts list` shows them"
        )),
    }
}

/// `avocet new`'s description: it must hold a letter or digit to name the files with.
fn description(text: &str) -> Result<String, String> {
    match new::has_name(text) {
        true => Ok(text.to_owned()),
        false => Err(format!(
            "{text:?} has no letter or digit to name the migration's files with"
        )),
    }
}

impl StrategyArgs {
    /// The wire strategy: what the flags set, the rest left to the fleet.
    pub(crate) fn wire(&self) -> Option<avocet_client::pb::Strategy> {
        Some(avocet_client::pb::Strategy {
            canary: self.canary,
            wave_size: self.wave_size.clone().unwrap_or_default(),
            concurrency: self.concurrency,
            per_host_concurrency: self.per_host_concurrency,
            max_failures: self.max_failures.clone().unwrap_or_default(),
            pause_between_waves_ms: self.pause_between_waves.map(|d| d.as_millis() as u64),
            canary_selector: self.canary_selector.clone().unwrap_or_default(),
        })
    }
}

/// How a rollout runs.
#[derive(ClapArgs, Clone)]
pub(crate) struct RunOptions {
    /// Do not ask before changing more than one tenant. It accepts no data loss: that is
    /// `--accept-data-loss`.
    #[arg(long, short = 'y')]
    pub(crate) yes: bool,
    /// Print the rollout's id and return at once; it goes on in the daemon
    /// (`avocet rollouts watch ID` follows it).
    #[arg(long)]
    pub(crate) detach: bool,
    #[command(flatten)]
    pub(crate) strategy: StrategyArgs,
    /// Show the plan as events and touch nothing.
    #[arg(long)]
    pub(crate) dry_run: bool,
    /// Start no further tenant after the first failure.
    #[arg(long)]
    pub(crate) stop_on_failure: bool,
    /// One transaction per migration, or all of a tenant's migrations in one (PostgreSQL
    /// and SQLite; default: the fleet's setting).
    #[arg(long, value_enum)]
    pub(crate) transaction: Option<Transaction>,
}

/// `--transaction`.
#[derive(Clone, Copy, ValueEnum)]
pub(crate) enum Transaction {
    /// Each migration and its history row in a transaction of its own.
    Migration,
    /// All of a tenant's pending migrations in one transaction, all or nothing.
    Tenant,
}

impl RunOptions {
    /// The wire strategy: what the flags set, the rest left to the fleet.
    pub(crate) fn strategy(&self) -> Option<avocet_client::pb::Strategy> {
        self.strategy.wire()
    }

    /// `--concurrency`.
    pub(crate) fn concurrency(&self) -> Option<u32> {
        self.strategy.concurrency
    }
}

impl Transaction {
    /// The wire enum; unset means the fleet's setting.
    pub(crate) fn wire(mode: Option<Self>) -> i32 {
        match mode {
            None => avocet_client::pb::TransactionMode::Unspecified as i32,
            Some(Self::Migration) => avocet_client::pb::TransactionMode::Migration as i32,
            Some(Self::Tenant) => avocet_client::pb::TransactionMode::Tenant as i32,
        }
    }
}

/// A version given on the command line: an integer (`20240313170000`), a dotted version
/// (Flyway's `1.2.3`) or a Flyway repeatable's key (`R__<description>`, for `repair`); the
/// daemon checks it names a migration of the set.
#[derive(Clone, Debug)]
pub(crate) struct VersionArg {
    /// As typed.
    pub(crate) text: String,
}

impl VersionArg {
    /// The wire form: `number` for an integer, `repeatable` for `R__<description>`, else
    /// `text` ([`avocet_client::pb::Version::from_shown`]).
    pub(crate) fn wire(&self) -> avocet_client::pb::Version {
        avocet_client::pb::Version::from_shown(&self.text)
    }
}

impl std::str::FromStr for VersionArg {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let digits = |p: &str| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit());
        let repeatable = text.strip_prefix("R__").is_some_and(|d| !d.is_empty());
        if !repeatable && !text.split('.').all(digits) {
            return Err(format!(
                "{text:?} is not a version: digits, digits separated by dots (1.2.3), or a \
                 repeatable's R__<description>"
            ));
        }
        Ok(Self {
            text: text.to_owned(),
        })
    }
}

/// Whether version text `a` is above `b`, as the daemon orders versions (part by part);
/// false when either is not a numbered version.
pub(crate) fn version_above(a: &str, b: &str) -> bool {
    let parts = |t: &str| -> Option<Vec<u64>> { t.split('.').map(|p| p.parse().ok()).collect() };
    match (parts(a), parts(b)) {
        (Some(a), Some(b)) => a > b,
        _ => false,
    }
}

#[derive(Subcommand)]
pub(crate) enum Command {
    /// Show what apply would run on each tenant, with warnings and errors.
    Plan {
        /// Plan up to this version (default: latest).
        #[arg(long = "to")]
        to: Option<VersionArg>,
        /// Plan pending versions older than the newest applied one.
        #[arg(long)]
        allow_out_of_order: bool,
        /// Plan destructive migrations as accepted (see `apply --accept-data-loss`).
        #[arg(long)]
        accept_data_loss: bool,
        #[command(flatten)]
        strategy: StrategyArgs,
        /// Plan a published set (a tag or a digest, see `avocet sets`) instead of the
        /// fleet's own.
        #[arg(long = "set", value_name = "TAG|DIGEST")]
        set: Option<String>,
    },
    /// Apply pending migrations, streaming progress.
    Apply {
        /// Apply up to this version (default: latest).
        #[arg(long = "to")]
        to: Option<VersionArg>,
        #[command(flatten)]
        run: RunOptions,
        /// Apply pending versions older than the newest applied one.
        #[arg(long)]
        allow_out_of_order: bool,
        /// Run migrations whose statements destroy data (DROP TABLE, DROP COLUMN, TRUNCATE,
        /// DELETE without WHERE…) even when their file does not say
        /// `-- avocet:allow-destructive`: the data loss is intended. The only way to accept
        /// it; `--yes` only skips the question.
        #[arg(long)]
        accept_data_loss: bool,
        /// Refuse to start unless the migration set still has this digest (the
        /// `set_digest` that `avocet plan` printed), so what runs is what was reviewed.
        #[arg(long)]
        expect_digest: Option<String>,
        /// Refuse each tenant whose schema is not the expected one for its version (recorded
        /// when Avocet applied it, else what the last `avocet census` found expected): it
        /// fails `drifted` and nothing runs there; the rest run.
        #[arg(long)]
        require_expected_schema: bool,
        /// Roll out a published set (a tag or a digest, see `avocet sets`) instead of the
        /// fleet's own; the rollout keeps the digest the tag names now.
        #[arg(long = "set", value_name = "TAG|DIGEST")]
        set: Option<String>,
    },
    /// Run down scripts in reverse order (default: the newest migration).
    Rollback {
        /// Roll back the newest N applied migrations.
        #[arg(long, conflicts_with_all = ["to", "last_batch"])]
        steps: Option<u32>,
        /// Roll back every applied migration above this version (0: all).
        #[arg(long = "to", conflicts_with = "last_batch")]
        to: Option<VersionArg>,
        /// Roll back the most recent apply batch.
        #[arg(long)]
        last_batch: bool,
        /// Run down scripts whose statements destroy data (DROP TABLE, DROP COLUMN,
        /// TRUNCATE, DELETE without WHERE…) even when their file does not say
        /// `-- avocet:allow-destructive`: the data loss is intended.
        #[arg(long)]
        accept_data_loss: bool,
        #[command(flatten)]
        run: RunOptions,
    },
    /// Check applied migrations against the set: drift, missing, failed, pending.
    Verify {
        /// Also compare each tenant's schema with the expected one for its version (as
        /// `avocet census` does) and show what differs.
        #[arg(long)]
        schema: bool,
    },
    /// Fleet summary: tenants per version, pending, failed, from each tenant's last-known
    /// state (what the daemon last read or changed).
    Status {
        /// Read every tenant afresh instead.
        #[arg(long)]
        refresh: bool,
        /// One tenant's full history instead (read now): every record, drift, what is
        /// pending.
        #[arg(long, conflicts_with = "refresh")]
        tenant: Option<String>,
    },
    /// Read every tenant's actual schema, fingerprint it, and group the fleet by (version,
    /// fingerprint): the expected class of each version and the drift classes, each with
    /// what differs from the expected schema. Touches nothing.
    Census {
        /// One tenant's class and its diff against the expected schema.
        #[arg(long, conflicts_with = "export")]
        tenant: Option<String>,
        /// Print one tenant's schema as canonical JSON (what is fingerprinted) instead.
        #[arg(long, value_name = "TENANT")]
        export: Option<String>,
        /// Compare constraints and indexes whose names the database made up by what they
        /// are rather than by name.
        #[arg(long)]
        ignore_generated_names: bool,
        /// Reuse a tenant's last census younger than this (e.g. `10m`) when its history is
        /// unchanged (default: read every tenant's schema).
        #[arg(long, value_parser = humantime::parse_duration)]
        max_age: Option<std::time::Duration>,
    },
    /// Rollouts: list, inspect, follow and steer them.
    #[command(subcommand)]
    Rollouts(RolloutsCommand),
    /// Back one tenant up now with its database's own tool (`pg_dump`, `mariadb-dump`,
    /// SQLite `VACUUM INTO`), under its lock; the daemon keeps the file and records it.
    Backup(backups::BackupArgs),
    /// Backups taken before risky migrations or with `avocet backup`: list, get, delete.
    #[command(subcommand)]
    Backups(backups::BackupsCommand),
    /// Restore one tenant from a backup (admin), under its lock: asks first, naming the
    /// tenant and the backup's time and version; refused while a rollout holds the tenant.
    Restore(backups::RestoreArgs),
    /// List a fleet's tenants and their labels; `add`, `remove` and `get` one.
    #[command(args_conflicts_with_subcommands = true)]
    Tenants {
        #[command(subcommand)]
        action: Option<TenantsCommand>,
    },
    /// List the daemon's fleets.
    Fleets,
    /// Migration sets published through the API: publish a directory, list, show, tag.
    #[command(subcommand)]
    Sets(sets::SetsCommand),
    /// Print the completion script of a shell, e.g. `avocet completions bash >
    /// ~/.local/share/bash-completion/completions/avocet`. Needs no daemon.
    Completions {
        /// The shell.
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the man page (roff), e.g. `avocet man > ~/.local/share/man/man1/avocet.1`.
    /// Needs no daemon.
    Man,
    /// Write the next migration's files into the fleet's set: numbered one past the latest
    /// (or a UTC timestamp, when the set uses them), as reversible pairs or single files as
    /// the set is.
    New {
        /// What the migration does, e.g. "add invoices" (its file name: `add_invoices`).
        #[arg(value_parser = description)]
        description: String,
        /// Write into this directory instead of the fleet's (as the daemon reports it).
        #[arg(long)]
        dir: Option<std::path::PathBuf>,
        /// With `--dir`: the set's layout (with the fleet's directory, the daemon says it).
        #[arg(long, requires = "dir", default_value = "sqlx",
              value_parser = ["sqlx", "golang-migrate", "diesel", "dbmate", "flyway", "refinery"])]
        format: String,
    },
    /// Record the versions up to `--to` as applied, without running them, on tenants with
    /// no history (their schema came from elsewhere, e.g. a restored dump).
    Baseline {
        /// Record every version up to this one as applied.
        #[arg(long = "to")]
        to: VersionArg,
    },
    /// Adopt tenants another tool manages: record in Avocet's history the versions that
    /// tool's own history table says are applied, without running them, on tenants with no
    /// Avocet history. Refused per tenant when the tool shows a failed or dirty migration, a
    /// version the set lacks, or a checksum that differs from the file. Its table is only read.
    Adopt {
        /// The tool whose history table to read.
        #[arg(long, value_parser = ["sqlx", "diesel", "golang-migrate", "dbmate", "flyway", "refinery"])]
        from: String,
    },
    /// Resolve the record of one version, on one tenant (`--tenant`) or on the tenants
    /// `--tenants`/`--selector` choose (every tenant of the fleet when none is given): a
    /// failed or running record after checking the schema by hand, a failed rollback undone
    /// by hand, an intended edit, or a file removed on purpose. A record already as asked
    /// is left alone, so repeating a repair changes nothing. Exit 1 when a tenant was
    /// refused (its record is not in a state the action applies to).
    #[command(group = clap::ArgGroup::new("action").required(true).multiple(false)
        .args(["mark", "accept_checksum", "forget"]))]
    Repair {
        /// One tenant (its refusal is an error); otherwise `--tenants`/`--selector`.
        #[arg(long, conflicts_with_all = ["tenants", "selector"])]
        tenant: Option<String>,
        /// The version whose record to resolve.
        #[arg(long)]
        version: VersionArg,
        /// After a `failed` or `running` record: record the migration as applied, or as
        /// rolled back (so it runs again); `rolled-back` also after a failed rollback left
        /// it applied and it was undone by hand.
        #[arg(long, value_enum)]
        mark: Option<Mark>,
        /// After an intended edit of an applied migration's file: record the file's new
        /// checksum (logged in the tenant's history log).
        #[arg(long)]
        accept_checksum: bool,
        /// After the version's file was removed on purpose: stop counting its record as
        /// applied (kept as rolled back, logged).
        #[arg(long)]
        forget: bool,
    },
}

/// `avocet tenants …`.
#[derive(Subcommand)]
pub(crate) enum TenantsCommand {
    /// Register a tenant with the daemon (kept across restarts).
    Add {
        /// The tenant's id.
        #[arg(long)]
        id: String,
        /// Its connection URL, of the fleet's dialect.
        #[arg(long)]
        dsn: String,
        /// PostgreSQL schema, for schema-per-tenant fleets.
        #[arg(long)]
        schema: Option<String>,
        /// A label as KEY=VALUE (repeatable).
        #[arg(long = "label", value_name = "KEY=VALUE", value_parser = tenants::parse_label)]
        labels: Vec<(String, String)>,
    },
    /// Remove a tenant registered with `add`.
    Remove {
        /// The tenant's id.
        #[arg(long)]
        id: String,
    },
    /// One tenant: labels, schema, and where it comes from.
    Get {
        /// The tenant's id.
        #[arg(long)]
        id: String,
    },
    /// Run the fleet's discovery query now.
    Refresh,
}

/// `avocet rollouts …`.
#[derive(Subcommand)]
pub(crate) enum RolloutsCommand {
    /// Rollouts, newest first (only `--fleet`'s when given).
    List {
        /// Only rollouts in this state.
        #[arg(long, value_enum)]
        state: Option<State>,
        /// At most this many.
        #[arg(long, default_value_t = 50)]
        limit: u32,
    },
    /// One rollout: state, counts, strategy, audit.
    Get {
        /// The rollout's id.
        #[arg(value_parser = rollout_id)]
        id: String,
    },
    /// Follow a rollout's events (stored ones first, then live), with a progress bar.
    Watch {
        /// The rollout's id.
        #[arg(value_parser = rollout_id)]
        id: String,
        /// Start after this sequence number (default: from the first event).
        #[arg(long = "from", default_value_t = 0)]
        from: u64,
    },
    /// Start no further tenant; tenants in flight stop between migrations.
    Cancel {
        /// The rollout's id.
        #[arg(value_parser = rollout_id)]
        id: String,
    },
    /// Start no further tenant until resumed.
    Pause {
        /// The rollout's id.
        #[arg(value_parser = rollout_id)]
        id: String,
    },
    /// Continue a paused rollout, or an interrupted one with the tenants not yet done.
    Resume {
        /// The rollout's id.
        #[arg(value_parser = rollout_id)]
        id: String,
    },
}

/// `--state`.
#[derive(Clone, Copy, ValueEnum)]
pub(crate) enum State {
    Pending,
    Running,
    Paused,
    Succeeded,
    Failed,
    Cancelled,
    Interrupted,
}

#[derive(Clone, Copy, ValueEnum)]
pub(crate) enum Mark {
    Applied,
    RolledBack,
}

#[cfg(test)]
mod tests {
    use super::VersionArg;

    #[test]
    fn versions_are_integers_dotted_digits_or_a_repeatables_key() {
        let int = |t: &str| {
            t.parse::<VersionArg>()
                .map(|v| (v.text.clone(), v.wire().as_i64()))
        };
        assert_eq!(
            int("20240313170000"),
            Ok(("20240313170000".into(), Some(20240313170000)))
        );
        assert_eq!(int("1.2.3"), Ok(("1.2.3".into(), None)));
        assert_eq!(int("R__People_views"), Ok(("R__People_views".into(), None)));
        for bad in ["", "1..2", "v1", "R__", "R_x", "1.a"] {
            assert!(int(bad).is_err(), "{bad:?} was taken");
        }
    }
}

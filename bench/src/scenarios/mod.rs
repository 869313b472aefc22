//! The scenarios, each selectable with `--only`.

pub(crate) mod apply;
pub(crate) mod backups;
pub(crate) mod census;
pub(crate) mod everyday;
pub(crate) mod known;
pub(crate) mod large;
pub(crate) mod publish;
pub(crate) mod reads;
pub(crate) mod round_trips;

use apply::ApplyCase;

use crate::{
    cli::{Scenario, SetKind},
    ctx::Ctx,
    sets::{self, Flavour, MigrationSet},
};

/// Runs one scenario; a failure to set it up is recorded, not returned.
pub(crate) async fn run(ctx: &Ctx, scenario: Scenario) {
    println!("== {}", scenario.name());
    let r = match scenario {
        Scenario::Apply => apply_all(ctx).await,
        Scenario::Tls => tls(ctx).await,
        Scenario::Grouped => grouped(ctx).await,
        Scenario::Reads => reads::run(ctx).await,
        Scenario::Large => large::run(ctx).await,
        Scenario::Known => known::run(ctx).await,
        Scenario::OneMore => everyday::one_more(ctx).await,
        Scenario::Schemas => everyday::schemas(ctx).await,
        Scenario::Backups => backups::run(ctx).await,
        Scenario::Census => census::run(ctx).await,
        Scenario::Publish => publish::run(ctx).await,
    };
    if let Err(e) = r {
        ctx.scenario_error(scenario.name(), &e);
    }
}

/// The apply cases in their order; before the first case of each set, that set's round
/// trips per migration on one tenant.
async fn apply_all(ctx: &Ctx) -> anyhow::Result<()> {
    let mut written: Vec<(SetKind, MigrationSet)> = Vec::new();
    for spec in &ctx.plan.cases {
        if !written.iter().any(|(k, _)| *k == spec.set) {
            let set = match spec.set {
                SetKind::Light => ctx.light(Flavour::Postgres)?,
                SetKind::Heavy => ctx.write_set("heavy", sets::heavy)?,
            };
            round_trips::run(ctx, &set).await?;
            written.push((spec.set, set));
        }
        let set = written
            .iter()
            .find(|(k, _)| *k == spec.set)
            .map(|(_, s)| s)
            .expect("written above");
        let c = ApplyCase {
            scenario: "apply",
            set,
            n: spec.n,
            p: spec.p,
            tls: false,
            grouped: false,
        };
        apply::run_case(ctx, &c).await?;
    }
    Ok(())
}

async fn tls(ctx: &Ctx) -> anyhow::Result<()> {
    let set = ctx.light(Flavour::Postgres)?;
    let c = ApplyCase {
        scenario: "tls",
        set: &set,
        n: ctx.plan.min_n(),
        p: ctx.plan.max_p(),
        tls: true,
        grouped: false,
    };
    apply::run_case(ctx, &c).await
}

async fn grouped(ctx: &Ctx) -> anyhow::Result<()> {
    let set = ctx.light(Flavour::Postgres)?;
    for &n in &ctx.plan.ns {
        let c = ApplyCase {
            scenario: "grouped",
            set: &set,
            n,
            p: ctx.plan.max_p(),
            tls: false,
            grouped: true,
        };
        apply::run_case(ctx, &c).await?;
    }
    Ok(())
}

//! The scenarios, each selectable with `--only`.

pub(crate) mod apply;
pub(crate) mod large;
pub(crate) mod reads;

use apply::ApplyCase;

use crate::{
    cli::{Scenario, SetKind},
    ctx::Ctx,
    sets::{self, Flavour},
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
    };
    if let Err(e) = r {
        ctx.scenario_error(scenario.name(), &e);
    }
}

async fn apply_all(ctx: &Ctx) -> anyhow::Result<()> {
    for &kind in &ctx.plan.sets {
        let set = match kind {
            SetKind::Light => ctx.light(Flavour::Postgres)?,
            SetKind::Heavy => ctx.write_set("heavy", sets::heavy)?,
        };
        for &n in &ctx.plan.ns {
            for &p in &ctx.plan.ps {
                let c = ApplyCase {
                    scenario: "apply",
                    set: &set,
                    n,
                    p,
                    tls: false,
                    grouped: false,
                };
                apply::run_case(ctx, &c).await?;
            }
        }
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

//! Wire requests to engine requests, validated on receipt (`TryFrom`). A field that does not
//! make sense on its own is a [`RequestError`] here (`INVALID_ARGUMENT`); what needs the fleet (a target
//! version, the set's digest, a strategy over the fleet's defaults) is checked by the engine.

use std::time::Duration;

use avocet_proto::v1 as pb;

use super::{
    ApiError,
    invalid::{RequestError, VersionFieldError},
};
use crate::{
    engine::{
        ApplyRequest, BaselineRequest, CensusRequest, DEFAULT_PAGE, EngineError, LabelSelector,
        ListRequest, MAX_PAGE, Page, PlanRequest, ReadRequest, Registration, RepairAction,
        RepairRequest, RepairTenants, RollbackRequest, Selector, StatusRequest,
    },
    model::{
        Amount, BaselineSource, MigrationKey, RollbackTarget, RolloutState, SetDigest, SetFormat,
        StrategyRequest, TransactionMode, Version, check_id,
    },
};

/// Per-tenant deadline of a Status refresh when the request leaves it unset.
const DEFAULT_REFRESH_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest per-tenant deadline of a Status refresh a request may ask: 10 minutes.
const MAX_REFRESH_TIMEOUT_MS: u64 = 600_000;
/// Longest wait between waves a request may ask: one day.
const MAX_WAVE_PAUSE_MS: u64 = 86_400_000;

/// A migration's key from a request, the one conversion in: `number` as it is, `text`
/// parsed (`1.2.3`; also `3` and `R__views`), `repeatable` as that repeatable's key.
/// Versions are 0 or more (`0001_x.sql` is 1), so `-1` is refused in every form (issue 25,
/// finding 20).
///
/// # Errors
/// [`RequestError::Version`] naming `field`: a `Version` with none of its forms set, a
/// negative version, or a text ([`MigrationKey`]'s `FromStr`) or description
/// ([`MigrationKey::repeatable`]) that is no key.
fn key(field: &'static str, v: &pb::Version) -> Result<MigrationKey, ApiError> {
    use pb::version::V;
    let refuse = |cause| ApiError::from(RequestError::Version { field, cause });
    let parsed = match &v.v {
        None => return Err(refuse(VersionFieldError::Empty)),
        Some(V::Number(n)) => MigrationKey::from(*n),
        Some(V::Text(text)) if text.trim_start().starts_with('-') => {
            return Err(refuse(VersionFieldError::Negative(
                crate::model::bounded(text).to_owned(),
            )));
        }
        Some(V::Text(text)) => text
            .parse()
            .map_err(|e| refuse(VersionFieldError::from(e)))?,
        Some(V::Repeatable(name)) => {
            MigrationKey::repeatable(name).map_err(|e| refuse(e.into()))?
        }
    };
    match parsed.as_i64() {
        Some(n) if n < 0 => Err(refuse(VersionFieldError::Negative(n.to_string()))),
        _ => Ok(parsed),
    }
}

/// A target from a request: a numbered version (a place among the set's versions). A
/// repeatable has none; naming one is `repeatable`'s error (the engine's typed refusal,
/// [`EngineError::RepeatableTarget`] or [`EngineError::RepeatableRollbackTarget`]).
///
/// # Errors
/// As [`key`]; `repeatable(key)` for a repeatable's key.
fn target(
    field: &'static str,
    v: &pb::Version,
    repeatable: impl FnOnce(MigrationKey) -> EngineError,
) -> Result<Version, ApiError> {
    match key(field, v)? {
        MigrationKey::Versioned(v) => Ok(v),
        other => Err(repeatable(other).into()),
    }
}

/// [`EngineError::RepeatableTarget`] of `fleet`, for [`target`].
fn up_to(fleet: &str) -> impl FnOnce(MigrationKey) -> EngineError + '_ {
    move |version| EngineError::RepeatableTarget {
        fleet: fleet.to_owned(),
        version,
    }
}

#[cfg(test)]
#[test]
fn negative_versions_are_refused_in_every_form() {
    use pb::version::V;
    let wire = |v| pb::Version { v: Some(v) };
    for v in [
        V::Number(-1),
        V::Number(i64::MIN),
        V::Text("-1".into()),
        V::Text(" -7".into()),
        V::Text("-0001".into()),
    ] {
        let got = key("to_version", &wire(v.clone()));
        assert!(
            matches!(
                got,
                Err(ApiError::Request(RequestError::Version {
                    field: "to_version",
                    cause: VersionFieldError::Negative(_)
                }))
            ),
            "{v:?}: {got:?}"
        );
    }
    assert!(key("to_version", &pb::Version::default()).is_err());
    assert!(key("to_version", &wire(V::Text("1..2".into()))).is_err());
    assert!(key("to_version", &wire(V::Repeatable(String::new()))).is_err());
    assert_eq!(key("v", &wire(V::Text("3".into()))).unwrap(), 3);
    assert_eq!(key("v", &wire(V::Number(3))).unwrap(), 3);
    let views = key("v", &wire(V::Repeatable("views".into()))).unwrap();
    assert_eq!(views.to_string(), "R__views");
    let dotted = key("v", &wire(V::Text("1.2.3".into()))).unwrap();
    assert_eq!(dotted.to_string(), "1.2.3");
    for v in [V::Repeatable("views".into()), V::Text("R__views".into())] {
        let got = target("target_version", &wire(v), up_to("app"));
        assert!(
            matches!(
                &got,
                Err(ApiError::Engine(EngineError::RepeatableTarget { fleet, version }))
                    if fleet == "app" && version.to_string() == "R__views"
            ),
            "{got:?}"
        );
    }
    let got = target("target_version", &wire(V::Text("1.2".into())), up_to("app"));
    assert_eq!(got.unwrap().to_string(), "1.2");
}

/// An optional target version of `fleet` from a request ([`target`]): unset is `None`.
fn opt_target(
    field: &'static str,
    v: Option<&pb::Version>,
    fleet: &str,
) -> Result<Option<Version>, ApiError> {
    v.map(|v| target(field, v, up_to(fleet))).transpose()
}

/// A fleet name or tenant id from a request: required, and of the id syntax
/// (`[A-Za-z0-9][A-Za-z0-9_.-]{0,127}`), so no quote, separator, path or control character
/// reaches the engine.
fn name(what: &'static str, value: String) -> Result<String, ApiError> {
    if value.is_empty() {
        return Err(ApiError::Missing(what));
    }
    check_id(&value).map_err(|reason| RequestError::Name {
        field: what,
        reason,
    })?;
    Ok(value)
}

/// A tenant selector: ids as given, labels in Kubernetes label-selector syntax.
fn selector(sel: Option<pb::TenantSelector>) -> Result<Selector, ApiError> {
    let sel = sel.unwrap_or_default();
    let labels = LabelSelector::parse(&sel.labels).map_err(RequestError::Selector)?;
    let ids = sel
        .tenant_ids
        .into_iter()
        .map(|id| name("tenant id", id))
        .collect::<Result<_, _>>()?;
    Ok(Selector { ids, labels })
}

/// The strategy's `canary_selector`, parsed; empty when unset.
fn canary_selector(s: Option<&pb::Strategy>) -> Result<LabelSelector, ApiError> {
    let text = s.map_or("", |s| s.canary_selector.as_str());
    LabelSelector::parse(text).map_err(|e| RequestError::CanarySelector(e).into())
}

/// Unspecified means the fleet's own mode.
fn transaction(mode: i32) -> Result<Option<TransactionMode>, ApiError> {
    match pb::TransactionMode::try_from(mode) {
        Ok(pb::TransactionMode::Unspecified) => Ok(None),
        Ok(pb::TransactionMode::Migration) => Ok(Some(TransactionMode::Migration)),
        Ok(pb::TransactionMode::Tenant) => Ok(Some(TransactionMode::Tenant)),
        Err(_) => Err(RequestError::UnknownEnum {
            field: "transaction",
            value: mode,
            what: "transaction mode",
        }
        .into()),
    }
}

/// A page: `size` 0 means the default (or, with `summary_only`, no lines at all); the
/// token is the previous page's `next_page_token`.
fn page(size: u32, token: &str, summary_only: bool) -> Result<Page, ApiError> {
    let size = match size as usize {
        0 if summary_only => 0,
        0 => DEFAULT_PAGE,
        n if n > MAX_PAGE => {
            return Err(RequestError::PageSize {
                size: n as u64,
                max: MAX_PAGE as u64,
            }
            .into());
        }
        n => n,
    };
    let offset = match token {
        "" => 0,
        t => t
            .parse()
            .map_err(|_| RequestError::PageToken(t.to_owned()))?,
    };
    Ok(Page { offset, size })
}

/// `"50"`, `"10%"`, or empty for none.
fn amount(field: &'static str, text: &str) -> Result<Option<Option<Amount>>, ApiError> {
    match text.trim() {
        "" => Ok(None),
        t => t
            .parse::<Amount>()
            .map(|a| Some(Some(a)))
            .map_err(|reason| RequestError::Amount { field, reason }.into()),
    }
}

/// A strategy request, with the older `concurrency` and `stop_on_first_failure` fields
/// filling what the strategy leaves unset.
fn strategy(
    s: Option<pb::Strategy>,
    concurrency: u32,
    stop_on_first_failure: bool,
) -> Result<StrategyRequest, ApiError> {
    let s = s.unwrap_or_default();
    if s.concurrency == Some(0) {
        return Err(RequestError::ZeroConcurrency.into());
    }
    let wave_size = match s.wave_size.trim() {
        "0" | "0%" => Some(None),
        _ => amount("wave_size", &s.wave_size)?,
    };
    if let Some(ms) = s
        .pause_between_waves_ms
        .filter(|ms| *ms > MAX_WAVE_PAUSE_MS)
    {
        return Err(RequestError::WavePause {
            ms,
            max_ms: MAX_WAVE_PAUSE_MS,
        }
        .into());
    }
    let mut max_failures = amount("max_failures", &s.max_failures)?;
    if max_failures.is_none() && stop_on_first_failure {
        max_failures = Some(Some(Amount::Count(0)));
    }
    Ok(StrategyRequest {
        canary: s.canary,
        wave_size,
        concurrency: s.concurrency.or((concurrency > 0).then_some(concurrency)),
        per_host_concurrency: s.per_host_concurrency.map(|n| (n > 0).then_some(n)),
        max_failures,
        pause_between_waves_ms: s.pause_between_waves_ms,
    })
}

impl TryFrom<pb::PlanRequest> for PlanRequest {
    type Error = ApiError;

    fn try_from(req: pb::PlanRequest) -> Result<Self, ApiError> {
        let fleet = name("fleet", req.fleet)?;
        Ok(Self {
            target: opt_target("target_version", req.target_version.as_ref(), &fleet)?,
            fleet,
            selector: selector(req.selector)?,
            allow_out_of_order: req.allow_out_of_order,
            accept_data_loss: req.accept_data_loss,
            canary_selector: canary_selector(req.strategy.as_ref())?,
            strategy: strategy(req.strategy, 0, false)?,
            page: page(req.page_size, &req.page_token, false)?,
            set: req.set.filter(|s| !s.is_empty()),
            set_only: req.set_only,
        })
    }
}

impl TryFrom<pb::ApplyRequest> for ApplyRequest {
    type Error = ApiError;

    fn try_from(req: pb::ApplyRequest) -> Result<Self, ApiError> {
        let digest = req.expected_set_digest;
        let well_formed = digest.len() == 64 && digest.bytes().all(|b| b.is_ascii_hexdigit());
        if !digest.is_empty() && !well_formed {
            return Err(RequestError::Digest(digest).into());
        }
        let fleet = name("fleet", req.fleet)?;
        Ok(Self {
            plan: PlanRequest {
                target: opt_target("target_version", req.target_version.as_ref(), &fleet)?,
                fleet,
                selector: selector(req.selector)?,
                allow_out_of_order: req.allow_out_of_order,
                accept_data_loss: req.accept_data_loss,
                canary_selector: canary_selector(req.strategy.as_ref())?,
                strategy: strategy(req.strategy, req.concurrency, req.stop_on_first_failure)?,
                page: Page::default(),
                set: req.set.filter(|s| !s.is_empty()),
                set_only: false,
            },
            dry_run: req.dry_run,
            transaction: transaction(req.transaction)?,
            expected_set_digest: (!digest.is_empty())
                .then(|| SetDigest(digest.to_ascii_lowercase())),
            require_expected_schema: req.require_expected_schema,
        })
    }
}

impl TryFrom<pb::RollbackRequest> for RollbackRequest {
    type Error = ApiError;

    fn try_from(req: pb::RollbackRequest) -> Result<Self, ApiError> {
        use pb::rollback_request::Target;
        let fleet = name("fleet", req.fleet)?;
        let never_rolled_back = |version| EngineError::RepeatableRollbackTarget {
            fleet: fleet.clone(),
            version,
        };
        let target = match req.target {
            None => RollbackTarget::Steps(1),
            Some(Target::Steps(0)) => return Err(RequestError::ZeroSteps.into()),
            Some(Target::Steps(n)) => RollbackTarget::Steps(n),
            Some(Target::ToVersion(v)) => {
                RollbackTarget::ToVersion(target("to_version", &v, never_rolled_back)?)
            }
            Some(Target::LastBatch(true)) => RollbackTarget::LastBatch,
            Some(Target::LastBatch(false)) => {
                return Err(RequestError::LastBatchFalse.into());
            }
        };
        Ok(Self {
            fleet,
            selector: selector(req.selector)?,
            target,
            accept_data_loss: req.accept_data_loss,
            strategy: strategy(req.strategy, req.concurrency, req.stop_on_first_failure)?,
            dry_run: req.dry_run,
            transaction: transaction(req.transaction)?,
        })
    }
}

impl TryFrom<pb::VerifyRequest> for ReadRequest {
    type Error = ApiError;

    fn try_from(req: pb::VerifyRequest) -> Result<Self, ApiError> {
        Ok(Self {
            fleet: name("fleet", req.fleet)?,
            selector: selector(req.selector)?,
            page: page(req.page_size, &req.page_token, false)?,
            schema: req.schema,
        })
    }
}

impl TryFrom<pb::StatusRequest> for StatusRequest {
    type Error = ApiError;

    fn try_from(req: pb::StatusRequest) -> Result<Self, ApiError> {
        Ok(Self {
            read: ReadRequest {
                fleet: name("fleet", req.fleet)?,
                selector: selector(req.selector)?,
                page: page(req.page_size, &req.page_token, true)?,
                schema: false,
            },
            refresh: req.refresh,
            refresh_timeout: match req.refresh_timeout_ms {
                0 => DEFAULT_REFRESH_TIMEOUT,
                ms if ms > MAX_REFRESH_TIMEOUT_MS => {
                    return Err(RequestError::RefreshTimeout {
                        ms,
                        max_ms: MAX_REFRESH_TIMEOUT_MS,
                    }
                    .into());
                }
                ms => Duration::from_millis(ms),
            },
        })
    }
}

impl TryFrom<pb::RepairRequest> for RepairRequest {
    type Error = ApiError;

    fn try_from(req: pb::RepairRequest) -> Result<Self, ApiError> {
        let action = match pb::RepairAction::try_from(req.action) {
            Ok(pb::RepairAction::MarkApplied) => RepairAction::MarkApplied,
            Ok(pb::RepairAction::MarkRolledBack) => RepairAction::MarkRolledBack,
            Ok(pb::RepairAction::AcceptChecksum) => RepairAction::AcceptChecksum,
            Ok(pb::RepairAction::Forget) => RepairAction::Forget,
            _ => {
                return Err(RequestError::RepairAction.into());
            }
        };
        Ok(Self {
            fleet: name("fleet", req.fleet)?,
            // One tenant, or a selector message (empty: every tenant); neither is a missing
            // tenant, so an empty field never means the whole fleet.
            tenants: match (req.tenant.is_empty(), req.selector) {
                (true, Some(sel)) => RepairTenants::Selected(selector(Some(sel))?),
                (false, Some(sel)) if !sel.tenant_ids.is_empty() || !sel.labels.is_empty() => {
                    return Err(RequestError::TenantAndSelector.into());
                }
                (_, _) => RepairTenants::One(name("tenant", req.tenant)?),
            },
            // Unset is 0, as its integer field was.
            version: match &req.version {
                Some(v) => key("version", v)?,
                None => MigrationKey::from(0),
            },
            action,
        })
    }
}

impl TryFrom<pb::ListRolloutsRequest> for ListRequest {
    type Error = ApiError;

    fn try_from(req: pb::ListRolloutsRequest) -> Result<Self, ApiError> {
        let state = match pb::RolloutState::try_from(req.state) {
            Ok(pb::RolloutState::Unspecified) => None,
            Ok(s) => Some(rollout_state(s)),
            Err(_) => {
                return Err(RequestError::UnknownEnum {
                    field: "state",
                    value: req.state,
                    what: "rollout state",
                }
                .into());
            }
        };
        if req.page_size > 1000 {
            return Err(RequestError::PageSize {
                size: u64::from(req.page_size),
                max: 1000,
            }
            .into());
        }
        Ok(Self {
            fleet: match req.fleet.is_empty() {
                true => None,
                false => Some(name("fleet", req.fleet)?),
            },
            state,
            limit: match req.page_size {
                0 => 100,
                n => n,
            },
            page_token: (!req.page_token.is_empty()).then_some(req.page_token),
        })
    }
}

/// A rollout id: a UUID as the daemon makes them.
pub(super) fn rollout_id(id: &str) -> Result<&str, ApiError> {
    match uuid::Uuid::try_parse(id) {
        Ok(_) => Ok(id),
        Err(_) => Err(RequestError::RolloutId(id.to_owned()).into()),
    }
}

fn rollout_state(s: pb::RolloutState) -> RolloutState {
    match s {
        pb::RolloutState::Pending | pb::RolloutState::Unspecified => RolloutState::Pending,
        pb::RolloutState::Running => RolloutState::Running,
        pb::RolloutState::Paused => RolloutState::Paused,
        pb::RolloutState::Succeeded => RolloutState::Succeeded,
        pb::RolloutState::Failed => RolloutState::Failed,
        pb::RolloutState::Cancelled => RolloutState::Cancelled,
        pb::RolloutState::Interrupted => RolloutState::Interrupted,
    }
}

/// `ListTenants`: the fleet and selector.
pub(super) fn list_tenants(req: pb::ListTenantsRequest) -> Result<(String, Selector), ApiError> {
    Ok((name("fleet", req.fleet)?, selector(req.selector)?))
}

/// `Census`: the engine's request, and whether only the focus tenant's model is asked for
/// (`export`, which needs `focus_tenant`).
pub(super) fn census(req: pb::CensusRequest) -> Result<(CensusRequest, bool), ApiError> {
    let fleet = name("fleet", req.fleet)?;
    let selector = selector(Some(pb::TenantSelector {
        tenant_ids: req.tenant_ids,
        labels: req.labels,
    }))?;
    let focus = match req.focus_tenant.is_empty() {
        true if req.export => return Err(ApiError::Missing("focus_tenant")),
        true => None,
        false => Some(name("focus_tenant", req.focus_tenant)?),
    };
    let options = crate::model::FingerprintOptions {
        ignore_generated_names: req.ignore_generated_names,
    };
    let request = CensusRequest {
        fleet,
        selector,
        options,
        focus,
        max_age: req.max_age_ms.map(Duration::from_millis),
    };
    Ok((request, req.export))
}

/// `(fleet, tenant)` of GetTenant and DeregisterTenant: both required.
pub(super) fn tenant_ref(fleet: String, tenant: String) -> Result<(String, String), ApiError> {
    Ok((name("fleet", fleet)?, name("tenant", tenant)?))
}

/// RegisterTenant: fleet, tenant and DSN required; an empty schema means none. The engine
/// checks the id, schema, labels and DSN against the fleet.
pub(super) fn registration(req: pb::RegisterTenantRequest) -> Result<Registration, ApiError> {
    let (fleet, tenant) = tenant_ref(req.fleet, req.tenant)?;
    if req.dsn.is_empty() {
        return Err(ApiError::Missing("dsn"));
    }
    Ok(Registration {
        fleet,
        tenant,
        dsn: req.dsn,
        schema: (!req.schema.is_empty()).then_some(req.schema),
        labels: req.labels.into_iter().collect(),
    })
}

/// Baseline: fleet, selector, and a target version of 0 or more, or the tool to adopt from
/// (`sqlx`, `diesel`, `golang-migrate`, `dbmate`, `flyway`, `refinery`).
pub(super) fn baseline(req: pb::BaselineRequest) -> Result<BaselineRequest, ApiError> {
    let fleet = name("fleet", req.fleet)?;
    let source = match req.adopt_from.as_str() {
        // Unset is 0, as its integer field was.
        "" => BaselineSource::UpTo(
            opt_target("to_version", req.to_version.as_ref(), &fleet)?
                .unwrap_or(Version::integer(0)),
        ),
        tool => BaselineSource::Adopt(
            tool.parse::<SetFormat>()
                .ok()
                .filter(|f| *f != SetFormat::Auto)
                .ok_or_else(|| RequestError::AdoptFrom(tool.to_owned()))?,
        ),
    };
    Ok(BaselineRequest {
        fleet,
        selector: selector(req.selector)?,
        source,
    })
}

/// A tenant id: required, of the id syntax.
pub(super) fn tenant_id(tenant: String) -> Result<String, ApiError> {
    name("tenant", tenant)
}

/// The fleet of RefreshTenants: required, of the id syntax.
pub(super) fn fleet_ref(fleet: String) -> Result<String, ApiError> {
    name("fleet", fleet)
}

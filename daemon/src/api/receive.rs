//! Wire requests to engine requests, validated on receipt (`TryFrom`). A field that does not
//! make sense on its own is an `InvalidArgument` here; what needs the fleet (a target
//! version, the set's digest, a strategy over the fleet's defaults) is checked by the engine.

use std::time::Duration;

use avocet_proto::v1 as pb;

use super::ApiError;
use crate::{
    engine::{
        ApplyRequest, BaselineRequest, DEFAULT_PAGE, LabelSelector, ListRequest, MAX_PAGE, Page,
        PlanRequest, ReadRequest, Registration, RepairAction, RepairRequest, RepairTenants,
        RollbackRequest, Selector, StatusRequest,
    },
    model::{
        Amount, BaselineSource, RollbackTarget, RolloutState, SetDigest, SetFormat,
        StrategyRequest, TransactionMode, Version, check_id,
    },
};

/// Per-tenant deadline of a Status refresh when the request leaves it unset.
const DEFAULT_REFRESH_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest per-tenant deadline of a Status refresh a request may ask: 10 minutes.
const MAX_REFRESH_TIMEOUT_MS: u64 = 600_000;
/// Longest wait between waves a request may ask: one day.
const MAX_WAVE_PAUSE_MS: u64 = 86_400_000;

/// A version from a request: its `_text` field (`3`, `1.2.3`, `R__views`) when set, else
/// its integer field. Versions are non-negative (`0001_x.sql` is 1).
/// Both forms pass one rule: a version is 0 or more, so `"-1"` is refused as `-1` is
/// (issue 25, finding 20).
fn version(field: &str, v: i64, text: &str) -> Result<Version, ApiError> {
    let negative = |shown: &str| invalid(format!("{field} must be 0 or more, not {shown}"));
    if !text.is_empty() {
        if text.trim_start().starts_with('-') {
            return Err(negative(crate::model::bounded(text)));
        }
        let parsed =
            Version::parse_requested(text).map_err(|e| invalid(format!("{field}_text: {e}")))?;
        return match parsed.as_i64() {
            Some(n) if n < 0 => Err(negative(&n.to_string())),
            _ => Ok(parsed),
        };
    }
    if v < 0 {
        return Err(negative(&v.to_string()));
    }
    Ok(v.into())
}

#[cfg(test)]
#[test]
fn negative_versions_are_refused_in_both_forms() {
    for (v, text) in [(-1, ""), (0, "-1"), (0, " -7"), (0, "-0001")] {
        assert!(version("to_version", v, text).is_err(), "{v} {text:?}");
    }
    assert!(version("to_version", 0, "3").is_ok());
    assert!(version("to_version", 3, "").is_ok());
}

/// An optional version from a request: its `_text` field, else its integer field.
fn opt_version(
    field: &str,
    v: Option<i64>,
    text: Option<&str>,
) -> Result<Option<Version>, ApiError> {
    match (v, text) {
        (None, None) => Ok(None),
        (v, text) => version(field, v.unwrap_or_default(), text.unwrap_or_default()).map(Some),
    }
}

fn invalid(message: impl Into<String>) -> ApiError {
    ApiError::InvalidArgument(message.into())
}

/// A fleet name or tenant id from a request: required, and of the id syntax
/// (`[A-Za-z0-9][A-Za-z0-9_.-]{0,127}`), so no quote, separator, path or control character
/// reaches the engine.
fn name(what: &'static str, value: String) -> Result<String, ApiError> {
    if value.is_empty() {
        return Err(ApiError::Missing(what));
    }
    check_id(&value).map_err(|e| invalid(format!("{what}: {e}")))?;
    Ok(value)
}

/// A tenant selector: ids as given, labels in Kubernetes label-selector syntax.
fn selector(sel: Option<pb::TenantSelector>) -> Result<Selector, ApiError> {
    let sel = sel.unwrap_or_default();
    let labels = LabelSelector::parse(&sel.labels).map_err(|e| invalid(e.to_string()))?;
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
    LabelSelector::parse(text).map_err(|e| invalid(format!("strategy.canary_selector: {e}")))
}

/// Unspecified means the fleet's own mode.
fn transaction(mode: i32) -> Result<Option<TransactionMode>, ApiError> {
    match pb::TransactionMode::try_from(mode) {
        Ok(pb::TransactionMode::Unspecified) => Ok(None),
        Ok(pb::TransactionMode::Migration) => Ok(Some(TransactionMode::Migration)),
        Ok(pb::TransactionMode::Tenant) => Ok(Some(TransactionMode::Tenant)),
        Err(_) => Err(invalid(format!(
            "transaction {mode} is not a transaction mode"
        ))),
    }
}

/// A page: `size` 0 means the default (or, with `summary_only`, no lines at all); the
/// token is the previous page's `next_page_token`.
fn page(size: u32, token: &str, summary_only: bool) -> Result<Page, ApiError> {
    let size = match size as usize {
        0 if summary_only => 0,
        0 => DEFAULT_PAGE,
        n if n > MAX_PAGE => {
            return Err(invalid(format!("page_size {n} is above {MAX_PAGE}")));
        }
        n => n,
    };
    let offset = match token {
        "" => 0,
        t => t
            .parse()
            .map_err(|_| invalid(format!("page_token {t:?} is not one of ours")))?,
    };
    Ok(Page { offset, size })
}

/// `"50"`, `"10%"`, or empty for none.
fn amount(field: &str, text: &str) -> Result<Option<Option<Amount>>, ApiError> {
    match text.trim() {
        "" => Ok(None),
        t => t
            .parse::<Amount>()
            .map(|a| Some(Some(a)))
            .map_err(|e| invalid(format!("{field}: {e}"))),
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
        return Err(invalid(
            "strategy.concurrency: 0 tenants at once runs nothing; give 1 or more, or leave \
             it unset for the fleet's setting",
        ));
    }
    let wave_size = match s.wave_size.trim() {
        "0" | "0%" => Some(None),
        _ => amount("wave_size", &s.wave_size)?,
    };
    if let Some(ms) = s
        .pause_between_waves_ms
        .filter(|ms| *ms > MAX_WAVE_PAUSE_MS)
    {
        return Err(invalid(format!(
            "strategy.pause_between_waves_ms {ms} is above a day ({MAX_WAVE_PAUSE_MS})"
        )));
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
        Ok(Self {
            fleet: name("fleet", req.fleet)?,
            selector: selector(req.selector)?,
            target: opt_version(
                "target_version",
                req.target_version,
                req.target_version_text.as_deref(),
            )?,
            allow_out_of_order: req.allow_out_of_order,
            accept_data_loss: req.accept_data_loss,
            canary_selector: canary_selector(req.strategy.as_ref())?,
            strategy: strategy(req.strategy, 0, false)?,
            page: page(req.page_size, &req.page_token, false)?,
            set: req.set.filter(|s| !s.is_empty()),
        })
    }
}

impl TryFrom<pb::ApplyRequest> for ApplyRequest {
    type Error = ApiError;

    fn try_from(req: pb::ApplyRequest) -> Result<Self, ApiError> {
        let digest = req.expected_set_digest;
        let well_formed = digest.len() == 64 && digest.bytes().all(|b| b.is_ascii_hexdigit());
        if !digest.is_empty() && !well_formed {
            return Err(invalid(format!(
                "expected_set_digest must be 64 hex characters, not {digest:?}"
            )));
        }
        Ok(Self {
            plan: PlanRequest {
                fleet: name("fleet", req.fleet)?,
                selector: selector(req.selector)?,
                target: opt_version(
                    "target_version",
                    req.target_version,
                    req.target_version_text.as_deref(),
                )?,
                allow_out_of_order: req.allow_out_of_order,
                accept_data_loss: req.accept_data_loss,
                canary_selector: canary_selector(req.strategy.as_ref())?,
                strategy: strategy(req.strategy, req.concurrency, req.stop_on_first_failure)?,
                page: Page::default(),
                set: req.set.filter(|s| !s.is_empty()),
            },
            dry_run: req.dry_run,
            transaction: transaction(req.transaction)?,
            expected_set_digest: (!digest.is_empty())
                .then(|| SetDigest(digest.to_ascii_lowercase())),
        })
    }
}

impl TryFrom<pb::RollbackRequest> for RollbackRequest {
    type Error = ApiError;

    fn try_from(req: pb::RollbackRequest) -> Result<Self, ApiError> {
        use pb::rollback_request::Target;
        let target = match req.target {
            None => RollbackTarget::Steps(1),
            Some(Target::Steps(0)) => return Err(invalid("steps must be at least 1")),
            Some(Target::Steps(n)) => RollbackTarget::Steps(n),
            Some(Target::ToVersion(v)) if v < 0 => {
                return Err(invalid(format!(
                    "to_version must be 0 or a version, not {v}"
                )));
            }
            Some(Target::ToVersion(v)) => RollbackTarget::ToVersion(v.into()),
            Some(Target::ToVersionText(t)) if t.is_empty() => {
                return Err(invalid("to_version_text must be a version when set"));
            }
            Some(Target::ToVersionText(t)) => {
                RollbackTarget::ToVersion(version("to_version", 0, &t)?)
            }
            Some(Target::LastBatch(true)) => RollbackTarget::LastBatch,
            Some(Target::LastBatch(false)) => {
                return Err(invalid("last_batch must be true when set"));
            }
        };
        Ok(Self {
            fleet: name("fleet", req.fleet)?,
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
            },
            refresh: req.refresh,
            refresh_timeout: match req.refresh_timeout_ms {
                0 => DEFAULT_REFRESH_TIMEOUT,
                ms if ms > MAX_REFRESH_TIMEOUT_MS => {
                    return Err(invalid(format!(
                        "refresh_timeout_ms {ms} is above {MAX_REFRESH_TIMEOUT_MS} (10 minutes)"
                    )));
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
                return Err(invalid(
                    "action must be MARK_APPLIED, MARK_ROLLED_BACK, ACCEPT_CHECKSUM or FORGET",
                ));
            }
        };
        Ok(Self {
            fleet: name("fleet", req.fleet)?,
            // One tenant, or a selector message (empty: every tenant); neither is a missing
            // tenant, so an empty field never means the whole fleet.
            tenants: match (req.tenant.is_empty(), req.selector) {
                (true, Some(sel)) => RepairTenants::Selected(selector(Some(sel))?),
                (false, Some(sel)) if !sel.tenant_ids.is_empty() || !sel.labels.is_empty() => {
                    return Err(invalid("give one tenant or a tenant selector, not both"));
                }
                (_, _) => RepairTenants::One(name("tenant", req.tenant)?),
            },
            version: version("version", req.version, &req.version_text)?,
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
                return Err(invalid(format!(
                    "state {} is not a rollout state",
                    req.state
                )));
            }
        };
        if req.page_size > 1000 {
            return Err(invalid(format!(
                "page_size {} is above 1000",
                req.page_size
            )));
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
        Err(_) => Err(invalid(format!("{id:?} is not a rollout id"))),
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
    let source = match req.adopt_from.as_str() {
        "" => BaselineSource::UpTo(version("to_version", req.to_version, &req.to_version_text)?),
        tool => BaselineSource::Adopt(
            tool.parse::<SetFormat>()
                .ok()
                .filter(|f| *f != SetFormat::Auto)
                .ok_or_else(|| {
                    ApiError::InvalidArgument(format!(
                        "adopt_from: {tool:?} is not sqlx, diesel, golang-migrate, dbmate, \
                         flyway or refinery"
                    ))
                })?,
        ),
    };
    Ok(BaselineRequest {
        fleet: name("fleet", req.fleet)?,
        selector: selector(req.selector)?,
        source,
    })
}

/// The fleet of RefreshTenants: required, of the id syntax.
pub(super) fn fleet_ref(fleet: String) -> Result<String, ApiError> {
    name("fleet", fleet)
}

//! Apply and Rollback start rollouts in the control store; the rollouts' get, list, watch,
//! pause, resume and cancel.

use futures::{Stream, StreamExt};

use super::{
    ApplyRequest, Engine, EngineError, ListRequest, MAX_CONCURRENCY, RollbackRequest, RolloutPage,
    Scope, StrategyError, audit::request_summary, reads::apply_options,
};
use crate::{
    model::{
        Amount, Direction, RollbackTarget, RolloutEvent, RolloutOp, RolloutRecord, RolloutSpec,
        Strategy, StrategyRequest, TransactionMode,
    },
    rollout::{self, StartRequest},
    store::RolloutFilter,
};

/// Who called, and through which method: for the audit.
#[derive(Debug, Clone)]
pub struct Caller {
    /// An identity, or the peer address until authentication exists.
    pub who: String,
    /// The RPC, e.g. `avocet.v1.Migrator/Apply`.
    pub method: &'static str,
}

impl Engine {
    /// Starts an apply rollout in the control store; returns its id at once. It runs to
    /// the end even if nobody watches it.
    ///
    /// # Errors
    /// As [`Engine::plan`]; [`EngineError::Strategy`] for a strategy out of range;
    /// [`EngineError::SetChanged`] when the set's digest is not `expected_set_digest`;
    /// [`EngineError::GroupedWithoutTransactionalDdl`] or
    /// [`EngineError::GroupedOutsideTransaction`] when grouped mode cannot hold; [`EngineError::ShuttingDown`]
    /// during shutdown; [`EngineError::Store`] when the store refuses it.
    pub async fn apply(&self, req: ApplyRequest, caller: Caller) -> Result<String, EngineError> {
        let scope = self
            .scope_with(&req.plan.fleet, &req.plan.selector, req.plan.set.as_deref())
            .await?;
        let opts = apply_options(&scope, &req.plan)?;
        if let Some(expected) = &req.expected_set_digest
            && expected != scope.set.digest()
        {
            return Err(EngineError::SetChanged {
                fleet: scope.fleet.name.clone(),
                expected: expected.to_string(),
                now: scope.set.digest().to_string(),
            });
        }
        let request = request_summary(&req.plan.selector, &req.expected_set_digest);
        let mut scope = scope;
        let strategy = self::strategy(&scope, req.plan.strategy)?;
        self.canaries_first(&mut scope, strategy.canary, &req.plan.canary_selector)
            .await?;
        self.start(
            scope,
            (
                RolloutOp::Apply(opts.clone()),
                opts.accept_data_loss,
                req.require_expected_schema,
            ),
            req.plan.strategy,
            req.dry_run,
            req.transaction,
            request,
            caller,
        )
        .await
    }

    /// Starts a rollback rollout; returns its id at once.
    ///
    /// # Errors
    /// As [`Engine::apply`], without the digest check; [`EngineError::NothingToRollBack`]
    /// for a target version above the set's latest (it would roll back nothing anywhere, as
    /// an apply to it is refused). A target is a [`Version`](crate::model::Version): a
    /// request naming a repeatable is refused where it is read
    /// ([`EngineError::RepeatableRollbackTarget`], `api::receive`).
    pub async fn rollback(
        &self,
        req: RollbackRequest,
        caller: Caller,
    ) -> Result<String, EngineError> {
        let scope = self.scope(&req.fleet, &req.selector).await?;
        if let RollbackTarget::ToVersion(v) = &req.target
            && scope
                .set
                .latest()
                .is_none_or(|latest| scope.set.compare(v, &latest).is_gt())
            && *v != 0
        {
            return Err(EngineError::NothingToRollBack {
                fleet: scope.fleet.name.clone(),
                version: *v,
                latest: scope.set.latest().map(Box::new),
            });
        }
        let request = request_summary(&req.selector, &None);
        self.start(
            scope,
            (RolloutOp::Rollback(req.target), req.accept_data_loss, false),
            req.strategy,
            req.dry_run,
            req.transaction,
            request,
            caller,
        )
        .await
    }

    #[allow(clippy::too_many_arguments)]
    async fn start(
        &self,
        scope: Scope,
        (op, accept_data_loss, require_expected_schema): (RolloutOp, bool, bool),
        strategy: StrategyRequest,
        dry_run: bool,
        transaction: Option<TransactionMode>,
        request: serde_json::Value,
        caller: Caller,
    ) -> Result<String, EngineError> {
        let strategy = self::strategy(&scope, strategy)?;
        let pause = std::time::Duration::from_millis(strategy.pause_between_waves_ms);
        if pause > self.max_pause {
            return Err(StrategyError::PauseTooLong {
                pause,
                max: self.max_pause,
            }
            .into());
        }
        let transaction = transaction.unwrap_or(scope.fleet.transaction);
        if transaction == TransactionMode::Tenant {
            grouped_allowed(&scope, op.direction())?;
        }
        self.room_for(&scope.fleet.name, &caller)?;
        // Issue 25, finding 9: a change of this fleet in this direction runs alone here;
        // one request waits its turn (the wait ends with the call's deadline, which drops
        // this future and its place), a further one is refused.
        let direction = op.direction();
        let fleet_name = scope.fleet.name.clone();
        let changing = || self.runner.changing(&fleet_name, direction);
        let ended = self.runner.ended();
        let place = match dry_run {
            true => None,
            false => Some(
                self.lines
                    .join(&fleet_name, direction, changing())
                    .map_err(|_| EngineError::LineFull {
                        fleet: fleet_name.clone(),
                        direction: direction.as_str(),
                    })?,
            ),
        };
        let _turn = match &place {
            None => None,
            Some(place) => tokio::select! {
                turn = place.turn(changing, &ended) => Some(turn),
                () = self.shutdown.cancelled() => return Err(EngineError::ShuttingDown),
            },
        };
        // What the wait may have changed.
        self.room_for(&fleet_name, &caller)?;
        let spec = RolloutSpec {
            fleet: scope.fleet.name.clone(),
            op,
            strategy,
            transaction,
            dry_run,
            set_digest: scope.set.digest().clone(),
            accept_data_loss,
            require_expected_schema,
        };
        let mut request = request;
        request["spec"] = serde_json::to_value(&spec).unwrap_or_default();
        let request = request.to_string();
        Ok(self
            .runner
            .start(StartRequest {
                fleet: scope.fleet,
                tenants: scope.tenants,
                set: scope.set,
                spec,
                request_json: request,
                caller: caller.who,
                method: caller.method,
            })
            .await?)
    }

    /// Whether a rollout of `fleet` by `caller` may start now: the daemon is not shutting
    /// down, and neither the fleet's, the daemon's nor the identity's limit is reached.
    fn room_for(&self, fleet: &str, caller: &Caller) -> Result<(), EngineError> {
        if self.runner.is_shutting_down() {
            return Err(EngineError::ShuttingDown);
        }
        if self.runner.running_in(fleet) >= self.max_per_fleet {
            return Err(EngineError::TooManyInFleet {
                fleet: fleet.to_owned(),
                limit: self.max_per_fleet,
            });
        }
        if self.runner.running_here() >= self.max_running_rollouts {
            return Err(EngineError::TooManyRollouts {
                limit: self.max_running_rollouts,
            });
        }
        let identity = rollout::identity_of(&caller.who);
        if self.runner.running_by(identity) >= self.max_per_identity {
            return Err(EngineError::TooManyForIdentity {
                identity: identity.to_owned(),
                limit: self.max_per_identity,
            });
        }
        Ok(())
    }

    /// Rollout `id` as stored, with its audit entries.
    ///
    /// # Errors
    /// [`EngineError::UnknownRollout`]; [`EngineError::Store`].
    pub async fn rollout(&self, id: &str) -> Result<RolloutRecord, EngineError> {
        self.runner
            .store()
            .rollout(id)
            .await?
            .ok_or_else(|| EngineError::UnknownRollout(id.to_owned()))
    }

    /// Rollouts, newest first, one page at a time.
    ///
    /// # Errors
    /// [`EngineError::PageToken`] for a malformed page token; [`EngineError::Store`].
    pub async fn rollouts(&self, req: ListRequest) -> Result<RolloutPage, EngineError> {
        let before = match &req.page_token {
            None => None,
            Some(token) => {
                let parsed = token
                    .split_once(':')
                    .and_then(|(at, id)| Some((at.parse::<i64>().ok()?, id.to_owned())));
                Some(parsed.ok_or_else(|| EngineError::PageToken(token.clone()))?)
            }
        };
        let limit = req.limit.clamp(1, 1000);
        let mut rollouts = self
            .runner
            .store()
            .list_rollouts(&RolloutFilter {
                fleet: req.fleet,
                state: req.state,
                limit: limit + 1,
                before,
            })
            .await?;
        let next_page = if rollouts.len() > limit as usize {
            rollouts.truncate(limit as usize);
            rollouts
                .last()
                .map(|r| format!("{}:{}", r.created_at_unix_ms, r.id))
        } else {
            None
        };
        Ok(RolloutPage {
            rollouts,
            next_page,
        })
    }

    /// Rollout `id`'s events with `seq > after`: the stored ones, then each new one as it is
    /// stored; the stream ends when the rollout has. At shutdown it ends with
    /// [`EngineError::ShuttingDown`], so that no client takes the cut for the rollout's end.
    ///
    /// # Errors
    /// [`EngineError::UnknownRollout`] before the stream starts;
    /// [`EngineError::PastLastEvent`] for `after` past the end of a rollout that ended, or
    /// above `i64::MAX`; a store failure ends it with [`EngineError::Store`].
    pub async fn watch(
        &self,
        id: &str,
        after: u64,
    ) -> Result<impl Stream<Item = Result<RolloutEvent, EngineError>> + Send + 'static, EngineError>
    {
        let record = self.rollout(id).await?;
        // Issue 25, finding 13: a sequence past the end is refused (it used to wrap to a
        // negative number in the store and replay everything), and a finished rollout's
        // watch that has seen everything ends at once instead of waiting for nothing.
        let ended =
            record.state.is_final() || record.state == crate::model::RolloutState::Interrupted;
        if after > i64::MAX as u64 || (ended && after > record.last_seq) {
            return Err(EngineError::PastLastEvent {
                rollout: id.to_owned(),
                after,
                last: record.last_seq,
            });
        }
        let caught_up = record.state.is_final() && after == record.last_seq;
        let events = rollout::watch(
            self.runner.clone(),
            id.to_owned(),
            after,
            self.shutdown.clone(),
        );
        let events = events.map(|e| match e {
            Ok(Some(event)) => Ok(event),
            Ok(None) => Err(EngineError::ShuttingDown),
            Err(e) => Err(EngineError::from(e)),
        });
        Ok(match caught_up {
            true => futures::stream::empty().left_stream(),
            false => events.right_stream(),
        })
    }

    /// Starts no further tenant of rollout `id` until it is resumed.
    ///
    /// # Errors
    /// [`EngineError::UnknownRollout`]; [`EngineError::Rollout`] unless it runs.
    pub async fn pause(&self, id: &str, caller: &Caller) -> Result<RolloutRecord, EngineError> {
        self.runner
            .pause(id, &caller.who)
            .await
            .map_err(EngineError::from)?;
        self.rollout(id).await
    }

    /// Continues a paused or interrupted rollout.
    ///
    /// # Errors
    /// [`EngineError::UnknownRollout`]; [`EngineError::Rollout`] for a rollout
    /// that is running or finished, or whose set changed; [`EngineError::ShuttingDown`].
    pub async fn resume(&self, id: &str, caller: &Caller) -> Result<RolloutRecord, EngineError> {
        self.runner
            .resume(id, &caller.who)
            .await
            .map_err(EngineError::from)?;
        self.rollout(id).await
    }

    /// Cancels rollout `id`: no tenant starts, tenants in flight stop between migrations.
    ///
    /// # Errors
    /// [`EngineError::UnknownRollout`]; [`EngineError::Rollout`] when finished.
    pub async fn cancel(&self, id: &str, caller: &Caller) -> Result<RolloutRecord, EngineError> {
        self.runner
            .cancel(id, &caller.who)
            .await
            .map_err(EngineError::from)?;
        self.rollout(id).await
    }
}

/// The request's strategy over the fleet's defaults, checked.
pub(super) fn strategy(scope: &Scope, req: StrategyRequest) -> Result<Strategy, EngineError> {
    let s = req.over(scope.fleet.strategy);
    if !(1..=MAX_CONCURRENCY as u32).contains(&s.concurrency) {
        return Err(StrategyError::Concurrency {
            value: s.concurrency,
            max: MAX_CONCURRENCY,
        }
        .into());
    }
    if s.per_host_concurrency == Some(0) {
        return Err(StrategyError::PerHostZero.into());
    }
    if let Some(Amount::Percent(0) | Amount::Count(0)) = s.wave_size {
        return Err(StrategyError::WaveSizeZero.into());
    }
    // A canary the request asks for that is more than the selection is a slip (issue 32,
    // item 8); the fleet's own default is cut to the selection.
    if let Some(canary) = req.canary
        && canary as usize > scope.tenants.len()
    {
        return Err(StrategyError::CanaryTooLarge {
            fleet: scope.fleet.name.clone(),
            canary,
            tenants: scope.tenants.len(),
        }
        .into());
    }
    Ok(s)
}

/// Grouped mode needs transactional DDL and a set whose scripts in `direction` all run in
/// a transaction.
fn grouped_allowed(scope: &Scope, direction: Direction) -> Result<(), EngineError> {
    let fleet = &scope.fleet.name;
    if !scope.fleet.dialect.transactional_ddl() {
        return Err(EngineError::GroupedWithoutTransactionalDdl {
            fleet: fleet.clone(),
            dialect: scope.fleet.dialect,
        });
    }
    let outside = scope.set.iter().find(|m| match direction {
        Direction::Up => m.up.no_transaction,
        Direction::Down => m.down.as_ref().is_some_and(|d| d.no_transaction),
    });
    if let Some(m) = outside {
        return Err(EngineError::GroupedOutsideTransaction {
            fleet: fleet.clone(),
            version: m.version.clone(),
            name: m.name.clone(),
        });
    }
    Ok(())
}

//! Canaries that test something: an apply's canary wave is made of tenants with work to do.
//! A tenant whose last-known state classifies up to date against the current set
//! ([`KnownState::classify`], the one rule) has nothing to run, so it protects nothing as a
//! canary; the first `canary` tenants of the selection that are not (never read ones
//! included) go first, the others keep their order.

use std::{collections::HashSet, sync::Arc};

use super::{Engine, EngineError, LabelSelector, Scope};
use crate::{
    fleet::Tenant,
    model::{MigrationSet, TenantClass},
    store::KnownState,
};

/// The order of positions `0..up_to_date.len()` with up to `canary` positions whose
/// tenant is not up to date (`up_to_date[i]` false) moved to the front, in their order;
/// every other position follows in its order.
fn canary_order(up_to_date: &[bool], canary: usize) -> Vec<usize> {
    let first: Vec<usize> = (0..up_to_date.len())
        .filter(|&i| !up_to_date[i])
        .take(canary)
        .collect();
    let moved: HashSet<usize> = first.iter().copied().collect();
    first
        .into_iter()
        .chain((0..up_to_date.len()).filter(|i| !moved.contains(i)))
        .collect()
}

/// True when `known` says the tenant has nothing to apply from `set`.
fn known_up_to_date(known: &KnownState, set: &MigrationSet) -> bool {
    known.classify(set).class == TenantClass::UpToDate
}

impl Engine {
    /// Puts up to `canary` tenants of `scope` first so the canary wave of an apply tests
    /// something: those `chosen` matches when it is not empty, else those with work to do
    /// (as far as the control store knows).
    ///
    /// # Errors
    /// [`EngineError::Strategy`] when `chosen` matches no selected tenant;
    /// [`EngineError::Store`] when the last-known states cannot be read.
    pub(super) async fn canaries_first(
        &self,
        scope: &mut Scope,
        canary: u32,
        chosen: &LabelSelector,
    ) -> Result<(), EngineError> {
        if canary == 0 || scope.tenants.is_empty() {
            return Ok(());
        }
        if !chosen.is_empty() {
            let unmatched: Vec<bool> = scope
                .tenants
                .iter()
                .map(|t| !chosen.matches(&t.labels))
                .collect();
            if unmatched.iter().all(|&u| u) {
                return Err(super::StrategyError::CanaryMatchesNone {
                    selector: chosen.to_string(),
                    tenants: scope.tenants.len(),
                }
                .into());
            }
            let order = canary_order(&unmatched, canary as usize);
            scope.tenants = order.iter().map(|&i| scope.tenants[i].clone()).collect();
            return Ok(());
        }
        let ids: Vec<&str> = scope.tenants.iter().map(|t| t.id.as_str()).collect();
        let known = self
            .runner
            .store()
            .known_states_of(&scope.fleet.name, &ids)
            .await?;
        let fresh: HashSet<&str> = known
            .iter()
            .filter(|k| known_up_to_date(k, &scope.set))
            .map(|k| k.tenant.as_str())
            .collect();
        let up_to_date: Vec<bool> = ids.iter().map(|id| fresh.contains(id)).collect();
        let order = canary_order(&up_to_date, canary as usize);
        let tenants: Vec<Arc<Tenant>> = order.iter().map(|&i| scope.tenants[i].clone()).collect();
        scope.tenants = tenants;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::canary_order;

    #[test]
    fn canaries_are_tenants_with_work_in_their_order() {
        // w01 up to date, w04 and w06 not: the canary is w04.
        assert_eq!(canary_order(&[true, false, false], 1), [1, 0, 2]);
        assert_eq!(canary_order(&[true, false, false], 2), [1, 2, 0]);
        // Nobody with work: the order stays (the rollout has nothing to run).
        assert_eq!(canary_order(&[true, true], 1), [0, 1]);
        // Everybody with work: the order stays.
        assert_eq!(canary_order(&[false, false, false], 1), [0, 1, 2]);
        assert_eq!(canary_order(&[], 3), Vec::<usize>::new());
    }
}

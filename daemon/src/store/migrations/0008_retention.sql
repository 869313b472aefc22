-- Retention (issue 25, finding 12): finished rollouts older than `rollout_retention` are
-- deleted with their work items, events and audit entries; these indexes find them, and
-- audit entries whose rollout is gone, without a scan (work items and events are found by
-- their primary keys, which begin with the rollout id).
CREATE INDEX rollouts_by_finished ON rollouts (finished_at);
CREATE INDEX audit_by_at ON audit (at);

-- Several daemons on one control store share every rollout: a work item is claimed with a
-- lease (its owner and the time it runs out, ms since the epoch) that the owner's heartbeat
-- extends; each replica says when it was last seen; one wave mark and one finisher per run
-- of a rollout, so a WaveStarted and a RolloutFinished are stored once, whoever runs it.
ALTER TABLE rollout_tenants ADD COLUMN lease_owner TEXT;
ALTER TABLE rollout_tenants ADD COLUMN lease_until BIGINT;
CREATE INDEX rollout_tenants_by_wave ON rollout_tenants (rollout_id, wave, state);
CREATE INDEX rollout_tenants_by_owner ON rollout_tenants (lease_owner, state);
ALTER TABLE rollouts ADD COLUMN wave_mark BIGINT NOT NULL DEFAULT -1;
ALTER TABLE rollouts ADD COLUMN finished_by TEXT;
CREATE TABLE replicas (
    id TEXT PRIMARY KEY,
    started_at BIGINT NOT NULL,
    seen_at BIGINT NOT NULL
);
-- Items a daemon of the previous schema left running have no lease: claimable now.
UPDATE rollout_tenants SET lease_until = 0 WHERE state = 'running';

-- A tenant's last-known state keeps what was applied (JSON: numbered versions, repeatables
-- with their checksums, whether a record blocks an apply), so that it is classified against
-- the set of now every time it is shown; `pending` is no longer written (0), NULL `applied`:
-- a state stored before, judged from `current_version`.
ALTER TABLE tenant_state ADD COLUMN applied TEXT;
-- Dry runs are stored as such (1), not as ordinary rollouts.
ALTER TABLE rollouts ADD COLUMN dry_run BIGINT NOT NULL DEFAULT 0;
UPDATE rollouts SET dry_run = 1 WHERE spec LIKE '%"dry_run":true%';

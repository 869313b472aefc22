-- Fenced leases: each claim of a work item takes the next epoch; every later write on the
-- item names its owner and epoch, so a replica that stalled past its lease (and lost the
-- item to another) has its late writes refused. Times of leases and heartbeats are the
-- store's own clock from now on (ms since the epoch, as before).
ALTER TABLE rollout_tenants ADD COLUMN lease_epoch BIGINT NOT NULL DEFAULT 0;

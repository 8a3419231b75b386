-- `/metrics` and `GET /api/v1/...` counted the outbox by upstream and status with a scan of
-- the whole table per scrape, twice (8.8 M rows at a year of `send = "all"`). The counts are
-- now kept per upstream in the transaction that queues, delivers, kills, requeues or drops
-- an event (`store::Tx::outbox_moved`), with the last answer of a failed attempt since the
-- upstream's queue was last empty.
CREATE TABLE outbox_upstreams (
    upstream      TEXT PRIMARY KEY,
    pending       INTEGER NOT NULL DEFAULT 0,
    delivered     INTEGER NOT NULL DEFAULT 0,
    dead          INTEGER NOT NULL DEFAULT 0,
    last_error    TEXT,
    last_error_ms INTEGER
) WITHOUT ROWID;
INSERT INTO outbox_upstreams (upstream, pending, delivered, dead)
SELECT upstream, sum(status = 'pending'), sum(status = 'delivered'), sum(status = 'dead')
FROM outbox GROUP BY upstream;
UPDATE outbox_upstreams SET (last_error, last_error_ms) = (
    SELECT last_answer, last_attempt_ms FROM outbox
    WHERE outbox.upstream = outbox_upstreams.upstream AND status IN ('pending', 'dead')
      AND attempts > 0
    ORDER BY last_attempt_ms DESC LIMIT 1);

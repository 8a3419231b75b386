-- /metrics counted readings by verdict with a scan of `readings` per scrape (8.8 M rows at a
-- year of data). `reading_totals` keeps those counts in the transaction that stores a reading
-- or changes its verdict (superseded readings still count: they stay in the store).
CREATE TABLE reading_totals (
    verdict TEXT PRIMARY KEY,
    n       INTEGER NOT NULL
) WITHOUT ROWID;
INSERT INTO reading_totals (verdict, n) SELECT verdict, count(*) FROM readings GROUP BY verdict;

-- Ingest throughput: the outbox's UNIQUE (event_id, upstream) is a text index keyed by a hash,
-- so each committed batch rewrote most of its pages (about 55 bytes per row). The uniqueness
-- is now checked through `event_key`, the first 15 hex digits of the event id as an integer
-- (an index of about 19 bytes per row), before each insert (see `store::outbox::enqueue`);
-- the event id text is still stored and sent as it was. The table is rebuilt (SQLite cannot
-- drop a table constraint); nothing references it.
CREATE TABLE outbox_new (
    id              INTEGER PRIMARY KEY,
    event_id        TEXT NOT NULL,
    upstream        TEXT NOT NULL,
    type            TEXT NOT NULL,
    hold            TEXT REFERENCES holds(id),
    body            BLOB NOT NULL,
    status          TEXT NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'delivered', 'dead')),
    attempts        INTEGER NOT NULL DEFAULT 0,
    created_ms      INTEGER NOT NULL,
    next_attempt_ms INTEGER NOT NULL,
    last_attempt_ms INTEGER,
    last_answer     TEXT,
    delivered_ms    INTEGER,
    event_key       INTEGER NOT NULL
);
-- `event_key` as `store::outbox::event_key` computes it from the text.
INSERT INTO outbox_new (id, event_id, upstream, type, hold, body, status, attempts, created_ms,
    next_attempt_ms, last_attempt_ms, last_answer, delivered_ms, event_key)
SELECT id, event_id, upstream, type, hold, body, status, attempts, created_ms,
    next_attempt_ms, last_attempt_ms, last_answer, delivered_ms,
       ((instr('0123456789abcdef', substr(replace(event_id, '-', ''), 1, 1)) - 1) << 56)
     + ((instr('0123456789abcdef', substr(replace(event_id, '-', ''), 2, 1)) - 1) << 52)
     + ((instr('0123456789abcdef', substr(replace(event_id, '-', ''), 3, 1)) - 1) << 48)
     + ((instr('0123456789abcdef', substr(replace(event_id, '-', ''), 4, 1)) - 1) << 44)
     + ((instr('0123456789abcdef', substr(replace(event_id, '-', ''), 5, 1)) - 1) << 40)
     + ((instr('0123456789abcdef', substr(replace(event_id, '-', ''), 6, 1)) - 1) << 36)
     + ((instr('0123456789abcdef', substr(replace(event_id, '-', ''), 7, 1)) - 1) << 32)
     + ((instr('0123456789abcdef', substr(replace(event_id, '-', ''), 8, 1)) - 1) << 28)
     + ((instr('0123456789abcdef', substr(replace(event_id, '-', ''), 9, 1)) - 1) << 24)
     + ((instr('0123456789abcdef', substr(replace(event_id, '-', ''), 10, 1)) - 1) << 20)
     + ((instr('0123456789abcdef', substr(replace(event_id, '-', ''), 11, 1)) - 1) << 16)
     + ((instr('0123456789abcdef', substr(replace(event_id, '-', ''), 12, 1)) - 1) << 12)
     + ((instr('0123456789abcdef', substr(replace(event_id, '-', ''), 13, 1)) - 1) << 8)
     + ((instr('0123456789abcdef', substr(replace(event_id, '-', ''), 14, 1)) - 1) << 4)
     + ((instr('0123456789abcdef', substr(replace(event_id, '-', ''), 15, 1)) - 1) << 0)
FROM outbox;
DROP TABLE outbox;
ALTER TABLE outbox_new RENAME TO outbox;
CREATE INDEX outbox_event ON outbox (event_key);
CREATE INDEX outbox_due ON outbox (status, upstream, next_attempt_ms);
CREATE INDEX outbox_hold ON outbox (hold, upstream, id) WHERE hold IS NOT NULL;
CREATE INDEX outbox_pending ON outbox (upstream, id, next_attempt_ms) WHERE status = 'pending';

-- /metrics counted readings by verdict with a scan of `readings` per scrape (8.8 M rows at a
-- year of data). `reading_totals` keeps those counts in the transaction that stores a reading
-- or changes its verdict (superseded readings still count: they stay in the store).
CREATE TABLE reading_totals (
    verdict TEXT PRIMARY KEY,
    n       INTEGER NOT NULL
) WITHOUT ROWID;
INSERT INTO reading_totals (verdict, n) SELECT verdict, count(*) FROM readings GROUP BY verdict;

-- Ingest throughput: the outbox's UNIQUE (event_id, upstream) was a text index keyed by a hash,
-- so each committed batch rewrote most of its pages. Uniqueness is now checked before each
-- insert (`store::outbox::enqueue`) through (reading, event_key): `reading` is the reading
-- the event is about, so the events of new readings go at the end of that index (a batch
-- dirties a few of its pages, not most of them), and `event_key`, the first 15 hex digits of
-- the event id as an integer, finds an event among a reading's few. Rows copied here, and
-- events about no reading (sample records), have no `reading`: the check looks among those
-- too. The event id text is still stored and sent as it was. The table is rebuilt (SQLite
-- cannot drop a table constraint); nothing references it.
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
    event_key       INTEGER NOT NULL,
    reading         INTEGER
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
CREATE INDEX outbox_event ON outbox (reading, event_key);
CREATE INDEX outbox_due ON outbox (status, upstream, next_attempt_ms);
CREATE INDEX outbox_hold ON outbox (hold, upstream, id) WHERE hold IS NOT NULL;
CREATE INDEX outbox_pending ON outbox (upstream, id, next_attempt_ms) WHERE status = 'pending';

-- Ingest throughput, the same for readings: `identity TEXT UNIQUE` was a 64-character index
-- keyed by a hash (about 75 bytes a row, most of its pages rewritten by every committed
-- batch). Duplicates are now found through `identity_key`, an integer index about a quarter
-- of its size, comparing the whole identity of the (rare) rows that share a key before each
-- insert (`store::insert`); the identity text is kept as it was. SQLite cannot drop a
-- column's UNIQUE, so the table is rebuilt. Holds, uploads and later readings point at
-- readings by id: the foreign keys are deferred to the commit, and the rows are copied out
-- and back in (a row inserted into the new table satisfies the references to it; a renamed
-- copy would not).
PRAGMA defer_foreign_keys = ON;
CREATE TABLE readings_copy AS SELECT
    id, identity, market, stall, sample_ref, instrument, uploader, protocol, sample_id,
    sample_name, analyte, analyte_code, method, value, value_text, unit, qualifier,
    device_verdict, measured_at, received_at, local_day, category, verdict, reason,
    limit_value, limit_unit, limit_source, result_status, t_line, c_line, cutoff,
    assay_format, delta_a0, delta_at, recomputed_rate, superseded, superseded_by, raw_frame,
    reading_json, revision
FROM readings;
DROP TABLE readings;
CREATE TABLE readings (
    id              INTEGER PRIMARY KEY,
    identity        TEXT NOT NULL,
    market          TEXT NOT NULL REFERENCES markets(code),
    stall           TEXT,
    sample_ref      INTEGER REFERENCES samples(id),
    instrument      TEXT,
    uploader        TEXT,
    protocol        TEXT NOT NULL,
    sample_id       TEXT,
    sample_name     TEXT,
    analyte         TEXT NOT NULL,
    analyte_code    TEXT,
    method          TEXT,
    value           REAL,
    value_text      TEXT,
    unit            TEXT,
    qualifier       TEXT,
    device_verdict  TEXT,
    measured_at     TEXT,
    received_at     TEXT NOT NULL,
    local_day       TEXT NOT NULL,
    category        TEXT,
    verdict         TEXT NOT NULL,
    reason          TEXT NOT NULL,
    limit_value     REAL,
    limit_unit      TEXT,
    limit_source    TEXT,
    result_status   TEXT,
    t_line          INTEGER,
    c_line          INTEGER,
    cutoff          INTEGER,
    assay_format    TEXT,
    delta_a0        REAL,
    delta_at        REAL,
    recomputed_rate REAL,
    superseded      INTEGER NOT NULL DEFAULT 0,
    superseded_by   INTEGER REFERENCES readings(id),
    raw_frame       INTEGER REFERENCES raw_frames(id),
    -- The whole Reading as JSON: every detail key, exactly as judged.
    reading_json    TEXT NOT NULL,
    revision        INTEGER NOT NULL DEFAULT 0,
    -- The identity's first 15 hex digits as an integer (`store::identity::hex_key`).
    identity_key    INTEGER NOT NULL
);
INSERT INTO readings (
    id, identity, market, stall, sample_ref, instrument, uploader, protocol, sample_id,
    sample_name, analyte, analyte_code, method, value, value_text, unit, qualifier,
    device_verdict, measured_at, received_at, local_day, category, verdict, reason,
    limit_value, limit_unit, limit_source, result_status, t_line, c_line, cutoff,
    assay_format, delta_a0, delta_at, recomputed_rate, superseded, superseded_by, raw_frame,
    reading_json, revision,
    identity_key)
SELECT
    id, identity, market, stall, sample_ref, instrument, uploader, protocol, sample_id,
    sample_name, analyte, analyte_code, method, value, value_text, unit, qualifier,
    device_verdict, measured_at, received_at, local_day, category, verdict, reason,
    limit_value, limit_unit, limit_source, result_status, t_line, c_line, cutoff,
    assay_format, delta_a0, delta_at, recomputed_rate, superseded, superseded_by, raw_frame,
    reading_json, revision,
       ((instr('0123456789abcdef', substr(identity, 1, 1)) - 1) << 56)
       + ((instr('0123456789abcdef', substr(identity, 2, 1)) - 1) << 52)
       + ((instr('0123456789abcdef', substr(identity, 3, 1)) - 1) << 48)
       + ((instr('0123456789abcdef', substr(identity, 4, 1)) - 1) << 44)
       + ((instr('0123456789abcdef', substr(identity, 5, 1)) - 1) << 40)
       + ((instr('0123456789abcdef', substr(identity, 6, 1)) - 1) << 36)
       + ((instr('0123456789abcdef', substr(identity, 7, 1)) - 1) << 32)
       + ((instr('0123456789abcdef', substr(identity, 8, 1)) - 1) << 28)
       + ((instr('0123456789abcdef', substr(identity, 9, 1)) - 1) << 24)
       + ((instr('0123456789abcdef', substr(identity, 10, 1)) - 1) << 20)
       + ((instr('0123456789abcdef', substr(identity, 11, 1)) - 1) << 16)
       + ((instr('0123456789abcdef', substr(identity, 12, 1)) - 1) << 12)
       + ((instr('0123456789abcdef', substr(identity, 13, 1)) - 1) << 8)
       + ((instr('0123456789abcdef', substr(identity, 14, 1)) - 1) << 4)
       + ((instr('0123456789abcdef', substr(identity, 15, 1)) - 1) << 0)
FROM readings_copy ORDER BY id;
DROP TABLE readings_copy;
CREATE INDEX readings_identity ON readings (identity_key);
CREATE INDEX readings_verdict_day ON readings (verdict, local_day);
CREATE INDEX readings_sample ON readings (sample_ref);
CREATE INDEX readings_day_market ON readings (local_day, market);

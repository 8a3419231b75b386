-- foodgate schema v1. Times are RFC 3339 text in UTC unless named *_ms (Unix milliseconds).

CREATE TABLE markets (
    code        TEXT PRIMARY KEY,
    name        TEXT NOT NULL DEFAULT '',
    district    TEXT NOT NULL DEFAULT '',
    type        TEXT NOT NULL DEFAULT '',
    quota       INTEGER NOT NULL DEFAULT 10,
    updated_at  TEXT NOT NULL
);

CREATE TABLE stalls (
    id          INTEGER PRIMARY KEY,
    market      TEXT NOT NULL REFERENCES markets(code),
    code        TEXT NOT NULL,
    vendor      TEXT,
    UNIQUE (market, code)
);

CREATE TABLE instruments (
    id            TEXT PRIMARY KEY,
    market        TEXT NOT NULL REFERENCES markets(code),
    protocol      TEXT NOT NULL,
    serial_number TEXT,
    model         TEXT,
    firmware      TEXT,
    first_seen    TEXT,
    last_seen     TEXT
);

-- A sample: one commodity from one stall at one time. `key` is what makes two readings
-- one sample (SPEC "Coverage"): the sample id within the market, else stall + commodity + hour.
CREATE TABLE samples (
    id             INTEGER PRIMARY KEY,
    key            TEXT NOT NULL UNIQUE,
    market         TEXT NOT NULL REFERENCES markets(code),
    stall          TEXT,
    sample_id      TEXT,
    name           TEXT,
    category       TEXT,
    vendor         TEXT,
    supplier       TEXT,
    certificate_no TEXT,
    sampled_at     TEXT,
    created_at     TEXT NOT NULL
);

-- What a reading came from, also for frames that gave no reading (`error` says why).
CREATE TABLE raw_frames (
    id          INTEGER PRIMARY KEY,
    source      TEXT NOT NULL,
    stream_offset INTEGER NOT NULL,
    hash        TEXT NOT NULL,
    bytes       BLOB NOT NULL,
    error       TEXT,
    received_at TEXT NOT NULL,
    UNIQUE (source, stream_offset, hash)
);
CREATE INDEX raw_frames_received ON raw_frames (received_at);

CREATE TABLE readings (
    id              INTEGER PRIMARY KEY,
    identity        TEXT NOT NULL UNIQUE,
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
    reading_json    TEXT NOT NULL
);
CREATE INDEX readings_market_day ON readings (market, local_day);
CREATE INDEX readings_verdict_day ON readings (verdict, local_day);
CREATE INDEX readings_analyte_day ON readings (analyte, local_day);
CREATE INDEX readings_sample ON readings (sample_ref);
-- Corrections find the reading they supersede by these.
CREATE INDEX readings_correction ON readings (instrument, sample_id, analyte) WHERE sample_id IS NOT NULL;

CREATE TABLE holds (
    id          TEXT PRIMARY KEY,
    reading     INTEGER NOT NULL UNIQUE REFERENCES readings(id),
    market      TEXT NOT NULL REFERENCES markets(code),
    stall       TEXT,
    sample_ref  INTEGER REFERENCES samples(id),
    status      TEXT NOT NULL CHECK (status IN ('held', 'confirmed', 'released', 'review')),
    created_at  TEXT NOT NULL,
    updated_at  TEXT NOT NULL
);
CREATE INDEX holds_status ON holds (status, market);

CREATE TABLE hold_history (
    id      INTEGER PRIMARY KEY,
    hold    TEXT NOT NULL REFERENCES holds(id),
    at      TEXT NOT NULL,
    status  TEXT NOT NULL,
    by      TEXT NOT NULL,
    reason  TEXT NOT NULL
);
CREATE INDEX hold_history_hold ON hold_history (hold, id);

-- One row per (event, upstream). `body` is the exact bytes every attempt sends.
CREATE TABLE outbox (
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
    UNIQUE (event_id, upstream)
);
CREATE INDEX outbox_due ON outbox (status, upstream, next_attempt_ms);
CREATE INDEX outbox_hold ON outbox (hold, upstream, id) WHERE hold IS NOT NULL;

CREATE TABLE tokens (
    id          INTEGER PRIMARY KEY,
    name        TEXT NOT NULL UNIQUE,
    hash        TEXT NOT NULL UNIQUE,
    role        TEXT NOT NULL CHECK (role IN ('station', 'contractor', 'regulator', 'admin')),
    markets     TEXT NOT NULL DEFAULT '[]',
    created_at  TEXT NOT NULL,
    last_used_at TEXT,
    expires_at  TEXT,
    revoked_at  TEXT
);

CREATE TABLE audit_log (
    id      INTEGER PRIMARY KEY,
    at      TEXT NOT NULL,
    actor   TEXT NOT NULL,
    action  TEXT NOT NULL,
    subject TEXT,
    detail  TEXT
);
CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log
BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END;
CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log
BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END;

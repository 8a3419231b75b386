-- The positive workflow after a confirmed retest: stop sale, an optional lab confirmation,
-- destruction, a re-sample of the same stall and commodity, and closing. `holds.status` gains
-- the states of that path (SQLite cannot change a CHECK constraint: the table is rebuilt), and
-- keeps the facts the report, the board and the deadline read without replaying the history:
-- the destruction (kg, when), the passing re-sample, and when the overdue event was queued.
-- Each history entry of an action keeps the action's name and fields (JSON).
CREATE TABLE holds_new (
    id               TEXT PRIMARY KEY,
    reading          INTEGER NOT NULL UNIQUE REFERENCES readings(id),
    market           TEXT NOT NULL REFERENCES markets(code),
    stall            TEXT,
    sample_ref       INTEGER REFERENCES samples(id),
    status           TEXT NOT NULL CHECK (status IN ('held', 'confirmed', 'stopped', 'lab',
                         'destroyed', 'closed', 'released', 'review')),
    created_at       TEXT NOT NULL,
    updated_at       TEXT NOT NULL,
    destroyed_kg     REAL,
    destroyed_at     TEXT,
    resample_reading INTEGER REFERENCES readings(id),
    overdue_at       TEXT
);
INSERT INTO holds_new (id, reading, market, stall, sample_ref, status, created_at, updated_at)
SELECT id, reading, market, stall, sample_ref, status, created_at, updated_at FROM holds;
DROP TABLE holds;
ALTER TABLE holds_new RENAME TO holds;
CREATE INDEX holds_status ON holds (status, market);
-- The deadline scan and the monthly report look holds up by when they opened.
CREATE INDEX holds_created ON holds (created_at);

ALTER TABLE hold_history ADD COLUMN action TEXT;
ALTER TABLE hold_history ADD COLUMN fields TEXT;

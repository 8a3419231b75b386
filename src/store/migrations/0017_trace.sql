-- Traceability (`docs/trace.md`): a failure whose sample names a certificate (合格证) or a
-- supplier holds the other samples of that batch in every market until they are tested. Such
-- a hold belongs to a sample, not to a reading (the goods may not be tested yet): `reading`
-- may be empty, `traced_from` is the failed reading it follows from, and `status` gains
-- `traced`. SQLite cannot change a column's constraints: the table is rebuilt (with the
-- columns of 0016 named, so that replaying 0016 and this one on a database works).
CREATE TABLE holds_new (
    id               TEXT PRIMARY KEY,
    reading          INTEGER UNIQUE REFERENCES readings(id),
    market           TEXT NOT NULL REFERENCES markets(code),
    stall            TEXT,
    sample_ref       INTEGER REFERENCES samples(id),
    status           TEXT NOT NULL CHECK (status IN ('held', 'confirmed', 'stopped', 'lab',
                         'destroyed', 'closed', 'released', 'review', 'traced')),
    created_at       TEXT NOT NULL,
    updated_at       TEXT NOT NULL,
    destroyed_kg     REAL,
    destroyed_at     TEXT,
    resample_reading INTEGER REFERENCES readings(id),
    overdue_at       TEXT,
    traced_from      INTEGER REFERENCES readings(id),
    CHECK ((reading IS NULL) = (traced_from IS NOT NULL))
);
INSERT INTO holds_new (id, reading, market, stall, sample_ref, status, created_at, updated_at,
                       destroyed_kg, destroyed_at, resample_reading, overdue_at)
SELECT id, reading, market, stall, sample_ref, status, created_at, updated_at,
       destroyed_kg, destroyed_at, resample_reading, overdue_at FROM holds;
DROP TABLE holds;
ALTER TABLE holds_new RENAME TO holds;
CREATE INDEX holds_status ON holds (status, market);
CREATE INDEX holds_created ON holds (created_at);
-- One traced hold per sample and failure; a test of a sample finds its traced holds.
CREATE UNIQUE INDEX holds_traced ON holds (sample_ref, traced_from) WHERE traced_from IS NOT NULL;
-- The batch of a failure: the samples of its certificate, or of its supplier and commodity.
CREATE INDEX IF NOT EXISTS samples_certificate ON samples (certificate_no)
    WHERE certificate_no IS NOT NULL;
CREATE INDEX IF NOT EXISTS samples_supplier ON samples (supplier, name)
    WHERE supplier IS NOT NULL;
-- Risk grades (`docs/risk.md`) read a vendor's tests through its samples.
CREATE INDEX IF NOT EXISTS samples_vendor ON samples (vendor) WHERE vendor IS NOT NULL;

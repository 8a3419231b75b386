-- Coverage (SPEC "Coverage: what is counted") from a per-market-per-day aggregate kept in the
-- same transaction as the readings, instead of a scan of the day's readings: a year of data
-- (8.8 M readings) made that scan the slow part of GET /api/v1/coverage.
--
-- Only readings that are not superseded count (a correction is the test). `samples` is the
-- number of distinct samples with at least one pass or fail reading that day; to keep it
-- exact when a correction takes a reading out, `coverage_samples` counts, per sample and
-- day, the pass/fail readings that still count (a sample is one market's). Both tables are
-- derived from `readings`, which holds the references to markets and samples: no foreign
-- keys here (each would be one more lookup per aggregate write).
CREATE TABLE coverage_days (
    day            TEXT NOT NULL,
    market         TEXT NOT NULL,
    tests          INTEGER NOT NULL DEFAULT 0,
    failures       INTEGER NOT NULL DEFAULT 0,
    samples        INTEGER NOT NULL DEFAULT 0,
    last_result_at TEXT,
    PRIMARY KEY (day, market)
) WITHOUT ROWID;

CREATE TABLE coverage_samples (
    sample_ref  INTEGER NOT NULL,
    day         TEXT NOT NULL,
    readings    INTEGER NOT NULL,
    PRIMARY KEY (sample_ref, day)
) WITHOUT ROWID;

INSERT INTO coverage_samples (sample_ref, day, readings)
SELECT sample_ref, local_day, count(*) FROM readings
WHERE superseded = 0 AND verdict IN ('pass', 'fail') AND sample_ref IS NOT NULL
GROUP BY sample_ref, local_day;

INSERT INTO coverage_days (day, market, tests, failures, samples, last_result_at)
SELECT local_day, market, count(*), coalesce(sum(verdict = 'fail'), 0),
       count(DISTINCT CASE WHEN verdict IN ('pass', 'fail') THEN sample_ref END),
       max(received_at)
FROM readings WHERE superseded = 0
GROUP BY local_day, market;

-- Coverage no longer reads the readings: the wide covering index goes. What remains to find
-- by market and day (the latest receipt of a day a correction took a reading out of) needs
-- only the two columns, day first: a batch of today's readings from many markets then
-- dirties the few pages of today's end of the index, not one page per market. No query uses
-- (analyte, local_day). Fewer indexes: every one is a B-tree insert per stored reading.
DROP INDEX IF EXISTS readings_coverage;
DROP INDEX IF EXISTS readings_analyte_day;
CREATE INDEX IF NOT EXISTS readings_day_market ON readings (local_day, market);

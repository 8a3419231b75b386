-- Sampling plans (`docs/plan.md`): a market's plan for a day, drawn when it is first asked for
-- and kept, so that it is the same on every call and coverage counts it done.
CREATE TABLE IF NOT EXISTS plans (
    market     TEXT NOT NULL REFERENCES markets(code),
    day        TEXT NOT NULL,
    quota      INTEGER NOT NULL,
    seed       TEXT NOT NULL,
    created_at TEXT NOT NULL,
    PRIMARY KEY (market, day)
);
CREATE TABLE IF NOT EXISTS plan_entries (
    market   TEXT NOT NULL,
    day      TEXT NOT NULL,
    position INTEGER NOT NULL,
    stall    TEXT NOT NULL,
    category TEXT NOT NULL,
    grade    TEXT NOT NULL CHECK (grade IN ('low', 'medium', 'high')),
    PRIMARY KEY (market, day, position),
    FOREIGN KEY (market, day) REFERENCES plans (market, day)
);
-- Coverage counts a day's plans: by day.
CREATE INDEX IF NOT EXISTS plan_entries_day ON plan_entries (day, market);

-- Live link status of each configured instrument, written by `serve` every few seconds and
-- at shutdown (SPEC `GET /api/v1/instruments`). Counters are totals over every run.
ALTER TABLE instruments ADD COLUMN online INTEGER NOT NULL DEFAULT 0;
ALTER TABLE instruments ADD COLUMN readings INTEGER NOT NULL DEFAULT 0;
ALTER TABLE instruments ADD COLUMN duplicates INTEGER NOT NULL DEFAULT 0;
ALTER TABLE instruments ADD COLUMN decode_errors INTEGER NOT NULL DEFAULT 0;
ALTER TABLE instruments ADD COLUMN reconnects INTEGER NOT NULL DEFAULT 0;
ALTER TABLE instruments ADD COLUMN retransmissions INTEGER NOT NULL DEFAULT 0;
ALTER TABLE instruments ADD COLUMN refused_commits INTEGER NOT NULL DEFAULT 0;
ALTER TABLE instruments ADD COLUMN last_error TEXT;
ALTER TABLE instruments ADD COLUMN status_at TEXT;

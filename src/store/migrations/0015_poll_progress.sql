-- Polled instruments (lz4000t, tl310, dy723pc) are asked for a day's records: the last local
-- day read completely survives a restart, so that the first poll after an outage reads every
-- day since (at most 31 days back).
CREATE TABLE poll_progress (
    instrument        TEXT PRIMARY KEY,
    last_complete_day TEXT NOT NULL,
    updated_at        TEXT NOT NULL
);

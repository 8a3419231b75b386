-- Raw retention: old raw bytes are emptied, the row stays. A reading's `raw_frame` keeps
-- pointing at its source, offset, hash, length and error (and re-ingest dedup still works);
-- only the bytes go. The partial index lists just what is still to prune, so the pruner
-- never walks a year of frames it already emptied.
ALTER TABLE raw_frames ADD COLUMN pruned_at TEXT;
ALTER TABLE raw_frames ADD COLUMN pruned_length INTEGER;
DROP INDEX IF EXISTS raw_frames_received;
CREATE INDEX raw_frames_unpruned ON raw_frames (received_at) WHERE pruned_at IS NULL;

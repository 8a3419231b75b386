-- Ingest throughput: every index is one more B-tree insert per reading. A correction finds
-- the reading it supersedes through its sample (`readings_sample`: same market and sample
-- id), then filters by instrument and analyte; the dedicated index is not needed.
DROP INDEX IF EXISTS readings_correction;

-- Coverage (GET /api/v1/coverage) reads, per market and local day, the verdict, sample and
-- receipt time of every reading that is not superseded. With all of them in the index the
-- query never touches the table: a 72,600-reading day went from p99 104 ms to 24 ms.
-- It replaces the narrower (market, local_day) index, whose queries it serves as well.
DROP INDEX IF EXISTS readings_market_day;
CREATE INDEX readings_coverage ON readings (market, local_day, superseded, verdict, sample_ref, received_at);

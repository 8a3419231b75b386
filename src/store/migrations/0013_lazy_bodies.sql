-- Ingest throughput: a `result.recorded` event of a reading that opened no hold is queued
-- with an empty body and built from its reading's row when sent (`store::outbox::LAZY_BODY`).
-- Its bytes must not change between attempts, so a change to what such a body is made of is
-- refused until the bodies built from the row are stored (`store::outbox::freeze_bodies`).
-- A later migration that rebuilds `readings` must create this trigger again.
CREATE TRIGGER readings_lazy_bodies_frozen
BEFORE UPDATE OF received_at, market, stall, sample_id, sample_name, category, reading_json
ON readings
WHEN EXISTS (SELECT 1 FROM outbox WHERE reading = OLD.id AND body = x'')
BEGIN
    SELECT RAISE(ABORT, 'outbox bodies built from this reading must be stored before it changes');
END;

-- From this version on a reading's `identity_key` leads with the minute it was measured
-- (`store::identity::reading_key`), so new keys go to the end of `readings_identity` instead
-- of a random page each. Rows stored before keep the key of their identity alone; the writer
-- looks for a duplicate under both keys while such rows exist. No row is rewritten here.

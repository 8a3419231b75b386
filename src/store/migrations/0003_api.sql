-- The HTTP API: which uploaded row (uploader's own id) became which reading, so that the same
-- id sent again is recognised (same content: a no-op; other content: rejected).
CREATE TABLE uploads (
    uploader     TEXT NOT NULL,
    row_id       TEXT NOT NULL,
    content_hash TEXT NOT NULL,
    reading      INTEGER NOT NULL REFERENCES readings(id),
    received_at  TEXT NOT NULL,
    PRIMARY KEY (uploader, row_id)
) WITHOUT ROWID;

-- 001_hot_store: the hot store, i.e. the uploads buffered until the
-- archiver moves them to object storage, and what every upload of a
-- (table, schema) shares: its schema text, codec and sync marker.
--
-- Applied at start-up by avs_store_open when PRAGMA user_version < 1, in one
-- BEGIN IMMEDIATE transaction together with "PRAGMA user_version = 1", so it
-- is either fully applied or not at all, and never applied twice.  The
-- statements therefore have no IF NOT EXISTS: user_version is the one record
-- of what is applied, and a mismatch should fail loudly.
--
-- Rollback (stop nginx first; this drops every buffered upload, so archive or
-- copy the file before):
--     BEGIN IMMEDIATE;
--     DROP TABLE buffer_logs;
--     DROP TABLE streams;
--     DROP TABLE schemas;
--     PRAGMA user_version = 0;
--     COMMIT;
-- Dropping a table drops its indexes.  Later migrations must be rolled back
-- first, newest first.


-- Every writer schema seen, keyed by its CRC-64-AVRO fingerprint (16 lower
-- case hex digits).  canonical_form is kept to detect two schemas with the
-- same fingerprint: CRC-64 is not collision resistant, and a schema that
-- collides must never share the stream of another.  schema_json is the text
-- as first uploaded; it goes into the header of every file of its streams.
CREATE TABLE schemas (
    fingerprint     TEXT PRIMARY KEY NOT NULL
                    CHECK (length(fingerprint) = 16),
    canonical_form  TEXT NOT NULL,
    schema_json     TEXT NOT NULL,
    created_at      INTEGER NOT NULL            -- ms since the epoch
);


-- A stream is all the data of one table written with one schema.  Its codec
-- and sync marker are fixed when it is created, so that any mix of its
-- blocks (archived ranges from several files, then hot rows) can follow one
-- OCF header without being re-encoded.  Rows are never updated.
CREATE TABLE streams (
    id                  INTEGER PRIMARY KEY,
    table_name          TEXT NOT NULL,
    schema_fingerprint  TEXT NOT NULL REFERENCES schemas (fingerprint),
    codec               TEXT NOT NULL
                        CHECK (codec IN ('null', 'deflate', 'snappy',
                                         'zstandard')),
    sync                BLOB NOT NULL CHECK (length(sync) = 16),
    created_at          INTEGER NOT NULL,       -- ms since the epoch
    UNIQUE (table_name, schema_fingerprint)
);


-- The buffered uploads: the seed's buffer_logs, with its column names kept
-- so that the operators' queries still work.  data holds the upload's blocks
-- (count, size, bytes, sync) already re-framed in the stream's codec and
-- sync marker, without any OCF header.  The columns after created_at are
-- new: the counts feed the status page and the archiver, the fingerprint
-- and stream tell which header the blocks belong under, and content_hash
-- (SHA-256 hex of the upload) lets a retried upload be recognised.
-- AUTOINCREMENT, as in the seed: an id is never reused, even after the
-- archiver has deleted the newest rows, so an id a client was given names
-- one upload only.
CREATE TABLE buffer_logs (
    id                  INTEGER PRIMARY KEY AUTOINCREMENT,
    dataset_id          TEXT NOT NULL,
    table_name          TEXT NOT NULL,
    period_tag          TEXT NOT NULL,
    timestamp           INTEGER NOT NULL,       -- ms since the epoch
    data                BLOB NOT NULL,
    uploaded_by         TEXT,
    created_at          INTEGER NOT NULL        -- ms since the epoch
                        DEFAULT (CAST((julianday('now') - 2440587.5)
                                      * 86400000 AS INTEGER)),
    record_count        INTEGER NOT NULL CHECK (record_count >= 0),
    block_count         INTEGER NOT NULL CHECK (block_count >= 0),
    schema_fingerprint  TEXT NOT NULL REFERENCES schemas (fingerprint),
    stream_id           INTEGER NOT NULL REFERENCES streams (id),
    content_hash        TEXT NOT NULL CHECK (length(content_hash) = 64)
);

-- The seed's index: a read for one dataset and table, optionally within a
-- time window, finds its hot rows in order.
CREATE INDEX idx_buffer_search
    ON buffer_logs (dataset_id, table_name, timestamp);

-- De-duplication: a client that retries an upload whose answer it lost gets
-- the id of the stored row instead of a second copy.  Scoped by dataset and
-- table: two datasets may well upload identical bytes.
CREATE UNIQUE INDEX idx_buffer_dedup
    ON buffer_logs (dataset_id, table_name, content_hash);

-- The archiver packs one file per table, period and schema, and takes the
-- rows of such a group in id order; this index gives it both without a
-- sort or a scan of the other groups.
CREATE INDEX idx_buffer_archive
    ON buffer_logs (table_name, period_tag, schema_fingerprint, id);

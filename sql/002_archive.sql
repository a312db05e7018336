-- 002_archive: the cold half of the store.  The archiver packs the hot rows
-- of buffer_logs into Avro container files in object storage; these tables
-- say where every archived upload now is (archived_files, block_indexes),
-- group the files as the seed did (avro_files, avro_segments,
-- avro_append_history), and carry the archiver's own state: its jobs, its
-- lease and its counters.
--
-- Applied by avs_store_open when PRAGMA user_version < 2, in one
-- BEGIN IMMEDIATE transaction with "PRAGMA user_version = 2", as 001 is.
--
-- Rollback (stop nginx first).  The archived objects stay in object storage
-- but nothing points at them any more, so copy the database file before;
-- the rows of pending jobs were never taken out of buffer_logs, so nothing
-- hot is lost:
--     BEGIN IMMEDIATE;
--     DROP TABLE avro_append_history;
--     DROP TABLE avro_segments;
--     DROP TABLE avro_files;
--     DROP TABLE block_indexes;
--     DROP TABLE archived_files;
--     DROP TABLE archive_jobs;
--     DROP TABLE archive_lease;
--     DROP TABLE archive_state;
--     PRAGMA user_version = 1;
--     COMMIT;
-- Tables are dropped children first, because foreign keys are on.  Dropping
-- a table drops its indexes.
--
-- Claims.  A job claims the rows of one group (table, period, schema) whose
-- ids lie in [first_id, last_id].  That set cannot change while the job is
-- pending: buffer_logs ids are AUTOINCREMENT, so a later upload always gets
-- an id above every id ever used, and only the job's own commit deletes its
-- rows.  A claim column on buffer_logs was measured and dropped: setting it
-- rewrites each claimed row whole (the column comes after the data blob and
-- grows from NULL to an integer), which wrote as many WAL bytes as the rows
-- hold, under the shared write lock, before a single byte was archived.


-- One object in object storage: the seed's archived_files with its column
-- names, plus what proves the object is the one written (the store's ETag
-- and a SHA-256 of the bytes) and what the object holds.  file_path is the
-- object key without the store's prefix: {table}/{period}/{fp}/{node}-{seq}.
-- The seed's idx_archived_path is not repeated: UNIQUE indexes file_path.
CREATE TABLE archived_files (
    id                  INTEGER PRIMARY KEY AUTOINCREMENT,
    file_path           TEXT NOT NULL UNIQUE,
    file_size           INTEGER,
    compression_codec   TEXT,                   -- 'null', 'deflate', ...
    created_at          INTEGER                 -- ms since the epoch
                        DEFAULT (CAST((julianday('now') - 2440587.5)
                                      * 86400000 AS INTEGER)),
    last_modified_at    INTEGER,
    etag                TEXT,
    sha256              TEXT CHECK (sha256 IS NULL OR length(sha256) = 64),
    table_name          TEXT NOT NULL,
    period_tag          TEXT NOT NULL,
    schema_fingerprint  TEXT NOT NULL,
    record_count        INTEGER NOT NULL CHECK (record_count >= 0)
);


-- Where one dataset's bytes are in one file: the header of the file
-- followed by the bytes [start_byte, start_byte + length) is a valid OCF
-- that holds exactly that dataset's records of the file, its uploads in
-- upload order.  One row per dataset per file.  The seed's columns first;
-- period_tag and schema_fingerprint let a read pick its rows without a
-- join, created_at says when the range became readable.
CREATE TABLE block_indexes (
    id                  INTEGER PRIMARY KEY AUTOINCREMENT,
    dataset_id          TEXT NOT NULL,
    table_name          TEXT NOT NULL,
    file_id             INTEGER NOT NULL REFERENCES archived_files (id),
    start_byte          INTEGER NOT NULL CHECK (start_byte >= 0),
    length              INTEGER NOT NULL CHECK (length > 0),
    record_count        INTEGER NOT NULL CHECK (record_count >= 0),
    start_timestamp     INTEGER NOT NULL,       -- ms, oldest upload
    end_timestamp       INTEGER NOT NULL,       -- ms, newest upload
    period_tag          TEXT NOT NULL,
    schema_fingerprint  TEXT NOT NULL,
    created_at          INTEGER NOT NULL,       -- ms since the epoch
    UNIQUE (file_id, dataset_id)
);

-- The seed's index: a read of one dataset and table within a time window.
CREATE INDEX idx_block_indexes_dataset_table
    ON block_indexes (dataset_id, table_name, start_timestamp, end_timestamp);

-- A read of one dataset, table and period.
CREATE INDEX idx_block_indexes_dataset_period
    ON block_indexes (dataset_id, table_name, period_tag);


-- The seed's logical file: all the archived data of one table, period and
-- schema.  In the seed one object grew by appends and was cut into 512 MB
-- segments; objects here are written once, so every archive cycle adds a
-- segment (an object of archived_files, at most segment_size bytes) and
-- updates this row.  file_key is {table}/{period}/{fp}, the common prefix
-- of its segments' keys.  dataset_id is always NULL: the file is shared by
-- every dataset that uploaded into the group (block_indexes says where
-- each one is).  current_size is the sum of the segments' sizes;
-- is_segmented is 1 once there is more than one segment; last_etag and
-- content_hash (SHA-256 hex) are the newest segment's, uploaded_by the
-- node name of the archiver that wrote it.
CREATE TABLE avro_files (
    id                  INTEGER PRIMARY KEY AUTOINCREMENT,
    file_key            TEXT NOT NULL UNIQUE,
    dataset_id          TEXT,
    table_name          TEXT NOT NULL,
    period_tag          TEXT NOT NULL,
    schema_fingerprint  TEXT NOT NULL,
    current_size        INTEGER NOT NULL DEFAULT 0,
    is_segmented        INTEGER NOT NULL DEFAULT 0
                        CHECK (is_segmented IN (0, 1)),
    segment_count       INTEGER NOT NULL DEFAULT 0,
    created_at          INTEGER NOT NULL,       -- ms since the epoch
    last_appended_at    INTEGER NOT NULL,
    last_etag           TEXT,
    content_hash        TEXT,
    uploaded_by         TEXT,
    UNIQUE (table_name, period_tag, schema_fingerprint)
);


-- The segments of a logical file, numbered from 1 in the order they were
-- committed; each is one object (segment_key = archived_files.file_path).
CREATE TABLE avro_segments (
    id                  INTEGER PRIMARY KEY AUTOINCREMENT,
    parent_file_key     TEXT NOT NULL REFERENCES avro_files (file_key),
    parent_file_id      INTEGER NOT NULL REFERENCES avro_files (id),
    segment_number      INTEGER NOT NULL CHECK (segment_number >= 1),
    segment_key         TEXT NOT NULL UNIQUE,
    file_id             INTEGER NOT NULL UNIQUE
                        REFERENCES archived_files (id),
    segment_size        INTEGER NOT NULL,
    record_count        INTEGER NOT NULL,
    etag                TEXT,
    created_at          INTEGER NOT NULL,       -- ms since the epoch
    UNIQUE (parent_file_id, segment_number)
);


-- What each committed job added to a logical file: 'create' for its first
-- segment, 'append' for the next ones.
CREATE TABLE avro_append_history (
    id                  INTEGER PRIMARY KEY AUTOINCREMENT,
    file_key            TEXT NOT NULL REFERENCES avro_files (file_key),
    segment_number      INTEGER NOT NULL,
    segment_key         TEXT NOT NULL,
    action              TEXT NOT NULL CHECK (action IN ('create', 'append')),
    appended_bytes      INTEGER NOT NULL,
    record_count        INTEGER NOT NULL,
    dataset_count       INTEGER NOT NULL,
    upload_count        INTEGER NOT NULL,
    appended_at         INTEGER NOT NULL,       -- ms since the epoch
    job_id              INTEGER NOT NULL REFERENCES archive_jobs (id)
);

CREATE INDEX idx_append_history_file
    ON avro_append_history (file_key, appended_at);


-- One file to write.  A claim creates the job 'pending' with its object key
-- and its rows (see "Claims" above); a crash at any later step leaves it
-- pending, and the next cycle runs it again with the same key and the same
-- rows, so the same bytes.  The commit that indexes the file deletes the
-- rows and sets 'done' in one transaction.  header_bytes, row_count and
-- data_bytes are fixed by the claim; the build and the commit check them.
-- The claim reads no record counts: that column comes after the data blob,
-- and reading it reads a large upload whole, under the write lock.
-- attempts counts the failed runs (last_error says why), put_attempts the
-- PUTs started: before the first one, an object already under the key is
-- someone else's (a second node with the same name, a database started
-- anew) and is never overwritten.  Done jobs are kept: their keys must
-- never be issued again.
CREATE TABLE archive_jobs (
    id                  INTEGER PRIMARY KEY AUTOINCREMENT,
    key                 TEXT NOT NULL UNIQUE,
    table_name          TEXT NOT NULL,
    period_tag          TEXT NOT NULL,
    schema_fingerprint  TEXT NOT NULL,
    stream_id           INTEGER NOT NULL REFERENCES streams (id),
    first_id            INTEGER NOT NULL,
    last_id             INTEGER NOT NULL CHECK (last_id >= first_id),
    row_count           INTEGER NOT NULL CHECK (row_count > 0),
    header_bytes        INTEGER NOT NULL,
    data_bytes          INTEGER NOT NULL,
    record_count        INTEGER,                -- set by the commit
    state               TEXT NOT NULL DEFAULT 'pending'
                        CHECK (state IN ('pending', 'done')),
    created_at          INTEGER NOT NULL,       -- ms since the epoch
    finished_at         INTEGER,
    attempts            INTEGER NOT NULL DEFAULT 0,
    put_attempts        INTEGER NOT NULL DEFAULT 0,
    last_error          TEXT,
    file_id             INTEGER REFERENCES archived_files (id)
);

-- A group's newest pending claim: a new claim starts above it.
CREATE INDEX idx_archive_jobs_pending
    ON archive_jobs (table_name, period_tag, schema_fingerprint, last_id)
    WHERE state = 'pending';


-- Who archives: one owner at a time across every worker, reload and restart
-- sharing this file.  owner is unique per process (host:pid:start time);
-- the lease is free when expires_at (ms since the epoch) has passed.
CREATE TABLE archive_lease (
    id                  INTEGER PRIMARY KEY CHECK (id = 1),
    owner               TEXT,
    acquired_at         INTEGER NOT NULL DEFAULT 0,
    expires_at          INTEGER NOT NULL DEFAULT 0
);

INSERT INTO archive_lease (id) VALUES (1);


-- The archiver's counters: the next sequence number of the object keys
-- (with the node name it makes every key unique), the last cycle's summary
-- as JSON, and the failures since the last cycle that succeeded.
CREATE TABLE archive_state (
    id                  INTEGER PRIMARY KEY CHECK (id = 1),
    node                TEXT,
    next_sequence       INTEGER NOT NULL DEFAULT 1,
    last_cycle_at       INTEGER NOT NULL DEFAULT 0,
    last_cycle          TEXT,
    last_error          TEXT,
    failures            INTEGER NOT NULL DEFAULT 0,
    cycles              INTEGER NOT NULL DEFAULT 0
);

INSERT INTO archive_state (id) VALUES (1);

-- 005_archive_order: idx_buffer_archive also holds each row's dataset_id.
-- The archiver writes a job's rows ordered by dataset, then id (each
-- dataset's uploads one run of blocks).  Without the dataset in the index
-- SQLite sorts the job's rows from the table: it reads the page of every
-- row, data and all, before the first byte goes out, then reads them again
-- for their data (own_ship, 102 772 rows: 764 MB read and 0.15-0.19 s
-- before the first row).  With it the sort reads the index only.  The
-- uploads pay a few more bytes per index entry, appended at the end of
-- their group, as the id already was.
--
-- Applied by avs_store_open when PRAGMA user_version < 5, in one
-- BEGIN IMMEDIATE transaction with "PRAGMA user_version = 5", as 001 is.
-- Building the index reads every hot row once.
--
-- Rollback (stop nginx first):
--     BEGIN IMMEDIATE;
--     DROP INDEX idx_buffer_archive;
--     CREATE INDEX idx_buffer_archive
--         ON buffer_logs (table_name, period_tag, schema_fingerprint, id,
--                         data_size);
--     PRAGMA user_version = 4;
--     COMMIT;

DROP INDEX idx_buffer_archive;

CREATE INDEX idx_buffer_archive
    ON buffer_logs (table_name, period_tag, schema_fingerprint, id,
                    data_size, dataset_id);

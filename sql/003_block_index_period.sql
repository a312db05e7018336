-- 003_block_index_period: drops idx_block_indexes_dataset_period.  Reads
-- filter on the period through idx_block_indexes_dataset_table (dataset and
-- table lead both, and no query has the period alone after them), so the
-- index was never used, while the archiver's commit paid for it on every
-- block index row: a third of the time it takes to insert them.
--
-- Applied by avs_store_open when PRAGMA user_version < 3, in one
-- BEGIN IMMEDIATE transaction with "PRAGMA user_version = 3", as 001 is.
--
-- Rollback (stop nginx first):
--     BEGIN IMMEDIATE;
--     CREATE INDEX idx_block_indexes_dataset_period
--         ON block_indexes (dataset_id, table_name, period_tag);
--     PRAGMA user_version = 2;
--     COMMIT;

DROP INDEX idx_block_indexes_dataset_period;

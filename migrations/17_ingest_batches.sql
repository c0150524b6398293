-- Several waiting files are applied in one transaction, a batch, and each
-- ticket is written once per batch. What a file did to the tickets can then
-- no longer be told apart from what the other files of its batch did: the
-- ticket counts (new, updated, stale, folded duplicates) move to the batch,
-- and a file's own columns hold them only when it was a batch of one.
CREATE TABLE tickets.ingest_batches (
    batch_id    bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    dataset     text NOT NULL,
    files       integer NOT NULL,
    rows_staged integer NOT NULL,
    duplicates  integer NOT NULL,
    inserted    integer NOT NULL,
    updated     integer NOT NULL,
    stale       integer NOT NULL,
    applied_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX ingest_batches_dataset_applied_idx ON tickets.ingest_batches (dataset, applied_at DESC);
COMMENT ON TABLE tickets.ingest_batches IS
    'One row per transaction that applied files: the tickets it wrote, each once. Its files point to it.';

ALTER TABLE tickets.ingest_files
    ADD COLUMN batch_id bigint REFERENCES tickets.ingest_batches,
    ALTER COLUMN duplicates DROP NOT NULL,
    ALTER COLUMN inserted DROP NOT NULL,
    ALTER COLUMN updated DROP NOT NULL,
    ALTER COLUMN stale DROP NOT NULL;
COMMENT ON COLUMN tickets.ingest_files.inserted IS
    'Tickets this file made new; NULL when it shared its batch with other files (see ingest_batches).';

ALTER TABLE tickets.ingest_runs ADD COLUMN batches integer NOT NULL DEFAULT 0;

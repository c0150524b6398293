-- Bookkeeping of the ingest engine (pipeline.py).

-- Where the stored version of each ticket came from. The upsert compares
-- (source_updated_at, source_file, source_line) so that replays, reseeds and
-- late files converge whatever order they are applied in: on equal
-- timestamps the later file wins, within a file the later row.
ALTER TABLE tickets.inc
    ADD COLUMN source_file text NOT NULL DEFAULT '',
    ADD COLUMN source_line integer NOT NULL DEFAULT 0;
ALTER TABLE tickets.crq
    ADD COLUMN source_file text NOT NULL DEFAULT '',
    ADD COLUMN source_line integer NOT NULL DEFAULT 0;

-- One row per change file version seen: a key rewritten by the export (new
-- ETag) gets a row of its own. Local files (--inc-csv) are recorded with a
-- 'file:' key and an empty ETag.
CREATE TABLE tickets.ingest_files (
    dataset          text NOT NULL,
    key              text NOT NULL,
    etag             text NOT NULL DEFAULT '',
    size_bytes       bigint,
    status           text NOT NULL CHECK (status IN ('applied', 'rejected')),
    rows_read        integer NOT NULL DEFAULT 0,
    alarms_dropped   integer NOT NULL DEFAULT 0,
    sentinels        integer NOT NULL DEFAULT 0,
    duplicates       integer NOT NULL DEFAULT 0,
    inserted         integer NOT NULL DEFAULT 0,
    updated          integer NOT NULL DEFAULT 0,
    stale            integer NOT NULL DEFAULT 0,
    rows_rejected    integer NOT NULL DEFAULT 0,
    error            text,
    applied_at       timestamptz NOT NULL DEFAULT now(),
    archived_at      timestamptz,
    PRIMARY KEY (dataset, key, etag)
);

CREATE TABLE tickets.ingest_runs (
    run_id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    dataset         text NOT NULL,
    mode            text NOT NULL,
    started_at      timestamptz NOT NULL DEFAULT clock_timestamp(),
    finished_at     timestamptz,
    status          text NOT NULL DEFAULT 'running' CHECK (status IN ('running', 'ok', 'failed')),
    files_applied   integer NOT NULL DEFAULT 0,
    files_archived  integer NOT NULL DEFAULT 0,
    files_rejected  integer NOT NULL DEFAULT 0,
    rows_inserted   integer NOT NULL DEFAULT 0,
    rows_updated    integer NOT NULL DEFAULT 0,
    rows_stale      integer NOT NULL DEFAULT 0,
    rows_rejected   integer NOT NULL DEFAULT 0,
    error           text
);
CREATE INDEX ingest_runs_dataset_started_idx ON tickets.ingest_runs (dataset, started_at DESC);
COMMENT ON TABLE tickets.ingest_runs IS 'One row per --apply run; status running with no finished_at means the run died.';

-- A row that cannot be applied is kept here, word for word, with the reason.
CREATE TABLE tickets.rejected_rows (
    dataset     text NOT NULL,
    file_key    text NOT NULL,
    line        integer NOT NULL,
    raw_text    text NOT NULL,
    reason      text NOT NULL,
    recorded_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (dataset, file_key, line)
);

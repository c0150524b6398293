-- The instant a stored version is ordered by: its source_updated_at, or, when
-- that is null or unparseable, its change file's export time (the ingest
-- computes it from the key). A version without a readable source_updated_at
-- used to lose every comparison and be dropped as stale; ordered by its file,
-- the later file wins, as the source contract orders ties. Rows stored before
-- this column keep NULL and are compared by source_updated_at as before.
ALTER TABLE tickets.inc ADD COLUMN version_at timestamptz;
ALTER TABLE tickets.crq ADD COLUMN version_at timestamptz;
COMMENT ON COLUMN tickets.inc.version_at IS
    'Instant this version is ordered by: source_updated_at, else its file''s export time; NULL for rows stored before migration 20.';
COMMENT ON COLUMN tickets.crq.version_at IS
    'Instant this version is ordered by: source_updated_at, else its file''s export time; NULL for rows stored before migration 20.';

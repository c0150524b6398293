-- One name per concept (docs/glossary.md): a version leaves changes/ for processed/ when applied and for
-- rejected/ when not, and both columns record either move. They were named for the first move alone.
ALTER TABLE tickets.ingest_files RENAME COLUMN archived_at TO moved_at;
ALTER TABLE tickets.ingest_files RENAME COLUMN archived_etag TO moved_etag;
COMMENT ON COLUMN tickets.ingest_files.moved_at IS
    'When this version was moved out of changes/: to processed/ when applied, to rejected/ when not (NULL while '
    'it is still in changes/).';
COMMENT ON COLUMN tickets.ingest_files.moved_etag IS
    'The ETag of this version''s copy in processed/ or rejected/, recorded when it was moved (NULL before '
    'migration 24 and for a move a run did not live to record); differs from etag for a multipart or SSE-KMS '
    'upload.';

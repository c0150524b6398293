-- A copy's ETag is its own: on AWS S3 a copy of a multipart upload (ETag "<md5 of the parts' md5s>-<parts>")
-- or of an SSE-KMS object gets another one than its source. Catch-up from processed/ knew an archived copy by
-- its source's ETag alone, so it took every such copy for a version no run had applied.
ALTER TABLE tickets.ingest_files ADD COLUMN archived_etag text;
COMMENT ON COLUMN tickets.ingest_files.archived_etag IS
    'The ETag of this version''s copy in processed/ or rejected/, recorded when it was moved (NULL before '
    'migration 24 and for a move a run did not live to record); differs from etag for a multipart or SSE-KMS '
    'upload.';

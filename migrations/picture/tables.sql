-- The tables of schema tickets as migrations/NN_*.sql leave them: a picture to read, never applied (as
-- migrations/read/ is for views and functions, this is for tables). Rendered from a freshly migrated database
-- by tests/support/picture.py; tests/sql/test_migrations.py keeps it equal (FLEETTICKETS_WRITE_TABLES_PICTURE=1
-- writes it).

CREATE TABLE tickets.closure_events (
    event_id bigint GENERATED ALWAYS AS IDENTITY NOT NULL,
    ticket_id text NOT NULL,
    closed_at timestamp with time zone NOT NULL,
    mttr integer,
    cluster text,
    assigned_team text,
    owner text,
    sla_status text,
    normalized_status text,
    observed_at timestamp with time zone NOT NULL,
    dataset text NOT NULL,
    CONSTRAINT closure_events_dataset_known CHECK ((dataset = ANY (ARRAY['inc'::text, 'crq'::text]))),
    CONSTRAINT closure_events_pkey PRIMARY KEY (event_id)
);
CREATE INDEX closure_events_closed_at_idx ON tickets.closure_events USING btree (closed_at);
CREATE INDEX closure_events_latest_idx ON tickets.closure_events USING btree (dataset, ticket_id, event_id) INCLUDE (owner, assigned_team);
CREATE INDEX closure_events_ticket_idx ON tickets.closure_events USING btree (ticket_id);
CREATE TRIGGER closure_events_append_only BEFORE DELETE OR UPDATE ON tickets.closure_events FOR EACH STATEMENT EXECUTE FUNCTION tickets.forbid_change();
COMMENT ON TABLE tickets.closure_events IS 'Append-only: one row per observed closure episode (closed with no event since last seen open).';

CREATE TABLE tickets.closure_watch (
    ticket_id text NOT NULL,
    seen_closed boolean NOT NULL,
    observed_at timestamp with time zone NOT NULL,
    CONSTRAINT closure_watch_pkey PRIMARY KEY (ticket_id)
);

CREATE TABLE tickets.cluster_aliases (
    alias text NOT NULL,
    cluster text NOT NULL,
    CONSTRAINT cluster_aliases_pkey PRIMARY KEY (alias)
);
CREATE UNIQUE INDEX cluster_aliases_cluster_key ON tickets.cluster_aliases USING btree (tickets.cluster_key(alias));
CREATE UNIQUE INDEX cluster_aliases_lower_alias_key ON tickets.cluster_aliases USING btree (lower(alias));
CREATE TRIGGER cluster_aliases_map_feed_generation AFTER INSERT OR DELETE OR UPDATE OR TRUNCATE ON tickets.cluster_aliases FOR EACH STATEMENT EXECUTE FUNCTION tickets.next_map_feed_generation();

CREATE TABLE tickets.crq (
    ticket_id text NOT NULL,
    raw jsonb NOT NULL,
    geom public.geometry(Point,4326),
    geo_source text,
    ingested_at timestamp with time zone DEFAULT now() NOT NULL,
    source_file text DEFAULT ''::text NOT NULL,
    source_line integer DEFAULT 0 NOT NULL,
    normalized_status text GENERATED ALWAYS AS ((raw ->> 'normalized_status'::text)) STORED,
    raw_status text GENERATED ALWAYS AS ((raw ->> 'raw_status'::text)) STORED,
    bucket text GENERATED ALWAYS AS ((raw ->> 'bucket'::text)) STORED,
    cluster text GENERATED ALWAYS AS ((raw ->> 'cluster'::text)) STORED,
    region text GENERATED ALWAYS AS ((raw ->> 'region'::text)) STORED,
    location_name text GENERATED ALWAYS AS ((raw ->> 'location_name'::text)) STORED,
    assigned_team text GENERATED ALWAYS AS ((raw ->> 'assigned_team'::text)) STORED,
    owner text GENERATED ALWAYS AS ((raw ->> 'owner'::text)) STORED,
    sla_status text GENERATED ALWAYS AS ((raw ->> 'sla_status'::text)) STORED,
    is_actionable boolean GENERATED ALWAYS AS (tickets.to_bool((raw ->> 'is_actionable'::text))) STORED,
    created_at_service timestamp with time zone GENERATED ALWAYS AS (tickets.eat_ts((raw ->> 'created_at_service'::text))) STORED,
    scheduled_at timestamp with time zone GENERATED ALWAYS AS (tickets.eat_ts((raw ->> 'scheduled_at'::text))) STORED,
    closed_at timestamp with time zone GENERATED ALWAYS AS (tickets.eat_ts((raw ->> 'closed_at'::text))) STORED,
    first_seen_at timestamp with time zone GENERATED ALWAYS AS (tickets.eat_ts((raw ->> 'first_seen_at'::text))) STORED,
    last_seen_at timestamp with time zone GENERATED ALWAYS AS (tickets.eat_ts((raw ->> 'last_seen_at'::text))) STORED,
    source_created_at timestamp with time zone GENERATED ALWAYS AS (tickets.eat_ts((raw ->> 'source_created_at'::text))) STORED,
    source_updated_at timestamp with time zone GENERATED ALWAYS AS (tickets.eat_ts((raw ->> 'source_updated_at'::text))) STORED,
    latitude double precision GENERATED ALWAYS AS (COALESCE(tickets.feed_lat(raw), public.st_y(geom))) STORED,
    longitude double precision GENERATED ALWAYS AS (COALESCE(tickets.feed_lon(raw), public.st_x(geom))) STORED,
    geog public.geography(Point,4326) GENERATED ALWAYS AS ((geom)::public.geography(Point,4326)) STORED,
    mttr integer GENERATED ALWAYS AS ((round(tickets.to_number((raw ->> 'mttr'::text))))::integer) STORED,
    version_at timestamp with time zone,
    CONSTRAINT crq_pkey PRIMARY KEY (ticket_id),
    CONSTRAINT inc_geo_source_check CHECK ((geo_source = ANY (ARRAY['feed'::text, 'location'::text, 'cluster'::text])))
);
CREATE INDEX crq_bucket_cluster_idx ON tickets.crq USING btree (bucket, cluster);
CREATE INDEX crq_closed_at_idx ON tickets.crq USING btree (closed_at);
CREATE INDEX crq_cluster_key_closed_at_idx ON tickets.crq USING btree (tickets.cluster_key(cluster), closed_at) WHERE (closed_at IS NOT NULL);
CREATE INDEX crq_geog_idx ON tickets.crq USING gist (geog);
CREATE INDEX crq_ingested_at_idx ON tickets.crq USING btree (ingested_at);
CREATE INDEX crq_latest_start_idx ON tickets.crq USING btree (GREATEST(created_at_service, scheduled_at, first_seen_at, source_created_at));
CREATE INDEX crq_normalized_status_idx ON tickets.crq USING btree (normalized_status);
CREATE INDEX crq_open_actionable_geog_idx ON tickets.crq USING gist (geog) WHERE ((bucket = 'open'::text) AND is_actionable);
CREATE INDEX crq_open_cluster_key_idx ON tickets.crq USING btree (tickets.cluster_key(cluster)) WHERE (bucket = 'open'::text);
CREATE INDEX crq_source_updated_at_idx ON tickets.crq USING btree (source_updated_at);
CREATE TRIGGER crq_map_feed_generation AFTER DELETE OR UPDATE OF ticket_id OR TRUNCATE ON tickets.crq FOR EACH STATEMENT EXECUTE FUNCTION tickets.next_map_feed_generation();
CREATE TRIGGER crq_resolve_geom_on_insert BEFORE INSERT ON tickets.crq FOR EACH ROW EXECUTE FUNCTION tickets.set_ticket_geom();
CREATE TRIGGER crq_resolve_geom_on_update BEFORE UPDATE OF raw ON tickets.crq FOR EACH ROW WHEN ((((((old.raw ->> 'cluster'::text) IS DISTINCT FROM (new.raw ->> 'cluster'::text)) OR ((old.raw ->> 'location_name'::text) IS DISTINCT FROM (new.raw ->> 'location_name'::text))) OR ((old.raw ->> 'latitude'::text) IS DISTINCT FROM (new.raw ->> 'latitude'::text))) OR ((old.raw ->> 'longitude'::text) IS DISTINCT FROM (new.raw ->> 'longitude'::text)))) EXECUTE FUNCTION tickets.set_ticket_geom();
COMMENT ON COLUMN tickets.crq.raw IS 'Cleaned source row, the source of truth; typed columns are generated from it.';
COMMENT ON COLUMN tickets.crq.geo_source IS 'Where geom came from: feed coordinate, geocoded location, or cluster centroid.';
COMMENT ON COLUMN tickets.crq.version_at IS 'Instant this version is ordered by: source_updated_at, else its file''s export time; NULL for rows stored before migration 20.';

CREATE TABLE tickets.daily_snapshot (
    dataset text NOT NULL,
    snapshot_date date NOT NULL,
    cluster text NOT NULL,
    open_backlog integer NOT NULL,
    actionable integer NOT NULL,
    breached integer NOT NULL,
    opened integer NOT NULL,
    closed integer NOT NULL,
    captured_at timestamp with time zone NOT NULL,
    CONSTRAINT daily_snapshot_dataset_check CHECK ((dataset = ANY (ARRAY['inc'::text, 'crq'::text]))),
    CONSTRAINT daily_snapshot_pkey PRIMARY KEY (dataset, snapshot_date, cluster)
);
COMMENT ON TABLE tickets.daily_snapshot IS 'Per dataset, EAT day and canonical cluster, plus cluster ''(all)'' for the total; today''s rows follow each capture, past days are frozen.';

CREATE TABLE tickets.geo_clusters (
    cluster text NOT NULL,
    lat double precision,
    lon double precision,
    geom public.geometry(Point,4326) GENERATED ALWAYS AS (
CASE
    WHEN ((lat IS NOT NULL) AND (lon IS NOT NULL)) THEN public.st_setsrid(public.st_makepoint(lon, lat), 4326)
    ELSE NULL::public.geometry
END) STORED,
    status text NOT NULL,
    source text DEFAULT 'manual'::text NOT NULL,
    query text,
    osm_type text,
    osm_id bigint,
    display_name text,
    attempts integer DEFAULT 1 NOT NULL,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    updated_at timestamp with time zone DEFAULT now() NOT NULL,
    CONSTRAINT geo_clusters_pkey PRIMARY KEY (cluster),
    CONSTRAINT geo_clusters_status_check CHECK ((status = ANY (ARRAY['ok'::text, 'not_found'::text, 'rejected'::text, 'error'::text])))
);
COMMENT ON TABLE tickets.geo_clusters IS 'Coarse gazetteer: one centroid per canonical cluster name; status ok marks a usable point.';

CREATE TABLE tickets.geo_locations (
    location_key text NOT NULL,
    cluster text DEFAULT ''::text NOT NULL,
    lat double precision,
    lon double precision,
    geom public.geometry(Point,4326) GENERATED ALWAYS AS (
CASE
    WHEN ((lat IS NOT NULL) AND (lon IS NOT NULL)) THEN public.st_setsrid(public.st_makepoint(lon, lat), 4326)
    ELSE NULL::public.geometry
END) STORED,
    status text NOT NULL,
    source text DEFAULT 'manual'::text NOT NULL,
    query text,
    osm_type text,
    osm_id bigint,
    display_name text,
    distance_km double precision,
    attempts integer DEFAULT 1 NOT NULL,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    updated_at timestamp with time zone DEFAULT now() NOT NULL,
    CONSTRAINT geo_locations_pkey PRIMARY KEY (location_key, cluster),
    CONSTRAINT geo_locations_status_check CHECK ((status = ANY (ARRAY['ok'::text, 'not_found'::text, 'rejected'::text, 'error'::text])))
);
COMMENT ON TABLE tickets.geo_locations IS 'Precise gazetteer keyed by tickets.location_key(location_name) and the canonical cluster ('''' when none).';

CREATE TABLE tickets.geocode_budget (
    provider_day date NOT NULL,
    provider text NOT NULL,
    requests integer DEFAULT 0 NOT NULL,
    exhausted boolean DEFAULT false NOT NULL,
    CONSTRAINT geocode_budget_pkey PRIMARY KEY (provider_day, provider)
);
COMMENT ON COLUMN tickets.geocode_budget.exhausted IS 'The provider said its daily limit is reached: ask nothing more that day.';

CREATE TABLE tickets.history_captures (
    dataset text NOT NULL,
    last_captured_at timestamp with time zone NOT NULL,
    CONSTRAINT history_captures_dataset_check CHECK ((dataset = ANY (ARRAY['inc'::text, 'crq'::text]))),
    CONSTRAINT history_captures_pkey PRIMARY KEY (dataset)
);
COMMENT ON TABLE tickets.history_captures IS 'When each dataset''s last history capture ran (its transaction''s start, like ingested_at).';

CREATE TABLE tickets.import_meta (
    dataset text NOT NULL,
    metadata jsonb DEFAULT '{}'::jsonb NOT NULL,
    updated_at timestamp with time zone DEFAULT now() NOT NULL,
    CONSTRAINT import_meta_pkey PRIMARY KEY (dataset)
);

CREATE TABLE tickets.inc (
    ticket_id text NOT NULL,
    raw jsonb NOT NULL,
    geom public.geometry(Point,4326),
    geo_source text,
    ingested_at timestamp with time zone DEFAULT now() NOT NULL,
    normalized_status text GENERATED ALWAYS AS ((raw ->> 'normalized_status'::text)) STORED,
    raw_status text GENERATED ALWAYS AS ((raw ->> 'raw_status'::text)) STORED,
    bucket text GENERATED ALWAYS AS ((raw ->> 'bucket'::text)) STORED,
    cluster text GENERATED ALWAYS AS ((raw ->> 'cluster'::text)) STORED,
    region text GENERATED ALWAYS AS ((raw ->> 'region'::text)) STORED,
    location_name text GENERATED ALWAYS AS ((raw ->> 'location_name'::text)) STORED,
    assigned_team text GENERATED ALWAYS AS ((raw ->> 'assigned_team'::text)) STORED,
    owner text GENERATED ALWAYS AS ((raw ->> 'owner'::text)) STORED,
    sla_status text GENERATED ALWAYS AS ((raw ->> 'sla_status'::text)) STORED,
    is_actionable boolean GENERATED ALWAYS AS (tickets.to_bool((raw ->> 'is_actionable'::text))) STORED,
    created_at_service timestamp with time zone GENERATED ALWAYS AS (tickets.eat_ts((raw ->> 'created_at_service'::text))) STORED,
    scheduled_at timestamp with time zone GENERATED ALWAYS AS (tickets.eat_ts((raw ->> 'scheduled_at'::text))) STORED,
    closed_at timestamp with time zone GENERATED ALWAYS AS (tickets.eat_ts((raw ->> 'closed_at'::text))) STORED,
    first_seen_at timestamp with time zone GENERATED ALWAYS AS (tickets.eat_ts((raw ->> 'first_seen_at'::text))) STORED,
    last_seen_at timestamp with time zone GENERATED ALWAYS AS (tickets.eat_ts((raw ->> 'last_seen_at'::text))) STORED,
    source_created_at timestamp with time zone GENERATED ALWAYS AS (tickets.eat_ts((raw ->> 'source_created_at'::text))) STORED,
    source_updated_at timestamp with time zone GENERATED ALWAYS AS (tickets.eat_ts((raw ->> 'source_updated_at'::text))) STORED,
    latitude double precision GENERATED ALWAYS AS (COALESCE(tickets.feed_lat(raw), public.st_y(geom))) STORED,
    longitude double precision GENERATED ALWAYS AS (COALESCE(tickets.feed_lon(raw), public.st_x(geom))) STORED,
    geog public.geography(Point,4326) GENERATED ALWAYS AS ((geom)::public.geography(Point,4326)) STORED,
    mttr integer GENERATED ALWAYS AS ((round(tickets.to_number((raw ->> 'mttr'::text))))::integer) STORED,
    source_file text DEFAULT ''::text NOT NULL,
    source_line integer DEFAULT 0 NOT NULL,
    version_at timestamp with time zone,
    CONSTRAINT inc_geo_source_check CHECK ((geo_source = ANY (ARRAY['feed'::text, 'location'::text, 'cluster'::text]))),
    CONSTRAINT inc_pkey PRIMARY KEY (ticket_id)
);
CREATE INDEX inc_bucket_cluster_idx ON tickets.inc USING btree (bucket, cluster);
CREATE INDEX inc_closed_at_idx ON tickets.inc USING btree (closed_at);
CREATE INDEX inc_cluster_key_closed_at_idx ON tickets.inc USING btree (tickets.cluster_key(cluster), closed_at) WHERE (closed_at IS NOT NULL);
CREATE INDEX inc_geog_idx ON tickets.inc USING gist (geog);
CREATE INDEX inc_ingested_at_idx ON tickets.inc USING btree (ingested_at);
CREATE INDEX inc_latest_start_idx ON tickets.inc USING btree (GREATEST(created_at_service, scheduled_at, first_seen_at, source_created_at));
CREATE INDEX inc_normalized_status_idx ON tickets.inc USING btree (normalized_status);
CREATE INDEX inc_open_actionable_geog_idx ON tickets.inc USING gist (geog) WHERE ((bucket = 'open'::text) AND is_actionable);
CREATE INDEX inc_open_cluster_key_idx ON tickets.inc USING btree (tickets.cluster_key(cluster)) WHERE (bucket = 'open'::text);
CREATE INDEX inc_source_updated_at_idx ON tickets.inc USING btree (source_updated_at);
CREATE TRIGGER inc_map_feed_generation AFTER DELETE OR UPDATE OF ticket_id OR TRUNCATE ON tickets.inc FOR EACH STATEMENT EXECUTE FUNCTION tickets.next_map_feed_generation();
CREATE TRIGGER inc_resolve_geom_on_insert BEFORE INSERT ON tickets.inc FOR EACH ROW EXECUTE FUNCTION tickets.set_ticket_geom();
CREATE TRIGGER inc_resolve_geom_on_update BEFORE UPDATE OF raw ON tickets.inc FOR EACH ROW WHEN ((((((old.raw ->> 'cluster'::text) IS DISTINCT FROM (new.raw ->> 'cluster'::text)) OR ((old.raw ->> 'location_name'::text) IS DISTINCT FROM (new.raw ->> 'location_name'::text))) OR ((old.raw ->> 'latitude'::text) IS DISTINCT FROM (new.raw ->> 'latitude'::text))) OR ((old.raw ->> 'longitude'::text) IS DISTINCT FROM (new.raw ->> 'longitude'::text)))) EXECUTE FUNCTION tickets.set_ticket_geom();
COMMENT ON COLUMN tickets.inc.raw IS 'Cleaned source row, the source of truth; typed columns are generated from it.';
COMMENT ON COLUMN tickets.inc.geo_source IS 'Where geom came from: feed coordinate, geocoded location, or cluster centroid.';
COMMENT ON COLUMN tickets.inc.version_at IS 'Instant this version is ordered by: source_updated_at, else its file''s export time; NULL for rows stored before migration 20.';

CREATE TABLE tickets.ingest_batches (
    batch_id bigint GENERATED ALWAYS AS IDENTITY NOT NULL,
    dataset text NOT NULL,
    files integer NOT NULL,
    rows_staged integer NOT NULL,
    duplicates integer NOT NULL,
    inserted integer NOT NULL,
    updated integer NOT NULL,
    stale integer NOT NULL,
    applied_at timestamp with time zone DEFAULT now() NOT NULL,
    CONSTRAINT ingest_batches_pkey PRIMARY KEY (batch_id)
);
CREATE INDEX ingest_batches_dataset_applied_idx ON tickets.ingest_batches USING btree (dataset, applied_at DESC);
COMMENT ON TABLE tickets.ingest_batches IS 'One row per transaction that applied files: the tickets it wrote, each once. Its files point to it.';

CREATE TABLE tickets.ingest_files (
    dataset text NOT NULL,
    key text NOT NULL,
    etag text DEFAULT ''::text NOT NULL,
    size_bytes bigint,
    status text NOT NULL,
    rows_read integer DEFAULT 0 NOT NULL,
    alarms_dropped integer DEFAULT 0 NOT NULL,
    sentinels integer DEFAULT 0 NOT NULL,
    duplicates integer DEFAULT 0,
    inserted integer DEFAULT 0,
    updated integer DEFAULT 0,
    stale integer DEFAULT 0,
    rows_rejected integer DEFAULT 0 NOT NULL,
    error text,
    applied_at timestamp with time zone DEFAULT now() NOT NULL,
    moved_at timestamp with time zone,
    blank_lines integer DEFAULT 0 NOT NULL,
    batch_id bigint,
    moved_etag text,
    CONSTRAINT ingest_files_batch_id_fkey FOREIGN KEY (batch_id) REFERENCES tickets.ingest_batches(batch_id),
    CONSTRAINT ingest_files_pkey PRIMARY KEY (dataset, key, etag),
    CONSTRAINT ingest_files_status_check CHECK ((status = ANY (ARRAY['applied'::text, 'rejected'::text])))
);
COMMENT ON COLUMN tickets.ingest_files.inserted IS 'Tickets this file made new; NULL when it shared its batch with other files (see ingest_batches).';
COMMENT ON COLUMN tickets.ingest_files.moved_at IS 'When this version was moved out of changes/: to processed/ when applied, to rejected/ when not (NULL while it is still in changes/).';
COMMENT ON COLUMN tickets.ingest_files.moved_etag IS 'The ETag of this version''s copy in processed/ or rejected/, recorded when it was moved (NULL before migration 24 and for a move a run did not live to record); differs from etag for a multipart or SSE-KMS upload.';

CREATE TABLE tickets.ingest_runs (
    run_id bigint GENERATED ALWAYS AS IDENTITY NOT NULL,
    dataset text NOT NULL,
    mode text NOT NULL,
    started_at timestamp with time zone DEFAULT clock_timestamp() NOT NULL,
    finished_at timestamp with time zone,
    status text DEFAULT 'running'::text NOT NULL,
    files_applied integer DEFAULT 0 NOT NULL,
    files_archived integer DEFAULT 0 NOT NULL,
    files_rejected integer DEFAULT 0 NOT NULL,
    rows_inserted integer DEFAULT 0 NOT NULL,
    rows_updated integer DEFAULT 0 NOT NULL,
    rows_stale integer DEFAULT 0 NOT NULL,
    rows_rejected integer DEFAULT 0 NOT NULL,
    error text,
    batches integer DEFAULT 0 NOT NULL,
    CONSTRAINT ingest_runs_pkey PRIMARY KEY (run_id),
    CONSTRAINT ingest_runs_status_check CHECK ((status = ANY (ARRAY['running'::text, 'ok'::text, 'failed'::text])))
);
CREATE INDEX ingest_runs_dataset_started_idx ON tickets.ingest_runs USING btree (dataset, started_at DESC);
COMMENT ON TABLE tickets.ingest_runs IS 'One row per --apply run; status running with no finished_at means the run died.';

CREATE TABLE tickets.map_feed_generation (
    generation bigint NOT NULL,
    one_row boolean DEFAULT true NOT NULL,
    CONSTRAINT map_feed_generation_one_row_check CHECK (one_row),
    CONSTRAINT map_feed_generation_pkey PRIMARY KEY (one_row)
);
COMMENT ON TABLE tickets.map_feed_generation IS 'One row: bumped by a ticket deleted, renamed or truncated and by any change to sla_settings or cluster_aliases; the map feed answers a token of an earlier generation with the full map (docs/dashboard-api-contract.md).';

CREATE TABLE tickets.read_gate (

);
COMMENT ON TABLE tickets.read_gate IS 'Locked, never written: read first by every reporting function and the history capture, locked first by a deploy that replaces a view (migrations/read/README.md, "Deploying while the map reads").';

CREATE TABLE tickets.rejected_rows (
    dataset text NOT NULL,
    file_key text NOT NULL,
    line integer NOT NULL,
    raw_text text NOT NULL,
    reason text NOT NULL,
    recorded_at timestamp with time zone DEFAULT now() NOT NULL,
    CONSTRAINT rejected_rows_pkey PRIMARY KEY (dataset, file_key, line)
);

CREATE TABLE tickets.schema_migrations (
    name text NOT NULL,
    checksum text NOT NULL,
    applied_at timestamp with time zone DEFAULT now() NOT NULL,
    duration_ms integer NOT NULL,
    CONSTRAINT schema_migrations_pkey PRIMARY KEY (name)
);

CREATE TABLE tickets.schema_read_layer (
    name text NOT NULL,
    checksum text NOT NULL,
    applied_at timestamp with time zone DEFAULT now() NOT NULL,
    CONSTRAINT schema_read_layer_pkey PRIMARY KEY (name)
);

CREATE TABLE tickets.sla_settings (
    dataset text NOT NULL,
    target interval NOT NULL,
    start_columns text[] NOT NULL,
    CONSTRAINT sla_settings_pkey PRIMARY KEY (dataset),
    CONSTRAINT sla_settings_start_columns_known CHECK (((array_ndims(start_columns) = 1) AND ((cardinality(start_columns) >= 1) AND (cardinality(start_columns) <= 4)) AND (start_columns <@ '{created_at_service,scheduled_at,first_seen_at,source_created_at}'::text[]))),
    CONSTRAINT sla_settings_target_check CHECK ((target > '00:00:00'::interval))
);
CREATE TRIGGER sla_settings_map_feed_generation AFTER INSERT OR DELETE OR UPDATE OR TRUNCATE ON tickets.sla_settings FOR EACH STATEMENT EXECUTE FUNCTION tickets.next_map_feed_generation();
COMMENT ON TABLE tickets.sla_settings IS 'SLA target and ordered start columns per dataset; change them with an UPDATE, no migration needed.';

-- Typed columns are generated from raw, so they can never disagree with it.
-- The parsers below are plain-SQL expressions the planner can inline, and
-- they return NULL for anything they do not recognise: a garbage value in
-- the feed must never fail a load.

-- EAT wall-clock ('2026-11-20 06:00:00', '2026-11-20T06:00:00', optional
-- fraction up to microseconds) to timestamptz. The regex and the
-- day-of-month check run before any cast, so every cast below succeeds.
CREATE FUNCTION tickets.eat_ts(p text) RETURNS timestamptz
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE WHEN p ~ '^[1-9][0-9]{3}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])[ T]([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](\.[0-9]{1,6})?$'
        THEN CASE WHEN substr(p, 9, 2)::int <= extract(day FROM
                      make_date(substr(p, 1, 4)::int, substr(p, 6, 2)::int, 1) + interval '1 month - 1 day')
            THEN timezone('Africa/Nairobi', make_timestamp(
                substr(p, 1, 4)::int, substr(p, 6, 2)::int, substr(p, 9, 2)::int,
                substr(p, 12, 2)::int, substr(p, 15, 2)::int, substr(p, 18)::float8))
        END
    END
$$;

CREATE FUNCTION tickets.to_bool(p text) RETURNS boolean
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE lower(p)
        WHEN 'true' THEN true WHEN 't' THEN true WHEN '1' THEN true
        WHEN 'false' THEN false WHEN 'f' THEN false WHEN '0' THEN false
    END
$$;

ALTER TABLE tickets.inc
    ADD COLUMN normalized_status  text GENERATED ALWAYS AS (raw->>'normalized_status') STORED,
    ADD COLUMN raw_status         text GENERATED ALWAYS AS (raw->>'raw_status') STORED,
    ADD COLUMN bucket             text GENERATED ALWAYS AS (raw->>'bucket') STORED,
    ADD COLUMN cluster            text GENERATED ALWAYS AS (raw->>'cluster') STORED,
    ADD COLUMN region             text GENERATED ALWAYS AS (raw->>'region') STORED,
    ADD COLUMN location_name      text GENERATED ALWAYS AS (raw->>'location_name') STORED,
    ADD COLUMN assigned_team      text GENERATED ALWAYS AS (raw->>'assigned_team') STORED,
    ADD COLUMN owner              text GENERATED ALWAYS AS (raw->>'owner') STORED,
    ADD COLUMN sla_status         text GENERATED ALWAYS AS (raw->>'sla_status') STORED,
    ADD COLUMN service_type       text GENERATED ALWAYS AS (raw->>'service_type') STORED,
    ADD COLUMN mttr               numeric GENERATED ALWAYS AS (tickets.to_number(raw->>'mttr')) STORED,
    ADD COLUMN is_actionable      boolean GENERATED ALWAYS AS (tickets.to_bool(raw->>'is_actionable')) STORED,
    ADD COLUMN is_alarm           boolean GENERATED ALWAYS AS (tickets.to_bool(raw->>'is_alarm')) STORED,
    ADD COLUMN is_auto_created    boolean GENERATED ALWAYS AS (tickets.to_bool(raw->>'is_auto_created')) STORED,
    ADD COLUMN is_auto_closed     boolean GENERATED ALWAYS AS (tickets.to_bool(raw->>'is_auto_closed')) STORED,
    ADD COLUMN created_at_service timestamptz GENERATED ALWAYS AS (tickets.eat_ts(raw->>'created_at_service')) STORED,
    ADD COLUMN scheduled_at       timestamptz GENERATED ALWAYS AS (tickets.eat_ts(raw->>'scheduled_at')) STORED,
    ADD COLUMN closed_at          timestamptz GENERATED ALWAYS AS (tickets.eat_ts(raw->>'closed_at')) STORED,
    ADD COLUMN first_seen_at      timestamptz GENERATED ALWAYS AS (tickets.eat_ts(raw->>'first_seen_at')) STORED,
    ADD COLUMN last_seen_at       timestamptz GENERATED ALWAYS AS (tickets.eat_ts(raw->>'last_seen_at')) STORED,
    ADD COLUMN source_created_at  timestamptz GENERATED ALWAYS AS (tickets.eat_ts(raw->>'source_created_at')) STORED,
    ADD COLUMN source_updated_at  timestamptz GENERATED ALWAYS AS (tickets.eat_ts(raw->>'source_updated_at')) STORED;

-- What the read API filters by: open backlog per cluster, status, closures
-- in a time window, per-owner breakdowns.
CREATE INDEX inc_bucket_cluster_idx ON tickets.inc (bucket, cluster);
CREATE INDEX inc_normalized_status_idx ON tickets.inc (normalized_status);
CREATE INDEX inc_closed_at_idx ON tickets.inc (closed_at);
CREATE INDEX inc_source_updated_at_idx ON tickets.inc (source_updated_at);

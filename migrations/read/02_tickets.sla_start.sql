-- The rule, as plain expressions the planner inlines (no per-row subquery).
CREATE OR REPLACE FUNCTION tickets.sla_pick(p_column text, p_created_at_service timestamptz, p_scheduled_at timestamptz,
                                 p_first_seen_at timestamptz, p_source_created_at timestamptz) RETURNS timestamptz
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE p_column WHEN 'created_at_service' THEN p_created_at_service WHEN 'scheduled_at' THEN p_scheduled_at
                         WHEN 'first_seen_at' THEN p_first_seen_at WHEN 'source_created_at' THEN p_source_created_at END
$$;

CREATE OR REPLACE FUNCTION tickets.sla_start_source(p_columns text[], p_created_at_service timestamptz,
                                         p_scheduled_at timestamptz, p_first_seen_at timestamptz,
                                         p_source_created_at timestamptz) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE
        WHEN tickets.sla_pick(p_columns[1], p_created_at_service, p_scheduled_at, p_first_seen_at, p_source_created_at)
             IS NOT NULL THEN p_columns[1]
        WHEN tickets.sla_pick(p_columns[2], p_created_at_service, p_scheduled_at, p_first_seen_at, p_source_created_at)
             IS NOT NULL THEN p_columns[2]
        WHEN tickets.sla_pick(p_columns[3], p_created_at_service, p_scheduled_at, p_first_seen_at, p_source_created_at)
             IS NOT NULL THEN p_columns[3]
        WHEN tickets.sla_pick(p_columns[4], p_created_at_service, p_scheduled_at, p_first_seen_at, p_source_created_at)
             IS NOT NULL THEN p_columns[4]
    END
$$;

CREATE OR REPLACE FUNCTION tickets.sla_start(p_columns text[], p_created_at_service timestamptz, p_scheduled_at timestamptz,
                                  p_first_seen_at timestamptz, p_source_created_at timestamptz) RETURNS timestamptz
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT COALESCE(
        tickets.sla_pick(p_columns[1], p_created_at_service, p_scheduled_at, p_first_seen_at, p_source_created_at),
        tickets.sla_pick(p_columns[2], p_created_at_service, p_scheduled_at, p_first_seen_at, p_source_created_at),
        tickets.sla_pick(p_columns[3], p_created_at_service, p_scheduled_at, p_first_seen_at, p_source_created_at),
        tickets.sla_pick(p_columns[4], p_created_at_service, p_scheduled_at, p_first_seen_at, p_source_created_at))
$$;

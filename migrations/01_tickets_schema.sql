-- Tickets are stored raw-jsonb-first: `raw` is the cleaned source row and the
-- source of truth; every other column is derived from it (generated columns,
-- added by later migrations) or from the gazetteers (geom, by trigger).

CREATE EXTENSION IF NOT EXISTS postgis;
CREATE SCHEMA IF NOT EXISTS tickets;
CREATE SCHEMA IF NOT EXISTS reporting;

CREATE TABLE tickets.inc (
    ticket_id   text PRIMARY KEY,
    raw         jsonb NOT NULL,
    geom        geometry(Point, 4326),
    geo_source  text CHECK (geo_source IN ('feed', 'location', 'cluster')),
    ingested_at timestamptz NOT NULL DEFAULT now()
);
COMMENT ON COLUMN tickets.inc.raw IS 'Cleaned source row, the source of truth; typed columns are generated from it.';
COMMENT ON COLUMN tickets.inc.geo_source IS 'Where geom came from: feed coordinate, geocoded location, or cluster centroid.';

CREATE TABLE tickets.crq (LIKE tickets.inc INCLUDING ALL);

-- Tickets name clusters by code or by name; the gazetteers are keyed by the
-- canonical name, so codes go through this table. Operations add rows here
-- without a deploy.
CREATE TABLE tickets.cluster_aliases (
    alias   text PRIMARY KEY,
    cluster text NOT NULL
);
CREATE UNIQUE INDEX cluster_aliases_lower_alias_key ON tickets.cluster_aliases (lower(alias));
INSERT INTO tickets.cluster_aliases (alias, cluster) VALUES
    ('QOA', 'Quarry Road'),
    ('PTMP', 'Pipeline');

CREATE TABLE tickets.geo_clusters (
    cluster      text PRIMARY KEY,
    lat          double precision,
    lon          double precision,
    geom         geometry(Point, 4326) GENERATED ALWAYS AS (
                     CASE WHEN lat IS NOT NULL AND lon IS NOT NULL
                          THEN ST_SetSRID(ST_MakePoint(lon, lat), 4326) END) STORED,
    status       text NOT NULL CHECK (status IN ('ok', 'not_found', 'rejected', 'error')),
    source       text NOT NULL DEFAULT 'manual',
    query        text,
    osm_type     text,
    osm_id       bigint,
    display_name text,
    attempts     integer NOT NULL DEFAULT 1,
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE tickets.geo_clusters IS 'Coarse gazetteer: one centroid per canonical cluster name; status ok marks a usable point.';

CREATE TABLE tickets.geo_locations (
    location_key text NOT NULL,
    cluster      text NOT NULL DEFAULT '',
    lat          double precision,
    lon          double precision,
    geom         geometry(Point, 4326) GENERATED ALWAYS AS (
                     CASE WHEN lat IS NOT NULL AND lon IS NOT NULL
                          THEN ST_SetSRID(ST_MakePoint(lon, lat), 4326) END) STORED,
    status       text NOT NULL CHECK (status IN ('ok', 'not_found', 'rejected', 'error')),
    source       text NOT NULL DEFAULT 'manual',
    query        text,
    osm_type     text,
    osm_id       bigint,
    display_name text,
    distance_km  double precision,
    attempts     integer NOT NULL DEFAULT 1,
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (location_key, cluster)
);
COMMENT ON TABLE tickets.geo_locations IS 'Precise gazetteer keyed by tickets.location_key(location_name) and the canonical cluster ('''' when none).';

-- Functions that touch PostGIS or run as triggers pin search_path: a
-- data-only pg_restore runs with an empty search_path and would otherwise not
-- find PostGIS. The small pure-SQL helpers use only pg_catalog and
-- schema-qualified names instead, so the planner can inline them.

CREATE FUNCTION tickets.canonical_cluster(p_cluster text) RETURNS text
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT COALESCE(
        (SELECT a.cluster FROM tickets.cluster_aliases AS a WHERE lower(a.alias) = lower(btrim(p_cluster))),
        NULLIF(btrim(p_cluster), ''))
$$;

-- Network-plant codes (KLM-OLT-014, FDH-WST-22, ODB 45, [KIL/SPL/3]) name
-- equipment, not places: a geocoder only gets confused by them.
CREATE FUNCTION tickets.strip_network_codes(p_location text) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT NULLIF(btrim(regexp_replace(regexp_replace(regexp_replace(regexp_replace(
        p_location,
        '\[[^]]*\]', ' ', 'g'),
        '\m[A-Za-z]{2,5}-[A-Za-z]{2,5}-[0-9]+\M', ' ', 'g'),
        '\m(ODB|FDH|FAT|OLT|SPL|MDU)\s*-?\s*[0-9]+\M', ' ', 'gi'),
        '\s+', ' ', 'g'), ' ,;:-'), '')
$$;

CREATE FUNCTION tickets.location_key(p_location text) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT NULLIF(btrim(regexp_replace(lower(tickets.strip_network_codes(p_location)), '[^[:alnum:]]+', ' ', 'g')), '')
$$;

-- Bounded so the casts below can never fail on feed garbage.
CREATE FUNCTION tickets.to_number(p text) RETURNS numeric
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE WHEN p ~ '^\s*[+-]?([0-9]{1,9}(\.[0-9]{0,9})?|\.[0-9]{1,9})\s*$' THEN p::numeric END
$$;

-- A swapped lat/lon or a 0,0 placeholder is a valid coordinate somewhere on
-- Earth, so a feed pair outside Kenya's bounding box (padded ~0.1 degree)
-- counts as missing.
CREATE FUNCTION tickets.feed_ok(p_raw jsonb) RETURNS boolean
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT COALESCE(tickets.to_number(p_raw->>'latitude') BETWEEN -4.9 AND 5.1
                    AND tickets.to_number(p_raw->>'longitude') BETWEEN 33.8 AND 42.0, false)
$$;

CREATE FUNCTION tickets.feed_lat(p_raw jsonb) RETURNS double precision
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE WHEN tickets.feed_ok(p_raw) THEN tickets.to_number(p_raw->>'latitude')::float8 END
$$;

CREATE FUNCTION tickets.feed_lon(p_raw jsonb) RETURNS double precision
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE WHEN tickets.feed_ok(p_raw) THEN tickets.to_number(p_raw->>'longitude')::float8 END
$$;

-- The one rule for a ticket's point, used by the trigger and by
-- resolve_ticket_geoms(). plpgsql, so its lookups are planned once per
-- session rather than on every row.
CREATE FUNCTION tickets.resolve_geom(p_raw jsonb, OUT geom geometry, OUT geo_source text)
LANGUAGE plpgsql STABLE PARALLEL SAFE SET search_path = pg_catalog, public AS $$
DECLARE
    ticket_cluster text;
BEGIN
    IF tickets.feed_ok(p_raw) THEN
        geom := ST_SetSRID(ST_MakePoint(tickets.feed_lon(p_raw), tickets.feed_lat(p_raw)), 4326);
        geo_source := 'feed';
        RETURN;
    END IF;
    ticket_cluster := tickets.canonical_cluster(p_raw->>'cluster');
    SELECT l.geom INTO geom
    FROM tickets.geo_locations AS l
    WHERE l.location_key = tickets.location_key(p_raw->>'location_name')
      AND l.cluster = COALESCE(ticket_cluster, '') AND l.status = 'ok';
    IF geom IS NOT NULL THEN
        geo_source := 'location';
        RETURN;
    END IF;
    SELECT c.geom INTO geom FROM tickets.geo_clusters AS c WHERE c.cluster = ticket_cluster AND c.status = 'ok';
    geo_source := CASE WHEN geom IS NOT NULL THEN 'cluster' END;
END
$$;

CREATE FUNCTION tickets.set_ticket_geom() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, public AS $$
BEGIN
    SELECT r.geom, r.geo_source INTO NEW.geom, NEW.geo_source FROM tickets.resolve_geom(NEW.raw) AS r;
    RETURN NEW;
END
$$;

-- A new version of a ticket usually keeps its place: the rule reads only the
-- feed coordinate, the cluster and the location, so an update that changes
-- none of them keeps the point it had (gazetteer changes go through
-- resolve_ticket_geoms()). That skips the lookups for most updates.
CREATE TRIGGER inc_resolve_geom_on_insert BEFORE INSERT ON tickets.inc
    FOR EACH ROW EXECUTE FUNCTION tickets.set_ticket_geom();
CREATE TRIGGER inc_resolve_geom_on_update BEFORE UPDATE OF raw ON tickets.inc
    FOR EACH ROW
    WHEN ((OLD.raw->>'cluster', OLD.raw->>'location_name', OLD.raw->>'latitude', OLD.raw->>'longitude')
          IS DISTINCT FROM (NEW.raw->>'cluster', NEW.raw->>'location_name', NEW.raw->>'latitude', NEW.raw->>'longitude'))
    EXECUTE FUNCTION tickets.set_ticket_geom();
CREATE TRIGGER crq_resolve_geom_on_insert BEFORE INSERT ON tickets.crq
    FOR EACH ROW EXECUTE FUNCTION tickets.set_ticket_geom();
CREATE TRIGGER crq_resolve_geom_on_update BEFORE UPDATE OF raw ON tickets.crq
    FOR EACH ROW
    WHEN ((OLD.raw->>'cluster', OLD.raw->>'location_name', OLD.raw->>'latitude', OLD.raw->>'longitude')
          IS DISTINCT FROM (NEW.raw->>'cluster', NEW.raw->>'location_name', NEW.raw->>'latitude', NEW.raw->>'longitude'))
    EXECUTE FUNCTION tickets.set_ticket_geom();

-- Gazetteer rows change without touching the tickets; this re-applies the
-- trigger's rule to every ticket and returns how many rows moved.
CREATE FUNCTION tickets.resolve_ticket_geoms() RETURNS integer
LANGUAGE plpgsql SET search_path = pg_catalog, public AS $$
DECLARE
    changed_inc integer;
    changed_crq integer;
BEGIN
    -- Wait for a running INC then CRQ ingest (their advisory locks: namespace
    -- "FLTT", datasets 1 and 2, as in settings.py/pipeline.py): rewriting
    -- every ticket while an ingest rewrites some of them could deadlock.
    PERFORM pg_advisory_xact_lock(1179407444, 1);
    PERFORM pg_advisory_xact_lock(1179407444, 2);
    UPDATE tickets.inc AS t SET geom = r.geom, geo_source = r.geo_source
    FROM tickets.inc AS s CROSS JOIN LATERAL tickets.resolve_geom(s.raw) AS r
    WHERE s.ticket_id = t.ticket_id
      AND (t.geom IS DISTINCT FROM r.geom OR t.geo_source IS DISTINCT FROM r.geo_source);
    GET DIAGNOSTICS changed_inc = ROW_COUNT;

    UPDATE tickets.crq AS t SET geom = r.geom, geo_source = r.geo_source
    FROM tickets.crq AS s CROSS JOIN LATERAL tickets.resolve_geom(s.raw) AS r
    WHERE s.ticket_id = t.ticket_id
      AND (t.geom IS DISTINCT FROM r.geom OR t.geo_source IS DISTINCT FROM r.geo_source);
    GET DIAGNOSTICS changed_crq = ROW_COUNT;

    RETURN changed_inc + changed_crq;
END
$$;

-- One GeoJSON feature per ticket of either dataset; a ticket without a
-- point yet keeps a null geometry so the map can list it aside.
CREATE VIEW tickets.ticket_features AS
    SELECT t.dataset, t.ticket_id, jsonb_build_object(
        'type', 'Feature',
        'id', t.ticket_id,
        'geometry', ST_AsGeoJSON(t.geom)::jsonb,
        'properties', jsonb_build_object(
            'dataset', t.dataset,
            'ticket_id', t.ticket_id,
            'normalized_status', t.raw->>'normalized_status',
            'bucket', t.raw->>'bucket',
            'is_actionable', t.raw->>'is_actionable',
            'cluster', t.raw->>'cluster',
            'region', t.raw->>'region',
            'location_name', t.raw->>'location_name',
            'assigned_team', t.raw->>'assigned_team',
            'owner', t.raw->>'owner',
            'geo_source', t.geo_source)) AS feature
    FROM (
        SELECT 'inc'::text AS dataset, ticket_id, raw, geom, geo_source FROM tickets.inc
        UNION ALL
        SELECT 'crq'::text, ticket_id, raw, geom, geo_source FROM tickets.crq
    ) AS t;

CREATE FUNCTION reporting.fn_tickets_for_map() RETURNS jsonb
LANGUAGE sql STABLE SET search_path = pg_catalog, public AS $$
    SELECT jsonb_build_object(
        'type', 'FeatureCollection',
        'features', COALESCE(jsonb_agg(f.feature ORDER BY f.dataset, f.ticket_id), '[]'::jsonb))
    FROM tickets.ticket_features AS f
$$;

-- Gazetteer rows change without touching the tickets; this re-applies the
-- trigger's rule to every ticket and returns how many rows moved. It searches
-- pg_catalog alone, so points are compared as bytes: geometry's own = is
-- PostGIS's, in public, which IS DISTINCT FROM cannot name.
CREATE OR REPLACE FUNCTION tickets.resolve_ticket_geoms() RETURNS integer
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
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
      AND (public.ST_AsEWKB(t.geom) IS DISTINCT FROM public.ST_AsEWKB(r.geom)
           OR t.geo_source IS DISTINCT FROM r.geo_source);
    GET DIAGNOSTICS changed_inc = ROW_COUNT;

    UPDATE tickets.crq AS t SET geom = r.geom, geo_source = r.geo_source
    FROM tickets.crq AS s CROSS JOIN LATERAL tickets.resolve_geom(s.raw) AS r
    WHERE s.ticket_id = t.ticket_id
      AND (public.ST_AsEWKB(t.geom) IS DISTINCT FROM public.ST_AsEWKB(r.geom)
           OR t.geo_source IS DISTINCT FROM r.geo_source);
    GET DIAGNOSTICS changed_crq = ROW_COUNT;

    RETURN changed_inc + changed_crq;
END
$$;

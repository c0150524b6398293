-- The geom rule (the trigger on every ticket written, and the function it calls) searched public for PostGIS.
-- On a shared server public may be writable by other roles, and a function planted there with argument types
-- closer to a call than the built-in's (say ST_MakePoint(numeric, numeric), or a built-in such as
-- cardinality(text[])) would be found instead and run as whoever writes a ticket. Both now search pg_catalog
-- alone and name PostGIS by schema; nothing else about them changes.
CREATE OR REPLACE FUNCTION tickets.resolve_geom(p_raw jsonb, OUT geom public.geometry, OUT geo_source text)
LANGUAGE plpgsql STABLE PARALLEL SAFE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    ticket_cluster text;
BEGIN
    IF tickets.feed_ok(p_raw) THEN
        geom := public.ST_SetSRID(public.ST_MakePoint(tickets.feed_lon(p_raw), tickets.feed_lat(p_raw)), 4326);
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

CREATE OR REPLACE FUNCTION tickets.set_ticket_geom() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    SELECT r.geom, r.geo_source INTO NEW.geom, NEW.geo_source FROM tickets.resolve_geom(NEW.raw) AS r;
    RETURN NEW;
END
$$;

-- Metre-based distance queries (nearest ticket to a van) need geography.
ALTER TABLE tickets.inc
    ADD COLUMN geog geography(Point, 4326) GENERATED ALWAYS AS (geom::geography(Point, 4326)) STORED;
CREATE INDEX inc_geog_idx ON tickets.inc USING gist (geog);

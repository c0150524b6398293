-- The feed's own coordinate when it is usable (tickets.feed_ok: non-zero,
-- in range, inside Kenya), else wherever geom was resolved to.
ALTER TABLE tickets.inc
    ADD COLUMN latitude  double precision GENERATED ALWAYS AS (COALESCE(tickets.feed_lat(raw), ST_Y(geom))) STORED,
    ADD COLUMN longitude double precision GENERATED ALWAYS AS (COALESCE(tickets.feed_lon(raw), ST_X(geom))) STORED;

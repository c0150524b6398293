-- The feed's own coordinate when it is usable (tickets.feed_point: non-zero,
-- in range, inside Kenya), else wherever geom was resolved to.
ALTER TABLE tickets.inc
    ADD COLUMN latitude  double precision GENERATED ALWAYS AS (COALESCE(ST_Y(tickets.feed_point(raw)), ST_Y(geom))) STORED,
    ADD COLUMN longitude double precision GENERATED ALWAYS AS (COALESCE(ST_X(tickets.feed_point(raw)), ST_X(geom))) STORED;

-- The map's change feed (reporting.fn_map_changes) knows a ticket changed since a token by its row's version
-- (xmin): written by every insert, update and geocode in the same transaction, at no cost to the ingest. What
-- a row's version cannot show is a ticket deleted or renamed, a table emptied, or a change to the SLA rules or the cluster
-- aliases (each moves many tickets' properties at once). Each such statement counts one more generation here,
-- and a token from an earlier generation is answered with the full map. The ingest fires none of them.
CREATE TABLE tickets.map_feed_generation (
    generation bigint NOT NULL,
    one_row boolean PRIMARY KEY DEFAULT true CHECK (one_row)
);
INSERT INTO tickets.map_feed_generation (generation) VALUES (1);
COMMENT ON TABLE tickets.map_feed_generation IS
    'One row: bumped by a ticket deleted, renamed or truncated and by any change to sla_settings or cluster_aliases; the map '
    'feed answers a token of an earlier generation with the full map (docs/dashboard-api-contract.md).';

-- As its owner: whoever deletes a ticket (an operator) need not be able to write the generation.
CREATE FUNCTION tickets.next_map_feed_generation() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp SET TimeZone = 'UTC' AS $$
BEGIN
    UPDATE tickets.map_feed_generation SET generation = generation + 1;
    RETURN NULL;
END
$$;
REVOKE ALL ON FUNCTION tickets.next_map_feed_generation() FROM PUBLIC;

-- A ticket_id rewritten by hand is a ticket gone under its old id: the ingest never sets ticket_id on update.
CREATE TRIGGER inc_map_feed_generation AFTER DELETE OR TRUNCATE OR UPDATE OF ticket_id ON tickets.inc
    FOR EACH STATEMENT EXECUTE FUNCTION tickets.next_map_feed_generation();
CREATE TRIGGER crq_map_feed_generation AFTER DELETE OR TRUNCATE OR UPDATE OF ticket_id ON tickets.crq
    FOR EACH STATEMENT EXECUTE FUNCTION tickets.next_map_feed_generation();
CREATE TRIGGER sla_settings_map_feed_generation AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON tickets.sla_settings
    FOR EACH STATEMENT EXECUTE FUNCTION tickets.next_map_feed_generation();
CREATE TRIGGER cluster_aliases_map_feed_generation AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE
    ON tickets.cluster_aliases FOR EACH STATEMENT EXECUTE FUNCTION tickets.next_map_feed_generation();

-- Joins match an alias to a ticket's cluster by tickets.cluster_key() (trimmed,
-- spaces collapsed, lower case), but uniqueness was enforced on lower(alias):
-- ('qoa ', 'Quarry Road') beside ('QOA', 'Quarry Road') made every QOA ticket
-- join twice, counted twice in the SLA view, the dashboards, dispatch and the
-- snapshot. Duplicates that name the same cluster are merged here (the first
-- alias in byte order stays); duplicates that name different clusters cannot
-- be settled by a deploy, so the migration stops and names them.
DELETE FROM tickets.cluster_aliases AS a
USING tickets.cluster_aliases AS b
WHERE tickets.cluster_key(a.alias) = tickets.cluster_key(b.alias)
  AND tickets.cluster_key(a.cluster) = tickets.cluster_key(b.cluster)
  AND a.alias COLLATE "C" > b.alias COLLATE "C";

DO $$
DECLARE
    conflicts text;
BEGIN
    SELECT string_agg(format('%L → %s', a.alias, a.cluster), ', ' ORDER BY a.alias COLLATE "C") INTO conflicts
    FROM tickets.cluster_aliases AS a
    WHERE EXISTS (SELECT FROM tickets.cluster_aliases AS b
                  WHERE tickets.cluster_key(b.alias) = tickets.cluster_key(a.alias) AND b.alias <> a.alias);
    IF conflicts IS NOT NULL THEN
        RAISE EXCEPTION 'cluster aliases that are one alias to the joins name different clusters: %; '
                        'DELETE FROM tickets.cluster_aliases WHERE alias = ''…'' for each wrong one, then deploy '
                        'again', conflicts;
    END IF;
END
$$;

CREATE UNIQUE INDEX cluster_aliases_cluster_key ON tickets.cluster_aliases (tickets.cluster_key(alias));
COMMENT ON INDEX tickets.cluster_aliases_cluster_key IS
    'One alias per form the joins use (tickets.cluster_key): ''QOA'', ''qoa '' and '' Qoa'' are the same alias.';

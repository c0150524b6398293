-- Every cluster_key that names the same canonical cluster as p_cluster: the
-- code or name asked for, the canonical name, and every alias of it. A
-- ticket whose cluster_key is in the set is a candidate for the filter (the
-- exact rule is still tickets.dashboard_match()).
CREATE OR REPLACE FUNCTION tickets.cluster_keys_of(p_cluster text) RETURNS text[]
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT array_agg(DISTINCT k.key)
    FROM (SELECT tickets.cluster_key(p_cluster) AS key
          UNION ALL SELECT tickets.cluster_key(tickets.canonical_cluster(p_cluster))
          UNION ALL SELECT tickets.cluster_key(a.alias) FROM tickets.cluster_aliases AS a
                    WHERE tickets.cluster_key(a.cluster) = tickets.cluster_key(tickets.canonical_cluster(p_cluster))
         ) AS k
    WHERE k.key IS NOT NULL
$$;

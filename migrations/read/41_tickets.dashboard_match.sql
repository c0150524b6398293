-- p_want_cluster, a code or a canonical name in any case and spacing, selects
-- every ticket of that canonical cluster, whichever way the feed wrote it.
CREATE OR REPLACE FUNCTION tickets.dashboard_match(p_cluster_code text, p_cluster_name text, p_status text,
                                                   p_want_cluster text, p_want_status text) RETURNS boolean
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT (p_want_cluster IS NULL
            OR tickets.cluster_key(p_cluster_code) = tickets.cluster_key(p_want_cluster)
            OR tickets.cluster_key(p_cluster_name) = tickets.cluster_key(tickets.canonical_cluster(p_want_cluster)))
       AND (p_want_status IS NULL OR p_status = p_want_status)
$$;

-- History capture of one dataset, after every --apply run: a closure event for each ticket newly
-- seen closed, and today's row per cluster of the daily backlog snapshot. Returns what it did.
CREATE OR REPLACE FUNCTION tickets.capture_history(p_dataset text) RETURNS jsonb
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    wanted text := tickets.known_dataset(p_dataset);
    observed timestamptz := tickets.clock();
    today date := (tickets.clock() AT TIME ZONE 'Africa/Nairobi')::date;
    day_start timestamptz := (tickets.clock() AT TIME ZONE 'Africa/Nairobi')::date::timestamp
                             AT TIME ZONE 'Africa/Nairobi';
    since timestamptz;
    events_added integer;
    snapshot_rows integer;
BEGIN
    PERFORM FROM tickets.read_gate;  -- first: a deploy's one lock order (migrations/read/README.md)
    -- The dataset's ingest lock first (re-entrant when its ingest calls this;
    -- datasets 1 and 2 of namespace "FLTT", see locks.py): no file of the
    -- dataset commits while we look, so "written since the last capture"
    -- misses nothing. Then the history lock, so two captures cannot both see
    -- a ticket as newly closed.
    PERFORM pg_advisory_xact_lock(1179407444, CASE wanted WHEN 'inc' THEN 1 ELSE 2 END);
    PERFORM pg_advisory_xact_lock(1179407444, 10);
    since := (SELECT h.last_captured_at FROM tickets.history_captures AS h WHERE h.dataset = wanted);

    CREATE TEMP TABLE IF NOT EXISTS capture_changed (ticket_id text PRIMARY KEY, is_closed boolean NOT NULL)
        ON COMMIT DROP;
    TRUNCATE capture_changed;
    INSERT INTO capture_changed
    SELECT t.ticket_id, t.bucket = 'closed' AND t.closed_at IS NOT NULL
    FROM tickets.all_tickets AS t
    LEFT JOIN tickets.closure_watch AS w ON w.ticket_id = t.ticket_id
    WHERE t.dataset = wanted
      -- An hour's margin: ingested_at and last_captured_at are wall-clock now() of different
      -- transactions, and a clock stepped back between them would hide a change. Looking again
      -- at what was seen costs little: closure_watch makes it a no-op.
      AND (since IS NULL OR t.ingested_at >= since - interval '1 hour')
      AND w.seen_closed IS DISTINCT FROM (t.bucket = 'closed' AND t.closed_at IS NOT NULL);

    INSERT INTO tickets.closure_events (dataset, ticket_id, closed_at, mttr, cluster, assigned_team, owner,
                                        sla_status, normalized_status, observed_at)
    SELECT wanted, t.ticket_id, t.closed_at, t.mttr, t.cluster, t.assigned_team, t.owner, t.sla_status,
           t.normalized_status, observed
    FROM capture_changed AS c JOIN tickets.all_tickets AS t USING (ticket_id)
    WHERE t.dataset = wanted AND c.is_closed;
    GET DIAGNOSTICS events_added = ROW_COUNT;

    INSERT INTO tickets.closure_watch AS w (ticket_id, seen_closed, observed_at)
    SELECT ticket_id, is_closed, observed FROM capture_changed
    ON CONFLICT (ticket_id) DO UPDATE SET seen_closed = excluded.seen_closed, observed_at = excluded.observed_at;

    INSERT INTO tickets.history_captures AS h (dataset, last_captured_at) VALUES (wanted, now())
    ON CONFLICT ON CONSTRAINT history_captures_pkey DO UPDATE SET last_captured_at = excluded.last_captured_at;

    DELETE FROM tickets.daily_snapshot AS s WHERE s.dataset = wanted AND s.snapshot_date = today;
    INSERT INTO tickets.daily_snapshot (dataset, snapshot_date, cluster, open_backlog, actionable, breached, opened,
                                        closed, captured_at)
    SELECT wanted, today, COALESCE(x.cluster, '(all)'), COALESCE(sum(x.open_backlog), 0),
           COALESCE(sum(x.actionable), 0), COALESCE(sum(x.breached), 0), COALESCE(sum(x.opened), 0),
           COALESCE(sum(x.closed), 0), observed
    FROM (
        SELECT COALESCE(o.cluster_name, '(none)') AS cluster, 1 AS open_backlog,
               (o.is_actionable IS TRUE)::integer AS actionable, (o.sla_breached IS TRUE)::integer AS breached,
               0 AS opened, 0 AS closed
        FROM tickets.open_sla AS o
        WHERE o.dataset = wanted
        UNION ALL
        -- Opened today by the dataset's SLA start rule, closed today by
        -- closed_at. A start today needs some start column today or later:
        -- the latest_start index finds those few tickets without a scan.
        SELECT COALESCE(t.cluster_name, '(none)'), 0, 0, 0,
               (t.sla_start >= day_start AND t.sla_start < day_start + interval '1 day')::integer,
               (t.closed_at >= day_start AND t.closed_at < day_start + interval '1 day')::integer
        FROM tickets.ticket_sla AS t
        WHERE t.dataset = wanted
          AND ((GREATEST(t.created_at_service, t.scheduled_at, t.first_seen_at, t.source_created_at) >= day_start
                AND t.sla_start >= day_start AND t.sla_start < day_start + interval '1 day')
               OR (t.closed_at >= day_start AND t.closed_at < day_start + interval '1 day'))
        UNION ALL
        -- A cluster seen on an earlier day keeps a row (of zeros if need be),
        -- so its series has no gaps.
        SELECT s.cluster, 0, 0, 0, 0, 0
        FROM tickets.daily_snapshot AS s
        WHERE s.dataset = wanted
          AND s.snapshot_date = (SELECT max(p.snapshot_date) FROM tickets.daily_snapshot AS p
                                 WHERE p.dataset = wanted AND p.snapshot_date < today)
          AND s.cluster <> '(all)'
    ) AS x
    GROUP BY GROUPING SETS ((x.cluster), ());
    GET DIAGNOSTICS snapshot_rows = ROW_COUNT;

    RETURN jsonb_build_object('events_added', events_added, 'snapshot_rows', snapshot_rows,
                              'snapshot_date', today);
END
$$;

-- The original system's documented call, run after every --apply: INC's capture.
-- Kept so that runbooks, jobs and people that call it go on working.
CREATE OR REPLACE FUNCTION tickets.capture_history() RETURNS jsonb
LANGUAGE sql AS $$
    SELECT tickets.capture_history('inc')
$$;
COMMENT ON FUNCTION tickets.capture_history() IS
    'The original''s call: the same as tickets.capture_history(''inc'').';

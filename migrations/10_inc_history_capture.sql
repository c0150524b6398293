-- History builds forward from what each capture observes: closure episodes
-- and a daily backlog snapshot per cluster. The INC ingest calls
-- tickets.capture_history() after every --apply run.

CREATE TABLE tickets.closure_events (
    event_id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    ticket_id         text NOT NULL,
    closed_at         timestamptz NOT NULL,
    mttr              integer,
    cluster           text,
    assigned_team     text,
    owner             text,
    sla_status        text,
    normalized_status text,
    observed_at       timestamptz NOT NULL
);
CREATE INDEX closure_events_ticket_idx ON tickets.closure_events (ticket_id);
CREATE INDEX closure_events_closed_at_idx ON tickets.closure_events (closed_at);
COMMENT ON TABLE tickets.closure_events IS
    'Append-only: one row per observed closure episode (closed with no event since last seen open).';

CREATE FUNCTION tickets.forbid_change() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '% is append-only', TG_TABLE_NAME USING ERRCODE = 'insufficient_privilege';
END
$$;
CREATE TRIGGER closure_events_append_only BEFORE UPDATE OR DELETE ON tickets.closure_events
    FOR EACH STATEMENT EXECUTE FUNCTION tickets.forbid_change();

-- What the previous capture saw of each ticket: closed or not.
CREATE TABLE tickets.closure_watch (
    ticket_id   text PRIMARY KEY,
    seen_closed boolean NOT NULL,
    observed_at timestamptz NOT NULL
);

CREATE TABLE tickets.inc_daily_snapshot (
    snapshot_date date NOT NULL,
    cluster       text NOT NULL,
    open_backlog  integer NOT NULL,
    actionable    integer NOT NULL,
    breached      integer NOT NULL,
    opened        integer NOT NULL,
    closed        integer NOT NULL,
    captured_at   timestamptz NOT NULL,
    PRIMARY KEY (snapshot_date, cluster)
);
COMMENT ON TABLE tickets.inc_daily_snapshot IS
    'Per EAT day and canonical cluster, plus cluster ''(all)'' for the total; today''s rows follow each capture, past days are frozen.';

-- capture_history() runs after every INC run, so what it reads must be found
-- by index, not by scanning every ticket: what was written since the last
-- capture, and what opened or closed today.
CREATE INDEX inc_ingested_at_idx ON tickets.inc (ingested_at);
CREATE INDEX inc_sla_start_idx ON tickets.inc ((COALESCE(created_at_service, first_seen_at)));

-- When the last capture ran (its transaction's start, like ingested_at): a
-- ticket can only have closed or reopened since then if it was written since.
CREATE TABLE tickets.history_capture_meta (
    only_row         boolean PRIMARY KEY DEFAULT true CHECK (only_row),
    last_captured_at timestamptz NOT NULL
);

CREATE FUNCTION tickets.capture_history() RETURNS jsonb
LANGUAGE plpgsql SET search_path = pg_catalog, public AS $$
DECLARE
    observed timestamptz := tickets.clock();
    today date := (tickets.clock() AT TIME ZONE 'Africa/Nairobi')::date;
    day_start timestamptz := (tickets.clock() AT TIME ZONE 'Africa/Nairobi')::date::timestamp
                             AT TIME ZONE 'Africa/Nairobi';
    since timestamptz := (SELECT last_captured_at FROM tickets.history_capture_meta);
    events_added integer;
    snapshot_rows integer;
BEGIN
    -- The INC ingest's lock first (re-entrant when the ingest itself calls
    -- this): no INC file commits while we look, so "written since the last
    -- capture" misses nothing. Then our own, so two captures cannot both see
    -- a ticket as newly closed.
    PERFORM pg_advisory_xact_lock(1179407444, 1);
    PERFORM pg_advisory_xact_lock(1179407444, 10);

    CREATE TEMP TABLE IF NOT EXISTS capture_changed (ticket_id text PRIMARY KEY, is_closed boolean NOT NULL)
        ON COMMIT DROP;
    TRUNCATE capture_changed;
    INSERT INTO capture_changed
    SELECT i.ticket_id, i.bucket = 'closed' AND i.closed_at IS NOT NULL
    FROM tickets.inc AS i
    LEFT JOIN tickets.closure_watch AS w ON w.ticket_id = i.ticket_id
    WHERE (since IS NULL OR i.ingested_at >= since)
      AND w.seen_closed IS DISTINCT FROM (i.bucket = 'closed' AND i.closed_at IS NOT NULL);

    INSERT INTO tickets.closure_events (ticket_id, closed_at, mttr, cluster, assigned_team, owner, sla_status,
                                        normalized_status, observed_at)
    SELECT i.ticket_id, i.closed_at, i.mttr, i.cluster, i.assigned_team, i.owner, i.sla_status,
           i.normalized_status, observed
    FROM capture_changed AS c JOIN tickets.inc AS i USING (ticket_id)
    WHERE c.is_closed;
    GET DIAGNOSTICS events_added = ROW_COUNT;

    INSERT INTO tickets.closure_watch AS w (ticket_id, seen_closed, observed_at)
    SELECT ticket_id, is_closed, observed FROM capture_changed
    ON CONFLICT (ticket_id) DO UPDATE SET seen_closed = excluded.seen_closed, observed_at = excluded.observed_at;

    INSERT INTO tickets.history_capture_meta (last_captured_at) VALUES (now())
    ON CONFLICT (only_row) DO UPDATE SET last_captured_at = excluded.last_captured_at;

    DELETE FROM tickets.inc_daily_snapshot WHERE snapshot_date = today;
    INSERT INTO tickets.inc_daily_snapshot (snapshot_date, cluster, open_backlog, actionable, breached, opened,
                                            closed, captured_at)
    SELECT today, COALESCE(t.cluster, '(all)'), COALESCE(sum(t.open_backlog), 0), COALESCE(sum(t.actionable), 0),
           COALESCE(sum(t.breached), 0), COALESCE(sum(t.opened), 0), COALESCE(sum(t.closed), 0), observed
    FROM (
        SELECT COALESCE(o.cluster_name, '(none)') AS cluster, 1 AS open_backlog,
               (o.is_actionable IS TRUE)::integer AS actionable, (o.sla_breached IS TRUE)::integer AS breached,
               0 AS opened, 0 AS closed
        FROM tickets.inc_open_sla AS o
        UNION ALL
        SELECT COALESCE(a.cluster, i.cluster, '(none)'), 0, 0, 0,
               (COALESCE(i.created_at_service, i.first_seen_at) >= day_start
                AND COALESCE(i.created_at_service, i.first_seen_at) < day_start + interval '1 day')::integer,
               (i.closed_at >= day_start AND i.closed_at < day_start + interval '1 day')::integer
        FROM tickets.inc AS i
        LEFT JOIN tickets.cluster_aliases AS a ON lower(a.alias) = lower(i.cluster)
        WHERE (COALESCE(i.created_at_service, i.first_seen_at) >= day_start
               AND COALESCE(i.created_at_service, i.first_seen_at) < day_start + interval '1 day')
           OR (i.closed_at >= day_start AND i.closed_at < day_start + interval '1 day')
        UNION ALL
        -- A cluster seen on an earlier day keeps a row (of zeros if need be),
        -- so its series has no gaps.
        SELECT s.cluster, 0, 0, 0, 0, 0
        FROM tickets.inc_daily_snapshot AS s
        WHERE s.snapshot_date = (SELECT max(snapshot_date) FROM tickets.inc_daily_snapshot WHERE snapshot_date < today)
          AND s.cluster <> '(all)'
    ) AS t
    GROUP BY GROUPING SETS ((t.cluster), ());
    GET DIAGNOSTICS snapshot_rows = ROW_COUNT;

    RETURN jsonb_build_object('events_added', events_added, 'snapshot_rows', snapshot_rows,
                              'snapshot_date', today);
END
$$;

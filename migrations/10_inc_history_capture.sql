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

CREATE FUNCTION tickets.capture_history() RETURNS jsonb
LANGUAGE plpgsql SET search_path = pg_catalog, public AS $$
DECLARE
    observed timestamptz := tickets.clock();
    today date := (tickets.clock() AT TIME ZONE 'Africa/Nairobi')::date;
    events_added integer;
    snapshot_rows integer;
BEGIN
    -- Two captures at once would both see a ticket as newly closed.
    PERFORM pg_advisory_xact_lock(1179407444, 10);

    INSERT INTO tickets.closure_events (ticket_id, closed_at, mttr, cluster, assigned_team, owner, sla_status,
                                        normalized_status, observed_at)
    SELECT i.ticket_id, i.closed_at, i.mttr, i.cluster, i.assigned_team, i.owner, i.sla_status,
           i.normalized_status, observed
    FROM tickets.inc AS i
    LEFT JOIN tickets.closure_watch AS w ON w.ticket_id = i.ticket_id
    WHERE i.bucket = 'closed' AND i.closed_at IS NOT NULL AND NOT COALESCE(w.seen_closed, false);
    GET DIAGNOSTICS events_added = ROW_COUNT;

    INSERT INTO tickets.closure_watch AS w (ticket_id, seen_closed, observed_at)
    SELECT i.ticket_id, i.bucket = 'closed' AND i.closed_at IS NOT NULL, observed
    FROM tickets.inc AS i
    LEFT JOIN tickets.closure_watch AS seen ON seen.ticket_id = i.ticket_id
    WHERE seen.seen_closed IS DISTINCT FROM (i.bucket = 'closed' AND i.closed_at IS NOT NULL)
    ON CONFLICT (ticket_id) DO UPDATE SET seen_closed = excluded.seen_closed, observed_at = excluded.observed_at;

    DELETE FROM tickets.inc_daily_snapshot WHERE snapshot_date = today;
    INSERT INTO tickets.inc_daily_snapshot (snapshot_date, cluster, open_backlog, actionable, breached, opened,
                                            closed, captured_at)
    SELECT today, COALESCE(grouped.cluster, '(all)'), grouped.open_backlog, grouped.actionable, grouped.breached,
           grouped.opened, grouped.closed, observed
    FROM (
        SELECT COALESCE(a.cluster, i.cluster, '(none)') AS cluster,
               count(o.ticket_id) AS open_backlog,
               count(o.ticket_id) FILTER (WHERE o.is_actionable) AS actionable,
               count(o.ticket_id) FILTER (WHERE o.sla_breached) AS breached,
               count(*) FILTER (WHERE (COALESCE(i.created_at_service, i.first_seen_at)
                                       AT TIME ZONE 'Africa/Nairobi')::date = today) AS opened,
               count(*) FILTER (WHERE (i.closed_at AT TIME ZONE 'Africa/Nairobi')::date = today) AS closed
        FROM tickets.inc AS i
        LEFT JOIN tickets.inc_open_sla AS o ON o.ticket_id = i.ticket_id
        LEFT JOIN tickets.cluster_aliases AS a ON lower(a.alias) = lower(i.cluster)
        GROUP BY GROUPING SETS ((COALESCE(a.cluster, i.cluster, '(none)')), ())
    ) AS grouped;
    GET DIAGNOSTICS snapshot_rows = ROW_COUNT;

    RETURN jsonb_build_object('events_added', events_added, 'snapshot_rows', snapshot_rows,
                              'snapshot_date', today);
END
$$;

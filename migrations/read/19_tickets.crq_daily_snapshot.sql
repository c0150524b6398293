-- CRQ's rows of the daily backlog snapshot.
CREATE OR REPLACE VIEW tickets.crq_daily_snapshot AS
SELECT snapshot_date, cluster, open_backlog, actionable, breached, opened, closed, captured_at
FROM tickets.daily_snapshot WHERE dataset = 'crq';

-- INC's rows of the daily backlog snapshot, in the shape the table of that name had until migration 19.
CREATE OR REPLACE VIEW tickets.inc_daily_snapshot AS
SELECT snapshot_date, cluster, open_backlog, actionable, breached, opened, closed, captured_at
FROM tickets.daily_snapshot WHERE dataset = 'inc';

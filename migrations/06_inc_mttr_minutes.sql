-- Dashboards show whole minutes; raw keeps the fraction. The alarm and auto
-- flags are constant for stored tickets (alarm rows are dropped at ingest),
-- so they stay in raw only.
ALTER TABLE tickets.inc
    DROP COLUMN mttr,
    DROP COLUMN is_alarm,
    DROP COLUMN is_auto_created,
    DROP COLUMN is_auto_closed,
    ADD COLUMN mttr integer GENERATED ALWAYS AS (round(tickets.to_number(raw->>'mttr'))::integer) STORED;

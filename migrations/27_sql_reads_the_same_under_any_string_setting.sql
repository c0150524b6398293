-- A login or database may carry standard_conforming_strings = off, and a SQL or PL/pgSQL body is parsed in the
-- calling session: there every backslash in a plain literal is an escape, so '\.' became '.' (any character) and
-- '\s' an 's'. to_number then took '12a5' for a number and the insert failed (a value the contract says is null),
-- and an error of the read API quoted its argument through a body that no longer parsed. These parsers now say
-- the same without a backslash ([.], [[:space:]], [[:<:]] and [[:>:]] are what \., \s, \m and \M stand for).
--
-- eat_ts also reads 7 to 9 fractional digits (SQL Server's datetime2 writes 7), cut to microseconds: such a
-- time was unparseable, so its version was ordered by its file's export time and, within a file, a later row
-- with an older time won. Rows already stored with such a time are written again below (their typed columns
-- are generated from raw), their version_at from the time now read, and their ingested_at moved to now so the
-- next history capture looks at them (a closed_at now read may close a ticket).
CREATE OR REPLACE FUNCTION tickets.eat_ts(p text) RETURNS timestamptz
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE WHEN p ~ '^[1-9][0-9]{3}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])[ T]([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9]([.][0-9]{1,9})?$'
        THEN CASE WHEN substr(p, 9, 2)::int <= extract(day FROM
                      make_date(substr(p, 1, 4)::int, substr(p, 6, 2)::int, 1) + interval '1 month - 1 day')
            THEN timezone('Africa/Nairobi', make_timestamp(
                substr(p, 1, 4)::int, substr(p, 6, 2)::int, substr(p, 9, 2)::int,
                substr(p, 12, 2)::int, substr(p, 15, 2)::int, left(substr(p, 18), 9)::float8))
        END
    END
$$;

CREATE OR REPLACE FUNCTION tickets.to_number(p text) RETURNS numeric
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE WHEN p ~ '^[[:space:]]*[+-]?([0-9]{1,9}([.][0-9]{0,9})?|[.][0-9]{1,9})[[:space:]]*$' THEN p::numeric END
$$;

CREATE OR REPLACE FUNCTION tickets.strip_network_codes(p_location text) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT NULLIF(btrim(regexp_replace(regexp_replace(regexp_replace(regexp_replace(
        p_location,
        '[[][^]]*[]]', ' ', 'g'),
        '[[:<:]][A-Za-z]{2,5}-[A-Za-z]{2,5}-[0-9]+[[:>:]]', ' ', 'g'),
        '[[:<:]](ODB|FDH|FAT|OLT|SPL|MDU)[[:space:]]*-?[[:space:]]*[0-9]+[[:>:]]', ' ', 'gi'),
        '[[:space:]]+', ' ', 'g'), ' ,;:-'), '')
$$;

UPDATE tickets.inc AS t
SET raw = t.raw, version_at = COALESCE(tickets.eat_ts(t.raw->>'source_updated_at'), t.version_at), ingested_at = now()
WHERE EXISTS (SELECT FROM jsonb_each_text(t.raw) AS f(name, value)
              WHERE f.name IN ('created_at_service', 'scheduled_at', 'closed_at', 'first_seen_at', 'last_seen_at',
                               'source_created_at', 'source_updated_at')
                AND f.value ~ '[.][0-9]{7,9}$');
UPDATE tickets.crq AS t
SET raw = t.raw, version_at = COALESCE(tickets.eat_ts(t.raw->>'source_updated_at'), t.version_at), ingested_at = now()
WHERE EXISTS (SELECT FROM jsonb_each_text(t.raw) AS f(name, value)
              WHERE f.name IN ('created_at_service', 'scheduled_at', 'closed_at', 'first_seen_at', 'last_seen_at',
                               'source_created_at', 'source_updated_at')
                AND f.value ~ '[.][0-9]{7,9}$');

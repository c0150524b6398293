-- tickets.crq gets exactly the typed columns and indexes tickets.inc has
-- after 03-07. They are copied from the catalog rather than written out a
-- second time, so the two tables cannot drift apart here.
DO $$
DECLARE
    col record;
    idx record;
BEGIN
    FOR col IN
        SELECT a.attname, format_type(a.atttypid, a.atttypmod) AS type, pg_get_expr(d.adbin, d.adrelid) AS expr
        FROM pg_attribute AS a
        JOIN pg_attrdef AS d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
        WHERE a.attrelid = 'tickets.inc'::regclass AND a.attgenerated = 's' AND NOT a.attisdropped
        ORDER BY a.attnum
    LOOP
        EXECUTE format('ALTER TABLE tickets.crq ADD COLUMN %I %s GENERATED ALWAYS AS (%s) STORED',
                       col.attname, col.type, col.expr);
    END LOOP;

    FOR idx IN
        SELECT i.indexname, i.indexdef
        FROM pg_indexes AS i
        JOIN pg_index AS x ON x.indexrelid = format('%I.%I', i.schemaname, i.indexname)::regclass
        WHERE i.schemaname = 'tickets' AND i.tablename = 'inc' AND NOT x.indisprimary
    LOOP
        EXECUTE replace(
            replace(idx.indexdef, 'INDEX ' || idx.indexname, 'INDEX ' || regexp_replace(idx.indexname, '^inc_', 'crq_')),
            ' ON tickets.inc ', ' ON tickets.crq ');
    END LOOP;
END
$$;

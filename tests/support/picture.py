"""The tables as the migrations leave them, rendered from the catalog as SQL to read (migrations/picture/tables.sql).

Rendered with pg_catalog alone on the path, so every name outside it is written with its schema, and each part in
a fixed order (columns by position, the rest by name), so two databases with the same tables render the same text.
"""

from __future__ import annotations

import psycopg

HEADER = """\
-- The tables of schema tickets as migrations/NN_*.sql leave them: a picture to read, never applied (as
-- migrations/read/ is for views and functions, this is for tables). Rendered from a freshly migrated database
-- by tests/support/picture.py; tests/sql/test_migrations.py keeps it equal (FLEETTICKETS_WRITE_TABLES_PICTURE=1
-- writes it).
"""
TABLES = """
SELECT c.oid, c.relname::text, pg_catalog.obj_description(c.oid, 'pg_class')
FROM pg_catalog.pg_class AS c
WHERE c.relnamespace = 'tickets'::pg_catalog.regnamespace AND c.relkind IN ('r', 'p')
ORDER BY c.relname
"""
COLUMNS = """
SELECT a.attname::text, pg_catalog.format_type(a.atttypid, a.atttypmod), a.attnotnull, a.attgenerated::text,
       a.attidentity::text, pg_catalog.pg_get_expr(d.adbin, d.adrelid),
       pg_catalog.col_description(a.attrelid, a.attnum)
FROM pg_catalog.pg_attribute AS a
LEFT JOIN pg_catalog.pg_attrdef AS d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
WHERE a.attrelid = %s AND a.attnum > 0 AND NOT a.attisdropped
ORDER BY a.attnum
"""
CONSTRAINTS = """
SELECT c.conname::text, pg_catalog.pg_get_constraintdef(c.oid) FROM pg_catalog.pg_constraint AS c
WHERE c.conrelid = %s ORDER BY c.conname
"""
INDEXES = """
SELECT pg_catalog.pg_get_indexdef(i.indexrelid) FROM pg_catalog.pg_index AS i
JOIN pg_catalog.pg_class AS x ON x.oid = i.indexrelid
WHERE i.indrelid = %s AND NOT EXISTS (SELECT FROM pg_catalog.pg_constraint AS c WHERE c.conindid = i.indexrelid)
ORDER BY x.relname
"""
TRIGGERS = """
SELECT pg_catalog.pg_get_triggerdef(t.oid) FROM pg_catalog.pg_trigger AS t
WHERE t.tgrelid = %s AND NOT t.tgisinternal ORDER BY t.tgname
"""


def render(conn: psycopg.Connection) -> str:
    conn.execute("SELECT pg_catalog.set_config('search_path', 'pg_catalog', false)")
    parts = [HEADER]
    for oid, table, comment in conn.execute(TABLES).fetchall():
        columns = []
        comments = [f"COMMENT ON TABLE tickets.{table} IS {_literal(comment)};"] if comment else []
        for name, kind, not_null, generated, identity, expression, column_comment in \
                conn.execute(COLUMNS, (oid,)).fetchall():
            column = f"    {name} {kind}"
            if generated == "s":
                column += f" GENERATED ALWAYS AS ({expression}) STORED"
            elif identity:
                column += f" GENERATED {'ALWAYS' if identity == 'a' else 'BY DEFAULT'} AS IDENTITY"
            elif expression is not None:
                column += f" DEFAULT {expression}"
            columns.append(column + (" NOT NULL" if not_null else ""))
            if column_comment:
                comments.append(f"COMMENT ON COLUMN tickets.{table}.{name} IS {_literal(column_comment)};")
        constraints = [f"    CONSTRAINT {name} {definition}"
                       for name, definition in conn.execute(CONSTRAINTS, (oid,)).fetchall()]
        parts.append(f"CREATE TABLE tickets.{table} (\n" + ",\n".join(columns + constraints) + "\n);")
        parts += [f"{index};" for (index,) in conn.execute(INDEXES, (oid,)).fetchall()]
        parts += [f"{trigger};" for (trigger,) in conn.execute(TRIGGERS, (oid,)).fetchall()]
        parts += comments
        parts.append("")
    return "\n".join(parts).rstrip("\n") + "\n"


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"

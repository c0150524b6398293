"""A database's schema as data: what the migration tests compare between two databases.

Everything a reader of the schema could tell apart in `tickets` and
`reporting`: routines (definition, security, settings, ACL, owner), views,
columns (type, default, generation, nullability), indexes, constraints,
triggers and table ACLs. Object ids and the order objects were created in are
left out: two databases built by different paths differ there harmlessly.
"""

from __future__ import annotations

import psycopg

SCHEMAS = ("tickets", "reporting")

QUERIES = {
    "routines": """
        SELECT p.oid::regprocedure::text, pg_get_functiondef(p.oid), p.prosecdef, p.proconfig,
               p.proacl::text[], pg_get_userbyid(p.proowner)
        FROM pg_proc AS p WHERE p.pronamespace::regnamespace::text = ANY(%(schemas)s) AND p.prokind <> 'a'""",
    "views": """
        SELECT c.oid::regclass::text, pg_get_viewdef(c.oid), c.relacl::text[], obj_description(c.oid, 'pg_class')
        FROM pg_class AS c WHERE c.relnamespace::regnamespace::text = ANY(%(schemas)s) AND c.relkind IN ('v', 'm')""",
    "relations": """
        SELECT c.oid::regclass::text, c.relkind::text, c.relacl::text[], pg_get_userbyid(c.relowner),
               obj_description(c.oid, 'pg_class')
        FROM pg_class AS c WHERE c.relnamespace::regnamespace::text = ANY(%(schemas)s)""",
    "columns": """
        SELECT a.attrelid::regclass::text, a.attname, format_type(a.atttypid, a.atttypmod), a.attnotnull,
               a.attgenerated::text, pg_get_expr(d.adbin, d.adrelid), a.attnum
        FROM pg_attribute AS a JOIN pg_class AS c ON c.oid = a.attrelid
        LEFT JOIN pg_attrdef AS d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
        WHERE c.relnamespace::regnamespace::text = ANY(%(schemas)s) AND a.attnum > 0 AND NOT a.attisdropped""",
    "indexes": """
        SELECT i.indexrelid::regclass::text, pg_get_indexdef(i.indexrelid)
        FROM pg_index AS i JOIN pg_class AS c ON c.oid = i.indrelid
        WHERE c.relnamespace::regnamespace::text = ANY(%(schemas)s)""",
    "constraints": """
        SELECT con.conrelid::regclass::text, con.conname, pg_get_constraintdef(con.oid)
        FROM pg_constraint AS con WHERE con.connamespace::regnamespace::text = ANY(%(schemas)s)""",
    "triggers": """
        SELECT t.tgrelid::regclass::text, t.tgname, pg_get_triggerdef(t.oid)
        FROM pg_trigger AS t JOIN pg_class AS c ON c.oid = t.tgrelid
        WHERE c.relnamespace::regnamespace::text = ANY(%(schemas)s) AND NOT t.tgisinternal""",
    "schemas": """
        SELECT n.nspname, pg_get_userbyid(n.nspowner), n.nspacl::text[]
        FROM pg_namespace AS n WHERE n.nspname = ANY(%(schemas)s)""",
}


def snapshot(conn: psycopg.Connection) -> dict[str, list[tuple]]:
    """Each kind of object in `tickets` and `reporting`, as sorted rows."""
    params = {"schemas": list(SCHEMAS)}
    return {kind: sorted((_hashable(row) for row in conn.execute(query, params).fetchall()), key=repr)
            for kind, query in QUERIES.items()}


def _hashable(row: tuple) -> tuple:
    return tuple(tuple(value) if isinstance(value, list) else value for value in row)


def differences(left: dict[str, list[tuple]], right: dict[str, list[tuple]]) -> list[str]:
    """One line per row that only one side has, naming the kind: empty when the two are the same."""
    lines = []
    for kind in QUERIES:
        left_rows, right_rows = set(left[kind]), set(right[kind])
        lines += [f"{kind}: only left: {row!r:.300}" for row in sorted(left_rows - right_rows, key=repr)]
        lines += [f"{kind}: only right: {row!r:.300}" for row in sorted(right_rows - left_rows, key=repr)]
    return lines

"""Owner-rights code attacked through a schema another role can write: nothing planted in `public` runs.

The reporting functions run as fleettickets_owner (SECURITY DEFINER). A role
that may create in `public` plants, for every function, aggregate and
operator those functions' code names — the list read from the catalog and the
code itself, not written here — a shadow that an unpinned search_path would
prefer: the same signature, and every polymorphic one made concrete (the
`public.lower(tstzrange)` that beat `pg_catalog.lower(anyrange)`). Each shadow
raises when called, so a call that reaches one fails naming it.
"""

from __future__ import annotations

import os
import re

import psycopg
import pytest

from fleettickets import schema
from support import hostile
from support.stack import SAMPLES, TestDatabase

CALLS = {
    "fn_tickets_for_map": "SELECT reporting.fn_tickets_for_map()",
    "fn_inc_dashboard": "SELECT reporting.fn_inc_dashboard('Kilimani', 'open', 'custom', '2026-11-01', '2026-12-01')",
    "fn_crq_dashboard": "SELECT reporting.fn_crq_dashboard(NULL, NULL, '30d')",
    "fn_inc_backlog": "SELECT reporting.fn_inc_backlog('2026-11-01', '2026-12-31', 'QOA')",
    "fn_crq_backlog": "SELECT reporting.fn_crq_backlog('2026-11-01', '2026-12-31')",
    "fn_nearest_open_tickets": "SELECT reporting.fn_nearest_open_tickets(-1.29, 36.78, 50, 20, 'inc')",
    # A change answer from a full answer's token; the token names transactions, which differ between calls.
    "fn_map_changes": "SELECT reporting.fn_map_changes(reporting.fn_map_changes(NULL, 'inc', 'QOA')->>'token', 'inc', "
                      "'QOA')::jsonb - 'token'::text",
}
"""A call of every reporting function; a test fails when the catalog has one this does not call."""

CONCRETE = ["text", "integer", "bigint", "numeric", "double precision", "boolean", "date",
            "timestamp with time zone", "interval", "tstzrange", "jsonb", "json", "text[]",
            "public.geometry", "public.geography"]

OWNER_RIGHTS_CODE = """
SELECT p.oid, p.pronamespace::regnamespace::text || '.' || p.proname, pg_get_functiondef(p.oid)
FROM pg_proc AS p
WHERE p.pronamespace IN ('tickets'::regnamespace, 'reporting'::regnamespace) AND p.prokind = 'f'
"""
VIEW_CODE = """
SELECT c.oid::regclass::text, pg_get_viewdef(c.oid) FROM pg_class AS c
WHERE c.relnamespace = 'tickets'::regnamespace AND c.relkind = 'v'
"""
SHADOWABLE = """
SELECT p.proname, p.prokind, a.aggkind, p.proargtypes::regtype[]::text[], p.prorettype::regtype::text,
       p.proretset, p.provariadic = '"any"'::regtype
FROM pg_proc AS p
LEFT JOIN pg_aggregate AS a ON a.aggfnoid = p.oid
WHERE p.pronamespace IN ('pg_catalog'::regnamespace, 'public'::regnamespace) AND p.proname = ANY(%s)
"""
OPERATORS = """
SELECT o.oprname, o.oprleft::regtype::text, o.oprright::regtype::text, o.oprresult::regtype::text
FROM pg_operator AS o
WHERE o.oprnamespace IN ('pg_catalog'::regnamespace, 'public'::regnamespace) AND o.oprname = ANY(%s)
"""
POLYMORPHIC = re.compile(r"^any")
PSEUDO = {"internal", "cstring", "trigger", "void", "record", "language_handler", "event_trigger", "unknown",
          "\"any\""}
"""Types no shadow can take or return (a record-returning polymorphic one returns its concrete type instead)."""


def reachable_code(conn: psycopg.Connection) -> str:
    """The code of every reporting function and of what it reaches in `tickets`, by name, transitively."""
    functions = {name: body for _oid, name, body in conn.execute(OWNER_RIGHTS_CODE).fetchall()}
    views = dict(conn.execute(VIEW_CODE).fetchall())
    seen, todo = set(), [name for name in functions if name.startswith("reporting.")]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        body = functions.get(name) or views.get(name) or ""
        todo += [f"tickets.{called}" for called in re.findall(r"tickets\.([a-z0-9_]+)", body)]
    return "\n".join(functions.get(name) or views.get(name) or "" for name in seen)


def plant_shadows(conn: psycopg.Connection, code: str) -> list[str]:
    """Create in `public` a shadow of every function, aggregate and operator `code` names; returns their labels."""
    called = sorted({name.lower() for name in re.findall(r"\b([A-Za-z_][A-Za-z0-9_]*)\s*\(", code)})
    planted: list[str] = []
    for name, kind, aggkind, args, result, returns_set, variadic_any in conn.execute(SHADOWABLE,
                                                                                      (called,)).fetchall():
        if returns_set or kind not in ("f", "a") or (kind == "a" and (aggkind != "n" or len(args) != 1)):
            continue
        # VARIADIC "any" (jsonb_build_object, format): a fixed list of text arguments beats it, as a view's
        # jsonb_build_object('key', t.text_column, …) would be bound to when the view is created.
        signatures = ([(["text"] * arity, result) for arity in range(1, 41)] if variadic_any
                      else _concrete(args, result))
        for types, returns in signatures:
            label = f"{name}({', '.join(types)})"
            if kind == "a":
                statements = [_raising_function(f"shadow_sfunc_{len(planted)}", [types[0], types[0]], types[0],
                                                label),
                              f"CREATE AGGREGATE public.{name}({types[0]}) "
                              f"(SFUNC = public.shadow_sfunc_{len(planted)}, STYPE = {types[0]})"]
            else:
                statements = [_raising_function(f'"{name}"', types, returns, label)]
            if _try(conn, statements):
                planted.append(label)
    symbols = sorted({row[0] for row in conn.execute("SELECT DISTINCT oprname FROM pg_operator").fetchall()
                      if re.search(rf"(?<![-+*/<>=~!@#%^&|`?]){re.escape(row[0])}(?![-+*/<>=~!@#%^&|`?])", code)})
    for symbol, left, right, result in conn.execute(OPERATORS, (symbols,)).fetchall():
        operands = [t for t in (left, right) if t != "-"]
        for types, returns in _concrete(operands, result):
            label = f"operator {symbol}({', '.join(types)})"
            function = f"shadow_operator_{len(planted)}"
            sides = (f"LEFTARG = {types[0]}, RIGHTARG = {types[1]}" if len(types) == 2 else f"RIGHTARG = {types[0]}")
            if _try(conn, [_raising_function(function, types, returns, label),
                           f"CREATE OPERATOR public.{symbol} ({sides}, FUNCTION = public.{function})"]):
                planted.append(label)
    return planted


def _concrete(args: list[str], result: str) -> list[tuple[list[str], str]]:
    """The signatures a shadow takes: the same one, or, for a polymorphic one, each concrete type in its place."""
    if any(arg in PSEUDO for arg in args) or result in PSEUDO - {"record"}:
        return []
    if not any(POLYMORPHIC.match(arg) for arg in args):
        return [] if result == "record" else [(args, result)]
    return [([concrete if POLYMORPHIC.match(arg) else arg for arg in args],
             concrete if POLYMORPHIC.match(result) or result == "record" else result) for concrete in CONCRETE]


def _raising_function(name: str, types: list[str], returns: str, label: str) -> str:
    arguments = ", ".join(types)
    return (f"CREATE FUNCTION public.{name}({arguments}) RETURNS {returns} LANGUAGE plpgsql AS "
            f"$$ BEGIN RAISE EXCEPTION 'planted shadow ran: {label}'; END $$")


def _try(conn: psycopg.Connection, statements: list[str]) -> bool:
    """Create one shadow; false when it cannot exist (that signature is already in public, a type is not real)."""
    try:
        with conn.transaction():
            for statement in statements:
                conn.execute(statement)
        return True
    except psycopg.Error:
        return False


@pytest.fixture
def loaded(db: TestDatabase, run_import, tmp_path) -> TestDatabase:
    for dataset in ("inc", "crq"):
        for path in sorted((SAMPLES / dataset / "changes").glob("*.csv")):
            copy = tmp_path / dataset / path.name
            copy.parent.mkdir(exist_ok=True)
            copy.write_bytes(path.read_bytes())
            assert run_import(dataset, f"--{dataset}-csv", str(copy), "--apply").code == 0
    db.execute("SELECT tickets.resolve_ticket_geoms()")
    return db


def test_nothing_planted_in_public_runs_when_a_reader_calls_any_reporting_function(loaded, roles):
    with loaded.connect() as conn:
        assert set(CALLS) == {name for (name,) in conn.execute(
            "SELECT proname FROM pg_proc WHERE pronamespace = 'reporting'::regnamespace").fetchall()}
        conn.execute(PINNED_NOW)
        honest = {name: conn.execute(query).fetchone()[0] for name, query in CALLS.items()}
        planted = plant_shadows(conn, reachable_code(conn))

    assert "lower(tstzrange)" in planted and "st_asgeojson(public.geometry)" not in planted
    assert len(planted) > 200, planted
    with psycopg.connect(roles["reader"], autocommit=True) as reader:
        reader.execute(PINNED_NOW)
        for name, query in CALLS.items():
            assert reader.execute(query).fetchone()[0] == honest[name], name


PINNED_NOW = "SET fleettickets.now = '2026-11-21 12:00+03'"


def test_nothing_planted_before_a_deploy_is_bound_into_the_views_it_recreates(loaded, roles):
    """Views bind the functions they call when created, and every deploy that touches the read layer recreates
    them: a shadow planted before it must not become part of a view an owner-rights function reads."""
    with loaded.connect() as conn:
        conn.execute(PINNED_NOW)
        honest = {name: conn.execute(query).fetchone()[0] for name, query in CALLS.items()}
        planted = plant_shadows(conn, reachable_code(conn))
        conn.execute("DELETE FROM tickets.schema_read_layer")  # as after any change to a read file

    assert "jsonb_build_object(" + ", ".join(["text"] * 22) + ")" in planted
    assert schema.main([]) == 0
    with psycopg.connect(roles["reader"], autocommit=True) as reader:
        reader.execute(PINNED_NOW)
        for name, query in CALLS.items():
            assert reader.execute(query).fetchone()[0] == honest[name], name


def test_every_owner_rights_function_pins_its_world_and_is_not_public(db):
    definers = db.query("""
        SELECT p.oid::regprocedure::text, p.proconfig, has_function_privilege('public', p.oid, 'EXECUTE')
        FROM pg_proc AS p
        WHERE p.pronamespace IN ('tickets'::regnamespace, 'reporting'::regnamespace) AND p.prosecdef""")
    assert {name.split("(")[0] for name, _config, _public in definers} >= {f"reporting.{name}" for name in CALLS}
    for name, config, public_may_execute in definers:
        assert {"search_path=pg_catalog, pg_temp", "TimeZone=UTC"} <= set(config or []), (name, config)
        assert not public_may_execute, name


def test_the_payload_is_in_utc_whatever_the_callers_time_zone(loaded):
    with loaded.connect() as conn:
        conn.execute("SET TimeZone = 'Africa/Nairobi'")
        payload = conn.execute("SELECT reporting.fn_inc_dashboard(NULL, NULL, '30d')").fetchone()[0]
    assert payload["generated_at"].endswith("+00:00")
    assert all(f["properties"]["sla_start"] is None or f["properties"]["sla_start"].endswith("+00:00")
               for f in payload["open"]["features"])


def test_roles_revokes_create_on_public_and_warns_of_who_else_may_write_it(db, capsys):
    with db.connect() as conn:
        conn.execute("GRANT CREATE ON SCHEMA public TO PUBLIC")
        conn.execute("DROP ROLE IF EXISTS ft_other_app")
        conn.execute("CREATE ROLE ft_other_app")
        conn.execute("GRANT CREATE ON SCHEMA public TO ft_other_app")
    try:
        assert schema.main(["--roles"]) == 0
        out = capsys.readouterr().out
        assert db.scalar("SELECT has_schema_privilege('public', 'public', 'CREATE')") is False
        assert "warning: schema public is writable by ft_other_app" in out
        # As the warning says: revoke it, and --roles no longer warns.
        db.execute("REVOKE CREATE ON SCHEMA public FROM ft_other_app")
        assert schema.main(["--roles"]) == 0
        assert hostile.warnings_but_the_beds(capsys.readouterr().out) == []
    finally:
        with db.connect() as conn:
            conn.execute("REVOKE ALL ON SCHEMA public FROM ft_other_app")
            conn.execute("DROP ROLE ft_other_app")


def test_roles_warns_of_a_map_login_without_its_bounds_until_the_advice_is_followed(db, roles, capsys):
    """A time limit, a connection limit (finding 5: a leaking pool took 97 of 100 slots) and an idle bound."""
    reader = psycopg.conninfo.conninfo_to_dict(roles["reader"])["user"]
    capsys.readouterr()

    assert schema.main(["--roles"]) == 0
    out = capsys.readouterr().out
    advice = [f"ALTER ROLE {reader} SET statement_timeout = '30s'", f"ALTER ROLE {reader} CONNECTION LIMIT 20",
              f"ALTER ROLE {reader} SET idle_in_transaction_session_timeout = '60s'"]
    assert f"warning: {reader} calls the reporting functions with no time limit of its own: {advice[0]}" in out
    assert f"warning: {reader} may open any number of connections: a leaking pool can take every slot and keep " \
           f"the ingest out: {advice[1]}" in out
    assert f"warning: {reader} may stay idle in a transaction without end" in out and advice[2] in out

    for statement in advice:
        db.execute(statement)
    assert schema.main(["--roles"]) == 0
    assert not [line for line in hostile.warnings_but_the_beds(capsys.readouterr().out) if reader in line]
    with psycopg.connect(roles["reader"], autocommit=True) as conn:
        assert conn.execute("SHOW statement_timeout").fetchone()[0] == "30s"
        assert conn.execute("SHOW idle_in_transaction_session_timeout").fetchone()[0] == "1min"
    assert db.scalar("SELECT rolconnlimit FROM pg_roles WHERE rolname = %s", (reader,)) == 20


def test_roles_warns_of_who_may_create_schemas_and_of_schemas_named_after_our_logins(db, roles, capsys):
    ingest = f"ft_named_after_{os.getpid()}"
    with db.connect() as conn:
        conn.execute(f"CREATE ROLE {ingest} LOGIN IN ROLE fleettickets_ingest")
        conn.execute("CREATE ROLE schema_maker")
        conn.execute(f"GRANT CREATE ON DATABASE {db.name} TO schema_maker")
        conn.execute(f"CREATE SCHEMA {ingest} AUTHORIZATION schema_maker")
    try:
        capsys.readouterr()
        assert schema.main(["--roles"]) == 0
        out = capsys.readouterr().out
        assert "warning: schema_maker may create schemas in this database" in out
        assert f"REVOKE CREATE ON DATABASE {db.name} FROM schema_maker" in out
        assert f"warning: schema {ingest} is named after our role {ingest} but owned by schema_maker" in out
    finally:
        with db.connect() as conn:
            conn.execute(f"DROP SCHEMA {ingest}; REVOKE CREATE ON DATABASE {db.name} FROM schema_maker; "
                         f"DROP ROLE schema_maker; DROP ROLE {ingest}")

"""The hostile test bed: a server configured as a DBA might, shared with a tenant who plants shadows.

With FLEETTICKETS_TEST_BED=hostile the session's cluster takes a DBA's defaults (DATABASE_SETTINGS) and every test
database holds, owned by a tenant role, a schema named after each of the project's roles and logins, and shadows
in it and in `public` of every function and operator the project's SQL calls: its migrations, its read layer, its
roles file and the SQL in its Python. The names are read from that SQL (`called_names`, `operator_names`), never
listed by hand, and each is shadowed in every overload the catalog has, with polymorphic arguments made concrete
(so a shadow is a closer match than the built-in it hides).

A shadow forwards to the function it hides, so the test harness's own queries (which run with the DBA's path)
get the right answers; called from a session of ours (application_name 'fleettickets') it counts itself in
hostile_tripwire.hits, a sequence (which no rollback undoes), and raises. "Nothing planted runs" is then checked
after every test (`assert_nothing_planted_ran`), beside the test's own assertions.

public's shadows are planted after the template's deploy: a deploy refuses to run migrations 01-21 (which name
PostGIS unqualified, with public on their path) beside them; tests/process/test_hostile_world.py shows that refusal.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

import psycopg
from psycopg import sql

ROOT = Path(__file__).resolve().parents[2]
TENANT = "hostile_tenant"
TRIPWIRE = "hostile_tripwire"
OUR_APPLICATION = "fleettickets"

# What a DBA might choose for a shared server: dates written day-first, ISO intervals, a zone far from UTC, a
# path that searches the login's own schema before the catalog, `= NULL` read as IS NULL, snapshot isolation.
DATABASE_SETTINGS = {
    "DateStyle": "SQL, DMY",
    "IntervalStyle": "iso_8601",
    "TimeZone": "Pacific/Chatham",
    "search_path": '"$user", pg_catalog, public',
    "transform_null_equals": "on",
    "default_transaction_isolation": "repeatable read",
    "standard_conforming_strings": "off",
    "client_encoding": "LATIN1",
}
# The tests' own connections read what they assert in the forms they expect; ours pin theirs themselves.
HARNESS_OPTIONS = ("-c DateStyle=ISO,YMD -c IntervalStyle=postgres -c TimeZone=UTC -c search_path=pg_catalog,public "
                   "-c standard_conforming_strings=on -c client_encoding=UTF8")
# A release before this one ran, in the field, on the server it was deployed to, not on this bed's.
FIELD_OPTIONS = HARNESS_OPTIONS + " -c search_path=public"
PROJECT_ROLES = ("fleettickets_owner", "fleettickets_ingest", "fleettickets_reader", "postgres")

# Polymorphic pseudo-types, and the concrete types each is made into for a shadow (one shadow per choice).
CONCRETE = ("text", "integer", "timestamp with time zone", "jsonb", "double precision")
ELEMENT = {"anyelement", "anynonarray", "anycompatible", "anycompatiblenonarray", "any"}
ARRAY = {"anyarray", "anycompatiblearray"}
UNSHADOWABLE = {"internal", "cstring", "record", "trigger", "event_trigger", "anyenum", "anyrange",
                "anymultirange", "anycompatiblerange", "anycompatiblemultirange", "void", "language_handler",
                "fdw_handler", "table_am_handler", "index_am_handler", "tsm_handler", "unknown"}
# A call whose argument types are not exactly a built-in's (a Python int sent as smallint, a literal as numeric)
# lets a closer match elsewhere win: every overload is also shadowed with each of these narrower types.
NARROWER = {"bigint": ("integer", "smallint"), "integer": ("smallint",), "double precision": ("numeric", "integer"),
            "numeric": ("integer", "bigint"), "timestamp with time zone": ("timestamp without time zone", "date"),
            "text": ("character varying",)}
CALLED = re.compile(r"\b([a-z_][a-z0-9_]*)\s*\(", re.IGNORECASE)
OPERATOR_TOKEN = re.compile(r"(?<![-+*/<>=~!@#%^&|`?])([-+*/<>=~!@#%^&|`?]{1,3})(?![-+*/<>=~!@#%^&|`?])")


def project_sql() -> str:
    """Every statement the project sends: versioned files, the read layer, the roles, and its Python."""
    paths = [*sorted((ROOT / "migrations").rglob("*.sql")), *sorted((ROOT / "fleettickets").glob("*.py"))]
    return "\n".join(path.read_text(encoding="utf-8") for path in paths)


def called_names(text: str) -> set[str]:
    return {name.lower() for name in CALLED.findall(text)}


def operator_names(text: str) -> set[str]:
    return set(OPERATOR_TOKEN.findall(text))


OVERLOADS = """
SELECT p.proname, n.nspname, p.proargtypes::regtype[]::text[], p.prorettype::regtype::text, p.proretset,
       p.provariadic::regtype::text
FROM pg_catalog.pg_proc AS p JOIN pg_catalog.pg_namespace AS n ON n.oid = p.pronamespace
WHERE n.nspname IN ('pg_catalog', 'public') AND p.prokind = 'f' AND p.proname = ANY (%s)
ORDER BY 1, 2, 3
"""
OPERATORS = """
SELECT o.oprname, n.nspname, o.oprleft::regtype::text, o.oprright::regtype::text, o.oprresult::regtype::text
FROM pg_catalog.pg_operator AS o JOIN pg_catalog.pg_namespace AS n ON n.oid = o.oprnamespace
WHERE n.nspname IN ('pg_catalog', 'public') AND o.oprname = ANY (%s)
ORDER BY 1, 2, 3, 4
"""


def _concretions(types: list[str]) -> Iterator[Callable[[str], str]]:
    """For each concrete type a polymorphic signature is made into, the mapping of its types; for a signature with
    no polymorphic type, the identity alone."""
    for choice in CONCRETE if any(t in ELEMENT | ARRAY for t in types) else (None,):
        def made(t: str, choice: str | None = choice) -> str:
            if t in ARRAY:
                return f"{choice}[]"
            return choice if t in ELEMENT else t
        yield made


def _concrete(types: list[str], result: str, variadic: str, *, narrow: bool) -> Iterator[tuple[list[str], str]]:
    """The argument and result types of each shadow of one overload."""
    every = [*types, result]
    if any(t in UNSHADOWABLE for t in every) or (result in ELEMENT | ARRAY and not set(types) & (ELEMENT | ARRAY)):
        return
    polymorphic = any(t in ELEMENT | ARRAY for t in every)
    for made in _concretions(every):
        arguments = [made(t) for t in types]
        if result == "any":
            continue
        concrete_result = made(result)
        for narrowed in _narrowed(arguments, narrow=narrow):
            if variadic == '"any"':  # a VARIADIC "any" call takes as many arguments as it likes: a few counts
                for extra in range(0, 3):
                    yield [*narrowed, *[narrowed[-1]] * extra], concrete_result
            else:
                yield narrowed, concrete_result
        if not polymorphic:
            return


def _narrowed(arguments: list[str], *, narrow: bool = True) -> Iterator[list[str]]:
    """The arguments as declared, then with each argument, and each pair, made narrower."""
    yield arguments
    if not narrow:
        return
    seen = {tuple(arguments)}
    singles = [(i, narrow) for i, t in enumerate(arguments) for narrow in NARROWER.get(t, ())]
    for choice in [*([single] for single in singles),
                   *([a, b] for n, a in enumerate(singles) for b in singles[n + 1:] if a[0] != b[0])]:
        made = list(arguments)
        for i, narrow in choice:
            made[i] = narrow
        if tuple(made) not in seen:
            seen.add(tuple(made))
            yield made


def _shadow_function(schema: str, name: str, hides: str, arguments: list[str], result: str, returns_set: bool,
                     variadic_array: bool) -> sql.Composable:
    declared = [sql.SQL(t) for t in arguments]
    forwarded = [sql.SQL("${}").format(sql.SQL(str(i + 1))) for i in range(len(arguments))]
    if variadic_array:
        declared[-1] = sql.SQL("VARIADIC ") + declared[-1]
        forwarded[-1] = sql.SQL("VARIADIC ") + forwarded[-1]
    signature = f"{schema}.{name}({', '.join(arguments)})"
    call = sql.SQL("{}.{}({})").format(sql.Identifier(hides), sql.Identifier(name), sql.SQL(", ").join(forwarded))
    give = sql.SQL("RETURN QUERY SELECT * FROM {}") if returns_set else sql.SQL("RETURN {}")
    return sql.SQL("""
CREATE FUNCTION {schema}.{name}({declared}) RETURNS {setof}{result} LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp AS $shadow$
BEGIN
    {tripwire}
    {give};
END
$shadow$""").format(schema=sql.Identifier(schema), name=sql.Identifier(name), declared=sql.SQL(", ").join(declared),
                    setof=sql.SQL("SETOF " if returns_set else ""), result=sql.SQL(result),
                    tripwire=_tripwire(signature), give=give.format(call))


def _tripwire(signature: str) -> sql.Composable:
    """A shadow's first statement: called from a session of ours, it counts itself (a sequence, which no rollback
    undoes) and raises naming itself."""
    return sql.SQL("""IF pg_catalog.current_setting('application_name') OPERATOR(pg_catalog.=) {ours} THEN
        PERFORM pg_catalog.nextval('hostile_tripwire.hits');
        RAISE EXCEPTION 'planted shadow % ran', {signature};
    END IF;""").format(ours=sql.Literal(OUR_APPLICATION), signature=sql.Literal(signature))


def _plant(conn: psycopg.Connection, statement: sql.Composable) -> bool:
    """One planted object; False when the catalog refuses it (a name already taken there, a type it won't take)."""
    try:
        with conn.transaction():
            conn.execute(statement)
        return True
    except psycopg.Error:
        return False


def prepare_tenant(conn: psycopg.Connection) -> None:
    """The tenant role and the tripwire; once per cluster, as a superuser."""
    if not conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (TENANT,)).fetchone():
        conn.execute(sql.SQL("CREATE ROLE {} NOLOGIN").format(sql.Identifier(TENANT)))


def plant(conn: psycopg.Connection, schemas: Iterable[str], *, with_public: bool) -> int:
    """Shadows of everything the project's SQL calls, in a tenant-owned schema named after each of `schemas`
    (created if missing) and, `with_public`, in public. Returns how many objects were planted."""
    conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {} AUTHORIZATION {}").format(
        sql.Identifier(TRIPWIRE), sql.Identifier(TENANT)))
    conn.execute("CREATE SEQUENCE IF NOT EXISTS hostile_tripwire.hits")
    conn.execute("GRANT USAGE ON SCHEMA hostile_tripwire TO PUBLIC; GRANT USAGE ON SEQUENCE hostile_tripwire.hits "
                  "TO PUBLIC")
    targets = []
    for name in schemas:
        conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {} AUTHORIZATION {}").format(
            sql.Identifier(name), sql.Identifier(TENANT)))
        conn.execute(sql.SQL("GRANT USAGE ON SCHEMA {} TO PUBLIC").format(sql.Identifier(name)))
        targets.append(name)
    if with_public:
        targets.append("public")
    text = project_sql()
    overloads = conn.execute(OVERLOADS, (sorted(called_names(text)),)).fetchall()
    operators = conn.execute(OPERATORS, (sorted(operator_names(text)),)).fetchall()
    planted = 0
    conn.execute(sql.SQL("SET ROLE {}").format(sql.Identifier(TENANT)))
    try:
        for target in targets:
            for name, hides, types, result, returns_set, variadic in overloads:
                for arguments, concrete_result in _concrete(types, result, variadic, narrow=target != "public"):
                    planted += _plant(conn, _shadow_function(target, name, hides, arguments, concrete_result,
                                                             returns_set, variadic not in ("-", '"any"')))
            for number, (name, hides, left, right, result) in enumerate(operators):
                planted += _plant_operator(conn, target, number, name, hides, left, right, result,
                                           narrow=target != "public")
    finally:
        conn.execute("RESET ROLE")
    return planted


def _plant_operator(conn: psycopg.Connection, target: str, number: int, name: str, hides: str, left: str,
                    right: str, result: str, *, narrow: bool) -> int:
    planted = 0
    for (left_type, right_type), result_type in _operator_types(left, right, result, narrow=narrow):
        function = f"shadow_operator_{number}_{planted}"
        if left_type == "-":
            arguments, expression = [right_type], sql.SQL("OPERATOR({}.{}) $1").format(
                sql.Identifier(hides), sql.SQL(name))
        else:
            arguments, expression = [left_type, right_type], sql.SQL("$1 OPERATOR({}.{}) $2").format(
                sql.Identifier(hides), sql.SQL(name))
        made = _plant(conn, sql.SQL("""
CREATE FUNCTION {schema}.{function}({arguments}) RETURNS {result} LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp AS $shadow$
BEGIN
    {tripwire}
    RETURN {expression};
END
$shadow$;
CREATE OPERATOR {schema}.{name} ({sides}, FUNCTION = {schema}.{function})""").format(
            schema=sql.Identifier(target), function=sql.Identifier(function),
            arguments=sql.SQL(", ").join(sql.SQL(t) for t in arguments), result=sql.SQL(result_type),
            tripwire=_tripwire(f"operator {target}.{name}({left_type}, {right_type})"), expression=expression,
            name=sql.SQL(name),
            sides=sql.SQL(f"RIGHTARG = {right_type}") if left_type == "-"
            else sql.SQL(f"LEFTARG = {left_type}, RIGHTARG = {right_type}")))
        planted += made
    return planted


def _operator_types(left: str, right: str, result: str, *, narrow: bool) -> Iterator[tuple[tuple[str, str], str]]:
    sides = [left, right, result]
    if any(t in UNSHADOWABLE for t in sides if t != "-"):
        return
    for made in _concretions(sides):
        for left_type, right_type in {(made(left), made(right)), *(
                (small if made(left) == wide else made(left), small if made(right) == wide else made(right))
                for wide, narrower in NARROWER.items() if narrow and wide in (made(left), made(right))
                for small in narrower)}:
            yield (left_type, right_type), made(result)


def tripwire_hits(conn: psycopg.Connection) -> int:
    row = conn.execute("SELECT CASE WHEN is_called THEN last_value ELSE 0 END FROM hostile_tripwire.hits").fetchone()
    return int(row[0]) if row else 0


def configure_cluster(conn: psycopg.Connection) -> None:
    """The DBA's defaults, for every login in every database of the cluster (ALTER ROLE ALL outranks the
    server's command line, where the test cluster sets its time zone)."""
    for name, value in DATABASE_SETTINGS.items():
        # search_path is a list of names: written bare, not as one quoted string (which would be one name).
        given = sql.SQL(value) if name == "search_path" else sql.Literal(value)
        conn.execute(sql.SQL("ALTER ROLE ALL SET {} = {}").format(sql.Identifier(name.lower()), given))


def warnings_but_the_beds(output: str) -> list[str]:
    """`--roles`' warnings, less those about the schemas this bed itself planted (named after our logins)."""
    return [line for line in output.splitlines()
            if line.startswith("warning") and f"but owned by {TENANT}:" not in line]

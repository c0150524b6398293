"""A shared, configured server: our sessions pin their own world, and nothing another role plants runs for us.

These run on either bed: each plants what it needs (tests/support/hostile.py) and sets a DBA's settings on the
logins it uses, so they hold on PostgreSQL's defaults too. FLEETTICKETS_TEST_BED=hostile runs the whole suite on
such a server.
"""

from __future__ import annotations

import re

import psycopg
import pytest
from psycopg import sql
from test_privileges import whole_cycle

from fleettickets import schema
from support import hostile
from support.stack import TestDatabase
from support.streamdata import csv_text, ticket_fields

# Objects of ours bound to a routine or operator outside pg_catalog, our schemas and the extensions: a view, a
# CHECK, a default or an index that calls what another role made.
FOREIGN_DEPENDENCIES = """
SELECT pg_describe_object(d.classid, d.objid, d.objsubid) || ' → ' || pg_describe_object(d.refclassid, d.refobjid, 0)
FROM pg_depend AS d
LEFT JOIN pg_proc AS p ON d.refclassid = 'pg_proc'::regclass AND p.oid = d.refobjid
LEFT JOIN pg_operator AS o ON d.refclassid = 'pg_operator'::regclass AND o.oid = d.refobjid
WHERE (pg_identify_object(d.classid, d.objid, d.objsubid)).schema IN ('tickets', 'reporting')
  AND COALESCE(p.pronamespace, o.oprnamespace)::regnamespace::text NOT IN ('pg_catalog', 'tickets', 'reporting')
  AND NOT EXISTS (SELECT FROM pg_depend AS e WHERE e.classid = d.refclassid AND e.objid = d.refobjid
                                                AND e.deptype = 'e')
ORDER BY 1
"""


def dba_settings_on(conn: psycopg.Connection, login: str) -> None:
    for name, value in hostile.DATABASE_SETTINGS.items():
        given = sql.SQL(value) if name == "search_path" else sql.Literal(value)
        conn.execute(sql.SQL("ALTER ROLE {} SET {} = {}").format(sql.Identifier(login), sql.Identifier(name.lower()),
                                                                   given))


def nothing_ran_and_nothing_is_bound(db: TestDatabase) -> None:
    with db.connect() as conn:
        assert hostile.tripwire_hits(conn) == 0
        assert conn.execute(FOREIGN_DEPENDENCIES).fetchall() == []


def test_every_command_keeps_its_own_world_under_a_dbas_settings_and_a_schema_named_after_its_login(
        db, bucket, roles, run_import, monkeypatch):
    """Findings 1 and 3: a schema named after each login and group, owned by a tenant, shadowing every function and
    operator our SQL calls (the lock calls' (integer, smallint) among them), and the logins' own day-first dates,
    ISO intervals, another time zone and a path that searches "$user" before the catalog."""
    logins = {group: psycopg.conninfo.conninfo_to_dict(url)["user"] for group, url in roles.items()}
    with db.connect() as conn:
        hostile.prepare_tenant(conn)
        hostile.plant(conn, [*logins.values(), "fleettickets_owner", "fleettickets_ingest"], with_public=False)
        for login in logins.values():
            dba_settings_on(conn, str(login))

    monkeypatch.setenv("DATABASE_URL", roles["ingest"])
    whole_cycle(run_import, bucket, db, monkeypatch, rounds=2)
    for dataset in ("inc", "crq"):
        check = run_import(dataset, "--check")  # the samples are old: unhealthy by age, and says only that
        assert check.code == 1 and check.out.startswith(f"{dataset}: unhealthy: the newest change file"), check
        assert run_import(dataset, "--status").code == 0
    monkeypatch.setenv("DATABASE_URL", roles["owner"])
    for args in ([], ["--status"]):
        assert schema.main(args) == 0

    assert db.scalar("SELECT count(*) FROM tickets.inc") > 0 and db.scalar("SELECT count(*) FROM tickets.crq") > 0
    assert db.scalar("SELECT count(*) FROM tickets.inc WHERE created_at_service IS NOT NULL") > 0
    nothing_ran_and_nothing_is_bound(db)


def test_a_session_pins_its_settings_whatever_the_login_carries(db, roles, monkeypatch):
    from fleettickets import database

    login = psycopg.conninfo.conninfo_to_dict(roles["ingest"])["user"]
    with db.connect() as conn:
        dba_settings_on(conn, str(login))
    with database.connect(roles["ingest"]) as conn:
        shown = {name: conn.execute("SELECT pg_catalog.current_setting(%s)", (name,)).fetchone()[0]
                 for name in database.SESSION_WORLD}
    assert shown == {**database.SESSION_WORLD, "idle_in_transaction_session_timeout": "10min"}


@pytest.fixture
def tenant_in_public(empty_db: TestDatabase) -> str:
    """A tenant allowed to create in public (a database from before PostgreSQL 15, or a DBA's grant) who did."""
    with empty_db.connect() as conn:
        hostile.prepare_tenant(conn)
        conn.execute(sql.SQL("GRANT CREATE ON SCHEMA public TO {}").format(sql.Identifier(hostile.TENANT)))
        conn.execute(sql.SQL("CREATE SCHEMA tenant_own AUTHORIZATION {}").format(sql.Identifier(hostile.TENANT)))
        conn.execute(sql.SQL("SET ROLE {}").format(sql.Identifier(hostile.TENANT)))
        conn.execute("CREATE FUNCTION public.cardinality(text[]) RETURNS integer LANGUAGE sql AS 'SELECT 1'")
        conn.execute("CREATE FUNCTION public.ft_same(text, text) RETURNS boolean LANGUAGE sql AS 'SELECT true';"
                     "CREATE OPERATOR public.= (LEFTARG = text, RIGHTARG = text, FUNCTION = public.ft_same)")
        conn.execute("RESET ROLE")
    return hostile.TENANT


def test_a_deploy_refuses_what_another_role_planted_in_public_before_the_files_that_search_it(
        empty_db, tenant_in_public, capsys):
    assert schema.main([]) == 1
    error = capsys.readouterr().err
    assert "schema public holds 2 object(s) another role made that 01_tickets_schema.sql … 21_" in error
    assert f"function public.cardinality(text[]) (owner {tenant_in_public})" in error
    assert f"operator public.=(text,text) (owner {tenant_in_public})" in error
    assert "nothing was changed" in error
    assert empty_db.scalar("SELECT to_regnamespace('tickets') IS NULL")

    # As it says: move each to its owner's schema, deploy again.
    with empty_db.connect() as conn:
        conn.execute("ALTER FUNCTION public.cardinality(text[]) SET SCHEMA tenant_own;"
                     "ALTER OPERATOR public.=(text, text) SET SCHEMA tenant_own;"
                     "ALTER FUNCTION public.ft_same(text, text) SET SCHEMA tenant_own")
    assert schema.main([]) == 0
    with empty_db.connect() as conn:
        assert conn.execute(FOREIGN_DEPENDENCIES).fetchall() == []


def test_status_predicts_the_refusal_before_the_maintenance_window(empty_db, tenant_in_public, capsys):
    assert schema.main(["--status"]) == 0
    out = capsys.readouterr().out
    assert "a deploy would refuse: schema public holds 2 object(s) another role made" in out


def test_baseline_adopts_under_a_dbas_settings_and_runs_nothing_planted(original_db, capsys):
    """Finding 2 and 3 for the adoption: a schema named after the login and after fleettickets_owner shadowing what
    14-21 and the catalog reads call, day-first dates and ISO intervals on the database (under which the old
    comparison refused a CHECK identical to 08's)."""
    with original_db.connect() as conn:
        hostile.prepare_tenant(conn)
        hostile.plant(conn, ["postgres", "fleettickets_owner"], with_public=False)
        name = sql.Identifier(original_db.name)
        conn.execute(sql.SQL('ALTER DATABASE {} SET search_path = "$user", pg_catalog, public').format(name))
        for key, value in hostile.DATABASE_SETTINGS.items():
            if key != "search_path":
                conn.execute(sql.SQL("ALTER DATABASE {} SET {} = {}").format(name, sql.Identifier(key.lower()),
                                                                             sql.Literal(value)))
    try:
        assert schema.main(["--status"]) == 0
        assert "--baseline would record 13 files as baselined" in capsys.readouterr().out
        assert schema.main(["--baseline"]) == 0
        assert schema.main([]) == 0
    finally:
        with original_db.connect() as conn:
            conn.execute(sql.SQL("ALTER DATABASE {} RESET ALL").format(sql.Identifier(original_db.name)))
    assert original_db.scalar("SELECT count(*) FROM tickets.schema_migrations") == len(schema.discover().versioned)
    nothing_ran_and_nothing_is_bound(original_db)


# An E'' literal reads its backslashes the same under any standard_conforming_strings; a plain one does not.
E_LITERAL = re.compile(r"[Ee]'(?:[^'\\]|\\.|'')*'")


def test_no_body_of_ours_reads_a_backslash_by_the_callers_string_setting(db):
    """A function's body is parsed in the session that calls it: with the caller's standard_conforming_strings off,
    a backslash in a plain literal is an escape, and '\\.' in a regex matched any character."""
    with db.connect() as conn:
        bodies = conn.execute("SELECT p.oid::regprocedure::text, p.prosrc FROM pg_catalog.pg_proc AS p "
                              "WHERE p.pronamespace IN ('tickets'::regnamespace, 'reporting'::regnamespace)").fetchall()
    assert len(bodies) > 30
    assert [name for name, body in bodies if "\\" in E_LITERAL.sub("", body)] == []


@pytest.mark.parametrize("encoding", ["LATIN1", "SQL_ASCII"])
def test_a_login_with_other_string_settings_loads_what_the_contract_says_and_reads_the_same(
        db, roles, run_import, monkeypatch, tmp_path, encoding):
    """Logins that carry a DBA's settings, standard_conforming_strings = off and another client_encoding among
    them: the ingest stores text outside that encoding whole and reads malformed numbers, times and coordinates as
    null, as on the defaults; the read API refuses a bad argument with its own one-line error."""
    logins = {group: str(psycopg.conninfo.conninfo_to_dict(url)["user"]) for group, url in roles.items()}
    with db.connect() as conn:
        for group in ("ingest", "reader"):
            dba_settings_on(conn, logins[group])
            conn.execute(sql.SQL("ALTER ROLE {} SET client_encoding = {}").format(sql.Identifier(logins[group]),
                                                                                  sql.Literal(encoding)))
    place = "Ünïcödé – Nairobi ☎ 😀 \\ KIL-OLT-014"
    path = tmp_path / "inc.csv"
    path.write_text(csv_text([ticket_fields("INC000000000001", mttr="12a5", closed_at="2026-11-20 06:00:00x5",
                                            latitude="-1a29", longitude="36.8", location_name=place),
                              ticket_fields("INC000000000002", mttr="12", latitude="-1.29", longitude="36.8")]),
                    encoding="utf-8")
    monkeypatch.setenv("DATABASE_URL", roles["ingest"])
    outcome = run_import("inc", "--inc-csv", str(path), "--apply")
    assert outcome.code == 0, outcome.output

    assert "rejected" not in outcome.output or " 0 rejected" in outcome.output, outcome.output
    assert db.query("SELECT ticket_id, mttr, closed_at, latitude, location_name = %s FROM tickets.inc ORDER BY 1",
                    (place,)) == [("INC000000000001", None, None, None, True), ("INC000000000002", 12, None, -1.29,
                                                                                 False)]
    assert db.scalar("SELECT geo_source FROM tickets.inc WHERE ticket_id = 'INC000000000002'") == "feed"
    with psycopg.connect(roles["reader"], autocommit=True,
                         options="-c standard_conforming_strings=off -c client_encoding=UTF8") as conn:
        with pytest.raises(psycopg.errors.InvalidParameterValue, match=r"p_window must be one of .* \(got '1w'\)"):
            conn.execute("SELECT reporting.fn_inc_dashboard(NULL, NULL, '1w', NULL, NULL)")
        with pytest.raises(psycopg.errors.InvalidParameterValue, match="p_token must be a token this function"):
            conn.execute("SELECT reporting.fn_map_changes('m1.garbage')")


def test_postgis_in_a_schema_of_its_own_is_refused_predicted_and_the_advice_works(empty_db, capsys):
    """A managed server, or a DBA, installs extensions in their own schema; our SQL names PostGIS in public. The
    deploy failed deep in migration 01 ('type "geometry" does not exist') and --status said nothing."""
    with empty_db.connect() as conn:
        conn.execute("CREATE SCHEMA postgis; CREATE EXTENSION postgis SCHEMA postgis")

    assert schema.main(["--status"]) == 0
    assert "a deploy would refuse: PostGIS is installed in schema postgis" in capsys.readouterr().out
    assert schema.main([]) == 1
    said = capsys.readouterr()
    assert "PostGIS is installed in schema postgis" in said.err and said.err.count("\n") == 1, said
    advice = said.err.split("as a superuser, ", 1)[1].split(" then deploy again")[0]
    assert advice == "DROP EXTENSION postgis; CREATE EXTENSION postgis SCHEMA public;"

    with empty_db.connect() as conn:
        conn.execute(advice)
    assert schema.main([]) == 0
    assert empty_db.scalar("SELECT count(*) FROM tickets.inc") == 0


def test_roles_on_a_new_database_says_the_first_deploy_comes_first_and_that_works(empty_db, capsys):
    assert schema.main(["--roles"]) == 1
    said = capsys.readouterr().err
    assert "On a new database the first deploy comes first: run python run_migrations.py as the DBA" in said, said
    assert schema.main([]) == 0
    assert schema.main(["--roles"]) == 0
    assert empty_db.scalar("SELECT nspowner::regrole::text FROM pg_namespace WHERE nspname = 'tickets'") == \
        "fleettickets_owner"

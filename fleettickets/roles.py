"""The three group roles (migrations/roles/): creating them, the owner a deploy runs as, and what --roles warns of.

fleettickets_owner owns the schemas and runs the deploys; fleettickets_ingest makes exactly the writes a cycle
makes; fleettickets_reader calls the reporting functions. `run_migrations.py --roles` applies them
(docs/deployment-and-operations.md, "Roles: least privilege"; docs/security.md).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import psycopg

from fleettickets import database
from fleettickets.errors import FleetError


class RolesError(FleetError):
    """The roles cannot be created or taken on with this login."""


ROLES_DIR = Path(__file__).resolve().parents[1] / "migrations" / "roles"
CREATE_ROLES = ROLES_DIR / "create.sql"
GRANTS = ROLES_DIR / "grants.sql"
OWNER_IN_PLACE = """
SELECT EXISTS (SELECT FROM pg_namespace AS n JOIN pg_roles AS r ON r.oid = n.nspowner
               WHERE n.nspname = 'tickets' AND r.rolname = 'fleettickets_owner')
"""
AS_OWNER = "SET LOCAL ROLE fleettickets_owner"
PUBLIC_WRITERS = """
SELECT r.rolname FROM pg_roles AS r
WHERE has_schema_privilege(r.oid, 'public', 'CREATE') AND NOT r.rolsuper AND r.rolname !~ '^pg_'
  AND r.rolname NOT IN ('fleettickets_owner', 'fleettickets_ingest', 'fleettickets_reader')
ORDER BY 1
"""
# A statement_timeout set on a function does not bound a call of it (the timer is armed once per top-level
# statement) and a group role's settings are not inherited: the map's bounds belong on each login that calls.
# Without a connection limit a leaking pool takes every slot and keeps the ingest out; without an idle bound a
# session left in a transaction holds what a deploy waits for.
READER_LOGINS = """
SELECT r.rolname, r.rolconnlimit,
       EXISTS (SELECT FROM pg_catalog.pg_db_role_setting AS s, pg_catalog.unnest(s.setconfig) AS setting
               WHERE s.setrole = r.oid AND s.setdatabase IN (0, (SELECT oid FROM pg_catalog.pg_database
                                                                 WHERE datname = current_database()))
                 AND setting LIKE 'statement_timeout=%' AND setting <> 'statement_timeout=0'),
       EXISTS (SELECT FROM pg_catalog.pg_db_role_setting AS s, pg_catalog.unnest(s.setconfig) AS setting
               WHERE s.setrole = r.oid AND s.setdatabase IN (0, (SELECT oid FROM pg_catalog.pg_database
                                                                 WHERE datname = current_database()))
                 AND setting LIKE 'idle_in_transaction_session_timeout=%'
                 AND setting <> 'idle_in_transaction_session_timeout=0')
FROM pg_catalog.pg_roles AS r
WHERE r.rolcanlogin AND pg_catalog.pg_has_role(r.oid, 'fleettickets_reader', 'MEMBER') AND NOT r.rolsuper
ORDER BY 1
"""
# Who may create schemas here, besides a superuser, the database's owner and our own roles: such a role may name
# one after a login of ours.
DATABASE_CREATORS = """
SELECT r.rolname FROM pg_catalog.pg_roles AS r
WHERE pg_catalog.has_database_privilege(r.oid, current_database(), 'CREATE') AND NOT r.rolsuper
  AND r.rolname !~ '^pg_' AND r.rolname NOT IN ('fleettickets_owner', 'fleettickets_ingest', 'fleettickets_reader')
  AND r.oid <> (SELECT d.datdba FROM pg_catalog.pg_database AS d WHERE d.datname = current_database())
  AND NOT EXISTS (SELECT FROM pg_catalog.pg_roles AS g WHERE g.rolname = 'fleettickets_owner'
                                                       AND pg_catalog.pg_has_role(r.oid, g.oid, 'MEMBER'))
ORDER BY 1
"""
# A schema named after one of our roles or logins that someone else owns: "$user" in a default path finds it.
NAMED_AFTER_US = """
SELECT n.nspname::text, pg_catalog.pg_get_userbyid(n.nspowner)
FROM pg_catalog.pg_namespace AS n JOIN pg_catalog.pg_roles AS r ON r.rolname = n.nspname
WHERE n.nspowner <> r.oid
  AND EXISTS (SELECT FROM pg_catalog.pg_roles AS g
              WHERE g.rolname IN ('fleettickets_owner', 'fleettickets_ingest', 'fleettickets_reader')
                AND pg_catalog.pg_has_role(r.oid, g.oid, 'MEMBER'))
ORDER BY 1
"""
# Rights a role holds of its own on our objects bypass the three groups: the original system's map login, say,
# granted SELECT on the tables before the roles existed keeps reading them after.
DIRECT_GRANTEES = """
SELECT DISTINCT r.rolname FROM (
    SELECT (aclexplode(n.nspacl)).grantee FROM pg_namespace AS n WHERE n.nspname IN ('tickets', 'reporting')
    UNION ALL
    SELECT (aclexplode(c.relacl)).grantee FROM pg_class AS c
    WHERE c.relnamespace::regnamespace::text IN ('tickets', 'reporting')
    UNION ALL
    SELECT (aclexplode(p.proacl)).grantee FROM pg_proc AS p
    WHERE p.pronamespace::regnamespace::text IN ('tickets', 'reporting')
) AS granted JOIN pg_roles AS r ON r.oid = granted.grantee
WHERE NOT r.rolsuper AND r.rolname NOT IN ('fleettickets_owner', 'fleettickets_ingest', 'fleettickets_reader')
ORDER BY 1
"""


def owner_in_place(conn: psycopg.Connection) -> bool:
    row = conn.execute(OWNER_IN_PLACE).fetchone()
    return bool(row and row[0])


def become_owner(conn: psycopg.Connection) -> None:
    try:
        conn.execute(AS_OWNER)
    except psycopg.errors.InsufficientPrivilege:
        login = conn.info.user
        raise RolesError(f"the schemas belong to fleettickets_owner and {login!r} is not a member of it: set "
                             "MIGRATION_DATABASE_URL to a login IN ROLE fleettickets_owner (keep the app's "
                             "DATABASE_URL an ingest login; see docs/deployment-and-operations.md)") from None


def apply(conn: psycopg.Connection, *, deployed: bool, say: Callable[[str], None] = print) -> None:
    """--roles: the group roles, the schemas handed to fleettickets_owner, the grants; safe to run again.

    On a database not yet `deployed` at this tree's schema (the original system's, before --baseline) the grants
    name tables that do not exist yet: the deploy that brings them applies the grants at its end."""
    try:
        with conn.transaction():
            conn.execute(CREATE_ROLES.read_text(encoding="utf-8"))
            if deployed:
                conn.execute(GRANTS.read_text(encoding="utf-8"))
    except psycopg.errors.InvalidSchemaName as error:
        raise RolesError(f"--roles failed and was rolled back: {database.describe_error(error)}. On a new database "
                         "the first deploy comes first: run python run_migrations.py as the DBA (it creates PostGIS, "
                         "which needs a superuser, and the schemas), then --roles") from None
    except psycopg.Error as error:
        raise RolesError(f"--roles failed and was rolled back (it needs a role with CREATEROLE that owns the "
                             f"schemas, or a superuser): {database.describe_error(error)}") from None
    if deployed:
        say("Roles fleettickets_owner, fleettickets_ingest, fleettickets_reader in place; tickets and reporting "
            "owned by fleettickets_owner; grants applied; CREATE on schema public revoked from PUBLIC.")
    else:
        say("Roles fleettickets_owner, fleettickets_ingest, fleettickets_reader in place; tickets and reporting "
            "owned by fleettickets_owner. The schema is not at this release yet: the next deploy (run as a member "
            "of fleettickets_owner) applies the grants when it has made the tables they name.")
    writers = [name for (name,) in conn.execute(PUBLIC_WRITERS).fetchall()]
    if writers:
        say(f"warning: schema public is writable by {', '.join(writers)}: a function planted there runs for any code "
            "that searches public. The reporting functions search only pg_catalog; other apps' code may not: "
            "REVOKE CREATE ON SCHEMA public FROM each of them unless it must create there.")
    for role in (name for (name,) in conn.execute(DIRECT_GRANTEES).fetchall()):
        say(f"warning: {role} holds rights of its own on tickets or reporting, outside the three roles (granted "
            f"before they existed?): REVOKE ALL ON SCHEMA tickets, reporting FROM {role}; REVOKE ALL ON ALL TABLES "
            f"IN SCHEMA tickets, reporting FROM {role}; REVOKE ALL ON ALL SEQUENCES IN SCHEMA tickets, reporting "
            f"FROM {role}; REVOKE ALL ON ALL FUNCTIONS IN SCHEMA tickets, reporting FROM {role} (then make it a "
            "member of the role it needs)")
    for login, connection_limit, time_limited, idle_limited in conn.execute(READER_LOGINS).fetchall():
        if not time_limited:
            say(f"warning: {login} calls the reporting functions with no time limit of its own: "
                f"ALTER ROLE {login} SET statement_timeout = '30s' (a limit on a function or a group role does not "
                "bound a call)")
        if connection_limit < 0:
            say(f"warning: {login} may open any number of connections: a leaking pool can take every slot and "
                f"keep the ingest out: ALTER ROLE {login} CONNECTION LIMIT 20 (its pool's size, with room)")
        if not idle_limited:
            say(f"warning: {login} may stay idle in a transaction without end, holding what a deploy waits for: "
                f"ALTER ROLE {login} SET idle_in_transaction_session_timeout = '60s'")
    for role in (name for (name,) in conn.execute(DATABASE_CREATORS).fetchall()):
        say(f"warning: {role} may create schemas in this database, so it may name one after a login of ours: our "
            "sessions never search one (their path is pinned), other apps' default path (\"$user\", public) does: "
            f"REVOKE CREATE ON DATABASE {conn.info.dbname} FROM {role} unless it must create schemas")
    for name, owner in conn.execute(NAMED_AFTER_US).fetchall():
        say(f"warning: schema {name} is named after our role {name} but owned by {owner}: our sessions never search "
            f"it, but a session of {name} with the default path (\"$user\", public) would find what {owner} put "
            f"there: ask {owner} to move it (ALTER SCHEMA {name} RENAME TO …)")

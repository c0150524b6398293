"""The interfaces other apps, runbooks and people call: each documented object exists with a compatible signature.

INTERFACES is what the original system's implementation record named (docs/implementation.md and
docs/dashboard-api-contract.md restate them) and what this system added; removing one, or changing its
arguments or result, fails here before it breaks a caller on the day of a deploy. Every schema-qualified name the
docs mention must exist too.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

INTERFACES = {
    # The original's, called by its runbooks and jobs.
    "tickets.capture_history()": "jsonb",
    "tickets.resolve_ticket_geoms()": "integer",
    "tickets.clock()": "timestamp with time zone",
    # The read API (docs/dashboard-api-contract.md).
    "reporting.fn_tickets_for_map()": "jsonb",
    "reporting.fn_inc_dashboard(p_cluster text, p_status text, p_window text, p_from timestamp with time zone, "
    "p_to timestamp with time zone)": "json",
    "reporting.fn_crq_dashboard(p_cluster text, p_status text, p_window text, p_from timestamp with time zone, "
    "p_to timestamp with time zone)": "json",
    "reporting.fn_inc_backlog(p_from date, p_to date, p_cluster text)": "jsonb",
    "reporting.fn_crq_backlog(p_from date, p_to date, p_cluster text)": "jsonb",
    "reporting.fn_nearest_open_tickets(p_lat double precision, p_lon double precision, p_radius_km double precision, "
    "p_limit integer, p_dataset text)": "json",
    "reporting.fn_map_changes(p_token text, p_dataset text, p_cluster text, p_status text, p_window text, "
    "p_from timestamp with time zone, p_to timestamp with time zone)": "json",
    # This system's, named in the operations guide.
    "tickets.capture_history(p_dataset text)": "jsonb",
    "tickets.location_key(p_location text)": "text",
    "tickets.canonical_cluster(p_cluster text)": "text",
}

RELATIONS = {
    "tickets.inc": {"ticket_id", "raw", "geom", "geo_source", "ingested_at", "source_updated_at", "bucket"},
    "tickets.crq": {"ticket_id", "raw", "geom", "geo_source", "ingested_at", "source_updated_at", "bucket"},
    "tickets.import_meta": {"dataset", "metadata"},
    "tickets.inc_open_sla": {"ticket_id", "cluster_name", "sla_breached"},
    "tickets.inc_closed": {"ticket_id", "closed_at", "mttr"},
    "tickets.inc_daily_snapshot": {"snapshot_date", "cluster", "open_backlog"},
    "tickets.cluster_aliases": {"alias", "cluster"},
    "tickets.sla_settings": {"dataset", "target"},
    "tickets.closure_events": {"ticket_id", "closed_at", "assigned_team", "owner"},
}

REMOVED = {"tickets.history_capture_meta"}
"""Named in the upgrade notes as gone: they must stay gone, and are the only names the docs may mention that do
not exist (besides ADOPTED_ONLY)."""

ADOPTED_ONLY = {"tickets.schema_baseline"}
"""Made by run_migrations.py --baseline in a database adopted from the original system, not by a fresh deploy
(tests/sql/test_baseline.py reads it there)."""

SIGNATURES = """
SELECT p.pronamespace::regnamespace || '.' || p.proname || '(' || pg_get_function_identity_arguments(p.oid) || ')',
       pg_get_function_result(p.oid)
FROM pg_proc AS p WHERE p.pronamespace IN ('tickets'::regnamespace, 'reporting'::regnamespace)
"""


def test_every_documented_function_keeps_its_signature_and_result(db):
    present = dict(db.query(SIGNATURES))
    assert {name: present.get(name) for name in INTERFACES} == INTERFACES


@pytest.mark.parametrize("relation", sorted(RELATIONS))
def test_every_documented_table_and_view_keeps_its_columns(db, relation):
    schema, name = relation.split(".")
    columns = {column for (column,) in db.query(
        "SELECT column_name FROM information_schema.columns WHERE table_schema = %s AND table_name = %s",
        (schema, name))}
    assert RELATIONS[relation] <= columns, f"{relation} lost {RELATIONS[relation] - columns}"


def test_the_originals_documented_calls_run_with_their_documented_defaults(db):
    """Called as the original's docs write them: no arguments where the docs give none."""
    for call in ("SELECT tickets.capture_history()", "SELECT reporting.fn_inc_dashboard()",
                 "SELECT reporting.fn_inc_backlog('2026-11-01', '2026-11-30')",
                 "SELECT reporting.fn_tickets_for_map()",
                 "SELECT tickets.resolve_ticket_geoms()"):
        assert db.scalar(call) is not None, call
    assert db.scalar("SELECT metadata ? 'source_max_key' OR metadata = '{}' FROM tickets.import_meta "
                     "WHERE dataset = 'inc'") is True


def test_every_schema_qualified_name_the_docs_mention_exists(db):
    mentioned = set()
    for doc in [ROOT / "README.md", *(ROOT / "docs").glob("*.md")]:
        mentioned |= set(re.findall(r"\b((?:tickets|reporting)\.[a-z_][a-z0-9_]*)\b", doc.read_text(encoding="utf-8")))
    existing = {name for (name,) in db.query("""
        SELECT c.relnamespace::regnamespace || '.' || c.relname FROM pg_class AS c
        WHERE c.relnamespace IN ('tickets'::regnamespace, 'reporting'::regnamespace)
        UNION SELECT p.pronamespace::regnamespace || '.' || p.proname FROM pg_proc AS p
        WHERE p.pronamespace IN ('tickets'::regnamespace, 'reporting'::regnamespace)""")}
    assert len(mentioned) > 20
    assert sorted(mentioned - existing) == sorted(REMOVED | ADOPTED_ONLY)

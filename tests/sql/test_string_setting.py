"""Migration 27 rewrote three parsers without a backslash in a plain literal: they must return what the landed
definitions return, for any text, and the same under either standard_conforming_strings. The one change on
purpose: eat_ts reads 7 to 9 fractional digits as the landed one read the first 6."""

from __future__ import annotations

import re
from pathlib import Path

import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

MIGRATIONS = Path(__file__).resolve().parents[2] / "migrations"
PARSERS = {"eat_ts": "03_inc_columns.sql", "to_number": "01_tickets_schema.sql",
           "strip_network_codes": "01_tickets_schema.sql"}
EDGES = ["2026-11-20 06:00:00", "2026-11-20T06:00:00.123456", "2026-11-20 06:00:00.1234567", "2026-11-20 06:00:00x5",
         "2026-11-20 23:59:59.999999999", "2026-11-20 06:00:00.1234567890",
         "2026-02-30 06:00:00", "2026-11-20 06:00:00 ", "12", " 12.5 ", "12a5", "-1a29", ".5", "5.", "+7", "1e5",
         "1234567890", "\t3\n", "KLM-OLT-014 Yaya Court", "ODB 45, Lenana Rd", "[KIL/SPL/3] Amani", "FDH-WST-22",
         "odb-7 x", "a\\.b", "", " "]
TEXT = st.text(alphabet=st.sampled_from(list("0123456789 -:.T\t\n+eax[]/\\ODBFHKLMSPTW,")), max_size=30)


def landed(name: str) -> str:
    """The landed definition of tickets.<name>, created as pg_temp.landed_<name>."""
    text = (MIGRATIONS / PARSERS[name]).read_text()
    body = re.search(rf"CREATE FUNCTION tickets\.{name}\(.*?\$\$;", text, re.S)
    assert body, name
    return body.group(0).replace(f"CREATE FUNCTION tickets.{name}(", f"CREATE FUNCTION pg_temp.landed_{name}(", 1)


@pytest.fixture
def both(db):
    with psycopg.connect(db.url, autocommit=True) as conn:
        for name in PARSERS:
            conn.execute(landed(name))
        yield conn


# What the landed parser is asked instead: the same text, its fraction cut to 6 digits where it had 7 to 9.
AS_LANDED = {"eat_ts": r"regexp_replace(v, '^(.{19}[.][0-9]{6})[0-9]{1,3}$', '\1')"}


def differences(conn: psycopg.Connection, values: list[str]) -> list[tuple]:
    found = []
    for name in PARSERS:
        found += conn.execute(
            f"SELECT %s, v FROM unnest(%s::text[]) AS v WHERE tickets.{name}(v)::text "
            f"IS DISTINCT FROM pg_temp.landed_{name}({AS_LANDED.get(name, 'v')})::text", (name, values)).fetchall()
    return found


def test_the_rewritten_parsers_return_what_the_landed_ones_return_on_the_edges(both):
    assert differences(both, EDGES) == []
    both.execute("SET standard_conforming_strings = off")
    assert [row for row in both.execute(
        "SELECT v, tickets.to_number(v)::text, tickets.eat_ts(v)::text FROM unnest(%s::text[]) AS v", (EDGES,))
            if row[0] in ("12a5", "-1a29", "2026-11-20 06:00:00x5") and row[1:] != (None, None)] == []


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(values=st.lists(TEXT, min_size=1, max_size=200))
def test_the_rewritten_parsers_return_what_the_landed_ones_return_on_any_text(both, values):
    assert differences(both, values) == []

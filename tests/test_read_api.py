"""The reporting read API on tickets loaded through the ingest: open-SLA view, dashboard, breakdowns."""

from __future__ import annotations

import datetime as dt
import statistics
from decimal import ROUND_HALF_UP, Decimal

import psycopg
import pytest

from streamdata import csv_text, ticket_fields

EAT = dt.timezone(dt.timedelta(hours=3))
NOW = dt.datetime(2026, 11, 21, 12, 0, tzinfo=EAT)
CLUSTERS = ["Kilimani", "QOA", "Karen", "PTMP"]
OWNERS = ["jwanjiru", "", "aotieno"]
TEAMS = ["FieldOps Nairobi West", "Splicing Team A", ""]


def eat(hours_before_now: float) -> str:
    return (NOW - dt.timedelta(hours=hours_before_now)).strftime("%Y-%m-%d %H:%M:%S")


def generated_tickets() -> list[dict[str, str]]:
    """Forty tickets covering open/closed, both SLA starts, every window and the alias codes."""
    rows = []
    for n in range(40):
        closed = n % 3 == 0
        fields = {
            "cluster": CLUSTERS[n % 4], "owner": OWNERS[n % 3], "assigned_team": TEAMS[n % 3],
            "normalized_status": "closed" if closed else ["new", "in_progress", "pending"][n % 3],
            "bucket": "closed" if closed else "open",
            "is_actionable": "false" if closed or n % 3 == 2 else "true",
            "created_at_service": "" if n % 4 == 1 else eat(2 + n),
            "first_seen_at": "" if n % 8 == 5 else eat(1 + n),
            "closed_at": eat(n * 4 + 1) if closed else "",
            "mttr": f"{30 + 7 * n}.{n % 5}" if closed else "",
            "source_updated_at": eat(0.5),
        }
        rows.append(ticket_fields(f"INC{n:012d}", **fields))
    return rows


@pytest.fixture
def loaded(db, run_import, tmp_path):
    rows = generated_tickets()
    path = tmp_path / "2026-11-21T11-40-00.csv"
    path.write_text(csv_text(rows))
    assert run_import("inc", "--inc-csv", str(path), "--apply").code == 0
    return rows


def call(db, query: str, params: tuple = ()) -> object:
    with db.connect() as conn:
        conn.execute("SELECT set_config('fleettickets.now', %s, false)", (NOW.isoformat(),))
        return conn.execute(query, params).fetchone()[0]


def parse(text: str) -> dt.datetime | None:
    return dt.datetime.strptime(text, "%Y-%m-%d %H:%M:%S").replace(tzinfo=EAT) if text else None


def canonical(cluster: str) -> str:
    return {"QOA": "Quarry Road", "PTMP": "Pipeline"}.get(cluster, cluster)


def percentile_cont(values: list[int], fraction: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    position = fraction * (len(ordered) - 1)
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def expected_metrics(rows, cluster=None, status=None, since=NOW - dt.timedelta(hours=24), until=NOW) -> dict:
    """The dashboard's numbers, computed here from the generated rows."""
    def matches(row):
        return ((cluster is None or cluster.lower() in (row["cluster"].lower(), canonical(row["cluster"]).lower()))
                and (status is None or row["normalized_status"] == status))

    opened = [r for r in rows if r["bucket"] == "open" and matches(r)]
    starts = [parse(r["created_at_service"]) or parse(r["first_seen_at"]) for r in opened]
    closed = [r for r in rows if r["closed_at"] and matches(r) and since <= parse(r["closed_at"]) <= until]
    mttrs = [int(Decimal(r["mttr"]).quantize(Decimal(1), ROUND_HALF_UP)) for r in closed]
    return {
        "open": len(opened),
        "actionable": sum(r["is_actionable"] == "true" for r in opened),
        "breached": sum(1 for s in starts if s and NOW - s > dt.timedelta(hours=24)),
        "closed_in_window": len(closed),
        "mttr_median_minutes": statistics.median(mttrs) if mttrs else None,
        "mttr_p90_minutes": percentile_cont(mttrs, 0.9),
    }


def test_open_sla_uses_created_at_service_then_first_seen_and_knows_when_it_cannot_tell(db, loaded):
    view = {row[0]: row[1:] for row in call(db, """
        SELECT jsonb_agg(jsonb_build_array(ticket_id, sla_start_source, age_minutes, sla_breached))
        FROM tickets.inc_open_sla""")}
    assert view["INC000000000002"] == ["created_at_service", 4 * 60, False]       # started 4 h ago
    assert view["INC000000000028"] == ["created_at_service", 30 * 60, True]       # 30 h ago: breached
    assert view["INC000000000001"] == ["first_seen_at", 2 * 60, False]            # no created_at_service
    assert view["INC000000000005"] == [None, None, None]                          # neither: unknown, not false
    assert len(view) == sum(r["bucket"] == "open" for r in loaded)

    db.execute("UPDATE tickets.sla_settings SET target = interval '1 hour' WHERE dataset = 'inc'")
    assert call(db, "SELECT sla_breached FROM tickets.inc_open_sla WHERE ticket_id = 'INC000000000001'") is True


def test_the_source_sla_status_does_not_drive_the_open_view(db, loaded):
    db.execute("UPDATE tickets.inc SET raw = raw || '{\"sla_status\": \"SLA Breached\"}' "
               "WHERE ticket_id = 'INC000000000002'")
    assert call(db, "SELECT sla_breached FROM tickets.inc_open_sla WHERE ticket_id = 'INC000000000002'") is False


@pytest.mark.parametrize(("cluster", "status", "window", "since"), [
    (None, None, "24h", dt.timedelta(hours=24)),
    (None, None, "7d", dt.timedelta(days=7)),
    (None, None, "30d", dt.timedelta(days=30)),
    ("QOA", None, "7d", dt.timedelta(days=7)),
    ("Quarry Road", None, "7d", dt.timedelta(days=7)),
    ("kilimani", "pending", "30d", dt.timedelta(days=30)),
    (None, "closed", "7d", dt.timedelta(days=7)),
], ids=["all-24h", "all-7d", "all-30d", "alias-code", "canonical-name", "cluster-and-status", "status-closed"])
def test_dashboard_metrics_equal_an_independent_computation(db, loaded, cluster, status, window, since):
    payload = call(db, "SELECT reporting.fn_inc_dashboard(%s, %s, %s, NULL, NULL)", (cluster, status, window))
    metrics = payload["metrics"]
    expected = expected_metrics(loaded, cluster, status, NOW - since)
    assert {k: metrics[k] for k in expected} == expected
    assert len(payload["open"]["features"]) == expected["open"]
    assert len(payload["closed"]["features"]) == expected["closed_in_window"]


def test_custom_window_and_untyped_nulls(db, loaded):
    since, until = NOW - dt.timedelta(hours=100), NOW - dt.timedelta(hours=40)
    assert expected_metrics(loaded, since=NOW - dt.timedelta(days=7))["closed_in_window"] > 4  # the data has closures
    payload = call(db, "SELECT reporting.fn_inc_dashboard(NULL, NULL, 'custom', %s, %s)", (since, until))
    assert payload["metrics"]["closed_in_window"] == expected_metrics(loaded, since=since, until=until)[
        "closed_in_window"] > 0
    assert db.scalar("SELECT count(*) FROM pg_proc WHERE proname = 'fn_inc_dashboard'") == 1
    assert call(db, "SELECT reporting.fn_inc_dashboard()")["filters"]["window"] == "24h"


@pytest.mark.parametrize(("window", "start", "end", "message"), [
    ("1w", None, None, "p_window must be one of 24h, 7d, 30d, or custom with p_from and p_to (got '1w')"),
    (None, None, None, "p_window must be one of 24h, 7d, 30d, or custom with p_from and p_to (got NULL)"),
    ("custom", NOW, NOW - dt.timedelta(hours=1), "p_window custom needs p_from and p_to with p_from <= p_to"),
    ("custom", None, NOW, "p_window custom needs p_from and p_to with p_from <= p_to"),
])
def test_a_bad_window_is_an_error_saying_what_is_allowed(db, loaded, window, start, end, message):
    with pytest.raises(psycopg.errors.InvalidParameterValue, match=message.replace("(", r"\(").replace(")", r"\)")):
        call(db, "SELECT reporting.fn_inc_dashboard(NULL, NULL, %s, %s, %s)", (window, start, end))


def test_dashboard_geojson_is_valid_with_null_geometry_for_unplaced_tickets(db, loaded):
    db.execute("INSERT INTO tickets.geo_clusters (cluster, lat, lon, status) VALUES ('Kilimani', -1.29, 36.78, 'ok')")
    db.execute("SELECT tickets.resolve_ticket_geoms()")
    payload = call(db, "SELECT reporting.fn_inc_dashboard(NULL, NULL, '30d', NULL, NULL)")
    for collection in (payload["open"], payload["closed"]):
        assert collection["type"] == "FeatureCollection"
        for feature in collection["features"]:
            assert feature["type"] == "Feature" and feature["id"] == feature["properties"]["ticket_id"]
            geometry = feature["geometry"]
            assert geometry is None or (geometry["type"] == "Point" and len(geometry["coordinates"]) == 2)
    placed = [f for f in payload["open"]["features"] if f["geometry"]]
    assert placed and len(placed) < len(payload["open"]["features"])
    coverage = payload["metrics"]["geocode_coverage"]
    assert coverage["any_point"] == round(len(placed) / len(payload["open"]["features"]), 4)
    assert coverage["precise_point"] == 0


def test_freshness_reports_watermark_success_and_content_lag(db, loaded):
    freshness = call(db, "SELECT reporting.fn_inc_dashboard()")["freshness"]
    assert freshness["content_lag_minutes"] == 30
    assert freshness["last_success_at"] is not None


@pytest.mark.parametrize("window", ["24h", "30d"])
def test_owner_and_team_breakdowns_add_up_to_the_totals(db, loaded, window):
    payload = call(db, "SELECT reporting.fn_inc_dashboard(NULL, NULL, %s, NULL, NULL)", (window,))
    metrics = payload["metrics"]
    for breakdown in ("by_owner", "by_team"):
        groups = payload[breakdown]
        assert sum(g["open"] for g in groups) == metrics["open"]
        assert sum(g["breached"] for g in groups) == metrics["breached"]
        assert sum(g["closed_in_window"] for g in groups) == metrics["closed_in_window"]
        assert "unassigned" in {g["name"] for g in groups}
        assert "" not in {g["name"] for g in groups}


def test_the_documented_example_has_the_shape_of_a_real_payload(db, loaded):
    import json
    import re
    from pathlib import Path

    def shape(value):
        if isinstance(value, dict):
            return {key: shape(item) for key, item in value.items()}
        if isinstance(value, list):
            return [shape(value[0])] if value else []
        return None

    doc = (Path(__file__).resolve().parents[1] / "docs" / "dashboard-api-contract.md").read_text()
    example = json.loads(re.search(r"\*\*Example payload\*\*.*?```json\n(.*?)\n```", doc, re.S).group(1))
    db.execute("INSERT INTO tickets.geo_clusters (cluster, lat, lon, status) VALUES ('Kilimani', -1.29, 36.78, 'ok')")
    db.execute("SELECT tickets.resolve_ticket_geoms()")
    real = call(db, "SELECT reporting.fn_inc_dashboard('Kilimani', NULL, '7d', NULL, NULL)")
    assert shape(example) == shape(real)
    assert example["metrics"] == real["metrics"]

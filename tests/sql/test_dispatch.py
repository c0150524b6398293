"""reporting.fn_nearest_open_tickets: the open, actionable tickets nearest a technician, against brute force."""

from __future__ import annotations

import math
import random

import psycopg
import pytest

from support.streamdata import csv_text, ticket_fields

HERE = (-1.2921, 36.8219)  # Nairobi CBD
EARTH_RADIUS_M = 6_371_008.8  # the mean radius PostGIS uses for distances on the sphere


def haversine_m(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * EARTH_RADIUS_M * math.asin(math.sqrt(a))


@pytest.fixture
def tickets(db, run_import, tmp_path):
    """300 tickets of each dataset scattered over ~40 km around the CBD: open and closed, actionable or not,
    some with no point at all."""
    rng = random.Random(7)
    loaded = {}
    for dataset in ("inc", "crq"):
        rows = []
        for n in range(300):
            placed = n % 10 != 0
            lat, lon = HERE[0] + rng.uniform(-0.2, 0.2), HERE[1] + rng.uniform(-0.2, 0.2)
            state = rng.choice(["open", "open", "closed"])
            rows.append(ticket_fields(
                f"{dataset.upper()}{n:012d}", bucket=state, normalized_status="new" if state == "open" else "closed",
                is_actionable=rng.choice(["true", "true", "false"]), cluster="Atlantis",
                latitude=f"{lat:.6f}" if placed else "", longitude=f"{lon:.6f}" if placed else ""))
        path = tmp_path / f"{dataset}-2026-11-21T11-40-00.csv"
        path.write_text(csv_text(rows))
        assert run_import(dataset, f"--{dataset}-csv", str(path), "--apply").code == 0
        loaded[dataset] = rows
    return loaded


def nearest(db, lat=HERE[0], lon=HERE[1], radius_km=10.0, limit=20, dataset=None) -> list[dict]:
    payload = db.scalar("SELECT reporting.fn_nearest_open_tickets(%s, %s, %s, %s, %s)",
                        (lat, lon, radius_km, limit, dataset))
    assert payload["type"] == "FeatureCollection"
    return [f["properties"] | {"coordinates": f["geometry"]["coordinates"]} for f in payload["features"]]


def brute_force(db, radius_km: float, limit: int, dataset: str | None) -> list[tuple[str, float]]:
    """Every ticket's distance by ST_Distance, filtered and ordered here, not by the index."""
    rows = db.query("""
        SELECT ticket_id, ST_Distance(geog, ST_SetSRID(ST_MakePoint(%(lon)s, %(lat)s), 4326)::geography, false) AS d
        FROM (SELECT ticket_id, geog, bucket, is_actionable, 'inc' AS dataset FROM tickets.inc
              UNION ALL SELECT ticket_id, geog, bucket, is_actionable, 'crq' FROM tickets.crq) AS t
        WHERE bucket = 'open' AND is_actionable AND geog IS NOT NULL AND (%(dataset)s::text IS NULL
                                                                           OR dataset = %(dataset)s)""",
                    {"lat": HERE[0], "lon": HERE[1], "dataset": dataset})
    inside = sorted((d, ticket_id) for ticket_id, d in rows if d <= radius_km * 1000)
    return [(ticket_id, d) for d, ticket_id in inside[:limit]]


@pytest.mark.parametrize(("radius_km", "limit", "dataset"), [
    (10, 20, None), (3, 500, None), (25, 7, "inc"), (25, 500, "crq"), (0.5, 20, None), (25, 20, " CRQ ")])
def test_nearest_matches_brute_force_distance_order(db, tickets, radius_km, limit, dataset):
    found = nearest(db, radius_km=radius_km, limit=limit, dataset=dataset)
    dataset = dataset and dataset.strip().lower()
    expected = brute_force(db, radius_km, limit, dataset)
    assert [f["ticket_id"] for f in found] == [ticket_id for ticket_id, _d in expected]
    assert [f["distance_m"] for f in found] == [round(d, 1) for _ticket_id, d in expected]
    for feature in found:
        lon, lat = feature["coordinates"]
        assert abs(haversine_m(HERE[0], HERE[1], lat, lon) - feature["distance_m"]) < 0.5
        assert feature["distance_m"] <= radius_km * 1000
        assert feature["dataset"] == feature["ticket_id"][:3].lower()
        assert dataset is None or feature["dataset"] == dataset
        assert {"cluster_name", "location_name", "geo_source", "sla_breached"} <= feature.keys()
    assert len(found) <= limit


def test_nearest_returns_only_open_actionable_placed_tickets(db, tickets):
    found = {f["ticket_id"] for f in nearest(db, radius_km=100, limit=500)}
    eligible = {row["ticket_id"] for rows in tickets.values() for row in rows
                if row["bucket"] == "open" and row["is_actionable"] == "true" and row["latitude"]}
    assert found == eligible and 0 < len(found) < 600
    db.execute("UPDATE tickets.inc SET raw = raw || '{\"bucket\": \"closed\"}' WHERE ticket_id = %s",
               (sorted(x for x in found if x.startswith("INC"))[0],))
    assert len(nearest(db, radius_km=100, limit=500)) == len(found) - 1


def test_nearest_with_nothing_in_reach_is_an_empty_collection(db, tickets):
    assert nearest(db, lat=3.5, lon=35.5, radius_km=5) == []


@pytest.mark.parametrize(("args", "message"), [
    ((91, 36.8, 10, 20, None), "p_lat must be a latitude between -90 and 90 (got 91)"),
    ((None, 36.8, 10, 20, None), "p_lat must be a latitude between -90 and 90 (got NULL)"),
    ((float("nan"), 36.8, 10, 20, None), "p_lat must be a latitude between -90 and 90 (got NaN)"),
    ((-1.3, -181, 10, 20, None), "p_lon must be a longitude between -180 and 180 (got -181)"),
    ((-1.3, 36.8, 0, 20, None), "p_radius_km must be above 0 and at most 20000 (got 0)"),
    ((-1.3, 36.8, -2, 20, None), "p_radius_km must be above 0 and at most 20000 (got -2)"),
    ((-1.3, 36.8, float("inf"), 20, None), "p_radius_km must be above 0 and at most 20000 (got Infinity)"),
    ((-1.3, 36.8, 10, 0, None), "p_limit must be between 1 and 500 (got 0)"),
    ((-1.3, 36.8, 10, 501, None), "p_limit must be between 1 and 500 (got 501)"),
    ((-1.3, 36.8, 10, 20, "chg"), "p_dataset must be inc, crq, or NULL for both (got 'chg')"),
])
def test_nearest_rejects_bad_arguments_saying_what_is_allowed(db, args, message):
    with pytest.raises(psycopg.errors.InvalidParameterValue) as caught:
        db.scalar("SELECT reporting.fn_nearest_open_tickets(%s::float8, %s::float8, %s::float8, %s::int, %s::text)",
                  args)
    assert caught.value.diag.message_primary == message


def test_nearest_uses_its_defaults(db, tickets):
    defaults = db.scalar("SELECT reporting.fn_nearest_open_tickets(%s, %s)", HERE)
    assert [f["id"] for f in defaults["features"]] == [f["ticket_id"] for f in nearest(db)]


def test_the_documented_dispatch_example_is_a_real_payload(db, run_import, tmp_path):
    import json
    import os
    import re
    from pathlib import Path

    rows = {
        "inc": [ticket_fields("INC000000000101", latitude="-1.292800", longitude="36.823100", cluster="Kilimani",
                              location_name="Uhuru House, Ngong Rd", assigned_team="FieldOps Nairobi West",
                              created_at_service="2026-11-21 08:00:00")],
        "crq": [ticket_fields("CRQ000000000202", latitude="-1.300400", longitude="36.815000", cluster="QOA",
                              location_name="Amani Plaza", scheduled_at="2026-11-18 09:00:00", owner="aotieno"),
                ticket_fields("CRQ000000000203", latitude="-1.290000", longitude="36.820000", is_actionable="false")],
    }
    for dataset, dataset_rows in rows.items():
        path = tmp_path / f"{dataset}-2026-11-21T11-40-00.csv"
        path.write_text(csv_text(dataset_rows))
        assert run_import(dataset, f"--{dataset}-csv", str(path), "--apply").code == 0
    with db.connect() as conn:
        conn.execute("SET fleettickets.now = '2026-11-21 12:00+03'")
        real = conn.execute("SELECT reporting.fn_nearest_open_tickets(-1.2921, 36.8219, 5, 20)").fetchone()[0]
    if os.environ.get("FLEETTICKETS_WRITE_EXAMPLE"):
        Path(os.environ["FLEETTICKETS_WRITE_EXAMPLE"]).write_text(json.dumps(real, indent=2))
    doc = (Path(__file__).resolve().parents[2] / "docs" / "dashboard-api-contract.md").read_text()
    documented = json.loads(re.search(r"\*\*Dispatch example\*\*.*?```json\n(.*?)\n```", doc, re.S).group(1))
    assert documented == real


@pytest.mark.parametrize(("sphere_km", "inside"), [(9.97, True), (10.03, False)], ids=["just-inside", "just-outside"])
def test_the_radius_is_measured_on_the_sphere_the_contract_names(db, run_import, tmp_path, sphere_km, inside):
    """Due north of Nairobi the spheroid's distance is ~0.56 % shorter than the sphere's: a ticket 10.03 km away on
    the sphere is 9.97 km away on the spheroid, so only the sphere keeps it out of a 10 km radius."""
    lat = HERE[0] + math.degrees(sphere_km * 1000 / EARTH_RADIUS_M)
    assert abs(haversine_m(lat, HERE[1], *HERE) - sphere_km * 1000) < 1
    path = tmp_path / "inc-2026-11-21T11-40-00.csv"
    path.write_text(csv_text([ticket_fields("INC000000000001", bucket="open", normalized_status="new",
                                            is_actionable="true", latitude=f"{lat:.7f}", longitude=f"{HERE[1]:.7f}")]))
    assert run_import("inc", "--inc-csv", str(path), "--apply").code == 0

    assert [t["ticket_id"] for t in nearest(db, radius_km=10)] == (["INC000000000001"] if inside else [])

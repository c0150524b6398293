"""Geocoding against a local server that speaks LocationIQ's format, on real PostgreSQL+PostGIS."""

from __future__ import annotations

import re
from decimal import Decimal
from pathlib import Path

import pytest

from fleettickets import clock
from fleettickets.geocoder import SECOND_WINDOW_WAIT_S
from support.fake_locationiq import FakeLocationIQ, Scripted
from support.streamdata import csv_text, ticket_fields

KEY = "pk.test-secret-key-0123456789"
KILIMANI = (-1.2893, 36.7833)
NEAR_KILIMANI = (-1.2990, 36.7600)   # ~2.8 km away
FAR_FROM_KILIMANI = (-1.0300, 37.0700)  # ~43 km away: Thika has a Lenana Rd too
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def geocoder(monkeypatch):
    fake = FakeLocationIQ().start()
    waits: list[float] = []
    monkeypatch.setattr(clock, "sleep", waits.append)
    monkeypatch.setenv("GEOCODER_URL", fake.url)
    monkeypatch.setenv("GEOCODER_API_KEY", KEY)
    monkeypatch.setenv("GEOCODER_RPS", "1000")
    fake.waits = waits
    yield fake
    fake.stop()


def load(run_import, tmp_path, dataset: str, *rows: dict[str, str]) -> None:
    path = tmp_path / f"2026-11-20T06-00-0{len(list(tmp_path.iterdir()))}.csv"
    path.write_text(csv_text(list(rows)))
    outcome = run_import(dataset, f"--{dataset}-csv", str(path), "--apply")
    assert outcome.code == 0, outcome.output


def open_ticket(ticket_id: str, cluster: str = "Kilimani", location: str = "Yaya Court, Argwings Kodhek Rd",
                **overrides: str) -> dict[str, str]:
    return ticket_fields(ticket_id, **{"cluster": cluster, "location_name": location, "bucket": "open",
                                       "is_actionable": "true", **overrides})


def seed_kilimani(run_import, tmp_path) -> None:
    gazetteer = tmp_path.parent / "centroids.csv"
    gazetteer.write_text(f"cluster,lat,lon\nKilimani,{KILIMANI[0]},{KILIMANI[1]}\n")
    assert run_import("inc", "--load-gazetteer", str(gazetteer), "--apply").code == 0


def test_clusters_are_geocoded_once_by_canonical_name(db, geocoder, run_import, tmp_path):
    load(run_import, tmp_path, "inc", open_ticket("INC000000000001"), open_ticket("INC000000000002", cluster="QOA"))
    load(run_import, tmp_path, "crq", open_ticket("CRQ000000000001", cluster="Karen", region="NAIROBI"))
    geocoder.places = {"Kilimani, Nairobi": KILIMANI, "Quarry Road, Nairobi": (-1.2795, 36.838),
                       "Karen, Nairobi": (-1.3197, 36.7073)}

    first = run_import("inc", "--geocode-clusters", "--apply")

    assert first.code == 0, first.output
    assert sorted(geocoder.queries) == ["Karen, Nairobi, Kenya", "Kilimani, Nairobi, Kenya",
                                        "Quarry Road, Nairobi, Kenya"]
    assert all(r["countrycodes"] == "ke" and r["format"] == "json" and r["key"] == KEY for r in geocoder.requests)
    assert db.query("SELECT cluster, status, osm_type, osm_id IS NOT NULL FROM tickets.geo_clusters ORDER BY 1") == [
        ("Karen", "ok", "way", True), ("Kilimani", "ok", "way", True), ("Quarry Road", "ok", "way", True)]
    assert db.scalar("SELECT count(*) FROM information_schema.columns WHERE column_name = 'place_id'") == 0
    assert dict(db.query("SELECT ticket_id, geo_source FROM tickets.inc")) == {
        "INC000000000001": "cluster", "INC000000000002": "cluster"}
    assert db.scalar("SELECT geo_source FROM tickets.crq") == "cluster"
    assert "3 requests, 3 found" in first.out and KEY not in first.output

    second = run_import("inc", "--geocode-clusters", "--apply")

    assert second.code == 0
    assert len(geocoder.requests) == 3
    assert "0 requests" in second.out


def test_network_codes_are_stripped_and_a_wrong_town_falls_back_to_the_cluster(db, geocoder, run_import, tmp_path):
    seed_kilimani(run_import, tmp_path)
    load(run_import, tmp_path, "inc",
         open_ticket("INC000000000001", location="Yaya Court, Argwings Kodhek Rd KIL-OLT-014"),
         open_ticket("INC000000000002", location="Baraka Gardens, Lenana Rd [KIL/SPL/3]"),
         open_ticket("INC000000000003", location="Closed Place Rd ODB 4", bucket="closed"),
         open_ticket("INC000000000004", location="Pending Place Rd", is_actionable="false"),
         open_ticket("INC000000000005", location="Feed Place Rd", latitude="-1.3", longitude="36.8"))
    load(run_import, tmp_path, "crq", open_ticket("CRQ000000000001", location="Yaya Court, Argwings Kodhek Rd ODB 9"))
    geocoder.places = {"Yaya Court": NEAR_KILIMANI, "Baraka Gardens": FAR_FROM_KILIMANI}

    outcome = run_import("inc", "--geocode-locations", "--apply")

    assert outcome.code == 0, outcome.output
    assert sorted(geocoder.queries) == ["Baraka Gardens, Lenana Rd, Kilimani, Kenya",
                                        "Yaya Court, Argwings Kodhek Rd, Kilimani, Kenya"]
    assert db.query("SELECT location_key, status, round(distance_km::numeric) FROM tickets.geo_locations ORDER BY 1"
                    ) == [("baraka gardens lenana rd", "rejected", Decimal(43)),
                          ("yaya court argwings kodhek rd", "ok", Decimal(3))]
    placed = dict(db.query("SELECT ticket_id, geo_source FROM tickets.inc"))
    assert placed["INC000000000001"] == "location" and placed["INC000000000002"] == "cluster"
    assert placed["INC000000000005"] == "feed"
    assert db.query("SELECT geo_source, round(latitude::numeric, 4), round(longitude::numeric, 4), "
                    "round(ST_Y(geog::geometry)::numeric, 4) FROM tickets.crq") == [
        ("location", Decimal("-1.2990"), Decimal("36.7600"), Decimal("-1.2990"))]
    assert re.search(r"rejected 'Baraka Gardens, Lenana Rd, Kilimani, Kenya': 4\d\.\d km from the Kilimani centroid",
                     outcome.out)
    assert KEY not in outcome.output

    again = run_import("inc", "--geocode-locations", "--apply")
    assert again.code == 0 and len(geocoder.requests) == 2  # rejected and found are both cached


def test_a_location_whose_cluster_has_no_centroid_gets_the_cluster_first(db, geocoder, run_import, tmp_path):
    load(run_import, tmp_path, "inc", open_ticket("INC000000000001", cluster="PTMP", location="Kware Rd ODB 93"))
    geocoder.places = {"Pipeline, Nairobi": (-1.3183, 36.895), "Kware Rd": (-1.3150, 36.8900)}

    outcome = run_import("inc", "--geocode-locations", "--apply")

    assert outcome.code == 0, outcome.output
    assert geocoder.queries == ["Pipeline, Nairobi, Kenya", "Kware Rd, Pipeline, Kenya"]
    assert db.scalar("SELECT geo_source FROM tickets.inc") == "location"


@pytest.mark.parametrize("budgets", [(3,), (2, 3)], ids=["one-run", "two-runs-same-day"])
def test_the_daily_budget_caps_requests_across_runs(db, geocoder, run_import, tmp_path, monkeypatch, budgets):
    seed_kilimani(run_import, tmp_path)
    load(run_import, tmp_path, "inc", *(open_ticket(f"INC00000000000{n}", location=f"Place {n} Rd")
                                        for n in range(5)))
    for budget in budgets:
        monkeypatch.setenv("GEOCODER_DAILY_BUDGET", str(budget))
        outcome = run_import("inc", "--geocode-locations", "--apply")
        assert outcome.code == 0, outcome.output
        assert "daily budget spent" in outcome.out
        assert len(geocoder.requests) == budget

    final = budgets[-1]
    assert db.scalar("SELECT requests FROM tickets.geocode_budget") == final
    assert db.scalar("SELECT count(*) FROM tickets.geo_locations") == final
    assert f"{5 - final} left for the next provider day" in outcome.out


def test_rate_limits_are_waited_out_and_retried(db, geocoder, run_import, tmp_path):
    load(run_import, tmp_path, "inc", open_ticket("INC000000000001"))
    geocoder.places = {"Kilimani": KILIMANI}
    geocoder.script = [Scripted(429, "Rate Limited Second"), Scripted(429, "Rate Limited Minute"),
                       Scripted(502, "Bad Gateway")]

    outcome = run_import("inc", "--geocode-clusters", "--apply")

    assert outcome.code == 0, outcome.output
    assert len(geocoder.requests) == 4
    assert db.scalar("SELECT status FROM tickets.geo_clusters") == "ok"
    assert db.scalar("SELECT requests FROM tickets.geocode_budget") == 4  # retries count too
    assert SECOND_WINDOW_WAIT_S in geocoder.waits
    assert max(geocoder.waits) >= 60  # a minute window needs a minute to clear


def test_the_daily_limit_of_the_provider_stops_the_day(db, geocoder, run_import, tmp_path):
    load(run_import, tmp_path, "inc", open_ticket("INC000000000001"), open_ticket("INC000000000002", cluster="Karen"))
    geocoder.script = [Scripted(429, "Rate Limited Day")]

    first = run_import("inc", "--geocode-clusters", "--apply")
    second = run_import("inc", "--geocode-clusters", "--apply")

    assert (first.code, second.code) == (0, 0)
    assert len(geocoder.requests) == 1
    assert "daily budget spent: 2 left" in first.out
    assert db.scalar("SELECT exhausted FROM tickets.geocode_budget") is True


def test_a_rejected_key_stops_at_once_with_a_clear_line(db, geocoder, run_import, tmp_path):
    load(run_import, tmp_path, "inc", open_ticket("INC000000000001"), open_ticket("INC000000000002", cluster="Karen"))
    geocoder.script = [Scripted(401, "Invalid key")]

    outcome = run_import("inc", "--geocode-clusters", "--apply")

    assert outcome.code == 1
    assert len(geocoder.requests) == 1
    assert outcome.err.strip().splitlines()[-1] == (
        f"geocode: error: 127.0.0.1:{geocoder.server.server_address[1]} rejected the API key (HTTP 401): "
        "check GEOCODER_API_KEY; nothing more will be asked")
    assert KEY not in outcome.output


def test_timeouts_in_a_row_stop_the_run_and_blame_the_provider_not_the_place(db, geocoder, run_import, tmp_path,
                                                                             monkeypatch):
    monkeypatch.setenv("GEOCODER_TIMEOUT", "0.2")
    load(run_import, tmp_path, "inc", open_ticket("INC000000000001"))
    geocoder.places = {"Kilimani": KILIMANI}
    geocoder.script = [Scripted(delay_s=0.6) for _ in range(3)]

    outcome = run_import("inc", "--geocode-clusters", "--apply")

    assert outcome.code == 1
    assert len(geocoder.requests) == 3
    assert "no answer within 0.2 s on 3 requests in a row; stopped asking" in outcome.err
    assert db.scalar("SELECT requests FROM tickets.geocode_budget") == 3  # each was sent, so each counts
    assert db.scalar("SELECT count(*) FROM tickets.geo_clusters") == 0  # not cached as the place's fault
    assert KEY not in outcome.output

    again = run_import("inc", "--geocode-clusters", "--apply")
    assert again.code == 0 and len(geocoder.requests) == 4  # asked again next run, and found
    assert db.scalar("SELECT status FROM tickets.geo_clusters") == "ok"


def test_nominatims_empty_list_is_a_cached_miss(db, geocoder, run_import, tmp_path):
    geocoder.empty_list_for_misses = True
    load(run_import, tmp_path, "inc", open_ticket("INC000000000001", cluster="Atlantis"))

    assert run_import("inc", "--geocode-clusters", "--apply").code == 0
    assert run_import("inc", "--geocode-clusters", "--apply").code == 0

    assert db.query("SELECT cluster, status FROM tickets.geo_clusters") == [("Atlantis", "not_found")]
    assert len(geocoder.requests) == 1


def test_without_apply_it_says_what_it_would_ask_and_needs_no_key(db, geocoder, run_import, tmp_path, monkeypatch):
    seed_kilimani(run_import, tmp_path)
    monkeypatch.delenv("GEOCODER_API_KEY")
    load(run_import, tmp_path, "inc", open_ticket("INC000000000001", location="Yaya Court, Argwings Kodhek Rd ODB 1"),
         open_ticket("INC000000000002", cluster="Karen"))

    outcome = run_import("inc", "--geocode-locations")

    assert outcome.code == 0, outcome.output
    assert "would ask 'Karen, Nairobi, Kenya'" in outcome.out
    assert "would ask 'Yaya Court, Argwings Kodhek Rd, Kilimani, Kenya'" in outcome.out
    assert geocoder.requests == []
    assert db.scalar("SELECT count(*) FROM tickets.geo_locations") == 0
    assert db.scalar("SELECT count(*) FROM tickets.geocode_budget") == 0

    with_apply = run_import("inc", "--geocode-locations", "--apply")
    assert with_apply.code == 1
    assert with_apply.err.strip() == ("geocode: error: missing GEOCODER_API_KEY: set it to the LocationIQ API key "
                                      "(geocoding only; the ingest never needs it)")


def test_a_bad_gazetteer_file_is_refused_naming_the_line(db, run_import, tmp_path):
    bad = tmp_path / "centroids.csv"
    bad.write_text("cluster,lat,lon\nKilimani,-1.28,36.78\nKaren,north,36.7\n")

    outcome = run_import("inc", "--load-gazetteer", str(bad), "--apply")

    assert outcome.code == 1
    assert f"{bad}: line 3: lat/lon must be decimal degrees" in outcome.err
    assert db.scalar("SELECT count(*) FROM tickets.geo_clusters") == 0


def test_loading_the_same_gazetteer_twice_changes_nothing(db, run_import, tmp_path):
    load(run_import, tmp_path, "inc", open_ticket("INC000000000001", cluster="QOA"))
    seed = tmp_path.parent / "seed.csv"
    seed.write_text("cluster,lat,lon\nQuarry Road,-1.2795,36.838\nKaren,-1.3197,36.7073\n")

    first = run_import("inc", "--load-gazetteer", str(seed), "--apply")
    second = run_import("inc", "--load-gazetteer", str(seed), "--apply")

    assert "2 new or changed, 1 tickets placed" in first.out
    assert "0 new or changed, 0 tickets placed" in second.out
    assert db.query("SELECT cluster, status, source FROM tickets.geo_clusters ORDER BY 1") == [
        ("Karen", "ok", "seed"), ("Quarry Road", "ok", "seed")]
    assert db.scalar("SELECT geo_source FROM tickets.inc") == "cluster"


def test_results_paid_for_are_kept_when_the_run_then_fails(db, geocoder, run_import, tmp_path):
    load(run_import, tmp_path, "inc", open_ticket("INC000000000001", cluster="Karen"),
         open_ticket("INC000000000002", cluster="Kilimani"))
    geocoder.places = {"Karen": (-1.3197, 36.7073)}
    geocoder.script = [Scripted(), Scripted(403, "Forbidden")]  # clusters are asked in name order

    outcome = run_import("inc", "--geocode-clusters", "--apply")

    assert outcome.code == 1
    assert db.query("SELECT cluster, status FROM tickets.geo_clusters") == [("Karen", "ok")]
    assert db.scalar("SELECT requests FROM tickets.geocode_budget") == 2


def test_the_retry_schedule_the_implementation_record_states_is_what_a_failing_provider_meets(
        db, geocoder, run_import, tmp_path, monkeypatch):
    record = (ROOT / "docs" / "implementation.md").read_text()
    stated = re.search(r"5xx, timeouts and connection failures: wait ([0-9, ]+) s and retry,\s+(\d+) attempts in "
                       r"all, then cache as `error`", record)
    windows = re.search(r"wait (\d+) s \(second window\) or (\d+) s \(minute window\)", record)
    assert stated and windows, "docs/implementation.md no longer states the geocoder's retry schedule"
    waits, attempts = [float(w) for w in stated[1].split(",")], int(stated[2])
    monkeypatch.setenv("GEOCODER_MAX_FAILURES", str(attempts + 1))
    load(run_import, tmp_path, "inc", open_ticket("INC000000000001"))
    geocoder.script = [Scripted(503, "Service Unavailable") for _ in range(attempts)]

    failed = run_import("inc", "--geocode-clusters", "--apply")

    assert failed.code == 1 and f"server error HTTP 503 after {attempts} attempts" in failed.err
    assert len(geocoder.requests) == attempts
    assert geocoder.waits == waits
    assert db.scalar("SELECT status FROM tickets.geo_clusters") == "error"

    geocoder.waits.clear()
    geocoder.places = {"Karen": KILIMANI}
    load(run_import, tmp_path, "inc", open_ticket("INC000000000002", cluster="Karen"))
    geocoder.script = [Scripted(429, "Rate Limited Second"), Scripted(429, "Rate Limited Minute")]
    assert run_import("inc", "--geocode-clusters", "--apply").code == 0
    assert geocoder.waits == [float(windows[1]), float(windows[2])]

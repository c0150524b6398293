"""The reporting read API on tickets loaded through the ingest: open-SLA view, dashboard, breakdowns."""

from __future__ import annotations

import datetime as dt
import json
import re
import statistics
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path

import psycopg
import pytest

from support.streamdata import csv_text, ticket_fields

EAT = dt.timezone(dt.timedelta(hours=3))
NOW = dt.datetime(2026, 11, 21, 12, 0, tzinfo=EAT)
CLUSTERS = ["Kilimani", "QOA", "Karen", "PTMP"]
OWNERS = ["jwanjiru", "", "aotieno"]
TEAMS = ["FieldOps Nairobi West", "Splicing Team A", ""]


def eat(hours_before_now: float) -> str:
    return (NOW - dt.timedelta(hours=hours_before_now)).strftime("%Y-%m-%d %H:%M:%S")


# Each dataset's SLA rule as the migrations set it: start columns in order, target.
INC_RULE = (("created_at_service", "first_seen_at"), dt.timedelta(hours=24))
CRQ_RULE = (("scheduled_at", "created_at_service", "first_seen_at"), dt.timedelta(hours=72))


def generated_tickets(prefix: str = "INC") -> list[dict[str, str]]:
    """Forty tickets covering open/closed, every SLA start, every window and the alias codes."""
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
            # Installations are scheduled from 100 hours ago to 95 hours ahead; some never are.
            "scheduled_at": "" if n % 5 == 0 else eat(100 - 5 * n),
        }
        rows.append(ticket_fields(f"{prefix}{n:012d}", **fields))
    return rows


@pytest.fixture
def loaded(db, run_import, tmp_path):
    rows = generated_tickets()
    path = tmp_path / "2026-11-21T11-40-00.csv"
    path.write_text(csv_text(rows))
    assert run_import("inc", "--inc-csv", str(path), "--apply").code == 0
    return rows


def call(db, query: str, params: tuple = (), now: dt.datetime = NOW) -> object:
    with db.connect() as conn:
        conn.execute("SELECT set_config('fleettickets.now', %s, false)", (now.isoformat(),))
        return conn.execute(query, params).fetchone()[0]


@pytest.mark.parametrize(("seconds", "minutes"), [(0, 0), (59, 0), (60, 1), (119, 1), (29 * 60 + 59, 29)])
@pytest.mark.parametrize("function", ["fn_inc_dashboard", "fn_crq_dashboard"])
def test_the_content_lag_is_whole_minutes_floored(db, loaded, function, seconds, minutes):
    """The contract's content_lag_minutes counts whole minutes since the newest content: 59 s is 0, never 1."""
    newest = NOW - dt.timedelta(minutes=30)  # every generated ticket was updated then
    if function == "fn_crq_dashboard":
        db.execute("INSERT INTO tickets.crq (ticket_id, raw) "
                   "SELECT 'CRQ' || substr(ticket_id, 4), raw FROM tickets.inc")

    payload = call(db, f"SELECT reporting.{function}()", now=newest + dt.timedelta(seconds=seconds))

    assert payload["freshness"]["content_lag_minutes"] == minutes


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


def sla_start(row: dict[str, str], rule=INC_RULE) -> tuple[dt.datetime | None, str | None]:
    """The first of the rule's start columns the ticket has, and which one."""
    for column in rule[0]:
        if row[column]:
            return parse(row[column]), column
    return None, None


def expected_metrics(rows, cluster=None, status=None, since=NOW - dt.timedelta(hours=24), until=NOW,
                     rule=INC_RULE) -> dict:
    """The dashboard's numbers, computed here from the generated rows."""
    def matches(row):
        return ((cluster is None or cluster.lower() in (row["cluster"].lower(), canonical(row["cluster"]).lower()))
                and (status is None or row["normalized_status"] == status))

    opened = [r for r in rows if r["bucket"] == "open" and matches(r)]
    starts = [sla_start(r, rule)[0] for r in opened]
    closed = [r for r in rows if r["closed_at"] and matches(r) and since <= parse(r["closed_at"]) <= until]
    mttrs = [int(Decimal(r["mttr"]).quantize(Decimal(1), ROUND_HALF_UP)) for r in closed]
    return {
        "open": len(opened),
        "actionable": sum(r["is_actionable"] == "true" for r in opened),
        "breached": sum(1 for s in starts if s and NOW - s > rule[1]),
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


@pytest.mark.parametrize(("start", "end", "counted"), [
    (13, 13, True), (13 + 1 / 3600, 13, True), (13, 13 - 1 / 3600, True),
    (13 - 1 / 3600, 12, False), (14, 13 + 1 / 3600, False),
], ids=["the-instant-itself", "ending-on-it", "starting-on-it", "a-second-after", "a-second-before"])
def test_a_custom_window_counts_a_closure_on_either_end_and_not_a_second_outside(db, loaded, start, end, counted):
    """The contract's custom window is from <= closed_at <= to, both ends inclusive. INC000000000003 closed at
    exactly NOW - 13 h (the generated data's only closure within an hour of it)."""
    since, until = NOW - dt.timedelta(hours=start), NOW - dt.timedelta(hours=end)

    payload = call(db, "SELECT reporting.fn_inc_dashboard(NULL, NULL, 'custom', %s, %s)", (since, until))

    closed = [feature["id"] for feature in payload["closed"]["features"]]
    assert closed == (["INC000000000003"] if counted else [])


@pytest.mark.parametrize(("window", "start", "end", "message"), [
    ("1w", None, None, "p_window must be one of 24h, 7d, 30d, or custom with p_from and p_to (got '1w')"),
    (None, None, None, "p_window must be one of 24h, 7d, 30d, or custom with p_from and p_to (got NULL)"),
    ("custom", NOW, NOW - dt.timedelta(hours=1), "p_window custom needs p_from and p_to with p_from <= p_to"),
    ("custom", None, NOW, "p_window custom needs p_from and p_to with p_from <= p_to"),
])
def test_a_bad_window_is_an_error_saying_what_is_allowed(db, loaded, window, start, end, message):
    with pytest.raises(psycopg.errors.InvalidParameterValue, match=message.replace("(", r"\(").replace(")", r"\)")):
        call(db, "SELECT reporting.fn_inc_dashboard(NULL, NULL, %s, %s, %s)", (window, start, end))


HUGE = "x" * 1_048_576


@pytest.mark.parametrize(("query", "argument"), [
    ("SELECT reporting.fn_inc_dashboard(NULL, NULL, %s, NULL, NULL)", "p_window"),
    ("SELECT reporting.fn_nearest_open_tickets(-1.29, 36.78, 5, 10, %s)", "p_dataset"),
    ("SELECT tickets.capture_history(%s)", "dataset"),
    ("SELECT reporting.fn_map_changes(%s)", "p_token"),
], ids=["dashboard-window", "nearest-dataset", "capture-dataset", "map-token"])
def test_an_error_quotes_a_short_escaped_prefix_of_what_the_caller_sent(db, query, argument):
    """Finding 7: a refused 1 MB argument made a 1 MB error, and a control character went into it as it came."""
    for sent, quoted in [(HUGE, "'" + "x" * 40 + "' … (1048576 characters)"),
                         ("inc\n\x1b[31mforged\u202e", r"'inc\x0a\x1b[31mforged\u202e'")]:
        with db.connect() as conn:
            try:
                conn.execute(query, (sent,))
            except psycopg.errors.InvalidParameterValue as refused:
                message = refused.diag.message_primary or ""
            else:
                raise AssertionError(f"{query} took {sent[:10]!r} as its {argument}")
        assert message.endswith(f"(got {quoted})"), message
        assert len(message) < 200


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


def shape(value):
    """The keys of a payload in their order, its lists cut to their first item, values dropped."""
    if isinstance(value, dict):
        return [(key, shape(item)) for key, item in value.items()]
    if isinstance(value, list):
        return [shape(value[0])] if value else []
    return None


def shortened_like(real: dict, example: dict) -> dict:
    """The real payload with each feature list cut to as many features as the example shows."""
    return {key: {**value, "features": value["features"][:len(example[key]["features"])]}
            if isinstance(value, dict) and "features" in value else value for key, value in real.items()}


def documented_example() -> dict:
    doc = (Path(__file__).resolve().parents[2] / "docs" / "dashboard-api-contract.md").read_text()
    return json.loads(re.search(r"\*\*Example payload\*\*.*?```json\n(.*?)\n```", doc, re.S).group(1))


def test_the_documented_example_has_the_shape_of_a_real_payload(db, loaded):
    example = documented_example()
    db.execute("INSERT INTO tickets.geo_clusters (cluster, lat, lon, status) VALUES ('Kilimani', -1.29, 36.78, 'ok')")
    db.execute("SELECT tickets.resolve_ticket_geoms()")
    real = call(db, "SELECT reporting.fn_inc_dashboard('Kilimani', NULL, '7d', NULL, NULL)")
    assert shape(example) == shape(real)
    # Key for key in the order the function returns them: the example is a real payload, its lists shortened
    # (and the wall-clock end of the test's ingest run shown as a time of that day).
    assert real["freshness"]["last_success_at"] is not None
    real["freshness"]["last_success_at"] = example["freshness"]["last_success_at"]
    assert json.dumps(example, indent=2) == json.dumps(shortened_like(real, example), indent=2)


def test_the_crq_payload_has_the_documented_shape(db, loaded_crq):
    db.execute("INSERT INTO tickets.geo_clusters (cluster, lat, lon, status) VALUES ('Kilimani', -1.29, 36.78, 'ok')")
    db.execute("SELECT tickets.resolve_ticket_geoms()")
    real = call(db, "SELECT reporting.fn_crq_dashboard('Kilimani', NULL, '7d', NULL, NULL)")
    assert shape(documented_example()) == shape(real)


@pytest.fixture
def loaded_crq(db, run_import, tmp_path):
    rows = generated_tickets("CRQ")
    path = tmp_path / "2026-11-21T11-40-00.csv"
    path.write_text(csv_text(rows))
    assert run_import("crq", "--crq-csv", str(path), "--apply").code == 0
    return rows


def expected_open_sla(rows, rule) -> dict[str, list]:
    """ticket_id -> [start source, age in minutes, breached] for every open ticket, by `rule`."""
    expected = {}
    for row in rows:
        if row["bucket"] == "open":
            start, source = sla_start(row, rule)
            age = (NOW - start) // dt.timedelta(minutes=1) if start else None
            expected[row["ticket_id"]] = [source, age, NOW - start > rule[1] if start else None]
    return expected


def open_sla_view(db, view: str) -> dict[str, list]:
    return {row[0]: row[1:] for row in call(db, f"""
        SELECT jsonb_agg(jsonb_build_array(ticket_id, sla_start_source, age_minutes, sla_breached))
        FROM tickets.{view}""")}


def test_crq_open_sla_holds_the_open_crq_tickets_by_the_crq_rule_and_follows_an_update(db, loaded, loaded_crq):
    expected = expected_open_sla(loaded_crq, CRQ_RULE)
    assert {source for source, _age, _breached in expected.values()} == {
        "scheduled_at", "created_at_service", "first_seen_at", None}  # the data exercises every step of the rule
    assert open_sla_view(db, "crq_open_sla") == expected
    assert open_sla_view(db, "inc_open_sla") == expected_open_sla(loaded, INC_RULE)  # INC's rule is untouched

    db.execute("UPDATE tickets.sla_settings SET start_columns = '{first_seen_at,created_at_service}', "
               "target = interval '10 hours' WHERE dataset = 'crq'")
    changed = (("first_seen_at", "created_at_service"), dt.timedelta(hours=10))
    assert open_sla_view(db, "crq_open_sla") == expected_open_sla(loaded_crq, changed) != expected
    assert open_sla_view(db, "inc_open_sla") == expected_open_sla(loaded, INC_RULE)


def test_crq_views_have_the_columns_of_inc_views(db):
    def columns(view: str) -> list[tuple]:
        return db.query("SELECT column_name, data_type FROM information_schema.columns "
                        "WHERE table_schema = 'tickets' AND table_name = %s ORDER BY ordinal_position", (view,))
    for inc, crq in (("inc_open_sla", "crq_open_sla"), ("inc_closed", "crq_closed"),
                     ("inc_daily_snapshot", "crq_daily_snapshot")):
        assert columns(inc) == columns(crq) and columns(inc)


@pytest.mark.parametrize("columns", ["{closed_at}", "{}", "{scheduled_at,NULL}", "{{scheduled_at}}"])
def test_an_sla_rule_naming_no_known_start_column_is_refused(db, columns):
    with pytest.raises(psycopg.errors.CheckViolation, match="sla_settings_start_columns_known"):
        db.execute("UPDATE tickets.sla_settings SET start_columns = %s WHERE dataset = 'crq'", (columns,))


@pytest.mark.parametrize(("cluster", "status", "window", "since"), [
    (None, None, "24h", dt.timedelta(hours=24)),
    (None, None, "30d", dt.timedelta(days=30)),
    ("QOA", None, "7d", dt.timedelta(days=7)),
    ("kilimani", "pending", "30d", dt.timedelta(days=30)),
], ids=["all-24h", "all-30d", "alias-code", "cluster-and-status"])
def test_crq_dashboard_metrics_equal_an_independent_computation(db, loaded, loaded_crq, cluster, status, window,
                                                                 since):
    payload = call(db, "SELECT reporting.fn_crq_dashboard(%s, %s, %s, NULL, NULL)", (cluster, status, window))
    expected = expected_metrics(loaded_crq, cluster, status, NOW - since, rule=CRQ_RULE)
    assert {k: payload["metrics"][k] for k in expected} == expected
    assert {f["id"] for f in payload["open"]["features"]} == {
        r["ticket_id"] for r in loaded_crq if r["bucket"] == "open"
        and (cluster is None or cluster.lower() in (r["cluster"].lower(), canonical(r["cluster"]).lower()))
        and (status is None or r["normalized_status"] == status)}
    assert len(payload["closed"]["features"]) == expected["closed_in_window"]
    assert payload["freshness"]["content_lag_minutes"] == 30
    for breakdown in ("by_owner", "by_team"):
        assert sum(g["closed_in_window"] for g in payload[breakdown]) == expected["closed_in_window"]


@pytest.mark.parametrize(("window", "start", "end"), [
    ("1w", None, None), (None, None, None), ("custom", NOW, NOW - dt.timedelta(hours=1)), ("custom", None, NOW)])
def test_crq_dashboard_rejects_what_inc_rejects_with_the_same_error(db, window, start, end):
    errors = []
    for function in ("fn_inc_dashboard", "fn_crq_dashboard"):
        with pytest.raises(psycopg.errors.InvalidParameterValue) as caught:
            call(db, f"SELECT reporting.{function}(NULL, NULL, %s, %s, %s)", (window, start, end))
        errors.append(caught.value.diag.message_primary)
    assert errors[0] == errors[1] and errors[0].startswith("p_window")


def test_a_closure_counts_for_the_team_and_owner_that_closed_it(db, run_import, tmp_path):
    def load(stamp: str, team: str, owner: str, updated: float, status: str, closed: float) -> None:
        row = ticket_fields("INC000000000001", normalized_status=status, bucket="closed", is_actionable="false",
                            cluster="Karen", assigned_team=team, owner=owner, closed_at=eat(closed), mttr="60",
                            source_updated_at=eat(updated))
        path = tmp_path / f"{stamp}.csv"
        path.write_text(csv_text([row]))
        assert run_import("inc", "--inc-csv", str(path), "--apply").code == 0  # each run captures history

    load("2026-11-21T07-00-00", "Splicing Team A", "aotieno", 4, "resolved", 5)  # resolved while team A held it
    # Then closed by the desk and reassigned, its closed_at moved: still the same episode, still A's closure.
    load("2026-11-21T08-00-00", "NOC Tier 2", "jwanjiru", 3, "closed", 3.5)
    # A closure no capture has seen (written behind the ingest's back) counts for its current team.
    db.execute("INSERT INTO tickets.inc (ticket_id, raw) VALUES ('INC000000000002', %s)",
               (psycopg.types.json.Jsonb({"bucket": "closed", "normalized_status": "closed", "cluster": "Karen",
                                          "assigned_team": "NOC Tier 2", "closed_at": eat(6), "mttr": "30"}),))

    payload = call(db, "SELECT reporting.fn_inc_dashboard(NULL, NULL, '24h', NULL, NULL)")
    closed_by = {g["name"]: g["closed_in_window"] for g in payload["by_team"]}
    assert closed_by == {"Splicing Team A": 1, "NOC Tier 2": 1}
    assert {g["name"]: g["closed_in_window"] for g in payload["by_owner"]} == {"aotieno": 1, "unassigned": 1}
    # The features still show who holds each ticket now.
    assert {f["properties"]["assigned_team"] for f in payload["closed"]["features"]} == {"NOC Tier 2"}


def test_a_closure_of_an_episode_no_capture_has_seen_counts_for_its_current_team(db, run_import, tmp_path):
    """Closed by A and captured, reopened to B and captured, closed by B before the next capture: B's closure."""
    def load(stamp: str, team: str, updated: float, bucket: str) -> None:
        row = ticket_fields("INC000000000001", normalized_status="closed" if bucket == "closed" else "assigned",
                            bucket=bucket, is_actionable="true", cluster="Karen", assigned_team=team,
                            closed_at=eat(updated) if bucket == "closed" else "", mttr="60",
                            source_updated_at=eat(updated))
        path = tmp_path / f"{stamp}.csv"
        path.write_text(csv_text([row]))
        assert run_import("inc", "--inc-csv", str(path), "--apply").code == 0  # each run captures history

    load("2026-11-21T07-00-00", "Team A", 5, "closed")
    load("2026-11-21T08-00-00", "Team B", 4, "open")
    # Closed by B, written behind the ingest's back: no capture has seen this episode yet.
    db.execute("""UPDATE tickets.inc SET raw = raw || jsonb_build_object('bucket', 'closed', 'normalized_status',
                  'closed', 'closed_at', %s::text) WHERE ticket_id = 'INC000000000001'""", (eat(3),))

    payload = call(db, "SELECT reporting.fn_inc_dashboard(NULL, NULL, '24h', NULL, NULL)")

    assert {g["name"]: g["closed_in_window"] for g in payload["by_team"]} == {"Team B": 1}


def test_minutes_since_success_is_measured_from_the_pinned_clock(db, loaded):
    db.execute("UPDATE tickets.import_meta SET metadata = metadata || "
               "'{\"last_success_at\": \"2026-11-21T10:00:00+03:00\"}' WHERE dataset = 'inc'")
    with db.connect() as conn:
        conn.execute("SET fleettickets.now = '2026-11-21 12:30+03'")
        payload = conn.execute("SELECT reporting.fn_tickets_for_map()").fetchone()[0]
    assert payload["summary"]["freshness"]["inc"]["minutes_since_success"] == 150


def test_the_originals_capture_history_call_still_works_and_is_incs(db, run_import, tmp_path):
    path = tmp_path / "2026-11-21T07-00-00.csv"
    path.write_text(csv_text([ticket_fields("INC000000000001", bucket="closed", closed_at=eat(5))]))
    assert run_import("inc", "--inc-csv", str(path), "--apply").code == 0
    with db.connect() as conn:
        conn.execute("SET fleettickets.now = '2026-11-22 18:00+03'")
        original = conn.execute("SELECT tickets.capture_history()").fetchone()[0]
        conn.execute("DELETE FROM tickets.daily_snapshot")
        by_dataset = conn.execute("SELECT tickets.capture_history('inc')").fetchone()[0]
    assert original == by_dataset and original["snapshot_rows"] > 0

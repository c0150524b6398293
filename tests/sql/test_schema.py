"""The migrated schema: typed columns follow raw, geom resolution, the map function."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import psycopg
import pytest
from psycopg.types.json import Jsonb

from fleettickets import locks

UTC = dt.UTC

SAMPLE_ROW = {
    "ticket_id": "INC000017000001",
    "raw_status": "CLOSED",
    "normalized_status": "closed",
    "bucket": "closed",
    "is_actionable": "false",
    "cluster": "Kilimani",
    "region": "nairobi",
    "location_name": "Baraka Gardens, Lenana Rd FDH-KIL-16",
    "assigned_team": "FieldOps Nairobi West",
    "owner": "mnjoroge",
    "sla_status": "Within SLA",
    "mttr": "63.5",
    "created_at_service": "2026-11-20 04:43:00",
    "scheduled_at": None,
    "closed_at": "2026-11-20T05:46:00",
    "first_seen_at": "2026-11-20 05:56:00.123",
    "last_seen_at": "2026-11-20 06:00:00",
    "source_created_at": "2026-11-20 05:53:00",
    "source_updated_at": "2026-11-20 05:46:00.250001",
    "latitude": None,
    "longitude": None,
    "service_type": "FTTH",
    "is_alarm": "false",
    "is_auto_created": "false",
    "is_auto_closed": "false",
}


def insert(db, table: str, raw: dict) -> None:
    db.query(f"INSERT INTO tickets.{table} (ticket_id, raw) VALUES (%s, %s) RETURNING 1",
             (raw["ticket_id"], Jsonb(raw)))


@pytest.mark.parametrize("table", ["inc", "crq"])
def test_plain_insert_fills_every_typed_column(db, table):
    insert(db, table, SAMPLE_ROW)
    row = db.query(f"""SELECT normalized_status, raw_status, bucket, cluster, region, location_name,
                              assigned_team, owner, sla_status, mttr, is_actionable,
                              created_at_service, scheduled_at, closed_at, first_seen_at, last_seen_at,
                              source_created_at, source_updated_at, ingested_at IS NOT NULL
                       FROM tickets.{table}""")[0]
    assert row == (
        "closed", "CLOSED", "closed", "Kilimani", "nairobi", "Baraka Gardens, Lenana Rd FDH-KIL-16",
        "FieldOps Nairobi West", "mnjoroge", "Within SLA", 64, False,
        dt.datetime(2026, 11, 20, 1, 43, tzinfo=UTC), None, dt.datetime(2026, 11, 20, 2, 46, tzinfo=UTC),
        dt.datetime(2026, 11, 20, 2, 56, 0, 123000, tzinfo=UTC), dt.datetime(2026, 11, 20, 3, 0, tzinfo=UTC),
        dt.datetime(2026, 11, 20, 2, 53, tzinfo=UTC), dt.datetime(2026, 11, 20, 2, 46, 0, 250001, tzinfo=UTC),
        True,
    )


@pytest.mark.parametrize(("text", "expected"), [
    ("2026-11-20 06:00:00", dt.datetime(2026, 11, 20, 3, 0, tzinfo=UTC)),
    ("2026-11-20T06:00:00", dt.datetime(2026, 11, 20, 3, 0, tzinfo=UTC)),
    ("2026-11-20 06:00:00.123", dt.datetime(2026, 11, 20, 3, 0, 0, 123000, tzinfo=UTC)),
    ("2026-11-20 06:00:00.123456", dt.datetime(2026, 11, 20, 3, 0, 0, 123456, tzinfo=UTC)),
    ("2026-11-20 06:00:00.1234567", dt.datetime(2026, 11, 20, 3, 0, 0, 123456, tzinfo=UTC)),  # datetime2: cut
    ("2026-11-20T23:59:59.999999999", dt.datetime(2026, 11, 20, 20, 59, 59, 999999, tzinfo=UTC)),  # not rounded up
    ("2026-11-20 06:00:00.1234567890", None),
    ("2026-11-20 01:30:00", dt.datetime(2026, 11, 19, 22, 30, tzinfo=UTC)),
    ("2024-02-29 12:00:00", dt.datetime(2024, 2, 29, 9, 0, tzinfo=UTC)),
    ("2026-02-29 12:00:00", None),
    ("2026-04-31 12:00:00", None),
    ("2026-13-01 00:00:00", None),
    ("2026-11-20 24:00:00", None),
    ("2026-11-20", None),
    ("20/11/2026 06:00", None),
    ("not a date", None),
    ("", None),
    ("2026-11-20 06:00:00+03", None),
], ids=lambda v: repr(v) if isinstance(v, str) else None)
def test_eat_ts_reads_eat_wall_clock_and_never_errors(db, text, expected):
    assert db.scalar("SELECT tickets.eat_ts(%s)", (text,)) == expected


def test_garbage_values_become_null_without_failing_the_insert(db):
    garbage = dict(SAMPLE_ROW, mttr="n/a", is_actionable="maybe", closed_at="yesterday",
                   source_updated_at="2026-11-31 25:00:00", latitude="north", longitude="1e999")
    insert(db, "inc", garbage)
    assert db.query("SELECT mttr, is_actionable, closed_at, source_updated_at, latitude, geom FROM tickets.inc") == [
        (None, None, None, None, None, None)]


@pytest.mark.parametrize(("spelling", "expected"), [
    ("true", True), ("True", True), ("TRUE", True), ("t", True), ("1", True),
    ("false", False), ("FALSE", False), ("f", False), ("0", False), ("yes", None), (None, None),
])
def test_booleans_accept_every_spelling_of_the_contract(db, spelling, expected):
    assert db.scalar("SELECT tickets.to_bool(%s)", (spelling,)) is expected


@pytest.mark.parametrize(("mttr", "minutes"), [("1342.5", 1343), ("1342.4", 1342), ("0", 0), ("12", 12), (None, None)])
def test_mttr_is_whole_minutes(db, mttr, minutes):
    insert(db, "inc", dict(SAMPLE_ROW, mttr=mttr))
    assert db.scalar("SELECT mttr FROM tickets.inc") == minutes
    assert db.scalar("SELECT pg_typeof(mttr)::text FROM tickets.inc") == "integer"


def test_constant_columns_are_gone_but_stay_in_raw(db):
    columns = {r[0] for r in db.query(
        "SELECT column_name FROM information_schema.columns WHERE table_schema='tickets' AND table_name='inc'")}
    assert not columns & {"is_alarm", "is_auto_created", "is_auto_closed", "service_type"}
    insert(db, "inc", SAMPLE_ROW)
    assert db.scalar("SELECT raw->>'service_type' FROM tickets.inc") == "FTTH"


def test_crq_has_exactly_the_typed_columns_and_indexes_of_inc(db):
    def shape(table):
        return db.query("""
            SELECT a.attname, format_type(a.atttypid, a.atttypmod), a.attgenerated, pg_get_expr(d.adbin, d.adrelid)
            FROM pg_attribute a LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
            WHERE a.attrelid = %s::regclass AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attname""",
            (f"tickets.{table}",))

    def indexes(table):
        return sorted(r[0].replace(f"{table}_", "").replace(f"tickets.{table}", "T") for r in db.query(
            "SELECT indexdef FROM pg_indexes WHERE schemaname='tickets' AND tablename=%s", (table,)))

    assert shape("crq") == shape("inc")
    assert indexes("crq") == indexes("inc")
    assert len(indexes("inc")) >= 6


# --- geom resolution --------------------------------------------------------

KILIMANI = (-1.2921, 36.7850)
QUARRY_ROAD = (-1.2750, 36.8400)


def add_cluster(db, cluster, lat, lon, status="ok"):
    db.query("INSERT INTO tickets.geo_clusters (cluster, lat, lon, status) VALUES (%s, %s, %s, %s) RETURNING 1",
             (cluster, lat, lon, status))


def add_location(db, location_name, cluster, lat, lon, status="ok"):
    db.query("""INSERT INTO tickets.geo_locations (location_key, cluster, lat, lon, status)
                VALUES (tickets.location_key(%s), %s, %s, %s, %s) RETURNING 1""",
             (location_name, cluster, lat, lon, status))


def point(db, table="inc", ticket_id=SAMPLE_ROW["ticket_id"]):
    return db.query(f"""SELECT geo_source, round(ST_Y(geom)::numeric, 4), round(ST_X(geom)::numeric, 4),
                               round(latitude::numeric, 4), round(longitude::numeric, 4),
                               round(ST_Y(geog::geometry)::numeric, 4)
                        FROM tickets.{table} WHERE ticket_id = %s""", (ticket_id,))[0]


def test_feed_beats_location_beats_cluster(db):
    add_cluster(db, "Kilimani", *KILIMANI)
    add_location(db, SAMPLE_ROW["location_name"], "Kilimani", -1.2990, 36.7800)

    insert(db, "inc", dict(SAMPLE_ROW, ticket_id="INC000000000001", latitude="-1.3001", longitude="36.7702"))
    insert(db, "inc", dict(SAMPLE_ROW, ticket_id="INC000000000002"))
    insert(db, "inc", dict(SAMPLE_ROW, ticket_id="INC000000000003", location_name="Somewhere Else"))
    insert(db, "inc", dict(SAMPLE_ROW, ticket_id="INC000000000004", cluster="Unknown Town"))

    def d(x):
        return Decimal(str(x))

    assert point(db, ticket_id="INC000000000001") == ("feed", d(-1.3001), d(36.7702), d(-1.3001), d(36.7702),
                                                      d(-1.3001))
    assert point(db, ticket_id="INC000000000002") == ("location", d(-1.299), d(36.78), d(-1.299), d(36.78), d(-1.299))
    assert point(db, ticket_id="INC000000000003") == ("cluster", d(-1.2921), d(36.785), d(-1.2921), d(36.785),
                                                      d(-1.2921))
    assert point(db, ticket_id="INC000000000004") == (None, None, None, None, None, None)


@pytest.mark.parametrize(("lat", "lon"), [("0", "0"), ("36.7856", "-1.2906"), ("-91", "36.78"), ("", "36.78")],
                         ids=["zero", "swapped", "out-of-range", "half-missing"])
def test_unusable_feed_coordinates_count_as_missing(db, lat, lon):
    add_cluster(db, "Kilimani", *KILIMANI)
    insert(db, "inc", dict(SAMPLE_ROW, latitude=lat, longitude=lon))
    source, *_ = point(db)
    assert source == "cluster"
    assert db.scalar("SELECT round(latitude::numeric, 4) FROM tickets.inc") == Decimal("-1.2921")


def test_alias_codes_resolve_to_the_canonical_cluster(db):
    add_cluster(db, "Quarry Road", *QUARRY_ROAD)
    insert(db, "crq", dict(SAMPLE_ROW, ticket_id="CRQ000018000001", cluster="qoa", location_name="Acacia Court"))
    assert point(db, "crq", "CRQ000018000001")[:3] == ("cluster", Decimal("-1.275"), Decimal("36.84"))


def test_resolve_ticket_geoms_picks_up_gazetteers_added_later(db):
    insert(db, "inc", SAMPLE_ROW)
    insert(db, "crq", dict(SAMPLE_ROW, ticket_id="CRQ000018000001", cluster="PTMP", location_name="Kware Rd"))
    assert db.scalar("SELECT tickets.resolve_ticket_geoms()") == 0

    add_cluster(db, "Kilimani", *KILIMANI)
    add_cluster(db, "Pipeline", -1.3140, 36.8990)
    add_cluster(db, "Karen", -1.3190, 36.7070, status="not_found")
    assert db.scalar("SELECT tickets.resolve_ticket_geoms()") == 2
    assert point(db)[0] == "cluster"
    assert point(db, "crq", "CRQ000018000001")[:4] == ("cluster", Decimal("-1.314"), Decimal("36.899"),
                                                       Decimal("-1.314"))

    add_location(db, "Baraka Gardens, Lenana Rd", "Kilimani", -1.2990, 36.7800)
    assert db.scalar("SELECT tickets.resolve_ticket_geoms()") == 1
    assert point(db)[:2] == ("location", Decimal("-1.299"))
    assert db.scalar("SELECT tickets.resolve_ticket_geoms()") == 0


@pytest.mark.parametrize(("location", "key"), [
    ("Yaya Court, Argwings Kodhek Rd KIL-OLT-014", "yaya court argwings kodhek rd"),
    ("Baraka Gardens,  Lenana Rd FDH-KIL-16", "baraka gardens lenana rd"),
    ("Uhuru Estate, Kiserian Rd ODB 9", "uhuru estate kiserian rd"),
    ("Yaya Gardens, Mchumbi Rd [SOU/SPL/6]", "yaya gardens mchumbi rd"),
    ("YAYA GARDENS - MCHUMBI RD.", "yaya gardens mchumbi rd"),
    ("ODB 45", None),
])
def test_location_key_strips_network_codes_and_folds_case(db, location, key):
    assert db.scalar("SELECT tickets.location_key(%s)", (location,)) == key


def test_map_function_returns_geojson_over_both_tables_with_freshness(db):
    add_cluster(db, "Kilimani", *KILIMANI)
    insert(db, "inc", SAMPLE_ROW)
    insert(db, "crq", dict(SAMPLE_ROW, ticket_id="CRQ000018000001", cluster="Nowhere"))
    db.query("""UPDATE tickets.import_meta SET metadata = jsonb_build_object(
                    'source_max_key', 'automations/inc/changes/2026-11-20T06-40-00.csv',
                    'last_success_at', now()::text) WHERE dataset = 'inc' RETURNING 1""")

    payload = db.scalar("SELECT reporting.fn_tickets_for_map()")
    assert db.scalar("SELECT pg_typeof(reporting.fn_tickets_for_map())::text") in {"json", "jsonb"}
    assert payload["type"] == "FeatureCollection"
    by_id = {f["id"]: f for f in payload["features"]}
    assert set(by_id) == {"INC000017000001", "CRQ000018000001"}
    inc, crq = by_id["INC000017000001"], by_id["CRQ000018000001"]
    assert inc["type"] == "Feature" and inc["properties"]["dataset"] == "inc"
    assert inc["geometry"] == {"type": "Point", "coordinates": [36.785, -1.2921]}
    assert crq["properties"]["dataset"] == "crq" and crq["geometry"] is None
    freshness = payload["summary"]["freshness"]
    assert freshness["inc"]["watermark"] == "automations/inc/changes/2026-11-20T06-40-00.csv"
    assert 0 <= float(freshness["inc"]["minutes_since_success"]) < 1
    assert freshness["crq"]["watermark"] is None


def test_everything_works_with_an_empty_search_path_as_in_pg_restore(db):
    add_cluster(db, "Kilimani", *KILIMANI)
    with db.connect() as conn:
        conn.execute("SET search_path = ''")
        conn.execute("INSERT INTO tickets.inc (ticket_id, raw) VALUES (%s, %s)",
                     (SAMPLE_ROW["ticket_id"], Jsonb(SAMPLE_ROW)))
        conn.execute("INSERT INTO tickets.geo_clusters (cluster, lat, lon, status) "
                     "VALUES ('Pipeline', -1.31, 36.9, 'ok')")
        conn.execute("UPDATE tickets.inc SET raw = raw || '{\"cluster\": \"PTMP\"}'")
        assert conn.execute("SELECT tickets.resolve_ticket_geoms()").fetchone()[0] == 0
        assert conn.execute("SELECT geo_source FROM tickets.inc").fetchone()[0] == "cluster"
        assert conn.execute("SELECT reporting.fn_tickets_for_map()").fetchone()[0]["features"][0]["geometry"]


def test_resolve_ticket_geoms_waits_for_a_running_ingest(db):
    with db.connect() as ingest, db.connect() as geocoder:
        ingest.execute("SELECT pg_advisory_lock(%s, %s)", locks.key("inc"))  # an INC run is going on
        geocoder.execute("SET lock_timeout = '300ms'")
        with pytest.raises(psycopg.errors.LockNotAvailable):
            geocoder.execute("SELECT tickets.resolve_ticket_geoms()")
        ingest.execute("SELECT pg_advisory_unlock(%s, %s)", locks.key("inc"))
        assert geocoder.execute("SELECT tickets.resolve_ticket_geoms()").fetchone()[0] == 0

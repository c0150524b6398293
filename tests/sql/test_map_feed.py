"""The live map's change feed (reporting.fn_map_changes): a client that applies each change answer to its first
full answer holds, after every step, exactly what a full call at the same moment returns.

The oracle is the feed's own full answer (no token), computed from scratch by the read layer's views; the model
drives real ingests (the entrypoint, in-process), geocodes (the engine's own statements), closures, an
operator's deletion, the clock and the client's filters, and polls between every two of them.
"""

from __future__ import annotations

import datetime as dt
import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule, run_state_machine_as_test

from fleettickets import geocoding, schema
from support.stack import TestDatabase, create_database, drop_database
from support.streamdata import csv_text, ticket_fields

ROOT = Path(__file__).resolve().parents[2]
EAT = dt.timezone(dt.timedelta(hours=3))
START = dt.datetime(2026, 11, 20, 9, 0, tzinfo=EAT)
TICKETS = {"inc": [f"INC0000000000{n:02d}" for n in range(1, 9)], "crq": [f"CRQ0000000000{n:02d}" for n in range(1, 7)]}
CLUSTERS = ["Kilimani", "Karen", "QOA"]
STATES = {"inc": ["new", "in_progress", "pending", "resolved", "closed"],
          "crq": ["scheduled", "in_progress", "completed", "closed"]}
CLOSED = {"resolved", "closed", "completed"}
# Mostly the whole map, as a field engineer opens it; a filter now and then.
FILTERS = st.fixed_dictionaries({
    "p_dataset": st.sampled_from([None, None, "inc", "crq"]),
    "p_cluster": st.sampled_from([None, None, None, "Kilimani", "Quarry Road"]),
    "p_status": st.sampled_from([None, None, None, "in_progress", "closed"]),
    "p_window": st.sampled_from(["24h", "7d"]),
})


def wall(instant: dt.datetime) -> str:
    return instant.astimezone(EAT).strftime("%Y-%m-%d %H:%M:%S")


def feed(conn: psycopg.Connection, now: dt.datetime, token: str | None, filters: dict) -> dict:
    conn.execute("SELECT set_config('fleettickets.now', %s, false)", (now.isoformat(),))
    return json.loads(conn.execute("SELECT reporting.fn_map_changes(%(token)s, %(p_dataset)s, %(p_cluster)s, "
                                   "%(p_status)s, %(p_window)s)::text", {"token": token, **filters}).fetchone()[0])


@dataclass
class Client:
    """What the contract's example client keeps: the features by id, and the last token."""
    features: dict[str, dict] = field(default_factory=dict)
    token: str | None = None
    full_answers: int = 0

    def apply(self, answer: dict) -> None:
        if answer["full"]:
            self.features = {}
            self.full_answers += 1
        else:
            assert not {f["id"] for f in answer["features"]} & set(answer["left"]), answer
        for gone in answer["left"]:
            self.features.pop(gone, None)
        for feature in answer["features"]:
            self.features[feature["id"]] = feature
        self.token = answer["token"]


def by_id(answer: dict) -> dict[str, dict]:
    return {feature["id"]: feature for feature in answer["features"]}


@pytest.mark.parametrize("seed", [0])
def test_a_client_applying_change_answers_holds_exactly_the_full_map(db, run_import, tmp_path, seed):
    run_feed_machine(db, run_import, tmp_path, examples=10)


@pytest.mark.slow
def test_a_client_applying_change_answers_holds_exactly_the_full_map_at_length(db, run_import, tmp_path):
    run_feed_machine(db, run_import, tmp_path, examples=60)


def run_feed_machine(db: TestDatabase, run_import, tmp_path: Path, examples: int) -> None:
    class FeedMachine(RuleBasedStateMachine):
        @initialize(filters=FILTERS, data=st.data())
        def start(self, filters, data):
            db.execute("TRUNCATE tickets.inc, tickets.crq, tickets.geo_clusters")
            self.conn = psycopg.connect(db.url, autocommit=True)
            self.now = START
            self.versions = 0
            self.filters = filters
            for dataset, ids in TICKETS.items():  # a map to change from the first step on
                self.ingest(dataset, data, ids)
            self.client = Client()
            self.poll()
            assert self.client.full_answers == 1

        def teardown(self):
            if hasattr(self, "conn"):
                self.conn.close()

        def poll(self) -> dict:
            answer = feed(self.conn, self.now, self.client.token, self.filters)
            self.client.apply(answer)
            return answer

        @rule(data=st.data())
        def ingest_inc(self, data):
            self.ingest("inc", data)

        @rule(data=st.data())
        def ingest_crq(self, data):
            self.ingest("crq", data)

        def ingest(self, dataset, data, ids=None):
            ids = ids or data.draw(st.lists(st.sampled_from(TICKETS[dataset]), min_size=1, max_size=4, unique=True))
            rows = []
            for ticket_id in ids:
                self.versions += 1
                state = data.draw(st.sampled_from(STATES[dataset]))
                closed = state in CLOSED
                started = self.now - dt.timedelta(minutes=data.draw(st.integers(0, 60 * 60)))
                closed_at = self.now - dt.timedelta(minutes=data.draw(st.integers(-30, 60 * 30)))
                point = data.draw(st.sampled_from([("", ""), ("-1.290600", "36.785600"), ("-1.3", "36.7")]))
                rows.append(ticket_fields(
                    ticket_id, wall(START + dt.timedelta(minutes=self.versions)),
                    normalized_status=state, bucket="closed" if closed else "open",
                    closed_at=wall(closed_at) if closed else "", mttr="42" if closed else "",
                    cluster=data.draw(st.sampled_from(CLUSTERS)), source_type=dataset.upper(),
                    created_at_service=data.draw(st.sampled_from([wall(started), ""])),
                    owner=data.draw(st.sampled_from(["", "jwanjiru", "okamau"])),
                    latitude=point[0], longitude=point[1]))
            stamp = (START + dt.timedelta(minutes=self.versions)).strftime("%Y-%m-%dT%H-%M-%S")
            path = tmp_path / f"{dataset}-{stamp}.csv"
            path.write_text(csv_text(rows))
            outcome = run_import(dataset, f"--{dataset}-csv", str(path), "--apply")
            assert outcome.code == 0, outcome.output

        @rule(cluster=st.sampled_from(CLUSTERS), lat=st.sampled_from([-1.29, -1.31, -1.35]))
        def geocode(self, cluster, lat):
            with psycopg.connect(db.url, autocommit=True) as conn:
                conn.execute(geocoding.LOAD_SEED, {"cluster": cluster, "lat": lat, "lon": 36.78})
                conn.execute(geocoding.RESOLVE_TICKET_GEOMS)

        @rule(minutes=st.integers(1, 3 * 24 * 60))
        def clock_advances(self, minutes):
            self.now += dt.timedelta(minutes=minutes)

        # Rarer than the rest, as in the field: each resets the map (the filters, or what a row cannot show).
        @rule(act=st.sampled_from([None] * 5 + ["filters", "delete", "rename", "alias"]), filters=FILTERS,
              dataset=st.sampled_from(["inc", "crq"]))
        def the_operator_or_the_client_acts(self, act, filters, dataset):
            if act == "filters" and filters != self.filters:
                self.filters = filters
                assert self.poll()["full"]
            elif act == "delete":
                db.execute(f"DELETE FROM tickets.{dataset} WHERE ticket_id = "
                           f"(SELECT min(ticket_id) FROM tickets.{dataset})")
            elif act == "rename":
                db.execute(f"UPDATE tickets.{dataset} SET ticket_id = ticket_id || '9' WHERE ticket_id = "
                           f"(SELECT max(ticket_id) FROM tickets.{dataset}) AND length(ticket_id) = 15")
            elif act == "alias":
                db.execute("INSERT INTO tickets.cluster_aliases (alias, cluster) VALUES ('Karen', 'Karen Estate') "
                           "ON CONFLICT (alias) DO UPDATE SET cluster = CASE WHEN cluster_aliases.cluster = "
                           "'Karen Estate' THEN 'Karen' ELSE 'Karen Estate' END")

        @invariant()
        def the_client_holds_the_full_map(self):
            if not hasattr(self, "client"):
                return
            self.poll()
            fresh = feed(self.conn, self.now, None, self.filters)
            assert self.client.features == by_id(fresh)

    run_state_machine_as_test(FeedMachine, settings=settings(
        max_examples=examples, stateful_step_count=15, deadline=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow]))


def ingest(run_import, tmp_path: Path, dataset: str, *rows: dict[str, str]) -> None:
    path = tmp_path / f"{dataset}-{len(list(tmp_path.iterdir()))}.csv"
    path.write_text(csv_text(list(rows)))
    outcome = run_import(dataset, f"--{dataset}-csv", str(path), "--apply")
    assert outcome.code == 0, outcome.output


def test_the_clock_alone_sends_a_breach_that_flipped_and_a_closure_that_left_the_window(db, run_import, tmp_path):
    target = db.scalar("SELECT target FROM tickets.sla_settings WHERE dataset = 'inc'")
    started = START - target + dt.timedelta(hours=1)
    ingest(run_import, tmp_path, "inc",
           ticket_fields("INC000000000001", wall(START), created_at_service=wall(started)),
           ticket_fields("INC000000000002", wall(START), normalized_status="closed", bucket="closed",
                         closed_at=wall(START - dt.timedelta(hours=23)), mttr="42"),
           ticket_fields("INC000000000003", wall(START), created_at_service=wall(START)))
    everything = {"p_dataset": None, "p_cluster": None, "p_status": None, "p_window": "24h"}
    with psycopg.connect(db.url, autocommit=True) as conn:
        first = feed(conn, START, None, everything)
        assert {f["id"]: f["properties"]["sla_breached"] for f in first["features"]} == {
            "inc:INC000000000001": False, "inc:INC000000000002": None, "inc:INC000000000003": False}

        later = feed(conn, START + dt.timedelta(hours=2), first["token"], everything)

    assert not later["full"]
    sent = {f["id"]: f for f in later["features"]}
    assert sent.pop("inc:INC000000000001")["properties"]["sla_breached"] is True
    # The contract lets a feature be sent again unchanged (writes in flight when the token was made): on a shared
    # server another database's open transaction holds the horizon back, and the run's writes count as in flight.
    # Anything else sent must be what the client already holds.
    held = {f["id"]: f for f in first["features"]}
    assert all(feature == held[id_] for id_, feature in sent.items()), sent
    assert later["left"] == ["inc:INC000000000002"]


def test_a_token_is_answered_whole_after_a_deploy_or_from_a_later_clock_and_refused_when_not_a_token(db, tmp_path):
    migrations_copy = tmp_path / "migrations"
    shutil.copytree(ROOT / "migrations", migrations_copy)
    everything = {"p_dataset": None, "p_cluster": None, "p_status": None, "p_window": "24h"}
    with psycopg.connect(db.url, autocommit=True) as conn:
        token = feed(conn, START, None, everything)["token"]
        assert not feed(conn, START, token, everything)["full"]
        earlier = feed(conn, START - dt.timedelta(seconds=1), token, everything)
        assert "from later than this call" in earlier["full_because"]
        dashboard = migrations_copy / "read" / "51_reporting.fn_inc_dashboard.sql"
        dashboard.write_text(dashboard.read_text() + "-- a comment changed: the file alone is re-applied\n")
        assert schema.main(["--dir", str(migrations_copy)]) == 0
        assert "reset since" in feed(conn, START, token, everything)["full_because"]
        basis, xid, instant = token.split(".")[1:]
        with pytest.raises(psycopg.errors.InvalidParameterValue, match="p_token must be a token this function"):
            feed(conn, START, token[:-1] + "x", everything)
        with pytest.raises(psycopg.errors.InvalidParameterValue,
                           match=r"p_dataset must be inc, crq, or NULL for both \(got 'INC'\)"):
            feed(conn, START, None, {**everything, "p_dataset": "INC"})
        with pytest.raises(psycopg.errors.InvalidParameterValue, match="p_token must be a token this function"):
            feed(conn, START, f"m1.{basis}.{xid}.{'9' * 20}", everything)  # an instant past any timestamp
        fresh = feed(conn, START, None, everything)["token"]
        basis = fresh.split(".")[1]
        assert feed(conn, START, f"m1.{basis}.3.{instant}", everything)["left"] == []  # from the first id on
        ahead = feed(conn, START, f"m1.{basis}.{'9' * 20}.{instant}", everything)
        assert "from later than this call" in ahead["full_because"]


def test_a_token_is_answered_from_in_a_session_of_other_date_and_time_settings(db):
    """Two phones behind two app servers: a token from one session serves in another, whatever their DateStyle,
    IntervalStyle or TimeZone."""
    everything = {"p_dataset": None, "p_cluster": None, "p_status": None, "p_window": "custom"}
    window = {"p_from": START - dt.timedelta(days=3), "p_to": START}
    call = ("SELECT reporting.fn_map_changes(%(token)s, %(p_dataset)s, %(p_cluster)s, %(p_status)s, %(p_window)s, "
            "%(p_from)s, %(p_to)s)::text")
    with psycopg.connect(db.url, autocommit=True) as first, psycopg.connect(db.url, autocommit=True) as second:
        second.execute("SET DateStyle = 'SQL, DMY'; SET IntervalStyle = 'iso_8601'; SET TimeZone = 'America/Lima'")
        token = json.loads(first.execute(call, {"token": None, **everything, **window}).fetchone()[0])["token"]
        answer = json.loads(second.execute(call, {"token": token, **everything, **window}).fetchone()[0])
    assert (answer["full"], answer["full_because"]) == (False, None)


def test_a_write_committed_after_the_token_by_a_transaction_begun_before_it_is_sent(db, run_import, tmp_path):
    """The order a sequence or a clock would get wrong: a run's transaction takes its id, the client's token is
    made while it is still open, and it commits after; the next answer carries its tickets."""
    ingest(run_import, tmp_path, "inc", ticket_fields("INC000000000001", wall(START)))
    everything = {"p_dataset": None, "p_cluster": None, "p_status": None, "p_window": "24h"}
    with psycopg.connect(db.url) as run, psycopg.connect(db.url, autocommit=True) as client:
        run.execute("UPDATE tickets.inc SET raw = raw || '{\"owner\": \"okamau\"}'")  # begun, not committed
        # Meanwhile a later transaction commits (the other dataset's run): the newest id is now past the open one.
        ingest(run_import, tmp_path, "crq", ticket_fields("CRQ000000000001", wall(START)))
        first = feed(client, START, None, everything)
        assert first["features"][0]["properties"]["owner"] != "okamau"
        run.commit()
        later = feed(client, START, first["token"], everything)
    sent = {f["id"]: f["properties"]["owner"] for f in later["features"]}
    assert sent["inc:INC000000000001"] == "okamau"  # the CRQ may be sent again, unchanged: it was in flight too


def test_a_token_from_another_database_is_answered_whole(db, pg_admin_url):
    """A restore into a new database (pg_restore) brings the same schema and rows under other row versions: a
    client holding a ticket the dump does not have would keep it. Both databases here come from one template."""
    everything = {"p_dataset": None, "p_cluster": None, "p_status": None, "p_window": "24h"}
    restored = create_database(pg_admin_url)
    try:
        with psycopg.connect(db.url, autocommit=True) as conn:
            token = feed(conn, START, None, everything)["token"]
        with psycopg.connect(restored.url, autocommit=True) as conn:
            assert "reset since" in feed(conn, START, token, everything)["full_because"]
    finally:
        drop_database(pg_admin_url, restored.name)


def test_a_token_from_before_a_server_restart_is_answered_whole(db, pg_cluster):
    if pg_cluster is None:
        pytest.skip("the server is DATABASE_URL's, not the session's own")
    everything = {"p_dataset": None, "p_cluster": None, "p_status": None, "p_window": "24h"}
    with psycopg.connect(db.url, autocommit=True) as conn:
        token = feed(conn, START, None, everything)["token"]
    pg_cluster.restart(durable=False)
    with psycopg.connect(db.url, autocommit=True) as conn:
        assert "reset since" in feed(conn, START, token, everything)["full_because"]

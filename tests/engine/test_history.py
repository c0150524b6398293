"""History capture: closure episodes, the daily backlog snapshot, the backlog series."""

from __future__ import annotations

import datetime as dt
import json
import re
from pathlib import Path

import psycopg
import pytest

from support.streamdata import csv_text, ticket_fields

DAY1 = "2026-11-20T18:00:00+03:00"
DAY2 = "2026-11-21T18:00:00+03:00"


def version(ticket_id: str, updated: str, state: str, cluster: str = "QOA") -> dict[str, str]:
    closed = state in {"resolved", "closed"}
    return ticket_fields(ticket_id, updated, normalized_status=state, bucket="closed" if closed else "open",
                         closed_at=updated if closed else "", mttr="42" if closed else "", cluster=cluster,
                         created_at_service="2026-11-20 08:00:00", is_actionable="true")


def load(run_import, tmp_path, stamp: str, *rows) -> None:
    path = tmp_path / f"{stamp}.csv"
    path.write_text(csv_text(list(rows)))
    outcome = run_import("inc", "--inc-csv", str(path), "--apply")
    assert outcome.code == 0, outcome.output


def capture(db, now: str) -> dict:
    with db.connect() as conn:
        conn.execute("SELECT set_config('fleettickets.now', %s, false)", (now,))
        return conn.execute("SELECT tickets.capture_history('inc')").fetchone()[0]


def events(db) -> list[tuple]:
    return db.query("SELECT ticket_id, closed_at FROM tickets.closure_events ORDER BY closed_at, ticket_id")


def test_closures_are_captured_once_and_a_reclose_is_a_new_episode(db, run_import, tmp_path):
    # Each --apply run of the INC ingest captures history itself.
    load(run_import, tmp_path, "2026-11-20T09-00-00",
         version("INC000000000001", "2026-11-20 09:00:00", "closed"),
         version("INC000000000002", "2026-11-20 09:00:00", "in_progress"),
         version("INC000000000003", "2026-11-20 09:00:00", "resolved"))
    assert len(events(db)) == 2                     # the first capture records what is already closed
    assert capture(db, DAY1)["events_added"] == 0   # a rerun adds nothing

    load(run_import, tmp_path, "2026-11-20T10-00-00",
         version("INC000000000003", "2026-11-20 09:30:00", "closed"),       # resolved → closed: same episode
         version("INC000000000001", "2026-11-20 10:00:00", "in_progress"))  # reopened
    assert len(events(db)) == 2
    load(run_import, tmp_path, "2026-11-20T11-00-00", version("INC000000000001", "2026-11-20 11:00:00", "closed"))

    utc = dt.UTC
    assert events(db) == [
        ("INC000000000001", dt.datetime(2026, 11, 20, 6, 0, tzinfo=utc)),
        ("INC000000000003", dt.datetime(2026, 11, 20, 6, 0, tzinfo=utc)),
        ("INC000000000001", dt.datetime(2026, 11, 20, 8, 0, tzinfo=utc)),
    ]
    assert capture(db, DAY1)["events_added"] == 0


def test_closure_events_are_append_only(db, run_import, tmp_path):
    load(run_import, tmp_path, "2026-11-20T09-00-00", version("INC000000000001", "2026-11-20 09:00:00", "closed"))
    capture(db, DAY1)
    for statement in ("DELETE FROM tickets.closure_events", "UPDATE tickets.closure_events SET mttr = 1"):
        try:
            db.execute(statement)
        except Exception as error:
            assert "append-only" in str(error)
        else:
            raise AssertionError(f"{statement} was allowed")


def test_day_rollover_freezes_yesterday_and_the_series_follows_the_loads(db, run_import, tmp_path):
    load(run_import, tmp_path, "2026-11-20T09-00-00",
         version("INC000000000001", "2026-11-20 09:00:00", "new"),
         version("INC000000000002", "2026-11-20 09:00:00", "new", cluster="Karen"),
         version("INC000000000003", "2026-11-20 09:00:00", "closed"))
    capture(db, DAY1)
    day1 = db.query("SELECT * FROM tickets.inc_daily_snapshot WHERE snapshot_date = '2026-11-20' ORDER BY cluster")
    assert [(r[1], r[2], r[5], r[6]) for r in day1] == [
        ("(all)", 2, 3, 1), ("Karen", 1, 1, 0), ("Quarry Road", 1, 2, 1)]

    load(run_import, tmp_path, "2026-11-21T09-00-00",
         version("INC000000000001", "2026-11-21 09:00:00", "closed"),
         version("INC000000000004", "2026-11-21 09:00:00", "new"),
         version("INC000000000005", "2026-11-21 09:00:00", "new"))
    result = capture(db, DAY2)
    capture(db, DAY2)

    assert result["snapshot_date"] == "2026-11-21"
    assert db.query("SELECT * FROM tickets.inc_daily_snapshot WHERE snapshot_date = '2026-11-20' ORDER BY cluster"
                    ) == day1
    series = db.scalar("SELECT reporting.fn_inc_backlog('2026-11-19', '2026-11-22', NULL)")
    assert series["cluster"] == "(all)"
    assert [(p["date"], p["open_backlog"], p["closed"]) for p in series["series"]] == [
        ("2026-11-20", 2, 1), ("2026-11-21", 3, 1)]
    by_code = db.scalar("SELECT reporting.fn_inc_backlog('2026-11-19', '2026-11-22', 'QOA')")
    doc = (Path(__file__).resolve().parents[2] / "docs" / "dashboard-api-contract.md").read_text()
    documented = json.loads(re.search(r"fn_inc_backlog\('2026-11-19'.*?```json\n(.*?)\n```", doc, re.S).group(1))
    assert by_code == documented


def test_the_ingest_captures_history_after_every_applied_run(db, run_import, tmp_path, monkeypatch):
    monkeypatch.setenv("PGOPTIONS", f"-c fleettickets.now={DAY1}")
    load(run_import, tmp_path, "2026-11-20T09-00-00", version("INC000000000001", "2026-11-20 09:00:00", "closed"))
    assert len(events(db)) == 1
    assert db.scalar("SELECT count(*) FROM tickets.inc_daily_snapshot WHERE snapshot_date = '2026-11-20'") == 2

    alone = run_import("inc", "--capture-history", "--apply")
    assert alone.code == 0 and '"events_added": 0' in alone.out


@pytest.mark.parametrize(("now", "day"), [
    ("2026-11-20T20:59:59Z", "2026-11-20"), ("2026-11-20T21:00:00Z", "2026-11-21"),
    ("2026-11-20T23:59:59Z", "2026-11-21"), ("2026-11-21T00:00:00Z", "2026-11-21"),
], ids=["a-second-before-EAT-midnight", "EAT-midnight", "a-second-before-UTC-midnight", "UTC-midnight"])
def test_the_snapshot_day_starts_at_midnight_in_nairobi_not_in_utc(db, now, day):
    """The day of the backlog series is Nairobi's (UTC+3): 21:00 UTC starts it, 00:00 UTC is three hours in."""
    assert capture(db, now)["snapshot_date"] == day


def test_a_capture_over_no_tickets_writes_an_all_zero_total(db):
    assert capture(db, DAY1) == {"events_added": 0, "snapshot_rows": 1, "snapshot_date": "2026-11-20"}
    assert db.query("SELECT cluster, open_backlog, opened, closed FROM tickets.inc_daily_snapshot") == [
        ("(all)", 0, 0, 0)]


def test_a_cluster_keeps_its_row_after_its_backlog_empties(db, run_import, tmp_path):
    load(run_import, tmp_path, "2026-11-20T09-00-00", version("INC000000000001", "2026-11-20 09:00:00", "new",
                                                               cluster="Karen"))
    capture(db, DAY1)
    load(run_import, tmp_path, "2026-11-21T09-00-00", version("INC000000000001", "2026-11-20 10:00:00", "closed",
                                                               cluster="Karen"))
    capture(db, DAY2)
    capture(db, "2026-11-22T18:00:00+03:00")
    series = db.scalar("SELECT reporting.fn_inc_backlog('2026-11-20', '2026-11-22', 'Karen')")["series"]
    assert [(p["date"], p["open_backlog"]) for p in series] == [
        ("2026-11-20", 1), ("2026-11-21", 0), ("2026-11-22", 0)]


def load_crq(run_import, tmp_path, stamp: str, *rows) -> None:
    path = tmp_path / f"{stamp}.csv"
    path.write_text(csv_text(list(rows)))
    outcome = run_import("crq", "--crq-csv", str(path), "--apply")
    assert outcome.code == 0, outcome.output


def test_crq_closures_become_crq_episodes_and_leave_inc_history_alone(db, run_import, tmp_path, monkeypatch):
    monkeypatch.setenv("PGOPTIONS", f"-c fleettickets.now={DAY1}")
    load(run_import, tmp_path, "2026-11-20T09-00-00", version("INC000000000001", "2026-11-20 09:00:00", "closed"))
    inc_before = db.query("SELECT * FROM tickets.closure_events WHERE dataset = 'inc'")
    inc_snapshot = db.query("SELECT * FROM tickets.inc_daily_snapshot")

    load_crq(run_import, tmp_path, "2026-11-20T09-00-00",
             version("CRQ000000000001", "2026-11-20 09:00:00", "closed"),
             version("CRQ000000000002", "2026-11-20 09:00:00", "new", cluster="Karen"),
             # Raised yesterday, scheduled today: CRQ's rule starts its clock today, so it opened today.
             version("CRQ000000000003", "2026-11-20 09:00:00", "new", cluster="Karen")
             | {"created_at_service": "2026-11-19 08:00:00", "scheduled_at": "2026-11-20 10:00:00"},
             # Raised today, scheduled tomorrow: it did not open today.
             version("CRQ000000000004", "2026-11-20 09:00:00", "new", cluster="Karen")
             | {"scheduled_at": "2026-11-21 10:00:00"})
    load_crq(run_import, tmp_path, "2026-11-20T10-00-00",
             version("CRQ000000000001", "2026-11-20 10:00:00", "in_progress"))   # reopened
    load_crq(run_import, tmp_path, "2026-11-20T11-00-00",
             version("CRQ000000000001", "2026-11-20 11:00:00", "closed"))        # closed again: a new episode

    assert db.query("SELECT dataset, ticket_id, closed_at FROM tickets.closure_events WHERE dataset = 'crq' "
                    "ORDER BY event_id") == [
        ("crq", "CRQ000000000001", dt.datetime(2026, 11, 20, 6, 0, tzinfo=dt.UTC)),
        ("crq", "CRQ000000000001", dt.datetime(2026, 11, 20, 8, 0, tzinfo=dt.UTC))]
    assert db.query("SELECT * FROM tickets.closure_events WHERE dataset = 'inc'") == inc_before
    assert db.query("SELECT * FROM tickets.inc_daily_snapshot") == inc_snapshot
    assert db.query("SELECT cluster, open_backlog, opened, closed FROM tickets.crq_daily_snapshot ORDER BY cluster"
                    ) == [("(all)", 3, 3, 1), ("Karen", 3, 2, 0), ("Quarry Road", 0, 1, 1)]
    series = db.scalar("SELECT reporting.fn_crq_backlog('2026-11-19', '2026-11-21', 'PTMP')")
    assert series == {"cluster": "Pipeline", "series": []}
    series = db.scalar("SELECT reporting.fn_crq_backlog('2026-11-19', '2026-11-21', NULL)")
    assert [(p["date"], p["open_backlog"], p["opened"], p["closed"]) for p in series["series"]] == [
        ("2026-11-20", 3, 3, 1)]

    alone = run_import("crq", "--capture-history", "--apply")
    assert alone.code == 0 and alone.out.startswith("crq: history captured") and '"events_added": 0' in alone.out


def test_a_capture_names_a_known_dataset(db):
    with pytest.raises(psycopg.errors.InvalidParameterValue, match="dataset must be inc or crq"):
        db.scalar("SELECT tickets.capture_history('chg')")


def test_a_closure_is_credited_to_the_closer_of_its_own_episode_not_an_earlier_one(db, run_import, tmp_path):
    """Closed by team A, reopened, closed again by team B: the dashboard's closure is B's (the latest episode)."""
    def by(team: str, *args) -> dict[str, str]:
        return {**version(*args), "assigned_team": team}

    load(run_import, tmp_path, "2026-11-20T09-00-00", by("Team A", "INC000000000001", "2026-11-20 09:00:00", "closed"))
    load(run_import, tmp_path, "2026-11-20T10-00-00",
         by("Team B", "INC000000000001", "2026-11-20 10:00:00", "in_progress"))
    load(run_import, tmp_path, "2026-11-20T11-00-00", by("Team B", "INC000000000001", "2026-11-20 11:00:00", "closed"))
    # Reassigned after the closure: still B's, as observed when closed.
    load(run_import, tmp_path, "2026-11-20T12-00-00", {**by("Team C", "INC000000000001", "2026-11-20 11:00:00",
                                                             "closed"), "source_updated_at": "2026-11-20 12:00:00"})

    assert [team for (team,) in db.query("SELECT assigned_team FROM tickets.closure_events ORDER BY event_id")] == \
        ["Team A", "Team B"]
    payload = db.scalar("SELECT reporting.fn_inc_dashboard(NULL, NULL, 'custom', '2026-11-20', '2026-11-21')")
    closed_by = {entry["name"]: entry["closed_in_window"] for entry in payload["by_team"]
                 if entry["closed_in_window"]}
    assert closed_by == {"Team B": 1}


def test_a_clock_stepped_back_between_captures_hides_no_closure(db, run_import, tmp_path):
    """ingested_at and the last capture's time are wall-clock now() of different transactions: after the capture,
    the host's clock steps back ten minutes (NTP), and a ticket closed in the meantime must still be seen."""
    load(run_import, tmp_path, "2026-11-20T09-00-00", version("INC000000000001", "2026-11-20 09:00:00", "assigned"))
    db.execute("UPDATE tickets.history_captures SET last_captured_at = now() + interval '10 minutes'")

    load(run_import, tmp_path, "2026-11-20T10-00-00", version("INC000000000001", "2026-11-20 10:00:00", "closed"))

    assert [ticket for ticket, _ in events(db)] == ["INC000000000001"]

"""Property: any interleaving of arrivals, runs, replays and reseeds converges to the reference state."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from support.oracle import reference_state
from support.stack import reset_stack, table_state
from support.streamdata import changes, csv_text, ticket_fields

TICKETS = [f"INC00000000000{n}" for n in range(5)]
TIMES = ["2026-11-20 06:00:00", "2026-11-20 06:00:00.5", "2026-11-20 06:05:00", "garbage", ""]

rows = st.builds(
    lambda ticket, time, alarm, status: ticket_fields(ticket, time, is_alarm=alarm, raw_status=status),
    st.sampled_from(TICKETS), st.sampled_from(TIMES), st.sampled_from(["false", "false", "TRUE", "1"]),
    st.text(alphabet="ABCXYZ", min_size=1, max_size=4),
)
files = st.lists(st.lists(rows, min_size=0, max_size=6), min_size=2, max_size=5)
# After each arrival: run or not, and now and then replay an earlier file or reseed everything.
afterwards = st.sampled_from(["run", "run", "wait", "replay", "reseed"])


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_any_interleaving_converges_to_the_reference_state(db, bucket, s3_server, run_import, monkeypatch, data):
    converge(db, bucket, s3_server, run_import, monkeypatch, data)


@pytest.mark.slow
@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_any_interleaving_converges_to_the_reference_state_many_times(db, bucket, s3_server, run_import, monkeypatch,
                                                                      data):
    converge(db, bucket, s3_server, run_import, monkeypatch, data)


def converge(db, bucket, s3_server, run_import, monkeypatch, data) -> None:
    reset_stack(db, bucket, s3_server)
    # Waiting files are applied in batches of this many (1: each alone), a ticket written once per batch.
    monkeypatch.setenv("FLEETTICKETS_BATCH_FILES", str(data.draw(st.integers(min_value=1, max_value=5),
                                                                  label="batch size")))
    contents = data.draw(files, label="files")
    named = [(f"2026-11-20T06-{10 * i:02d}-00.csv", csv_text(rows).encode()) for i, rows in enumerate(contents)]

    def put(index: int) -> None:
        name, content = named[index]
        bucket.put(changes("inc", name[:-4]), content)

    arrived: list[int] = []
    for index in data.draw(st.permutations(range(len(named))), label="arrival order"):
        put(index)
        arrived.append(index)
        then = data.draw(afterwards, label="then")
        if then == "replay":
            put(data.draw(st.sampled_from(arrived), label="replayed"))
        if then == "reseed":
            for earlier in arrived:
                put(earlier)
            assert run_import("inc", "--from-bucket", "--reseed", "--apply").code == 0
        elif then != "wait":
            assert run_import("inc", "--from-bucket", "--apply").code == 0
    assert run_import("inc", "--from-bucket", "--apply").code == 0

    assert table_state(db, "inc") == reference_state(named, "INC")
    assert bucket.keys("automations/inc/changes/") == []


@pytest.mark.parametrize("order", ["forward", "backward", "one batch"])
def test_equal_timestamps_resolve_by_file_then_row_whatever_the_order(db, bucket, run_import, order):
    named = [(f"2026-11-20T06-{10 * i:02d}-00.csv",
              csv_text([ticket_fields("INC000000000001", "2026-11-20 06:00:00", raw_status=f"F{i}R{r}")
                        for r in range(2)]).encode()) for i in range(3)]
    for name, content in (named if order == "forward" else list(reversed(named))):
        bucket.put(changes("inc", name[:-4]), content)
        if order != "one batch":
            assert run_import("inc", "--from-bucket", "--apply").code == 0
    if order == "one batch":  # ties across the files of one batch go to the later file
        outcome = run_import("inc", "--from-bucket", "--apply")
        assert "a batch of 3 files" in outcome.out
    assert db.scalar("SELECT raw_status FROM tickets.inc") == "F2R1"

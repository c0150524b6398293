"""The whole life of change files, model-based: the export, the runs, the database and the operator act in any
order, and a model written from the source contract and the operations guide predicts what must be true.

The model knows nothing of the engine: which uploaded versions a person must deal with, which are left alone and
why, and — through the independent oracle — what every ticket must hold. After every step: every uploaded version
is applied, kept as rejected with a reason, or waiting for a named reason; no run row stays `running`; the read
API counts no ticket twice; after a run the tickets equal the oracle's, and `--check` is unhealthy exactly when the
model says a person is needed.
"""

from __future__ import annotations

import datetime as dt
import signal
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import psycopg
import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule, run_state_machine_as_test

import devstack
from fleettickets import faults, sourcetime
from support.oracle import reference_state
from support.processes import Ingests, finish, wait_until_stopped
from support.stack import create_database, drop_database, reset_stack, table_state
from support.streamdata import change_file, changes, run_subprocess, ticket_row

TICKETS = [f"INC{n:012d}" for n in range(1, 6)]
STATUSES = ["New", "Assigned", "In Progress", "Resolved"]
UPDATED = ["2026-11-20 06:00:00", "2026-11-20 07:00:00", " 2026-11-20 08:00:00", "", "not a time"]
SIZE_LIMIT = 2500
"""FLEETTICKETS_MAX_OBJECT_BYTES for the runs: a file over it is rejected, and the operator raises it."""

rows = st.lists(st.tuples(st.sampled_from(TICKETS), st.sampled_from(UPDATED), st.sampled_from(STATUSES)),
                min_size=1, max_size=4)



@contextmanager
def stopped_at(point: str) -> Iterator[subprocess.Popen | None]:
    """An ingest frozen (SIGSTOP) at fault point `point`, or None when it ended by itself first (nothing reached
    the point); any still alive afterwards is killed."""
    ingests = Ingests()
    try:
        process = ingests.start(fault=f"{point}:stop")
        try:
            wait_until_stopped(process, timeout_s=20)
        except AssertionError:
            finish(process)
            yield None
            return
        yield process
    finally:
        ingests.kill_leftovers()

@dataclass
class Upload:
    key: str
    content: bytes
    kind: str
    """'valid', 'malformed', 'oversize', 'misnamed', 'no-such-time', 'ahead'."""


@dataclass
class Model:
    """The bucket and the ledger as the contract and the operations guide describe them."""

    waiting: dict[str, Upload] = field(default_factory=dict)
    """changes/: what the export put there and no run has moved yet."""
    applied: list[tuple[str, bytes]] = field(default_factory=list)
    """Every version applied, in the order the runs applied it."""
    rejected: dict[str, Upload] = field(default_factory=dict)
    """rejected/, by file name, not yet dealt with."""
    left_alone: set[str] = field(default_factory=set)
    """Keys in changes/ a run never touches: not change files, or held for a future stamp."""


def stamp(minutes_from_now: float) -> str:
    return (dt.datetime.now(sourcetime.EAT) + dt.timedelta(minutes=minutes_from_now)).strftime(
        sourcetime.STAMP_FORMAT)


def the_life(db, bucket, s3_server, run_import, monkeypatch, pg_admin_url, pg_cluster) -> type[RuleBasedStateMachine]:
    restored_databases: list[str] = []

    class FileLife(RuleBasedStateMachine):
        def __init__(self) -> None:
            super().__init__()
            monkeypatch.setenv("DATABASE_URL", db.url)
            reset_stack(db, bucket, s3_server)
            self.db = db
            self.model = Model()
            self.minutes = -60.0  # stamps start an hour ago and move forward a minute an upload
            self.backup: tuple[object, list[tuple[str, bytes]]] | None = None
            monkeypatch.setenv("FLEETTICKETS_MAX_OBJECT_BYTES", str(SIZE_LIMIT))

        # -- the export ----------------------------------------------------------------------------------------

        def next_key(self, late: bool) -> str:
            self.minutes += 1
            return changes("inc", stamp(self.minutes - (30 if late else 0)))

        @rule(content=rows, late=st.booleans())
        def export_uploads_a_file(self, content, late) -> None:
            key = self.next_key(late)
            body = change_file(*(ticket_row(t, u, status=s) for t, u, s in content)).encode()
            self.put(Upload(key, body, "valid"))

        @rule()
        def export_uploads_a_malformed_file(self) -> None:
            self.put(Upload(self.next_key(False), b"id,cluster\nINC000000000001,Kilimani\n", "malformed"))

        @rule(content=rows)
        def export_uploads_an_oversize_file(self, content) -> None:
            body = change_file(*(ticket_row(t, u, status=s) for t, u, s in content * 12)).encode()
            assert len(body) > SIZE_LIMIT
            self.put(Upload(self.next_key(False), body, "oversize"))

        @rule(kind=st.sampled_from(["misnamed", "no-such-time", "ahead"]))
        def export_uploads_what_is_no_change_file_yet(self, kind) -> None:
            key = {"misnamed": "automations/inc/changes/notes.txt",
                   "no-such-time": "automations/inc/changes/2026-13-01T06-00-00.csv",
                   "ahead": changes("inc", stamp(60 * 24 * 30))}[kind]
            self.put(Upload(key, change_file(ticket_row(TICKETS[0], "2026-11-20 06:00:00")).encode(), kind))

        @precondition(lambda self: any(u.kind == "valid" for u in self.model.waiting.values()))
        @rule(data=st.data(), content=rows)
        def export_rewrites_a_waiting_key(self, data, content) -> None:
            key = data.draw(st.sampled_from(sorted(k for k, u in self.model.waiting.items() if u.kind == "valid")))
            body = change_file(*(ticket_row(t, u, status=s) for t, u, s in content)).encode()
            self.put(Upload(key, body, "valid"))

        @precondition(lambda self: any(u.kind == "valid" for u in self.model.waiting.values()))
        @rule(data=st.data())
        def someone_deletes_a_waiting_file(self, data) -> None:
            key = data.draw(st.sampled_from(sorted(k for k, u in self.model.waiting.items() if u.kind == "valid")))
            bucket.client.delete_object(Bucket=bucket.name, Key=key)
            del self.model.waiting[key]

        def put(self, upload: Upload) -> None:
            bucket.put(upload.key, upload.content)
            if upload.kind in ("misnamed", "no-such-time", "ahead"):
                self.model.left_alone.add(upload.key)
            else:
                self.model.waiting[upload.key] = upload

        # -- the runs ------------------------------------------------------------------------------------------

        @rule()
        def a_scheduled_run(self) -> None:
            outcome = run_import("inc", "--from-bucket", "--apply")
            assert "unexpected" not in outcome.output, outcome.output
            self.model_a_complete_run()
            self.expect_the_reference_and_an_honest_check()

        @rule(point=st.sampled_from(sorted(faults.FAULT_POINTS)), kill=st.booleans())
        def a_run_killed_or_terminated_midway(self, point, kill) -> None:
            if kill:
                ended = run_subprocess("inc.import_inc", "--from-bucket", "--apply", fault=point)
                assert ended.returncode in (-9, 0, 1), ended.stderr
            else:
                with stopped_at(point) as process:
                    if process is None:
                        return self.a_scheduled_run()
                    process.send_signal(signal.SIGTERM)
                    process.send_signal(signal.SIGCONT)
                    code, _out, err = finish(process)
                    assert code == 143 and err.splitlines()[-1].startswith("inc: error: terminated by SIGTERM"), err
            # What it left is finished by the next run, which the model describes.
            self.a_scheduled_run()

        # -- the database -------------------------------------------------------------------------------------

        @precondition(lambda self: pg_cluster is not None and self.model.waiting)
        @rule(point=st.sampled_from(["mid_copy", "before_commit", "after_commit"]))
        def postgres_restarts_mid_batch(self, point) -> None:
            with stopped_at(point) as process:
                if process is None:
                    return self.a_scheduled_run()
                pg_cluster.restart(durable=False)
                process.send_signal(signal.SIGCONT)
                code, _out, err = finish(process)
                assert code in (0, 1) and "Traceback" not in err, err
            self.a_scheduled_run()

        @precondition(lambda self: self.backup is None)
        @rule()
        def the_nightly_backup(self) -> None:
            dump = subprocess.run([str(devstack.postgres_bindir() / "pg_dump"), "--format=custom", "--encoding=UTF8",
                                   self.db.url],
                                  capture_output=True, check=True, timeout=120).stdout
            self.backup = (dump, list(self.model.applied))

        @precondition(lambda self: self.backup is not None)
        @rule()
        def the_database_is_restored_from_the_backup(self) -> None:
            assert self.backup is not None
            dump, _applied_then = self.backup
            restored = create_database(pg_admin_url, template="template0")
            restored_databases.append(restored.name)
            subprocess.run([str(devstack.postgres_bindir() / "pg_restore"), f"--dbname={restored.url}"],
                           input=dump, capture_output=True, check=True, timeout=120)
            self.db = restored
            monkeypatch.setenv("DATABASE_URL", restored.url)
            self.backup = None
            # The archive fills the gap at the next run: the model's prediction does not change.
            self.a_scheduled_run()

        # -- the operator -------------------------------------------------------------------------------------

        @precondition(lambda self: any(u.kind == "oversize" for u in self.model.rejected.values()))
        @rule()
        def operator_raises_the_limit_and_puts_the_file_back(self) -> None:
            """As the error says: raise FLEETTICKETS_MAX_OBJECT_BYTES, copy the file from rejected/ back."""
            monkeypatch.setenv("FLEETTICKETS_MAX_OBJECT_BYTES", "10000000")
            for key, upload in self.model.waiting.items():  # no longer over the limit either
                if upload.kind == "oversize":
                    self.model.waiting[key] = Upload(key, upload.content, "valid")
            for name, upload in list(self.model.rejected.items()):
                if upload.kind == "oversize":
                    bucket.client.copy_object(Bucket=bucket.name, Key=upload.key,
                                              CopySource={"Bucket": bucket.name,
                                                          "Key": f"automations/inc/rejected/{name}"})
                    self.model.waiting[upload.key] = Upload(upload.key, upload.content, "valid")
            self.a_scheduled_run()
            monkeypatch.setenv("FLEETTICKETS_MAX_OBJECT_BYTES", str(SIZE_LIMIT))

        @precondition(lambda self: any(u.kind == "malformed" for u in self.model.rejected.values()))
        @rule(content=rows)
        def operator_fixes_a_file_and_uploads_it_under_its_name(self, content) -> None:
            """As the runbook says: put the corrected file in changes/ under the same name."""
            name = sorted(n for n, u in self.model.rejected.items() if u.kind == "malformed")[0]
            body = change_file(*(ticket_row(t, u, status=s) for t, u, s in content)).encode()
            self.put(Upload(self.model.rejected[name].key, body, "valid"))
            self.a_scheduled_run()

        @rule()
        def operator_reseeds(self) -> None:
            outcome = run_import("inc", "--from-bucket", "--apply", "--reseed")
            assert "unexpected" not in outcome.output, outcome.output
            self.model_a_complete_run()
            self.expect_the_reference_and_an_honest_check()

        @rule(spelling=st.sampled_from(["qoa ", " Qoa", "QOA", "q o a", "Kilimani West"]))
        def operator_adds_a_cluster_alias_by_hand(self, spelling) -> None:
            """Operations add aliases in SQL (docs/deployment-and-operations.md); one the joins would read as an
            alias already there is refused, so no ticket can join twice."""
            form = " ".join(spelling.split()).lower()
            taken = form in {" ".join(alias.split()).lower()
                             for (alias,) in self.db.query("SELECT alias FROM tickets.cluster_aliases")}
            try:
                self.db.execute("INSERT INTO tickets.cluster_aliases (alias, cluster) VALUES (%s, 'Quarry Road')",
                                (spelling,))
            except psycopg.errors.UniqueViolation:
                assert taken, spelling
            else:
                assert not taken, spelling

        # -- what the model predicts ------------------------------------------------------------------------

        def model_a_complete_run(self) -> None:
            for key, upload in sorted(self.model.waiting.items()):
                name = key.rpartition("/")[2]
                if upload.kind == "valid":
                    self.model.applied.append((name, upload.content))
                    self.model.rejected.pop(name, None)  # the copy in rejected/ is dealt with
                else:
                    self.model.rejected[name] = upload
            self.model.waiting.clear()

        def expect_the_reference_and_an_honest_check(self) -> None:
            assert table_state(self.db, "inc") == reference_state(self.model.applied, "INC")
            check = run_import("inc", "--check", "--max-file-age", "100000", "--max-run-age", "100000")
            # The guide: unhealthy while files wait in rejected/, or before any change file was ever applied.
            needs_a_person = bool(self.model.rejected) or not self.model.applied
            assert check.out.startswith("inc: unhealthy" if needs_a_person else "inc: healthy"), (
                check.output, self.model.rejected)
            left = set(bucket.keys("automations/inc/changes/"))
            assert left == self.model.left_alone, (left, self.model.left_alone)

        # -- after every step ---------------------------------------------------------------------------------

        @invariant()
        def no_run_row_stays_running(self) -> None:
            assert self.db.scalar("SELECT count(*) FROM tickets.ingest_runs WHERE finished_at IS NULL") == 0

        @invariant()
        def the_read_api_counts_no_ticket_twice(self) -> None:
            assert self.db.scalar("SELECT count(*) - count(DISTINCT ticket_id) FROM tickets.open_sla") == 0

        @invariant()
        def every_version_is_somewhere_a_person_can_see(self) -> None:
            keys = set(bucket.keys("automations/inc/"))
            for key in self.model.waiting:
                assert key in keys, key
            for name in self.model.rejected:
                assert f"automations/inc/rejected/{name}" in keys, name
                assert f"automations/inc/rejected/{name}.error.txt" in keys, name

        def teardown(self) -> None:
            monkeypatch.setenv("DATABASE_URL", db.url)
            while restored_databases:
                drop_database(pg_admin_url, restored_databases.pop())

    return FileLife


def run_the_life(budget: settings, *fixtures) -> None:
    run_state_machine_as_test(the_life(*fixtures), settings=budget)


BUDGET = dict(deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


def test_the_life_of_change_files(db, bucket, s3_server, run_import, monkeypatch, pg_admin_url, pg_cluster):
    run_the_life(settings(max_examples=6, stateful_step_count=12, **BUDGET),
                 db, bucket, s3_server, run_import, monkeypatch, pg_admin_url, pg_cluster)


@pytest.mark.slow
def test_the_life_of_change_files_at_length(db, bucket, s3_server, run_import, monkeypatch, pg_admin_url,
                                           pg_cluster):
    run_the_life(settings(max_examples=60, stateful_step_count=30, **BUDGET),
                 db, bucket, s3_server, run_import, monkeypatch, pg_admin_url, pg_cluster)

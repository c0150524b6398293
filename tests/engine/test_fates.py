"""Every fate of fleettickets/outcome.py met for real: one staged fault per Fate, in a whole run against the real
bucket and database, judged by what the fate promises (AFTER_THE_RUN, written from Fate's own words), as the
crash tests run over FAULT_POINTS. A new Fate without a staged fault here fails the completeness test."""

from __future__ import annotations

import signal
from collections.abc import Callable
from dataclasses import dataclass

import pytest

from fleettickets import clock
from fleettickets.outcome import Fate
from support.netproxy import Proxy
from support.processes import Ingests, finish, wait_until_stopped
from support.stack import Outcome, TestBucket, TestDatabase
from support.streamdata import change_file, changes, ticket_row

NAME = "2026-11-20T06-00-00.csv"
KEY = changes("inc", NAME[:-4])
CONTENT = change_file(ticket_row("INC000000000001", "2026-11-20 06:00:00")).encode()


@dataclass(frozen=True)
class After:
    file_in: str | None
    """Where the listed key is after the run: changes/, processed/, rejected/, or None (gone)."""
    applied: bool
    exit_code: int
    said: str
    """What the one line says (a fragment)."""


AFTER_THE_RUN = {
    Fate.REJECTED: After("rejected", applied=False, exit_code=1, said="rejected"),
    Fate.LEFT: After("changes", applied=False, exit_code=1, said="stays in changes/ for the next run"),
    Fate.READ_AGAIN: After("processed", applied=True, exit_code=0, said="reading it again"),
    Fate.REWRITTEN: After("changes", applied=False, exit_code=0, said="was rewritten by the export"),
    Fate.GONE: After(None, applied=False, exit_code=0, said="was deleted from changes/ after it was listed"),
    Fate.MOVED_NEXT_RUN: After("changes", applied=True, exit_code=1,
                               said="stays in changes/ and is archived (not applied again) next run"),
    Fate.RUN_ENDS: After("changes", applied=False, exit_code=1, said="every file committed before stays applied"),
}


@dataclass
class Stage:
    db: TestDatabase
    bucket: TestBucket
    proxy: Proxy
    ingests: Ingests
    run_import: Callable[..., Outcome]
    env: dict[str, str]
    listed: bytes = b""

    def in_process(self) -> tuple[int, str]:
        self.listed = self.bucket.get(KEY)
        outcome = self.run_import("inc", "--from-bucket", "--apply")
        return outcome.code, outcome.output

    def frozen_after_listing(self, underneath: Callable[[], None]) -> tuple[int, str]:
        process = self.ingests.start(self.env, fault="after_list:stop")
        wait_until_stopped(process)
        self.listed = self.bucket.get(KEY)
        underneath()
        process.send_signal(signal.SIGCONT)
        code, out, err = finish(process)
        return code, out + err


def rejected(stage: Stage) -> tuple[int, str]:
    stage.bucket.put(KEY, CONTENT + b'"an unclosed quote\n')
    return stage.in_process()


def left(stage: Stage) -> tuple[int, str]:
    stage.proxy.inflate_content_length_for = NAME  # every read breaks off, past the last attempt
    return stage.in_process()


def read_again(stage: Stage) -> tuple[int, str]:
    stage.proxy.inflate_content_length_for, stage.proxy.inflate_times = NAME, 1
    return stage.in_process()


def rewritten(stage: Stage) -> tuple[int, str]:
    return stage.frozen_after_listing(lambda: stage.bucket.put(KEY, CONTENT + CONTENT[CONTENT.index(b"\n") + 1:]))


def gone(stage: Stage) -> tuple[int, str]:
    return stage.frozen_after_listing(lambda: stage.bucket.client.delete_object(Bucket=stage.bucket.name, Key=KEY))


def moved_next_run(stage: Stage) -> tuple[int, str]:
    stage.proxy.refuse_for = "x-amz-copy-source"  # the copy to processed/ is refused; everything else carried
    return stage.in_process()


def run_ends(stage: Stage) -> tuple[int, str]:
    stage.proxy.drop_for = NAME  # the bucket goes away as the file is read
    return stage.in_process()


STAGED: dict[Fate, Callable[[Stage], tuple[int, str]]] = {
    Fate.REJECTED: rejected, Fate.LEFT: left, Fate.READ_AGAIN: read_again, Fate.REWRITTEN: rewritten,
    Fate.GONE: gone, Fate.MOVED_NEXT_RUN: moved_next_run, Fate.RUN_ENDS: run_ends,
}


def test_every_fate_has_a_promise_and_a_staged_fault():
    assert set(AFTER_THE_RUN) == set(STAGED) == set(Fate)


@pytest.mark.parametrize("fate", list(Fate), ids=lambda fate: fate.name)
def test_each_fate_does_what_it_promises_in_a_whole_run(db, bucket, s3_server, ingests, run_import, monkeypatch,
                                                        fate):
    proxy = Proxy(int(s3_server.rsplit(":", 1)[1])).start()
    endpoint = f"http://127.0.0.1:{proxy.port}"
    monkeypatch.setenv("RUSTFS_ENDPOINT", endpoint)
    monkeypatch.setenv("FLEETTICKETS_BATCH_FILES", "1")
    monkeypatch.setattr(clock, "sleep", lambda _s: None)  # READ_AGAIN's pauses, in-process
    bucket.put(KEY, CONTENT)
    stage = Stage(db, bucket, proxy, ingests, run_import, {"RUSTFS_ENDPOINT": endpoint})
    try:
        code, said = STAGED[fate](stage)
    finally:
        proxy.stop()

    promised = AFTER_THE_RUN[fate]
    assert (code, promised.said in said) == (promised.exit_code, True), said
    where = {place for place in ("changes", "processed", "rejected")
             if KEY.replace("changes", place) in bucket.keys(f"automations/inc/{place}/")}
    assert where == ({promised.file_in} if promised.file_in else set()), said
    if promised.file_in in ("processed", "rejected"):
        assert bucket.get(KEY.replace("changes", promised.file_in)) == stage.listed
    applied = db.scalar("SELECT count(*) FROM tickets.ingest_files WHERE key = %s AND status = 'applied'", (KEY,))
    assert (applied == 1, db.scalar("SELECT count(*) FROM tickets.inc")) == (promised.applied, int(promised.applied))

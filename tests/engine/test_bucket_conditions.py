"""Every request about a change file names the version that was listed, and the answer is checked too: an
S3-compatible server that ignores If-Match (s3rver ignores it on GET, HEAD, copy and delete alike) must not let a
run read, archive or delete a version it did not list."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest

from fleettickets.bucket import Bucket, ObjectChanged
from fleettickets.settings import BucketSettings
from support.processes import finish, wait_until_stopped
from support.streamdata import change_file, ticket_row

KEY = "automations/inc/changes/2026-11-20T06-00-00.csv"
ARCHIVED = "automations/inc/processed/2026-11-20T06-00-00.csv"
SAMPLE = Path(__file__).resolve().parents[2] / "samples" / "inc" / "changes" / "2026-11-20T06-00-00.csv"
CONDITIONS = ("If-Match", "x-amz-copy-source-if-match")


@pytest.fixture
def listed(bucket):
    """A Bucket as a run holds it, the version of KEY it listed, and the key rewritten since."""
    bucket.put(KEY, b"ticket_id\nINC000000000001\n")
    ours = Bucket(BucketSettings.from_env())
    (obj,) = ours.list("automations/inc/changes/")
    bucket.put(KEY, b"ticket_id\nINC000000000002\n")
    return ours, obj.etag


def ignoring_conditions(ours: Bucket) -> list[dict[str, str]]:
    """Make `ours` behave as on a server that ignores conditions (drop them from every request); returns the
    headers every request was sent with before they were dropped."""
    sent: list[dict[str, str]] = []

    def drop(request, **_kwargs) -> None:
        sent.append({name: value for name, value in request.headers.items()})
        for name in CONDITIONS:
            if name in request.headers:
                del request.headers[name]

    ours.client.meta.events.register("before-sign.s3", drop)
    return sent


@pytest.mark.parametrize("server", ["honours-conditions", "ignores-conditions"])
@pytest.mark.parametrize("action", ["read", "copy", "delete"])
def test_a_rewritten_key_is_never_read_copied_or_deleted_as_the_listed_version(bucket, listed, server, action):
    ours, etag = listed
    if server == "ignores-conditions":
        ignoring_conditions(ours)

    with pytest.raises(ObjectChanged, match="no longer holds the version that was listed"):
        if action == "read":
            ours.open(KEY, etag)
        elif action == "copy":
            ours.copy(KEY, etag, "automations/inc/processed/2026-11-20T06-00-00.csv")
        else:
            ours.delete(KEY, etag)

    assert bucket.get(KEY) == b"ticket_id\nINC000000000002\n"
    assert bucket.keys("automations/inc/processed/") == []


def test_every_request_about_a_file_carries_its_condition(bucket):
    bucket.put(KEY, b"ticket_id\n")
    ours = Bucket(BucketSettings.from_env())
    (obj,) = ours.list("automations/inc/changes/")
    sent = ignoring_conditions(ours)

    with ours.open(KEY, obj.etag) as body:
        body.read()
    ours.copy(KEY, obj.etag, "automations/inc/processed/2026-11-20T06-00-00.csv")
    ours.delete(KEY, obj.etag)

    quoted = f'"{obj.etag}"'
    conditions = [(headers.get("If-Match"), headers.get("x-amz-copy-source-if-match")) for headers in sent]
    # GET; HEAD + copy; HEAD + DELETE: each names the version, the copy by its source's condition.
    assert conditions == [(quoted, None), (quoted, None), (None, quoted), (quoted, None), (quoted, None)]


def test_a_file_deleted_after_listing_is_reported_as_such_not_as_waiting(db, bucket, ingests):
    bucket.put(KEY, b"ticket_id\nINC000000000001\n")
    process = ingests.start(fault="after_list:stop")
    wait_until_stopped(process)
    bucket.client.delete_object(Bucket=bucket.name, Key=KEY)
    process.send_signal(signal.SIGCONT)

    code, out, err = finish(process)

    assert code == 0, out + err
    assert err.splitlines() == [f"inc: warning: {KEY} was deleted from changes/ after it was listed: nothing of it "
                                "applied"]
    assert "stays in changes/" not in out + err
    assert db.scalar("SELECT count(*) FROM tickets.ingest_files") == 0


def two_parts() -> bytes:
    """A change file over S3's 5 MiB least part: 20,000 tickets."""
    return change_file(*(ticket_row(f"INC{n:012d}", "2026-11-20 06:00:00") for n in range(20_000))).encode()


@pytest.mark.parametrize("parts", [1, 2])
def test_a_multipart_change_file_is_applied_once_and_archived_once(db, bucket, run_import, parts):
    """aws s3 cp and n8n's S3 node upload a large file in parts: its ETag is no MD5 of the bytes, and its copy's
    differs from it. The previous main took that for a rewrite: left in changes/, re-applied from processed/ as a
    catch-up, one more copy and ledger row every run."""
    body = SAMPLE.read_bytes() if parts == 1 else two_parts()
    assert bucket.put_multipart(KEY, body, part_bytes=5 * 1024 * 1024 if parts == 2 else None).endswith(f"-{parts}")

    runs = [run_import("inc", "--from-bucket", "--apply") for _ in range(3)]

    assert [run.code for run in runs] == [0, 0, 0], runs[0].output
    assert "rewritten" not in "".join(run.output for run in runs)
    assert "applied 2026-11-20T06-00-00.csv" in runs[0].out
    assert all("nothing new" in run.out for run in runs[1:]), runs[1].output
    assert bucket.keys("automations/inc/") == [ARCHIVED]
    assert bucket.get(ARCHIVED) == body
    assert db.query("SELECT status, moved_etag FROM tickets.ingest_files") == [("applied", bucket.etag(ARCHIVED))]
    check = run_import("inc", "--check", "--max-file-age", "100000", "--max-run-age", "100000")
    assert check.code == 0, check.output


def test_a_multipart_file_rewritten_between_the_check_and_the_copy_is_never_archived_as_the_listed_one(bucket):
    """On a server that ignores CopySourceIfMatch, the export rewrites the key between the HEAD and the copy. The
    copy's ETag differs from the source's for a multipart upload whether or not the bytes do, so the bytes tell."""
    bucket.put_multipart(KEY, SAMPLE.read_bytes())
    ours = Bucket(BucketSettings.from_env())
    (obj,) = ours.list("automations/inc/changes/")
    ignoring_conditions(ours)
    rewrites = []

    def rewrite_once(**_kwargs) -> None:
        if not rewrites:
            rewrites.append(bucket.put_multipart(KEY, SAMPLE.read_bytes() + b"INC000000000999,late\n"))

    ours.client.meta.events.register("after-call.s3.HeadObject", rewrite_once)

    with pytest.raises(ObjectChanged, match="no longer holds the version that was listed"):
        ours.copy(KEY, obj.etag, ARCHIVED)
    assert rewrites
    assert bucket.etag(KEY) == rewrites[0]  # the new version stays in changes/ for the next run


def test_a_multipart_copy_of_the_same_bytes_is_a_copy(bucket):
    bucket.put_multipart(KEY, SAMPLE.read_bytes())
    ours = Bucket(BucketSettings.from_env())
    (obj,) = ours.list("automations/inc/changes/")

    copy_etag = ours.copy(KEY, obj.etag, ARCHIVED)

    assert copy_etag != obj.etag
    assert copy_etag == bucket.etag(ARCHIVED)
    assert bucket.get(ARCHIVED) == SAMPLE.read_bytes()


def test_the_probe_tells_what_the_server_does_and_cleans_up(bucket, capsys):
    """python -m fleettickets.s3probe, run against moto as a server, and against moto ignoring every condition
    (as s3rver does): each line says what the engine does about a lack."""
    from fleettickets import s3probe

    assert s3probe.main() == 0
    moto = capsys.readouterr().out.splitlines()
    ours = Bucket(BucketSettings.from_env())
    ignoring_conditions(ours)
    lacking = {behaviour.name: has for behaviour, has, _ in s3probe.probe_bucket(ours)}

    assert moto[0].startswith("S3 behaviours at http://127.0.0.1:")
    assert "  yes  lists keys in byte order, page after page" in moto
    assert "  yes  honours If-Match on GET" in moto
    assert not lacking["honours If-Match on GET"] and not lacking["honours CopySourceIfMatch"]
    assert lacking["lists keys in byte order, page after page"]
    assert bucket.keys(s3probe.PREFIX) == []

"""Every request about a change file names the version that was listed, and the answer is checked too: an
S3-compatible server that ignores If-Match (s3rver ignores it on GET, HEAD, copy and delete alike) must not let a
run read, archive or delete a version it did not list."""

from __future__ import annotations

import signal

import pytest

from fleettickets.bucket import Bucket, ObjectChanged
from fleettickets.settings import BucketSettings
from support.processes import finish, wait_until_stopped

KEY = "automations/inc/changes/2026-11-20T06-00-00.csv"
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

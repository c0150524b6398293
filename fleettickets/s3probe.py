"""python -m fleettickets.s3probe: what the configured bucket does of the S3 behaviours the engine relies on.

Writes a few small objects under fleettickets-probe/<random>/ in RUSTFS_BUCKET, asks the server, deletes them,
and prints one line per behaviour: what this server does and, where it differs from AWS S3, what the engine
does about it (docs/implementation.md, "S3 as the engine relies on it"). Exits 1 when the server lacks one the
engine cannot do without. Run it before pointing the ingest at a new S3-compatible server.
"""

from __future__ import annotations

import hashlib
import secrets
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from fleettickets import edge, outward
from fleettickets.bucket import Bucket
from fleettickets.log import Log
from fleettickets.settings import BucketSettings

PREFIX = "fleettickets-probe/"


@dataclass(frozen=True)
class Behaviour:
    name: str
    needed: bool
    """The engine cannot work without it; otherwise it covers the server's lack (`otherwise` says how)."""
    otherwise: str


@dataclass
class Probe:
    client: Any
    bucket: str
    prefix: str

    named: set[str] = field(default_factory=set)
    """Every key the probe has named, written or not: what clean() deletes."""

    def key(self, name: str) -> str:
        self.named.add(self.prefix + name)
        return self.prefix + name

    def put(self, name: str, body: bytes) -> str:
        return str(self.client.put_object(Bucket=self.bucket, Key=self.key(name), Body=body)["ETag"]).strip('"')

    def refused(self, call: Callable[[], object]) -> bool:
        """Whether the server answered a request whose condition cannot hold with 412 (or 304)."""
        from botocore.exceptions import ClientError

        try:
            call()
        except ClientError as error:
            return error.response.get("Error", {}).get("Code") in ("PreconditionFailed", "412", "304")
        return False

    def clean(self) -> None:
        # By name, not by listing: a server whose listings fail (s3rver's do) is cleaned up too.
        for key in sorted(self.named):
            self.client.delete_object(Bucket=self.bucket, Key=key)  # a missing key is no error


def ordered_listing(probe: Probe) -> bool:
    names = ["a/B.csv", "a/a.csv", "a/b.csv", "a/\u00e9.csv"]  # byte order: B < a < b < é (0xc3 0xa9)
    for name in reversed(names):
        probe.put(name, b"x")
    pages = probe.client.get_paginator("list_objects_v2").paginate(
        Bucket=probe.bucket, Prefix=probe.key("a/"), PaginationConfig={"PageSize": 2})
    listed = [obj["Key"] for page in pages for obj in page.get("Contents", [])]
    return listed == [probe.key(name) for name in names]


def start_after(probe: Probe) -> bool:
    listed = probe.client.list_objects_v2(Bucket=probe.bucket, Prefix=probe.key("a/"),
                                          StartAfter=probe.key("a/a.csv")).get("Contents", [])
    return [obj["Key"] for obj in listed][:1] == [probe.key("a/b.csv")]


def if_match_get(probe: Probe) -> bool:
    probe.put("c.csv", b"one")
    return probe.refused(lambda: probe.client.get_object(Bucket=probe.bucket, Key=probe.key("c.csv"),
                                                         IfMatch='"00000000000000000000000000000000"'))


def if_match_head(probe: Probe) -> bool:
    return probe.refused(lambda: probe.client.head_object(Bucket=probe.bucket, Key=probe.key("c.csv"),
                                                          IfMatch='"00000000000000000000000000000000"'))


def copy_source_if_match(probe: Probe) -> bool:
    return probe.refused(lambda: probe.client.copy_object(
        Bucket=probe.bucket, Key=probe.key("d.csv"), CopySource={"Bucket": probe.bucket, "Key": probe.key("c.csv")},
        CopySourceIfMatch='"00000000000000000000000000000000"'))


def if_match_delete(probe: Probe) -> bool:
    refused = probe.refused(lambda: probe.client.delete_object(Bucket=probe.bucket, Key=probe.key("c.csv"),
                                                               IfMatch='"00000000000000000000000000000000"'))
    return refused and "Contents" in probe.client.list_objects_v2(Bucket=probe.bucket, Prefix=probe.key("c.csv"))


def md5_etag(probe: Probe) -> bool:
    return probe.put("e.csv", b"ticket_id\n") == hashlib.md5(b"ticket_id\n").hexdigest()


def multipart_copy_etag(probe: Probe) -> bool:
    key = probe.key("f.csv")
    upload = probe.client.create_multipart_upload(Bucket=probe.bucket, Key=key)["UploadId"]
    part = probe.client.upload_part(Bucket=probe.bucket, Key=key, UploadId=upload, PartNumber=1, Body=b"f" * 100)
    done = probe.client.complete_multipart_upload(Bucket=probe.bucket, Key=key, UploadId=upload, MultipartUpload={
        "Parts": [{"ETag": part["ETag"], "PartNumber": 1}]})
    copied = probe.client.copy_object(Bucket=probe.bucket, Key=probe.key("g.csv"),
                                      CopySource={"Bucket": probe.bucket, "Key": key})
    return str(copied["CopyObjectResult"]["ETag"]) == str(done["ETag"])


BEHAVIOURS = [
    (Behaviour("lists keys in byte order, page after page", True,
               "the engine would apply change files out of export order"), ordered_listing),
    (Behaviour("honours StartAfter when listing", False,
               "catch-up lists the whole of processed/ every run: slower, still correct"), start_after),
    (Behaviour("honours If-Match on GET", False,
               "the engine compares the ETag the answer carries and refuses another version"), if_match_get),
    (Behaviour("honours If-Match on HEAD", False,
               "the engine compares the ETag the answer carries"), if_match_head),
    (Behaviour("honours CopySourceIfMatch", False,
               "the engine HEADs the source first and compares a copy's bytes when its ETag differs"),
     copy_source_if_match),
    (Behaviour("honours If-Match on DELETE", False,
               "the engine HEADs first: a rewrite in the milliseconds between the two would be deleted"),
     if_match_delete),
    (Behaviour("gives a single-part object the MD5 of its bytes as ETag", False,
               "the engine compares a copy's bytes when its ETag differs from the source's"), md5_etag),
    (Behaviour("gives a copy of a multipart upload the same ETag as its source", False,
               "as on AWS S3: the engine compares the copy's bytes with the source's"), multipart_copy_etag),
]


def probe_bucket(bucket: Bucket) -> list[tuple[Behaviour, bool, str]]:
    """Each behaviour, whether the server has it, and the error it answered the probe with (if any); the probe's
    objects are deleted whatever happens."""
    from botocore.exceptions import BotoCoreError, ClientError

    probe = Probe(bucket.client, bucket.name, f"{PREFIX}{secrets.token_hex(4)}/")
    found = []
    try:
        for behaviour, check in BEHAVIOURS:
            try:
                found.append((behaviour, bool(check(probe)), ""))
            except (BotoCoreError, ClientError) as error:
                found.append((behaviour, False, outward.line(" ".join(str(error).split()))))
    finally:
        probe.clean()
    return found


def describe(found: list[tuple[Behaviour, bool, str]]) -> list[str]:
    """One line a behaviour: 'yes', 'no' (the engine covers it, saying how) or 'NO' (it cannot work)."""
    lines = []
    for behaviour, has, error in found:
        answered = f" (the server answered: {error})" if error else ""
        if has:
            lines.append(f"yes  {behaviour.name}")
        elif behaviour.needed:
            lines.append(f"NO   {behaviour.name}{answered}: {behaviour.otherwise}; the engine cannot work with "
                         "this server")
        else:
            lines.append(f"no   {behaviour.name}{answered}: {behaviour.otherwise}")
    return lines


def main() -> int:
    log = Log("s3probe")

    def body() -> int:
        bucket = Bucket(BucketSettings.from_env())
        print(f"S3 behaviours at {bucket.endpoint}, bucket {bucket.name}:")
        found = probe_bucket(bucket)
        for line in describe(found):
            print(f"  {line}")
        return edge.EXIT_FAILED if any(b.needed and not has for b, has, _ in found) else edge.EXIT_OK

    return edge.run(log, body, interrupted="the probe's objects under fleettickets-probe/ may be left; delete them")


if __name__ == "__main__":
    sys.exit(main())

"""The S3-compatible bucket (RustFS in production) the change files arrive in."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from types import TracebackType
from typing import Any

from fleettickets import clock, outward
from fleettickets.errors import FleetError
from fleettickets.settings import BucketSettings

# botocore retries throttling, 5xx and dropped connections itself
# (AWS_MAX_ATTEMPTS, default 5: with its backoff that rides out a ~10 s blip
# of the storage server).
CONNECT_TIMEOUT_S = 5
READ_TIMEOUT_S = 60


class StorageError(FleetError):
    """The bucket refused a request (missing object, access denied, …)."""


class StorageUnavailable(StorageError):
    """The S3 endpoint cannot be reached even after botocore's retries: no point going on."""


class TransferError(StorageError):
    """An object's body broke off midway; reading it again may well succeed."""


class TransferTooSlow(TransferError):
    """An object took longer than FLEETTICKETS_OBJECT_TIMEOUT to read: reading it again now would not help."""


class ObjectChanged(StorageError):
    """The key no longer holds the version (ETag) that was listed: the export rewrote it meanwhile."""


class ObjectGone(StorageError):
    """The key was deleted after it was listed: there is nothing left to apply or move."""


@dataclass(frozen=True)
class StoredObject:
    key: str
    etag: str
    size: int
    modified: dt.datetime
    """When the object was last written, as the server says (timezone-aware)."""


# 412 on GET/COPY/DELETE; HEAD has no body, so botocore names it by status.
PRECONDITION_FAILED = frozenset({"PreconditionFailed", "412"})
NOT_FOUND = frozenset({"NoSuchKey", "404"})


def _error_code(error: Exception) -> str:
    return str(getattr(error, "response", {}).get("Error", {}).get("Code", ""))


COMPARE_CHUNK = 1 << 20


def _quoted(etag: str) -> str:
    return f'"{etag}"'


def _etag_of(response: dict[str, Any]) -> str:
    return str(response.get("ETag", "")).strip('"')


def _changed(action: str) -> ObjectChanged:
    return ObjectChanged(f"S3 {action}: the key no longer holds the version that was listed")


def _describe(error: Exception) -> str:
    from botocore.exceptions import ClientError

    if isinstance(error, ClientError):
        info = error.response.get("Error", {})
        return f"{info.get('Code', 'error')}: {info.get('Message', '')}".strip(": ")
    return " ".join(str(error).split())


class Bucket:
    """The bucket named by the RUSTFS_* settings; every request about a change file names the version listed."""

    def __init__(self, config: BucketSettings) -> None:
        # boto3 is imported here, not at module level: runs that never touch
        # the bucket (--status, local files) should not pay for it.
        import boto3
        from botocore.config import Config

        self.name = config.name
        self.endpoint = outward.line(config.endpoint)
        self.object_timeout_s = config.object_timeout_s
        self.client: Any = boto3.client(
            "s3", endpoint_url=config.endpoint, region_name=config.region, aws_access_key_id=config.access_key,
            aws_secret_access_key=config.secret_key,
            config=Config(
                s3={"addressing_style": "path"},
                retries={"max_attempts": config.max_attempts, "mode": "standard"},
                connect_timeout=CONNECT_TIMEOUT_S,
                # A stalled read must not outlast the object's own deadline.
                read_timeout=min(READ_TIMEOUT_S, config.object_timeout_s),
                # S3-compatible servers do not all speak the newer default checksums.
                request_checksum_calculation="when_required",
                response_checksum_validation="when_required",
            ))

    @contextmanager
    def _request(self, action: str, *, transfer: bool = False) -> Iterator[None]:
        from botocore.exceptions import BotoCoreError, ClientError, ConnectionError, HTTPClientError

        try:
            yield
        except ClientError as error:
            if _error_code(error) in PRECONDITION_FAILED:
                raise _changed(action) from None
            if _error_code(error) in NOT_FOUND:
                raise ObjectGone(f"S3 {action}: the key was deleted after it was listed") from None
            raise StorageError(f"S3 {action} failed at {self.endpoint} (bucket {self.name}): {_describe(error)}"
                               ) from None
        except BotoCoreError as error:
            kind = (StorageUnavailable if isinstance(error, ConnectionError | HTTPClientError) and not transfer
                    else TransferError if transfer
                    else StorageError)
            raise kind(f"S3 {action} failed at {self.endpoint} (bucket {self.name}): {_describe(error)}") from None

    def list(self, prefix: str, *, start_after: str | None = None) -> list[StoredObject]:
        """The objects under `prefix`, in key order; with `start_after`, only keys after it (the server skips the
        rest, so listing the newest part of a long archive stays cheap)."""
        with self._request(f"listing {prefix}"):
            pages = self.client.get_paginator("list_objects_v2").paginate(
                Bucket=self.name, Prefix=prefix, **({"StartAfter": start_after} if start_after else {}))
            return [StoredObject(obj["Key"], obj["ETag"].strip('"'), obj["Size"], obj["LastModified"])
                    for page in pages for obj in page.get("Contents", [])]

    def open(self, key: str, etag: str) -> _Body:
        """The body of version `etag` of `key` as a stream; ObjectChanged if the key holds another version now.

        A transfer that breaks midway raises TransferError.
        """
        with self._request(f"reading {key}"):
            response = self.client.get_object(Bucket=self.name, Key=key, IfMatch=_quoted(etag))
        if _etag_of(response) != etag:
            response["Body"].close()
            raise _changed(f"reading {key}")
        return _Body(self, key, response["Body"], clock.monotonic() + self.object_timeout_s)

    def copy(self, key: str, etag: str, destination: str) -> str:
        """Copy version `etag` of `key` to `destination` and return the copy's ETag; ObjectChanged if the key
        holds another version now."""
        with self._request(f"copying {key} to {destination}"):
            # The HEAD is for servers that ignore CopySourceIfMatch (moto among
            # them): it narrows copying a newer version to the gap between the two.
            self._same_version(key, etag, f"copying {key}")
            copied = self.client.copy_object(Bucket=self.name, Key=destination,
                                             CopySource={"Bucket": self.name, "Key": key},
                                             CopySourceIfMatch=_quoted(etag))
        copy_etag = str(copied.get("CopyObjectResult", {}).get("ETag", "")).strip('"')
        if copy_etag != etag:
            # Only a single-part upload's ETag is the MD5 of its bytes. A multipart upload's ("<md5 of the
            # parts' md5s>-<parts>") and an SSE-KMS object's are not, and a copy gets its own: another ETag proves
            # nothing either way, so the bytes are compared.
            self._same_bytes(key, etag, destination, copy_etag, f"copying {key} to {destination}")
        return copy_etag

    def _same_bytes(self, key: str, etag: str, copy: str, copy_etag: str, action: str) -> None:
        """ObjectChanged unless `copy` holds the bytes of version `etag` of `key`."""
        with self.open(key, etag) as original, self._open_any(copy, copy_etag) as copied:
            while True:
                chunk = original.read(COMPARE_CHUNK)
                if chunk != copied.read(len(chunk) or 1):
                    raise _changed(action)
                if not chunk:
                    return

    def _open_any(self, key: str, etag: str) -> _Body:
        """The body of `key`, of version `etag` when the server gave one."""
        if etag:
            return self.open(key, etag)
        with self._request(f"reading {key}"):
            response = self.client.get_object(Bucket=self.name, Key=key)
        return _Body(self, key, response["Body"], clock.monotonic() + self.object_timeout_s)

    def delete(self, key: str, etag: str) -> None:
        """Delete `key` only while it holds version `etag`; ObjectChanged (and nothing deleted) otherwise."""
        with self._request(f"deleting {key}"):
            # The conditional delete is atomic where the server honours If-Match
            # on DELETE (AWS, moto); the HEAD before it covers servers that
            # ignore the header, leaving only the gap between the two requests.
            self._same_version(key, etag, f"deleting {key}")
            self.client.delete_object(Bucket=self.name, Key=key, IfMatch=_quoted(etag))

    def _same_version(self, key: str, etag: str, action: str) -> None:
        """HEAD with If-Match, and the ETag it answers compared too: some S3-compatible servers ignore the
        condition (s3rver on every request), so it is never assumed to have been honoured."""
        if _etag_of(self.client.head_object(Bucket=self.name, Key=key, IfMatch=_quoted(etag))) != etag:
            raise _changed(action)

    def put_text(self, key: str, text: str) -> None:
        with self._request(f"writing {key}"):
            self.client.put_object(Bucket=self.name, Key=key, Body=text.encode("utf-8"),
                                   ContentType="text/plain; charset=utf-8")


@dataclass
class _Body:
    """An object's body as a binary stream that closes its connection when done."""

    bucket: Bucket
    key: str
    body: Any
    deadline: float
    """clock.monotonic() by which the whole body must have been read."""

    def read(self, size: int = -1) -> bytes:
        self._within_deadline()
        try:
            with self.bucket._request(f"reading {self.key}", transfer=True):
                return bytes(self.body.read(size if size >= 0 else None))
        except TransferError:
            self._within_deadline()  # a read that stalled past the deadline is too slow, not a blip
            raise

    def _within_deadline(self) -> None:
        if clock.monotonic() > self.deadline:
            raise TransferTooSlow(f"S3 reading {self.key} took over {self.bucket.object_timeout_s:g} s "
                                  "(FLEETTICKETS_OBJECT_TIMEOUT): the storage server is too slow")

    def close(self) -> None:
        self.body.close()

    def __enter__(self) -> _Body:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 traceback: TracebackType | None, /) -> None:
        self.close()

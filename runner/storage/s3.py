"""``s3://bucket/key`` sources and destinations on AWS S3 or any S3-compatible store
(MinIO, SeaweedFS, Ceph, R2...) set by ``RUNNER_S3_ENDPOINT_URL``.

``s3://bucket/key`` names one object, ``s3://bucket/prefix/`` (trailing slash) the
objects under a prefix. Credentials come from ``RUNNER_S3_ACCESS_KEY_ID`` /
``RUNNER_S3_SECRET_ACCESS_KEY`` when set, else from boto3's standard chain (``AWS_*``
variables, ``~/.aws``, instance roles), and never appear in a message: every boto3 /
botocore error becomes a :class:`SourceError` naming the URI and, when known, the fix.

Reads stream (``get_object``'s body wrapped as a buffered binary file, so a partitioner
can put ``io.TextIOWrapper`` on it); ranges are HTTP ``Range`` GETs. Writes buffer one
part at a time: an output smaller than a part is one ``put_object``, a larger one a
multipart upload, completed on a clean close and aborted after an error, so a failed
assembler leaves no object (and no billable half-upload) behind.

One boto3 client per :class:`S3Storage`, made on first use and remade in a forked child:
boto3 clients are thread-safe but not fork-safe, and prefork workers fork after import.
"""

from __future__ import annotations

import io
import os
import re
import threading
from typing import Any, BinaryIO

from runner.config import Settings
from runner.errors import SourceError
from runner.storage.base import AtomicWriter, safe_uri

__all__ = ["S3Storage", "split_uri"]

PART_SIZE = 8 * 1024 * 1024  # S3's minimum part size is 5 MiB (except the last part)
_CHUNK = 64 * 1024
# Loose on purpose: legacy buckets (us-east-1) may hold capitals and underscores.
_BUCKET = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{2,254}$")
_MISSING = {"NoSuchKey", "NoSuchBucket", "NotFound", "404"}
_DENIED = {"AccessDenied", "403", "Forbidden", "InvalidAccessKeyId", "SignatureDoesNotMatch",
           "InvalidToken", "ExpiredToken", "InvalidClientTokenId", "AllAccessDisabled"}
_CREDENTIALS_HINT = "check RUNNER_S3_ACCESS_KEY_ID / AWS credentials"


def _code(exc: BaseException) -> str:
    """The S3 error code of a botocore ``ClientError`` (``NoSuchKey``, ``403``...), else ``""``."""
    response = getattr(exc, "response", None)
    return str(response.get("Error", {}).get("Code", "")) if isinstance(response, dict) else ""


def split_uri(uri: str) -> tuple[str, str]:
    """``(bucket, key)`` of ``s3://bucket/key``; the key is ``""`` or ends with ``/`` for a
    prefix. Parsed by hand, not by ``urlparse``: a key may hold ``?``, ``#`` or ``%``."""
    if not uri.startswith("s3://"):
        raise SourceError(f"{safe_uri(uri)!r} is not an s3:// URI")
    bucket, _, key = uri[len("s3://"):].partition("/")
    if not _BUCKET.match(bucket):
        raise SourceError(f"{safe_uri(uri)!r} names no valid bucket; use s3://bucket/key or s3://bucket/prefix/")
    return bucket, key


class _BodyStream(io.RawIOBase):
    """A raw binary stream over a ``get_object`` body, read a chunk at a time; wrapped in
    :class:`io.BufferedReader` so ``io.TextIOWrapper`` and ``readline`` work on it."""

    def __init__(self, storage: "S3Storage", uri: str, body: Any) -> None:
        super().__init__()
        self._storage = storage
        self._uri = uri
        self._body = body

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        try:
            data = self._body.read(len(buffer))
        except Exception as exc:  # botocore read timeouts, dropped connections
            raise self._storage._error(exc, self._uri, "reading") from None
        buffer[:len(data)] = data
        return len(data)

    def close(self) -> None:
        if not self.closed:
            self._body.close()
        super().close()


class _S3Writer(AtomicWriter):
    """Buffers up to ``part_size`` bytes; an output that fits is one ``put_object``, a larger
    one a multipart upload. Nothing becomes visible until a clean :meth:`close`; an abort
    (an exception in the ``with`` block) aborts the multipart upload."""

    def __init__(self, storage: "S3Storage", uri: str, bucket: str, key: str, part_size: int) -> None:
        super().__init__(uri)
        self._storage = storage
        self._bucket = bucket
        self._key = key
        self._part_size = part_size
        self._buffer = bytearray()
        self._upload_id: str | None = None
        self._parts: list[dict[str, Any]] = []
        self.multipart = False

    @property
    def parts(self) -> int:
        """How many parts were uploaded so far."""
        return len(self._parts)

    def _write(self, data: bytes) -> None:
        self._buffer += data
        while len(self._buffer) >= self._part_size:
            self._upload_part(bytes(self._buffer[:self._part_size]))
            del self._buffer[:self._part_size]

    def _upload_part(self, data: bytes) -> None:
        client = self._storage.client()
        try:
            if self._upload_id is None:
                self._upload_id = client.create_multipart_upload(Bucket=self._bucket, Key=self._key)["UploadId"]
                self.multipart = True
            number = len(self._parts) + 1
            answer = client.upload_part(Bucket=self._bucket, Key=self._key, UploadId=self._upload_id,
                                        PartNumber=number, Body=data)
            self._parts.append({"PartNumber": number, "ETag": answer["ETag"]})
        except Exception as exc:
            raise self._storage._error(exc, self.uri, "writing") from None

    def _commit(self) -> None:
        try:
            if self._upload_id is None:
                self._storage.client().put_object(Bucket=self._bucket, Key=self._key, Body=bytes(self._buffer))
            else:
                if self._buffer:
                    self._upload_part(bytes(self._buffer))
                self._storage.client().complete_multipart_upload(
                    Bucket=self._bucket, Key=self._key, UploadId=self._upload_id,
                    MultipartUpload={"Parts": self._parts})
        except SourceError:
            raise
        except Exception as exc:
            raise self._storage._error(exc, self.uri, "writing") from None
        self._buffer = bytearray()

    def _abort(self) -> None:
        """Abort the multipart upload, if any; best effort (a failed abort is left to the
        bucket's lifecycle rule for incomplete uploads)."""
        self._buffer = bytearray()
        if self._upload_id is not None:
            upload_id, self._upload_id = self._upload_id, None
            try:
                self._storage.client().abort_multipart_upload(Bucket=self._bucket, Key=self._key, UploadId=upload_id)
            except Exception:  # noqa: BLE001  (the original error matters more)
                pass


class S3Storage:
    """Objects in S3 or an S3-compatible store, through one lazily made boto3 client."""

    part_size = PART_SIZE

    def __init__(self, settings: Settings, part_size: int | None = None) -> None:
        self.endpoint_url = settings.s3_endpoint_url
        self.region = settings.s3_region
        self._access_key_id = settings.s3_access_key_id
        self._secret = settings.s3_secret_access_key.get_secret_value() if settings.s3_secret_access_key else None
        if part_size is not None:
            self.part_size = part_size
        self._client: Any = None
        self._client_pid = 0
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"S3Storage(endpoint_url={self.endpoint_url!r}, region={self.region!r})"

    # -- the client and its errors ------------------------------------------------------

    def client(self) -> Any:
        """This storage's boto3 client, made on first use in this process."""
        if self._client is None or self._client_pid != os.getpid():
            with self._lock:
                if self._client is None or self._client_pid != os.getpid():
                    self._client = self._make_client()
                    self._client_pid = os.getpid()
        return self._client

    def _make_client(self) -> Any:
        import boto3
        from botocore.config import Config

        options: dict[str, Any] = {"retries": {"max_attempts": 3, "mode": "standard"}, "connect_timeout": 10}
        if self.endpoint_url:
            options["s3"] = {"addressing_style": "path"}  # S3-compatible stores rarely do virtual hosts
        credentials = {}
        if self._access_key_id or self._secret:
            credentials = {"aws_access_key_id": self._access_key_id, "aws_secret_access_key": self._secret}
        try:
            # A session of its own: boto3's default session is shared and not thread-safe.
            return boto3.session.Session().client("s3", endpoint_url=self.endpoint_url, region_name=self.region,
                                                  config=Config(**options), **credentials)
        except Exception as exc:
            raise SourceError(f"cannot set up the S3 client (endpoint {self._endpoint_name()}): "
                              f"{self._scrub(str(exc))}") from None

    def _endpoint_name(self) -> str:
        return safe_uri(self.endpoint_url) if self.endpoint_url else "AWS"

    def _scrub(self, text: str) -> str:
        """``text`` with the secret key masked: exception texts are not ours to trust."""
        return text.replace(self._secret, "***") if self._secret else text

    def _error(self, exc: BaseException, uri: str, action: str) -> SourceError:
        """``exc`` (any boto3 / botocore error) as a :class:`SourceError` naming ``uri``."""
        from botocore.exceptions import (ClientError, ConnectTimeoutError, EndpointConnectionError,
                                         NoCredentialsError, PartialCredentialsError, ReadTimeoutError)

        uri = safe_uri(uri)
        if isinstance(exc, SourceError):
            return exc
        if isinstance(exc, ClientError):
            error = exc.response.get("Error", {})
            code = _code(exc)
            if code == "NoSuchBucket":
                return SourceError(f"{uri} does not exist (no bucket {split_uri(uri)[0]!r})")
            if code in _MISSING:
                return SourceError(f"{uri} does not exist")
            if code in _DENIED:
                return SourceError(f"access denied to {uri}: {_CREDENTIALS_HINT} ({code})")
            status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", "?")
            message = self._scrub(str(error.get("Message", "")))
            return SourceError(f"{action} {uri} failed: {code or 'HTTP ' + str(status)}: {message}".rstrip(": "))
        if isinstance(exc, (NoCredentialsError, PartialCredentialsError)):
            return SourceError(f"no S3 credentials for {uri}: set RUNNER_S3_ACCESS_KEY_ID and "
                               f"RUNNER_S3_SECRET_ACCESS_KEY, or AWS credentials")
        if isinstance(exc, (EndpointConnectionError, ConnectTimeoutError)):
            return SourceError(f"cannot reach the S3 endpoint {self._endpoint_name()} for {uri}; "
                               f"check RUNNER_S3_ENDPOINT_URL and the network")
        if isinstance(exc, ReadTimeoutError):
            return SourceError(f"{action} {uri} timed out at the S3 endpoint {self._endpoint_name()}")
        return SourceError(f"{action} {uri} failed: {type(exc).__name__}: {self._scrub(str(exc))}")

    def _object(self, uri: str) -> tuple[str, str]:
        """``(bucket, key)`` of a URI that must name one object, not a prefix."""
        bucket, key = split_uri(uri)
        if not key or key.endswith("/"):
            raise SourceError(f"{safe_uri(uri)} is a prefix, not an object; use a partitioner that lists "
                              f"objects (objects), or name one object as s3://bucket/key")
        return bucket, key

    # -- the Storage protocol ---------------------------------------------------------

    def check(self, uri: str) -> None:
        split_uri(uri)

    def open_read(self, uri: str) -> BinaryIO:
        bucket, key = self._object(uri)
        try:
            body = self.client().get_object(Bucket=bucket, Key=key)["Body"]
        except Exception as exc:
            raise self._error(exc, uri, "reading") from None
        return io.BufferedReader(_BodyStream(self, uri, body), _CHUNK)  # type: ignore[return-value]

    def read_range(self, uri: str, start: int, end: int) -> bytes:
        """Bytes ``start``..``end`` by one ranged GET; a range past the end is ``b""``, as for a file."""
        bucket, key = self._object(uri)
        if end <= start:
            return b""
        try:
            answer = self.client().get_object(Bucket=bucket, Key=key, Range=f"bytes={start}-{end - 1}")
        except Exception as exc:
            if _code(exc) == "InvalidRange":
                return b""
            raise self._error(exc, uri, "reading") from None
        body = answer["Body"]
        try:
            return body.read(end - start)  # never more, even from a server that ignored the range
        except Exception as exc:
            raise self._error(exc, uri, "reading") from None
        finally:
            body.close()

    def size(self, uri: str) -> int:
        bucket, key = self._object(uri)
        try:
            return int(self.client().head_object(Bucket=bucket, Key=key)["ContentLength"])
        except Exception as exc:
            raise self._error(exc, uri, "reading the size of") from None

    def list(self, uri: str) -> list[str]:
        """Objects under a prefix (``s3://b/p/``, or ``s3://b/p`` when no object ``p`` exists),
        sorted, without ``/``-ending "directory marker" keys; ``[uri]`` for one object."""
        bucket, key = split_uri(uri)
        if key and not key.endswith("/"):
            try:
                self.client().head_object(Bucket=bucket, Key=key)
                return [uri]
            except Exception as exc:
                if _code(exc) not in ("NoSuchKey", "NotFound", "404"):
                    raise self._error(exc, uri, "listing") from None
            found = self._list_prefix(uri, bucket, key + "/")
            if not found:
                raise SourceError(f"{safe_uri(uri)} does not exist (neither an object nor a prefix with objects)")
            return found
        return self._list_prefix(uri, bucket, key)

    def _list_prefix(self, uri: str, bucket: str, prefix: str) -> list[str]:
        found: list[str] = []
        try:
            for page in self.client().get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
                found.extend(f"s3://{bucket}/{item['Key']}" for item in page.get("Contents", [])
                             if not item["Key"].endswith("/"))
        except Exception as exc:
            raise self._error(exc, uri, "listing") from None
        return sorted(found)

    def delete(self, uri: str) -> None:
        bucket, key = self._object(uri)
        try:
            self.client().delete_object(Bucket=bucket, Key=key)
        except Exception as exc:
            raise self._error(exc, uri, "deleting") from None

    def open_write(self, uri: str) -> BinaryIO:
        bucket, key = self._object(uri)
        return _S3Writer(self, uri, bucket, key, self.part_size)  # type: ignore[return-value]

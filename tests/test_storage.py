"""The storage contract, run against every writable backend (``file://`` and ``s3://`` on
a real SeaweedFS server), plus what only S3 has: credentials, buckets, multipart uploads.

One class of tests, parametrized over backends, so a behaviour a partitioner or assembler
relies on (streamed lines, byte ranges, sorted listings, no half-written outputs) cannot
differ between schemes unnoticed.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import NamedTuple

import pytest

from runner import get_settings
from runner.errors import SourceError
from runner.storage import Storages
from runner.storage.s3 import S3Storage
from runner.local import free_port

MIB = 1024 * 1024
S3_PART = 5 * MIB  # S3's minimum part size: the smallest that still exercises multipart


class Backend(NamedTuple):
    """A backend under test: its storages, and a URI prefix (ending in ``/``) all its own."""

    name: str
    storages: Storages
    base: str

    def uri(self, key: str) -> str:
        return self.base + key

    def write(self, key: str, data: bytes) -> str:
        uri = self.uri(key)
        with self.storages.backend(uri).open_write(uri) as out:
            out.write(data)
        return uri

    def backend(self):
        return self.storages.backend(self.base)


@pytest.fixture(params=["file", "s3"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    if request.param == "file":
        root = tmp_path.resolve()
        yield Backend("file", Storages(get_settings(file_roots=[root])), root.as_uri() + "/")
        return
    bucket = request.getfixturevalue("bucket")
    storages = Storages(request.getfixturevalue("s3_settings"))
    base = f"s3://{bucket}/"
    storage = storages.backend(base)
    assert isinstance(storage, S3Storage)
    storage.part_size = S3_PART
    yield Backend("s3", storages, base)


class TestStorageContract:
    """What every backend promises (``runner.storage.base.Storage``)."""

    def test_write_then_read(self, store: Backend) -> None:
        uri = store.write("dir/hello.bin", b"hello \x00 world")
        with store.backend().open_read(uri) as stream:
            assert stream.read() == b"hello \x00 world"
        assert store.storages.source(uri).open().read() == b"hello \x00 world"

    def test_overwrite_replaces(self, store: Backend) -> None:
        uri = store.write("x.txt", b"first version, longer")
        store.write("x.txt", b"second")
        assert store.backend().open_read(uri).read() == b"second"

    def test_empty_object(self, store: Backend) -> None:
        uri = store.write("empty", b"")
        assert store.backend().size(uri) == 0
        assert store.backend().open_read(uri).read() == b""

    def test_streamed_text_lines(self, store: Backend) -> None:
        lines = [f"line {i} – ünïcode\n" for i in range(5000)]
        uri = store.write("lines.txt", "".join(lines).encode())
        with store.backend().open_read(uri) as raw:
            got = list(io.TextIOWrapper(raw, encoding="utf-8", newline=""))
        assert got == lines

    def test_read_range(self, store: Backend) -> None:
        data = bytes(range(256)) * 40
        uri = store.write("ranges.bin", data)
        storage = store.backend()
        assert storage.read_range(uri, 0, 10) == data[:10]
        assert storage.read_range(uri, 1000, 3333) == data[1000:3333]
        assert storage.read_range(uri, len(data) - 7, len(data)) == data[-7:]
        assert storage.read_range(uri, 500, 500) == b""
        assert storage.read_range(uri, len(data) - 3, len(data) + 100) == data[-3:]
        assert storage.read_range(uri, len(data) + 10, len(data) + 20) == b""
        assert store.storages.read_range({"uri": uri, "start": 5, "end": 9}) == data[5:9]

    def test_size(self, store: Backend) -> None:
        uri = store.write("sized", b"x" * 12345)
        assert store.backend().size(uri) == 12345
        assert store.storages.source(uri).size() == 12345

    def test_list_prefix(self, store: Backend) -> None:
        keys = ["data/b.txt", "data/a.txt", "data/sub/deep/z.txt", "data/sub/c.txt"]
        for key in keys:
            store.write(key, key.encode())
        store.write("data-sibling/not-me.txt", b"no")
        store.write("elsewhere/no.txt", b"no")
        expected = sorted(store.uri(key) for key in keys)
        assert store.backend().list(store.uri("data/")) == expected
        assert store.storages.source(store.uri("data/")).list() == expected
        assert store.backend().list(store.uri("data")) == expected  # a directory / prefix without the slash
        assert store.backend().list(store.uri("data/sub/")) == sorted(store.uri(k) for k in keys if "/sub/" in k)

    def test_list_one_object(self, store: Backend) -> None:
        uri = store.write("single.txt", b"one")
        assert store.backend().list(uri) == [uri]

    @pytest.mark.parametrize("operation", ["open_read", "size", "read_range", "list"])
    def test_missing_object(self, store: Backend, operation: str) -> None:
        uri = store.uri("no/such/object.txt")
        storage = store.backend()
        calls = {"open_read": lambda: storage.open_read(uri).read(), "size": lambda: storage.size(uri),
                 "read_range": lambda: storage.read_range(uri, 0, 10), "list": lambda: storage.list(uri)}
        with pytest.raises(SourceError, match="does not exist") as info:
            calls[operation]()
        assert uri in str(info.value)

    def test_failed_write_leaves_nothing(self, store: Backend) -> None:
        uri = store.uri("out/result.txt")
        with pytest.raises(RuntimeError, match="assembler broke"):
            with store.backend().open_write(uri) as out:
                out.write(b"half of the output")
                raise RuntimeError("assembler broke")
        with pytest.raises(SourceError, match="does not exist"):
            store.backend().size(uri)
        assert store.backend().list(store.base) == []

    def test_failed_write_keeps_previous_version(self, store: Backend) -> None:
        uri = store.write("kept.txt", b"old")
        with pytest.raises(RuntimeError):
            with store.backend().open_write(uri) as out:
                out.write(b"new but broken" * 100_000)
                raise RuntimeError("boom")
        assert store.backend().open_read(uri).read() == b"old"

    def test_large_write_round_trips(self, store: Backend) -> None:
        chunk = bytes(range(256)) * 4096  # 1 MiB
        data = b"".join(bytes([i]) + chunk[1:] for i in range(12)) + b"tail"  # 12 MiB + 4, no two MiB alike
        uri = store.uri("big/blob.bin")
        with store.backend().open_write(uri) as out:
            for offset in range(0, len(data), 1_000_000):  # writes not aligned with parts
                out.write(data[offset:offset + 1_000_000])
        if store.name == "s3":
            assert out.multipart and out.parts == 3  # type: ignore[attr-defined]
        assert store.backend().size(uri) == len(data)
        with store.backend().open_read(uri) as stream:
            assert stream.read() == data
        assert store.backend().read_range(uri, 5 * MIB - 3, 5 * MIB + 3) == data[5 * MIB - 3:5 * MIB + 3]


# -- S3 only ------------------------------------------------------------------------------


def _s3_storages(s3, **overrides) -> Storages:
    options = {"file_roots": [], "s3_endpoint_url": s3.endpoint_url, "s3_access_key_id": s3.access_key,
               "s3_secret_access_key": s3.secret_key, "s3_region": "us-east-1", **overrides}
    return Storages(get_settings(**options))


def test_s3_multipart_really_used(s3, s3_settings, bucket: str) -> None:
    """Checked on the server: a multipart object's ETag is ``"<md5 of md5s>-<parts>"``."""
    storage = S3Storage(s3_settings, part_size=S3_PART)
    uri = f"s3://{bucket}/mp.bin"
    with storage.open_write(uri) as out:
        out.write(b"a" * (11 * MIB))
    etag = s3.client().head_object(Bucket=bucket, Key="mp.bin")["ETag"]
    assert etag.strip('"').endswith("-3")
    small = f"s3://{bucket}/small.bin"
    with storage.open_write(small) as out:
        out.write(b"a" * MIB)
    assert not out.multipart  # type: ignore[attr-defined]
    assert "-" not in s3.client().head_object(Bucket=bucket, Key="small.bin")["ETag"]


def test_s3_failed_multipart_is_aborted(s3, s3_settings, bucket: str) -> None:
    storage = S3Storage(s3_settings, part_size=S3_PART)
    with pytest.raises(RuntimeError):
        with storage.open_write(f"s3://{bucket}/aborted.bin") as out:
            out.write(b"b" * (6 * MIB))
            assert out.multipart  # type: ignore[attr-defined]
            raise RuntimeError("assembler broke after one part")
    assert s3.client().list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []
    assert storage.list(f"s3://{bucket}/") == []


@pytest.mark.parametrize("wrong", ["s3_secret_access_key", "s3_access_key_id"])
def test_s3_bad_credentials(s3, bucket: str, wrong: str) -> None:
    secret = "wrong-secret-Zq8vX2pL0s"
    uri = f"s3://{bucket}/obj.txt"
    s3.client().put_object(Bucket=bucket, Key="obj.txt", Body=b"private")
    storages = _s3_storages(s3, **{wrong: secret if wrong == "s3_secret_access_key" else "NOSUCHKEYID"})
    storage = storages.backend(uri)
    for call in (lambda: storage.open_read(uri), lambda: storage.size(uri), lambda: storage.list(uri),
                 lambda: storage.read_range(uri, 0, 3)):
        with pytest.raises(SourceError, match="access denied") as info:
            call()
        message = str(info.value)
        assert uri in message and "RUNNER_S3_ACCESS_KEY_ID" in message
        assert secret not in message and s3.secret_key not in message
    with pytest.raises(SourceError, match="access denied"):
        with storage.open_write(f"s3://{bucket}/new.txt") as out:
            out.write(b"x")
    assert s3.secret_key not in repr(storage)


def test_s3_missing_bucket(s3_settings) -> None:
    storage = S3Storage(s3_settings)
    uri = "s3://no-such-bucket-here/key.txt"
    for call in (lambda: storage.open_read(uri), lambda: storage.list("s3://no-such-bucket-here/"),
                 lambda: storage.size(uri)):
        with pytest.raises(SourceError, match="does not exist") as info:
            call()
        assert "s3://no-such-bucket-here/" in str(info.value)


def test_s3_unreachable_endpoint(s3) -> None:
    storage = _s3_storages(s3, s3_endpoint_url=f"http://127.0.0.1:{free_port()}").backend("s3://b/k")
    with pytest.raises(SourceError, match="cannot reach the S3 endpoint") as info:
        storage.size("s3://bucket/key")
    assert "s3://bucket/key" in str(info.value) and s3.secret_key not in str(info.value)


@pytest.mark.parametrize("uri", ["s3://", "s3:///key", "s3://b/key", "s3://bad bucket/key", "s3:/bucket/key"])
def test_s3_check_rejects_bad_uris(s3_settings, uri: str) -> None:
    with pytest.raises(SourceError):
        S3Storage(s3_settings).check(uri)


def test_s3_check_accepts_objects_and_prefixes(s3_settings) -> None:
    storage = S3Storage(s3_settings)
    for uri in ("s3://bucket/key.txt", "s3://bucket/pre/fix/", "s3://bucket", "s3://my.bucket_1/a?b#c"):
        storage.check(uri)  # no I/O: these buckets need not exist
    with pytest.raises(SourceError, match="credentials"):
        Storages(s3_settings).check("s3://user:secret@bucket/key")


def test_s3_prefix_is_not_an_object(s3_settings, bucket: str) -> None:
    with pytest.raises(SourceError, match="is a prefix"):
        S3Storage(s3_settings).open_read(f"s3://{bucket}/dir/")


def test_s3_list_skips_directory_markers_and_paginates(s3, s3_settings, bucket: str) -> None:
    client = s3.client()
    client.put_object(Bucket=bucket, Key="p/", Body=b"")  # a "folder" made by a console
    client.put_object(Bucket=bucket, Key="p/sub/", Body=b"")
    keys = [f"p/{i:04d}.txt" for i in range(1005)]  # more than one page of 1000
    with ThreadPoolExecutor(16) as pool:  # a boto3 client is thread-safe
        list(pool.map(lambda key: client.put_object(Bucket=bucket, Key=key, Body=b"."), keys))
    assert S3Storage(s3_settings).list(f"s3://{bucket}/p/") == [f"s3://{bucket}/{k}" for k in keys]


def test_s3_keys_with_special_characters(s3_settings, bucket: str) -> None:
    storage = S3Storage(s3_settings)
    uri = f"s3://{bucket}/odd name/ä?x=1#frag%20.txt"
    with storage.open_write(uri) as out:
        out.write(b"odd")
    assert storage.open_read(uri).read() == b"odd"
    assert storage.list(f"s3://{bucket}/odd name/") == [uri]


def test_s3_credentials_from_aws_environment(s3, bucket: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Without RUNNER_S3_* keys, boto3's standard chain (AWS_* variables) applies."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", s3.access_key)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", s3.secret_key)
    storage = S3Storage(get_settings(file_roots=[], s3_endpoint_url=s3.endpoint_url, s3_region="us-east-1"))
    with storage.open_write(f"s3://{bucket}/env.txt") as out:
        out.write(b"via env")
    assert storage.open_read(f"s3://{bucket}/env.txt").read() == b"via env"


def test_s3_client_is_remade_in_a_forked_child(s3_settings, bucket: str) -> None:
    """Prefork workers fork after the parent may have used the client; the child makes its own."""
    import multiprocessing
    import os

    storage = S3Storage(s3_settings)
    uri = f"s3://{bucket}/forked.txt"
    with storage.open_write(uri) as out:
        out.write(b"from the parent")
    parent_client = storage.client()
    results: multiprocessing.Queue = multiprocessing.get_context("fork").Queue()

    def child() -> None:
        data = storage.open_read(uri).read()
        results.put((data, storage._client_pid == os.getpid(), storage.client() is parent_client))

    process = multiprocessing.get_context("fork").Process(target=child)
    process.start()
    data, own_pid, same_client = results.get(timeout=30)
    process.join(30)
    assert (data, own_pid, same_client) == (b"from the parent", True, False)
    assert storage.client() is parent_client

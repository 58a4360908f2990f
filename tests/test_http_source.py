"""http(s) sources against a real local HTTP server: streaming, sizes, byte ranges (and
servers that ignore them), error statuses, credentials kept out of messages, and the
link-local / cloud-metadata guard.

Every test runs with ``socket.socket.connect`` wrapped so that any attempt to reach a
non-loopback address fails the test at once: the guard must refuse at check or
resolution time, before a single packet leaves for 169.254.x or anywhere else.
"""

from __future__ import annotations

import io
import ipaddress
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import pytest

import runner
from runner.errors import SourceError
from runner.storage import Storages
from tests.httpserver import LocalHttpServer, http_server
from runner.local import free_port

METADATA = "http://169.254.169.254/latest/meta-data/"
PASSWORD = "s3cr3t-Pa55"


@pytest.fixture(autouse=True)
def loopback_only(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[object]]:
    """Fail any connection to a non-loopback address; no proxy may reroute ours."""
    attempts: list[object] = []
    real_connect = socket.socket.connect

    def connect(sock: socket.socket, address: object) -> None:
        attempts.append(address)
        if isinstance(address, tuple):
            host = str(address[0]).split("%", 1)[0]
            if not ipaddress.ip_address(host).is_loopback:
                raise AssertionError(f"the test tried to connect to {address}")
        real_connect(sock, address)  # type: ignore[arg-type]

    monkeypatch.setattr(socket.socket, "connect", connect)
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
    yield attempts


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory with a ~3 MB text file of varied lines (some non-ASCII)."""
    directory = tmp_path_factory.mktemp("http-root")
    lines = [f"line {i:07d} {'é' * (i % 7)} {'x' * (i % 53)}\n" for i in range(70_000)]
    (directory / "big.txt").write_text("".join(lines), encoding="utf-8")
    assert (directory / "big.txt").stat().st_size > 3_000_000
    return directory


@pytest.fixture(scope="module")
def server(root: Path) -> Iterator[LocalHttpServer]:
    with http_server(root) as running:
        yield running


@pytest.fixture
def srv(server: LocalHttpServer) -> LocalHttpServer:
    server.clear()
    return server


@pytest.fixture
def storages() -> Storages:
    return Storages(runner.get_settings(file_roots=[], http_timeout=5))


@pytest.fixture
def data(root: Path) -> bytes:
    return (root / "big.txt").read_bytes()


def with_password(url: str) -> str:
    return url.replace("http://", f"http://someone:{PASSWORD}@", 1)


# -- reading --------------------------------------------------------------------------


def test_open_streams_a_multi_mb_file_line_by_line(srv: LocalHttpServer, storages: Storages, root: Path) -> None:
    with storages.source(srv.url_for("big.txt")).open() as raw:
        assert isinstance(raw, io.BufferedReader)
        text = io.TextIOWrapper(raw, encoding="utf-8", newline="")
        got = list(text)
    assert got == (root / "big.txt").read_text(encoding="utf-8").splitlines(keepends=True)
    assert [(r.method, r.range) for r in srv.requests] == [("GET", None)]


def test_size_is_the_content_length_of_a_head(srv: LocalHttpServer, storages: Storages, data: bytes) -> None:
    assert storages.source(srv.url_for("big.txt")).size() == len(data)
    assert [r.method for r in srv.requests] == ["HEAD"]


def test_size_without_content_length_says_bytes_pieces_cannot_be_planned(srv: LocalHttpServer,
                                                                         storages: Storages) -> None:
    url = srv.url_for("nolength/big.txt")
    with pytest.raises(SourceError, match="gives no size") as caught:
        storages.source(url).size()
    assert url in str(caught.value) and "`bytes` pieces" in str(caught.value)


@pytest.mark.parametrize("where", ["start", "middle", "end", "past-end"])
def test_read_range_sends_a_range_request(srv: LocalHttpServer, storages: Storages, data: bytes,
                                          where: str) -> None:
    start, end = {"start": (0, 100), "middle": (1_234_567, 1_234_567 + 70_001),
                  "end": (len(data) - 50, len(data)), "past-end": (len(data) - 10, len(data) + 100)}[where]
    assert storages.source(srv.url_for("big.txt")).read_range(start, end) == data[start:end]
    assert [(r.method, r.range) for r in srv.requests] == [("GET", f"bytes={start}-{end - 1}")]


def test_read_range_of_nothing_sends_no_request(srv: LocalHttpServer, storages: Storages) -> None:
    source = storages.source(srv.url_for("big.txt"))
    assert source.read_range(10, 10) == b""
    assert source.read_range(len("x"), 0) == b""
    assert srv.requests == []


def test_read_range_starting_past_the_end_is_empty(srv: LocalHttpServer, storages: Storages, data: bytes) -> None:
    assert storages.source(srv.url_for("big.txt")).read_range(len(data) + 5, len(data) + 50) == b""


@pytest.mark.parametrize("where", ["start", "middle", "end"])
def test_read_range_falls_back_when_the_server_ignores_ranges(srv: LocalHttpServer, storages: Storages,
                                                              data: bytes, where: str) -> None:
    start, end = {"start": (0, 333), "middle": (2_000_001, 2_100_000), "end": (len(data) - 7, len(data))}[where]
    assert storages.source(srv.url_for("norange/big.txt")).read_range(start, end) == data[start:end]
    assert [r.range for r in srv.requests] == [f"bytes={start}-{end - 1}"]


def test_a_server_that_ignores_every_range(root: Path, storages: Storages, data: bytes) -> None:
    with http_server(root, ignore_range=True) as lazy:
        assert storages.source(lazy.url_for("big.txt")).read_range(1_000_000, 1_000_100) == data[1_000_000:1_000_100]


def test_redirects_are_followed(srv: LocalHttpServer, storages: Storages, data: bytes) -> None:
    url = srv.url_for("redirect?to=" + quote("/big.txt"))
    with storages.source(url).open() as stream:
        assert stream.read() == data
    assert [r.path for r in srv.requests] == ["/redirect?to=/big.txt", "/big.txt"]


def test_endless_redirects_stop(srv: LocalHttpServer, storages: Storages) -> None:
    with pytest.raises(SourceError, match="redirected more than 5 times"):
        storages.source(srv.url_for("loop")).open()
    assert len(srv.requests) == 6


# -- errors ---------------------------------------------------------------------------


def test_missing_file_is_a_404(srv: LocalHttpServer, storages: Storages) -> None:
    url = srv.url_for("missing.txt")
    for action in (lambda s: s.open(), lambda s: s.size(), lambda s: s.read_range(0, 10)):
        with pytest.raises(SourceError, match="does not exist \\(HTTP 404\\)") as caught:
            action(storages.source(url))
        assert url in str(caught.value)


def test_forbidden_is_access_denied(srv: LocalHttpServer, storages: Storages) -> None:
    url = srv.url_for("forbidden/secret.txt")
    for action in (lambda s: s.open(), lambda s: s.size(), lambda s: s.read_range(0, 10)):
        with pytest.raises(SourceError, match="access denied") as caught:
            action(storages.source(url))
        assert "HTTP 403" in str(caught.value) and url in str(caught.value)


def test_connection_refused_names_the_url(storages: Storages) -> None:
    url = f"http://127.0.0.1:{free_port()}/data.txt"
    with pytest.raises(SourceError, match="cannot reach") as caught:
        storages.source(url).open()
    assert url in str(caught.value)


def test_credentials_never_appear_in_messages(srv: LocalHttpServer, storages: Storages) -> None:
    backend = storages.backend(srv.url)
    every = (backend.open_read, backend.size, lambda u: backend.read_range(u, 0, 5), backend.open_write)
    cases = [(with_password(srv.url_for(path)), every) for path in
             ("missing.txt", "forbidden/x", "redirect?to=" + quote(METADATA, safe=""))]
    cases.append((with_password(srv.url_for("nolength/big.txt")), (backend.size,)))
    cases.append((f"http://someone:{PASSWORD}@127.0.0.1:{free_port()}/x", every))
    messages = []
    for url, actions in cases:
        for action in actions:
            with pytest.raises(SourceError) as caught:
                action(url)
            messages.append(str(caught.value))
        with pytest.raises(SourceError, match="carries credentials") as caught:
            storages.check(url)
        messages.append(str(caught.value))
    assert len(messages) == 22
    assert not [m for m in messages if PASSWORD in m or "someone" in m]
    assert any(r.path == "/forbidden/x" for r in srv.requests)  # the credentials did go out, to the server


# -- the link-local / metadata guard --------------------------------------------------


@pytest.mark.parametrize("target", [
    METADATA,
    "http://169.254.0.1:8080/x",
    "http://2852039166/latest/meta-data/",  # 169.254.169.254 as one number
    "http://[fd00:ec2::254]/latest/meta-data/",
    "http://[fe80::1]/x",
    "http://[::ffff:169.254.169.254]/x",
])
def test_a_redirect_to_a_link_local_address_is_refused_before_connecting(
        srv: LocalHttpServer, storages: Storages, loopback_only: list[object], target: str) -> None:
    url = srv.url_for("redirect?to=" + quote(target, safe=""))
    for action in (lambda s: s.open(), lambda s: s.size(), lambda s: s.read_range(0, 10)):
        began = time.monotonic()
        with pytest.raises(SourceError) as caught:
            action(storages.source(url))
        assert time.monotonic() - began < 3, "the refusal must be immediate, not a timeout"
        message = str(caught.value)
        assert "link-local / cloud-metadata" in message and "RUNNER_URL_ALLOW_LINK_LOCAL=true" in message
        assert "redirected from" in message and srv.url in message
    assert all(ipaddress.ip_address(str(a[0])).is_loopback for a in loopback_only if isinstance(a, tuple))
    assert len(srv.requests) == 3  # only the redirect itself, once per action


@pytest.mark.parametrize("url", [
    METADATA,
    "https://169.254.169.254/",
    "http://[fd00:ec2::254]/latest/meta-data/",
    "http://[fe80::a:b]:8080/",
    "http://0xa9fea9fe/",
])
def test_a_link_local_url_is_refused_by_check_and_open(storages: Storages, loopback_only: list[object],
                                                       url: str) -> None:
    with pytest.raises(SourceError, match="link-local / cloud-metadata") as caught:
        storages.check(url)
    assert "RUNNER_URL_ALLOW_LINK_LOCAL=true" in str(caught.value)
    for action in (lambda s: s.open(), lambda s: s.size(), lambda s: s.read_range(0, 10)):
        with pytest.raises(SourceError, match="link-local / cloud-metadata"):
            action(storages.source(url))
    assert loopback_only == []


def test_a_name_resolving_to_a_link_local_address_is_refused(monkeypatch: pytest.MonkeyPatch, storages: Storages,
                                                            loopback_only: list[object]) -> None:
    """``check`` does no I/O, so it accepts a name; resolving it before connecting refuses."""
    real = socket.getaddrinfo

    def fake(host: str, *args: object, **kwargs: object) -> list:
        if host == "metadata.example.test" and not kwargs.get("flags", 0) & socket.AI_NUMERICHOST:
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.1", 80)),
                    (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("169.254.169.254", 80))]
        return real(host, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(socket, "getaddrinfo", fake)
    url = "http://metadata.example.test/latest/meta-data/"
    storages.check(url)
    with pytest.raises(SourceError, match="resolves to 169.254.169.254, a link-local / cloud-metadata address"):
        storages.source(url).open()
    assert loopback_only == []


def test_allow_link_local_lets_check_accept_it(loopback_only: list[object]) -> None:
    allowing = Storages(runner.get_settings(file_roots=[], http_timeout=5, url_allow_link_local=True))
    for url in (METADATA, "http://[fd00:ec2::254]/latest/meta-data/", "http://[fe80::1]/"):
        assert allowing.check(url) == url
    assert loopback_only == []  # nothing was contacted


def test_loopback_and_names_pass_check(storages: Storages) -> None:
    for url in ("http://127.0.0.1:8080/a", "http://10.0.0.5/a", "https://example.com/a", "http://[::1]/a"):
        assert storages.check(url) == url


def test_malformed_urls_are_refused_by_check(storages: Storages) -> None:
    backend = storages.backend("http://x/")
    with pytest.raises(SourceError, match="names no host"):
        backend.check("http:///data.txt")
    with pytest.raises(SourceError, match="invalid port"):
        backend.check("http://example.com:99999/a")
    with pytest.raises(SourceError, match="not an http"):
        backend.check("ftp://example.com/a")


# -- the rest of the protocol ---------------------------------------------------------


def test_http_is_never_a_destination(srv: LocalHttpServer, storages: Storages) -> None:
    url = srv.url_for("out.txt")
    with pytest.raises(SourceError, match="http\\(s\\) URIs cannot be destinations"):
        storages.destination(url).open()
    assert srv.requests == []


def test_list_is_the_url_itself(srv: LocalHttpServer, storages: Storages) -> None:
    url = srv.url_for("big.txt")
    assert storages.source(url).list() == [url]
    assert srv.requests == []

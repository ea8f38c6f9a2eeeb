"""A throwaway SeaweedFS server, so the S3 path is tested against a real S3 API rather than a mock.

It runs with an identities file: requests signed with `ACCESS_KEY`/`SECRET_KEY` are accepted, requests
signed with anything else are refused, and unsigned requests (the tests' own look at the bucket) are
allowed.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import re
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
from multidict import CIMultiDict

ACCESS_KEY = "hub-test-access-key"
SECRET_KEY = "hub-test-secret-key"
ACTIONS = ["Admin", "Read", "Write", "List", "Tagging"]
IDENTITIES = {
    "identities": [
        {"name": "anonymous", "actions": ACTIONS},
        {
            "name": "hub",
            "credentials": [{"accessKey": ACCESS_KEY, "secretKey": SECRET_KEY}],
            "actions": ACTIONS,
        },
    ]
}
# weed also listens on each port + 10000 (gRPC), so ports stay low enough for that to be valid too.
PORT_RANGE = (20000, 45000)
GRPC_OFFSET = 10000
POLL = 0.05


@dataclass(frozen=True)
class Seaweed:
    endpoint: str

    def env(self) -> dict[str, str]:
        """The variables an operator would set to point the hub at this server."""
        return {
            "AWS_ENDPOINT": self.endpoint,
            "AWS_ALLOW_HTTP": "true",
            "AWS_REGION": "us-east-1",
            "AWS_ACCESS_KEY_ID": ACCESS_KEY,
            "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
        }

    def create_bucket(self, bucket: str, within: float = 20) -> None:
        """Retries: the S3 gateway answers a little before its volume server takes writes."""
        deadline = time.monotonic() + within
        while True:
            try:
                urllib.request.urlopen(urllib.request.Request(f"{self.endpoint}/{bucket}", method="PUT"))
                return
            except urllib.error.URLError as exc:
                refused = isinstance(exc, urllib.error.HTTPError) and exc.code < 500
                if refused or time.monotonic() > deadline:
                    raise
                time.sleep(0.2)

    async def _text(self, path: str) -> str:
        async with aiohttp.ClientSession() as session, session.get(f"{self.endpoint}/{path}") as response:
            response.raise_for_status()
            return await response.text()

    async def keys(self, bucket: str, prefix: str) -> list[str]:
        listing = await self._text(f"{bucket}?list-type=2&prefix={prefix}/")
        return re.findall(r"<Key>([^<]+)</Key>", listing)

    async def pending_uploads(self, bucket: str, prefix: str) -> list[str]:
        """Keys of multipart uploads begun and neither completed nor aborted."""
        listing = await self._text(f"{bucket}?uploads&prefix={prefix}/")
        return re.findall(r"<Key>([^<]+)</Key>", listing)

    async def uploaded_parts(self, bucket: str, key: str) -> int:
        """Parts the server holds for the pending multipart upload of `key`."""
        listing = await self._text(f"{bucket}?uploads&prefix={key}")
        upload_ids = re.findall(r"<UploadId>([^<]+)</UploadId>", listing)
        if not upload_ids:
            return 0
        return len(re.findall(r"<PartNumber>", await self._text(f"{bucket}/{key}?uploadId={upload_ids[0]}")))

    async def wait_for_parts(self, bucket: str, key: str, parts: int, within: float = 10) -> int:
        for _ in range(int(within / POLL)):
            if (seen := await self.uploaded_parts(bucket, key)) >= parts:
                return seen
            await asyncio.sleep(POLL)
        raise TimeoutError(f"{key}: fewer than {parts} parts uploaded after {within} s")

    async def get(self, bucket: str, key: str) -> tuple[bytes, CIMultiDict[str]]:
        async with (
            aiohttp.ClientSession() as session,
            session.get(f"{self.endpoint}/{bucket}/{key}") as response,
        ):
            response.raise_for_status()
            return await response.read(), CIMultiDict(response.headers)


def _bindable(port: int) -> bool:
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def free_ports(count: int) -> list[int]:
    """Ports that are free, as are their gRPC companions (port + 10000)."""
    chosen: list[int] = []
    while len(chosen) < count:
        port = random.randrange(*PORT_RANGE)
        taken = {p for c in chosen for p in (c, c + GRPC_OFFSET)}
        if {port, port + GRPC_OFFSET}.isdisjoint(taken) and _bindable(port) and _bindable(port + GRPC_OFFSET):
            chosen.append(port)
    return chosen


def _wait_until_ready(process: subprocess.Popen[bytes], endpoint: str, log: Path, within: float) -> None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"weed server exited with {process.returncode}:\n{log.read_text()[-2000:]}")
        with contextlib.suppress(OSError):
            urllib.request.urlopen(endpoint, timeout=1)
            return
        time.sleep(0.2)
    raise RuntimeError(f"weed server did not answer on {endpoint} within {within} s")


@contextlib.contextmanager
def seaweed_server(within: float = 30) -> Iterator[Seaweed]:
    """A master, volume, filer and S3 gateway in one `weed server`, on free loopback ports, in a
    temporary directory that goes away with it."""
    weed = Path(sys.executable).parent / "weed"
    s3, master, volume, filer = free_ports(4)
    with tempfile.TemporaryDirectory(prefix="seaweed-") as scratch:
        root = Path(scratch)
        (root / "s3.json").write_text(json.dumps(IDENTITIES))
        (root / "data").mkdir()
        log = root / "weed.log"
        command = [
            str(weed), "server", f"-dir={root / 'data'}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
            f"-master.port={master}", f"-volume.port={volume}", f"-filer.port={filer}",
            "-s3", f"-s3.port={s3}", f"-s3.config={root / 's3.json'}",
            # Otherwise fixed ports (8181, 9101) that a second server would collide on.
            "-s3.port.iceberg=0", "-s3.port.lance=0", "-master.telemetry=false",
            f"-filer.localSocket={root / 'filer.sock'}", f"-s3.localSocket={root / 's3.sock'}",
        ]  # fmt: skip
        with log.open("wb") as output:
            process = subprocess.Popen(
                command,
                stdout=output,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        try:
            endpoint = f"http://127.0.0.1:{s3}"
            _wait_until_ready(process, endpoint, log, within)
            yield Seaweed(endpoint)
        finally:
            # weed ignores SIGTERM for a long while (its data is thrown away: nothing to flush), and it
            # always puts its gRPC sockets in /tmp.
            process.kill()
            process.wait()
            for port in (s3, master, volume, filer):
                for leftover in Path("/tmp").glob(f"seaweedfs-*-grpc-{port + GRPC_OFFSET}.sock"):
                    leftover.unlink(missing_ok=True)

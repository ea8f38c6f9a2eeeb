"""A throwaway Azurite (Microsoft's Azure Storage emulator, npm `azurite`), so the `az://` path is tested
against a real Blob API: shared-key requests, containers, SAS links that Azurite itself checks."""

from __future__ import annotations

import contextlib
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from azure.storage.blob import BlobServiceClient

from hub.embedded import free_port
from tests.helpers import system_tool

# Azurite's one account and its published key (the emulator's documented development credentials).
ACCOUNT = "devstoreaccount1"
ACCOUNT_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="


@dataclass(frozen=True)
class Azurite:
    endpoint: str  # the account's blob endpoint, `http://127.0.0.1:<port>/devstoreaccount1`

    def env(self) -> dict[str, str]:
        """The variables an operator sets to point the hub at an Azure storage account."""
        return {
            "AZURE_STORAGE_ACCOUNT_NAME": ACCOUNT,
            "AZURE_STORAGE_ACCOUNT_KEY": ACCOUNT_KEY,
            "AZURE_STORAGE_ENDPOINT": self.endpoint,
            "AZURE_ALLOW_HTTP": "true",
        }

    def service(self) -> BlobServiceClient:
        return BlobServiceClient.from_connection_string(
            f"DefaultEndpointsProtocol=http;AccountName={ACCOUNT};AccountKey={ACCOUNT_KEY};BlobEndpoint={self.endpoint};"
        )


def azurite_binary() -> str:
    return system_tool("azurite-blob", "npm install -g azurite@3")


def _wait_for_port(port: int, process: subprocess.Popen[bytes], within: float = 20) -> None:
    deadline = time.monotonic() + within
    while True:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return
        if process.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"Azurite did not start (exit code {process.poll()})")
        time.sleep(0.05)


@contextlib.contextmanager
def azurite_server(folder: Path) -> Iterator[Azurite]:
    port = free_port()
    process = subprocess.Popen(
        [azurite_binary(), "--blobHost", "127.0.0.1", "--blobPort", str(port), "--location", str(folder),
         "--skipApiVersionCheck", "--silent"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        _wait_for_port(port, process)
        yield Azurite(f"http://127.0.0.1:{port}/{ACCOUNT}")
    finally:
        process.terminate()
        process.wait(timeout=10)

"""Azurite, the Azure Storage emulator, as a process on 127.0.0.1.

Started with ``--skipApiVersionCheck --loose`` because newer SDKs send API versions newer
than Azurite knows (see shared/reference/facts.md). Several accounts are declared through
``AZURITE_ACCOUNTS``; the SDK reads the account name from the URL path on 127.0.0.1.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
import time
from pathlib import Path

from devslice.errors import ToolMissing
from devslice.facts.ports import free_ports, port_open
from devslice.services.storage import (
    DEV_ACCOUNT,
    LENIENT,
    AzuriteNotFound,
    account_key,
    find_azurite,
)

# Finding Azurite lives in production (the local runtime needs it); re-exported here.
__all__ = ["DEV_ACCOUNT", "Azurite", "AzuriteNotFound", "find_azurite"]


class Azurite:
    """A running Azurite. Use as a context manager, or call ``start``/``stop``."""

    def __init__(
        self,
        accounts: list[str] | None = None,
        location: str | None = None,
        executable: str | None = None,
        host: str = "127.0.0.1",
    ) -> None:
        self.accounts = accounts or [DEV_ACCOUNT]
        self.host = host  # where it listens (any loopback address, or 0.0.0.0)
        self.executable = executable or find_azurite(Path(__file__).parent)
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        self.location = location
        self.blob_port = 0
        self.queue_port = 0
        self.process: subprocess.Popen[bytes] | None = None

    def key(self, account: str) -> str:
        return account_key(account)

    def connection_string(self, account: str | None = None) -> str:
        name = account or self.accounts[0]
        return (
            f"DefaultEndpointsProtocol=http;AccountName={name};AccountKey={self.key(name)};"
            f"BlobEndpoint=http://{self._client_host}:{self.blob_port}/{name};"
            f"QueueEndpoint=http://{self._client_host}:{self.queue_port}/{name};"
        )

    def blob_endpoint(self, account: str | None = None) -> str:
        return f"http://{self._client_host}:{self.blob_port}/{account or self.accounts[0]}"

    @property
    def _client_host(self) -> str:
        return "127.0.0.1" if self.host == "0.0.0.0" else self.host

    def start(self, timeout: float = 30.0) -> Azurite:
        if self.location is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="azurite-")
            self.location = self._tmp.name
        self.blob_port, self.queue_port, table_port = free_ports(3)
        env = dict(os.environ)
        env["AZURITE_ACCOUNTS"] = ";".join(f"{a}:{self.key(a)}" for a in self.accounts)
        argv = [
            self.executable, "--silent", *LENIENT,
            "--disableTelemetry", "--location", self.location,
            "--blobHost", self.host, "--blobPort", str(self.blob_port),
            "--queueHost", self.host, "--queuePort", str(self.queue_port),
            "--tableHost", self.host, "--tablePort", str(table_port),
        ]
        log = open(os.path.join(self.location, "azurite.log"), "wb")  # noqa: SIM115
        self.process = subprocess.Popen(argv, env=env, stdout=log, stderr=subprocess.STDOUT)
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                output = Path(self.location, "azurite.log").read_text(errors="replace")[-2000:]
                raise ToolMissing(f"azurite exited with {self.process.returncode}: {output}")
            if all(port_open(p, self._client_host, timeout=0.2)
                   for p in (self.blob_port, self.queue_port)):
                return self
            time.sleep(0.05)
        self.stop()
        raise ToolMissing(f"azurite did not listen on {self.host}:{self.blob_port} in {timeout}s")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    def __enter__(self) -> Azurite:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

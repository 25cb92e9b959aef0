from __future__ import annotations

import os
import socket
import textwrap
import time
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

from devslice.config import Environment, parse_config
from devslice.facts.ports import free_ports

REPO = Path(__file__).resolve().parent.parent
# Copies of the reference files tests compare with (schemas, facts), with their source and
# licence in tests/data/README.md: a clone placed anywhere runs every test, none skips.
SHARED = Path(__file__).parent / "data"

BASE = """\
apiVersion: devslice.dev/v1alpha1
kind: Environment
team: company1
"""
# A developer alone with the team's shared services: a SQLite ledger is then enough
# (docs/ledger.md); without it a claim of a service in mode: shared is refused.
SOLO = "ledger: {soloTeam: true}\n"


def env_from(text: str = "", path: str = "devslice.yaml") -> Environment:
    """An Environment from the base document plus extra YAML."""
    return parse_config(BASE + textwrap.dedent(text), path, Environment)

# The one Deployment the engine tests apply (its image is rewritten to the local registry).
DEPLOYMENT = """\
apiVersion: apps/v1
kind: Deployment
metadata: {name: orders}
spec:
  replicas: 1
  selector: {matchLabels: {app: orders}}
  template:
    metadata: {labels: {app: orders}}
    spec:
      containers:
        - name: orders
          image: orders
"""

FAKES = Path(__file__).parent / "fakes"  # wire-level fakes of k3d, docker, mirrord, ...


def free_port() -> int:
    return free_ports(1)[0]


def gone(pid: int) -> bool:
    """Whether the process has exited (a zombie has: it only waits to be reaped)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes() == b""
    except OSError:
        return True


def wait_for(predicate: Callable[[], bool], timeout: float = 20.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)  # the poll of a wait on a condition, with a deadline


def free_port_block(n: int) -> int:
    """The first of ``n`` consecutive ports that are all free now (for tools that take a base
    port and use the ones after it)."""
    for _ in range(100):
        base = free_port()
        socks = []
        try:
            for port in range(base, base + n):
                s = socket.socket()
                socks.append(s)
                s.bind(("127.0.0.1", port))
            return base
        except OSError:
            continue
        finally:
            for s in socks:
                s.close()
    raise RuntimeError(f"no {n} consecutive free ports found")


def requirements() -> dict[str, list[str]]:
    """What each distribution declares (with an extra), as written: devslice-sdk's in
    sdk/pyproject.toml, devslice's own in pyproject.toml's metadata hook (hatch_build.py pins
    devslice-sdk in front of them)."""
    import tomllib

    sdk = tomllib.loads((REPO / "sdk" / "pyproject.toml").read_text())["project"]
    root = tomllib.loads((REPO / "pyproject.toml").read_text())
    return {"devslice-sdk": sdk["dependencies"],
            **{f"devslice-sdk[{k}]": v for k, v in sdk["optional-dependencies"].items()},
            "devslice": root["tool"]["hatch"]["metadata"]["hooks"]["custom"]["dependencies"],
            **{f"devslice[{k}]": v
               for k, v in root["project"]["optional-dependencies"].items()}}


def outside_environ() -> dict[str, str]:
    """os.environ without what points Python at this checkout (PYTHONPATH, VIRTUAL_ENV): for a
    process that must see only what it installed itself."""
    return {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}


class Wheels(NamedTuple):
    devslice: Path  # the command and the library
    sdk: Path  # devslice-sdk: what a service imports

    @property
    def folder(self) -> Path:  # for pip's --find-links
        return self.devslice.parent


def built_wheels() -> Wheels:
    """devslice's two wheels (`make wheels`), built once per state of the sources: kept in a
    temporary folder named after their digest, which parallel tests and later runs share
    (they take turns through a file lock)."""
    import fcntl
    import hashlib
    import subprocess
    import sys
    import tempfile

    digest = hashlib.sha256()
    for path in sorted([*(REPO / "src").rglob("*"), REPO / "pyproject.toml", REPO / "README.md",
                        REPO / "hatch_build.py", *(REPO / "sdk").iterdir()]):
        if path.is_file() and "__pycache__" not in path.parts:
            digest.update(f"{path.relative_to(REPO)}\0".encode() + path.read_bytes())
    base = Path(tempfile.gettempdir()) / f"devslice-wheels-{os.getuid()}"
    base.mkdir(exist_ok=True)
    dest = base / digest.hexdigest()[:16]
    clean = outside_environ()
    with (base / "lock").open("w") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        if not (dest / "done").exists():
            subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q",
                            "-w", str(dest), str(REPO), str(REPO / "sdk")],
                           check=True, env=clean, cwd=base)
            (dest / "done").touch()
    return Wheels(next(dest.glob("devslice-*.whl")), next(dest.glob("devslice_sdk-*.whl")))


def fresh_venv(folder: Path, *requirements: str, wheels: Wheels) -> Path:
    """A new venv in ``folder`` with ``requirements`` installed as a user would: devslice's own
    distributions from ``wheels`` (pip's --find-links), the others from the package index.
    Returns its bin folder."""
    import subprocess
    import sys

    clean = outside_environ()
    subprocess.run([sys.executable, "-m", "venv", str(folder)], check=True, env=clean)
    subprocess.run([folder / "bin" / "pip", "install", "-q", "--disable-pip-version-check",
                    "--find-links", str(wheels.folder), *requirements],
                   check=True, env=clean, cwd=folder)
    return folder / "bin"


def supervisors(directory: Path) -> list[int]:
    """Every live process running a local-runtime supervisor for ``directory``, whoever
    started it (read from /proc: Linux)."""
    out = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"devslice.local.supervisor" in cmdline and str(directory).encode() in cmdline \
                and not gone(int(entry.name)):
            out.append(int(entry.name))
    return out


def local_with_azurite(blob: int, queue: int) -> str:
    """YAML to add to BASE: the local runtime, and embedded storage served by the Azurite it
    starts on ``blob`` and ``queue``."""
    return textwrap.dedent(f"""\
        cluster: {{runtime: local}}
        storage:
          mode: embedded
          blobEndpointTemplate: "http://127.0.0.1:{blob}/{{account}}"
          queueEndpointTemplate: "http://127.0.0.1:{queue}/{{account}}"
        """)


def write_azurite_slice_config(root: Path, blob_port: int, queue_port: int, suffix: int,
                               runtime: str | None = None) -> Path:
    """A devslice.yaml on embedded defaults whose storage is the Azurite at ``blob_port`` and
    ``queue_port``, with a container and a queue named after ``suffix`` (unique per test, as
    the tests share one Azurite) and one service."""
    cluster = f"cluster: {{runtime: {runtime}}}\n" if runtime else ""
    path = root / "devslice.yaml"
    path.write_text(f"""\
apiVersion: devslice.dev/v1alpha1
kind: Environment
team: company1
eventHubs: {{mode: embedded, eventHubs: [orders]}}
storage:
  mode: embedded
  blobEndpointTemplate: "http://127.0.0.1:{blob_port}/{{account}}"
  queueEndpointTemplate: "http://127.0.0.1:{queue_port}/{{account}}"
names:
  invoices: {{template: "inv{suffix}{{slice}}", rule: container}}
  jobs: {{template: "jobs{suffix}{{slice}}", rule: queue}}
{cluster}services:
  - {{name: billing, run: "python -c pass"}}
""")
    return path

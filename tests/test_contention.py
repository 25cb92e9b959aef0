"""16 processes claim at the same instant, on the SQLite ledger and on the Azure Blob ledger
(real Azurite): every claim succeeds or fails clearly, and no partition is handed out twice."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from devslice.testing import Azurite

from .helpers import BASE, REPO, SOLO

WORKERS = 16
POOL = """\
eventHubs:
  mode: shared
  namespaces:
    - {name: company1-ehns1, partitions: 8, reserved: [0]}
    - {name: company1-ehns2, partitions: 6}
"""  # 7 + 6 = 13 partitions for 16 claimers: 13 succeed, 3 are told the pool is full


def claim_all(config: Path, extra_env: dict[str, str]) -> list[tuple[int, str, str]]:
    go = config.parent / "go"
    env = {**os.environ, **extra_env, "PYTHONPATH": os.pathsep.join((str(REPO / "src"), str(REPO)))}
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "tests.claim_worker", str(config), f"Dev{i} Person{i}",
             str(go)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=REPO,
        )
        for i in range(WORKERS)
    ]
    for p in procs:
        assert p.stdout is not None
        assert p.stdout.readline().strip() == "ready"
    go.touch()
    results = []
    for p in procs:
        out, err = p.communicate(timeout=120)
        results.append((p.returncode, out, err))
    return results


def check(results: list[tuple[int, str, str]]) -> None:
    won = [json.loads(out) for code, out, _ in results if code == 0]
    lost = [err for code, _, err in results if code != 0]
    assert len(won) == 13, lost
    held = [(s["eventHubs"]["namespace"], p) for s in won for p in s["eventHubs"]["partitions"]]
    assert len(held) == len(set(held)) == 13
    assert ("company1-ehns1", 0) not in held
    assert len({s["handle"] for s in won}) == 13
    assert len(lost) == 3
    for err in lost:
        assert "error: no Event Hubs namespace has 1 free partition (company1-ehns1 has 0, " \
               "company1-ehns2 has 0 free; 0 free in all" in err
        assert "add another namespace under eventHubs.namespaces" in err
        assert "Traceback" not in err


def test_sqlite_ledger_under_contention(tmp_path: Path) -> None:
    config = tmp_path / "devslice.yaml"
    config.write_text(BASE + POOL + SOLO)  # one machine's ledger: all claimers are here
    check(claim_all(config, {}))


@pytest.mark.azurite
def test_azure_blob_ledger_under_contention(tmp_path: Path, azurite: Azurite) -> None:
    config = tmp_path / "devslice.yaml"
    config.write_text(BASE + POOL + """\
ledger:
  backend: azureBlob
  connectionString: {fromEnv: TEST_LEDGER_CONNECTION}
  container: contention
""")
    check(claim_all(config, {"TEST_LEDGER_CONNECTION": azurite.connection_string()}))

"""Isolation, for real: 8 slices publish and consume at once on one embedded event hub, each
in its own process with its own contract from the ledger; no event crosses a slice."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from devslice.project import Project

from .helpers import BASE, REPO

SLICES = 8
EVENTS = 40


def test_eight_slices_never_see_each_others_events(workdir: Path) -> None:
    (workdir / "devslice.yaml").write_text(BASE + """\
eventHubs:
  mode: embedded
  eventHubs: [orders]
  namespaces: [{name: embedded, partitions: 20, reserved: [0]}]
""")
    project = Project.load()
    envs = []
    for i in range(SLICES):
        s, _ = project.claim(f"s{i}", owner=f"Dev {i}", partitions=2)
        variables = {v.name: str(v.value) for v in project.variables(s.handle)}
        envs.append({**os.environ, **variables, "PYTHONPATH": str(REPO)})
    procs = [subprocess.Popen([sys.executable, "-m", "tests.slice_worker", str(EVENTS)],
                              env=env, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True) for env in envs]
    results = []
    for p in procs:
        out, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
        results.append(json.loads(out))

    partitions = {f"s{i}": {str(p) for p in project.get(f"s{i}").event_hubs.partitions}
                  for i in range(SLICES)}
    crossed = 0
    for r in results:
        assert r["complete"], f"slice {r['slice']} did not receive all its events"
        own = [e for e in r["received"] if e["from"] == r["slice"]]
        crossed += len(r["received"]) - len(own)
        assert sorted(e["n"] for e in own) == list(range(EVENTS))
        assert {e["partition"] for e in own} <= partitions[r["slice"]]
        assert {e["database"] for e in own} == {f"db4{r['slice']}"}
    assert crossed == 0
    # The log holds every event, each in its slice's partitions: nothing landed elsewhere.
    from devslice.embedded import EmbeddedHub

    hub = EmbeddedHub(workdir / ".devslice" / "eventhubs.db", partitions=20)
    total = sum(len(hub.read("orders", str(p), -1, limit=10_000)) for p in range(20))
    assert total == SLICES * EVENTS
    assert hub.read("orders", "0", -1) == []  # the reserved partition stays empty

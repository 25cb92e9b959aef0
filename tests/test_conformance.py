"""The conformance kit (issue 16): conformance/node/slice.mjs, run with this machine's node,
gives what devslice's Python SDK gives on the same cases: the key-to-partition mapping, the
slice's partitions, routing properties, start fences and the positions they yield, sends and
receives on the slice's own partitions only (against a fake of the client surface). The .NET
snippet, conformance/dotnet/Slice.cs, is checked for the same constants (and compiled where
`dotnet` is)."""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from devslice.errors import DevsliceError
from devslice.sdk.context import SliceContext, StartFences
from devslice.sdk.eventhubs import Router, behind_fence, fenced_start, partition_for_key

from .helpers import REPO

KIT = REPO / "conformance"
NODE = shutil.which("node")

KEYS = ["", "a", "customer-42", "ünïcødé 🚀", "x" * 300, *(f"order-{i}" for i in range(40))]
ID_SETS = [["0"], ["1", "2"], ["3", "7", "9"], [str(i) for i in range(32)]]
T0 = "2026-12-07T02:07:49.123456Z"
FENCES = [
    "orders/0=1234,orders/1=-1,*=2026-12-07T02:07:49.123456Z",
    "orders/0=0,payments/3=2026-12-07T02:07:49Z",
    "*=2026-12-07T02:07:49.123Z",
    "",
    "orders/x=1",            # refused: not a partition id
    "orders/0=2026-12-07T02:07:49",  # refused: not UTC
    "*=17",                  # refused: * takes a time
    "orders=5",              # refused: no partition
]
WANTED = [{"sequenceNumber": -1}, {"sequenceNumber": 10, "isInclusive": True},
          {"sequenceNumber": 2000, "isInclusive": False},
          {"enqueuedOn": "2026-12-07T00:00:00.000Z"}, {"enqueuedOn": "2026-12-08T00:00:00.000Z"}]


def _when(text: str) -> datetime:
    return datetime.fromisoformat(text.removesuffix("Z")).replace(tzinfo=UTC)


def _ms(value: datetime) -> str:
    """A time as JavaScript's Date holds it: milliseconds, a fence between two moved up."""
    up = value.replace(microsecond=0) + timedelta(
        milliseconds=math.ceil(value.microsecond / 1000))
    return up.strftime("%Y-%m-%dT%H:%M:%S.") + f"{up.microsecond // 1000:03d}Z"


def _py_position(wanted: dict[str, Any]) -> tuple[Any, bool]:
    if "enqueuedOn" in wanted:
        return _when(wanted["enqueuedOn"]), False
    if wanted["sequenceNumber"] == -1:
        return "-1", False
    return wanted["sequenceNumber"], wanted["isInclusive"]


def _js_position(position: Any, inclusive: bool, wanted: dict[str, Any]) -> dict[str, Any]:
    if isinstance(position, datetime):
        return {"enqueuedOn": _ms(position)}
    if position == "-1":
        return wanted
    return {"sequenceNumber": position, "isInclusive": inclusive}


def _fence_json(fence: Any) -> Any:
    return _ms(fence) if isinstance(fence, datetime) else fence


def _expected_fences(raw: str, lookups: list[dict[str, Any]]) -> Any:
    try:
        fences = StartFences.parse(raw)
    except DevsliceError as exc:
        return {"error": exc.message}
    out = []
    for look in lookups:
        fence = fences.fence(look["hub"], look["id"])
        position, inclusive = _py_position(look["wanted"])
        start = fenced_start(position, inclusive, look["id"], fence)
        out.append({"fence": _fence_json(fence), "start": _js_position(*start, look["wanted"])})
    return out


def _events(times: list[str], first: int = 0) -> list[dict[str, Any]]:
    return [{"sequenceNumber": first + i, "enqueuedTimeUtc": t} for i, t in enumerate(times)]


def _admitted(fence: Any, events: list[dict[str, Any]]) -> list[bool]:
    seen: list[int] = []
    admit = behind_fence(lambda _c, e: seen.append(e.sequence_number), fence)
    for e in events:
        admit(None, SimpleNamespace(sequence_number=e["sequenceNumber"], properties={},
                                    enqueued_time=_when(e["enqueuedTimeUtc"])))
    return [e["sequenceNumber"] in seen for e in events]


SLICE_ENV = {"LOCAL_DEV_SLICE": "ab", "LOCAL_DEV_EVENTHUBS_ASSIGNEDPARTITIONIDS": "1,2",
             "LOCAL_DEV_DATAEXPLORER_DATABASE": "db4ab", "LOCAL_DEV_DATAEXPLORER_TABLE": "Events",
             "LOCAL_DEV_DATAEXPLORER_FORMAT": "json",
             "LOCAL_DEV_EVENTHUBS_STARTFENCE": f"orders/1=3,*={T0}"}
ENVS = [
    {}, SLICE_ENV, {"LOCAL_DEV_SLICE": "ab"},
    {"DEVSLICE_CONTRACT_PREFIX": "DEV_", "DEVSLICE_PARTITIONIDS_VARIABLE": "MY_IDS",
     "MY_IDS": "4, 5", "DEV_SLICE": "cd", "DEV_DATAEXPLORER_DATABASE": "db4cd"},
    {"LOCAL_DEV_EVENTHUBS_ASSIGNEDPARTITIONIDS": "1,1"},
]


def _context(env: dict[str, str]) -> Any:
    try:
        ctx = SliceContext.from_env(env)
        Router(ctx)  # refuses a slice without partitions
    except DevsliceError as exc:
        return {"error": exc.message}
    return ctx


def _cases() -> tuple[dict[str, Any], dict[str, Any]]:
    cases: dict[str, Any] = {}
    expected: dict[str, Any] = {}
    cases["partitions"] = [{"key": k, "ids": ids} for k in KEYS for ids in ID_SETS]
    expected["partitions"] = [partition_for_key(c["key"], c["ids"]) for c in cases["partitions"]]
    cases["assigned"] = ENVS
    ctxs = [_context(e) for e in ENVS]
    expected["assigned"] = [c if isinstance(c, dict) else
                            (list(c.partition_ids) if c.partition_ids else None) for c in ctxs]
    cases["routing"] = [e for e, c in zip(ENVS, ctxs, strict=True) if not isinstance(c, dict)]
    expected["routing"] = [SliceContext.from_env(e).routing_properties()
                           for e in cases["routing"]]
    lookups = [{"hub": h, "id": i, "wanted": w} for h, i in
               (("orders", "0"), ("orders", "1"), ("payments", "3"), ("other", "5"))
               for w in WANTED]
    cases["fences"] = [{"raw": raw, "lookups": lookups} for raw in FENCES]
    expected["fences"] = [_expected_fences(raw, lookups) for raw in FENCES]
    times = ["2026-12-07T02:07:49.122Z", "2026-12-07T02:07:49.123Z", "2026-12-07T02:07:49.124Z",
             "2026-12-07T02:07:50.000Z"]
    cases["admit"] = [{"fence": f, "events": _events(times)} for f in
                      (None, -1, 0, 2, T0, "2026-12-07T02:07:49.123Z")]
    expected["admit"] = [_admitted(f if not isinstance(f, str) else _when(f), c["events"])
                         for f, c in zip((None, -1, 0, 2, T0, "2026-12-07T02:07:49.123Z"),
                                         cases["admit"], strict=True)]
    sends = [{"body": f"order {i}", "key": f"customer-{i}", "properties": {"Table": "Mine"}
              if i % 3 == 0 else {}} for i in range(12)]
    cases["sends"] = [{"env": env, "partitionCount": 8, "events": sends}
                      for env in (SLICE_ENV, {})]
    expected["sends"] = []
    for env in (SLICE_ENV, {}):
        router = Router(SliceContext.from_env(env))
        out = []
        for s in sends:
            pid, key = router.target(s["key"], None)
            event = router.stamp(SimpleNamespace(properties=dict(s["properties"])))
            out.append({**({"partitionId": pid} if pid is not None else {"partitionKey": key}),
                        "body": s["body"], "properties": event.properties})
        expected["sends"].append(out)
    partitions = {str(p): _events(times, first=0) for p in range(4)}
    cases["receives"] = [{"env": env, "hub": "orders", "partitions": partitions}
                         for env in (SLICE_ENV, {})]
    expected["receives"] = []
    for env in (SLICE_ENV, {}):
        ctx = SliceContext.from_env(env)
        fences = ctx.start_fences or StartFences()
        subscribed, got = [], []
        for pid in ctx.partition_ids or sorted(partitions):
            fence = fences.fence("orders", pid)
            start = fenced_start("-1", False, pid, fence)
            subscribed.append({"id": pid, "startPosition": _js_position(
                *start, {"sequenceNumber": -1})})
            got += [[pid, e["sequenceNumber"]] for e, ok in
                    zip(partitions[pid], _admitted(fence, partitions[pid]), strict=True) if ok]
        expected["receives"].append({"subscribed": subscribed, "got": got})
    return cases, expected


@pytest.mark.skipif(NODE is None and not os.environ.get("DEVSLICE_REQUIRE_NODE"),
                    reason="node is not installed (CI has it: the conformance kit runs there)")
def test_the_node_kit_agrees_with_the_python_sdk(tmp_path: Path) -> None:
    cases, expected = _cases()
    (tmp_path / "cases.json").write_text(json.dumps(cases))
    done = subprocess.run([NODE or "node", str(KIT / "node" / "check.mjs"),
                           str(tmp_path / "cases.json")], capture_output=True, text=True,
                          timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    got = json.loads(done.stdout)
    for part in expected:
        if part in ("assigned", "fences"):  # errors: both refuse, in their own words
            got[part] = [{"error": True} if isinstance(g, dict) and "error" in g else g
                         for g in got[part]]
            expected[part] = [{"error": True} if isinstance(e, dict) and "error" in e else e
                              for e in expected[part]]
        assert got[part] == expected[part], part
    assert sum(isinstance(e, dict) for e in expected["fences"]) == 4  # the refused ones ran


def test_the_contract_doc_points_to_the_kit_files() -> None:
    doc = (REPO / "docs" / "contract.md").read_text()
    assert "conformance/node/slice.mjs" in doc and "conformance/dotnet/Slice.cs" in doc


def test_the_dotnet_snippet_uses_the_contracts_constants() -> None:
    cs = (KIT / "dotnet" / "Slice.cs").read_text()
    for needed in ("LOCAL_DEV_EVENTHUBS_ASSIGNEDPARTITIONIDS", "LOCAL_DEV_EVENTHUBS_STARTFENCE",
                   "LOCAL_DEV_DATAEXPLORER_DATABASE", "LOCAL_DEV_SLICE_CLAIM", "SHA256.HashData",
                   "ReadUInt64BigEndian", "isInclusive: false", '"Database"', '"*"',
                   "FromEnqueuedTime", "FromSequenceNumber"):
        assert needed in cs, needed
    js = (KIT / "node" / "slice.mjs").read_text()
    for needed in ('createHash("sha256")', "readBigUInt64BE(0)", "isInclusive: false",
                   "EVENTHUBS_STARTFENCE", "EVENTHUBS_ASSIGNEDPARTITIONIDS", '"Database"'):
        assert needed in js, needed
    assert re.search(r"\[\s*\"Database\"", js)


@pytest.mark.skipif(shutil.which("dotnet") is None,
                    reason="dotnet is not installed here; the .NET snippet is checked for its "
                    "constants only (test_the_dotnet_snippet_uses_the_contracts_constants)")
def test_the_dotnet_snippet_compiles(tmp_path: Path) -> None:  # pragma: no cover - no dotnet
    subprocess.run(["dotnet", "new", "console", "-o", str(tmp_path), "--force"], check=True,
                   timeout=300)
    shutil.copy(KIT / "dotnet" / "Slice.cs", tmp_path / "Slice.cs")
    subprocess.run(["dotnet", "add", str(tmp_path), "package", "Azure.Messaging.EventHubs"],
                   check=True, timeout=300)
    subprocess.run(["dotnet", "build", str(tmp_path)], check=True, timeout=600)

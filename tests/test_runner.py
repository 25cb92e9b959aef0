"""Every process devslice starts goes through the runner adapter (issue 14), so tests can see
and fake every argv."""

from __future__ import annotations

import ast
import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

import pytest

from devslice.adapters.runner import Completed, SubprocessRunner
from devslice.facts.tools import Tool, probe
from devslice.identity import owner

SRC = Path(__file__).resolve().parent.parent / "src" / "devslice"
SPAWNS = {("subprocess", n) for n in ("run", "Popen", "call", "check_call", "check_output",
                                      "getoutput", "getstatusoutput")} | \
    {("os", n) for n in ("system", "popen", "posix_spawn", "posix_spawnp", "fork",
                         "spawnv", "spawnve", "spawnvp", "execv", "execve", "execvp")}


def spawns(tree: ast.AST) -> list[str]:
    found = []
    for node in ast.walk(tree):
        func = node.func if isinstance(node, ast.Call) else None
        if isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name) and \
                (func.value.id, func.attr) in SPAWNS:  # a call; annotations name Popen too
            found.append(f"{func.value.id}.{func.attr} (line {node.lineno})")
        elif isinstance(node, ast.ImportFrom) and node.module in ("subprocess", "os"):
            found += [f"from {node.module} import {a.name} (line {node.lineno})"
                      for a in node.names if (node.module, a.name) in SPAWNS]
    return found


def test_only_the_adapters_start_processes() -> None:
    offenders = {}
    for path in sorted(SRC.rglob("*.py")):
        rel = path.relative_to(SRC).as_posix()
        if rel.startswith(("adapters/", "testing/")):  # fakes are test doubles, shipped
            continue
        found = spawns(ast.parse(path.read_text(encoding="utf-8")))
        if found:
            offenders[rel] = found
    assert offenders == {}


def test_the_rule_sees_a_spawn() -> None:
    assert spawns(ast.parse("import subprocess\nsubprocess.run(['x'])\n")) == [
        "subprocess.run (line 2)"]
    assert spawns(ast.parse("from os import posix_spawn\n")) == [
        "from os import posix_spawn (line 1)"]


class Recording:
    def __init__(self, stdout: str = "", code: int = 0) -> None:
        self.argvs: list[tuple[str, ...]] = []
        self.stdout, self.code = stdout, code

    def run(self, argv: Sequence[str], *, check: bool = True, timeout: float = 600,
            env: Mapping[str, str] | None = None) -> Completed:
        self.argvs.append(tuple(argv))
        return Completed(tuple(argv), self.code, self.stdout, "")


def test_tool_probes_go_through_the_runner() -> None:
    runner = Recording("k3d version v5.7.4\n")
    tool = Tool("k3d", (sys.executable, "version"), False, "the cluster", "install it",
                minimum=(5, 0))
    fact = probe(tool, runner=runner)
    assert runner.argvs == [(sys.executable, "version")]
    assert (fact.version, fact.problem) == ("5.7.4", None)


def test_the_owner_is_asked_of_git_through_the_runner(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DEVSLICE_OWNER", raising=False)
    runner = Recording("dev@company1.example\n")
    if not any(os.access(os.path.join(d, "git"), os.X_OK)
               for d in os.environ.get("PATH", "").split(os.pathsep)):
        pytest.skip("git is not installed")
    assert owner(runner) == "dev@company1.example"
    assert runner.argvs[0][1:] == ("config", "user.email")


def test_a_detached_start_runs_in_its_own_session_and_logs(tmp_path: Path) -> None:
    log = tmp_path / "out.log"
    pid = SubprocessRunner().start_detached(
        [sys.executable, "-c", "import os; print(os.getsid(0) == os.getpid(), flush=True)"],
        log=log)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert log.read_text() == "True\n"

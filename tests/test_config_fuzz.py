"""Issue 12: a seeded fuzz test of devslice.yaml. Mutants of the starter file and the shop's
config (type swaps, deletions, unknown keys, unicode, huge and negative numbers, deep nesting,
alias bombs, duplicate keys, a byte order mark, binary) go through what `slice list`, `env`
and `plan` call, in-process. Whatever the file holds: no exception but a DevsliceError, every
config error names file:line:column, and a mutant known to break a rule is refused.

The seed is fixed, so a failure reproduces; the run stays well under a minute.
"""

from __future__ import annotations

import contextlib
import copy
import io
import random
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from ruamel.yaml import YAML

from devslice.config.starter import starter_text
from devslice.errors import ConfigError, DevsliceError
from devslice.project import Project

from .helpers import REPO

SEED = 20261207
MUTANTS_PER_SOURCE = 200  # bounds the run: about 20 s for both sources on a busy 2-core machine

Node = Any  # a plain YAML value: dict, list, str, int, float, bool or None
Path_ = tuple[str | int, ...]

# Maps whose keys are the user's own (variables, build args, name keys): an unknown key there
# is not an error by itself.
FREE_MAPS = ("env", "buildArgs", "secretEnv", "names")


@dataclass
class Mutant:
    what: str  # for the failure message: how the file was changed
    text: bytes
    invalid: bool  # known to break a rule, so it must be refused


DEEP = "deeply-nested-value-here"


def dump(data: Node, rnd: random.Random) -> str:
    yaml = YAML(typ="safe", pure=True)
    yaml.default_flow_style = False
    buf = io.StringIO()
    yaml.dump(data, buf)
    text = buf.getvalue()
    while DEEP in text:
        opening = [rnd.choice(["[", "{k: "]) for _ in range(rnd.randint(60, 1000))]
        closing = "".join("]" if o == "[" else "}" for o in reversed(opening))
        text = text.replace(DEEP, "".join(opening) + "x" + closing, 1)
    return text


def paths(node: Node, at: Path_ = ()) -> Iterator[tuple[Path_, Node]]:
    yield at, node
    if isinstance(node, dict):
        for k, v in node.items():
            yield from paths(v, (*at, k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from paths(v, (*at, i))


def get(node: Node, at: Path_) -> Node:
    for part in at:
        node = node[part]
    return node


def put(node: Node, at: Path_, value: Node) -> None:
    get(node, at[:-1])[at[-1]] = value


def is_model(at: Path_) -> bool:
    """Whether the mapping at ``at`` is one of devslice's own sections (fixed keys)."""
    return not at or not (isinstance(at[-1], str) and at[-1] in FREE_MAPS)


UNICODE = ["ü", "日本", "\u202e", "\u200b", "🙂", "ǅ", "\u0130", "a\u0301", "\ufeff"]
HUGE = [10**20, -(10**20), 2**63, -1, 10**400]


MODES = [("eventHubs", "mode", ["shared", "emulator", "embedded"]),
         ("storage", "mode", ["shared", "emulator", "embedded"]),
         ("signalR", "mode", ["shared", "emulator", "embedded"]),
         ("dataExplorer", "mode", ["shared", "emulator"]),
         ("cluster", "runtime", ["k3d", "kube", "local", "auto"])]


def section(data: dict[str, Any], key: str, kind: type = dict) -> Any:
    """``data[key]``, made a fresh ``kind`` if it is anything else (an earlier mutation)."""
    if not isinstance(data.get(key), kind):
        data[key] = kind()
    return data[key]


def tree_mutation(rnd: random.Random, data: Node) -> tuple[str, Node, bool]:
    """One change to the parsed document: what it was, the new document, whether it is
    known to break a rule."""
    data = copy.deepcopy(data)
    everything = [(at, v) for at, v in paths(data) if at and at[0] != "ledger"]
    # the ledger stays where the test put it: a mutant must not write a file elsewhere
    at, value = rnd.choice(everything)
    kind = rnd.choice(["delete", "swap", "unknown", "unicode", "number", "required",
                       "section", "duplicate", "nest", "duration", "variable", "subnet",
                       "mode", "mode"])
    if kind == "mode":  # valid values that take other paths through list, env and plan
        key, field, values = rnd.choice(MODES)
        choice = rnd.choice(values)
        section(data, key)[field] = choice
        return f"{key}.{field}: {choice}", data, False
    if kind == "required":
        key = rnd.choice(["apiVersion", "kind", "team"])
        data.pop(key, None)
        return f"delete required {key}", data, True
    if kind == "delete":
        parent = get(data, at[:-1])
        if isinstance(parent, list):
            parent.pop(at[-1])
        else:
            del parent[at[-1]]
        return f"delete {at}", data, False
    if kind == "swap":
        new = rnd.choice([None, True, 3.5, -7, "text", [], {}, ["a", 1], {"a": 1}])
        put(data, at, new)
        # a section (not null: some are optional) that is no longer a mapping
        known = (isinstance(value, dict) and is_model(at) and new is not None
                 and not isinstance(new, dict))
        return f"swap {at} {value!r} -> {new!r}", data, known
    if kind == "unknown":
        maps = [(p, v) for p, v in paths(data) if isinstance(v, dict)
                and (not p or p[0] != "ledger")]
        where, target = rnd.choice(maps)
        target["Zz unknown key"] = rnd.choice(["x", 1, None, [1]])
        # not a key of any section, a variable name or a name key (build args take any)
        return f"unknown key at {where}", data, where[-1:] != ("buildArgs",)
    if kind == "unicode":
        strings = [(p, v) for p, v in everything if isinstance(v, str)]
        if not strings:
            return "nothing", data, False
        where, text = rnd.choice(strings)
        put(data, where, text[: rnd.randint(0, len(text))] + rnd.choice(UNICODE))
        return f"unicode at {where}", data, False
    if kind == "number":
        ints = [(p, v) for p, v in everything if type(v) is int]
        if not ints:
            return "nothing", data, False
        where, _ = rnd.choice(ints)
        put(data, where, rnd.choice(HUGE))
        # every whole number the two sources write has a bound below 10**20 and above -1
        return f"number at {where}", data, True
    if kind == "section":
        key = rnd.choice(["eventHubs", "storage", "signalR", "slices", "cluster", "contract",
                          "dataExplorer"])
        data[key] = rnd.choice(["text", 5, ["a"], True])
        return f"section {key} not a mapping", data, True
    if kind == "duplicate":
        hubs = section(section(data, "eventHubs"), "eventHubs", list)
        if not hubs or not isinstance(hubs[0], str):
            hubs[:] = ["orders"]
        hubs.append(rnd.choice([str.upper, str.title, str])(hubs[0]))
        return "event hub listed twice (ignoring case)", data, True
    if kind == "nest":  # written as flow text by dump(): a dumper would recurse too
        put(data, at, DEEP)
        return f"nested deep at {at}", data, True
    if kind == "duration":
        bad = rnd.choice([-5.0, 0.0, 1.5, True, 0, -60, "0s", "99999999999999999999d", "4 hours",
                          "366d", 10**30])
        section(section(data, "slices"), "ttl")["ci"] = bad
        return f"ttl.ci {bad!r}", data, True
    if kind == "variable":
        bad = rnd.choice(['X}"; touch PWNED; echo "${X', "1ABC", "A B", "A-B", "", "ü"])
        section(data, "signalR")["connectionString"] = {"fromEnv": bad}
        return f"fromEnv {bad!r}", data, True
    bad = rnd.choice(["", "x", "10.0.0.1/16", "10.0.0.0/31", "300.0.0.0/8", 5])
    section(data, "cluster")["subnet"] = bad
    return f"subnet {bad!r}", data, True


def text_mutation(rnd: random.Random, text: str) -> tuple[str, bytes, bool]:
    """A change to the bytes of the file."""
    raw = text.encode()
    kind = rnd.choice(["bom", "binary", "nul", "latin1", "bomb", "dupkey", "truncate",
                       "recursive", "tag"])
    if kind == "bom":
        return "byte order mark", b"\xef\xbb\xbf" + raw, False
    if kind == "binary":
        return "binary", bytes(rnd.randrange(256) for _ in range(rnd.randint(1, 400))), True
    if kind == "nul":
        i = rnd.randrange(len(raw))
        return f"NUL at byte {i}", raw[:i] + b"\x00" + raw[i:], True
    if kind == "latin1":
        i = rnd.randrange(len(raw))
        return f"0xe9 at byte {i}", raw[:i] + b"\xe9" + raw[i:], True
    if kind == "bomb":
        levels = rnd.randint(6, 9)
        bomb = "lol0: &l0 [a,a,a,a,a,a,a,a,a,a]\n" + "".join(
            f"lol{i}: &l{i} [{','.join([f'*l{i - 1}'] * 10)}]\n" for i in range(1, levels))
        return f"alias bomb of {levels} levels", (text + bomb).encode(), True
    if kind == "dupkey":
        return "duplicate key team", (text + "team: other\n").encode(), True
    if kind == "recursive":
        return "recursive anchor", (text + "names: &n {a: *n}\n").encode(), True
    if kind == "tag":
        return "python tag", text.replace("kind: Environment",
                                          "kind: !!python/object:os.system x").encode(), True
    cut = rnd.randrange(len(raw))
    return f"truncated at byte {cut}", raw[:cut], False


def mutants(rnd: random.Random, text: str, n: int) -> Iterator[Mutant]:
    data = YAML(typ="safe", pure=True).load(text)
    for _ in range(n):
        if rnd.random() < 0.25:
            what, raw, invalid = text_mutation(rnd, text)
            yield Mutant(what, raw, invalid)
            continue
        what, doc, invalid = tree_mutation(rnd, data)
        if rnd.random() < 0.3:  # a second change on top
            more, doc, also = tree_mutation(rnd, doc)
            what, invalid = f"{what}; {more}", invalid or also
        yield Mutant(what, dump(doc, rnd).encode(), invalid)


LOADED = [False]  # whether the last exercise() got past loading


def exercise(path: Path) -> None:
    """What `slice list`, `env` (every format, host and pods) and `plan` call."""
    from devslice.contract import render
    from devslice.contract.variables import PodsCannotReach, for_pods
    from devslice.engine.environment import Tools, build
    from devslice.engine.plan import make_plan
    from devslice.resources.k3d import cluster_subnet, host_gateway

    LOADED[0] = False
    project = Project.load(path)
    LOADED[0] = True
    project.slices()
    project.capacity()
    variables = project.variables("ab", environ={})
    render.shell(variables)
    render.dotenv(variables)
    render.as_data(variables)
    render.k8s(variables, "ab")
    with contextlib.suppress(PodsCannotReach):
        for_pods(variables, "k3d", host_gateway(cluster_subnet(project.env.cluster,
                                                               project.base_dir)))
    # The local runtime's plan reads only this machine (its state files, programs on PATH);
    # the k3d runtime's resources are built from the config, their facts need the tools.
    tools = Tools(k3d=None, docker=None, registry=None, kube=None)  # type: ignore[arg-type]
    make_plan(build(project, "ab", tools, "local"))
    with contextlib.suppress(PodsCannotReach):
        build(project, "ab", tools, "k3d")


def run_one(path: Path, mutant: Mutant) -> str | None:
    """What is wrong with devslice's answer to this mutant, or None."""
    path.write_bytes(mutant.text)
    try:
        exercise(path)
    except ConfigError as exc:
        unlocated = [str(i) for i in exc.issues if i.line is None or i.column is None
                     or not i.path]
        return f"unlocated config error: {unlocated}" if unlocated else None
    except DevsliceError as exc:
        if mutant.invalid and not isinstance(exc, ConfigError):
            return f"invalid file accepted at load, then {type(exc).__name__}: {exc}"
        return None
    except Exception as exc:  # the point of the test
        return f"traceback: {type(exc).__name__}: {exc}"[:400]
    return "invalid file accepted" if mutant.invalid else None


@pytest.fixture
def sources(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, Path, str]]:
    """The two files, each in a folder of its own with a slice ab already claimed."""
    monkeypatch.setenv("DEVSLICE_OWNER", "Anna Berg <anna@example.com>")
    monkeypatch.delenv("DEVSLICE_SLICE", raising=False)
    out = []
    starter = tmp_path / "starter"
    starter.mkdir()
    out.append(("starter", starter / "devslice.yaml", starter_text("company1")))
    shop = tmp_path / "shop"
    shutil.copytree(REPO / "examples" / "shop", shop,
                    ignore=shutil.ignore_patterns(".devslice", "__pycache__"))
    out.append(("shop", shop / "devslice.yaml", (shop / "devslice.yaml").read_text()))
    for _, path, text in out:
        path.write_text(text)
        Project.load(path).claim("ab")
    return out


def test_mutated_configs_never_crash_and_every_error_is_located(
        sources: list[tuple[str, Path, str]]) -> None:
    rnd = random.Random(SEED)
    problems: list[str] = []
    accepted = 0
    for name, path, text in sources:
        for mutant in mutants(rnd, text, MUTANTS_PER_SOURCE):
            problem = run_one(path, mutant)
            accepted += problem is None and not mutant.invalid and LOADED[0]
            if problem:
                problems.append(f"{name}: {mutant.what}: {problem}")
        path.write_text(text)
        run_one(path, Mutant("the source itself", text.encode(), False))
    assert not problems, "\n".join(problems[:20]) + f"\n({len(problems)} in all)"
    # the mutants reach list, env and plan too, not only the loader
    assert accepted >= 30, accepted


def test_the_sources_themselves_pass(sources: list[tuple[str, Path, str]]) -> None:
    for _, path, text in sources:
        assert run_one(path, Mutant("source", text.encode(), False)) is None


"""The engine's executor: dependencies first, independent resources in parallel, each
re-planned from fresh facts before it acts, and a failure skips what depended on it."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

import pytest

from devslice.engine import Action, Event, Executor
from devslice.engine.plan import Plan, make_plan, noop, order
from devslice.errors import CommandFailed
from devslice.facts.world import Reader


@dataclass
class World:
    """Stands for the outside world: which things exist."""

    things: set[str] = field(default_factory=set)
    log: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


@dataclass
class Thing:
    """A resource that wants `key` to exist in the world; creating it waits at `meet` (if
    given) until the other creations sharing that barrier are running too."""

    key: str
    world: World
    after: tuple[str, ...] = ()
    meet: threading.Barrier | None = None
    fail: bool = False

    def plan(self) -> list[Action]:
        if self.key in self.world.things:  # the fact
            return [noop(self.key, f"{self.key} already exists")]
        return [Action(self.key, "create", f"{self.key} is missing", (f"create {self.key}",),
                       self._create)]

    def _create(self) -> None:
        with self.world.lock:
            self.world.log.append(f"start {self.key}")
        if self.meet is not None:
            self.meet.wait(10)  # BrokenBarrierError: the others never ran alongside
        if self.fail:
            raise CommandFailed(f"could not create {self.key}")
        with self.world.lock:
            self.world.things.add(self.key)
            self.world.log.append(f"end {self.key}")


def test_order_respects_dependencies_and_refuses_cycles() -> None:
    w = World()
    a, b, c = Thing("a", w, after=("b",)), Thing("b", w), Thing("c", w, after=("a",))
    assert [r.key for r in order([a, b, c])] == ["b", "a", "c"]
    with pytest.raises(ValueError, match="cycle"):
        order([Thing("x", w, after=("y",)), Thing("y", w, after=("x",))])
    with pytest.raises(ValueError, match="unknown resource z"):
        order([Thing("x", w, after=("z",))])


def test_independent_resources_run_in_parallel_after_their_dependency() -> None:
    w = World()
    images = threading.Barrier(2)  # each image waits until the other runs: they overlap
    resources = [Thing("cluster", w), Thing("img1", w, meet=images),
                 Thing("img2", w, meet=images),
                 Thing("manifests", w, after=("cluster", "img1", "img2"))]
    reports = Executor().apply(resources)
    assert w.log.index("start manifests") > max(w.log.index("end img1"), w.log.index("end img2"))
    assert [r.status for r in reports] == ["ok"] * 4


def test_second_apply_plans_nothing() -> None:
    w = World()
    resources = [Thing("a", w), Thing("b", w, after=("a",))]
    Executor().apply(resources)
    plan = make_plan(resources)
    assert plan.empty
    assert plan.render() == "= a: a already exists\n= b: b already exists\nnothing to do\n"
    Executor().apply(resources)
    assert w.log == ["start a", "end a", "start b", "end b"]


def test_executor_replans_from_fresh_facts() -> None:
    """A stale plan says create; by the time the executor acts, the thing exists."""
    w = World()
    r = Thing("a", w)
    stale = make_plan([r])
    assert [a.verb for a in stale.actions] == ["create"]
    w.things.add("a")  # someone else made it meanwhile
    Executor().apply([r])
    assert w.log == []


def test_failure_skips_dependents_and_reports_events() -> None:
    w = World()
    events: list[Event] = []
    resources = [Thing("registry", w, fail=True), Thing("cluster", w, after=("registry",)),
                 Thing("manifests", w, after=("cluster",)), Thing("image", w)]
    with pytest.raises(CommandFailed, match="could not create registry"):
        Executor(on_event=events.append).apply(resources)
    kinds = {(e.kind, e.resource) for e in events}
    assert ("failed", "registry") in kinds
    assert ("skipped", "cluster") in kinds and ("skipped", "manifests") in kinds
    assert ("done", "image") in kinds
    assert "image" in w.things and "cluster" not in w.things
    failed = next(e for e in events if e.kind == "failed")
    assert failed.as_dict()["error"] == "could not create registry"


def test_plan_rendering_shows_calls() -> None:
    w = World()
    plan = Plan(tuple(Thing("a", w).plan()))
    assert plan.render() == "+ a: create (a is missing)\n    $ create a\n1 change\n"
    assert plan.as_dict() == {"changes": 1, "actions": [
        {"resource": "a", "verb": "create", "reason": "a is missing", "calls": ["create a"]}]}


class Counted:
    """A resource that reads its facts through the Reader: ``state`` is the world."""

    def __init__(self, key: str, world: dict[str, int], want: int, reads: list[str],
                 after: tuple[str, ...] = ()) -> None:
        self.key, self.after, self.world, self.want, self.reads = key, after, world, want, reads

    def read(self, reader: Reader) -> int:
        return reader.once(("world", self.key), self._read)

    def _read(self) -> int:
        self.reads.append(self.key)
        return self.world.get(self.key, 0)

    def plan(self, facts: int | None = None) -> list[Action]:
        have = self.read(Reader()) if facts is None else facts
        if have == self.want:
            return [noop(self.key, f"{self.key} is {have}")]
        return [Action(self.key, "set", f"{self.key} {have} -> {self.want}", (),
                       lambda: self.world.__setitem__(self.key, self.want))]


def test_facts_are_read_once_and_again_only_for_a_resource_about_to_change() -> None:
    world = {"a": 1, "b": 0, "c": 5, "e": 0}
    reads: list[str] = []
    resources = [Counted("a", world, 1, reads), Counted("b", world, 2, reads),
                 Counted("c", world, 5, reads, after=("a",)),
                 Counted("d", world, 0, reads, after=("b",)),
                 Counted("e", world, 7, reads, after=("a",))]
    Executor().apply(resources)
    assert world == {"a": 1, "b": 2, "c": 5, "e": 7}
    # a and c unchanged: read once each. b changes, but waits for nothing: its facts were
    # read as it began. e waited (for a, which changed nothing) and changes: read again just
    # before it acts. d waits for b, which changed something: read again before it plans.
    assert sorted(reads) == ["a", "b", "c", "d", "d", "e", "e"]
    reads.clear()
    assert make_plan(resources).empty
    assert sorted(reads) == ["a", "b", "c", "d", "e"]


class SharingRead(Counted):
    """Reads one fact every SharingRead reads (as the image resources and the cluster all
    read k3d's nodes) besides its own."""

    def read(self, reader: Reader) -> int:
        reader.once(("world", "shared"), lambda: self.reads.append("shared"))
        return super().read(reader)


def test_resources_ready_together_share_their_reads_again() -> None:
    """Issue 17: after a dependency changed something, what becomes ready at once re-reads
    through one Reader (the cluster and the images after the registry), so a fact several
    of them need is read once again, not once per resource."""
    world = {"a": 0}
    reads: list[str] = []
    resources = [Counted("a", world, 1, reads),
                 SharingRead("c", world, 3, reads, after=("a",)),
                 SharingRead("d", world, 4, reads, after=("a",))]
    Executor().apply(resources)
    assert world == {"a": 1, "c": 3, "d": 4}
    # the first gathering: a, shared, c, d; then c and d again after a changed, the shared
    # fact once for both
    assert sorted(reads) == ["a", "c", "c", "d", "d", "shared", "shared"]

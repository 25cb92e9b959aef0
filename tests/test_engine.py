"""The engine's executor: dependencies first, independent resources in parallel, each
re-planned from fresh facts before it acts, and a failure skips what depended on it."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

import pytest

from devslice.engine import Action, Event, Executor
from devslice.engine.plan import Plan, make_plan, noop, order
from devslice.errors import CommandFailed, DevsliceError
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


class Guarded(Counted):
    """A Counted whose plan holds after its dependencies changed (``plan_holds``), and whose
    change the world refuses when the facts no longer hold, as k3d refuses to create a cluster
    whose name exists. ``meanwhile`` runs as the step is about to act (someone else's change);
    ``refuse`` makes every attempt fail."""

    def __init__(self, *args: object, holds: bool = True, meanwhile: object = None,
                 refuse: bool = False, **kw: object) -> None:
        super().__init__(*args, **kw)  # type: ignore[arg-type]
        self.holds, self.meanwhile, self.refuse = holds, meanwhile, refuse
        self.attempts = 0
        self.asked: list[frozenset[str]] = []

    def plan_holds(self, facts: int, changed: frozenset[str]) -> bool:
        self.asked.append(changed)
        return self.holds

    def plan(self, facts: int | None = None) -> list[Action]:
        have = self.read(Reader()) if facts is None else facts
        if have:
            return [noop(self.key, f"{self.key} is {have}")]
        return [Action(self.key, "create", f"{self.key} is missing", (), self._create)]

    def _create(self) -> None:
        self.attempts += 1
        if callable(self.meanwhile):
            self.meanwhile()
            self.meanwhile = None
        if self.refuse or self.world.get(self.key):
            raise CommandFailed(f"{self.key} already exists" if self.world.get(self.key)
                                else f"could not create {self.key}")
        self.world[self.key] = self.want


def test_a_plan_that_holds_is_acted_on_without_reading_again() -> None:
    """Issue 17: the cluster after the registry: its dependency changed something, and the
    resource says its plan from the first facts holds: one read, not two."""
    world: dict[str, int] = {}
    reads: list[str] = []
    b = Guarded("b", world, 2, reads, after=("a",))
    Executor().apply([Counted("a", world, 1, reads), b])
    assert world == {"a": 1, "b": 2}
    assert sorted(reads) == ["a", "b"]
    assert b.asked == [frozenset({"a"})] and b.attempts == 1


def test_a_plan_that_does_not_hold_reads_again() -> None:
    world: dict[str, int] = {}
    reads: list[str] = []
    b = Guarded("b", world, 2, reads, after=("a",), holds=False)
    Executor().apply([Counted("a", world, 1, reads), b])
    assert world == {"a": 1, "b": 2}
    assert sorted(reads) == ["a", "b", "b"]


def test_a_plan_that_holds_is_read_again_when_the_world_refuses_it() -> None:
    """Someone else made ``b`` between the first read and the create: the create is refused,
    the step reads again, and the new plan (nothing to do) stands: as with a re-read first."""
    world: dict[str, int] = {}
    reads: list[str] = []
    events: list[Event] = []
    b = Guarded("b", world, 2, reads, after=("a",),
                meanwhile=lambda: world.__setitem__("b", 9))
    [_, report] = Executor(on_event=events.append).apply([Counted("a", world, 1, reads), b])
    assert world == {"a": 1, "b": 9}
    assert sorted(reads) == ["a", "b", "b"]
    assert [a.verb for a in report.actions] == ["noop"] and report.status == "ok"
    assert [e.action.verb for e in events if e.kind == "plan" and e.resource == "b"
            and e.action is not None] == ["create", "noop"]


def test_a_refused_plan_that_still_holds_raises_the_refusal() -> None:
    """Read again after a failure, the same plan: the failure was the action's own, raised
    as it is (not tried twice)."""
    world: dict[str, int] = {}
    reads: list[str] = []
    b = Guarded("b", world, 2, reads, after=("a",), refuse=True)
    with pytest.raises(CommandFailed, match="could not create b"):
        Executor().apply([Counted("a", world, 1, reads), b])
    assert b.attempts == 1
    assert sorted(reads) == ["a", "b", "b"]


def test_a_noop_plan_after_a_dependency_changed_reads_again_whatever_the_hook_says() -> None:
    """What a dependency changed may make a plan that did nothing do something: read again."""
    world: dict[str, int] = {"b": 3}
    reads: list[str] = []
    b = Guarded("b", world, 3, reads, after=("a",))
    Executor().apply([Counted("a", world, 1, reads), b])
    assert sorted(reads) == ["a", "b", "b"]


class Taken(Guarded):
    """A Guarded that cannot be planned once someone else holds its name (``-1``)."""

    def plan(self, facts: int | None = None) -> list[Action]:
        if facts == -1:
            raise DevsliceError(f"{self.key} is taken by someone else")
        return super().plan(facts)


def test_a_refused_plan_whose_fresh_facts_cannot_be_planned_raises_why() -> None:
    """The fresh facts' plan error says more than the refusal (a located config error
    rather than k3d's message): that is what the step raises."""
    world: dict[str, int] = {}
    reads: list[str] = []
    b = Taken("b", world, 2, reads, after=("a",), meanwhile=lambda: world.__setitem__("b", -1))
    with pytest.raises(DevsliceError, match="b is taken by someone else"):
        Executor().apply([Counted("a", world, 1, reads), b])
    assert sorted(reads) == ["a", "b", "b"]

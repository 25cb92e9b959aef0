"""Runs resources' actions: dependencies first, independent resources in parallel.

Facts are gathered once for every resource at the start (one read per system and kind); a
step waits for its own facts only. A resource whose dependencies changed something reads its
own facts again before it plans (the resources that become ready together share those
reads); a resource that waited for others and whose plan changes
something reads its own facts again and re-plans just before it acts (a stale plan is never
trusted, after pyinfra v3). A no-op run reads each system once.

One exception, decided by the resource (``plan_holds``, issue 17): a plan from the first
facts may be acted on after waiting without that re-read when none of what its dependencies
changed shows in those facts and every change it makes is refused by the system it acts on
if the facts no longer hold (k3d refuses to create a cluster whose name exists: a cold `up`'s
cluster need not list k3d's nodes again after the registry was made). Something outside
devslice that changed the world meanwhile then makes the action fail, changing nothing; the
step reads its facts again and re-plans once, and acts on that plan if it differs (the failure
was the stale facts) or raises the failure if not (it was not; a plan error on the fresh facts
is raised instead, as it says why). A re-read is never skipped
for a plan that changes nothing after a dependency changed, or for a resource without the
hook."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Any

from devslice.facts.world import Reader
from devslice.resources.plan import Action, Gathered, ReadingResource, Resource, order, reads


def read_one(resource: ReadingResource, reader: Reader | None = None) -> Gathered:
    try:
        return Gathered(resource.read(reader or Reader()))
    except Exception as exc:
        return Gathered(error=exc)


def gather(resources: Sequence[Resource], reader: Reader | None = None,
           max_workers: int = 8) -> dict[str, Gathered]:
    """Every reading resource's facts, read concurrently through one shared ``reader``."""
    reader = reader or Reader()
    readers = [r for r in resources if reads(r)]
    if not readers:
        return {}
    with ThreadPoolExecutor(max_workers=min(max_workers, len(readers))) as pool:
        found = list(pool.map(lambda r: read_one(r, reader), readers))
    return {r.key: g for r, g in zip(readers, found, strict=True)}


def plan_of(resource: Resource, gathered: Gathered | None) -> list[Action]:
    """The resource's actions from gathered facts (its own plan() when it reads nothing)."""
    if gathered is None or not reads(resource):
        return resource.plan()
    if gathered.error is not None:
        raise gathered.error
    return resource.plan(gathered.facts)


@dataclass(frozen=True)
class Event:
    """Progress, for the live view and for `-o json` (one JSON object per line)."""

    kind: str  # plan | start | done | failed | skipped
    resource: str
    at: float  # seconds since the run started
    action: Action | None = None
    seconds: float | None = None
    error: str | None = None

    def as_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"event": self.kind, "resource": self.resource,
                             "at": round(self.at, 4)}
        if self.action is not None:
            d.update(verb=self.action.verb, reason=self.action.reason)
        if self.seconds is not None:
            d["seconds"] = round(self.seconds, 4)
        if self.error is not None:
            d["error"] = self.error
        return d


@dataclass
class StepReport:
    resource: str
    actions: list[Action] = field(default_factory=list)
    started: float = 0.0
    seconds: float = 0.0
    status: str = "pending"  # ok | failed | skipped
    error: str | None = None


class Executor:
    def __init__(self, max_workers: int = 8,
                 on_event: Callable[[Event], None] | None = None) -> None:
        self.max_workers = max_workers
        self.on_event = on_event or (lambda e: None)
        self._t0 = 0.0
        self._lock = threading.Lock()
        self._facts: dict[str, Future[Gathered]] = {}
        self._changed: set[str] = set()  # keys of resources that changed something

    def _emit(self, kind: str, resource: str, **kw: Any) -> None:
        with self._lock:
            self.on_event(Event(kind, resource, time.monotonic() - self._t0, **kw))

    def _run_one(self, resource: Resource, wave: Reader) -> StepReport:
        report = StepReport(resource.key, started=time.monotonic() - self._t0)
        t = time.monotonic()
        self._emit("start", resource.key)
        actions, unchecked = self._plan(resource, wave)
        try:
            self._act(resource, actions)
        except Exception:
            if not unchecked or not reads(resource):
                raise
            # acted on facts read before it waited (plan_holds), and the system refused: read
            # them again; a different plan means the world changed meanwhile, so act on it; the
            # same plan means the facts held and the failure is the action's own (as does a
            # failed read); a plan refused on the fresh facts says why better than the failure
            again = read_one(resource, Reader())
            if again.error is not None:
                raise
            fresh = resource.plan(again.facts)
            if fresh == actions:
                raise
            actions = fresh
            self._act(resource, actions)
        report.actions = actions
        report.seconds = time.monotonic() - t
        report.status = "ok"
        if any(a.changes for a in actions):
            with self._lock:
                self._changed.add(resource.key)
        self._emit("done", resource.key, seconds=report.seconds)
        return report

    def _act(self, resource: Resource, actions: list[Action]) -> None:
        for action in actions:
            self._emit("plan", resource.key, action=action)
            if action.changes and action.execute is not None:
                action.execute()

    def _plan(self, resource: Resource, wave: Reader) -> tuple[list[Action], bool]:
        """The actions to take, and whether they come from facts read before the resource
        waited and were not read again (``plan_holds``)."""
        if not reads(resource):
            return resource.plan(), False  # reads its facts itself, now its dependencies are ready
        with self._lock:
            changed = frozenset(self._changed & set(resource.after))
        future = self._facts.get(resource.key)
        gathered = future.result() if future is not None else None
        if gathered is not None and gathered.error is None:
            if not changed:
                actions = resource.plan(gathered.facts)
                if not resource.after or not any(a.changes for a in actions):
                    # nothing to do; or nothing to wait for, so the facts gathered as the run
                    # began were read as this step began: as fresh as reading them again
                    return actions, False
                if self._holds(resource, gathered.facts, changed):
                    return actions, True
            else:
                actions = self._plan_if_it_holds(resource, gathered.facts, changed)
                if actions:
                    return actions, True
        # what it waits for changed the world, its first read failed (no cluster yet), or it
        # waited and is about to act: its own facts again, read through the reader of the
        # resources that became ready with it (the images and the cluster after the
        # registry share their reads, as the first gathering does)
        return plan_of(resource, read_one(resource, wave)), False

    @staticmethod
    def _holds(resource: Resource, facts: Any, changed: frozenset[str]) -> bool:
        holds = getattr(resource, "plan_holds", None)
        return holds is not None and bool(holds(facts, changed))

    def _plan_if_it_holds(self, resource: ReadingResource, facts: Any,
                          changed: frozenset[str]) -> list[Action]:
        """The plan from the first facts after dependencies changed something, if the
        resource says it holds and it changes something ([]: read again)."""
        if not self._holds(resource, facts, changed):
            return []
        try:
            actions = resource.plan(facts)
        except Exception:  # decided on fresh facts instead, as without the hook
            return []
        return actions if any(a.changes for a in actions) else []

    def apply(self, resources: Sequence[Resource]) -> list[StepReport]:
        """Bring every resource to its desired state; returns a report per resource in
        dependency order. Raises the first DevsliceError after letting running steps end."""
        self._t0 = time.monotonic()
        ordered = order(resources)
        self._changed = set()
        # Every resource's facts are read at once through one Reader; a step waits for its
        # own facts only, not for every read (the registry need not wait for Kubernetes).
        reader = Reader()
        readers = [r for r in ordered if reads(r)]
        facts_pool = ThreadPoolExecutor(max_workers=max(1, min(self.max_workers, len(readers))))
        self._facts = {r.key: facts_pool.submit(read_one, r, reader) for r in readers}
        try:
            return self._apply(ordered)
        finally:
            facts_pool.shutdown(wait=True)

    def _apply(self, ordered: list[Resource]) -> list[StepReport]:
        reports = {r.key: StepReport(r.key) for r in ordered}
        waiting = {r.key: set(r.after) for r in ordered}
        by_key = {r.key: r for r in ordered}
        running: dict[Future[StepReport], str] = {}
        failures: list[BaseException] = []
        with ThreadPoolExecutor(max_workers=self.max_workers) as pool:
            while waiting or running:
                wave = Reader()  # what becomes ready at once re-reads the world once
                for key in [k for k, deps in waiting.items() if not deps]:
                    del waiting[key]
                    running[pool.submit(self._run_one, by_key[key], wave)] = key
                if not running:
                    break  # everything left waits on something that failed
                done, _ = wait(running, return_when=FIRST_COMPLETED)
                for future in done:
                    key = running.pop(future)
                    try:
                        reports[key] = future.result()
                    except BaseException as exc:
                        failures.append(exc)
                        reports[key].status = "failed"
                        reports[key].error = str(exc)
                        self._emit("failed", key, error=getattr(exc, "message", str(exc)))
                        for other in self._dependents(key, waiting):
                            del waiting[other]
                            reports[other].status = "skipped"
                            reports[other].error = f"{key} failed"
                            self._emit("skipped", other, error=f"{key} failed")
                        continue
                    for deps in waiting.values():
                        deps.discard(key)
        if failures:
            raise failures[0]
        return [reports[r.key] for r in ordered]

    def run_actions(self, actions: Sequence[Action]) -> None:
        """Execute independent changing actions at once (`down`: N containers that ignore
        SIGTERM cost one stop timeout, not N; issue 13). Raises the first error after every
        action ended."""
        changing = [a for a in actions if a.changes and a.execute is not None]
        if not changing:
            return
        with ThreadPoolExecutor(max_workers=min(self.max_workers, len(changing))) as pool:
            futures = [pool.submit(a.execute) for a in changing]  # type: ignore[arg-type]
        for future in futures:
            future.result()

    @staticmethod
    def _dependents(key: str, waiting: dict[str, set[str]]) -> list[str]:
        out: list[str] = []
        frontier = {key}
        while frontier:
            nxt = {k for k, deps in waiting.items() if deps & frontier and k not in out}
            out.extend(sorted(nxt))
            frontier = nxt
        return out

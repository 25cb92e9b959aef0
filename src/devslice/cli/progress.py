"""Progress of `devslice up`: a live step view for people, JSON lines or YAML documents for CI."""

from __future__ import annotations

import threading
import time
from typing import TYPE_CHECKING, Any

from devslice.cli.output import Plain, Table, console, event_line

if TYPE_CHECKING:
    from devslice.engine import Event, StepReport


class Events:
    """Each event as it happens, flushed, for CI logs and tools: one JSON object per line
    (-o json), or one YAML document each (-o yaml)."""

    def __init__(self, fmt: str) -> None:
        self.fmt = fmt

    def __call__(self, event: Event) -> None:
        self.line(event.as_dict())

    def line(self, data: dict[str, Any]) -> None:
        event_line(data, self.fmt)


_MARKS = {"start": ("…", "yellow"), "done": ("✓", "green"), "failed": ("✗", "red"),
          "skipped": ("-", "dim")}


class LiveSteps:
    """A rich live table: each resource, its state, what it is doing, and its time. Piped
    (no terminal), the table as it ends, printed once, as rich's ``Live`` prints to a file,
    without loading rich or refreshing in a thread."""

    def __init__(self) -> None:
        self._rows: dict[str, dict[str, Any]] = {}
        self._lock = threading.Lock()
        self._live: Any = None
        if not isinstance(console(), Plain):
            from rich.live import Live  # lazy: rich, only for a terminal

            self._live = Live(self._table().rich(), console=console(), refresh_per_second=8,
                              transient=False)

    def _table(self) -> Table:
        t = Table("state", "resource", "doing", "time", show_header=False)
        now = time.monotonic()
        for key, row in self._rows.items():
            seconds = row.get("seconds")
            if seconds is None and "started" in row:
                seconds = now - row["started"]
            t.add_row(row["mark"], key, row.get("doing", ""),
                      f"{seconds:5.1f}s" if seconds is not None else "")
        return t

    def _update(self) -> None:
        if self._live is not None:
            self._live.update(self._table().rich())

    def __call__(self, event: Event) -> None:
        with self._lock:
            row = self._rows.setdefault(event.resource, {"mark": ("·", "dim")})
            if event.kind in _MARKS:
                row["mark"] = _MARKS[event.kind]
            if event.kind == "start":
                row["started"] = time.monotonic()
            elif event.kind == "plan" and event.action is not None:
                row["doing"] = (f"{event.action.verb}: {event.action.reason}"
                                if event.action.changes else event.action.reason)
            elif event.kind == "done":
                row["seconds"] = event.seconds
            elif event.kind in ("failed", "skipped"):
                row["doing"] = event.error or ""
            self._update()

    def progress(self, resource: str, line: str) -> None:
        """A line of what a step is doing now (a rollout's state, say)."""
        with self._lock:
            self._rows.setdefault(resource, {"mark": _MARKS["start"]})["doing"] = line
            self._update()

    def __enter__(self) -> LiveSteps:
        if self._live is not None:
            self._live.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._live is not None:
            self._live.stop()
        elif self._rows:
            console().print(self._table())


def print_breakdown(reports: list[StepReport], wall: float) -> None:
    """Time to ready, per step, and what the critical path cost."""
    t = Table("step", "started", "took", "changes", title=f"ready in {wall:.1f}s")
    for r in sorted(reports, key=lambda r: r.started):
        changes = sum(a.changes for a in r.actions)
        t.add_row(r.resource, f"+{r.started:.1f}s", f"{r.seconds:.1f}s",
                  str(changes) if r.status == "ok" else r.status)
    console().print(t)

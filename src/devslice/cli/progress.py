"""Progress of `devslice up`: a live step view for people, JSON lines or YAML documents for CI."""

from __future__ import annotations

import threading
import time
from typing import TYPE_CHECKING, Any

from devslice.cli.output import console, event_line

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


class LiveSteps:
    """A rich live table: each resource, its state, what it is doing, and its time."""

    def __init__(self) -> None:
        from rich.live import Live  # lazy: rich, only for output

        self._rows: dict[str, dict[str, Any]] = {}
        self._lock = threading.Lock()
        self._live = Live(self._table(), console=console(), refresh_per_second=8,
                          transient=False)

    def _table(self) -> Any:
        from rich.table import Table  # lazy: rich, only for output

        t = Table(box=None, show_header=False, padding=(0, 1))
        for col in ("state", "resource", "doing", "time"):
            t.add_column(col)
        now = time.monotonic()
        for key, row in self._rows.items():
            seconds = row.get("seconds")
            if seconds is None and "started" in row:
                seconds = now - row["started"]
            t.add_row(row["mark"], key, row.get("doing", ""),
                      f"{seconds:5.1f}s" if seconds is not None else "")
        return t

    def __call__(self, event: Event) -> None:
        marks = {"start": "[yellow]…[/]", "done": "[green]✓[/]", "failed": "[red]✗[/]",
                 "skipped": "[dim]-[/]"}
        with self._lock:
            row = self._rows.setdefault(event.resource, {"mark": "[dim]·[/]"})
            if event.kind in marks:
                row["mark"] = marks[event.kind]
            if event.kind == "start":
                row["started"] = time.monotonic()
            elif event.kind == "plan" and event.action is not None:
                row["doing"] = (f"{event.action.verb}: {event.action.reason}"
                                if event.action.changes else event.action.reason)
            elif event.kind == "done":
                row["seconds"] = event.seconds
            elif event.kind in ("failed", "skipped"):
                row["doing"] = event.error or ""
            self._live.update(self._table())

    def progress(self, resource: str, line: str) -> None:
        """A line of what a step is doing now (a rollout's state, say)."""
        with self._lock:
            self._rows.setdefault(resource, {"mark": "[yellow]…[/]"})["doing"] = line
            self._live.update(self._table())

    def __enter__(self) -> LiveSteps:
        self._live.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._live.stop()


def print_breakdown(reports: list[StepReport], wall: float) -> None:
    """Time to ready, per step, and what the critical path cost."""
    from rich.table import Table  # lazy: rich, only for output

    t = Table(title=f"ready in {wall:.1f}s", box=None, header_style="bold")
    for col in ("step", "started", "took", "changes"):
        t.add_column(col)
    for r in sorted(reports, key=lambda r: r.started):
        changes = sum(a.changes for a in r.actions)
        t.add_row(r.resource, f"+{r.started:.1f}s", f"{r.seconds:.1f}s",
                  str(changes) if r.status == "ok" else r.status)
    console().print(t)

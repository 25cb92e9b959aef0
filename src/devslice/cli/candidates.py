"""What shell completion offers: the slices' handles and the team's services.

Completion runs on every Tab, so these facts are read-only, quick and never fail: whatever
cannot be read (no config, a locked or foreign ledger, a ledger in Azure Blob Storage, which
would mean a network call per Tab) yields fewer names, never an error. A SQLite ledger is
opened read-only (``mode=ro``: nothing is created or stamped) with a short busy timeout; the
other ledgers offer the handles this checkout knows locally (the current slice and
devslice.local.yaml's ``slice:``).
"""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime
from pathlib import Path

BUSY_TIMEOUT = 0.2  # seconds: a Tab must not hang behind a writer


def _project(config: str | None) -> object | None:
    # lazy: pydantic models cost a Tab ~100 ms; only needed with a config
    from devslice.project import Project

    try:
        return Project.load(config)
    except Exception:  # completion offers nothing rather than failing
        return None


def handles(config: str | None = None) -> list[str]:
    """The live slices' handles (sorted), from the ledger when it is a SQLite file."""
    # lazy: pydantic models cost a Tab ~100 ms; only needed with a config
    from devslice.project import Project

    project = _project(config)
    if not isinstance(project, Project):
        return []
    found: set[str] = set()
    try:
        marker = project.current_handle_marker()
        local, _ = project.local()
        found.update(h for h in (marker, local.slice if local else None) if h)
    except Exception:  # a broken local file: still offer the ledger's
        pass
    settings = project.env.ledger
    if settings.backend == "sqlite":
        found.update(_sqlite_handles(project.base_dir / settings.path))
    return sorted(found)


def _sqlite_handles(path: Path) -> set[str]:
    from devslice.slices.model import Slice  # lazy: only when the ledger is read

    if not path.is_file():
        return set()
    now = datetime.now(UTC)
    try:
        conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True,
                               timeout=BUSY_TIMEOUT)
    except sqlite3.Error:
        return set()
    try:
        rows = conn.execute("SELECT handle, doc FROM slices").fetchall()
    except sqlite3.Error:
        return set()
    finally:
        conn.close()
    live = set()
    for handle, doc in rows:
        try:
            if not Slice.model_validate_json(doc).expired(now):
                live.add(str(handle))
        except ValueError:
            continue
    return live


def services(config: str | None = None) -> list[str]:
    """The team's services as devslice.yaml names them: ``services`` and ``images``."""
    # lazy: pydantic models cost a Tab ~100 ms; only needed with a config
    from devslice.project import Project

    project = _project(config)
    if not isinstance(project, Project):
        return []
    env = project.env
    return sorted({s.name for s in env.services} | {i.name for i in env.images})

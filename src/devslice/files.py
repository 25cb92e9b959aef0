"""Files devslice reads and writes by name, and files others read while devslice writes them."""

from __future__ import annotations

import os
from pathlib import Path

DEFAULT_FILENAME = "devslice.yaml"  # the team's config, committed
LOCAL_FILENAME = "devslice.local.yaml"  # the developer's own overrides beside it, not committed


def config_above(start: Path) -> Path | None:
    """devslice.yaml in ``start`` (resolved) or the nearest parent folder holding one."""
    here = start.resolve()
    for folder in (here, *here.parents):
        candidate = folder / DEFAULT_FILENAME
        if candidate.is_file():
            return candidate
    return None


def write_atomic(path: Path, text: str, mode: int = 0o600) -> None:
    """Write ``text`` to ``path`` so a reader sees the old file or the new one, never half
    of one: a temporary file beside it (unique per process), then a rename. ``mode`` is set on
    creation, so a file holding secrets is never readable by others, not even briefly."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise

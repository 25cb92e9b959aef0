"""The ``devslice`` command: a thin layer over :mod:`devslice.project`.

``main`` answers ``--version`` before importing click, pydantic or rich, so the one call
scripts make most often starts as fast as Python itself (see benchmarks/RESULTS.md).
"""

from __future__ import annotations

import gc
import os
import sys

from devslice import PLUGINS_OFF_MARKER, __version__


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    if args == ["--version"]:
        sys.stdout.write(f"devslice {__version__}\n")
        return
    if "PYDANTIC_DISABLE_PLUGINS" not in os.environ:  # read by pydantic at each model built
        os.environ["PYDANTIC_DISABLE_PLUGINS"] = "__all__"
        os.environ[PLUGINS_OFF_MARKER] = "1"
    from devslice.cli.app import run  # lazy: click, pydantic and rich: past the fast path

    code = run(args)
    # The command is done and the process ends with it: what it loaded (~300k objects: the
    # modules, pydantic's schemas) is frozen out of the collector, so the interpreter's exit
    # does not walk it in full collections (~20 ms of a no-op `up`). Objects are still
    # released, and finalized, by reference count.
    gc.freeze()
    sys.exit(code)

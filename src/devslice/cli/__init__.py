"""The ``devslice`` command: a thin layer over :mod:`devslice.project`.

``main`` answers ``--version`` before importing click, pydantic or rich, so the one call
scripts make most often starts as fast as Python itself (see benchmarks/RESULTS.md).
"""

from __future__ import annotations

import atexit
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
    if args[:1] == ["up"]:
        from devslice.local import early  # lazy: only `up`, and before click and pydantic

        # The emulators, when nothing they start from changed since the last `up`, begin
        # now, while this command loads and plans; its plan checks them (issue 17).
        early.start(args)
    # Registered first, so it runs last: the collections Python makes while it shuts down
    # would walk every object of the ~600 modules a command loads only to find them alive
    # until the end (~45 ms of `up`; issue 17). Finalizers and the other exit handlers run.
    atexit.register(gc.freeze)
    from devslice.cli.app import run  # lazy: click, pydantic and rich: past the fast path

    # What the command's start-up loaded lives to its end: frozen, the full collections the
    # rest of its imports trigger no longer walk it (19-25 ms of a k3d no-op `up`; issue 17).
    gc.freeze()
    sys.exit(run(args))

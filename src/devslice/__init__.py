"""devslice: an isolated development environment per developer, carved out of shared services.

Library first: everything the CLI does is a call on :class:`devslice.project.Project`::

    from devslice.project import Project
    project = Project.load("devslice.yaml")
    s = project.claim("ab")
    print(project.environment(s.handle).as_dict())

Heavy modules are imported lazily so that ``devslice --version`` starts fast.
"""

import os

__version__ = "0.1.0"

# The CLI turns pydantic's plugin loader off for itself (it scans every installed package's
# entry points, ~40 ms of a command's start, and devslice's models need no plugin); the
# marker says so, so that what it starts (services, debugged commands) gets the user's own
# setting back (issue 17).
PLUGINS_OFF_MARKER = "DEVSLICE_PYDANTIC_PLUGINS_OFF"


def child_environ(env: dict[str, str]) -> dict[str, str]:
    """``env`` (from os.environ) for a process the user runs: without the CLI's own switch."""
    if os.environ.get(PLUGINS_OFF_MARKER):
        env.pop("PYDANTIC_DISABLE_PLUGINS", None)
        env.pop(PLUGINS_OFF_MARKER, None)
    return env

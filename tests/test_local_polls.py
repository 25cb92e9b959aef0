"""How often the local runtime looks for a starting process (issue 17): every 5 ms at first,
as a script starting the processes directly would, then backing off, told by an injected
clock."""

from __future__ import annotations

from devslice.local.state import FAST_FOR, FAST_POLL, SLOW_POLL, poll_delays


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_first_looks_are_fast_then_back_off_to_the_slow_poll() -> None:
    clock = Clock()
    delays = poll_delays(clock)
    first = []
    while clock.now < 100.0 + FAST_FOR:
        d = next(delays)
        first.append(d)
        clock.now += d
    assert FAST_POLL <= 0.005
    assert set(first) == {FAST_POLL}  # a service ready after 300 ms is seen within 5 ms
    later = [next(delays) for _ in range(10)]
    assert later == sorted(later) and later[0] > FAST_POLL  # backs off ...
    assert later[-1] == SLOW_POLL  # ... to the slow look, no further
    clock.now += 3600
    assert next(delays) == SLOW_POLL


def test_the_supervisor_starts_without_the_clis_modules() -> None:
    """Each cold `up` starts two supervisors one after the other: what they import is on its
    critical path (issue 17). Neither the runner's dataclasses nor the error tree."""
    import subprocess
    import sys

    probe = ("import sys, devslice.local.supervisor\n"
             "print(' '.join(sorted(sys.modules)))")
    loaded = set(subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                                check=True).stdout.split())
    assert "devslice.local.supervisor" in loaded
    heavy = {"dataclasses", "devslice.errors", "devslice.adapters.runner", "pydantic",
             "devslice.project", "click"}
    assert not heavy & loaded

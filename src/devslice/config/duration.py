"""Durations written the way people say them: ``90m``, ``4h``, ``2d``, ``1h30m``, or a whole
number of seconds. The one parser for devslice.yaml (leases, timeouts) and the CLI (``--ttl``).
"""

from __future__ import annotations

import re
from datetime import timedelta

_PART = re.compile(r"(\d+)([smhdw])")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
MAX_DAYS = 365
# The longest duration accepted: a lease of more than a year is a mistake, and a bound keeps
# huge numbers (99999999999999999999d) from overflowing timedelta and datetime arithmetic.
MAX_SECONDS = MAX_DAYS * 86400
FORMS = "a number and a unit (s, m, h, d, w), for example 30m, 4h, 2d or 1h30m, or whole seconds"


def parse_duration(value: object) -> timedelta:
    """A positive duration of at most :data:`MAX_DAYS` days, from text with units (``4h``,
    ``1h30m``) or a whole number of seconds (``90``); anything else (floats, true/false, 0,
    negatives, text without a unit) raises ValueError saying what is expected."""
    if isinstance(value, bool) or not isinstance(value, int | str):
        shown = str(value).lower() if isinstance(value, bool) else repr(value)
        raise ValueError(f"{shown} is not a duration: expected {FORMS}")
    if isinstance(value, int):
        seconds, text = value, repr(value)
    else:
        s = value.strip().lower()
        parts = _PART.findall(s)
        if s.isdigit():
            parts = [(s, "s")]
        elif not s or "".join(n + u for n, u in parts) != s:
            raise ValueError(f"{value!r} is not a duration: expected {FORMS}")
        if any(len(n) > 15 for n, _ in parts):  # int() refuses past 4300 digits
            raise ValueError(f"{value!r} is longer than the maximum of {MAX_DAYS}d")
        # Python ints do not overflow; each part is checked before timedelta sees the sum.
        seconds, text = sum(int(n) * _UNITS[u] for n, u in parts), repr(value)
    if seconds <= 0:
        raise ValueError(f"{text} is not a positive duration: expected {FORMS}")
    if seconds > MAX_SECONDS:
        raise ValueError(f"{text} is longer than the maximum of {MAX_DAYS}d")
    return timedelta(seconds=seconds)


def format_duration(delta: timedelta) -> str:
    seconds = int(delta.total_seconds())
    out = []
    for unit in ("d", "h", "m", "s"):
        n, seconds = divmod(seconds, _UNITS[unit])
        if n:
            out.append(f"{n}{unit}")
    return "".join(out) or "0s"

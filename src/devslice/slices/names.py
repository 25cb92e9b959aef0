"""Naming rules of the shared services, and templates that derive a slice's names.

A template is text with placeholders: ``{team}``, ``{slice}`` and, for SignalR hubs, ``{hub}``.
Every template must contain ``{slice}``: that makes the name a one-to-one function of the
handle, so distinct handles always give distinct names.

Rules come from the services' documentation (see ``shared/reference/facts.md``).
"""

from __future__ import annotations

import re
import string
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

LETTERS = frozenset(string.ascii_lowercase)
ALNUM = frozenset(string.ascii_lowercase + string.digits)
PLACEHOLDER = re.compile(r"\{([a-z]+)\}")


@dataclass(frozen=True)
class NameRule:
    """What a service accepts as a name."""

    kind: str
    label: str
    pattern: re.Pattern[str]
    min_length: int
    max_length: int
    expected: str  # the rule in words, for error messages
    reserved_edges: str | None = None  # a prefix/suffix the service reserves
    # The service compares names ignoring case (SignalR lower-cases hub names; Event Hubs
    # and consumer group names are case-insensitive), so names differing only in case clash.
    ignores_case: bool = False

    def problem(self, name: str) -> str | None:
        """Why ``name`` breaks this rule, or None if it is valid."""
        if not self.min_length <= len(name) <= self.max_length:
            return (
                f"{name!r} has {len(name)} characters; a {self.label} needs "
                f"{self.min_length} to {self.max_length}"
            )
        if not self.pattern.fullmatch(name):
            return f"{name!r} is not a valid {self.label}: {self.expected}"
        if self.reserved_edges and (
            name.startswith(self.reserved_edges) or name.endswith(self.reserved_edges)
        ):
            return f"{name!r} starts or ends with {self.reserved_edges!r}, which is reserved"
        return None


_CONTAINER = re.compile(r"[a-z0-9](?:[a-z0-9]|-(?=[a-z0-9]))*")

RULES: dict[str, NameRule] = {
    r.kind: r
    for r in (
        NameRule(
            "storageAccount", "storage account name", re.compile(r"[a-z0-9]+"), 3, 24,
            "lowercase letters and digits only",
        ),
        NameRule(
            "container", "blob container name", _CONTAINER, 3, 63,
            "lowercase letters, digits and single hyphens, starting and ending with a "
            "letter or digit",
        ),
        NameRule(
            "queue", "storage queue name", _CONTAINER, 3, 63,
            "lowercase letters, digits and single hyphens, starting and ending with a "
            "letter or digit",
        ),
        NameRule(
            "dataExplorerDatabase", "Data Explorer database name",
            re.compile(r"[A-Za-z0-9_.\- ]+"), 1, 260,
            "letters, digits, '_', '.', '-' and spaces", reserved_edges="__",
        ),
        NameRule(
            "signalrHub", "SignalR hub name", re.compile(r"[A-Za-z][A-Za-z0-9_`,.\[\]]*"), 1, 128,
            "a letter, then letters, digits, '_', '`', ',', '.', '[' or ']' (no hyphens)",
            ignores_case=True,
        ),
        NameRule(
            "consumerGroup", "Event Hubs consumer group name",
            re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?"), 1, 50,
            "letters, digits, '.', '_' and '-', starting and ending with a letter or digit",
            ignores_case=True,
        ),
        NameRule(
            "eventHub", "event hub name",
            re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?"), 1, 256,
            "letters, digits, '.', '_' and '-', starting and ending with a letter or digit",
            ignores_case=True,
        ),
        NameRule(
            "generic", "name", re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?"), 1, 253,
            "letters, digits, '.', '_' and '-', starting and ending with a letter or digit",
        ),
    )
}


@dataclass(frozen=True)
class HandleRule:
    """Which handles a team allows: a lowercase letter, then lowercase letters and digits."""

    min_length: int = 2
    max_length: int = 8

    @property
    def pattern(self) -> re.Pattern[str]:
        return re.compile(rf"[a-z][a-z0-9]{{{self.min_length - 1},{self.max_length - 1}}}")

    def problem(self, handle: str) -> str | None:
        if self.pattern.fullmatch(handle):
            return None
        return (
            f"{handle!r} is not a valid slice handle: expected {self.min_length} to "
            f"{self.max_length} characters, a lowercase letter first, then lowercase letters "
            f"and digits (for example 'ab' or 'ci42')"
        )

    def representatives(self) -> Iterator[str]:
        """Handles that between them exercise every length and character class.

        Handles hold only [a-z0-9] with a letter first, and every rule above treats all
        lowercase letters alike and all digits alike at a given position, so a template
        that renders these validly renders every handle validly.
        """
        for n in range(self.min_length, self.max_length + 1):
            yield "a" * n
            yield "z" + "9" * (n - 1)


def placeholders(template: str) -> list[str]:
    return PLACEHOLDER.findall(template)


def render(template: str, **values: str) -> str:
    """Fill a template's placeholders. Unknown placeholders raise KeyError."""
    return PLACEHOLDER.sub(lambda m: values[m.group(1)], template)


def _positions(template: str, handle_length: int, values: dict[str, str],
               ignore_case: bool = False) -> list[frozenset[str]]:
    """The characters allowed at each position of a rendering, for one handle length
    (lower-cased for a service that ignores case)."""
    def fixed(text: str) -> list[frozenset[str]]:
        return [frozenset(c.lower() if ignore_case else c) for c in text]

    out: list[frozenset[str]] = []
    pos = 0
    for m in PLACEHOLDER.finditer(template):
        out.extend(fixed(template[pos : m.start()]))
        if m.group(1) == "slice":  # handles are lower case already
            out.append(LETTERS)
            out.extend([ALNUM] * (handle_length - 1))
        else:
            out.extend(fixed(values[m.group(1)]))
        pos = m.end()
    out.extend(fixed(template[pos:]))
    return out


def may_collide(a: str, b: str, handles: HandleRule, values: dict[str, str],
                ignore_case: bool = False) -> str | None:
    """A name that two different templates could both produce, or None if they never can
    (``ignore_case``: for a service that compares names ignoring case, the example is then
    in lower case).

    Each template, for a fixed handle length, produces names from a product of per-position
    character sets; two such products meet exactly when every position's sets meet. With
    ``{slice}`` used more than once this over-approximates (it ignores that the copies are
    equal), so it may report a collision that cannot happen, never miss one.
    """
    lengths = range(handles.min_length, handles.max_length + 1)
    # Each template's positions once per handle length, not once per pair of lengths.
    per_a = [_positions(a, n, values, ignore_case) for n in lengths]
    per_b = [_positions(b, n, values, ignore_case) for n in lengths]
    for pa in per_a:
        for pb in per_b:
            if len(pa) == len(pb) and all(x & y for x, y in zip(pa, pb, strict=True)):
                return "".join(min(x & y) for x, y in zip(pa, pb, strict=True))
    return None


def template_problems(
    template: str,
    rule: NameRule,
    handles: HandleRule,
    values: dict[str, str],
    allowed: Iterable[str] = ("team", "slice"),
) -> list[str]:
    """Everything wrong with a template, found before any slice uses it."""
    allowed = set(allowed)
    used = placeholders(template)
    unknown = sorted(set(used) - allowed)
    if unknown:
        names = ", ".join("{" + u + "}" for u in sorted(allowed))
        return [f"{template!r} uses {{{unknown[0]}}}; the placeholders allowed here are {names}"]
    leftover = PLACEHOLDER.sub("", template)
    if "{" in leftover or "}" in leftover:
        return [f"{template!r} has a stray brace; placeholders look like {{slice}}"]
    if "slice" not in used:
        return [
            f"{template!r} does not contain {{slice}}, so every slice would get the same "
            f"{rule.label}; add {{slice}}"
        ]
    problems: list[str] = []
    for handle in handles.representatives():
        problem = rule.problem(render(template, slice=handle, **values))
        if problem:
            problems.append(f"{template!r} can produce an invalid name for handle {handle!r}: "
                            f"{problem}")
            break
    return problems

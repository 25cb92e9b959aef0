"""Naming rules and the load-time template checks, against brute force over small handle sets."""

from __future__ import annotations

import itertools
import string

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from devslice.slices.names import RULES, HandleRule, may_collide, render, template_problems

SMALL = HandleRule(min_length=1, max_length=2)
VALUES = {"team": "t1"}


def all_handles(rule: HandleRule, alphabet: str = "ab0") -> list[str]:
    out = []
    for n in range(rule.min_length, rule.max_length + 1):
        for chars in itertools.product(alphabet, repeat=n):
            h = "".join(chars)
            if rule.problem(h) is None:
                out.append(h)
    return out


@pytest.mark.parametrize(
    ("kind", "name", "ok"),
    [
        ("storageAccount", "company1stacc4ab", True),
        ("storageAccount", "ab", False),
        ("storageAccount", "a" * 25, False),
        ("storageAccount", "Company1", False),
        ("container", "invoices-ab", True),
        ("container", "invoices--ab", False),
        ("container", "-invoices", False),
        ("signalrHub", "notifications_ab", True),
        ("signalrHub", "notifications-ab", False),
        ("signalrHub", "1hub", False),
        ("dataExplorerDatabase", "db4ab", True),
        ("dataExplorerDatabase", "__db", False),
        ("consumerGroup", "billing-ab", True),
        ("consumerGroup", "b" * 51, False),
    ],
)
def test_rules_follow_the_services(kind: str, name: str, ok: bool) -> None:
    assert (RULES[kind].problem(name) is None) is ok


def test_handles() -> None:
    rule = HandleRule()
    assert rule.problem("ab") is None
    assert rule.problem("ab12") is None
    for bad in ("a", "Ab", "1ab", "a-b", "abcdefghi", ""):
        assert rule.problem(bad) is not None
    assert rule.problem("A-B") == (
        "'A-B' is not a valid slice handle: expected 2 to 8 characters, a lowercase letter "
        "first, then lowercase letters and digits (for example 'ab' or 'ci42')"
    )


templates = st.builds(
    lambda pre, suf: pre + "{slice}" + suf,
    st.text(alphabet="ab0-", max_size=3),
    st.text(alphabet="ab0-", max_size=3),
)


@settings(max_examples=300, deadline=None)
@given(templates, templates)
def test_may_collide_never_misses_a_collision(a: str, b: str) -> None:
    """If two templates can render the same name, may_collide says so (soundness), and for
    one {slice} each it finds nothing when brute force finds nothing (exactness)."""
    handles = all_handles(SMALL)
    names_a = {render(a, slice=h) for h in handles}
    names_b = {render(b, slice=h) for h in handles}
    meet = names_a & names_b
    example = may_collide(a, b, SMALL, VALUES)
    if meet:
        assert example is not None
    if example is not None:
        assert example in {render(a, slice=h) for h in _expand(SMALL)}
        assert example in {render(b, slice=h) for h in _expand(SMALL)}


def _expand(rule: HandleRule) -> list[str]:
    return all_handles(rule, alphabet=string.ascii_lowercase[:3] + string.digits[:1])


def test_template_without_slice_is_refused() -> None:
    (problem,) = template_problems("shared", RULES["container"], HandleRule(), VALUES)
    assert "does not contain {slice}" in problem


def test_template_checked_for_every_handle_length() -> None:
    # 'x' + 8-character handle + 14 = 23 characters: fine; with maxLength 12 it is too long.
    t = "{slice}stacc4company1x"
    assert template_problems(t, RULES["storageAccount"], HandleRule(2, 8), VALUES) == []
    (problem,) = template_problems(t, RULES["storageAccount"], HandleRule(2, 12), VALUES)
    assert "has 25 characters" in problem


def test_may_collide_computes_each_templates_positions_once_per_length() -> None:
    """30 name templates and maxLength 16 made `devslice slice list` slow: the positions of
    the second template were recomputed for every length of the first. Counted with a
    profiler hook, not by replacing the function."""
    import sys
    from types import FrameType

    from devslice.slices import names

    rule = HandleRule(min_length=2, max_length=16)
    lengths = rule.max_length - rule.min_length + 1
    calls = 0

    def count(frame: FrameType, event: str, arg: object) -> None:
        nonlocal calls
        if event == "call" and frame.f_code is names._positions.__code__:
            calls += 1

    sys.setprofile(count)
    try:
        example = may_collide("svca-{slice}", "svcb-{slice}", rule, VALUES)  # never meet
    finally:
        sys.setprofile(None)
    assert example is None
    assert calls == 2 * lengths
    assert may_collide("in{slice}", "inv{slice}", rule, VALUES) == "inva0"

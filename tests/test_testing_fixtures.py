"""devslice.testing, as a team uses it: a test file of theirs with the plugin enabled."""

from __future__ import annotations

import pytest

pytest_plugins = ["pytester"]

USER_TEST = '''
from devslice.sdk import SliceContext
from devslice.sdk.eventhubs import SliceProducer
from devslice.testing import EmbeddedHub

pytest_plugins = ["devslice.testing.fixtures"]

def publish_order(order_id):  # the team's service code, reading the contract
    with SliceProducer.from_context("orders") as producer:
        producer.send(order_id, partition_key=order_id)

def test_orders_stay_in_the_slice(devslice_slice):
    publish_order("o-1")
    publish_order("o-2")
    hub = EmbeddedHub(devslice_slice.embedded_path)
    seen = {p: [e.body for e in hub.read("orders", p, -1)] for p in hub.partition_ids("orders")}
    assert sorted(b for p in ("1", "2") for b in seen[p]) == [b"o-1", b"o-2"]
    assert seen["0"] == seen["3"] == []
    assert SliceContext.from_env().handle == "test"
'''


def test_a_teams_test_runs_against_an_embedded_slice(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_user=USER_TEST)
    result = pytester.runpytest_subprocess("-q", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)

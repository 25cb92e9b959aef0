"""pytest fixtures for a team's own tests. Enable them in a conftest.py::

    pytest_plugins = ["devslice.testing.fixtures"]

``devslice_slice`` puts a slice's contract (embedded event hub in a temporary folder) into the
environment, so code that calls ``SliceContext.from_env()`` runs against it; ``devslice_azurite``
runs a real Azurite for the session (needs the npm package ``azurite``).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from devslice.sdk.context import SliceContext
from devslice.testing.azurite import Azurite, AzuriteNotFound
from devslice.testing.slice import embedded_slice_env


@pytest.fixture
def devslice_slice(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> SliceContext:
    env = embedded_slice_env(tmp_path, handle="test", partitions=(1, 2))
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return SliceContext.from_env(env)


@pytest.fixture(scope="session")
def devslice_azurite() -> Iterator[Azurite]:
    try:
        azurite = Azurite()
    except AzuriteNotFound as exc:
        pytest.skip(str(exc))
    with azurite:
        yield azurite

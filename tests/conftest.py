from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from devslice.testing import Azurite, AzuriteNotFound, find_azurite

from .helpers import REPO


@pytest.fixture(autouse=True)
def _identity(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests never read the developer's git identity or current slice."""
    monkeypatch.setenv("DEVSLICE_OWNER", "Anna Berg <anna@example.com>")
    monkeypatch.setenv("DEVSLICE_ACTOR", "tester@ci")
    monkeypatch.delenv("DEVSLICE_SLICE", raising=False)
    monkeypatch.delenv("DEVSLICE_CONFIG", raising=False)


@pytest.fixture(scope="session")
def azurite() -> Iterator[Azurite]:
    """A real Azurite for the whole session, with the dev account and two slice accounts."""
    try:
        find_azurite(REPO)
    except AzuriteNotFound:
        if os.environ.get("DEVSLICE_REQUIRE_AZURITE"):
            raise
        pytest.skip("azurite is not installed (npm install); CI sets DEVSLICE_REQUIRE_AZURITE")
    with Azurite(accounts=["devstoreaccount1", "company1stacc4ab", "company1stacc4cd"]) as az:
        yield az


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    return tmp_path

"""Test helpers a team can use to test its own services against a slice, without a cloud.

- ``Azurite`` runs the real Azure Storage emulator (npm package ``azurite``) as a process.
- ``embedded_slice_env`` / ``embedded_slice`` give a slice's contract on an embedded event hub.
- ``EmbeddedHub`` is the hub itself, to publish test input or inspect what a service sent.
- ``pytest_plugins = ["devslice.testing.fixtures"]`` adds the fixtures ``devslice_slice`` and
  ``devslice_azurite``.
- Wire-level fakes of what the engine drives, for tests of tools built on devslice:
  ``devslice.testing.kubeapi.FakeKubeAPI`` (a Kubernetes API server) and
  ``devslice.testing.dockerapi.FakeDockerEngine`` / ``FakeRegistry``. Import them from their
  modules (they are not loaded with this package).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from devslice.embedded import EmbeddedHub
    from devslice.testing.azurite import Azurite, AzuriteNotFound, find_azurite
    from devslice.testing.slice import embedded_slice, embedded_slice_env

# Loaded on first use: importing this package must not load the embedded hub (and with it
# azure-eventhub) or anything else heavy.
_HOMES = {"Azurite": "devslice.testing.azurite", "AzuriteNotFound": "devslice.testing.azurite",
          "find_azurite": "devslice.testing.azurite", "EmbeddedHub": "devslice.embedded",
          "embedded_slice": "devslice.testing.slice",
          "embedded_slice_env": "devslice.testing.slice"}

__all__ = ["Azurite", "AzuriteNotFound", "EmbeddedHub", "embedded_slice", "embedded_slice_env",
           "find_azurite"]


def __getattr__(name: str) -> Any:
    if name not in _HOMES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(_HOMES[name]), name)
    globals()[name] = value
    return value

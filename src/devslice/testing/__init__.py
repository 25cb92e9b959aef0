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

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from devslice.embedded import EmbeddedHub
    from devslice.testing.azurite import Azurite, AzuriteNotFound, find_azurite
    from devslice.testing.slice import embedded_slice, embedded_slice_env

__all__ = ["Azurite", "AzuriteNotFound", "EmbeddedHub", "embedded_slice", "embedded_slice_env",
           "find_azurite"]

# Loaded on first use: `devslice up` finds Azurite through devslice.testing.azurite, and
# importing that package must not load the embedded hub and azure-eventhub (issue 17).
_WHERE = {"EmbeddedHub": "devslice.embedded", "Azurite": "devslice.testing.azurite",
          "AzuriteNotFound": "devslice.testing.azurite",
          "find_azurite": "devslice.testing.azurite",
          "embedded_slice": "devslice.testing.slice",
          "embedded_slice_env": "devslice.testing.slice"}


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module 'devslice.testing' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(_WHERE[name]), name)
    globals()[name] = value
    return value

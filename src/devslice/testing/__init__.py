"""Test helpers a team can use to test its own services against a slice, without a cloud.

``Azurite`` runs the real Azure Storage emulator (npm package ``azurite``) as a process.
"""

from devslice.testing.azurite import Azurite, AzuriteNotFound, find_azurite

__all__ = ["Azurite", "AzuriteNotFound", "find_azurite"]

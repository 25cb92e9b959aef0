"""``devslice.local.yaml``: a developer's own settings beside the team's file (not committed)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field

from devslice.config.load import parse_config, read_config_text
from devslice.config.model import EnvMap, Model
from devslice.files import LOCAL_FILENAME


class LocalOverrides(Model):
    """Personal settings: which slice is mine here, and variables I override.

    The overrides belong to the slice named by ``slice:`` and to no other slice of the
    checkout (issue 11: an override naming aa's partitions must not reach bb's services).
    """

    api_version: Literal["devslice.dev/v1alpha1"] = Field(alias="apiVersion")
    kind: Literal["LocalOverrides"]
    # A handle's shape (the team's length limits are checked where it is used): it names
    # files such as .devslice/HANDLE.env, so nothing else may pass (issue 12).
    slice: str | None = Field(None, pattern=r"^[a-z][a-z0-9]{0,15}$")
    env: EnvMap = Field(default_factory=dict)

    def semantic_issues(self) -> list[tuple[tuple[str | int, ...], str]]:
        if self.env and not self.slice:
            return [(("env",), "overrides must name the slice they are for: add `slice: "
                               "HANDLE` (they apply to that slice only)")]
        return []


def load_local(config_dir: Path) -> tuple[LocalOverrides | None, Path]:
    path = config_dir / LOCAL_FILENAME
    if not path.is_file():
        return None, path
    return parse_config(read_config_text(path), str(path), LocalOverrides), path

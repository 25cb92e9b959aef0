"""``devslice init``: a commented starter devslice.yaml that validates as written."""

from __future__ import annotations

import re
from importlib.resources import files
from pathlib import Path

from devslice.errors import ConfigError, ConfigIssue, DevsliceError


def starter_text(team: str) -> str:
    if not re.fullmatch(r"[a-z][a-z0-9]{1,15}", team):
        raise DevsliceError(
            f"{team!r} is not a valid team prefix: expected 2 to 16 lowercase letters and "
            f"digits, starting with a letter",
            hint="for example: devslice init --team company1",
        )
    template = files("devslice.config").joinpath("starter.yaml").read_text(encoding="utf-8")
    return template.format(team=team)


def write_starter(path: Path, team: str, force: bool = False) -> Path:
    text = starter_text(team)
    if path.exists() and not force:
        raise ConfigError(
            [ConfigIssue(str(path), None, None, "", "already exists; devslice init leaves it "
                                                    "as it is")],
            hint="pass --force to overwrite it, or -o to write elsewhere",
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path

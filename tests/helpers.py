from __future__ import annotations

import textwrap
from pathlib import Path

from devslice.config import Environment, parse_config

REPO = Path(__file__).resolve().parent.parent
SHARED = REPO.parent / "shared"

BASE = """\
apiVersion: devslice.dev/v1alpha1
kind: Environment
team: company1
"""


def env_from(text: str = "", path: str = "devslice.yaml") -> Environment:
    """An Environment from the base document plus extra YAML."""
    return parse_config(BASE + textwrap.dedent(text), path, Environment)

"""The contract in the formats tools read: dotenv, shell, JSON and Kubernetes objects.

Where secrets go: dotenv and k8s output hold real values and are written to files with mode
0600; shell output refers to a secret's source (``"${VAR}"``, ``"$(cat FILE)"``) so that
``eval "$(devslice env --format shell)"`` works without the value ever being printed; JSON
masks secrets. ConfigMaps never hold a secret.
"""

from __future__ import annotations

import json
import re
import shlex
from collections.abc import Iterable
from typing import Any

from devslice.contract.variables import Variable
from devslice.secrets import MASK, Secret

_PLAIN = re.compile(r"[A-Za-z0-9_./:,@+-]*")


def dotenv_value(value: str) -> str:
    """One value for a .env file, written so that Docker Compose (compose-go) reads it back
    unchanged.

    Compose and python-dotenv expand variables in unquoted and double-quoted values, so a
    value with ``$`` goes in single quotes, which Compose takes literally. Nothing is
    backslash-escaped inside them: python-dotenv reads ``\\\\`` there as one backslash,
    Compose as two. A value with ``$`` that single quotes cannot hold (a single quote, a
    backslash or a line break) is double-quoted with ``$`` written ``\\$``, Compose's escape
    for a literal dollar. Caveats for python-dotenv (1.2): it keeps the backslash of ``\\$``,
    and expands ``${VAR}`` even in single quotes unless loaded with ``interpolate=False``.
    """
    if _PLAIN.fullmatch(value):
        return value
    if "$" in value and not any(c in value for c in "'\\\n\r"):
        return f"'{value}'"
    escaped = (value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
               .replace("\r", "\\r").replace("$", "\\$"))
    return f'"{escaped}"'


def dotenv(variables: Iterable[Variable]) -> str:
    lines = ["# written by devslice; holds secrets, keep it out of version control"]
    for v in variables:
        value = v.value.reveal() if isinstance(v.value, Secret) else v.value
        lines.append(f"{v.name}={dotenv_value(value)}")
    return "\n".join(lines) + "\n"


def shell(variables: Iterable[Variable]) -> str:
    lines = []
    for v in variables:
        if isinstance(v.value, Secret):
            kind, _, where = v.value.source.partition(":")
            if kind == "env":
                lines.append(f'export {v.name}="${{{where}}}"')
            elif kind == "file":
                lines.append(f'export {v.name}="$(cat {shlex.quote(where)})"')
            else:  # written in devslice.local.yaml: there is no source to refer to
                lines.append(f"# {v.name} is a secret from {where or kind}; it is not printed: "
                             "use --format dotenv")
        else:
            lines.append(f"export {v.name}={shlex.quote(v.value)}")
    return "\n".join(lines) + "\n"


def as_json(variables: Iterable[Variable], explain: bool = False) -> str:
    vs = list(variables)
    if explain:
        data: Any = [
            {"name": v.name, "value": MASK if v.is_secret else v.value,
             "origin": v.origin.value, "source": v.source, "secret": v.is_secret}
            for v in vs
        ]
    else:
        data = {v.name: MASK if v.is_secret else v.value for v in vs}
    return json.dumps(data, indent=2) + "\n"


def k8s_objects(
    variables: Iterable[Variable], handle: str, namespace: str | None = None
) -> list[dict[str, Any]]:
    """A ConfigMap with the plain values and a Secret with the secrets, for ``envFrom``."""
    vs = list(variables)
    meta: dict[str, Any] = {
        "name": f"devslice-{handle}",
        "labels": {"app.kubernetes.io/managed-by": "devslice", "devslice.dev/slice": handle},
    }
    if namespace:
        meta["namespace"] = namespace
    config_map = {
        "apiVersion": "v1", "kind": "ConfigMap", "metadata": meta,
        "data": {v.name: v.value for v in vs if not isinstance(v.value, Secret)},
    }
    secret = {
        "apiVersion": "v1", "kind": "Secret", "metadata": meta, "type": "Opaque",
        "stringData": {v.name: v.value.reveal() for v in vs if isinstance(v.value, Secret)},
    }
    return [config_map, secret]


def k8s(variables: Iterable[Variable], handle: str, namespace: str | None = None) -> str:
    from io import StringIO

    from ruamel.yaml import YAML

    yaml = YAML()
    yaml.default_flow_style = False
    buf = StringIO()
    yaml.dump_all(k8s_objects(variables, handle, namespace), buf)
    return buf.getvalue()

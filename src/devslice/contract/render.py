"""The contract in the formats tools read: dotenv, shell, JSON and Kubernetes objects.

Where secrets go: dotenv and k8s output hold real values and are written to files with mode
0600; shell output refers to a secret's source (``"${VAR}"``, ``"$(cat FILE)"``) so that
``eval "$(devslice env -o shell)"`` works without the value ever being printed; JSON
masks secrets. ConfigMaps never hold a secret.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Iterable
from io import StringIO
from typing import Any, Literal

from devslice.contract.variables import Variable
from devslice.errors import DevsliceError
from devslice.secrets import MASK, Secret

_PLAIN = re.compile(r"[A-Za-z0-9_./:,@+-]*")

Format = Literal["shell", "dotenv", "k8s"]


class UnsafeVariableName(DevsliceError):
    """A variable name a shell, dotenv file or Kubernetes would not read as one name."""


def variable_name(name: str) -> str:
    """``name`` if every format reads it as one variable name, else an error: the config
    refuses such names at load, and this keeps any other path from writing one (issue 12)."""
    # lazy: config.model builds pydantic models, not needed for quoting
    from devslice.config.model import VARIABLE_NAME

    if not VARIABLE_NAME.fullmatch(name):
        raise UnsafeVariableName(
            f"{name!r} is not an environment variable name, so devslice will not write it",
            hint="use letters, digits and '_', not starting with a digit")
    return name


def quote(value: str, fmt: Format) -> str:
    """``value`` written so that ``fmt`` reads it back as exactly this text, never as code:
    the one place values are quoted for shell, dotenv and Kubernetes output (issue 12).

    shell: one POSIX single-quoted word; nothing inside is expanded, so ``$``, backticks,
    ``${...}`` and line breaks stay text.

    k8s: a double-quoted YAML scalar; YAML escapes what needs it, and ``8080`` or ``true``
    stay strings.

    dotenv: as Docker Compose (compose-go) reads it back unchanged. Compose and
    python-dotenv expand variables in unquoted and double-quoted values, so a value with
    ``$`` goes in single quotes, which Compose takes literally. Nothing is backslash-escaped
    inside them: python-dotenv reads ``\\\\`` there as one backslash, Compose as two. A value
    with ``$`` that single quotes cannot hold (a single quote, a backslash or a line break) is
    double-quoted with ``$`` written ``\\$``, Compose's escape for a literal dollar. Caveats
    for python-dotenv (1.2): it keeps the backslash of ``\\$``, and expands ``${VAR}`` even in
    single quotes unless loaded with ``interpolate=False``.
    """
    if fmt == "shell":
        return shlex.quote(value)
    if fmt == "k8s":
        # lazy: ruamel.yaml, only for the k8s format
        from ruamel.yaml.scalarstring import DoubleQuotedScalarString

        return DoubleQuotedScalarString(value)
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
        lines.append(f"{variable_name(v.name)}={quote(value, 'dotenv')}")
    return "\n".join(lines) + "\n"


def shell(variables: Iterable[Variable]) -> str:
    """``export`` lines for ``eval``. A secret is not printed: the line reads it from its
    source when evaluated, the variable (``"${VAR}"``, a name checked like every other) or
    the file (``"$(cat -- 'FILE')"``)."""
    lines = []
    for v in variables:
        name = variable_name(v.name)
        if isinstance(v.value, Secret):
            kind, _, where = v.value.source.partition(":")
            if kind == "env":
                lines.append(f'export {name}="${{{variable_name(where)}}}"')
            elif kind == "file":
                lines.append(f'export {name}="$(cat -- {quote(where, "shell")})"')
            elif kind == "keyvault":  # read by the Azure CLI when evaluated (issue 15)
                vault, _, secret = where.rpartition("/")
                target = (f"--id {quote(f'{vault}/secrets/{secret}', 'shell')}"
                          if vault.startswith("https://") else
                          f"--vault-name {quote(vault, 'shell')} --name {quote(secret, 'shell')}")
                lines.append(f'export {name}="$(az keyvault secret show {target} '
                             '--query value -o tsv)"')
            else:  # written in devslice.local.yaml: there is no source to refer to
                origin = " ".join(kind.split())  # a comment ends at a line break
                lines.append(f"# {name} is a secret from {origin}; it is not printed: "
                             "use -o dotenv")
        else:
            lines.append(f"export {name}={quote(v.value, 'shell')}")
    return "\n".join(lines) + "\n"


def as_data(variables: Iterable[Variable], explain: bool = False) -> Any:
    """The variables as JSON or YAML output holds them, secrets masked: name -> value, or
    with ``explain`` a list of each one's value, origin and source."""
    vs = list(variables)
    if explain:
        return [
            {"name": v.name, "value": MASK if v.is_secret else v.value,
             "origin": v.origin.value, "source": v.source, "secret": v.is_secret}
            for v in vs
        ]
    return {v.name: MASK if v.is_secret else v.value for v in vs}


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

    # lazy: ruamel.yaml, only for the k8s format
    from ruamel.yaml import YAML

    objects = k8s_objects(variables, handle, namespace)
    for obj in objects:
        key = "data" if obj["kind"] == "ConfigMap" else "stringData"
        obj[key] = {variable_name(k): quote(v, "k8s") for k, v in obj[key].items()}
    yaml = YAML()
    yaml.default_flow_style = False
    yaml.width = 2**31  # a long value stays on one line, as written
    buf = StringIO()
    yaml.dump_all(objects, buf)
    return buf.getvalue()

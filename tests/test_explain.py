"""The config reference comes from the schema: docs/config.md's generated section matches the
models (and fails when they drift apart), every key of the JSON Schema is documented with a
type and an example, `devslice explain KEY` prints one key like `kubectl explain`, and the
starter file points there, not to a path of devslice's checkout."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from ruamel.yaml import YAML

from devslice.cli.app import run
from devslice.config import Environment, parse_config
from devslice.config.explain import BEGIN, END, UnknownKey, find, keys, markdown, render_into
from devslice.config.starter import starter_text

from .helpers import BASE, REPO

DOCS = REPO / "docs" / "config.md"


def test_docs_config_md_is_generated_from_the_schema() -> None:
    text = DOCS.read_text(encoding="utf-8")
    assert BEGIN in text and END in text
    generated = text[text.index(BEGIN):text.index(END) + len(END)] + "\n"
    assert generated == markdown(), (
        "docs/config.md is out of date: run python -m devslice.config.explain --write "
        "docs/config.md")


def test_the_check_command_fails_on_drift(tmp_path: Path) -> None:
    stale = tmp_path / "config.md"
    stale.write_text(DOCS.read_text(encoding="utf-8").replace("| `cluster.registry.port` |",
                                                              "| `cluster.registry.prt` |"))
    argv = [sys.executable, "-m", "devslice.config.explain"]
    check = subprocess.run([*argv, "--check", str(stale)], capture_output=True, text=True,
                           check=False)
    assert check.returncode == 1 and "--write" in check.stderr
    assert subprocess.run([*argv, "--write", str(stale)], check=False).returncode == 0
    assert stale.read_text(encoding="utf-8") == DOCS.read_text(encoding="utf-8")
    assert render_into("# title\n") == "# title\n\n" + markdown()  # appended when absent


def _schema_paths(schema: dict[str, Any]) -> set[str]:
    """Every key path of the JSON Schema pydantic publishes (`devslice schema`): an
    independent reading of the same models."""
    defs = schema.get("$defs", {})
    found: set[str] = set()

    def resolve(node: dict[str, Any]) -> list[dict[str, Any]]:
        if "$ref" in node:
            return resolve(defs[node["$ref"].rsplit("/", 1)[-1]])
        alternatives = node.get("anyOf") or node.get("oneOf")
        if alternatives:
            return [n for a in alternatives for n in resolve(a)]
        return [node]

    def walk(node: dict[str, Any], prefix: str) -> None:
        for n in resolve(node):
            if n.get("title") == "SecretRef":
                continue
            for key, child in (n.get("properties") or {}).items():
                path = f"{prefix}{key}"
                found.add(path)
                walk(child, path + ".")
            if n.get("type") == "array" and "items" in n and prefix:
                walk(n["items"], prefix.removesuffix(".") + "[].")
            extra = n.get("additionalProperties")
            if isinstance(extra, dict) and prefix:
                walk(extra, prefix + "<name>.")

    walk(schema, "")
    return found


def test_every_key_of_the_schema_is_documented_with_type_and_example() -> None:
    documented = {k.path: k for k in keys()}
    schema = Environment.model_json_schema(by_alias=True, mode="validation")
    missing = _schema_paths(schema) - set(documented)
    assert missing == set()
    for k in documented.values():
        assert k.type, k.path
        if not k.is_object:
            assert k.example is not None, f"{k.path}: add Field(examples=...) or EXAMPLES"


def test_examples_are_accepted_by_the_loader() -> None:
    """Each example of a key outside lists and maps, written where it belongs, loads (unless
    the loader wants a sibling the example alone cannot give)."""
    from devslice.config.explain import example_yaml
    from devslice.errors import ConfigError

    checked = 0
    for k in keys():
        if k.example is None or k.only_when or "[]" in k.path or "<name>" in k.path or \
                k.path in ("apiVersion", "kind", "team"):
            continue
        text = BASE + example_yaml(k.path, k.example) + "\n"
        try:
            parse_config(text, "devslice.yaml", Environment)
        except ConfigError as exc:
            if not re.search(r"give exactly one|at least one|required|Field required",
                             str(exc)):
                raise AssertionError(f"the example of {k.path} is refused:\n{text}{exc}") \
                    from exc
        checked += 1
    assert checked > 50


def test_explain_one_key_like_kubectl(capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["explain", "cluster.registry.port"]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[:3] == ["KEY:     cluster.registry.port",
                                    "TYPE:    integer 1024-65535", "DEFAULT: 5050"]
    example = out.split("EXAMPLE:\n", 1)[1]
    assert YAML(typ="safe").load(example) == {"cluster": {"registry": {"port": 5050}}}


@pytest.mark.parametrize(("key", "port"), [
    ("cluster.registry.port", "5050"), ("storage.blobEndpointTemplate", "10000"),
    ("storage.queueEndpointTemplate", "10001"), ("containers.azurite.tablePort", "10002")])
def test_the_fixed_default_ports_are_explained(
        key: str, port: str, capsys: pytest.CaptureFixture[str]) -> None:
    """Issue 16: where devslice listens by default, and where to change it, is discoverable."""
    assert run(["explain", key]) == 0
    description = capsys.readouterr().out.split("DESCRIPTION:\n", 1)[1].split("EXAMPLE:")[0]
    assert port in description


def test_explain_an_object_lists_its_keys(capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["explain", "ledger"]) == 0
    out = capsys.readouterr().out
    assert re.search(r"^  backend\s+one of sqlite \| azureBlob$", out, re.M)
    assert re.search(r"^  accountUrl\s+string \(backend: azureBlob only\)$", out, re.M)
    assert run(["explain"]) == 0
    top = capsys.readouterr().out
    for name in ("cluster", "images", "manifests", "services", "containers"):
        assert re.search(rf"^  {name}\s", top, re.M), name


def test_explain_accepts_the_ways_people_write_list_and_map_keys() -> None:
    assert find("images.name").path == "images[].name"
    assert find("images[0].context").path == "images[].context"
    assert find("names.invoices.rule").path == "names.<name>.rule"
    assert find("containers.custom.ready.port").path == "containers.custom[].ready.port"


def test_an_unknown_key_says_what_is_close(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(UnknownKey, match=r"no key 'cluster\.regstry\.port'"):
        find("cluster.regstry.port")
    assert run(["explain", "cluster.regstry.port"]) == 1
    err = capsys.readouterr().err
    assert "did you mean cluster.registry.port" in err and "Traceback" not in err


def test_the_starter_points_to_explain_not_to_a_repository_path() -> None:
    text = starter_text("company1")
    assert "devslice explain" in text
    assert not re.search(r"docs/|\.md\b", text)


def test_examples_read_back_as_the_values_they_show() -> None:
    """The YAML written for each example (flow style, quoting only where YAML needs it) reads
    back as the example itself."""
    from devslice.config.explain import _plain, example_yaml

    for k in keys():
        if k.example is None:
            continue
        node: Any = YAML(typ="safe").load(example_yaml(k.path, k.example))
        for segment in k.path.replace(".<name>", ".NAME").split("."):
            node = node[0] if isinstance(node, list) else node
            node = node[segment.removesuffix("[]")]
        assert node == _plain(k.example), k.path

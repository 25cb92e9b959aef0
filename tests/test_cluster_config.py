"""The cluster section refuses at load, located, the values k3d, Docker and Kubernetes would
refuse later (issue 13 item 7): names that are not RFC 1123 labels, k3d v4 node filters,
port filters k3d rejects; and it reads `k3sArgs` as the README writes it."""

from __future__ import annotations

import json
import textwrap

import jsonschema
import pytest

from devslice.config import Environment, parse_config
from devslice.resources.k3d import k3d_config

from .helpers import BASE, SHARED, env_from

SCHEMA = SHARED / "schemas" / "k3d-config-v1alpha5.schema.json"


def errors(text: str) -> list[str]:
    from devslice.errors import ConfigError

    with pytest.raises(ConfigError) as info:
        parse_config(BASE + textwrap.dedent(text), "devslice.yaml", Environment)
    return [str(i) for i in info.value.issues]


def test_readme_spelling_k3s_args_is_read() -> None:
    env = env_from("""\
        cluster:
          k3sArgs: [{arg: --disable=traefik, nodeFilters: ["server:*"]}]
        """)
    assert [a.arg for a in env.cluster.k3s_args] == ["--disable=traefik"]
    # what `devslice schema` once published still reads
    old = env_from("cluster:\n  k3SArgs: [{arg: --disable=servicelb}]\n")
    assert [a.arg for a in old.cluster.k3s_args] == ["--disable=servicelb"]
    # and the schema for editors now names the README's spelling
    props = Environment.model_json_schema(by_alias=True)["$defs"]["ClusterSettings"][
        "properties"]
    assert "k3sArgs" in props and "k3SArgs" not in props


@pytest.mark.parametrize(("yaml", "where", "says"), [
    ("cluster:\n  name: shop-\n", "devslice.yaml:5:9: cluster.name",
     "'shop-' is not a valid cluster name (k3d uses it in hostnames) (it ends with '-')"),
    ("cluster:\n  name: Shop\n", "devslice.yaml:5:9: cluster.name", "not a valid cluster name"),
    ("cluster:\n  k3sArgs: [{arg: --disable=traefik, nodeFilters: ['server[0]']}]\n",
     "devslice.yaml:5:52: cluster.k3sArgs[0].nodeFilters[0]",
     "node filter 'server[0]' is k3d v4 syntax, which k3d v5 refuses: write 'server:0'"),
    ("cluster:\n  k3sArgs: [{arg: --x, nodeFilters: ['agent[*]']}]\n",
     "cluster.k3sArgs[0].nodeFilters[0]", "write 'agent:*'"),
    ("cluster:\n  k3sArgs: [{arg: --x, nodeFilters: ['server:0:proxy']}]\n",
     "cluster.k3sArgs[0].nodeFilters[0]", "k3d takes no suffix 'proxy' here"),
    ("cluster:\n  k3sArgs: [{arg: --x, nodeFilters: ['server:1']}]\n", "cluster",
     "node filter 'server:1' names a node the cluster does not have (1 server, numbered "
     "from 0)"),
    ("cluster:\n  ports: ['8080:80@lb']\n", "devslice.yaml:5:11: cluster.ports[0]",
     "'lb' is not a k3d node filter"),
    ("cluster:\n  ports: ['8080:80@loadbalancer:nope']\n", "cluster.ports[0]",
     "k3d takes no suffix 'nope': expected one of proxy, direct"),
    ("cluster:\n  ports: ['http:80@loadbalancer']\n", "cluster.ports[0]",
     "'http:80' is not a port mapping k3d accepts"),
    ("cluster:\n  ports: ['8080:80@']\n", "cluster.ports[0]", "no node filter after it"),
    ("manifests: [{name: platform-, path: deploy}]\n", "devslice.yaml:4:20: manifests[0].name",
     "'platform-' is not a valid layer name (it ends with '-')"),
    ("cluster:\n  kube: {namespaceTemplate: 'dev-{slice}-'}\n",
     "cluster.kube.namespaceTemplate", "is not a valid namespace (it ends with '-')"),
    ("cluster:\n  kube: {namespaceTemplate: 'Dev_{slice}'}\n",
     "cluster.kube.namespaceTemplate", "is not a valid namespace"),
    ("cluster:\n  kube: {namespaceTemplate: '{who}'}\n", "cluster.kube.namespaceTemplate",
     "cannot be filled in: use {slice} and {team} only"),
    ("cluster:\n  registry: {name: reg-}\n", "cluster.registry.name", "expected text matching"),
])
def test_values_the_tools_refuse_are_refused_at_load(yaml: str, where: str, says: str) -> None:
    (msg,) = errors(yaml)
    assert where in msg and says in msg, msg


def test_values_k3d_accepts_load_and_validate_against_its_schema() -> None:
    env = env_from("""\
        cluster:
          name: shop-2
          servers: 3
          agents: 2
          ports: ["8080:80@loadbalancer", "30000-30010:30000-30010@server:0:direct",
                  "127.0.0.1:9443:443/tcp@agent:0,1;agent:1"]
          k3sArgs:
            - {arg: --disable=traefik, nodeFilters: ["server:*"]}
            - {arg: --node-label=pool=x, nodeFilters: ["agents:0-1", "all"]}
        manifests: [{name: p2, path: deploy}]
        """)
    schema = json.loads(SCHEMA.read_text())
    validator = jsonschema.Draft7Validator(schema)
    assert [e.message for e in validator.iter_errors(k3d_config(env.cluster))] == []

"""`devslice up` against a cluster whose objects other tools manage too (issue 13 item 4): a
field another manager owns is a located, explained error, and `--force-conflicts` takes it
over. The world (fake k3d, Docker engine, registry and API server) is test_up's."""

from __future__ import annotations

import json

import pytest

from devslice.cli.app import run

from .test_up import World, world  # noqa: F401 - the fixture


def test_up_names_conflicting_fields_and_force_conflicts_takes_them(
        world: World, capsys: pytest.CaptureFixture[str]) -> None:  # noqa: F811
    assert run(["slice", "claim"]) == 0
    assert run(["up", "--json"]) == 0
    # someone scales it by hand (`kubectl scale` / `kubectl edit`: an Update manager)
    code, _, _ = world.kube.handle(
        "PATCH", "/apis/apps/v1/namespaces/default/deployments/orders?fieldManager=kubectl-edit",
        "application/merge-patch+json", json.dumps({"spec": {"replicas": 3}}).encode())
    assert code == 200
    # and the team changes the manifest, so devslice applies it again
    manifest = world.root / "deploy" / "services" / "objects.yaml"
    manifest.write_text(manifest.read_text().replace("metadata: {name: orders}",
                                                     "metadata: {name: orders, labels: {t: a}}"))
    capsys.readouterr()
    assert run(["up", "--json"]) != 0
    err = capsys.readouterr().err
    assert "applying Deployment orders: 1 field already belongs to another field manager " \
           "(kubectl-edit)" in err
    assert '.spec.replicas (owned by "kubectl-edit" using apps/v1)' in err
    assert "devslice up --force-conflicts" in err
    live = world.kube.get("apps/v1", "Deployment", "orders", "default")
    assert live is not None and live["spec"]["replicas"] == 3

    world.forget_calls()
    assert run(["up", "--json", "--force-conflicts"]) == 0
    patches = [r for r in world.kube.requests if r.method == "PATCH" and "deployments" in r.path]
    assert patches and patches[0].params == {"force": "true", "fieldManager": "devslice"}
    live = world.kube.get("apps/v1", "Deployment", "orders", "default")
    assert live is not None and live["spec"]["replicas"] == 1
    assert "kubectl-edit" not in {m["manager"] for m in live["metadata"]["managedFields"]}

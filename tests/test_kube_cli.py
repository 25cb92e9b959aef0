"""`devslice up` against a cluster whose objects other tools manage too (issue 13 item 4): a
field another manager owns is a located, explained error, and `--force-conflicts` takes it
over. The world (fake k3d, Docker engine, registry and API server) is test_up's."""

from __future__ import annotations

import base64
import json

import httpx2
import pytest

from devslice.adapters.registry import Registry, RegistryError
from devslice.cli.app import run

from .test_up import World, world  # noqa: F401 - the fixture


def test_up_names_conflicting_fields_and_force_conflicts_takes_them(
        world: World, capsys: pytest.CaptureFixture[str]) -> None:  # noqa: F811
    assert run(["slice", "claim"]) == 0
    assert run(["up", "-o", "json"]) == 0
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
    assert run(["up", "-o", "json"]) != 0
    err = capsys.readouterr().err
    assert "applying Deployment orders: 1 field already belongs to another field manager " \
           "(kubectl-edit)" in err
    assert '.spec.replicas (owned by "kubectl-edit" using apps/v1)' in err
    assert "devslice up --force-conflicts" in err
    live = world.kube.get("apps/v1", "Deployment", "orders", "default")
    assert live is not None and live["spec"]["replicas"] == 3

    world.forget_calls()
    assert run(["up", "-o", "json", "--force-conflicts"]) == 0
    patches = [r for r in world.kube.requests if r.method == "PATCH" and "deployments" in r.path]
    assert patches and patches[0].params == {"force": "true", "fieldManager": "devslice"}
    live = world.kube.get("apps/v1", "Deployment", "orders", "default")
    assert live is not None and live["spec"]["replicas"] == 1
    assert "kubectl-edit" not in {m["manager"] for m in live["metadata"]["managedFields"]}


def kube_runtime(world: World, registry: str | None) -> None:  # noqa: F811
    """The world's project on `runtime: kube` (the fake API server's context is allowed)."""
    config = world.root / "devslice.yaml"
    text = config.read_text().replace(
        "cluster:\n", "cluster:\n  runtime: kube\n  kube:\n    allowedContexts: [k3d-devslice]\n"
        + (f"    registry: {registry}\n" if registry else ""))
    config.write_text(text)


def test_kube_runtime_refuses_images_it_cannot_push_with_the_fix(
        world: World, capsys: pytest.CaptureFixture[str]) -> None:  # noqa: F811
    kube_runtime(world, None)
    assert run(["slice", "claim"]) == 0
    capsys.readouterr()
    assert run(["plan"]) != 0
    err = capsys.readouterr().err
    assert "images: runtime kube runs images on a shared cluster, which cannot pull orders " \
           "from this machine: set cluster.kube.registry" in err
    assert [r for r in world.kube.requests if r.changes] == []


def test_kube_runtime_pushes_images_to_the_clusters_registry_and_points_pods_there(
        world: World, capsys: pytest.CaptureFixture[str]) -> None:  # noqa: F811
    pushed_to = f"localhost:{world.registry.port}/team"
    kube_runtime(world, pushed_to)
    assert run(["slice", "claim"]) == 0
    assert run(["up", "-o", "json"]) == 0
    [tag] = world.registry.tags("team/orders")
    live = world.kube.get("apps/v1", "Deployment", "orders", "dev-ab")
    assert live is not None
    assert live["spec"]["template"]["spec"]["containers"][0]["image"] == \
        f"{pushed_to}/orders:{tag}"
    # nothing of k3d's: no cluster or registry was made
    assert not [c for c in world.k3d_calls() if "create" in c or "start" in c]
    world.forget_calls()
    capsys.readouterr()
    assert run(["up", "-o", "json"]) == 0
    assert json.loads(capsys.readouterr().out.splitlines()[-1])["changes"] == 0
    assert [r for r in world.engine.requests if r.changes] == []


def test_a_registry_that_needs_sign_in_is_read_with_docker_logins_token() -> None:
    """Azure Container Registry's way (the distribution token flow): 401 with a Bearer
    challenge, a token from its realm for the `docker login` credentials, then the HEAD."""
    user, secret = "00000000-0000-0000-0000-000000000000", "refresh-token"
    seen: list[str] = []

    def acr(request: httpx2.Request) -> httpx2.Response:
        seen.append(f"{request.method} {request.url.path}?{request.url.query.decode()}")
        if request.url.path == "/oauth2/token":
            basic = "Basic " + base64.b64encode(f"{user}:{secret}".encode()).decode()
            if request.headers.get("authorization") != basic:
                return httpx2.Response(401)
            return httpx2.Response(200, json={"access_token": "t0k"})
        if request.headers.get("authorization") != "Bearer t0k":
            return httpx2.Response(401, headers={"WWW-Authenticate": (
                'Bearer realm="https://myacr.azurecr.io/oauth2/token",'
                'service="myacr.azurecr.io",scope="repository:team/orders:pull"')})
        return httpx2.Response(200 if request.url.path.endswith("/ds-1") else 404)

    http = httpx2.Client(base_url="https://myacr.azurecr.io", transport=httpx2.MockTransport(acr))
    registry = Registry(http, credentials=lambda host: (user, secret) if host ==
                        "myacr.azurecr.io" else None, prefix="team")
    assert registry.manifest_exists("orders", "ds-1")
    assert not registry.manifest_exists("orders", "ds-2")
    assert seen[:3] == [
        "HEAD /v2/team/orders/manifests/ds-1?",
        "GET /oauth2/token?service=myacr.azurecr.io&scope=repository%3Ateam%2Forders%3Apull",
        "HEAD /v2/team/orders/manifests/ds-1?"]
    # without a login: said so, with the command that fixes it
    signed_out = Registry(http, credentials=lambda host: None, prefix="team")
    with pytest.raises(RegistryError) as err:
        signed_out.manifest_exists("orders", "ds-1")
    assert "refused to show team/orders:ds-1 (401)" in str(err.value)
    assert "az acr login -n myacr" in (err.value.hint or "")
    assert Registry.at("myacr.azurecr.io/team").client.base_url == "https://myacr.azurecr.io"
    assert Registry.at("localhost:5050").client.base_url == "http://localhost:5050"

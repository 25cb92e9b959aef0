"""Manifests and the kube runtime against a wire-level fake API server, through a real
lightkube Client: rendering, schemas, plans (golden text), idempotency, pruning, failing pods,
masked secrets and refused contexts."""

from __future__ import annotations

import base64
import json
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
from lightkube import Client, KubeConfig

from devslice.adapters.kube import (
    ContextRefused,
    Kube,
    KubeConfigError,
    KubeConflict,
    KubeForbidden,
    KubeUnknownKind,
    KubeUnreachable,
    RolloutFailed,
    connect,
    current_context,
)
from devslice.config.model import KubeSettings, ManifestLayer
from devslice.contract.render import k8s_objects
from devslice.contract.variables import Origin, Variable
from devslice.engine import Executor
from devslice.engine.plan import Plan, Resource, make_plan
from devslice.errors import ConfigError
from devslice.resources.manifests import (
    CONFIG_HASH_ANNOTATION,
    HASH_ANNOTATION,
    Manifest,
    ManifestsResource,
    SealedConfigHash,
    SliceConfigResource,
    kube_target,
    load_layer,
    manifest_resources,
    render,
    rewrite_image,
    workload_namespaces,
)
from devslice.secrets import Secret
from devslice.testing.kubeapi import FakeKubeAPI, Rule

HANDLE = "ab"
SECRET_VALUE = "Endpoint=sb://team.servicebus.windows.net/;SharedAccessKey=s3cr3t-k3y"
# config image name -> the reference the images step pushed
IMAGES = {"orders": "localhost:5050/orders:1111",
          "acme/billing": "localhost:5050/acme/billing:aaaa"}

CRD = """\
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: middlewares.traefik.io
spec:
  group: traefik.io
  names: {kind: Middleware, listKind: MiddlewareList, plural: middlewares,
          singular: middleware}
  scope: Namespaced
  versions:
    - name: v1alpha1
      served: true
      storage: true
      schema:
        openAPIV3Schema:
          type: object
          required: [spec]
          properties:
            apiVersion: {type: string}
            kind: {type: string}
            metadata: {type: object}
            spec:
              type: object
              properties:
                stripPrefix:
                  type: object
                  properties:
                    prefixes: {type: array, items: {type: string}}
"""

MIDDLEWARE = """\
apiVersion: traefik.io/v1alpha1
kind: Middleware
metadata:
  name: strip-api
spec:
  stripPrefix:
    prefixes: [/api]
"""

ORDERS = """\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: orders
  labels: {app: orders}
spec:
  replicas: 1
  selector:
    matchLabels: {app: orders}
  template:
    metadata:
      labels: {app: orders}
    spec:
      initContainers:
        - name: migrate
          image: orders:latest
          args: [migrate]
      containers:
        - name: orders
          image: orders:latest
          ports: [{containerPort: 8080}]
          envFrom:
            - configMapRef: {name: shared-config}
---
apiVersion: v1
kind: Service
metadata:
  name: orders
spec:
  selector: {app: orders}
  ports: [{port: 80, targetPort: 8080}]
"""

BILLING = """\
apiVersion: v1
kind: Namespace
metadata:
  name: payments
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: billing
  namespace: payments
spec:
  selector:
    matchLabels: {app: billing}
  template:
    metadata:
      labels: {app: billing}
    spec:
      volumes:
        - name: certs
          secret: {secretName: billing-certs, defaultMode: 0644}
      containers:
        - name: billing
          image: ghcr.io/acme/billing:1.4
          envFrom:
            - secretRef: {name: devslice-ab, optional: true}
        - name: cache
          image: redis:7
"""

SHARED = """\
apiVersion: v1
kind: ConfigMap
metadata:
  name: shared-config
data:
  LOG_LEVEL: debug
"""

OLD_SVC = """\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: old-svc
spec:
  selector:
    matchLabels: {app: old-svc}
  template:
    metadata:
      labels: {app: old-svc}
    spec:
      containers:
        - name: old-svc
          image: nginx:1.27
---
apiVersion: v1
kind: Service
metadata:
  name: old-svc
spec:
  selector: {app: old-svc}
  ports: [{port: 80}]
"""

PLATFORM = ManifestLayer(name="platform", path="deploy/platform")
SERVICES = ManifestLayer(name="services", path="deploy/services")


# -- fixtures ------------------------------------------------------------------------------------

@pytest.fixture
def project(tmp_path: Path) -> Path:
    files = {
        "deploy/platform/00-crd.yaml": CRD,
        "deploy/platform/middleware.yml": MIDDLEWARE,
        "deploy/services/orders.yaml": ORDERS,
        "deploy/services/billing.yaml": BILLING,
        "deploy/services/shared.yaml": SHARED,
        "deploy/services/old-svc.yaml": OLD_SVC,
        "deploy/services/README.md": "not a manifest",
    }
    for rel, text in files.items():
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(text)
    return tmp_path


@pytest.fixture
def api() -> Iterator[FakeKubeAPI]:
    with FakeKubeAPI() as fake:
        yield fake


@pytest.fixture
def kube(api: FakeKubeAPI) -> Iterator[Kube]:
    client = Client(KubeConfig.from_dict(api.kubeconfig()), trust_env=False)
    yield Kube(client)
    client.close()


def slice_objects(secret: str = SECRET_VALUE, level: str = "info") -> list[dict[str, Any]]:
    variables = [
        Variable("LOCAL_DEV_SLICE", HANDLE, Origin.allocation, "ledger: slice ab"),
        Variable("LOCAL_DEV_LOG_LEVEL", level, Origin.team, "devslice.yaml contract.env"),
        Variable("LOCAL_DEV_EVENTHUBS_CONNECTIONSTRING", Secret(secret, "env:EH_CONN"),
                 Origin.secret, "eventHubs.namespaces[0].connectionString (env:EH_CONN)"),
    ]
    return k8s_objects(variables, HANDLE)


MEMO = Path(".devslice") / "config-hash.json"


def environment(project: Path, kube: Kube, images: dict[str, str] = IMAGES,
                secret: str = SECRET_VALUE) -> list[Resource]:
    """The resources `devslice up` would build for runtime k3d."""
    objects = slice_objects(secret)
    layers = manifest_resources([PLATFORM, SERVICES], project, kube, HANDLE,
                                after=("slice-config",), images=images,
                                # through the kept hash, as `devslice up` (issue 17)
                                config_hash=SealedConfigHash(objects, memo=project / MEMO))
    namespaces = workload_namespaces(m for r in layers for m in r.render())
    return [SliceConfigResource(kube, objects, namespaces, HANDLE), *layers]


def up(resources: list[Resource]) -> None:
    Executor(max_workers=4).apply(resources)


def rendered(project: Path, layer: ManifestLayer, namespace: str | None = None
             ) -> dict[str, dict[str, Any]]:
    manifests = load_layer(project / layer.path, layer.path)
    out = render(manifests, handle=HANDLE, layer=layer.name, images=IMAGES,
                 namespace=namespace, config_hash="c0ffee")
    return {f"{m.obj['kind']}/{m.obj['metadata']['name']}": m.obj for m in out}


def containers(obj: dict[str, Any]) -> dict[str, dict[str, Any]]:
    spec = obj["spec"]["template"]["spec"]
    return {c["name"]: c for c in [*spec.get("initContainers", []), *spec["containers"]]}


# -- rendering -----------------------------------------------------------------------------------

def test_images_of_the_teams_builds_point_at_the_local_registry() -> None:
    assert rewrite_image("orders", IMAGES) == "localhost:5050/orders:1111"
    assert rewrite_image("orders:latest", IMAGES) == "localhost:5050/orders:1111"
    assert rewrite_image("ghcr.io/acme/billing:1.4", IMAGES) == IMAGES["acme/billing"]
    assert rewrite_image("acme/billing@sha256:" + "0" * 64, IMAGES) == IMAGES["acme/billing"]
    assert rewrite_image("ghcr.io/other/billing:1.4", IMAGES) is None  # a different repository
    assert rewrite_image("localhost:5050/orders:0000", IMAGES) == IMAGES["orders"]
    assert rewrite_image("redis:7", IMAGES) is None
    assert rewrite_image("team/orders:2", {"team/orders": "r:1/team/orders:x"}) == \
        "r:1/team/orders:x"


def test_render_rewrites_images_injects_the_slice_and_labels(project: Path) -> None:
    objs = rendered(project, SERVICES)
    orders = containers(objs["Deployment/orders"])
    assert orders["orders"]["image"] == orders["migrate"]["image"] == "localhost:5050/orders:1111"
    # the manifest's own envFrom stays first; the slice's come after it, so they win
    assert orders["orders"]["envFrom"] == [
        {"configMapRef": {"name": "shared-config"}},
        {"configMapRef": {"name": "devslice-ab"}},
        {"secretRef": {"name": "devslice-ab"}},
    ]
    assert orders["migrate"]["envFrom"] == [{"configMapRef": {"name": "devslice-ab"}},
                                            {"secretRef": {"name": "devslice-ab"}}]
    billing = containers(objs["Deployment/billing"])
    assert billing["billing"]["image"] == "localhost:5050/acme/billing:aaaa"
    assert billing["cache"]["image"] == "redis:7"  # not one of the team's images
    assert billing["billing"]["envFrom"] == [  # the secretRef it had is not added twice
        {"secretRef": {"name": "devslice-ab", "optional": True}},
        {"configMapRef": {"name": "devslice-ab"}},
    ]
    for obj in objs.values():
        assert obj["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "devslice"
        assert obj["metadata"]["labels"]["devslice.dev/slice"] == "ab"
        assert obj["metadata"]["labels"]["devslice.dev/layer"] == "services"
        assert len(obj["metadata"]["annotations"][HASH_ANNOTATION]) == 16
    template = objs["Deployment/orders"]["spec"]["template"]["metadata"]
    assert template["labels"] == {"app": "orders", "devslice.dev/slice": "ab"}
    assert template["annotations"] == {CONFIG_HASH_ANNOTATION: "c0ffee"}
    assert "envFrom" not in objs["Service/orders"].get("spec", {})
    # YAML 1.1 as kubectl reads it: 0644 is octal
    volume = objs["Deployment/billing"]["spec"]["template"]["spec"]["volumes"][0]
    assert volume["secret"]["defaultMode"] == 0o644


def test_render_leaves_the_files_objects_untouched(project: Path) -> None:
    manifests = load_layer(project / SERVICES.path, SERVICES.path)
    before = json.dumps([m.obj for m in manifests], sort_keys=True)
    render(manifests, handle=HANDLE, layer="services", images=IMAGES)
    assert json.dumps([m.obj for m in manifests], sort_keys=True) == before


def test_namespaces_k3d_keeps_the_manifests_own_kube_uses_the_slices(project: Path) -> None:
    k3d = rendered(project, SERVICES)
    assert k3d["Deployment/orders"]["metadata"]["namespace"] == "default"
    assert k3d["Deployment/billing"]["metadata"]["namespace"] == "payments"
    assert "namespace" not in k3d["Namespace/payments"]["metadata"]
    kube = rendered(project, SERVICES, namespace="dev-ab")
    assert {o["metadata"].get("namespace") for k, o in kube.items() if k != "Namespace/payments"
            } == {"dev-ab"}
    platform = rendered(project, PLATFORM)
    assert "namespace" not in platform["CustomResourceDefinition/middlewares.traefik.io"][
        "metadata"]
    assert platform["Middleware/strip-api"]["metadata"]["namespace"] == "default"
    assert workload_namespaces(Manifest(o, "x", 1) for o in k3d.values()) == [
        "default", "payments"]


def test_every_object_sent_validates_against_the_official_schemas(
        project: Path, api: FakeKubeAPI, kube: Kube) -> None:
    objs = {**rendered(project, PLATFORM), **rendered(project, SERVICES)}
    crd = objs["CustomResourceDefinition/middlewares.traefik.io"]
    custom_schema = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    api.clear_requests()
    up(environment(project, kube))
    sent = [json.loads(r.body) for r in api.requests if r.method == "PATCH"]
    # rendered layers, the slice's namespace, ConfigMaps and Secrets, the layers' inventories
    assert {o["kind"] for o in sent} >= {"Deployment", "Service", "Namespace", "ConfigMap",
                                         "Secret", "Middleware", "CustomResourceDefinition"}
    for obj in sent:
        if obj["apiVersion"] == "traefik.io/v1alpha1":
            # no official schema for a custom resource: its CRD's schema is the contract
            jsonschema.validate(obj, custom_schema)
        else:
            kubernetes_validate.validate(obj, "1.30", strict=True)


def test_yaml_errors_name_the_file_and_line(tmp_path: Path) -> None:
    folder = tmp_path / "deploy"
    folder.mkdir()
    (folder / "a.yaml").write_text("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a\n"
                                   "data:\n  x: [1, 2\n")
    with pytest.raises(ConfigError) as err:
        load_layer(folder, "deploy")
    assert err.value.issues[0].path == "deploy/a.yaml"
    assert err.value.issues[0].line == 7
    assert "not valid YAML" in str(err.value)

    (folder / "a.yaml").write_text("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a\n"
                                   "  name: b\n")
    with pytest.raises(ConfigError, match=r"deploy/a.yaml:5:3: .*'name' appears twice"):
        load_layer(folder, "deploy")

    (folder / "a.yaml").write_text("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n"
                                   "---\n- just\n- a list\n")
    with pytest.raises(ConfigError, match=r"deploy/a.yaml:5: expected a Kubernetes object"):
        load_layer(folder, "deploy")

    (folder / "a.yaml").write_text("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n")
    (folder / "b.yaml").write_text("---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n")
    with pytest.raises(ConfigError, match=r"deploy/b.yaml:2: configmap a is already defined at "
                       r"deploy/a.yaml:1"):
        render(load_layer(folder, "deploy"), handle=HANDLE, layer="x", images={})

    with pytest.raises(ConfigError, match="does not exist"):
        load_layer(tmp_path / "missing", "missing")


# -- plan and apply ------------------------------------------------------------------------------

def test_first_plan_applies_everything_with_the_exact_calls(project: Path, api: FakeKubeAPI,
                                                           kube: Kube) -> None:
    resources = environment(project, kube)
    plan = make_plan(resources)
    calls = [c.removesuffix(" (server-side apply)") for a in plan.changes for c in a.calls
             if c.startswith("PATCH")]
    api.clear_requests()
    for action in plan.actions:  # this plan was made against this very state
        if action.execute is not None:
            action.execute()
    assert [r.line for r in api.requests if r.method == "PATCH"] == calls
    assert {r.content_type for r in api.requests if r.method == "PATCH"} == {
        "application/apply-patch+yaml"}
    live = api.get("apps/v1", "Deployment", "orders", "default")
    assert live is not None
    assert live["metadata"]["managedFields"][0]["manager"] == "devslice"
    assert containers(live)["orders"]["image"] == "localhost:5050/orders:1111"
    assert api.get("traefik.io/v1alpha1", "Middleware", "strip-api", "default") is not None
    for ns in ("default", "payments"):  # envFrom cannot cross namespaces: a copy in each
        assert api.get("v1", "ConfigMap", "devslice-ab", ns) is not None
        assert api.get("v1", "Secret", "devslice-ab", ns) is not None


def test_apply_twice_the_second_plan_is_empty_and_only_reads(project: Path, api: FakeKubeAPI,
                                                             kube: Kube) -> None:
    resources = environment(project, kube)
    up(resources)
    assert api.get("apps/v1", "Deployment", "old-svc", "default") is not None

    api.clear_requests()
    plan = make_plan(environment(project, kube))
    assert plan.empty, plan.render()
    assert api.requests, "the plan must read the cluster"
    assert {r.method for r in api.requests} == {"GET"}
    assert plan.render() == textwrap.dedent("""\
        = slice-config: configmap and secret devslice-ab up to date in default, payments
        = manifests:platform: 2 objects from deploy/platform up to date
        = manifests:services: 7 objects from deploy/services up to date
        nothing to do
        """)

    api.clear_requests()
    up(environment(project, kube))  # `devslice up` again changes nothing either
    assert {r.method for r in api.requests} == {"GET"}


def test_removed_manifest_is_pruned(project: Path, api: FakeKubeAPI, kube: Kube) -> None:
    up(environment(project, kube))
    (project / "deploy/services/old-svc.yaml").unlink()

    resources = environment(project, kube)
    services = resources[-1]
    assert Plan(tuple(services.plan())).render() == textwrap.dedent("""\
        = manifests:services: 5 objects from deploy/services up to date
        + manifests:services: prune (deployment old-svc: removed from deploy/services)
            $ DELETE /apis/apps/v1/namespaces/default/deployments/old-svc
        + manifests:services: prune (service old-svc: removed from deploy/services)
            $ DELETE /api/v1/namespaces/default/services/old-svc
        2 changes
        """)

    api.clear_requests()
    up(resources)
    assert [r.line for r in api.requests if r.changes] == [
        "DELETE /apis/apps/v1/namespaces/default/deployments/old-svc",
        "DELETE /api/v1/namespaces/default/services/old-svc",
    ]
    assert api.get("apps/v1", "Deployment", "old-svc", "default") is None
    assert not [p for p in api.objects("Pod") if p["metadata"]["name"].startswith("old-svc")]
    assert make_plan(environment(project, kube)).empty


def test_a_kind_whose_last_object_left_the_folder_is_still_pruned(
        project: Path, api: FakeKubeAPI, kube: Kube) -> None:
    up(environment(project, kube))
    (project / "deploy/platform/middleware.yml").unlink()
    platform = environment(project, kube)[1]
    assert Plan(tuple(platform.plan())).render() == textwrap.dedent("""\
        = manifests:platform: 1 object from deploy/platform up to date
        + manifests:platform: prune (middleware strip-api: removed from deploy/platform)
            $ DELETE /apis/traefik.io/v1alpha1/namespaces/default/middlewares/strip-api
        + manifests:platform: apply (inventory devslice-ab-layer-platform: forget pruned kinds (kinds CustomResourceDefinition))
            $ PATCH /api/v1/namespaces/default/configmaps/devslice-ab-layer-platform?fieldManager=devslice (server-side apply)
        2 changes
        """)  # noqa: E501 - golden text, one line per action
    up(environment(project, kube))
    assert api.get("traefik.io/v1alpha1", "Middleware", "strip-api", "default") is None
    api.clear_requests()
    assert make_plan(environment(project, kube)).empty
    # the inventory now leads the plan to the one kind left, not to the Middlewares
    assert not [r for r in api.requests if "middlewares" in r.path]


def test_changed_image_is_applied_and_waited_for(project: Path, api: FakeKubeAPI,
                                                 kube: Kube) -> None:
    up(environment(project, kube))
    images = {**IMAGES, "orders": "localhost:5050/orders:2222"}
    services = environment(project, kube, images=images)[-1]
    assert Plan(tuple(services.plan())).render() == textwrap.dedent("""\
        = manifests:services: 6 objects from deploy/services up to date
        + manifests:services: apply (deployment orders: image localhost:5050/orders:1111 -> localhost:5050/orders:2222 (migrate, orders))
            $ PATCH /apis/apps/v1/namespaces/default/deployments/orders?fieldManager=devslice (server-side apply)
        + manifests:services: wait (roll out deployment orders)
            $ GET /apis/apps/v1/namespaces/default/deployments/orders (until rolled out)
        2 changes
        """)  # noqa: E501 - golden text, one line per action

    api.clear_requests()
    up(environment(project, kube, images=images))
    assert [r.line for r in api.requests if r.changes] == [
        "PATCH /apis/apps/v1/namespaces/default/deployments/orders?fieldManager=devslice"]
    live = api.get("apps/v1", "Deployment", "orders", "default")
    assert live is not None
    assert live["metadata"]["generation"] == 2
    assert containers(live)["orders"]["image"] == "localhost:5050/orders:2222"


def test_changed_contract_updates_the_config_and_rolls_the_workloads(
        project: Path, api: FakeKubeAPI, kube: Kube) -> None:
    up(environment(project, kube))
    plan = make_plan(environment(project, kube, secret="rotated-" + SECRET_VALUE))
    reasons = [a.reason for a in plan.changes]
    assert reasons[:2] == [
        "secret devslice-ab in default: LOCAL_DEV_EVENTHUBS_CONNECTIONSTRING changed",
        "secret devslice-ab in payments: LOCAL_DEV_EVENTHUBS_CONNECTIONSTRING changed",
    ]
    # envFrom is read when a container starts: the pod templates' config hash rolls them
    assert "deployment orders: changed in deploy/services" in reasons
    assert "deployment billing: changed in deploy/services" in reasons


def test_secret_values_never_appear_in_plans(project: Path, api: FakeKubeAPI,
                                             kube: Kube) -> None:
    encoded = base64.b64encode(SECRET_VALUE.encode()).decode()
    texts = []
    for secret in (SECRET_VALUE, "rotated-" + SECRET_VALUE):
        plan = make_plan(environment(project, kube, secret=secret))
        texts += [plan.render(), json.dumps(plan.as_dict())]
        up(environment(project, kube, secret=secret))
    assert "secret devslice-ab in default: missing" in texts[0]
    assert "LOCAL_DEV_EVENTHUBS_CONNECTIONSTRING changed" in texts[2]
    for text in texts:
        assert "s3cr3t-k3y" not in text
        assert encoded not in text
    assert not any("s3cr3t" in r.line for r in api.requests)
    live = api.get("v1", "Secret", "devslice-ab", "default")
    assert live is not None and "stringData" not in live
    assert base64.b64decode(live["data"]["LOCAL_DEV_EVENTHUBS_CONNECTIONSTRING"]).decode() == \
        "rotated-" + SECRET_VALUE
    deployment = api.get("apps/v1", "Deployment", "orders", "default")
    assert deployment is not None and "s3cr3t" not in json.dumps(deployment)
    assert "s3cr3t" not in (project / MEMO).read_text()  # the kept config hash


# -- rollouts ------------------------------------------------------------------------------------

def test_failing_pod_shows_its_reason_and_last_log_lines(project: Path, api: FakeKubeAPI,
                                                        kube: Kube) -> None:
    api.rollout("orders", fail="CrashLoopBackOff",
                logs=["starting orders", "panic: LOCAL_DEV_SLICE is not set"])
    with pytest.raises(RolloutFailed) as err:
        up(environment(project, kube))
    text = str(err.value)
    assert "deployment orders in default did not roll out: 0 of 1 updated replicas are " \
           "available" in text
    assert "container orders: CrashLoopBackOff after 4 restarts" in text
    assert "  | panic: LOCAL_DEV_SLICE is not set" in text
    assert "exits soon after it starts" in text  # the hint
    assert err.value.problems[0].logs == ("starting orders", "panic: LOCAL_DEV_SLICE is not set")
    log_calls = [r for r in api.requests if r.path.endswith("/log")]
    assert log_calls and log_calls[0].params["tailLines"] == "20"


def test_image_pull_failure_has_no_logs_to_show(api: FakeKubeAPI, kube: Kube) -> None:
    kube.apply(deployment("orders", "localhost:5050/orders:nope"))
    api.rollout("orders", fail="ImagePullBackOff")
    api.clear_requests()
    problems = kube.pod_problems("default", {"app": "orders"})
    assert [(p.reason, p.message, p.logs) for p in problems] == [
        ("ImagePullBackOff", 'Back-off pulling image "localhost:5050/orders:nope"', ())]
    assert not [r for r in api.requests if r.path.endswith("/log")]  # it never ran
    with pytest.raises(RolloutFailed, match="pushed to the local registry"):
        kube.wait_rollout("orders", "default", interval=0)


def test_wait_rollout_reports_progress_until_done(api: FakeKubeAPI, kube: Kube) -> None:
    api.rollout("orders", reads_until_ready=2)
    kube.apply(deployment("orders", "orders:1"))
    seen: list[str] = []
    status = kube.wait_rollout("orders", "default", interval=0, on_progress=seen.append)
    assert status.done and status.message == 'deployment "orders" successfully rolled out'
    assert seen == ["deployment orders: 0 of 1 updated replicas are available",
                    'deployment orders: deployment "orders" successfully rolled out']


def test_wait_rollout_looks_again_soon_then_less_often(api: FakeKubeAPI, kube: Kube) -> None:
    """Issue 17: 0.1 s after the first look, then doubling up to the interval."""
    api.rollout("orders", reads_until_ready=8)  # a look reads the Deployment twice
    kube.apply(deployment("orders", "orders:1"))
    slept: list[float] = []
    assert kube.wait_rollout("orders", "default", interval=0.3, sleep=slept.append).done
    assert slept == [0.1, 0.2, 0.3, 0.3]


def test_progress_deadline_fails_the_rollout(api: FakeKubeAPI, kube: Kube) -> None:
    api.rollout("orders", reads_until_ready=99, deadline_exceeded=True)
    kube.apply(deployment("orders", "orders:1"))
    with pytest.raises(RolloutFailed, match="exceeded its progress deadline"):
        kube.wait_rollout("orders", "default", interval=0)


# -- the kube runtime ----------------------------------------------------------------------------

def test_a_context_that_is_not_allowed_is_refused(tmp_path: Path) -> None:
    settings = KubeSettings(allowed_contexts=["aks-dev-westeu"])
    with pytest.raises(ContextRefused) as err:
        kube_target(settings, HANDLE, "aks-prod-admin")
    assert "kube context 'aks-prod-admin' is not allowed" in str(err.value)
    assert "allowed contexts: aks-dev-westeu" in str(err.value)
    assert err.value.exit_code == 2

    with pytest.raises(ContextRefused, match="allows no context yet"):
        kube_target(KubeSettings(), HANDLE, "aks-dev-westeu")
    with pytest.raises(ContextRefused, match="no kube context"):
        kube_target(settings, HANDLE, None)
    with pytest.raises(ValueError, match="'Dev_ab' is not a valid namespace"):
        KubeSettings(allowed_contexts=["c"], namespace_template="Dev_{slice}")  # at load

    target = kube_target(settings, HANDLE, "aks-dev-westeu", team="company1")
    assert (target.context, target.namespace) == ("aks-dev-westeu", "dev-ab")
    pinned = KubeSettings(context="aks-dev-westeu", allowed_contexts=["aks-dev-westeu"],
                          namespace_template="{team}-{slice}")
    assert kube_target(pinned, HANDLE, "aks-prod-admin", team="company1").namespace == \
        "company1-ab"


def test_connect_uses_a_kubeconfig_context(api: FakeKubeAPI, tmp_path: Path) -> None:
    config = tmp_path / "kubeconfig"
    config.write_text(json.dumps(api.kubeconfig(context="aks-dev")))
    kube = connect("aks-dev", kubeconfig=config, trust_env=False)
    assert kube.get("v1", "Namespace", "default") is not None
    kube.client.close()
    with pytest.raises(KubeConfigError, match="kube context 'aks-prod' is not in"):
        connect("aks-prod", kubeconfig=config)
    # KUBECONFIG=a:b merged as kubectl does: the context in one file, its cluster in the other
    whole = api.kubeconfig(context="aks-dev")
    clusters, contexts = tmp_path / "clusters.yaml", tmp_path / "contexts.yaml"
    clusters.write_text(json.dumps({"clusters": whole["clusters"], "users": whole["users"]}))
    contexts.write_text(json.dumps({"current-context": "aks-dev",
                                    "contexts": whole["contexts"]}))
    merged = connect(environ={"KUBECONFIG": f"{contexts}:{clusters}"}, trust_env=False)
    assert merged.get("v1", "Namespace", "default") is not None
    merged.client.close()


def test_current_context_is_read_as_kubectl_reads_it(tmp_path: Path) -> None:
    first, second = tmp_path / "a.yaml", tmp_path / "b.yaml"
    first.write_text("apiVersion: v1\nkind: Config\nclusters: []\ncontexts: []\n")
    second.write_text("apiVersion: v1\nkind: Config\ncurrent-context: aks-dev\n")
    assert current_context(environ={"KUBECONFIG": f"{first}:{second}"}) == "aks-dev"
    assert current_context(first) is None
    assert current_context(tmp_path / "missing.yaml") is None


def test_kube_runtime_puts_the_slice_in_its_own_namespace(project: Path, api: FakeKubeAPI,
                                                          kube: Kube, tmp_path: Path) -> None:
    config = tmp_path / "kubeconfig"
    config.write_text(json.dumps(api.kubeconfig(context="aks-dev")))
    settings = KubeSettings(allowed_contexts=["aks-dev"])
    target = kube_target(settings, HANDLE, current_context(config))
    objects = k8s_objects([Variable("LOCAL_DEV_SLICE", HANDLE, Origin.allocation, "ledger")],
                          HANDLE)
    layers = manifest_resources([SERVICES], project, kube, HANDLE, after=("slice-config",),
                                images=IMAGES, namespace=target.namespace)
    resources: list[Resource] = [
        SliceConfigResource(kube, objects, [target.namespace], HANDLE), *layers]

    plan = make_plan(resources)
    text = plan.render()
    assert "+ slice-config: apply (namespace dev-ab: missing)" in text
    assert "= manifests:services: namespace payments: cluster-scoped, left out" in text
    assert "/namespaces/dev-ab/deployments/billing?" in text

    up(resources)
    assert api.get("apps/v1", "Deployment", "billing", "dev-ab") is not None
    assert api.get("v1", "Namespace", "payments") is None
    ns = api.get("v1", "Namespace", "dev-ab")
    assert ns is not None and ns["metadata"]["labels"]["devslice.dev/slice"] == "ab"

    api.clear_requests()
    assert make_plan(resources).empty
    lists = [r for r in api.requests if "labelSelector" in r.params]
    assert lists and all("/namespaces/dev-ab/" in r.path for r in lists)  # never cluster-wide


# -- errors --------------------------------------------------------------------------------------

def deployment(name: str, image: str, replicas: int = 1) -> dict[str, Any]:
    return {"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": name, "namespace": "default"},
            "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}},
                     "template": {"metadata": {"labels": {"app": name}},
                                  "spec": {"containers": [{"name": name, "image": image}]}}}}


def test_fields_owned_by_someone_else_conflict_unless_forced(api: FakeKubeAPI,
                                                             kube: Kube) -> None:
    api.apply(deployment("orders", "orders:1", replicas=3), manager="kubectl-edit")
    with pytest.raises(KubeConflict) as err:
        kube.apply(deployment("orders", "orders:1", replicas=1))
    assert err.value.fields == ((".spec.replicas", '"kubectl-edit"'),)
    assert "--force-conflicts" in (err.value.hint or "")
    live = kube.apply(deployment("orders", "orders:1", replicas=1), force=True)
    assert live["spec"]["replicas"] == 1
    assert api.requests[-1].params == {"force": "true", "fieldManager": "devslice"}


def test_an_unreachable_cluster_is_a_clear_error(project: Path) -> None:
    with FakeKubeAPI() as gone:
        config = gone.kubeconfig()
    client = Client(KubeConfig.from_dict(config), trust_env=False)
    kube = Kube(client)
    with pytest.raises(KubeUnreachable) as err:
        ManifestsResource(SERVICES, project, kube, HANDLE).plan()
    assert "cannot reach the Kubernetes API at http://127.0.0.1:" in str(err.value)
    assert "devslice status" in (err.value.hint or "")
    # k3d on a fresh machine: `devslice plan` before the cluster exists plans everything new
    actions = ManifestsResource(PLATFORM, project, kube, HANDLE, images=IMAGES,
                                cluster_may_be_absent=True).plan()
    assert [a.reason for a in actions] == [
        "inventory devslice-ab-layer-platform: record the kinds it applies (kinds "
        "CustomResourceDefinition, Middleware)",
        "customresourcedefinition middlewares.traefik.io: new in deploy/platform (no cluster "
        "yet)", "middleware strip-api: new in deploy/platform (no cluster yet)"]
    assert actions[2].calls == ("PATCH /apis/traefik.io/v1alpha1/namespaces/default/middlewares/"
                                "strip-api?fieldManager=devslice (server-side apply)",)
    client.close()


def test_a_kind_the_cluster_does_not_serve_names_its_crd(tmp_path: Path, kube: Kube) -> None:
    (tmp_path / "deploy").mkdir()
    (tmp_path / "deploy/w.yaml").write_text(
        "apiVersion: widgets.example.com/v1\nkind: Widget\nmetadata: {name: w}\n")
    layer = ManifestLayer(name="widgets", path="deploy")
    with pytest.raises(KubeUnknownKind, match="serves no kind Widget") as err:
        ManifestsResource(layer, tmp_path, kube, HANDLE).plan()
    assert "CustomResourceDefinition" in (err.value.hint or "")


# -- issue 13: where the fake hid real failures --------------------------------------------------

def test_kubectl_apply_leaves_update_managers_whose_fields_conflict(api: FakeKubeAPI,
                                                                     kube: Kube) -> None:
    # a team moving from client-side `kubectl apply`: the object exists, created by POST
    api.create(deployment("orders", "orders:1", replicas=3), manager="kubectl-client-side-apply")
    live = api.get("apps/v1", "Deployment", "orders", "default")
    assert live is not None
    [entry] = live["metadata"]["managedFields"]
    assert (entry["manager"], entry["operation"]) == ("kubectl-client-side-apply", "Update")
    assert "f:replicas" in entry["fieldsV1"]["f:spec"]
    containers_v1 = entry["fieldsV1"]["f:spec"]["f:template"]["f:spec"]["f:containers"]
    assert set(containers_v1['k:{"name":"orders"}']) >= {".", "f:image", "f:name"}

    # the same values are shared, not a conflict
    kube.apply(deployment("orders", "orders:1", replicas=3))
    # a different one is Kubernetes' 409, in its words
    api.clear_requests()
    with pytest.raises(KubeConflict) as err:
        kube.apply(deployment("orders", "orders:2", replicas=1))
    status = json.loads(api.handle("PATCH", api.requests[-1].line.split(" ", 1)[1],
                                   "application/apply-patch+yaml", api.requests[-1].body)[2])
    assert status["message"] == (
        'Apply failed with 2 conflicts: conflicts with "kubectl-client-side-apply" using '
        'apps/v1:\n- .spec.replicas\n- .spec.template.spec.containers[name="orders"].image')
    assert status["details"]["causes"][0] == {
        "reason": "FieldManagerConflict", "field": ".spec.replicas",
        "message": 'conflict with "kubectl-client-side-apply" using apps/v1'}
    text = str(err.value)
    assert "2 fields already belong to another field manager (kubectl-client-side-apply)" in text
    assert '.spec.template.spec.containers[name="orders"].image (owned by ' \
           '"kubectl-client-side-apply" using apps/v1)' in text
    assert "devslice up --force-conflicts" in (err.value.hint or "")

    # forced: devslice owns them now, the other manager keeps the rest
    kube.apply(deployment("orders", "orders:2", replicas=1), force=True)
    live = api.get("apps/v1", "Deployment", "orders", "default")
    assert live is not None and live["spec"]["replicas"] == 1
    owners = {e["manager"]: e["fieldsV1"] for e in live["metadata"]["managedFields"]}
    assert "f:replicas" in owners["devslice"]["f:spec"]
    assert "f:replicas" not in owners["kubectl-client-side-apply"]["f:spec"]
    assert "f:progressDeadlineSeconds" in owners["kubectl-client-side-apply"]["f:spec"]


def test_lists_merge_by_key_as_kubernetes_merges_them(api: FakeKubeAPI, kube: Kube) -> None:
    kube.apply(deployment("orders", "orders:1"))
    # someone adds an env var and a port with `kubectl patch` (strategic merge: an Update)
    patch = {"spec": {"template": {"spec": {"containers": [
        {"name": "orders", "env": [{"name": "DEBUG", "value": "1"}],
         "ports": [{"containerPort": 9090}]}]}}}}
    code, _, _ = api.handle("PATCH", "/apis/apps/v1/namespaces/default/deployments/orders"
                            "?fieldManager=kubectl-patch", "application/strategic-merge-patch+json",
                            json.dumps(patch).encode())
    assert code == 200
    # devslice changes the image: no conflict, and the other manager's entries stay
    obj = deployment("orders", "orders:2")
    obj["spec"]["template"]["spec"]["containers"].append({"name": "sidecar", "image": "envoy:1"})
    kube.apply(obj)
    live = api.get("apps/v1", "Deployment", "orders", "default")
    assert live is not None
    by_name = containers(live)
    assert by_name["orders"]["image"] == "orders:2"
    assert by_name["orders"]["env"] == [{"name": "DEBUG", "value": "1"}]
    assert by_name["orders"]["ports"] == [{"containerPort": 9090}]
    assert by_name["sidecar"]["image"] == "envoy:1"
    # a field devslice stops applying goes, unless another manager has it
    kube.apply(deployment("orders", "orders:2"))
    live = api.get("apps/v1", "Deployment", "orders", "default")
    assert live is not None and set(containers(live)) == {"orders"}
    assert containers(live)["orders"]["env"] == [{"name": "DEBUG", "value": "1"}]


def namespace_scoped(api: FakeKubeAPI, namespace: str = "dev-ab") -> None:
    """A developer of a shared cluster: everything in their namespace, nothing beyond."""
    api.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}})
    api.restrict([Rule(namespaces=(namespace,))], user="dev@company1")


def test_namespace_scoped_rights_are_enough_for_the_kube_runtime(
        project: Path, api: FakeKubeAPI, kube: Kube) -> None:
    # the cluster's admins installed Traefik's CRDs (a kind no other test has taught
    # lightkube's process-wide registry)
    def renamed(text: str) -> str:
        return text.replace("Middleware", "ServersTransport").replace(
            "middlewares", "serverstransports").replace("middleware", "serverstransport")

    api.apply(yaml_doc(renamed(CRD)))
    (project / "deploy/platform/00-crd.yaml").unlink()
    (project / "deploy/platform/middleware.yml").write_text(renamed(MIDDLEWARE))
    namespace_scoped(api)
    objects = slice_objects()
    layers = manifest_resources([PLATFORM, SERVICES], project, kube, HANDLE,
                                after=("slice-config",), images=IMAGES, namespace="dev-ab")
    resources: list[Resource] = [SliceConfigResource(kube, objects, ["dev-ab"], HANDLE),
                                 *layers]
    up(resources)
    assert api.get("traefik.io/v1alpha1", "ServersTransport", "strip-api", "dev-ab") is not None
    assert api.get("apps/v1", "Deployment", "orders", "dev-ab") is not None
    assert not [r for r in api.requests if "customresourcedefinitions" in r.path]
    assert make_plan(resources).empty


def test_a_403_names_the_verb_the_resource_and_the_namespace(api: FakeKubeAPI,
                                                             kube: Kube) -> None:
    namespace_scoped(api)
    api.restrict([Rule(verbs=("get", "list"), namespaces=("dev-ab",))])
    obj = deployment("orders", "orders:1")
    obj["metadata"]["namespace"] = "dev-ab"
    with pytest.raises(KubeForbidden) as err:
        kube.apply(obj)
    assert "applying Deployment orders: forbidden: kube context fake may not patch " \
           "deployments.apps in namespace dev-ab" in str(err.value)
    assert (err.value.verb, err.value.resource, err.value.namespace) == (
        "patch", "deployments.apps", "dev-ab")
    assert "kubectl auth can-i patch deployments.apps -n dev-ab" in (err.value.hint or "")
    # the fake answers as RBAC does
    status = json.loads(api.handle("GET", "/apis/apiextensions.k8s.io/v1/"
                                   "customresourcedefinitions", None, b"")[2])
    assert status["code"] == 403 and status["reason"] == "Forbidden"
    assert status["message"] == (
        'customresourcedefinitions.apiextensions.k8s.io is forbidden: User "dev@company1" '
        'cannot list resource "customresourcedefinitions" in API group "apiextensions.k8s.io"'
        " at the cluster scope")


def test_a_terminating_namespace_is_waited_for_then_made_again(tmp_path: Path) -> None:
    with FakeKubeAPI(terminating_reads=2) as api:
        client = Client(KubeConfig.from_dict(api.kubeconfig()), trust_env=False)
        kube = Kube(client)
        config = SliceConfigResource(kube, slice_objects(), ["dev-ab"], HANDLE)
        up([config])
        kube.delete("Namespace", "dev-ab")  # someone deletes the slice's namespace
        # nothing new may be made there while it terminates, as for real
        with pytest.raises(KubeForbidden) as err:
            kube.apply({"apiVersion": "v1", "kind": "ConfigMap",
                        "metadata": {"name": "x", "namespace": "dev-ab"}})
        assert err.value.terminating
        assert "unable to create new content in namespace dev-ab because it is being " \
               "terminated" in str(err.value)
        plan = make_plan([config])
        assert plan.changes[0].reason == (
            "namespace dev-ab: being deleted (Terminating); wait until it is gone, then create it")
        up([config])
        assert api.get("v1", "Secret", "devslice-ab", "dev-ab") is not None
        assert make_plan([config]).empty
        client.close()


def test_rollout_waits_are_not_fooled_by_the_old_replica_sets_pods(api: FakeKubeAPI,
                                                                   kube: Kube) -> None:
    api.rollout("orders", fail="CrashLoopBackOff", logs=["panic: bad config"])
    kube.apply(deployment("orders", "orders:1"))
    with pytest.raises(RolloutFailed):
        kube.wait_rollout("orders", "default", interval=0)
    # the fix rolls out: its pods start while the old, crashing one still runs beside them
    api.rollout("orders", reads_until_ready=3, now=False)
    kube.apply(deployment("orders", "orders:2"))
    pods = api.objects("Pod")
    assert len(pods) == 2 and len({p["metadata"]["labels"]["pod-template-hash"]
                                   for p in pods}) == 2
    assert len(api.objects("ReplicaSet")) == 2
    seen: list[str] = []
    status = kube.wait_rollout("orders", "default", interval=0, on_progress=seen.append)
    assert status.done
    assert "deployment orders: 1 old replicas are pending termination" in seen
    assert [p["spec"]["containers"][0]["image"] for p in api.objects("Pod")] == ["orders:2"]


def yaml_doc(text: str) -> dict[str, Any]:
    import yaml

    doc: dict[str, Any] = yaml.safe_load(text)
    return doc

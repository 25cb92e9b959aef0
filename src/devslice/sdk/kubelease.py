"""Consumer leases as ``coordination.k8s.io/v1`` Leases: the lease store pods can read.

The embedded hub's lease table lives in a file on the developer's machine, which pods cannot
see. :class:`KubeLeaseStore` keeps the same leases (:mod:`devslice.sdk.leases`) as Lease
objects in the slice's namespace, so a :class:`~devslice.sdk.eventhubs.SliceConsumer` running
in a pod steps aside while ``devslice debug --exclusive`` runs, whatever hub it consumes:

- the object is named from :func:`~devslice.sdk.leases.lease_name`, sanitised to a DNS-1123
  name (:func:`kube_lease_name`);
- ``spec.holderIdentity`` is the holder, ``spec.renewTime`` (RFC 3339, microseconds) when it
  was last taken or renewed, ``spec.leaseDurationSeconds`` the TTL, rounded up to whole
  seconds (Kubernetes counts no less); the lease is live until renewTime + duration;
- acquiring creates the Lease, or replaces it with the ``resourceVersion`` that was read
  (renewing our own, or taking over an expired one), so of two acquirers racing one gets 409
  and, reading again, finds the winner's live lease; releasing deletes it if we hold it.

Expiry compares the writer's renewTime with the reader's clock, so a laptop and a cluster
should keep roughly the same time (NTP); a skew shortens or lengthens the TTL by as much.

lightkube is imported lazily: services import the SDK, and only those in a pod use this.
"""

from __future__ import annotations

import hashlib
import math
import os
import re
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from devslice.errors import DevsliceError
from devslice.sdk.leases import LeaseInfo

NAMESPACE_FILE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")
_ATTEMPTS = 5  # reads and writes per acquire before giving up on a busy lease


def kube_lease_name(name: str) -> str:
    """A DNS-1123 name for a lease name such as ``consumers/ab/orders``: readable, and unique
    through a hash of the original (``consumers-ab-orders-1a2b3c4d``)."""
    readable = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")[:200] or "lease"
    digest = hashlib.sha256(name.encode()).hexdigest()[:8]
    return f"{readable}-{digest}"


def pod_namespace(environ: Mapping[str, str] | None = None) -> str | None:
    """The namespace of the pod this process runs in, or None when it is not in a pod
    (``KUBERNETES_SERVICE_HOST`` unset) or the namespace cannot be told."""
    env = os.environ if environ is None else environ
    if not env.get("KUBERNETES_SERVICE_HOST"):
        return None
    try:
        found = NAMESPACE_FILE.read_text(encoding="utf-8").strip()
    except OSError:
        found = ""
    return found or env.get("POD_NAMESPACE") or None


def pod_lease_store(environ: Mapping[str, str] | None = None) -> KubeLeaseStore | None:
    """In a pod: a store on lightkube's in-cluster client (built on first use), in the pod's
    namespace. None outside a pod."""
    namespace = pod_namespace(environ)
    return None if namespace is None else KubeLeaseStore(None, namespace)


def _expiry(obj: Mapping[str, Any]) -> datetime | None:
    spec = obj.get("spec") or {}
    stamp = spec.get("renewTime") or spec.get("acquireTime")
    if not spec.get("holderIdentity") or not stamp:
        return None
    try:
        when = datetime.fromisoformat(str(stamp).replace("Z", "+00:00"))
    except ValueError:
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return when + timedelta(seconds=int(spec.get("leaseDurationSeconds") or 0))


def _micro(when: datetime) -> str:
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class KubeLeaseStore:
    """:class:`~devslice.sdk.leases.LeaseStore` on Lease objects in ``namespace``.

    ``client_or_kube`` is a lightkube ``Client``, a :class:`devslice.adapters.kube.Kube`, or
    None for lightkube's in-cluster client (service account), built on first use. Every
    failure is a :class:`~devslice.errors.DevsliceError` (a ``KubeError``), so a consumer
    that cannot read the lease keeps working (:meth:`LeaseWatch.blocking`).
    """

    def __init__(self, client_or_kube: Any, namespace: str | None,
                 clock: Callable[[], datetime] | None = None) -> None:
        self._source = client_or_kube
        self._kube: Any = None
        self.namespace = namespace
        # The reader's and writer's clock: tests pass one they move, to expire a lease
        # without waiting out its TTL.
        self.clock: Callable[[], datetime] = clock or (lambda: datetime.now(UTC))

    @property
    def kube(self) -> Any:
        """The :class:`~devslice.adapters.kube.Kube` adapter over the connection."""
        if self._kube is None:
            try:
                from lightkube import Client, KubeConfig  # lazy: lightkube, ~100 ms

                from devslice.adapters.kube import Kube  # lazy: lightkube, ~110 ms

                source = self._source
                if source is None:
                    source = Client(KubeConfig.from_service_account(),
                                    namespace=self.namespace)
                self._kube = source if isinstance(source, Kube) else Kube(source)
            except DevsliceError:
                raise
            except ModuleNotFoundError as exc:  # the light install: no lease, and why
                raise DevsliceError(f"cannot watch debug leases: {exc.name} is not installed",
                                    hint="add devslice-sdk[kube] to the service's "
                                    "requirements instead of devslice-sdk") from exc
            except Exception as exc:  # no service account: no lease
                raise DevsliceError(f"cannot reach the Kubernetes API for leases: {exc}",
                                    hint="in a pod, the service account's token is mounted "
                                         "unless automountServiceAccountToken is false") from exc
        return self._kube

    def in_namespace(self, namespace: str) -> KubeLeaseStore:
        """The same connection, another namespace."""
        other = KubeLeaseStore(self._source, namespace, self.clock)
        other._kube = self._kube
        return other

    # -- the Lease objects ----------------------------------------------------------------

    def _ns(self) -> str:
        if not self.namespace:
            raise DevsliceError("the lease store has no namespace")
        return self.namespace

    def _get(self, k8s_name: str) -> dict[str, Any] | None:
        got: dict[str, Any] | None = self.kube.get("coordination.k8s.io/v1", "Lease",
                                                   k8s_name, self._ns())
        return got

    def _write(self, obj: dict[str, Any], create: bool) -> bool:
        """Create or replace; False on a 409 (someone else wrote first)."""
        from lightkube.resources.coordination_v1 import Lease  # lazy: lightkube, ~100 ms

        from devslice.adapters.kube import KubeConflict  # lazy: lightkube, ~110 ms

        kube, lease = self.kube, Lease.from_dict(obj)
        verb = "creating" if create else "replacing"
        try:
            with kube._translated(f"{verb} Lease {obj['metadata']['name']}"):
                if create:
                    kube.client.create(lease, namespace=self._ns())
                else:
                    kube.client.replace(lease, namespace=self._ns())
        except KubeConflict:
            return False
        return True

    # -- LeaseStore -----------------------------------------------------------------------

    def acquire_lease(self, name: str, holder: str, ttl: float) -> LeaseInfo | None:
        k8s_name = kube_lease_name(name)
        seconds = max(1, math.ceil(ttl))
        for _ in range(_ATTEMPTS):
            current = self._get(k8s_name)
            now = self.clock()
            spec: dict[str, Any] = dict((current or {}).get("spec") or {})
            expires = _expiry(current) if current is not None else None
            theirs = spec.get("holderIdentity") != holder
            if current is not None and theirs and expires is not None and expires > now:
                return None  # another holder's live lease
            if current is None or theirs:  # new, or taken over
                spec["acquireTime"] = _micro(now)
                if current is not None:
                    spec["leaseTransitions"] = int(spec.get("leaseTransitions") or 0) + 1
            spec.update(holderIdentity=holder, leaseDurationSeconds=seconds,
                        renewTime=_micro(now))
            meta: dict[str, Any] = {"name": k8s_name, "namespace": self._ns()}
            if current is not None:
                meta["resourceVersion"] = current["metadata"]["resourceVersion"]
                for key in ("labels", "annotations"):
                    if current["metadata"].get(key):
                        meta[key] = current["metadata"][key]
            obj = {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                   "metadata": meta, "spec": spec}
            if self._write(obj, create=current is None):
                expires_at = now + timedelta(seconds=seconds)
                return LeaseInfo(name, holder, int(expires_at.timestamp() * 1000))
        from devslice.adapters.kube import KubeConflict  # lazy: lightkube, ~110 ms

        raise KubeConflict(f"Lease {k8s_name} in {self._ns()} kept changing while taking it",
                           hint="another process writes it continuously; try again")

    def release_lease(self, name: str, holder: str) -> None:
        """Delete the Lease if ``holder`` holds it (one already gone is fine). Between the
        read and the delete another holder could take over only a lease that had expired."""
        k8s_name = kube_lease_name(name)
        current = self._get(k8s_name)
        if current is None or (current.get("spec") or {}).get("holderIdentity") != holder:
            return
        self.kube.delete("Lease", k8s_name, self._ns(), api_version="coordination.k8s.io/v1")

    def live_lease(self, name: str) -> LeaseInfo | None:
        current = self._get(kube_lease_name(name))
        if current is None:
            return None
        expires = _expiry(current)
        if expires is None or expires <= self.clock():
            return None
        return LeaseInfo(name, str(current["spec"]["holderIdentity"]),
                         int(expires.timestamp() * 1000))

"""A tiny client of the OCI distribution API, for the local (k3d) registry.

It answers one fact: does the registry hold ``name:tag``? That lets devslice skip an unchanged
image even after the local Docker cache was pruned. The httpx client is passed in;
:meth:`Registry.at` builds the real one (the k3d registry speaks plain HTTP).
"""

from __future__ import annotations

import httpx

from devslice.errors import DevsliceError

# Every manifest type `docker push` can produce: schema 2 (graph-driver image store) and OCI
# index/manifest (containerd image store). distribution answers 404 MANIFEST_UNKNOWN for an OCI
# manifest or index when the Accept header does not list its type ("OCI index found, but accept
# header does not support OCI indexes", registry/handlers/manifests.go), so all are listed.
MANIFEST_MEDIA_TYPES = (
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
    "application/vnd.docker.distribution.manifest.v2+json",
)


class RegistryError(DevsliceError):
    """The registry answered something devslice did not expect."""


class RegistryUnreachable(RegistryError):
    """Nothing answers at the registry's address (not created yet, or stopped)."""


class Registry:
    def __init__(self, client: httpx.Client) -> None:
        self.client = client  # base_url is the registry, e.g. http://localhost:5050

    def close(self) -> None:
        """Release the connection pool (the CLI closes adapters when a command ends)."""
        self.client.close()

    @classmethod
    def at(cls, host: str, *, timeout: float = 5.0) -> Registry:
        return cls(httpx.Client(base_url=f"http://{host}", timeout=timeout))

    def manifest_exists(self, name: str, tag: str) -> bool:
        """``HEAD /v2/<name>/manifests/<tag>``: 200 -> True, 404 -> False."""
        url = f"/v2/{name}/manifests/{tag}"
        try:
            response = self.client.head(url, headers={"Accept": ", ".join(MANIFEST_MEDIA_TYPES)})
        except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
            raise RegistryUnreachable(
                f"the registry at {self.client.base_url} does not answer",
                hint="`devslice up` creates it; `devslice status` shows whether it runs") from exc
        except httpx.HTTPError as exc:
            raise RegistryError(f"HEAD {url} on {self.client.base_url} failed: {exc}") from exc
        if response.status_code == 200:
            return True
        if response.status_code == 404:  # MANIFEST_UNKNOWN or NAME_UNKNOWN; HEAD has no body
            return False
        raise RegistryError(
            f"HEAD {url} on {self.client.base_url} answered {response.status_code}",
            hint="devslice expects the unauthenticated local registry that k3d creates")

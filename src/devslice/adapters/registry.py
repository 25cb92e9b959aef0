"""A tiny client of the OCI distribution API, for the local (k3d) registry and the registry a
shared cluster pulls from (``cluster.kube.registry``, e.g. Azure Container Registry).

It answers one fact: does the registry hold ``name:tag``? That lets devslice skip an unchanged
image even after the local Docker cache was pruned. The HTTP client (httpx2, which lightkube
uses too: one HTTP stack per command; issue 17) is passed in;
:meth:`Registry.at` builds the real one (plain HTTP for the k3d registry on localhost, HTTPS
elsewhere). A registry that answers 401 with a ``Bearer`` challenge gets the distribution token
flow (docs/spec/auth/token.md), signed in with the credentials ``docker login`` (or
``az acr login``) left, which ``credentials`` returns for a host.
"""

from __future__ import annotations

import re
from collections.abc import Callable

import httpx2

from devslice.adapters.plainhttp import trusting_nothing
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


Credentials = Callable[[str], "tuple[str, str] | None"]  # host -> (username, secret)
_CHALLENGE = re.compile(r'(\w+)="([^"]*)"')


def _local(host: str) -> bool:
    name = host.rsplit(":", 1)[0] if host.count(":") == 1 else host
    return name in ("localhost", "127.0.0.1", "::1") or name.endswith(".localhost")


class Registry:
    def __init__(self, client: httpx2.Client, credentials: Credentials | None = None,
                 prefix: str = "") -> None:
        self.client = client  # base_url is the registry, e.g. http://localhost:5050
        self.credentials = credentials
        self.prefix = prefix  # repositories live under it: myacr.azurecr.io/team -> "team"

    def close(self) -> None:
        """Release the connection pool (the CLI closes adapters when a command ends)."""
        self.client.close()

    @classmethod
    def at(cls, location: str, *, timeout: float = 5.0,
           credentials: Credentials | None = None) -> Registry:
        """``localhost:5050`` or ``myacr.azurecr.io/team`` (a host and a repository prefix)."""
        host, _, prefix = location.partition("/")
        if _local(host):  # plain HTTP: no CA bundle to load (issue 17)
            client = httpx2.Client(base_url=f"http://{host}", timeout=timeout,
                                   verify=trusting_nothing())
        else:
            client = httpx2.Client(base_url=f"https://{host}", timeout=timeout)
        return cls(client, credentials, prefix)

    def manifest_exists(self, name: str, tag: str) -> bool:
        """``HEAD /v2/<name>/manifests/<tag>``: 200 -> True, 404 -> False."""
        name = f"{self.prefix}/{name}" if self.prefix else name
        url = f"/v2/{name}/manifests/{tag}"
        headers = {"Accept": ", ".join(MANIFEST_MEDIA_TYPES)}
        try:
            response = self.client.head(url, headers=headers)
            if response.status_code == 401:
                token = self._token(response.headers.get("www-authenticate", ""), name)
                if token is not None:
                    response = self.client.head(
                        url, headers={**headers, "Authorization": f"Bearer {token}"})
        except (httpx2.ConnectError, httpx2.ConnectTimeout) as exc:
            raise RegistryUnreachable(
                f"the registry at {self.client.base_url} does not answer",
                hint="`devslice up` creates it; `devslice status` shows whether it runs") from exc
        except httpx2.HTTPError as exc:
            raise RegistryError(f"HEAD {url} on {self.client.base_url} failed: {exc}") from exc
        if response.status_code == 200:
            return True
        if response.status_code == 404:  # MANIFEST_UNKNOWN or NAME_UNKNOWN; HEAD has no body
            return False
        if response.status_code in (401, 403):
            host = self.client.base_url.host
            raise RegistryError(
                f"the registry {host} refused to show {name}:{tag} ({response.status_code})",
                hint=f"sign in first: `docker login {host}` (Azure Container Registry: `az acr "
                     f"login -n {host.split('.')[0]}`)")
        raise RegistryError(
            f"HEAD {url} on {self.client.base_url} answered {response.status_code}",
            hint="devslice expects an OCI distribution registry (the k3d one, or the one in "
                 "cluster.kube.registry)")

    def _token(self, challenge: str, repository: str) -> str | None:
        """A pull token for ``repository`` from the challenge's realm, signed in with the
        host's credentials when there are some (anonymous otherwise)."""
        if not challenge.lower().startswith("bearer "):
            return None
        params = dict(_CHALLENGE.findall(challenge))
        realm = params.pop("realm", None)
        if realm is None:
            return None
        params.setdefault("scope", f"repository:{repository}:pull")
        found = self.credentials(self.client.base_url.host) if self.credentials else None
        auth = httpx2.BasicAuth(*found) if found else None
        response = self.client.get(realm, params=params, auth=auth)
        if response.status_code != 200:
            return None
        body = response.json()
        token = body.get("token") or body.get("access_token")
        return str(token) if token else None


def docker_credentials(host: str) -> tuple[str, str] | None:
    """What ``docker login`` stored for ``host`` (config.json, credential helpers), read as
    the Docker SDK reads it."""
    from docker import auth  # lazy: only for a registry that asks for credentials

    try:
        found = auth.load_config().resolve_authconfig(host) or {}
    except Exception:  # a broken helper or config: try anonymously, the 401 says the rest
        return None
    user = found.get("Username") or found.get("username")
    secret = found.get("Password") or found.get("password") or found.get("IdentityToken")
    return (str(user), str(secret)) if user and secret else None

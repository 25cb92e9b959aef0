"""Azure Storage: the slice's account in the team's subscription (shared), or Azurite, the
storage emulator, as a container (emulator, k3d) or a process (emulator and embedded, local
runtime), with an account per live slice.

Also home of what finding and keying Azurite needs, in production code:
``devslice.testing.azurite`` re-exports it for users' tests.
"""

from __future__ import annotations

import base64
import hashlib
import os
import shutil
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from devslice.config.derive import derive_names
from devslice.config.model import AzuriteSettings
from devslice.services.base import (
    ContainerInputs,
    Contract,
    Origin,
    ProcessSpec,
    Reach,
    Service,
)
from devslice.tools.azurite import AzuriteNotFound

if TYPE_CHECKING:
    from devslice.config.model import Environment
    from devslice.resources.containers import ContainerSpec
    from devslice.services.base import Project

BLOB_PORT, QUEUE_PORT, TABLE_PORT = 10000, 10001, 10002  # Azurite's defaults
# The well-known development account every Azure SDK documents; not a secret.
DEV_ACCOUNT = "devstoreaccount1"
DEV_KEY = (
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
)
# Newer SDKs send API versions Azurite does not know yet (facts.md).
LENIENT = ("--skipApiVersionCheck", "--loose")


def account_key(account: str) -> str:
    """The key devslice gives an emulator account (Azurite accepts any base64 key).

    Derived from the name by a public formula, so like Azurite's own well-known key it keeps
    nobody out: it only lets the SDKs sign requests. Emulator accounts hold no real data.
    """
    if account == DEV_ACCOUNT:
        return DEV_KEY
    return base64.b64encode(hashlib.sha512(f"devslice:{account}".encode()).digest()).decode()


def connection_string(account: str, blob_endpoint: str, queue_endpoint: str) -> str:
    return (f"DefaultEndpointsProtocol=http;AccountName={account};"
            f"AccountKey={account_key(account)};"
            f"BlobEndpoint={blob_endpoint};QueueEndpoint={queue_endpoint};")


def accounts_variable(accounts: Iterable[str]) -> str:
    """``AZURITE_ACCOUNTS``: ``name:key`` pairs, separated by ``;``."""
    return ";".join(f"{a}:{account_key(a)}" for a in accounts)


def container_accounts(accounts: Iterable[str]) -> str:
    """``AZURITE_ACCOUNTS`` of the container: the dev account (the Event Hubs emulator stores
    its checkpoints there, and setting the variable hides it otherwise; facts.md) and each
    given account, with the keys the contract hands out."""
    return accounts_variable([DEV_ACCOUNT, *sorted(set(accounts) - {DEV_ACCOUNT})])


def find_azurite(start: Path | None = None) -> str:
    """The azurite executable: $AZURITE_BIN, node_modules/.bin here or above, or PATH."""
    explicit = os.environ.get("AZURITE_BIN")
    if explicit:
        return explicit
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        candidate = folder / "node_modules" / ".bin" / "azurite"
        if candidate.exists():
            return str(candidate)
    found = shutil.which("azurite")
    if found:
        return found
    raise AzuriteNotFound(
        "azurite is not installed",
        hint="run `npm install` in the devslice checkout (package.json names azurite), or "
        "`npm install -g azurite@3`",
    )


def azurite_spec(settings: AzuriteSettings, accounts: Iterable[str]) -> ContainerSpec:
    # lazy: the container types, only where containers run (not the local runtime)
    from devslice.adapters.dockerdata import Mount, PortBinding
    from devslice.resources.containers import ContainerSpec, Readiness  # lazy: containers

    names = sorted(set(accounts))
    return ContainerSpec(
        name="azurite", image=settings.image,
        command=("azurite", "--blobHost", "0.0.0.0", "--queueHost", "0.0.0.0",
                 "--tableHost", "0.0.0.0", "--location", "/data", *LENIENT),
        env={"AZURITE_ACCOUNTS": container_accounts(names)},
        ports=(PortBinding(BLOB_PORT, settings.blob_port),
               PortBinding(QUEUE_PORT, settings.queue_port),
               PortBinding(TABLE_PORT, settings.table_port)),
        mounts=(Mount(settings.volume, "/data"),),
        readiness=Readiness(port=settings.blob_port, timeout=60),
        notes={"accounts": ", ".join([DEV_ACCOUNT, *names]),
               # the keys derive from the names; the names say what changed
               "env AZURITE_ACCOUNTS": "(from accounts)"})


class Storage(Service):
    name, key = "storage", "storage"

    def mode(self, env: Environment) -> str:
        return env.storage.mode

    def azurite(self, env: Environment) -> AzuriteSettings | None:
        """Azurite's container settings when it runs: enabled under containers:, implied by
        ``mode: emulator``, or by the Event Hubs emulator, which keeps its data there."""
        # lazy: the Event Hubs service imports this module (its emulator keeps data here)
        from devslice.services.eventhubs import SERVICE as EVENTHUBS

        settings = env.containers.azurite
        if settings is None and (env.storage.mode == "emulator"
                                 or EVENTHUBS.emulator(env) is not None):
            settings = AzuriteSettings()
        return settings

    def variables(self, c: Contract) -> None:
        env, names, p = c.env, c.names, c.prefix
        mode = env.storage.mode
        reach = {"shared": None, "emulator": Reach.published, "embedded": Reach.machine}[mode]
        c.add(f"{p}STORAGE_MODE", mode, Origin.team, "devslice.yaml storage.mode")
        c.add(f"{p}STORAGE_ACCOUNT", names.storage_account, Origin.allocation,
              "storage.accountTemplate")
        c.add(f"{p}STORAGE_BLOBENDPOINT", names.blob_endpoint, Origin.allocation,
              "storage.blobEndpointTemplate", reach, "storage.mode")
        c.add(f"{p}STORAGE_QUEUEENDPOINT", names.queue_endpoint, Origin.allocation,
              "storage.queueEndpointTemplate", reach, "storage.mode")
        if mode != "shared" and env.storage.connection_string is None:
            # Not a secret: the emulator account's key is derived by a public formula, like
            # Azurite's own well-known key, and the account holds no real data.
            c.add(f"{p}STORAGE_CONNECTIONSTRING", connection_string(
                names.storage_account, names.blob_endpoint, names.queue_endpoint), Origin.team,
                f"storage.mode {mode} (Azurite account key)", reach, "storage.mode")
        else:
            c.secret(f"{p}STORAGE_CONNECTIONSTRING", env.storage.connection_string,
                     "devslice.yaml storage.connectionString")

    def machine_only(self, env: Environment) -> str | None:
        return "storage.mode is embedded" if env.storage.mode == "embedded" else None

    def team_service(self, env: Environment) -> str | None:
        return "storage.mode" if env.storage.mode == "shared" else None

    def container_names(self, env: Environment) -> list[str]:
        return ["azurite"] if self.azurite(env) is not None else []

    def wants_accounts(self, env: Environment) -> bool:
        return env.containers.azurite is not None or env.storage.mode == "emulator"

    def containers(self, env: Environment, inputs: ContainerInputs) -> list[ContainerSpec]:
        settings = self.azurite(env)
        return [] if settings is None else [azurite_spec(settings, inputs.storage_accounts)]

    def processes(self, project: Project, folder: Path) -> list[ProcessSpec]:
        """Azurite from its npm package, when storage runs in emulator or embedded mode."""
        env = project.env
        if env.storage.mode == "shared":
            return []
        # Planning needs no tool: where Azurite is, or where `up` installs it (its cache;
        # devslice.local.runtime installs it there first, devslice.tools.azurite).
        from devslice.tools.azurite import cached_azurite, locate_azurite  # lazy: local runtime

        exe = str(locate_azurite(project.base_dir) or cached_azurite())
        blob = urlsplit(env.storage.blob_endpoint_template.replace("{account}", "a")).port \
            or BLOB_PORT
        queue = urlsplit(env.storage.queue_endpoint_template.replace("{account}", "a")).port \
            or QUEUE_PORT
        accounts = sorted({derive_names(env, s.handle).storage_account
                           for s in project.slices()})
        location = project.base_dir / ".devslice" / "local" / "azurite"
        location.mkdir(parents=True, exist_ok=True)
        return [ProcessSpec(
            "azurite",
            [exe, "--silent", *LENIENT, "--disableTelemetry",
             "--location", str(location), "--blobHost", "127.0.0.1", "--blobPort", str(blob),
             "--queueHost", "127.0.0.1", "--queuePort", str(queue), "--tablePort", "0"],
            str(project.base_dir), {"AZURITE_ACCOUNTS": accounts_variable(accounts)},
            {"port": blob, "timeout": 30.0})]

    def process_notes(self, project: Project, specs: Iterable[ProcessSpec]) -> list[str]:
        """What `up` will need for Azurite that is not here yet."""
        # lazy: the local runtime's plan only
        from devslice.tools.azurite import NODE_HINT, azurite_readiness, locate_azurite

        if not any(s.name == "azurite" for s in specs) or locate_azurite(project.base_dir):
            return []
        ok, what = azurite_readiness(project.base_dir)
        return [what if ok else f"{what}: `up` will fail; {NODE_HINT}"]


def azurite_check(env: Environment, base_dir: Path, processes: bool) -> dict[str, Any] | None:
    """Doctor's row for Azurite as a process (``processes``: the local runtime may run):
    found, `up` will install it, or how to get Node; None when the config runs none."""
    if env.storage.mode == "shared" or not processes:
        return None
    from devslice.tools.azurite import NODE_HINT, azurite_readiness  # lazy: doctor only

    ok, what = azurite_readiness(base_dir)
    return {"name": "azurite", "ok": ok, "found": ok, "version": what if ok else None,
            "problem": None if ok else what, "fix": None if ok else NODE_HINT,
            "neededFor": f"storage.mode {env.storage.mode} in the local runtime"}


SERVICE = Storage()

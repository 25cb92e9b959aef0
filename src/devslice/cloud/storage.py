"""The slice's storage account in Azure (``storage.mode: shared``), with the blob containers
and queues ``names:`` lists and the consumers' checkpoint container.

Facts (one read each): the account (``GET``), then, when it exists, its containers and its
queues (one list each). A missing account is created (kind, SKU, TLS 1.2, no public blob
access, devslice's tags) after ``checkNameAvailability``: storage account names are global
in Azure, so a name taken elsewhere is an error naming the template to change. An account
that exists without devslice's tags was made by someone else: it is used as it is, and never
changed or deleted (``--adopt`` tags it).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from contextlib import suppress
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from devslice.access.azure import (
    Azure,
    AzureError,
    AzureNameTaken,
    as_dict,
    claim_of,
    get_or_none,
    ownership,
    slice_tags,
    translated,
    wait,
)
from devslice.adapters.storagelist import SasRejected, account_sas, list_names
from devslice.config.derive import derive_names
from devslice.errors import CommandFailed
from devslice.files import write_atomic
from devslice.resources.plan import Action, noop
from devslice.services.storage import account_key
from devslice.services.storage import connection_string as azurite_connection_string

if TYPE_CHECKING:
    from devslice.config.model import Environment
    from devslice.slices.model import Slice

PROVIDER = "Microsoft.Storage"
# sdk/eventhubs.checkpoint_store_for's default: where SliceConsumer keeps its checkpoints.
CHECKPOINT_CONTAINER = "eventhub-checkpoints"
MIN_TLS = "TLS1_2"
# The emulator's listing SAS (EmulatorContainersResource): made again when refused, so its
# lifetime only spares the SDK's import; its key is derived from a public formula anyway.
SAS_LIFETIME = timedelta(days=365)


def wanted_children(env: Environment, handle: str) -> tuple[list[str], list[str]]:
    """The slice's blob containers (the checkpoint container among them) and queues."""
    named = derive_names(env, handle).named
    containers = [named[k] for k, t in env.names.items() if t.rule == "container"]
    queues = [named[k] for k, t in env.names.items() if t.rule == "queue"]
    if env.event_hubs.event_hubs and CHECKPOINT_CONTAINER not in containers:
        containers.append(CHECKPOINT_CONTAINER)
    return containers, queues


class StorageAccountResource:
    """``azure:storage:<account>``: the account and its containers and queues."""

    def __init__(self, azure: Azure, env: Environment, s: Slice, *, adopt: bool = False,
                 after: tuple[str, ...] = (), progress: Callable[[str], None] | None = None
                 ) -> None:
        self.azure, self.env, self.slice = azure, env, s
        self.account = derive_names(env, s.handle).storage_account
        self.key = f"azure:storage:{self.account}"
        self.after = after
        self.adopt = adopt
        self.progress = progress
        self.tags = slice_tags(env.team, s, env.azure.tags)
        self.containers, self.queues = wanted_children(env, s.handle)

    # -- facts -----------------------------------------------------------------------------
    def _account(self) -> dict[str, Any] | None:
        return get_or_none(f"read storage account {self.account}",
                           self.azure.storage.storage_accounts.get_properties,
                           self.azure.resource_group, self.account)

    def _children(self) -> tuple[set[str], set[str]]:
        rg, client = self.azure.resource_group, self.azure.storage
        with translated(f"list the containers and queues of {self.account}"):
            containers = {c.name for c in client.blob_containers.list(rg, self.account)}
            queues = {q.name for q in client.queue.list(rg, self.account)} if self.queues \
                else set()
        return containers, queues

    # -- plan ------------------------------------------------------------------------------
    def plan(self) -> list[Action]:
        account = self._account()
        actions: list[Action] = []
        if account is None:
            self._check_name()
            actions.append(self._create_account())
            have: tuple[set[str], set[str]] = (set(), set())
        else:
            props = account.get("properties") or {}
            state = props.get("provisioningState")
            owner = ownership(account.get("tags"), self.env.team, claim_of(self.slice))
            if state not in (None, "Succeeded"):
                actions.append(Action(
                    self.key, "wait", f"storage account {self.account} is {state} (an earlier "
                    "`up` was interrupted): create it again, which Azure answers idempotently, "
                    "and wait", (self._put_call(),), self._create))
            elif owner == "untagged" and not self.adopt:
                actions.append(noop(self.key, f"storage account {self.account} exists without "
                                    "devslice's tags: used as it is, never changed or deleted "
                                    "(--adopt tags it as this slice's)"))
            elif owner == "other" and not self.adopt:
                raise AzureError(
                    f"storage account {self.account} is tagged for "
                    f"{(account.get('tags') or {}).get('devslice-claim')}, not this claim of "
                    f"{self.slice.handle}", hint="a resource of an earlier claim was left "
                    "behind: delete it (devslice slice gc --delete-resources) or --adopt it")
            else:
                drift = self._drift(account)
                if drift:
                    actions.append(Action(
                        self.key, "update", f"storage account {self.account}: {drift}",
                        (self.azure.call("PATCH", PROVIDER, "storageAccounts", self.account,
                                         note=drift),), self._update))
                else:
                    actions.append(noop(self.key, f"storage account {self.account} exists, "
                                        f"{MIN_TLS}, no public blob access, tagged"))
            have = self._children() if state in (None, "Succeeded") else (set(), set())
        actions += self._child_actions(*have)
        return actions

    def _check_name(self) -> None:
        with translated(f"check the name {self.account}"):
            result = as_dict(self.azure.storage.storage_accounts.check_name_availability(
                {"name": self.account, "type": "Microsoft.Storage/storageAccounts"}))
        if not result.get("nameAvailable", False):
            raise AzureNameTaken(
                f"the storage account name {self.account} is taken elsewhere in Azure "
                f"({result.get('reason')}: {result.get('message')})",
                hint=f"storage account names are global: change storage.accountTemplate "
                f"({self.env.storage.account_template!r}) in devslice.yaml, e.g. add a "
                "team-specific prefix")

    def _put_call(self) -> str:
        return self.azure.call(
            "PUT", PROVIDER, "storageAccounts", self.account,
            note=f"{self.env.azure.storage_kind}, {self.env.azure.storage_sku}, "
            f"{self.azure.location}, {MIN_TLS}, no public blob access, tags "
            f"{', '.join(f'{k}={v}' for k, v in self.tags.items())}")

    def _create_account(self) -> Action:
        if not self.azure.location:
            raise AzureError(f"storage account {self.account} is missing and azure.location is "
                             "not set", hint="set azure.location in devslice.yaml, e.g. "
                             "westeurope")
        return Action(self.key, "create", f"storage account {self.account} is missing",
                      (self.azure.call("POST", PROVIDER, "checkNameAvailability",
                                       note=self.account).replace(
                          f"/resourceGroups/{self.azure.resource_group}", ""),
                       self._put_call()), self._create)

    def _drift(self, account: dict[str, Any]) -> str:
        props = account.get("properties") or {}
        out = []
        if props.get("minimumTlsVersion") != MIN_TLS:
            out.append(f"minimum TLS {props.get('minimumTlsVersion')} -> {MIN_TLS}")
        if props.get("allowBlobPublicAccess") is not False:
            out.append("public blob access -> off")
        tags = account.get("tags") or {}
        if any(tags.get(k) != v for k, v in self.tags.items()):
            out.append("tags -> devslice's")
        return ", ".join(out)

    def _create(self) -> None:
        body = {"location": self.azure.location,
                "kind": self.env.azure.storage_kind,
                "sku": {"name": self.env.azure.storage_sku},
                "tags": self.tags,
                "properties": {"minimumTlsVersion": MIN_TLS, "allowBlobPublicAccess": False,
                               "supportsHttpsTrafficOnly": True}}
        what = f"create storage account {self.account}"
        with translated(what):
            poller = self.azure.storage.storage_accounts.begin_create(
                self.azure.resource_group, self.account, body)
        wait(poller, what, self.progress)

    def _update(self) -> None:
        account = self._account() or {}
        tags = {**(account.get("tags") or {}), **self.tags}
        with translated(f"update storage account {self.account}"):
            self.azure.storage.storage_accounts.update(
                self.azure.resource_group, self.account,
                {"tags": tags, "properties": {"minimumTlsVersion": MIN_TLS,
                                              "allowBlobPublicAccess": False}})

    def _child_actions(self, containers: set[str], queues: set[str]) -> list[Action]:
        out: list[Action] = []
        for name in self.containers:
            if name in containers:
                out.append(noop(self.key, f"blob container {self.account}/{name} exists"))
                continue
            why = "the consumers' checkpoints" if name == CHECKPOINT_CONTAINER else "names:"
            out.append(Action(
                self.key, "create", f"blob container {self.account}/{name} is missing ({why})",
                (self.azure.call("PUT", PROVIDER, "storageAccounts", self.account,
                                 "blobServices/default/containers", name),),
                lambda n=name: self._put_child("blob_containers", n)))  # type: ignore[misc]
        for name in self.queues:
            if name in queues:
                out.append(noop(self.key, f"queue {self.account}/{name} exists"))
                continue
            out.append(Action(
                self.key, "create", f"queue {self.account}/{name} is missing (names:)",
                (self.azure.call("PUT", PROVIDER, "storageAccounts", self.account,
                                 "queueServices/default/queues", name),),
                lambda n=name: self._put_child("queue", n)))  # type: ignore[misc]
        return out

    def _put_child(self, group: str, name: str) -> None:
        with translated(f"create {name} in {self.account}"):
            getattr(self.azure.storage, group).create(self.azure.resource_group, self.account,
                                                      name, {"properties": {}})


class EmulatorContainersResource:
    """``storage-containers:<account>``: the slice's blob containers (the checkpoint container
    among them) and queues in Azurite (``storage.mode`` emulator or embedded), created before
    the slice's services start, over the storage data plane.

    Its facts are two listings over plain HTTP with an account SAS
    (:mod:`devslice.adapters.storagelist`), read in every `status`, `plan` and `up`: the SAS
    is made by the storage SDK once and kept in ``sas_file`` (``.devslice/storage-sas.json``),
    and made again when the emulator refuses it. The SDK (``connect``) creates what is
    missing.
    """

    def __init__(self, env: Environment, handle: str, *, after: tuple[str, ...] = (),
                 connect: Callable[[], tuple[Any, Any]] | None = None,
                 sas_file: Path | None = None) -> None:
        names = derive_names(env, handle)
        self.account = names.storage_account
        self.blob_endpoint, self.queue_endpoint = names.blob_endpoint, names.queue_endpoint
        self.key = f"storage-containers:{self.account}"
        self.after = after
        self.sas_file = sas_file
        self.containers, self.queues = wanted_children(env, handle)
        conn = azurite_connection_string(names.storage_account, names.blob_endpoint,
                                         names.queue_endpoint)
        self._connect = connect or (lambda: _data_clients(conn))

    def plan(self) -> list[Action]:
        have, have_queues = self._listed()
        out: list[Action] = []
        for name in self.containers:
            out.append(noop(self.key, f"blob container {self.account}/{name} exists")
                       if name in have else
                       Action(self.key, "create", f"blob container {self.account}/{name} is "
                              "missing in the storage emulator",
                              (f"PUT {self.account}/{name}?restype=container",),
                              lambda n=name: self._create("container", n)))  # type: ignore[misc]
        for name in self.queues:
            out.append(noop(self.key, f"queue {self.account}/{name} exists")
                       if name in have_queues else
                       Action(self.key, "create", f"queue {self.account}/{name} is missing in "
                              "the storage emulator", (f"PUT {self.account}/{name} (queue)",),
                              lambda n=name: self._create("queue", n)))  # type: ignore[misc]
        return out

    # -- facts -----------------------------------------------------------------------------
    def _listed(self) -> tuple[set[str], set[str]]:
        """The account's containers and queues; none while Azurite is not started yet (a
        fresh machine: the executor plans again once the emulators are up), or when it
        refuses even a new SAS (it does not know the account: creating says why)."""
        sas = self._kept_sas()
        if sas is not None:
            try:
                return self._list(sas)
            except SasRejected:
                pass  # expired, or made with another key: make a new one
            except OSError:
                return set(), set()
        try:
            return self._list(self._new_sas())
        except (SasRejected, OSError):
            return set(), set()

    def _list(self, sas: str) -> tuple[set[str], set[str]]:
        return (list_names(self.blob_endpoint, sas, "container"),
                list_names(self.queue_endpoint, sas, "queue") if self.queues else set())

    def _kept_sas(self) -> str | None:
        if self.sas_file is None:
            return None
        try:
            kept = json.loads(self.sas_file.read_text())
        except (OSError, ValueError):
            return None
        sas = kept.get(self.account) if isinstance(kept, dict) else None
        return sas if isinstance(sas, str) else None

    def _new_sas(self) -> str:
        sas = account_sas(self.account, account_key(self.account),
                          datetime.now(UTC) + SAS_LIFETIME)
        if self.sas_file is not None:
            try:
                kept = json.loads(self.sas_file.read_text())
            except (OSError, ValueError):
                kept = {}
            kept = kept if isinstance(kept, dict) else {}
            kept[self.account] = sas
            with suppress(OSError):  # a read-only checkout: made again next time
                write_atomic(self.sas_file, json.dumps(kept, indent=2, sort_keys=True) + "\n")
        return sas

    def _create(self, kind: str, name: str) -> None:
        from azure.core.exceptions import AzureError as SdkError  # lazy: azure-core, ~40 ms
        from azure.core.exceptions import ResourceExistsError  # lazy: azure-core, ~40 ms


        blobs, queues = self._connect()
        try:
            if kind == "container":
                blobs.create_container(name)
            else:
                queues.create_queue(name)
        except ResourceExistsError:
            pass  # a service of the slice made it first
        except (SdkError, OSError) as exc:
            raise CommandFailed(f"cannot create {kind} {self.account}/{name} in the storage "
                                f"emulator: {str(exc).splitlines()[0]}") from exc
        finally:
            blobs.close()
            queues.close()


def _data_clients(conn: str) -> tuple[Any, Any]:
    from azure.storage.blob import BlobServiceClient  # lazy: storage blob, ~300 ms
    from azure.storage.queue import QueueServiceClient  # lazy: storage queue, ~300 ms

    # No retries: a plan on a machine where Azurite is not started yet must not wait.
    return (BlobServiceClient.from_connection_string(conn, retry_total=0),
            QueueServiceClient.from_connection_string(conn, retry_total=0))

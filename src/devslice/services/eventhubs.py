"""Event Hubs: the team's namespaces (shared), the official emulator in a container
(emulator), or the embedded hub, a file on this machine (embedded).

Partitions are the slice's, from the ledger, in every mode; what changes is how clients
reach them: the namespace's connection string (a secret), the emulator's documented one, or
``embedded:PATH``. `verify` reads canaries back on the embedded hub only.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from devslice.config.model import EventHubsEmulatorSettings
from devslice.errors import ConfigError, ConfigIssue
from devslice.sdk.context import embedded_connection
from devslice.services.base import (
    HOST_GATEWAY,
    ContainerInputs,
    Contract,
    Origin,
    Probe,
    Reach,
    Service,
    require_eula,
)
from devslice.services.fences import contract_fences
from devslice.services.storage import SERVICE as STORAGE
from devslice.text import plural

if TYPE_CHECKING:
    from devslice.config.model import AzuriteSettings, Environment, EventHubsSettings
    from devslice.resources.containers import ContainerSpec
    from devslice.sdk.context import SliceContext
    from devslice.services.base import Project

EMULATOR_PORT = 5672  # AMQP, inside the container and the emulator's default host port
# The Event Hubs emulator's documented, fixed key (its README): not a secret.
EMULATOR_KEY = "SAS_KEY_VALUE"
EMULATOR_CONFIG = "/Eventhubs_Emulator/ConfigFiles/Config.json"  # the installer's compose files
EMULATOR_NAMESPACE = "emulatorNs1"  # the only namespace name the emulator's schema allows
EMULATOR_READY = "Emulator Service is Successfully Up!"
EMULATOR_MAX_EVENT_HUBS = 10
EMULATOR_MAX_CONSUMER_GROUPS = 20
EMULATOR_MAX_PARTITIONS = 32
READ_BACK_ONLY_EMBEDDED = "real Event Hubs: read back only on the embedded hub"


def emulator_connection_string(port: int = EMULATOR_PORT) -> str:
    """The emulator's documented connection string; ``UseDevelopmentEmulator=true`` makes
    azure-eventhub talk plain AMQP to it (facts.md)."""
    endpoint = "sb://localhost" if port == EMULATOR_PORT else f"sb://localhost:{port}"
    return (f"Endpoint={endpoint};SharedAccessKeyName=RootManageSharedAccessKey;"
            f"SharedAccessKey={EMULATOR_KEY};UseDevelopmentEmulator=true;")


def emulator_config(event_hubs: EventHubsSettings, consumer_groups: Sequence[str] = (),
                    config_path: str = "devslice.yaml") -> dict[str, Any]:
    """Config.json in the emulator's published format (azure-event-hubs-emulator-installer,
    ``EventHub-Emulator/Schema/Config-schema.json``): one namespace ``emulatorNs1``, 1-10
    entities with ``PartitionCount`` as a string, 1-20 consumer groups besides ``$Default``,
    which the emulator makes itself and refuses in the file."""
    problems = []
    hubs, groups = event_hubs.event_hubs, consumer_groups
    if not 1 <= len(hubs) <= EMULATOR_MAX_EVENT_HUBS:
        problems.append(("eventHubs.eventHubs", f"the emulator holds 1 to "
                         f"{EMULATOR_MAX_EVENT_HUBS} event hubs, found {len(hubs)}"))
    if len(groups) > EMULATOR_MAX_CONSUMER_GROUPS:
        problems.append(("containers.eventHubsEmulator.consumerGroups",
                         f"the emulator allows at most {EMULATOR_MAX_CONSUMER_GROUPS} consumer "
                         f"groups, found {len(groups)}"))
    if len(event_hubs.namespaces) != 1:
        problems.append(("eventHubs.namespaces", "the emulator runs one namespace, found "
                         f"{len(event_hubs.namespaces)}"))
    partitions = event_hubs.namespaces[0].partitions
    if not 1 <= partitions <= EMULATOR_MAX_PARTITIONS:
        problems.append(("eventHubs.namespaces[0].partitions", f"the emulator allows 1 to "
                         f"{EMULATOR_MAX_PARTITIONS} partitions, found {partitions}"))
    if problems:
        raise ConfigError([ConfigIssue(config_path, None, None, where, msg)
                           for where, msg in problems])
    entities = []
    for hub in hubs:
        entity: dict[str, Any] = {"Name": hub, "PartitionCount": str(partitions)}
        if groups:  # the schema wants at least one item when the key is there
            entity["ConsumerGroups"] = [{"Name": g} for g in groups]
        entities.append(entity)
    return {"UserConfig": {
        "NamespaceConfig": [{"Type": "EventHub", "Name": EMULATOR_NAMESPACE,
                             "Entities": entities}],
        "LoggingConfig": {"Type": "File"},
    }}


def emulator_spec(settings: EventHubsEmulatorSettings, event_hubs: EventHubsSettings,
                  azurite: AzuriteSettings, base_dir: Path,
                  config_path: str = "devslice.yaml") -> ContainerSpec:
    # lazy: the container types, only where containers run (not the local runtime)
    from devslice.adapters.dockerdata import Mount, PortBinding
    from devslice.resources.containers import (  # lazy: containers
        STATE_DIR,
        ContainerSpec,
        GeneratedFile,
        Readiness,
    )

    require_eula(settings.accept_eula, "eventHubsEmulator", "the Event Hubs emulator",
                 "https://github.com/Azure/azure-event-hubs-emulator-installer/blob/main/"
                 "EMULATOR_EULA.md", config_path)
    config = json.dumps(emulator_config(event_hubs, settings.consumer_groups, config_path),
                        indent=2) + "\n"
    path = Path(base_dir) / STATE_DIR / "eventhubs-emulator" / "Config.json"
    return ContainerSpec(
        name="eventhubs-emulator", image=settings.image,
        # The emulator keeps its data in Azurite. The installer's compose files set exactly
        # these three variables; its docker-compose-custom-ports-linux.yml reaches Azurite as
        # here, by host:port through the host (host.docker.internal:host-gateway), which
        # needs no shared Docker network with the Azurite container.
        env={"BLOB_SERVER": f"{HOST_GATEWAY}:{azurite.blob_port}",
             "METADATA_SERVER": f"{HOST_GATEWAY}:{azurite.table_port}",
             "ACCEPT_EULA": "Y"},
        ports=(PortBinding(EMULATOR_PORT, settings.port),),
        mounts=(Mount(str(path), EMULATOR_CONFIG, "bind", read_only=True),),
        extra_hosts=(f"{HOST_GATEWAY}:host-gateway",),
        readiness=Readiness(log=EMULATOR_READY, timeout=180),
        files=(GeneratedFile(path, config),),
        after=("container:azurite",))


class EventHubs(Service):
    name, key = "eventhubs", "eventHubs"

    def mode(self, env: Environment) -> str:
        return env.event_hubs.mode

    def emulator(self, env: Environment) -> EventHubsEmulatorSettings | None:
        """The emulator container's settings when it runs: enabled under containers:, or
        implied by ``mode: emulator``."""
        settings = env.containers.event_hubs_emulator
        if settings is None and env.event_hubs.mode == "emulator":
            settings = EventHubsEmulatorSettings()
        return settings

    def variables(self, c: Contract) -> None:
        env, s, p = c.env, c.slice, c.prefix
        mode = env.event_hubs.mode
        ns = next((n for n in env.event_hubs.namespaces if n.name == s.event_hubs.namespace),
                  None)
        c.add(f"{p}EVENTHUBS_MODE", mode, Origin.team, "devslice.yaml eventHubs.mode")
        c.add(f"{p}EVENTHUBS_NAMESPACE", s.event_hubs.namespace, Origin.allocation, c.ledger)
        if ns is not None and mode == "shared":
            c.add(f"{p}EVENTHUBS_FULLYQUALIFIEDNAMESPACE", ns.host, Origin.team,
                  "devslice.yaml eventHubs.namespaces")
        if ns is not None:
            c.add(f"{p}EVENTHUBS_PARTITIONCOUNT", str(ns.partitions), Origin.team,
                  "devslice.yaml eventHubs.namespaces")
        c.add(env.contract.partition_ids_variable, ",".join(map(str, s.event_hubs.partitions)),
              Origin.allocation, c.ledger)
        fences = contract_fences(s)  # issue 11: a new holder never sees an old holder's events
        if fences is not None and s.claim is not None:
            c.add(f"{p}SLICE_CLAIM", s.claim, Origin.allocation, c.ledger)
            c.add(f"{p}EVENTHUBS_STARTFENCE", fences.format(), Origin.allocation, c.ledger)
        variable = f"{p}EVENTHUBS_CONNECTIONSTRING"
        if mode == "embedded":
            # Not a secret: a file on this machine, read by the SDK's embedded hub.
            path = (c.base_dir / env.event_hubs.embedded_path).resolve()
            c.add(variable, embedded_connection(
                path, env.event_hubs.embedded_retention.total_seconds(),
                env.event_hubs.embedded_max_size_mb), Origin.team,
                "devslice.yaml eventHubs.embeddedPath", Reach.machine, "eventHubs.mode")
        elif mode == "emulator":
            # Not a secret: the emulator's fixed, documented key (its README).
            emulator = env.containers.event_hubs_emulator
            c.add(variable, emulator_connection_string(
                emulator.port if emulator else EMULATOR_PORT), Origin.team,
                "eventHubs.mode emulator (the Event Hubs emulator container)", Reach.published,
                "eventHubs.mode")
        elif ns is not None:
            c.secret(variable, ns.connection_string,
                     f"devslice.yaml eventHubs.namespaces[{ns.name}].connectionString")

    def machine_only(self, env: Environment) -> str | None:
        return "eventHubs.mode is embedded" if env.event_hubs.mode == "embedded" else None

    def team_service(self, env: Environment) -> str | None:
        return "eventHubs.mode" if env.event_hubs.mode == "shared" else None

    def container_names(self, env: Environment) -> list[str]:
        return ["eventhubs-emulator"] if self.emulator(env) is not None else []

    def wants_accounts(self, env: Environment) -> bool:
        return self.emulator(env) is not None  # it keeps its data in Azurite

    def containers(self, env: Environment, inputs: ContainerInputs) -> list[ContainerSpec]:
        settings = self.emulator(env)
        if settings is None:
            return []
        azurite = STORAGE.azurite(env)
        assert azurite is not None  # the emulator implies Azurite
        return [emulator_spec(settings, env.event_hubs, azurite, inputs.base_dir,
                              inputs.config_path)]

    def container_only(self, env: Environment, config_path: str) -> ConfigIssue | None:
        if env.event_hubs.mode != "emulator":
            return None
        return ConfigIssue(config_path, None, None, "eventHubs.mode",
                           "emulator: the Event Hubs emulator comes only as a container image, "
                           "and the local runtime runs no containers; expected embedded here")

    def read_back_skip(self, env: Environment) -> str | None:
        """Why `verify` cannot read the slice's events back, or None when it can."""
        if not env.event_hubs.event_hubs:
            return "no event hub in eventHubs.eventHubs"
        if env.event_hubs.mode != "embedded":
            return READ_BACK_ONLY_EMBEDDED
        return None

    def probe(self, project: Project, handle: str, ctx: SliceContext) -> Probe:
        """Canaries through the slice's producer, one to each of its partitions, each read
        back from every partition: it must arrive in its own only."""
        env = project.env
        if env.event_hubs.mode != "embedded":
            return Probe("skipped", READ_BACK_ONLY_EMBEDDED)
        if not env.event_hubs.event_hubs:
            return Probe("skipped", "no event hub in eventHubs.eventHubs")
        return _canary(env.event_hubs.event_hubs[0], ctx)


def _canary(hub_name: str, ctx: SliceContext) -> Probe:
    from azure.eventhub import EventData  # lazy: azure-eventhub loads for `verify` only

    from devslice.embedded import EmbeddedHub  # lazy: so does the embedded hub
    from devslice.sdk.eventhubs import CANARY, SliceProducer  # lazy: and the SDK's producer

    assert ctx.embedded_path is not None
    hub = EmbeddedHub(ctx.embedded_path, partitions=ctx.partition_count or 32)
    try:
        all_ids = hub.partition_ids(hub_name)
        before = {p: hub.last_sequence_number(hub_name, p) for p in all_ids}
        canaries = {}
        with SliceProducer.from_context(hub_name, ctx) as producer:
            for p in ctx.partition_ids or ():
                marker = f"devslice-canary-{uuid.uuid4().hex}"
                canary = EventData(marker)
                canary.properties = {CANARY: "1"}  # SliceConsumer keeps it from services
                producer.send(canary, partition_id=p)
                canaries[marker] = p
        found: dict[str, list[str]] = {}
        for p in all_ids:
            for event in hub.read(hub_name, p, before[p], limit=10_000):
                body = event.body.decode(errors="replace")
                if body in canaries:
                    found.setdefault(body, []).append(p)
    finally:
        hub.close()
    wrong = [f"canary for {p} arrived in {','.join(found.get(m, []) or ['no partition'])}"
             for m, p in canaries.items() if found.get(m) != [p]]
    if wrong:
        return Probe("failed", "; ".join(wrong))
    return Probe("ok", f"{plural(len(canaries), 'canary')} on {hub_name}, each only in its "
                 "partition")


SERVICE = EventHubs()

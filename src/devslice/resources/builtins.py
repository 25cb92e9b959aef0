"""The built-in containers a team enables in a line, and the team's own, as ContainerSpecs.

    containers:
      mongodb: {replicaSet: rs0, oplogSizeMB: 50}
      sftp: {users: [{name: foo, password: {fromEnv: SFTP_FOO_PASSWORD}, folders: [upload]}]}
      azurite: {}
      eventHubsEmulator: {acceptEula: true}     # also implied by eventHubs.mode: emulator
      kustoEmulator: {acceptEula: true}         # also implied by dataExplorer.mode: emulator
      signalrEmulator: {}                       # also implied by signalR.mode: emulator

Each built-in is the seed article's ``docker run`` line made reproducible: MongoDB as a one-node
replica set, atmoz/sftp with users from secrets, Azurite with an account per live slice, and
the official Event Hubs emulator with a Config.json generated from ``eventHubs``, and the
Kusto (Data Explorer) emulator.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from devslice.adapters.docker import Mount, PortBinding
from devslice.config.model import (
    PORT_SPEC,
    VOLUME_SPEC,
    AzuriteSettings,
    ContainerSettings,
    EventHubsEmulatorSettings,
    EventHubsSettings,
    KustoEmulatorSettings,
    MongoDbSettings,
    SetupScript,
    SftpSettings,
    SignalREmulatorSettings,
)
from devslice.emulators import (
    AZURITE_DEV_ACCOUNT,
    SIGNALR_EMULATOR_READY,
    azurite_account_key,
    kusto_emulator_url,
)
from devslice.errors import ConfigError, ConfigIssue
from devslice.resources.containers import STATE_DIR, ContainerSpec, GeneratedFile, Readiness, Setup
from devslice.secrets import Secret, resolve

if TYPE_CHECKING:
    from devslice.config.model import Environment

MONGODB_PORT = 27017  # inside the container
SFTP_USERS_CONF = "/etc/sftp/users.conf"  # where atmoz/sftp reads its users
EMULATOR_CONFIG = "/Eventhubs_Emulator/ConfigFiles/Config.json"  # the installer's compose files
EMULATOR_NAMESPACE = "emulatorNs1"  # the only namespace name the emulator's schema allows
EMULATOR_READY = "Emulator Service is Successfully Up!"
EMULATOR_MAX_EVENT_HUBS = 10
EMULATOR_MAX_CONSUMER_GROUPS = 20
EMULATOR_MAX_PARTITIONS = 32
HOST_GATEWAY = "host.docker.internal"  # Docker's name for the host, with host-gateway
KUSTO_PORT = 8080  # inside the container; HTTP only, no authentication
KUSTO_DATA = "/kustodata"  # where its docs mount a volume for persistent databases
KUSTO_READY = "Hit 'CTRL-C' or 'CTRL-BREAK' to quit"  # Azure/adx-mon waits for it too
SIGNALR_PORT = 8888  # asrs-emulator's default, inside the container
SIGNALR_TOOLS = "/tools"  # where the container installs the .NET tool (a volume)

# ------------------------------------------------------------------ MongoDB


def mongodb_member_host(settings: MongoDbSettings, runtime: str, subnet: str) -> str:
    """The replica set member's ``host:port``: an address both the host and the cluster
    reach, because a replica-set client connects to the member hosts the set reports, not to
    the address it was given.

    - k3d: the gateway of the cluster's network with the *host* port. Pods reach the laptop
      there (host.k3d.internal stops resolving after sleep, k3d issues 1221, 1360); the host
      owns that address (on Linux the bridge interface; Docker Desktop keeps it in its VM), and
      mongod, which checks that one member is itself by connecting to it, gets there through
      the published port. Host clients use ``directConnection=true`` and so never need it.
    - otherwise: 127.0.0.1 with the *container* port, which inside the container is mongod
      itself; nothing outside the machine connects.
    """
    if runtime == "k3d":
        from devslice.resources.k3d import host_gateway

        return f"{host_gateway(subnet)}:{settings.port}"
    return f"127.0.0.1:{MONGODB_PORT}"


def mongodb_init_script(replica_set: str, member_host: str, timeout_s: int = 30) -> str:
    """mongosh script: ``rs.initiate`` once (facts.md: never without a config, which would
    record the container id as host), re-point the member if its host changed, then wait for
    a writable primary so setup scripts after it can write."""
    rs, host = json.dumps(replica_set), json.dumps(member_host)
    return (
        "let status = null;\n"
        "try { status = rs.status(); } catch (e) {\n"
        "  if (e.codeName !== 'NotYetInitialized') { throw e; }\n"
        "}\n"
        "if (status === null) {\n"
        f"  rs.initiate({{_id: {rs}, members: [{{_id: 0, host: {host}}}]}});\n"
        f"  print('initiated replica set ' + {rs} + ' with member ' + {host});\n"
        "} else {\n"
        "  const conf = rs.conf();\n"
        f"  if (conf.members.length !== 1 || conf.members[0].host !== {host}) {{\n"
        f"    conf.members = [Object.assign(conf.members[0], {{host: {host}}})];\n"
        "    rs.reconfig(conf, {force: true});\n"
        f"    print('replica set member host is now ' + {host});\n"
        "  } else {\n"
        f"    print('replica set ' + {rs} + ' already initiated');\n"
        "  }\n"
        "}\n"
        f"for (let i = 0; i < {timeout_s * 5} && !db.hello().isWritablePrimary; i++) "
        "{ sleep(200); }\n"
        "if (!db.hello().isWritablePrimary) {\n"
        f"  throw new Error('replica set ' + {rs} + ' has no primary after {timeout_s} s');\n"
        "}\n"
    )


def mongodb_spec(settings: MongoDbSettings, base_dir: Path, *, runtime: str = "k3d",
                 subnet: str = "172.18.0.0/16", config_path: str = "devslice.yaml",
                 ) -> ContainerSpec:
    member = mongodb_member_host(settings, runtime, subnet)
    eval_ = ("mongosh", "--quiet", "--eval")
    setup = [Setup("replica-set", (*eval_, mongodb_init_script(settings.replica_set, member)))]
    setup += setup_scripts(settings.setup, base_dir, "containers.mongodb.setup", config_path,
                           default_run=(*eval_, "{script}"))
    return ContainerSpec(
        name="mongodb", image=settings.image,
        command=("mongod", "--replSet", settings.replica_set, "--bind_ip_all",
                 "--oplogSize", str(settings.oplog_size_mb)),
        ports=(PortBinding(MONGODB_PORT, settings.port),),
        mounts=(Mount(settings.volume, "/data/db"),),
        readiness=Readiness(command=(*eval_, "db.adminCommand('ping').ok"), timeout=60),
        setup=tuple(setup),
        # The member host is the k3d network's gateway, which exists once the cluster does.
        after=("cluster",) if runtime == "k3d" else (),
        notes={"member host": member})


# ------------------------------------------------------------------ SFTP


def sftp_users_conf(settings: SftpSettings, passwords: Sequence[str]) -> str:
    """atmoz/sftp's users.conf: ``name:pass:::folder,folder`` per line (empty uid and gid let
    the image choose)."""
    return "".join(f"{u.name}:{pw}:::{','.join(u.folders)}\n"
                   for u, pw in zip(settings.users, passwords, strict=True))


def sftp_spec(settings: SftpSettings, base_dir: Path, environ: dict[str, str] | None = None,
              config_path: str = "devslice.yaml") -> ContainerSpec:
    """Passwords come from secrets into a generated users.conf (mode 0600) mounted read-only:
    never on the command line, in the environment or in labels."""
    secrets: list[Secret] = []
    for i, user in enumerate(settings.users):
        secret = resolve(user.password, base_dir, environ)
        if any(c in secret.reveal() for c in ":\n\r"):
            raise ConfigError([ConfigIssue(
                config_path, None, None, f"containers.sftp.users[{i}].password",
                f"the password of {user.name!r} ({secret.source}) holds ':' or a line break, "
                "which users.conf cannot carry")], hint="choose a password without them")
        secrets.append(secret)
    sources = ",".join(s.source for s in secrets)
    content = Secret(sftp_users_conf(settings, [s.reveal() for s in secrets]), sources)
    conf = Path(base_dir) / STATE_DIR / "sftp" / "users.conf"
    return ContainerSpec(
        name="sftp", image=settings.image,
        ports=(PortBinding(22, settings.port),),
        mounts=(Mount(str(conf), SFTP_USERS_CONF, "bind", read_only=True),
                Mount(settings.volume, "/home")),
        readiness=Readiness(port=settings.port, timeout=60),
        files=(GeneratedFile(conf, content),),
        notes={"users": ", ".join(f"{u.name} ({','.join(u.folders) or 'no folders'})"
                                  for u in settings.users)})


# ------------------------------------------------------------------ Azurite


def azurite_accounts(accounts: Iterable[str]) -> str:
    """``AZURITE_ACCOUNTS``: the dev account (the Event Hubs emulator stores its checkpoints
    there, and setting the variable hides it otherwise; facts.md) and each given account,
    with the keys the contract hands out."""
    names = [AZURITE_DEV_ACCOUNT, *sorted(set(accounts) - {AZURITE_DEV_ACCOUNT})]
    return ";".join(f"{a}:{azurite_account_key(a)}" for a in names)


def azurite_spec(settings: AzuriteSettings, accounts: Iterable[str]) -> ContainerSpec:
    names = sorted(set(accounts))
    return ContainerSpec(
        name="azurite", image=settings.image,
        command=("azurite", "--blobHost", "0.0.0.0", "--queueHost", "0.0.0.0",
                 "--tableHost", "0.0.0.0", "--location", "/data",
                 # Newer SDKs send API versions Azurite does not know yet (facts.md).
                 "--skipApiVersionCheck", "--loose"),
        env={"AZURITE_ACCOUNTS": azurite_accounts(names)},
        ports=(PortBinding(10000, settings.blob_port), PortBinding(10001, settings.queue_port),
               PortBinding(10002, settings.table_port)),
        mounts=(Mount(settings.volume, "/data"),),
        readiness=Readiness(port=settings.blob_port, timeout=60),
        notes={"accounts": ", ".join([AZURITE_DEV_ACCOUNT, *names]),
               # the keys derive from the names; the names say what changed
               "env AZURITE_ACCOUNTS": "(from accounts)"})


def _require_eula(accepted: bool, key: str, what: str, url: str, config_path: str,
                  note: str = "") -> None:
    """Microsoft's emulators start only with ACCEPT_EULA=Y; devslice never sets it unasked."""
    if not accepted:
        raise ConfigError([ConfigIssue(
            config_path, None, None, f"containers.{key}.acceptEula",
            f"{what} starts only once its license (EULA) is accepted, with ACCEPT_EULA=Y, and "
            f"devslice does not accept it for you ({what} runs because containers.{key} is set "
            f"or a service's mode is emulator)")],
            hint=f"read {url}, then set containers.{key}.acceptEula: true{note}")


# ------------------------------------------------------------------ Event Hubs emulator


def eventhubs_emulator_config(event_hubs: EventHubsSettings,
                              consumer_groups: Sequence[str] = (),
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


def eventhubs_emulator_spec(settings: EventHubsEmulatorSettings, event_hubs: EventHubsSettings,
                            azurite: AzuriteSettings, base_dir: Path,
                            config_path: str = "devslice.yaml") -> ContainerSpec:
    _require_eula(settings.accept_eula, "eventHubsEmulator", "the Event Hubs emulator",
                  "https://github.com/Azure/azure-event-hubs-emulator-installer/blob/main/"
                  "EMULATOR_EULA.md", config_path)
    config = json.dumps(eventhubs_emulator_config(event_hubs, settings.consumer_groups,
                                                  config_path), indent=2) + "\n"
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
        ports=(PortBinding(5672, settings.port),),
        mounts=(Mount(str(path), EMULATOR_CONFIG, "bind", read_only=True),),
        extra_hosts=(f"{HOST_GATEWAY}:host-gateway",),
        readiness=Readiness(log=EMULATOR_READY, timeout=180),
        files=(GeneratedFile(path, config),),
        after=("container:azurite",))


# ------------------------------------------------------------------ Kusto emulator


def kusto_emulator_spec(settings: KustoEmulatorSettings,
                        config_path: str = "devslice.yaml") -> ContainerSpec:
    """``docker run -e ACCEPT_EULA=Y -m 4G -p 8080:8080 kustainer-linux`` (the install docs).
    Ready once its HTTP port answers and it logs that it runs; the slice's database is made
    with ``devslice adx reset``, which the emulator (unlike a cloud cluster) accepts."""
    _require_eula(settings.accept_eula, "kustoEmulator", "the Kusto emulator",
                  "https://learn.microsoft.com/azure/data-explorer/kusto-emulator-overview",
                  config_path, " (it needs 4 GB of memory and an x86-64 processor with AVX2)")
    return ContainerSpec(
        name="kusto-emulator", image=settings.image,
        env={"ACCEPT_EULA": "Y"},
        ports=(PortBinding(KUSTO_PORT, settings.port),),
        mounts=(Mount(settings.volume, KUSTO_DATA),),
        readiness=Readiness(port=settings.port, log=KUSTO_READY, timeout=300),
        notes={"cluster url": kusto_emulator_url(settings.port)})


# ------------------------------------------------------------------ SignalR emulator


def signalr_emulator_spec(settings: SignalREmulatorSettings, port: int) -> ContainerSpec:
    """asrs-emulator in a container (Microsoft ships it as a .NET tool only): installed with
    ``dotnet tool install`` into a volume on first start, then started on all addresses
    (``-i 0.0.0.0``; by default it listens on loopback, which a published port cannot
    reach). Ready once it says it started and its port answers."""
    # One folder per version: an install cut short leaves no shim, and its folder (with the
    # package store dotnet keeps in .store) is removed before the next try.
    folder = f"{SIGNALR_TOOLS}/{settings.version}"
    tool = f"{folder}/asrs-emulator"
    script = (f"[ -x {tool} ] || {{ rm -rf {folder} && dotnet tool install --tool-path {folder} "
              f"Microsoft.Azure.SignalR.Emulator --version {settings.version}; }} && "
              f"exec {tool} start -p {SIGNALR_PORT} -i 0.0.0.0")
    return ContainerSpec(
        name="signalr-emulator", image=settings.image,
        command=("sh", "-c", script),
        env={"DOTNET_CLI_TELEMETRY_OPTOUT": "1", "DOTNET_NOLOGO": "1"},
        ports=(PortBinding(SIGNALR_PORT, port),),
        mounts=(Mount(settings.volume, SIGNALR_TOOLS),),
        readiness=Readiness(port=port, log=SIGNALR_EMULATOR_READY, timeout=300),
        notes={"endpoint": f"http://127.0.0.1:{port}"})


# ------------------------------------------------------------------ the team's own


def setup_scripts(scripts: Sequence[SetupScript], base_dir: Path, where: str,
                  config_path: str = "devslice.yaml",
                  default_run: Sequence[str] | None = None) -> list[Setup]:
    out = []
    for i, s in enumerate(scripts):
        text = ""
        if s.file is not None:
            path = Path(base_dir) / s.file
            try:
                text = path.read_text(encoding="utf-8")
            except OSError as exc:
                raise ConfigError([ConfigIssue(
                    config_path, None, None, f"{where}[{i}].file",
                    f"{s.file!r} cannot be read ({exc.strerror}); expected a script file "
                    "relative to devslice.yaml")]) from exc
        run = list(s.run)
        if default_run is not None and "run" not in s.model_fields_set:
            run = list(default_run)
        out.append(Setup(s.name, tuple(a.replace("{script}", text) for a in run)))
    return out


def _ports(specs: Sequence[str]) -> tuple[PortBinding, ...]:
    out = []
    for spec in specs:
        m = PORT_SPEC.match(spec)
        assert m is not None  # checked by the config model
        out.append(PortBinding(int(m["container"]), int(m["host"]), m["ip"] or "",
                               m["proto"] or "tcp"))
    return tuple(out)


def _mounts(specs: Sequence[str]) -> tuple[Mount, ...]:
    out = []
    for spec in specs:
        m = VOLUME_SPEC.match(spec)
        assert m is not None  # checked by the config model
        out.append(Mount(m["name"], m["target"], read_only=spec.endswith(":ro")))
    return tuple(out)


def custom_spec(settings: ContainerSettings, index: int, base_dir: Path,
                environ: dict[str, str] | None = None,
                config_path: str = "devslice.yaml") -> ContainerSpec:
    where = f"containers.custom[{index}]"
    ports = _ports(settings.ports)
    env: dict[str, str | Secret] = dict(settings.env)
    for name, ref in settings.secret_env.items():
        env[name] = resolve(ref, base_dir, environ)
    readiness = None
    if settings.ready is not None:
        r = settings.ready
        host_port = None
        if r.port is not None:
            host_port = next((p.host_port for p in ports if p.container_port == r.port), None)
            if host_port is None:
                raise ConfigError([ConfigIssue(
                    config_path, None, None, f"{where}.ready.port",
                    f"port {r.port} is not published; expected one of the container ports in "
                    f"ports ({', '.join(settings.ports) or 'none'})")])
        readiness = Readiness(port=host_port, command=tuple(r.command or ()), log=r.log,
                              timeout=r.timeout.total_seconds())
    return ContainerSpec(
        name=settings.name, image=settings.image, command=tuple(settings.command), env=env,
        ports=ports, mounts=_mounts(settings.volumes), restart=settings.restart,
        readiness=readiness,
        setup=tuple(setup_scripts(settings.setup, base_dir, f"{where}.setup", config_path)))


# ------------------------------------------------------------------ all of them


class _Emulators(NamedTuple):
    """The built-in emulators in use: enabled under containers:, or implied by a mode."""

    eventhubs: EventHubsEmulatorSettings | None
    azurite: AzuriteSettings | None
    kusto: KustoEmulatorSettings | None
    signalr: SignalREmulatorSettings | None


def _implied(env: Environment) -> _Emulators:
    c = env.containers
    eventhubs = c.event_hubs_emulator
    if eventhubs is None and env.event_hubs.mode == "emulator":
        eventhubs = EventHubsEmulatorSettings()
    azurite = c.azurite
    if azurite is None and (eventhubs is not None or env.storage.mode == "emulator"):
        azurite = AzuriteSettings()  # the Event Hubs emulator keeps its data there
    kusto = c.kusto_emulator
    if kusto is None and env.data_explorer.mode == "emulator":
        kusto = KustoEmulatorSettings()
    signalr = c.signalr_emulator
    if signalr is None and env.signal_r.mode == "emulator":
        signalr = SignalREmulatorSettings()
    return _Emulators(eventhubs, azurite, kusto, signalr)


def container_names(env: Environment) -> list[str]:
    """The names of the environment's containers (``devslice-NAME``), as container_specs
    makes them, without resolving a secret: what `down` and `destroy` act on."""
    c, e = env.containers, _implied(env)
    return [name for name, on in (("mongodb", c.mongodb), ("sftp", c.sftp),
                                  ("azurite", e.azurite), ("eventhubs-emulator", e.eventhubs),
                                  ("kusto-emulator", e.kusto), ("signalr-emulator", e.signalr))
            if on is not None] + [s.name for s in c.custom]


def _subnet(env: Environment, base_dir: Path, runtime: str) -> str:
    if runtime != "k3d":
        return env.cluster.subnet  # unused: only k3d's gateway is needed
    from devslice.resources.k3d import cluster_subnet

    return cluster_subnet(env.cluster, base_dir)


def container_specs(env: Environment, base_dir: Path, *, runtime: str,
                    storage_accounts: Iterable[str] = (),
                    environ: dict[str, str] | None = None,
                    config_path: str = "devslice.yaml") -> list[ContainerSpec]:
    """Every container of the environment: the built-ins enabled under ``containers:``, those
    a service's ``mode: emulator`` implies (Azurite by storage, the Event Hubs emulator with
    Azurite beside it by eventHubs, the Kusto emulator by dataExplorer, the SignalR emulator
    by signalR), then the team's own. ``storage_accounts``: the live slices' accounts."""
    c, e = env.containers, _implied(env)
    out: list[ContainerSpec] = []
    if c.mongodb is not None:
        out.append(mongodb_spec(c.mongodb, base_dir, runtime=runtime,
                                subnet=_subnet(env, base_dir, runtime),
                                config_path=config_path))
    if c.sftp is not None:
        out.append(sftp_spec(c.sftp, base_dir, environ, config_path))
    if e.azurite is not None:
        out.append(azurite_spec(e.azurite, storage_accounts))
    if e.eventhubs is not None:
        assert e.azurite is not None
        out.append(eventhubs_emulator_spec(e.eventhubs, env.event_hubs, e.azurite, base_dir,
                                           config_path))
    if e.kusto is not None:
        out.append(kusto_emulator_spec(e.kusto, config_path))
    if e.signalr is not None:
        out.append(signalr_emulator_spec(e.signalr, env.signal_r.emulator_port))
    out += [custom_spec(s, i, base_dir, environ, config_path) for i, s in enumerate(c.custom)]
    return out

"""Azure Data Explorer: the slice's database on the team's cluster (shared), or the Kusto
emulator in a container (emulator; k3d only: it comes as an image alone), where `devslice up`
creates the slice's database."""

from __future__ import annotations

from typing import TYPE_CHECKING

from devslice.config.derive import derive_names
from devslice.config.model import KustoEmulatorSettings
from devslice.errors import ConfigIssue
from devslice.services.base import ContainerInputs, Contract, Origin, Reach, Service, require_eula

if TYPE_CHECKING:
    from devslice.config.model import Environment
    from devslice.resources.containers import ContainerSpec
    from devslice.services.base import Resource

EMULATOR_PORT = 8080  # inside the container, and its default host port; HTTP only, no sign-in
EMULATOR_READY = "Hit 'CTRL-C' or 'CTRL-BREAK' to quit"  # Azure/adx-mon waits for it too


def emulator_url(port: int) -> str:
    """The Kusto emulator's cluster URL for clients on this machine: plain HTTP, no sign-in
    (its docs: "doesn't support HTTPS or Microsoft Entra authentication")."""
    return f"http://127.0.0.1:{port}"


def emulator_spec(settings: KustoEmulatorSettings,
                  config_path: str = "devslice.yaml") -> ContainerSpec:
    """``docker run -e ACCEPT_EULA=Y -m 4G -p 8080:8080 kustainer-linux`` (the install docs).
    Ready once its HTTP port answers and it logs that it runs; the slice's database is made
    with ``devslice adx reset``, which the emulator (unlike a cloud cluster) accepts."""
    # lazy: the container types, only where containers run (not the local runtime)
    from devslice.adapters.dockerdata import Mount, PortBinding
    from devslice.resources.containers import ContainerSpec, Readiness  # lazy: containers
    from devslice.resources.dataexplorer import KUSTO_DATA  # lazy: containers

    require_eula(settings.accept_eula, "kustoEmulator", "the Kusto emulator",
                 "https://learn.microsoft.com/azure/data-explorer/kusto-emulator-overview",
                 config_path, " (it needs 4 GB of memory and an x86-64 processor with AVX2)")
    return ContainerSpec(
        name="kusto-emulator", image=settings.image,
        env={"ACCEPT_EULA": "Y"},
        ports=(PortBinding(EMULATOR_PORT, settings.port),),
        mounts=(Mount(settings.volume, KUSTO_DATA),),
        readiness=Readiness(port=settings.port, log=EMULATOR_READY, timeout=300),
        notes={"cluster url": emulator_url(settings.port)})


class DataExplorer(Service):
    name, key = "dataexplorer", "dataExplorer"

    def mode(self, env: Environment) -> str:
        return env.data_explorer.mode

    def emulator(self, env: Environment) -> KustoEmulatorSettings | None:
        settings = env.containers.kusto_emulator
        if settings is None and env.data_explorer.mode == "emulator":
            settings = KustoEmulatorSettings()
        return settings

    def variables(self, c: Contract) -> None:
        env, p = c.env, c.prefix
        dx = env.data_explorer
        c.add(f"{p}DATAEXPLORER_MODE", dx.mode, Origin.team, "devslice.yaml dataExplorer.mode")
        if dx.mode == "emulator":
            kusto = env.containers.kusto_emulator or KustoEmulatorSettings()
            c.add(f"{p}DATAEXPLORER_CLUSTERURL", emulator_url(kusto.port), Origin.team,
                  "dataExplorer.mode emulator (the Kusto emulator container)",
                  Reach.published, "dataExplorer.mode")
        elif dx.cluster_url:
            c.add(f"{p}DATAEXPLORER_CLUSTERURL", dx.cluster_url, Origin.team,
                  "devslice.yaml dataExplorer.clusterUrl")
        c.add(f"{p}DATAEXPLORER_DATABASE", c.names.data_explorer_database, Origin.allocation,
              "dataExplorer.databaseTemplate")
        for key, value in (("TABLE", dx.routing.table), ("FORMAT", dx.routing.format),
                           ("INGESTIONMAPPINGREFERENCE", dx.routing.ingestion_mapping_reference)):
            if value:
                c.add(f"{p}DATAEXPLORER_{key}", value, Origin.team,
                      "devslice.yaml dataExplorer.routing")

    def team_service(self, env: Environment) -> str | None:
        # Without a cluster there is nothing a slice could take from anyone.
        dx = env.data_explorer
        return "dataExplorer.mode" if dx.mode == "shared" and dx.cluster_url else None

    def container_names(self, env: Environment) -> list[str]:
        return ["kusto-emulator"] if self.emulator(env) is not None else []

    def containers(self, env: Environment, inputs: ContainerInputs) -> list[ContainerSpec]:
        settings = self.emulator(env)
        return [] if settings is None else [emulator_spec(settings, inputs.config_path)]

    def cluster_resources(self, env: Environment, handle: str) -> list[Resource]:
        """The slice's database in the emulator, created when missing."""
        if env.data_explorer.mode != "emulator":
            return []
        # lazy: the Kusto client the resource uses, only with the emulator
        from devslice.resources.dataexplorer import EmulatorDatabaseResource

        port = (env.containers.kusto_emulator or KustoEmulatorSettings()).port
        return [EmulatorDatabaseResource(derive_names(env, handle).data_explorer_database,
                                         emulator_url(port),
                                         after=("container:kusto-emulator",))]

    def container_only(self, env: Environment, config_path: str) -> ConfigIssue | None:
        if env.data_explorer.mode != "emulator":
            return None
        return ConfigIssue(config_path, None, None, "dataExplorer.mode",
                           "emulator: the Kusto emulator comes only as a container image, and "
                           "the local runtime runs no containers; expected shared here")


SERVICE = DataExplorer()

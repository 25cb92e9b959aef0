"""Azure SignalR: the slice's hubs on the team's service (shared), or asrs-emulator, the
SignalR emulator, in a container (emulator, k3d) or as a process on this machine (emulator
in the local runtime, and embedded). Hubs are logical: nothing is created per slice."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import TYPE_CHECKING

from devslice.config.model import SignalREmulatorSettings
from devslice.errors import CommandFailed
from devslice.sdk.context import variable_key
from devslice.services.base import (
    ContainerInputs,
    Contract,
    Origin,
    ProcessSpec,
    Reach,
    Service,
    ToolNeed,
)

if TYPE_CHECKING:
    from devslice.config.model import Environment
    from devslice.resources.containers import ContainerSpec
    from devslice.services.base import Project

EMULATOR_PORT = 8888  # asrs-emulator's default, inside the container
TOOLS = "/tools"  # where the container installs the .NET tool (a volume)
# The SignalR emulator's fixed key (AppBuilderExtensions.cs in Azure/azure-signalr's
# Microsoft.Azure.SignalR.Emulator); it accepts any token signed with it. Not a secret.
EMULATOR_KEY = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789ABCDEFGH"
EMULATOR_READY = "The Azure SignalR Emulator was successfully started."
INSTALL = "dotnet tool install -g Microsoft.Azure.SignalR.Emulator (needs .NET 8)"


def emulator_connection_string(port: int) -> str:
    """What ``asrs-emulator start`` prints, for 127.0.0.1 (it listens on loopback)."""
    return (f"Endpoint=http://127.0.0.1;Port={port};AccessKey={EMULATOR_KEY};"
            "Version=1.0;")


def emulator_spec(settings: SignalREmulatorSettings, port: int) -> ContainerSpec:
    """asrs-emulator in a container (Microsoft ships it as a .NET tool only): installed with
    ``dotnet tool install`` into a volume on first start, then started on all addresses
    (``-i 0.0.0.0``; by default it listens on loopback, which a published port cannot
    reach). Ready once it says it started and its port answers."""
    # lazy: the container types, only where containers run (not the local runtime)
    from devslice.adapters.dockerdata import Mount, PortBinding
    from devslice.resources.containers import ContainerSpec, Readiness  # lazy: containers

    # One folder per version: an install cut short leaves no shim, and its folder (with the
    # package store dotnet keeps in .store) is removed before the next try.
    folder = f"{TOOLS}/{settings.version}"
    tool = f"{folder}/asrs-emulator"
    script = (f"[ -x {tool} ] || {{ rm -rf {folder} && dotnet tool install --tool-path {folder} "
              f"Microsoft.Azure.SignalR.Emulator --version {settings.version}; }} && "
              f"exec {tool} start -p {EMULATOR_PORT} -i 0.0.0.0")
    return ContainerSpec(
        name="signalr-emulator", image=settings.image,
        command=("sh", "-c", script),
        env={"DOTNET_CLI_TELEMETRY_OPTOUT": "1", "DOTNET_NOLOGO": "1"},
        ports=(PortBinding(EMULATOR_PORT, port),),
        mounts=(Mount(settings.volume, TOOLS),),
        readiness=Readiness(port=port, log=EMULATOR_READY, timeout=300),
        notes={"endpoint": f"http://127.0.0.1:{port}"})


class SignalR(Service):
    name, key = "signalr", "signalR"

    def mode(self, env: Environment) -> str:
        return env.signal_r.mode

    def emulator(self, env: Environment) -> SignalREmulatorSettings | None:
        settings = env.containers.signalr_emulator
        if settings is None and env.signal_r.mode == "emulator":
            settings = SignalREmulatorSettings()
        return settings

    def variables(self, c: Contract) -> None:
        env, p = c.env, c.prefix
        mode = env.signal_r.mode
        c.add(f"{p}SIGNALR_MODE", mode, Origin.team, "devslice.yaml signalR.mode")
        if mode != "shared":
            port = env.signal_r.emulator_port
            reach = Reach.published if mode == "emulator" else Reach.machine
            c.add(f"{p}SIGNALR_ENDPOINT", f"http://127.0.0.1:{port}", Origin.team,
                  f"signalR.mode {mode} (asrs-emulator on this machine)", reach, "signalR.mode")
            # Not a secret: the emulator's fixed, published key, which signs no real service.
            c.add(f"{p}SIGNALR_CONNECTIONSTRING", emulator_connection_string(port),
                  Origin.team, f"signalR.mode {mode} (the emulator's published key)", reach,
                  "signalR.mode")
        elif env.signal_r.endpoint:
            c.add(f"{p}SIGNALR_ENDPOINT", env.signal_r.endpoint, Origin.team,
                  "devslice.yaml signalR.endpoint")
        for hub, name in c.names.signalr_hubs.items():
            c.add(f"{p}SIGNALR_HUB_{variable_key(hub)}", name, Origin.allocation,
                  "signalR.hubTemplate")
        if mode == "shared":
            c.secret(f"{p}SIGNALR_CONNECTIONSTRING", env.signal_r.connection_string,
                     "devslice.yaml signalR.connectionString")

    def machine_only(self, env: Environment) -> str | None:
        return "signalR.mode is embedded" if env.signal_r.mode == "embedded" else None

    def team_service(self, env: Environment) -> str | None:
        # Without an endpoint there is nothing a slice could take from anyone.
        s = env.signal_r
        return "signalR.mode" if s.mode == "shared" and (s.endpoint or s.connection_string) \
            else None

    def container_names(self, env: Environment) -> list[str]:
        return ["signalr-emulator"] if self.emulator(env) is not None else []

    def containers(self, env: Environment, inputs: ContainerInputs) -> list[ContainerSpec]:
        settings = self.emulator(env)
        return [] if settings is None else [emulator_spec(settings, env.signal_r.emulator_port)]

    def processes(self, project: Project, folder: Path) -> list[ProcessSpec]:
        """``asrs-emulator start -p PORT`` in emulator or embedded mode (no container here),
        ready when it prints that it started (facts: it listens on loopback only, with a
        fixed key; ``settings.json`` in its folder, if any, holds upstream settings)."""
        mode = project.env.signal_r.mode
        if mode == "shared":
            return []
        exe = shutil.which("asrs-emulator")
        if exe is None:
            raise CommandFailed(f"signalR.mode is {mode} but asrs-emulator is not installed",
                                hint="`dotnet tool install -g Microsoft.Azure.SignalR.Emulator` "
                                "(needs .NET 8), or set signalR.mode: shared")
        folder = folder / "signalr"
        folder.mkdir(parents=True, exist_ok=True)
        port = project.env.signal_r.emulator_port
        return [ProcessSpec("signalr", [exe, "start", "-p", str(port)], str(folder), {},
                            {"port": port, "log": EMULATOR_READY, "timeout": 60.0})]

    def tools(self, env: Environment, processes: bool) -> list[ToolNeed]:
        mode = env.signal_r.mode
        if mode == "embedded" or (mode == "emulator" and processes):
            return [ToolNeed("asrs-emulator", f"signalR.mode {mode}", INSTALL)]
        return []


SERVICE = SignalR()

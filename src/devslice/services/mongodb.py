"""MongoDB (``containers.mongodb``), container-only in the seed article: a one-node replica
set (change streams need one) in a container on k3d, or ``mongod`` as a process in the local
runtime when MongoDB is installed. Clients on this machine connect with
``directConnection=true``; pods through the cluster network's gateway."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

from devslice.adapters.runner import CommandRunner, SubprocessRunner
from devslice.errors import CommandFailed
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
    from devslice.config.model import Environment, MongoDbSettings
    from devslice.resources.containers import ContainerSpec
    from devslice.services.base import Project

PORT = 27017  # inside the container


def connection_string(port: int) -> str:
    """For clients on the host: ``directConnection=true`` talks to the one node without
    discovering the set's member host, which the host may not reach (facts.md)."""
    return f"mongodb://127.0.0.1:{port}/?directConnection=true"


def member_host(settings: MongoDbSettings, runtime: str, subnet: str) -> str:
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
        # lazy: resources.k3d brings the k3d adapter, needed for this runtime only
        from devslice.resources.k3d import host_gateway

        return f"{host_gateway(subnet)}:{settings.port}"
    return f"127.0.0.1:{PORT}"


def init_script(replica_set: str, member: str, timeout_s: int = 30) -> str:
    """mongosh script: ``rs.initiate`` once (facts.md: never without a config, which would
    record the container id as host), re-point the member if its host changed, then wait for
    a writable primary so setup scripts after it can write."""
    rs, host = json.dumps(replica_set), json.dumps(member)
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


def spec(settings: MongoDbSettings, base_dir: Path, *, runtime: str = "k3d",
         subnet: str = "172.18.0.0/16", config_path: str = "devslice.yaml") -> ContainerSpec:
    # lazy: the container types, only where containers run (not the local runtime)
    from devslice.adapters.dockerdata import Mount, PortBinding
    from devslice.resources.builtins import setup_scripts  # lazy: containers
    from devslice.resources.containers import ContainerSpec, Readiness, Setup  # lazy: containers

    member = member_host(settings, runtime, subnet)
    eval_ = ("mongosh", "--quiet", "--eval")
    setup = [Setup("replica-set", (*eval_, init_script(settings.replica_set, member)))]
    setup += setup_scripts(settings.setup, base_dir, "containers.mongodb.setup", config_path,
                           default_run=(*eval_, "{script}"))
    return ContainerSpec(
        name="mongodb", image=settings.image,
        command=("mongod", "--replSet", settings.replica_set, "--bind_ip_all",
                 "--oplogSize", str(settings.oplog_size_mb)),
        ports=(PortBinding(PORT, settings.port),),
        mounts=(Mount(settings.volume, "/data/db"),),
        readiness=Readiness(command=(*eval_, "db.adminCommand('ping').ok"), timeout=60),
        setup=tuple(setup),
        # The member host is the k3d network's gateway, which exists once the cluster does.
        after=("cluster",) if runtime == "k3d" else (),
        notes={"member host": member})


class MongoDb(Service):
    name, key = "mongodb", "containers.mongodb"

    def enabled(self, env: Environment) -> bool:
        return env.containers.mongodb is not None

    def variables(self, c: Contract) -> None:
        mongodb = c.env.containers.mongodb
        if mongodb is None:
            return
        # For clients on this machine: directConnection=true skips the replica set's member
        # host, which the host may not reach (Docker Desktop keeps the k3d gateway in its VM).
        c.add(f"{c.prefix}MONGODB_CONNECTIONSTRING", connection_string(mongodb.port),
              Origin.team, "containers.mongodb (the MongoDB container)", Reach.published,
              "containers.mongodb")

    def container_names(self, env: Environment) -> list[str]:
        return ["mongodb"] if self.enabled(env) else []

    def containers(self, env: Environment, inputs: ContainerInputs) -> list[ContainerSpec]:
        mongodb = env.containers.mongodb
        if mongodb is None:
            return []
        # only k3d's gateway is needed; elsewhere the subnet is not asked for
        subnet = inputs.subnet() if inputs.runtime == "k3d" else env.cluster.subnet
        return [spec(mongodb, inputs.base_dir, runtime=inputs.runtime, subnet=subnet,
                     config_path=inputs.config_path)]

    def processes(self, project: Project, folder: Path) -> list[ProcessSpec]:
        """``mongod`` when containers.mongodb is set and MongoDB is installed."""
        mongodb = project.env.containers.mongodb
        mongod = shutil.which("mongod")
        if mongodb is None or mongod is None:
            return []
        data = folder / "mongodb"
        data.mkdir(parents=True, exist_ok=True)
        return [ProcessSpec(
            "mongodb",
            [mongod, "--replSet", mongodb.replica_set, "--bind_ip", "127.0.0.1", "--port",
             str(mongodb.port), "--dbpath", str(data), "--oplogSize",
             str(mongodb.oplog_size_mb)],
            str(project.base_dir), {}, {"port": mongodb.port, "timeout": 30.0})]

    def process_notes(self, project: Project, specs: Iterable[ProcessSpec]) -> list[str]:
        if self.enabled(project.env) and not any(s.name == "mongodb" for s in specs):
            return ["containers.mongodb is set but mongod is not installed, so MongoDB does "
                    "not run here (install MongoDB, or use the k3d runtime, where it runs as a "
                    "container)"]
        return []

    def after_start(self, project: Project, specs: Iterable[ProcessSpec],
                    runner: CommandRunner | None = None) -> None:
        """The one-node replica set, initiated with a member host this machine reaches (the
        same script the container runs; it does nothing once initiated)."""
        mongodb = project.env.containers.mongodb
        if mongodb is None or not any(s.name == "mongodb" for s in specs):
            return
        mongosh = shutil.which("mongosh")
        if mongosh is None:
            raise CommandFailed("mongod runs, but mongosh is not installed to initiate its "
                                "replica set",
                                hint="install mongosh (MongoDB Shell), then `devslice up` again")
        script = init_script(mongodb.replica_set, f"127.0.0.1:{mongodb.port}")
        done = (runner or SubprocessRunner()).run(
            [mongosh, "--quiet", "--port", str(mongodb.port), "--eval", script], check=False,
            timeout=120)
        if done.returncode != 0:
            raise CommandFailed("initiating the MongoDB replica set failed:\n"
                                + (done.stdout + done.stderr).strip()[-2000:],
                                hint="`devslice logs mongodb` shows mongod's side")

    def tools(self, env: Environment, processes: bool) -> list[ToolNeed]:
        if not self.enabled(env) or not processes:
            return []
        return [ToolNeed(tool, "containers.mongodb in the local runtime", "install MongoDB "
                         "(mongod) and the MongoDB Shell (mongosh)") for tool in ("mongod",
                                                                                  "mongosh")]


SERVICE = MongoDb()

"""SFTP (``containers.sftp``), container-only: atmoz/sftp with users whose passwords come
from secrets, written to a generated users.conf (mode 0600) mounted read-only: never on the
command line, in the environment or in labels."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from devslice.errors import ConfigError, ConfigIssue
from devslice.secrets import Secret, resolve
from devslice.services.base import ContainerInputs, Service

if TYPE_CHECKING:
    from devslice.config.model import Environment, SftpSettings
    from devslice.resources.containers import ContainerSpec

PORT = 22  # inside the container
USERS_CONF = "/etc/sftp/users.conf"  # where atmoz/sftp reads its users


def users_conf(settings: SftpSettings, passwords: Sequence[str]) -> str:
    """atmoz/sftp's users.conf: ``name:pass:::folder,folder`` per line (empty uid and gid let
    the image choose)."""
    return "".join(f"{u.name}:{pw}:::{','.join(u.folders)}\n"
                   for u, pw in zip(settings.users, passwords, strict=True))


def spec(settings: SftpSettings, base_dir: Path, environ: dict[str, str] | None = None,
         config_path: str = "devslice.yaml") -> ContainerSpec:
    # lazy: the container types, only where containers run (not the local runtime)
    from devslice.adapters.dockerdata import Mount, PortBinding
    from devslice.resources.containers import (  # lazy: containers
        STATE_DIR,
        ContainerSpec,
        GeneratedFile,
        Readiness,
    )

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
    content = Secret(users_conf(settings, [s.reveal() for s in secrets]), sources)
    conf = Path(base_dir) / STATE_DIR / "sftp" / "users.conf"
    return ContainerSpec(
        name="sftp", image=settings.image,
        ports=(PortBinding(PORT, settings.port),),
        mounts=(Mount(str(conf), USERS_CONF, "bind", read_only=True),
                Mount(settings.volume, "/home")),
        readiness=Readiness(port=settings.port, timeout=60),
        files=(GeneratedFile(conf, content),),
        notes={"users": ", ".join(f"{u.name} ({','.join(u.folders) or 'no folders'})"
                                  for u in settings.users)})


class Sftp(Service):
    name, key = "sftp", "containers.sftp"

    def enabled(self, env: Environment) -> bool:
        return env.containers.sftp is not None

    def container_names(self, env: Environment) -> list[str]:
        return ["sftp"] if self.enabled(env) else []

    def containers(self, env: Environment, inputs: ContainerInputs) -> list[ContainerSpec]:
        sftp = env.containers.sftp
        if sftp is None:
            return []
        return [spec(sftp, inputs.base_dir, inputs.environ, inputs.config_path)]


SERVICE = Sftp()

"""The team's own containers (``containers.custom``) as ContainerSpecs, and the setup scripts
every container may run.

The built-ins a team enables in a line (``containers.mongodb``, ``sftp``, ``azurite``, the
emulators) belong to their services, in :mod:`devslice.services`;
:func:`devslice.services.container_specs` lists them all, these included.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from devslice.adapters.dockerdata import Mount, PortBinding
from devslice.config.model import PORT_SPEC, VOLUME_SPEC, ContainerSettings, SetupScript
from devslice.errors import ConfigError, ConfigIssue
from devslice.resources.containers import ContainerSpec, Readiness, Setup
from devslice.secrets import Secret, resolve

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

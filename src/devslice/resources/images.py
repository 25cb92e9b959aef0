"""Service images: built from their context, tagged by its hash, pushed to the local registry.

The tag is a hash of what the build sees (context files after ``.dockerignore``, Dockerfile,
build args), so an unchanged service keeps its tag and the registry alone tells whether it
must be built: no local image cache, build history or timestamps are trusted.

    registry has name:tag            -> noop
    engine has the image, registry not -> push
    neither                            -> build, push

``read(reader)`` gathers those facts (the context's tag, one registry ``HEAD``, and an engine
inspect only when the registry lacks the tag); ``plan(facts)`` reads nothing.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from devslice.adapters.docker import Docker
from devslice.adapters.dockerdata import build_call, push_call
from devslice.adapters.registry import Registry, RegistryUnreachable
from devslice.config.model import ImageSettings
from devslice.errors import ConfigError, ConfigIssue
from devslice.facts.world import Reader
from devslice.resources.plan import Action, noop

TAG_PREFIX = "ds-"
TAG_HEX = 12
_HASH_VERSION = b"devslice-context-v1\0"  # bump to retag every image if the recipe changes
_CHUNK = 1 << 20


def read_dockerignore(context_dir: Path) -> list[str]:
    """Patterns as the Docker SDK reads them: stripped lines, no blanks, no ``#`` comments."""
    path = context_dir / ".dockerignore"
    if not path.is_file():
        return []
    lines = (line.strip() for line in path.read_text().splitlines())
    return [line for line in lines if line and not line.startswith("#")]


def context_files(context_dir: str | os.PathLike[str], dockerfile: str = "Dockerfile") -> list[str]:
    """Relative paths (files and folders, ``/``-separated, sorted) the build context will hold.

    Uses the Docker SDK's own ``.dockerignore`` matcher, the one ``image_build`` sends the
    context through, so the hash covers exactly what the engine receives (``!`` exceptions,
    ``**``, and the rule that the Dockerfile and ``.dockerignore`` are always sent). Without
    patterns that matcher excludes nothing and the SDK is not loaded for it (issue 17).
    """
    root = Path(context_dir)
    patterns = read_dockerignore(root)
    if not patterns:
        return sorted(n.replace(os.sep, "/") for n in every_path(str(root)))
    # lazy: the SDK (with requests, ~55 ms of imports), only for a context with patterns
    from docker.utils import exclude_paths

    inside = _dockerfile_in_context(root, dockerfile)
    # A Dockerfile outside the context is sent under a random name; no context file is
    # forced in on its behalf then.
    names = exclude_paths(str(root), patterns, dockerfile=inside or ".dockerfile.outside")
    return sorted(n.replace(os.sep, "/") for n in names)


def every_path(root: str) -> Iterator[str]:
    """What the SDK's matcher (``PatternMatcher.walk``) gives when no pattern excludes
    anything: every file and folder under ``root``, relative, symlinked folders not entered."""
    def walk(rel: str) -> Iterator[str]:
        for name in os.listdir(os.path.join(root, rel)):
            path = os.path.join(rel, name) if rel else name
            yield path
            full = os.path.join(root, path)
            if os.path.isdir(full) and not os.path.islink(full):
                yield from walk(path)

    return walk("")


def context_hash(context_dir: str | os.PathLike[str], dockerfile: str = "Dockerfile",
                 build_args: Mapping[str, str] | None = None) -> str:
    """``ds-`` and 12 hex digits of a sha256 over the build's inputs.

    Per entry: its kind, relative path, the executable bit and the content (a symlink's
    target). Timestamps and owners are left out, so a fresh clone hashes the same.
    """
    root = Path(context_dir)
    h = hashlib.sha256(_HASH_VERSION)
    for rel in context_files(root, dockerfile):
        path = root / rel
        name = rel.encode()
        if path.is_symlink():
            h.update(b"L\0" + name + b"\0" + os.readlink(path).encode() + b"\0")
        elif path.is_dir():
            h.update(b"D\0" + name + b"\0")
        elif path.is_file():
            executable = b"x" if os.access(path, os.X_OK) else b"-"
            h.update(b"F\0" + name + b"\0" + executable + str(path.stat().st_size).encode()
                     + b"\0")
            with path.open("rb") as f:
                while block := f.read(_CHUNK):
                    h.update(block)
    # The Dockerfile's name and content: it may live outside the context.
    h.update(b"dockerfile\0" + dockerfile.encode() + b"\0" + (root / dockerfile).read_bytes())
    h.update(b"buildargs\0" + json.dumps(dict(build_args or {}), sort_keys=True).encode())
    return TAG_PREFIX + h.hexdigest()[:TAG_HEX]


def image_tag(settings: ImageSettings, base_dir: str | os.PathLike[str],
              config_path: str = "devslice.yaml") -> str:
    """The tag of ``settings``' current context; a missing context or Dockerfile is a
    ConfigError located at ``config_path``."""
    context = Path(base_dir) / settings.context
    where = f"images[name={settings.name}]"
    if not context.is_dir():
        raise ConfigError([ConfigIssue(
            config_path, None, None, f"{where}.context",
            f"{settings.context!r} is not a folder (looked for {context}); expected the build "
            "context, relative to devslice.yaml")])
    if not (context / settings.dockerfile).is_file():
        raise ConfigError([ConfigIssue(
            config_path, None, None, f"{where}.dockerfile",
            f"{settings.dockerfile!r} is not a file in {context}; expected the Dockerfile, "
            "relative to the context")])
    return context_hash(context, settings.dockerfile, settings.build_args)


# BuildKit-only Dockerfile syntax. devslice builds through the Docker SDK, which speaks the
# engine's classic builder only (docker-py has no BuildKit session; Debian's docker.io ships no
# buildx). The classic builder refuses these mid-build ("the --mount option requires BuildKit")
# or misreads a heredoc's body as instructions ("unknown instruction: ECHO"), so they are
# named before anything is built (issue 13).
_RUN_FLAG = re.compile(r"^RUN\s+(?:--\S+\s+)*?(--(?:mount|network|security))\b", re.IGNORECASE)
_COPY_FLAG = re.compile(r"^(?:COPY|ADD)\s+(?:--\S+\s+)*?(--(?:link|parents|exclude|checksum|"
                        r"keep-git-dir))\b", re.IGNORECASE)
_HEREDOC = re.compile(r"^(?:RUN|COPY|ADD)\s(?:.*\s)?<<-?[\"']?[A-Za-z_][A-Za-z0-9_]*[\"']?",
                      re.IGNORECASE)
_SYNTAX = re.compile(r"^#\s*syntax\s*=\s*(\S+)", re.IGNORECASE)


def buildkit_syntax(dockerfile: str) -> list[tuple[int, int, str]]:
    """``(line, column, what)`` for each BuildKit-only construct in a Dockerfile's text."""
    out: list[tuple[int, int, str]] = []
    directives = True  # parser directives come first, before any comment or instruction
    for number, raw in enumerate(dockerfile.splitlines(), 1):
        line = raw.strip()
        column = len(raw) - len(raw.lstrip()) + 1
        syntax = _SYNTAX.match(line) if directives else None
        if syntax:
            out.append((number, column, f"the parser directive `# syntax={syntax.group(1)}`"))
            continue
        directives = directives and line.startswith("#") and "=" in line
        for pattern in (_RUN_FLAG, _COPY_FLAG):
            m = pattern.match(line)
            if m:
                out.append((number, column + m.start(1),
                            f"`{line.split(None, 1)[0].upper()} {m.group(1)}`"))
        if _HEREDOC.match(line):
            out.append((number, column + line.index("<<"), "a heredoc (`<<EOF`)"))
    return out


def check_classic_builder(settings: ImageSettings, base_dir: str | os.PathLike[str]) -> None:
    """Refuse a Dockerfile the classic builder cannot build, naming line and construct."""
    path = Path(base_dir) / settings.context / settings.dockerfile
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return  # image_tag reports a missing Dockerfile
    found = buildkit_syntax(text)
    if found:
        raise ConfigError([ConfigIssue(
            str(path), line, column, "",
            f"{what} needs BuildKit; devslice builds image {settings.name!r} with the Docker "
            "engine's classic builder, which refuses it") for line, column, what in found],
            hint="write the step without it (a plain RUN, COPY then RUN instead of a heredoc), "
            "or build and push the image yourself and reference it in the manifests")


def image_refs(images: Sequence[ImageSettings], base_dir: str | os.PathLike[str],
               registry_host: str, config_path: str = "devslice.yaml") -> dict[str, str]:
    """``{name: "localhost:5050/name:ds-..."}``, for rewriting manifests' image references.

    ``registry_host`` is the name the cluster pulls from, which may differ from the one the
    engine pushes to; the tag is the same.
    """
    return {i.name: f"{registry_host}/{i.name}:{image_tag(i, base_dir, config_path)}"
            for i in images}


@dataclass(frozen=True)
class ImageFacts:
    """The tag of the context as it is now; whether the registry holds it (None: the
    registry does not answer); whether the engine holds it (None: not asked)."""

    tag: str
    in_registry: bool | None
    built: bool | None = None


class ImageResource:
    """One service image in the local registry under the tag of its current context."""

    def __init__(self, settings: ImageSettings, base_dir: str | os.PathLike[str],
                 registry_host: str, docker: Docker, registry: Registry, *,
                 after: tuple[str, ...] = ("registry",),
                 config_path: str = "devslice.yaml") -> None:
        self.settings = settings
        self.base_dir = Path(base_dir)
        self.registry_host = registry_host  # as the engine pushes to it, e.g. localhost:5050
        self.docker = docker
        self.registry = registry
        self.key = f"image:{settings.name}"
        self.after = after
        self.config_path = config_path  # for error locations only

    @property
    def context_dir(self) -> Path:
        return self.base_dir / self.settings.context

    @property
    def repository(self) -> str:
        return f"{self.registry_host}/{self.settings.name}"

    def tag(self) -> str:
        return image_tag(self.settings, self.base_dir, self.config_path)

    def read(self, reader: Reader) -> ImageFacts:
        tag = self.tag()
        check_classic_builder(self.settings, self.base_dir)
        name = self.settings.name
        try:
            present: bool | None = reader.once(
                ("registry", id(self.registry), "manifest", name, tag),
                lambda: self.registry.manifest_exists(name, tag))
        except RegistryUnreachable:
            present = None
        built = None
        if not present:
            ref = f"{self.repository}:{tag}"
            built = reader.once(("docker", id(self.docker), "image", ref),
                                lambda: self.docker.image_get(ref) is not None)
        return ImageFacts(tag, present, built)

    def plan(self, facts: ImageFacts | None = None) -> list[Action]:
        facts = facts or self.read(Reader())
        tag = facts.tag
        name, ref = self.settings.name, f"{self.repository}:{tag}"
        if facts.in_registry:
            return [noop(self.key, f"{name}:{tag} already in {self.registry_host}")]
        if facts.in_registry is None:
            # On a fresh machine the registry is created earlier in the same `up`; the
            # executor re-plans this resource once the registry runs.
            missing = f"registry {self.registry_host} not running yet"
        else:
            missing = f"no image {tag} in the registry"
        push_calls = (push_call(self.repository, tag),)
        if facts.built:
            # Built by an earlier `up` whose push failed, or the registry was recreated.
            return [Action(self.key, "push", f"built locally, {missing}", push_calls,
                           lambda: self._push(tag))]
        return [
            Action(self.key, "build", f"context changed: {missing}",
                   (build_call(ref, self._dockerfile_param(), self.settings.build_args),),
                   lambda: self._build(ref)),
            Action(self.key, "push", f"publish {ref}", push_calls, lambda: self._push(tag)),
        ]

    def _build(self, ref: str) -> None:
        s = self.settings
        self.docker.image_build(self.context_dir, s.dockerfile, ref, s.build_args)

    def _push(self, tag: str) -> None:
        self.docker.image_push(self.repository, tag)

    def _dockerfile_param(self) -> str:
        inside = _dockerfile_in_context(self.context_dir, self.settings.dockerfile)
        # The SDK sends a Dockerfile from outside the context under a random name.
        return inside or ".dockerfile.<random>"


def _dockerfile_in_context(root: Path, dockerfile: str) -> str | None:
    """The Dockerfile's name as the SDK sends it, or None if it lies outside the context.

    Like ``docker.api.build.process_dockerfile``: a relative name goes out as written
    (``./Dockerfile`` stays so), an absolute one relative to the context.
    """
    rel = os.path.relpath(os.path.abspath(root / dockerfile), os.path.abspath(root))
    if rel.startswith(".."):
        return None
    return dockerfile if not os.path.isabs(dockerfile) else rel.replace(os.sep, "/")

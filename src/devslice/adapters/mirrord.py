"""mirrord, the program that runs a local process inside a pod's context.

``mirrord exec -f CONFIG -- COMMAND ARGS...`` runs COMMAND with the target pod's environment,
network and files and exits with COMMAND's exit code (facts.md). Everything devslice decides
(target, namespace, kube context, traffic mode) goes into the config file rather than flags,
so the IDE plugins, which read the same file, see the same session.

The session is interactive: the child reads the terminal and prints to it (and a debugger may
attach), so :meth:`Mirrord.exec` runs it attached (:class:`TerminalRunner`) and keeps only
the end of stderr, to tell mirrord's own failures apart from the child's.

    MirrordError
    └── AgentFailed   "Failed to create mirrord-agent" / "... connect to the created ..."
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import threading
from collections import deque
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Protocol

from devslice import child_environ
from devslice.adapters.runner import CommandRunner, Completed, SubprocessRunner
from devslice.errors import DevsliceError, ToolMissing

INSTALL = ("install mirrord: `curl -fsSL https://raw.githubusercontent.com/metalbear-co/mirrord/"
           "main/scripts/install.sh | bash` (or `brew install metalbear-co/mirrord/mirrord`); "
           "`devslice doctor` checks it")
_VERSION = re.compile(r"^mirrord (\d+\.\d+\.\d+)")
FS_MODES = ("read", "write", "local", "localwithoverrides")  # feature.fs.mode's values
STDERR_LINES = 50  # how much of stderr is kept to explain a failure


class MirrordError(DevsliceError):
    """mirrord could not start the session."""


class AgentFailed(MirrordError):
    """mirrord's agent pod could not be created or reached; the hint names the likely cause."""


class SessionRunner(CommandRunner, Protocol):
    """A command runner that can also run a program attached to this terminal."""

    def attach(self, argv: Sequence[str], *, env: Mapping[str, str] | None = None
               ) -> Completed: ...


class TerminalRunner(SubprocessRunner):
    """Runs programs with this process's stdin and stdout; stderr is passed through line by
    line and its end kept (``Completed.stderr``) so failures can be explained.

    While the child runs, Ctrl-C (SIGINT) is left to the child, which gets it from the
    terminal anyway: devslice waits for it to finish and reports its exit code, as a shell does.
    """

    def attach(self, argv: Sequence[str], *, env: Mapping[str, str] | None = None
               ) -> Completed:
        exe = shutil.which(argv[0], path=self.path)
        if exe is None:
            raise ToolMissing(f"{argv[0]} is not installed (not on PATH)",
                              hint=self.fixes.get(argv[0], "`devslice doctor` lists what is "
                                                  "needed"))
        full_env = child_environ(dict(os.environ))
        full_env.update(env or {})
        if self.path is not None:
            full_env["PATH"] = self.path
        tail: deque[str] = deque(maxlen=STDERR_LINES)
        with _sigint_to_child(), subprocess.Popen([exe, *argv[1:]], env=full_env,
                                                  stderr=subprocess.PIPE) as proc, \
                _forward_to(proc):
            assert proc.stderr is not None
            pump = threading.Thread(target=_tee, args=(proc.stderr, tail), daemon=True)
            pump.start()
            code = proc.wait()
            pump.join()
        return Completed(tuple(argv), code, "", "".join(tail))


def _tee(stream: Iterator[bytes], tail: deque[str]) -> None:
    out = getattr(sys.stderr, "buffer", None)
    for raw in stream:
        if out is not None:
            out.write(raw)
            out.flush()
        else:  # a captured sys.stderr (tests) takes text
            sys.stderr.write(raw.decode(errors="replace"))
        tail.append(raw.decode(errors="replace"))


@contextmanager
def _sigint_to_child() -> Iterator[None]:
    if threading.current_thread() is not threading.main_thread():
        yield  # only the main thread may set handlers
        return
    # A handler that does nothing, not SIG_IGN: an ignored signal stays ignored across exec,
    # so mirrord and the debugged program would never see Ctrl-C; a handler resets on exec.
    previous = signal.signal(signal.SIGINT, lambda *_: None)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


@contextmanager
def _forward_to(proc: subprocess.Popen[bytes]) -> Iterator[None]:
    """SIGTERM and SIGHUP (an IDE's stop button, a closed terminal) go on to the child, and
    devslice waits for it: killing devslice alone would leave mirrord and the program running
    while the --exclusive lease runs out."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    forward = {sig: signal.signal(sig, lambda signum, _frame: proc.send_signal(signum))
               for sig in (signal.SIGTERM, signal.SIGHUP)}
    try:
        yield
    finally:
        for sig, previous in forward.items():
            signal.signal(sig, previous)


class Mirrord:
    """The ``mirrord`` CLI: the verbs devslice uses, named as mirrord names them."""

    def __init__(self, runner: SessionRunner) -> None:
        self.runner = runner

    def version(self) -> str:
        """mirrord's version (``mirrord --version`` prints ``mirrord 3.250.0``)."""
        done = self._run(["mirrord", "--version"])
        m = _VERSION.match(done.stdout.strip())
        if m is None:
            raise MirrordError(f"`mirrord --version` printed {done.stdout.strip()!r}, not a "
                               "mirrord version", hint=INSTALL)
        return m.group(1)

    @staticmethod
    def exec_argv(config_path: str | os.PathLike[str], command: Sequence[str]) -> list[str]:
        """The exact argv of a session: the config carries target, namespace and context."""
        if not command:
            raise MirrordError("no command to run under mirrord",
                               hint="give it after `--`, e.g. `-- python app.py`")
        return ["mirrord", "exec", "-f", str(config_path), "--", *command]

    def exec(self, config_path: str | os.PathLike[str], command: Sequence[str],
             env: Mapping[str, str] | None = None) -> int:
        """Run ``command`` under mirrord, attached to this terminal; returns its exit code.

        mirrord's own failure to start an agent raises :class:`AgentFailed` instead of
        passing on mirrord's exit code 1, so the user learns the likely cause.
        """
        argv = self.exec_argv(config_path, command)
        try:
            done = self.runner.attach(argv, env=env)
        except ToolMissing as exc:
            raise ToolMissing("mirrord is not installed (not on PATH)", hint=INSTALL) from exc
        if done.returncode != 0:
            failure = agent_failure(done.stderr, Path(config_path))
            if failure is not None:
                raise failure
        return done.returncode

    def _run(self, argv: list[str]) -> Completed:
        try:
            return self.runner.run(argv, timeout=30)
        except ToolMissing as exc:
            raise ToolMissing("mirrord is not installed (not on PATH)", hint=INSTALL) from exc


# What mirrord prints when its agent does not come up (mirrord/cli/src/error.rs,
# CreateAgentFailed and AgentConnectionFailed), and the causes seen in the field.
_AGENT = re.compile(r"Failed to (create|connect to the created) mirrord-agent: ?(?P<why>.*)")
_CAUSES: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"PodSecurity|pod security|privileged", re.I),
     "Pod Security Admission refused the agent, which needs privileges: label the namespace "
     "`kubectl label ns NAMESPACE pod-security.kubernetes.io/enforce=privileged`, or set "
     "agent.namespace in {config} to a namespace that allows privileged pods"),
    (re.compile(r"[Tt]imeout|timed out|deadline", re.I),
     "the agent did not start in time: its image (ghcr.io/metalbear-co/mirrord) may still be "
     "pulling or the node is short of resources; raise agent.startup_timeout in {config} "
     "(`devslice debug --agent-timeout`) and look at `kubectl get pods -A | grep mirrord`"),
    (re.compile(r"[Nn]ot ?[Ff]ound|404|no such|does not exist", re.I),
     "the target was not found: the pod may have been replaced (run `devslice debug` again "
     "to pick the newest), or mirrord used another cluster: check kube_context in {config}"),
    (re.compile(r"[Uu]nauthori[sz]ed|[Ff]orbidden|401|403|auth", re.I),
     "the cluster refused mirrord's credentials or rights: check kube_context in {config} "
     "and `kubectl auth can-i create pods -n NAMESPACE`"),
)
_GENERAL = ("known causes: Pod Security Admission blocking the privileged agent, the agent not "
            "starting within agent.startup_timeout (image pull, resources), or the wrong kube "
            "context; check kube_context and agent.* in {config}, then "
            "`kubectl get pods -A | grep mirrord`")


def agent_failure(stderr: str, config_path: Path) -> AgentFailed | None:
    """An :class:`AgentFailed` explaining mirrord's stderr, or None when mirrord started
    (the exit code is then the child's)."""
    m = _AGENT.search(stderr)
    if m is None:
        return None
    why = m.group("why").strip()
    hint = next((h for pattern, h in _CAUSES if pattern.search(why)), _GENERAL)
    return AgentFailed(f"mirrord could not start its agent: {m.group(0).strip()}",
                       hint=hint.format(config=config_path))

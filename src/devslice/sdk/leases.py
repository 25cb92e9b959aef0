"""Consumer leases: how a debug session makes a service's pod-side consumers step aside.

A process debugged locally through mirrord gets the pod's environment, so it and the pod would
consume the same partitions with the same consumer group and throw each other off (on Event
Hubs the newer epoch receiver disconnects the older; on the embedded hub both get every event).
mirrord's queue splitting does not cover Event Hubs (facts.md), so devslice does it itself:

- ``devslice debug SERVICE --exclusive`` takes the lease ``consumers/<slice>/<service>`` for a
  holder id that it also hands to the debugged process (``DEVSLICE_LEASE_HOLDER``), and renews
  it every third of its TTL while the session runs (:class:`HeldLease`);
- a :class:`~devslice.sdk.eventhubs.SliceConsumer` of that service watches the lease
  (:class:`LeaseWatch`): while another holder's lease is live it closes its receivers, and when
  the lease is released, or its TTL runs out because the session was killed, it resumes after
  the last event it handled (or its checkpoint), so no event is lost.

Leases live behind :class:`LeaseStore`: the embedded hub keeps them in a table of its SQLite
file; a blob-lease store for real Event Hubs can follow without touching either side.
Times are wall-clock milliseconds, because the holders are different processes.
"""

from __future__ import annotations

import os
import re
import socket
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

from devslice.errors import DevsliceError
from devslice.hubs import LeaseInfo

HOLDER_VARIABLE = "DEVSLICE_LEASE_HOLDER"  # who the process is, for leases it may hold itself
SERVICE_VARIABLE = "DEVSLICE_SERVICE"  # which service a process belongs to, when set
DEFAULT_TTL = 15.0  # seconds a killed session keeps the pod's consumers away

# A Deployment's pods are named <deployment>-<pod-template-hash>-<5 random characters>; the
# kubelet sets HOSTNAME to the pod name, and mirrord hands the pod's HOSTNAME to the local
# process too, so both sides derive the same service name.
_DEPLOYMENT_POD = re.compile(r"^(?P<deployment>[a-z0-9]([-a-z0-9.]*[a-z0-9])?)"
                             r"-[a-z0-9]{1,10}-[a-z0-9]{5}$")


class LeaseHeld(DevsliceError):
    """Another holder's lease is live."""


class LeaseStore(Protocol):
    """Where leases live. Implementations must make acquire atomic across processes."""

    def acquire_lease(self, name: str, holder: str, ttl: float) -> LeaseInfo | None:
        """Take or renew ``name`` for ``holder`` for ``ttl`` seconds; None when another
        holder's lease is live (an expired one is taken over)."""
        ...

    def release_lease(self, name: str, holder: str) -> None:
        """Give ``name`` up if ``holder`` holds it; anything else is left alone."""
        ...

    def live_lease(self, name: str) -> LeaseInfo | None:
        """The live lease on ``name``, or None when there is none or it expired."""
        ...


def lease_name(service: str, handle: str | None) -> str:
    """The lease a debug session of ``service`` takes, per slice (slices share the hub file)."""
    return f"consumers/{handle or '-'}/{service}"


def default_holder(service: str) -> str:
    """A holder id stable per machine and service, so an IDE configuration written once keeps
    matching, and a session restarted after a crash takes its own lease back at once."""
    return f"devslice-debug/{service}@{socket.gethostname()}"


def service_name(environ: Mapping[str, str] | None = None) -> str | None:
    """Which service this process is: ``DEVSLICE_SERVICE``, else the Deployment its pod
    belongs to (from HOSTNAME), else None (no lease is watched)."""
    env = os.environ if environ is None else environ
    explicit = env.get(SERVICE_VARIABLE)
    if explicit:
        return explicit
    m = _DEPLOYMENT_POD.match(env.get("HOSTNAME", ""))
    return m.group("deployment") if m else None


@dataclass(frozen=True)
class LeaseWatch:
    """What a consumer checks: is ``name`` held by someone other than ``holder``?"""

    store: LeaseStore
    name: str
    holder: str | None = None  # this process's own holder id: its own lease never pauses it
    poll: float = 1.0  # seconds between looks while receiving or waiting

    def blocking(self) -> LeaseInfo | None:
        """The live lease of another holder, or None when this consumer may receive.

        A store that cannot be read (a locked or damaged file) does not stop a consumer: the
        service keeps working, as it would without a debug session.
        """
        try:
            lease = self.store.live_lease(self.name)
        except DevsliceError:
            return None
        if lease is None or lease.holder == self.holder:
            return None
        return lease

    @classmethod
    def for_service(cls, store: LeaseStore, service: str, handle: str | None,
                    environ: Mapping[str, str] | None = None, poll: float = 1.0
                    ) -> LeaseWatch:
        env = os.environ if environ is None else environ
        return cls(store, lease_name(service, handle), env.get(HOLDER_VARIABLE) or None, poll)


class HeldLease:
    """A lease taken now and renewed from a background thread until :meth:`release`.

    Renewing every third of the TTL survives two missed renewals (a slow disk, a paused
    laptop); when the holder dies, nobody renews and the lease is gone within one TTL.
    """

    def __init__(self, store: LeaseStore, name: str, holder: str, ttl: float = DEFAULT_TTL
                 ) -> None:
        if ttl <= 0:
            raise ValueError("a lease needs a positive TTL")
        self.store, self.name, self.holder, self.ttl = store, name, holder, ttl
        self.lost = False  # set when a renewal found another holder (we were away too long)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def acquire(self) -> LeaseInfo:
        info = self.store.acquire_lease(self.name, self.holder, self.ttl)
        if info is None:
            other = self.store.live_lease(self.name)
            who = f"{other.holder}, for {other.seconds_left:.0f}s more" if other else "another"
            raise LeaseHeld(f"lease {self.name} is held by {who}",
                            hint="another debug session of this service is running; end it, "
                                 "or wait for its lease to run out")
        self._thread = threading.Thread(target=self._renew, name="devslice-lease", daemon=True)
        self._thread.start()
        return info

    def _renew(self) -> None:
        while not self._stop.wait(self.ttl / 3):
            try:
                if self.store.acquire_lease(self.name, self.holder, self.ttl) is None:
                    self.lost = True
                    return
            except DevsliceError:
                continue  # a busy store: the next renewal, well within the TTL, tries again

    def release(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        if not self.lost:
            self.store.release_lease(self.name, self.holder)

    def __enter__(self) -> HeldLease:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()

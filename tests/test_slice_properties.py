"""Property-based: over random sequences of claims, releases, renewals, expiries and gc, on
the real SQLite ledger, no two live slices ever share a partition or a name, every name is
valid, reserved partitions stay free, and a full pool fails clearly."""

from __future__ import annotations

import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from devslice.config.checks import templates
from devslice.config.derive import derive_names
from devslice.errors import CapacityError, InvalidHandle, SliceConflict, SliceNotFound
from devslice.ledger.sqlite import SqliteLedger
from devslice.project import Project
from devslice.slices.model import SliceKind
from devslice.slices.names import RULES

from .helpers import SOLO, env_from

ENV = env_from(SOLO + """\
eventHubs:
  mode: shared
  namespaces:
    - {name: company1-ehns1, partitions: 5, reserved: [0]}
    - {name: company1-ehns2, partitions: 3}
signalR:
  hubs: [notifications, dashboard]
names:
  invoices: {template: 'invoices-{slice}', rule: container}
  billing: {template: 'billing.{slice}', rule: consumerGroup}
slices:
  handle: {maxLength: 4}
""")
RULE_OF = {"storageAccount": "storageAccount", "dataExplorerDatabase": "dataExplorerDatabase"}
# Three people with the same initials, and one more.
OWNERS = ["Anna Berg", "Adam Brown", "Alice Bell", "Carl Dahl"]
START = datetime(2026, 1, 1, tzinfo=UTC)


class LedgerMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.tmp = tempfile.TemporaryDirectory()
        self.now = START
        self.ledger = SqliteLedger(Path(self.tmp.name) / "ledger.db", team="company1")
        self.project = Project(ENV, Path(self.tmp.name) / "devslice.yaml", ledger=self.ledger,
                               clock=lambda: self.now, actor="prop@test")

    def teardown(self) -> None:
        self.ledger.close()
        self.tmp.cleanup()

    def live(self) -> list:  # type: ignore[type-arg]
        return [s for s in self.project.slices() if not s.expired(self.now)]

    def free_in_largest(self) -> int:
        return max(len(v) for v in self.project.pool.free(self.live()).values())

    @rule(owner=st.sampled_from(OWNERS), k=st.integers(1, 3),
          kind=st.sampled_from(list(SliceKind)), ttl=st.sampled_from([None, 60, 3600]),
          handle=st.sampled_from([None, None, "ab", "ab2", "cd", "zz"]))
    def claim(self, owner: str, k: int, kind: SliceKind, ttl: int | None,
              handle: str | None) -> None:
        before = {s.handle: s for s in self.live()}
        largest = self.free_in_largest()
        try:
            s, created = self.project.claim(
                handle, kind=kind, partitions=k, owner=owner,
                ttl=timedelta(seconds=ttl) if ttl else None)
        except CapacityError as exc:
            assert largest < k, "refused although a namespace had room"
            assert "add another namespace under eventHubs.namespaces" in (exc.hint or "")
            return
        except SliceConflict:
            # Only a named handle someone holds, or asking again for one's slice with other
            # settings, conflicts.
            assert handle is not None or any(
                s.owner == owner and s.kind is kind for s in before.values())
            return
        except InvalidHandle:
            raise AssertionError("suggested or sampled handles are valid") from None
        assert s.owner == owner
        if not created:
            assert before[s.handle] == s  # idempotent: the same slice, unchanged
            # ... and only if it is what was asked for, with or without a handle.
            assert s.kind is kind
            assert len(s.event_hubs.partitions) == k
        else:
            assert s.handle not in before
            assert len(s.event_hubs.partitions) == k

    @precondition(lambda self: bool(self.project.slices()))
    @rule(data=st.data(), force=st.booleans())
    def release(self, data: st.DataObject, force: bool) -> None:
        target = data.draw(st.sampled_from(self.project.slices()))
        who = data.draw(st.sampled_from(OWNERS))
        try:
            self.project.release(target.handle, force=force, owner=who)
        except SliceConflict:
            assert who != target.owner and not force
            return
        assert target.handle not in {s.handle for s in self.project.slices()}

    @precondition(lambda self: bool(self.project.slices()))
    @rule(data=st.data())
    def renew(self, data: st.DataObject) -> None:
        target = data.draw(st.sampled_from(self.project.slices()))
        renewed = self.project.renew(target.handle, owner=target.owner)
        if target.ttl_seconds:
            assert renewed.expires_at == self.now + timedelta(seconds=target.ttl_seconds)

    @rule(minutes=st.integers(1, 120))
    def time_passes(self, minutes: int) -> None:
        self.now += timedelta(minutes=minutes)

    @rule()
    def gc(self) -> None:
        expired = {s.handle for s in self.project.slices() if s.expired(self.now)}
        removed = {s.handle for s in self.project.gc()}
        assert removed == expired
        assert not any(s.expired(self.now) for s in self.project.slices())

    @rule(handle=st.sampled_from(["zz9", "nobody"]))
    def missing(self, handle: str) -> None:
        try:
            self.project.release(handle)
        except SliceNotFound as exc:
            assert "no slice" in exc.message
        else:
            raise AssertionError("released a slice nobody holds")

    @invariant()
    def no_partition_shared(self) -> None:
        seen: dict[tuple[str, int], str] = {}
        for s in self.project.slices():  # expired ones too: they hold until collected
            for p in s.event_hubs.partitions:
                key = (s.event_hubs.namespace, p)
                assert key not in seen, f"{key} held by {seen[key]} and {s.handle}"
                seen[key] = s.handle
                ns = next(n for n in ENV.event_hubs.namespaces if n.name == key[0])
                assert 0 <= p < ns.partitions
                assert p not in ns.reserved

    @invariant()
    def names_distinct_and_valid(self) -> None:
        rules = {f"name:{k}": t.rule for k, t in ENV.names.items()}
        rules.update(RULE_OF)
        rules.update({f"signalrHub:{h}": "signalrHub" for h in ENV.signal_r.hubs})
        seen: dict[tuple[str, str], str] = {}
        for s in self.project.slices():
            assert self.project.handle_rule.problem(s.handle) is None
            for key, name in derive_names(ENV, s.handle).all().items():
                rule_kind = rules[key]
                assert RULES[rule_kind].problem(name) is None, name
                assert (rule_kind, name) not in seen, f"{name} shared by {seen[(rule_kind, name)]}"
                seen[(rule_kind, name)] = s.handle


LedgerMachine.TestCase.settings = settings(max_examples=60, stateful_step_count=30,
                                           deadline=None)
TestLedgerProperties = LedgerMachine.TestCase


def test_templates_cover_every_name() -> None:
    """The invariant above checks every name the config defines."""
    keys = set(derive_names(ENV, "ab").all())
    assert len(keys) == len(templates(ENV))


def test_same_initials_get_distinct_handles_and_names() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        project = Project(ENV, Path(tmp) / "devslice.yaml",
                          ledger=SqliteLedger(Path(tmp) / "l.db", "company1"))
        handles = [project.claim(owner=o)[0].handle for o in OWNERS[:3]]
        assert handles == ["ab", "ab2", "ab3"]
        accounts = {derive_names(ENV, h).storage_account for h in handles}
        assert accounts == {"company1stacc4ab", "company1stacc4ab2", "company1stacc4ab3"}
        # Claiming again without a handle returns the slice the owner holds.
        assert project.claim(owner="Adam Brown")[0].handle == "ab2"


def test_claim_without_a_handle_refuses_other_settings_like_a_named_claim() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        project = Project(ENV, Path(tmp) / "devslice.yaml",
                          ledger=SqliteLedger(Path(tmp) / "l.db", "company1"))
        s, _ = project.claim(owner="Anna Berg", partitions=1)
        for handle in (None, s.handle):
            try:
                project.claim(handle, owner="Anna Berg", partitions=2)
            except SliceConflict as exc:
                assert "already hold slice 'ab' as developer with 1 partition" in exc.message
            else:
                raise AssertionError(f"claim({handle!r}) with 2 partitions returned slice ab")
        assert project.claim(owner="Anna Berg", partitions=1) == (s, False)


def test_initials_ignore_comments_and_addresses() -> None:
    from devslice.slices.names import HandleRule
    from devslice.slices.operations import initials

    rule = HandleRule()
    for owner in ("Alex Bauer (a colleague)", "Alex Bauer <alex@example.com>",
                  "Alex Bauer (ops) <alex.bauer@example.com>", "alex.bauer@example.com",
                  "<alex.bauer@example.com>", "Alex (Al) Bauer", "Alex Bauer (team (b))"):
        assert initials(owner, rule) == "ab", owner


def test_renew_checks_the_owner_like_release() -> None:
    from devslice.slices import operations as ops

    with tempfile.TemporaryDirectory() as tmp:
        project = Project(ENV, Path(tmp) / "devslice.yaml",
                          ledger=SqliteLedger(Path(tmp) / "l.db", "company1"))
        s, _ = project.claim(owner="Carl Dahl", ttl=timedelta(hours=1))
        state = project.ledger.read()
        try:
            ops.renew(state, s.handle, START, "t@test", owner="Anna Berg")
        except SliceConflict as exc:
            assert exc.message == "slice 'cd' belongs to Carl Dahl, not Anna Berg"
        else:
            raise AssertionError("renewed someone else's slice without force")
        mine = ops.renew(state, s.handle, START, "t@test", owner="Carl Dahl").value
        forced = ops.renew(state, s.handle, START, "t@test", owner="Anna Berg", force=True)
        assert mine is not None and forced.value is not None
        assert mine.expires_at == forced.value.expires_at == START + timedelta(hours=1)
        assert forced.changes[0].detail.endswith("(forced; owner Carl Dahl)")

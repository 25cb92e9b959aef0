"""Per-slice consumer groups (``names:`` entries with ``rule: consumerGroup``) on every event
hub of the slice's namespace (``eventHubs.mode: shared``), through azure-mgmt-eventhub.

A consumer group has no tags in Resource Manager; devslice writes its tags into the group's
``userMetadata`` (JSON), and recognises its own groups by them.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from devslice.access.azure import Azure, claim_of, ownership, slice_tags, translated
from devslice.config.derive import derive_names
from devslice.resources.plan import Action, noop

if TYPE_CHECKING:
    from devslice.config.model import Environment
    from devslice.slices.model import Slice

PROVIDER = "Microsoft.EventHub"


def metadata_tags(group: Any) -> dict[str, str]:
    raw = (group.get("properties") or {}).get("userMetadata") if isinstance(group, dict) \
        else getattr(group, "user_metadata", None)
    try:
        tags = json.loads(raw) if raw else {}
    except ValueError:
        return {}
    return tags if isinstance(tags, dict) else {}


def wanted_groups(env: Environment, handle: str) -> list[str]:
    named = derive_names(env, handle).named
    return [named[k] for k, t in env.names.items() if t.rule == "consumerGroup"]


class ConsumerGroupsResource:
    """``azure:consumer-groups:<namespace>``: the slice's consumer groups on each event hub."""

    def __init__(self, azure: Azure, env: Environment, s: Slice, *,
                 after: tuple[str, ...] = ()) -> None:
        self.azure, self.env, self.slice = azure, env, s
        self.namespace = s.event_hubs.namespace
        self.key = f"azure:consumer-groups:{s.handle}"
        self.after = after
        self.groups = wanted_groups(env, s.handle)
        self.tags = slice_tags(env.team, s, env.azure.tags)

    def plan(self) -> list[Action]:
        out: list[Action] = []
        for hub in self.env.event_hubs.event_hubs:
            with translated(f"list the consumer groups of {self.namespace}/{hub}"):
                have = {g.name: g for g in self.azure.eventhub.consumer_groups.list_by_event_hub(
                    self.azure.resource_group, self.namespace, hub)}
            for group in self.groups:
                where = f"consumer group {self.namespace}/{hub}/{group}"
                if group not in have:
                    out.append(Action(
                        self.key, "create", f"{where} is missing",
                        (self.azure.call("PUT", PROVIDER, "namespaces", self.namespace,
                                         "eventhubs", hub, "consumergroups", group,
                                         note="userMetadata: devslice's tags"),),
                        lambda h=hub, g=group: self._create(h, g)))  # type: ignore[misc]
                    continue
                owner = ownership(metadata_tags(have[group]), self.env.team, claim_of(self.slice))
                out.append(noop(self.key, f"{where} exists" + (
                    "" if owner == "ours" else " (not tagged by devslice: used as it is, never "
                    "deleted)")))
        return out

    def _create(self, hub: str, group: str) -> None:
        with translated(f"create consumer group {hub}/{group}"):
            self.azure.eventhub.consumer_groups.create_or_update(
                self.azure.resource_group, self.namespace, hub, group,
                {"properties": {"userMetadata": json.dumps(self.tags, sort_keys=True)}})

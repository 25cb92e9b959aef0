"""Rules that span fields: every template must render valid names for every allowed handle,
and no two templates may ever produce the same name. Run at load time, so a bad template is a
config error before any slice is claimed."""

from __future__ import annotations

from dataclasses import dataclass
from itertools import combinations

from devslice.config.model import Environment
from devslice.slices.names import (
    RULES,
    HandleRule,
    may_collide,
    placeholders,
    template_problems,
)

Loc = tuple[str | int, ...]


@dataclass(frozen=True)
class Template:
    loc: Loc  # where it is written in devslice.yaml
    template: str  # with every placeholder but {team} and {slice} filled in
    rule: str


def handle_rule(env: Environment) -> HandleRule:
    h = env.slices.handle
    return HandleRule(min_length=h.min_length, max_length=h.max_length)


def templates(env: Environment) -> list[Template]:
    """Every per-slice name template of the environment, with its location."""
    out = [
        Template(("storage", "accountTemplate"), env.storage.account_template, "storageAccount"),
        Template(
            ("dataExplorer", "databaseTemplate"),
            env.data_explorer.database_template,
            "dataExplorerDatabase",
        ),
    ]
    for hub in env.signal_r.hubs:
        filled = env.signal_r.hub_template.replace("{hub}", hub)
        out.append(Template(("signalR", "hubTemplate"), filled, "signalrHub"))
    for key, named in env.names.items():
        out.append(Template(("names", key, "template"), named.template, named.rule))
    return out


def check(env: Environment) -> list[tuple[Loc, str]]:
    """Problems found, each with the location it belongs to."""
    issues: list[tuple[Loc, str]] = []
    handles = handle_rule(env)
    values = {"team": env.team}

    for i, name in enumerate(env.event_hubs.event_hubs):
        problem = RULES["eventHub"].problem(name)
        if problem:
            issues.append((("eventHubs", "eventHubs", i), problem))
    if len(env.signal_r.hubs) > 1 and "{hub}" not in env.signal_r.hub_template:
        issues.append(
            (
                ("signalR", "hubTemplate"),
                f"{env.signal_r.hub_template!r} has no {{hub}}, so the hubs "
                f"{', '.join(env.signal_r.hubs)} would share one name; add {{hub}}",
            )
        )

    for key, template in (("blobEndpointTemplate", env.storage.blob_endpoint_template),
                          ("queueEndpointTemplate", env.storage.queue_endpoint_template)):
        unknown = sorted(set(placeholders(template)) - {"account", "team", "slice"})
        if unknown:
            issues.append((("storage", key), f"{template!r} uses {{{unknown[0]}}}; the "
                           f"placeholders allowed here are {{account}}, {{slice}}, {{team}}"))

    good: list[Template] = []
    for t in templates(env):
        allowed = ("team", "slice")
        problems = template_problems(t.template, RULES[t.rule], handles, values, allowed)
        issues.extend((t.loc, p) for p in problems)
        if not problems:
            good.append(t)

    for a, b in combinations(good, 2):
        if a.rule != b.rule:
            continue
        example = may_collide(a.template, b.template, handles, values)
        if example is not None:
            where = ".".join(str(p) for p in a.loc)
            issues.append(
                (
                    b.loc,
                    f"{b.template!r} can produce the same {RULES[b.rule].label} as "
                    f"{a.template!r} at {where} (for example {example!r}); make their fixed "
                    f"parts differ",
                )
            )
    for ns_index, ns in enumerate(env.event_hubs.namespaces):
        free = ns.partitions - len(set(ns.reserved))
        if free < 1:
            issues.append(
                (
                    ("eventHubs", "namespaces", ns_index, "reserved"),
                    f"all {ns.partitions} partitions of {ns.name} are reserved; leave at "
                    f"least one for slices",
                )
            )
    return issues

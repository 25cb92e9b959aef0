"""Rules that span fields: every template must render valid names for every allowed handle,
and no two templates may ever produce the same name. Run at load time, so a bad template is a
config error before any slice is claimed."""

from __future__ import annotations

from dataclasses import dataclass
from itertools import combinations

from devslice.config.model import Environment
from devslice.sdk.context import variable_key
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
    """The handles the environment allows (``slices.handle``): the one place that builds it,
    for these checks and for :attr:`devslice.project.Project.handle_rule`."""
    h = env.slices.handle
    return HandleRule(min_length=h.min_length, max_length=h.max_length)


def hub_problems(env: Environment) -> list[tuple[Loc, str]]:
    """Each name in ``signalR.hubs`` on its own: a valid SignalR hub name, and distinct from
    the others in the contract variable it sets and in SignalR's eyes (the service lower-cases
    hub names), each problem at ``signalR.hubs[i]``."""
    issues: list[tuple[Loc, str]] = []
    seen: dict[str, tuple[int, str]] = {}  # variable key -> (index, hub)
    for i, hub in enumerate(env.signal_r.hubs):
        problem = RULES["signalrHub"].problem(hub)
        if problem:
            issues.append((("signalR", "hubs", i), problem))
            continue
        key = variable_key(hub)
        if key in seen:
            j, first = seen[key]
            variable = f"{env.contract.prefix}SIGNALR_HUB_{key}"
            if hub == first:
                why = f"{hub!r} is already listed at signalR.hubs[{j}]; list each hub once"
            elif hub.lower() == first.lower():
                why = (f"{hub!r} and {first!r} at signalR.hubs[{j}] differ only in case, which "
                       f"SignalR ignores (it lower-cases hub names); rename one")
            else:
                why = (f"{hub!r} and {first!r} at signalR.hubs[{j}] would both set the "
                       f"variable {variable}; rename one so they differ in more than case and "
                       f"punctuation")
            issues.append((("signalR", "hubs", i), why))
            continue
        seen[key] = (i, hub)
    return issues


def distinct_names(names: list[str], rule: str, loc: Loc) -> list[tuple[Loc, str]]:
    """Each name valid for ``rule`` and listed once, as the service compares names (Event
    Hubs ignores case, so ``orders`` and ``Orders`` are one event hub), each problem at
    ``loc[i]``."""
    issues: list[tuple[Loc, str]] = []
    seen: dict[str, int] = {}
    where = ".".join(map(str, loc))
    for i, name in enumerate(names):
        problem = RULES[rule].problem(name)
        if problem:
            issues.append(((*loc, i), problem))
            continue
        key = name.lower() if RULES[rule].ignores_case else name
        if key in seen:
            first = names[seen[key]]
            why = (f"{name!r} is already listed at {where}[{seen[key]}]; list each once"
                   if name == first else
                   f"{name!r} and {first!r} at {where}[{seen[key]}] differ only in case, "
                   f"which the service ignores; list it once")
            issues.append(((*loc, i), why))
            continue
        seen[key] = i
    return issues


def good_hubs(env: Environment) -> list[str]:
    """The hubs :func:`hub_problems` has nothing against, in order."""
    bad = {loc[2] for loc, _ in hub_problems(env)}
    return [h for i, h in enumerate(env.signal_r.hubs) if i not in bad]


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
    for hub in good_hubs(env):  # a bad hub name is reported at signalR.hubs[i]
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

    issues.extend(distinct_names(env.event_hubs.event_hubs, "eventHub",
                                 ("eventHubs", "eventHubs")))
    if env.containers.event_hubs_emulator is not None:
        issues.extend(distinct_names(env.containers.event_hubs_emulator.consumer_groups,
                                     "consumerGroup",
                                     ("containers", "eventHubsEmulator", "consumerGroups")))
    issues.extend(hub_problems(env))
    if len(env.signal_r.hubs) > 1 and "{hub}" not in env.signal_r.hub_template:
        issues.append(
            (
                ("signalR", "hubTemplate"),
                f"{env.signal_r.hub_template!r} has no {{hub}}, so the hubs "
                f"{', '.join(env.signal_r.hubs)} would share one name; add {{hub}}",
            )
        )
    issues.extend(_endpoint_problems(env))

    good: list[Template] = []
    for t in templates(env):
        allowed = ("team", "slice")
        problems = template_problems(t.template, RULES[t.rule], handles, values, allowed)
        issues.extend((t.loc, p) for p in problems)
        if not problems:
            good.append(t)
    issues.extend(_collisions(env, good, handles, values))
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


def _endpoint_problems(env: Environment) -> list[tuple[Loc, str]]:
    issues: list[tuple[Loc, str]] = []
    for key, template in (("blobEndpointTemplate", env.storage.blob_endpoint_template),
                          ("queueEndpointTemplate", env.storage.queue_endpoint_template)):
        unknown = sorted(set(placeholders(template)) - {"account", "team", "slice"})
        if unknown:
            issues.append((("storage", key), f"{template!r} uses {{{unknown[0]}}}; the "
                           f"placeholders allowed here are {{account}}, {{slice}}, {{team}}"))
    return issues


def _collisions(env: Environment, good: list[Template], handles: HandleRule,
                values: dict[str, str]) -> list[tuple[Loc, str]]:
    """Templates that can produce the same name for some handles. The team's shared event
    hubs are names too: a per-slice eventHub template must never produce one of them for any
    handle (those with problems are reported already)."""
    issues: list[tuple[Loc, str]] = []
    listed = env.event_hubs.event_hubs
    bad = {loc[2] for loc, _ in distinct_names(listed, "eventHub", ("eventHubs", "eventHubs"))}
    fixed = [Template(("eventHubs", "eventHubs", i), name, "eventHub")
             for i, name in enumerate(listed) if i not in bad]
    for a, b in combinations(fixed + good, 2):
        if a.rule != b.rule or b in fixed:
            continue
        rule = RULES[b.rule]
        example = may_collide(a.template, b.template, handles, values, rule.ignores_case)
        if example is not None:
            where = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in a.loc)[1:]
            case = (" (the service ignores case)" if rule.ignores_case
                    and may_collide(a.template, b.template, handles, values) is None else "")
            issues.append(
                (
                    b.loc,
                    f"{b.template!r} can produce the same {rule.label} as "
                    f"{a.template!r} at {where}{case} (for example {example!r}); make their "
                    f"fixed parts differ",
                )
            )
    return issues

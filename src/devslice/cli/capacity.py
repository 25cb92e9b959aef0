"""The picture `devslice slice map` draws."""

from __future__ import annotations

from typing import Any

from devslice.cli.output import console
from devslice.text import plural

COLORS = ["cyan", "magenta", "green", "yellow", "blue", "red", "bright_cyan", "bright_magenta",
          "bright_green", "bright_yellow", "bright_blue", "bright_red"]
PER_ROW = 8


def print_map(project: Any, namespaces: list[Any], state: Any) -> None:
    from rich.text import Text  # lazy: rich, only for output

    c = console()
    handles = sorted(state.slices)
    color = {h: COLORS[i % len(COLORS)] for i, h in enumerate(handles)}
    width = max([project.handle_rule.max_length, 4])
    for ns in namespaces:
        title = Text(ns.name, style="bold")
        title.append(f"  {ns.partitions} partitions, {ns.free} free")
        if not ns.configured:
            title.append("  (not in devslice.yaml any more)", style="red")
        c.print(title)
        for start in range(0, len(ns.cells), PER_ROW):
            row = Text("  ")
            for cell in ns.cells[start:start + PER_ROW]:
                row.append(f"{cell.partition:>2} ", style="dim")
                if cell.state == "held":
                    row.append(f"{cell.handle:<{width}}", style=color.get(cell.handle, "white"))
                elif cell.state == "reserved":
                    row.append(f"{'reserved':<{width}}"[:width], style="dim italic")
                else:
                    row.append(f"{'·':<{width}}", style="dim")
                row.append(" ")
            c.print(row)
    total_free = sum(ns.free for ns in namespaces if ns.configured)
    per_slice = project.env.event_hubs.partitions_per_slice
    room = sum(ns.free // per_slice for ns in namespaces if ns.configured)
    c.print(f"\n{plural(len(handles), 'slice')} live, {plural(total_free, 'partition')} "
            f"free: room for {room} more slice{'s' * (room != 1)} at "
            f"{plural(per_slice, 'partition')} each")
    if handles:
        legend = Text("  ")
        for h in handles:
            s = state.slices[h]
            legend.append(h, style=color[h])
            legend.append(f" {s.owner} ({s.kind.value})   ")
        c.print(legend)

"""Terminal views of controls: one use case's controls, and the inbox's control gaps."""

from __future__ import annotations

from typing import Any

from rich import box
from rich.console import Group
from rich.table import Table
from rich.text import Text

from services.cli.render import row

STATUS_STYLE = {
    "satisfied": "green",
    "pending": "yellow",
    "gap": "bold red",
    "not_applicable": "dim",
}


def _facts(control: dict[str, Any]) -> str:
    """Why, in one cell: the reason of a gap, pending or n/a; else the items and decisions."""
    if control.get("status") != "satisfied":
        return str(control.get("reason") or "")
    parts = [
        f"{e.get('kind')} {e.get('name')} sha256:{str(e.get('sha256', ''))[:12]}… "
        f"(seq {e.get('seq')})"
        for e in control.get("evidence") or []
    ]
    parts += [
        f"{d.get('action')}{' ' + d['gate'] if d.get('gate') else ''} by {d.get('actor')} "
        f"(seq {d.get('seq')})"
        for d in control.get("decisions") or []
    ]
    if not parts:
        parts = [f for r in control.get("requirements") or [] for f in r.get("facts") or []]
    return "; ".join(parts)


def controls_view(view: dict[str, Any]) -> Group:
    """``GET /v1/use-cases/{id}/controls`` as a summary per framework and a table of controls."""
    catalog = view.get("catalog") or {}
    head = Text.assemble(
        (f"{view.get('key') or view.get('id')}", "bold"),
        f" · {view.get('title', '')} · tier {view.get('risk_tier', '')} · stage "
        f"{view.get('stage', '')} · catalog {catalog.get('version', '')}",
    )
    summary = Table(title="By framework", box=box.SIMPLE_HEAVY)
    for name in ("framework", "satisfied", "pending", "gap", "n/a"):
        summary.add_column(name)
    for fw in view.get("frameworks") or []:
        row(
            summary,
            fw.get("title", ""),
            fw.get("satisfied", 0),
            fw.get("pending", 0),
            Text(str(fw.get("gap", 0)), style="bold red" if fw.get("gap") else ""),
            fw.get("not_applicable", 0),
        )
    table = Table(title="Controls", box=box.SIMPLE_HEAVY)
    for name in ("framework", "control", "title", "status", "why"):
        table.add_column(name, overflow="fold")
    for c in view.get("controls") or []:
        status = str(c.get("status", ""))
        row(
            table,
            c.get("framework", ""),
            c.get("ref", ""),
            c.get("title", ""),
            Text(status, style=STATUS_STYLE.get(status, "")),
            _facts(c),
        )
    return Group(head, summary, table)


def gaps_table(items: list[dict[str, Any]]) -> Table:
    """The inbox's ``control_gaps``: live use cases of yours with controls not met."""
    table = Table(title="Control gaps on your live use cases", box=box.SIMPLE_HEAVY)
    for name in ("use case", "title", "stage", "control", "why"):
        table.add_column(name, overflow="fold")
    for item in items:
        for gap in item.get("gaps") or []:
            row(
                table,
                item.get("key", ""),
                item.get("title", ""),
                item.get("stage", ""),
                f"{gap.get('ref', '')} ({gap.get('framework', '')})",
                gap.get("reason", ""),
            )
    return table


__all__ = ["controls_view", "gaps_table"]

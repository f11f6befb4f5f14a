"""Controls as HTML: one use case's compliance view (a page of its own) and the portfolio's
coverage (a section of the flow report). Self-contained like the flow report: inline CSS, no
scripts, no network; every value from the API is escaped."""

from __future__ import annotations

from collections.abc import Mapping
from html import escape
from typing import Any

from services.controls.coverage import ControlCoverage
from services.controls.evaluate import ControlResult, ControlsView
from services.report.html import CSS, page_head

CONTROLS_CSS = """
.status { display: inline-block; border-radius: 10px; padding: 0 8px; font-size: 11.5px;
          font-weight: 600; white-space: nowrap; }
.satisfied { background: #dcfce7; color: #166534; } .pending { background: #fef9c3; }
.gap { background: #fee2e2; color: #991b1b; } .not_applicable { background: #f3f4f6;
          color: #6b7280; }
td code { font-size: 11.5px; }
ul.facts { margin: 0; padding-left: 16px; }
"""


def _status(status: str) -> str:
    return f"<span class='status {escape(status)}'>{escape(status.replace('_', ' '))}</span>"


def _facts(c: ControlResult) -> str:
    items = [f"<li class='why'>{escape(c.reason)}</li>"] if c.reason else []
    items += [
        f"<li>evidence {escape(e.kind)} <b>{escape(e.name)}</b> "
        f"<code>sha256:{escape(e.sha256)}</code> at {escape(e.scope)} (ledger seq {e.seq})</li>"
        for e in c.evidence
    ]
    items += [
        f"<li>{escape(d.action)}{' ' + escape(d.gate) if d.gate else ''} by "
        f"<b>{escape(d.actor)}</b>{' (' + escape(', '.join(d.roles)) + ')' if d.roles else ''}"
        f" at {d.at:%Y-%m-%d %H:%M} UTC (ledger seq {d.seq})</li>"
        for d in c.decisions
    ]
    if c.status != "not_applicable":
        items += [f"<li>{escape(f)}</li>" for r in c.requirements for f in r.facts]
    return f"<ul class='facts'>{''.join(items)}</ul>"


def _frameworks(view: ControlsView) -> str:
    rows = "".join(
        f"<tr data-framework='{escape(f.id)}'><td>{escape(f.title)}</td>"
        f"<td class='num'>{f.satisfied}</td><td class='num'>{f.pending}</td>"
        f"<td class='num gaps'>{f.gap}</td><td class='num'>{f.not_applicable}</td></tr>"
        for f in view.frameworks
    )
    return (
        "<table id='frameworks'><thead><tr><th>framework</th><th class='num'>satisfied</th>"
        "<th class='num'>pending</th><th class='num'>gap</th><th class='num'>n/a</th></tr>"
        f"</thead><tbody>{rows}</tbody></table>"
    )


def _controls(view: ControlsView) -> str:
    rows = "".join(
        f"<tr data-control='{escape(c.id)}' data-status='{escape(c.status.value)}'>"
        f"<td>{escape(c.ref)}</td><td>{escape(c.title)}<div class='meta'>"
        f"{escape(c.source)}</div></td><td>{_status(c.status.value)}</td><td>{_facts(c)}</td>"
        "</tr>"
        for c in view.controls
    )
    return (
        "<table id='controls'><thead><tr><th>control</th><th>title and source</th>"
        f"<th>status</th><th>why</th></tr></thead><tbody>{rows}</tbody></table>"
    )


def render_controls(data: ControlsView | Mapping[str, Any], *, source: str = "") -> str:
    """The page for one ``GET /v1/use-cases/{id}/controls`` answer."""
    view = data if isinstance(data, ControlsView) else ControlsView.model_validate(data)
    pin = view.pinned_catalog
    pinned = (
        f"pinned at start: {escape(pin.version)} ({escape(pin.sha256[:12])})"
        + ("" if view.catalog_matches_pin else " — judged with the current catalog instead")
        if pin
        else "started before the catalog was pinned"
    )
    marker = (
        f" · EU AI Act Annex III {escape(', '.join(view.eu_annex_iii))}"
        if view.eu_annex_iii
        else ""
    )
    title = f"Controls: {view.title}"
    return f"""{page_head(title, CSS + CONTROLS_CSS)}<main>
<h1>{escape(title)}</h1>
<div class="meta">{escape(view.key or view.id)} · tier {escape(view.risk_tier)} · stage
{escape(view.stage)}{marker} · catalog {escape(view.catalog.version)} ({pinned}) · judged
{view.evaluated_at:%Y-%m-%d %H:%M} UTC{f" from {escape(source)}" if source else ""}</div>
<section class="cards" id="summary">
<div class='card'><div class='label'>satisfied</div>
<div class='value'>{view.summary.satisfied}</div></div>
<div class='card'><div class='label'>pending</div>
<div class='value'>{view.summary.pending}</div></div>
<div class='card'><div class='label'>gaps</div>
<div class='value'>{view.summary.gap}</div></div>
<div class='card'><div class='label'>not applicable</div>
<div class='value'>{view.summary.not_applicable}</div></div>
</section>
<h2>By framework</h2>
{_frameworks(view)}
<h2>Controls</h2>
{_controls(view)}
</main>
</body>
</html>
"""


def coverage_section(coverage: ControlCoverage | None) -> str:
    """The flow report's section on control coverage of the live use cases."""
    if coverage is None:
        return "<p class='meta'>No control catalog.</p>"
    rows = "".join(
        f"<tr data-framework='{escape(f.id)}'><td>{escape(f.title)}</td>"
        f"<td class='num'>{f.live_use_cases}</td><td class='num gaps'>{f.with_gaps}</td>"
        f"<td class='num'>{f.open_gaps}</td></tr>"
        for f in coverage.frameworks
    )
    table = (
        "<table id='coverage'><thead><tr><th>framework</th><th class='num'>live use cases</th>"
        "<th class='num'>with open gaps</th><th class='num'>open gaps</th></tr></thead>"
        f"<tbody>{rows}</tbody></table>"
    )
    gaps = "".join(
        f"<tr data-use-case='{escape(u.id)}'><td>{escape(u.key)}</td><td>{escape(u.title)}</td>"
        f"<td>{escape(g.ref)} <span class='meta'>({escape(g.framework)})</span></td>"
        f"<td>{escape(g.reason)}</td></tr>"
        for u in coverage.use_cases
        for g in u.gaps
    )
    listing = (
        "<table id='gaps'><thead><tr><th>use case</th><th>title</th><th>control</th>"
        f"<th>why it is a gap</th></tr></thead><tbody>{gaps}</tbody></table>"
        if gaps
        else "<p class='meta'>No open gaps.</p>"
    )
    return (
        f"<div class='meta'>{coverage.live_use_cases} live use cases, {coverage.with_gaps} with "
        f"open gaps · catalog {escape(coverage.catalog.version)}</div>{table}"
        f"<h3>Open gaps</h3>{listing}"
    )


__all__ = ["coverage_section", "render_controls"]

"""The flow report: one self-contained HTML page (inline CSS and SVG, no scripts, no network)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from html import escape
from typing import Any

from services.flow import VISIT_OPEN, FlowMetrics, RunFlow, Stats, TierFlow, human_hours
from services.report.svg import (
    Bar,
    BoxRow,
    Point,
    bar_chart,
    box_plot,
    paired_bars,
    time_scatter,
)
from workflows.model import WORK_STAGES, Decision, RiskTier

TIERS: tuple[str, ...] = tuple(t.value for t in RiskTier)
# The page needs nothing from anywhere: no scripts, no fetches, styles inline only.
CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:"
# work stages get a column each; gate time is in the gates column, decision by decision
TABLE_STAGES: tuple[str, ...] = tuple(s.value for s in WORK_STAGES)

CSS = """
:root { color-scheme: light; }
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; color: #1f2937;
       margin: 0; background: #f8fafc; }
main { max-width: 1180px; margin: 0 auto; padding: 24px 28px 48px; }
h1 { font-size: 24px; margin: 0 0 4px; }
h2 { font-size: 18px; margin: 32px 0 8px; border-bottom: 1px solid #e5e7eb; padding-bottom: 4px; }
h3 { font-size: 14px; margin: 12px 0 6px; }
.meta { color: #6b7280; font-size: 13px; }
.cards { display: grid; grid-template-columns: repeat(auto-fill, minmax(150px, 1fr)); gap: 10px;
         margin-top: 16px; }
.card { background: white; border: 1px solid #e5e7eb; border-radius: 8px; padding: 10px 12px; }
.card .label { color: #6b7280; font-size: 12px; }
.card .value { font-size: 22px; font-weight: 600; margin-top: 2px; }
.card .sub { color: #6b7280; font-size: 12px; }
figure { background: white; border: 1px solid #e5e7eb; border-radius: 8px; margin: 10px 0;
         padding: 10px 12px; }
figcaption { font-size: 12px; color: #6b7280; margin-top: 4px; }
.pair { display: flex; flex-wrap: wrap; gap: 10px; }
.pair figure { flex: 1 1 360px; }
svg.chart { max-width: 100%; height: auto; display: block; }
table { border-collapse: collapse; width: 100%; background: white; font-size: 12.5px; }
th, td { border-bottom: 1px solid #e5e7eb; padding: 5px 7px; text-align: left;
         vertical-align: top; }
th { background: #f1f5f9; font-weight: 600; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
.tag { display: inline-block; border-radius: 10px; padding: 0 7px; font-size: 11.5px;
       white-space: nowrap; }
.live { background: #dcfce7; } .rejected { background: #fee2e2; }
.cancelled { background: #f3f4f6; } .in_progress { background: #e0f2fe; }
.retired { background: #ede9fe; }
.breach { color: #b91c1c; font-weight: 600; }
details { background: white; border: 1px solid #e5e7eb; border-radius: 8px; margin: 6px 0;
          padding: 6px 10px; }
summary { cursor: pointer; font-weight: 600; font-size: 13px; }
dl { font-size: 12.5px; } dt { font-weight: 600; margin-top: 6px; } dd { margin-left: 16px; }
"""


def hours(value: float | None) -> str:
    return human_hours(value)


def percent(value: float | None) -> str:
    return "–" if value is None else f"{value * 100:.0f}%"


def when(value: datetime | None) -> str:
    return "–" if value is None else value.strftime("%Y-%m-%d %H:%M")


def _box(label: str, stats: Stats) -> BoxRow | None:
    values = (stats.min, stats.p25, stats.p50, stats.p75, stats.max, stats.mean, stats.p90)
    if not stats.count or any(v is None for v in values):
        return None
    low, q1, median, q3, high, mean, p90 = (float(v or 0) for v in values)
    return BoxRow(label, stats.count, low, q1, median, q3, high, mean, p90)


def _card(label: str, value: str, sub: str = "") -> str:
    return (
        f"<div class='card'><div class='label'>{escape(label)}</div>"
        f"<div class='value'>{escape(value)}</div><div class='sub'>{escape(sub)}</div></div>"
    )


def _table(headers: Iterable[str], rows: Iterable[Iterable[str]], numeric: set[int]) -> str:
    head = "".join(
        f"<th class='num'>{escape(h)}</th>" if i in numeric else f"<th>{escape(h)}</th>"
        for i, h in enumerate(headers)
    )
    body = "".join(
        "<tr>"
        + "".join(
            f"<td class='num'>{cell}</td>" if i in numeric else f"<td>{cell}</td>"
            for i, cell in enumerate(row)
        )
        + "</tr>"
        for row in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _figure(svg: str, caption: str) -> str:
    return f"<figure>{svg}<figcaption>{escape(caption)}</figcaption></figure>"


def _gate_cell(run: RunFlow) -> str:
    parts = []
    for g in run.gates:
        if g.outcome == VISIT_OPEN:
            text = f"{escape(g.gate)} open {hours(g.age_hours)}"
        else:
            text = f"{escape(g.gate)} {escape(g.outcome.replace('_', ' '))}"
            if g.wait_hours is not None:
                text += f" {hours(g.wait_hours)}"
        if g.breached:
            text = f"<span class='breach' title='decided after its SLA'>{text} ⚠</span>"
        parts.append(text)
    return "<br>".join(parts) or "–"


def _run_detail(run: RunFlow) -> str:
    stages = _table(
        ["stage", "round", "entered", "left", "time"],
        (
            [
                escape(s.stage),
                str(s.round),
                when(s.entered_at),
                when(s.left_at) if s.left_at else "open",
                hours(s.hours),
            ]
            for s in run.stages
        ),
        {1, 4},
    )
    gates = _table(
        ["gate", "round", "opened", "closed", "outcome", "by", "wait", "due", "SLA"],
        (
            [
                escape(g.gate),
                str(g.round),
                when(g.opened_at),
                when(g.closed_at) if g.closed_at else "open",
                escape(g.outcome.replace("_", " ")),
                escape(g.decided_by or ""),
                hours(g.wait_hours if g.wait_hours is not None else g.age_hours),
                when(g.due_at),
                "<span class='breach'>breached</span>"
                if g.breached
                else ("met" if g.breached is False else "–"),
            ]
            for g in run.gates
        ),
        {1, 6},
    )
    return (
        f"<details data-run='{escape(run.key)}'><summary>{escape(run.key)} — "
        f"{escape(run.title)} <span class='tag {escape(run.outcome)}'>"
        f"{escape(run.outcome.replace('_', ' '))}</span></summary>"
        f"<h3>Stages</h3>{stages}<h3>Gates</h3>{gates}</details>"
    )


def _window(m: FlowMetrics) -> str:
    parts = (
        f"runs started from {when(m.since)}" if m.since else "",
        f"before {when(m.until)}" if m.until else "",
        f"tier {m.tier}" if m.tier else "",
    )
    return ", ".join(part for part in parts if part) or "all runs"


def _cards(m: FlowMetrics) -> str:
    return "".join(
        [
            _card("Runs", str(m.runs), f"{m.in_progress} in progress"),
            _card("Reached live", str(m.reached_live), f"{m.rejected} rejected, "
                  f"{m.cancelled} cancelled"),
            _card("Lead time p50", hours(m.lead_time_hours.p50),
                  f"p90 {hours(m.lead_time_hours.p90)} · scoping → live"),
            _card("Rework rounds", str(m.rework.total),
                  f"{m.rework.runs_with_rework} run{'' if m.rework.runs_with_rework == 1 else 's'} "
                  "sent back"),
            _card("Rejection rate", percent(m.rates.rejection.rate),
                  f"{m.rates.rejection.numerator}/{m.rates.rejection.denominator} decided runs"),
            _card("SLA-breach rate", percent(m.rates.sla_breach.rate),
                  f"{m.rates.sla_breach.numerator}/{m.rates.sla_breach.denominator} decisions"),
            _card("Expiry rate", percent(m.rates.expiry.rate),
                  f"{m.rates.expiry.numerator}/{m.rates.expiry.denominator} gate visits"),
        ]
    )  # fmt: skip


def _stage_chart(m: FlowMetrics) -> str:
    stage_rows = [row for s in m.stages if (row := _box(s.stage, s.hours)) is not None]
    return box_plot("stage-durations", "Time in each stage (hours per completed visit)", stage_rows)


def _wait_chart(m: FlowMetrics, runs: list[RunFlow]) -> str:
    points = [
        Point(
            series=g.gate,
            at=g.opened_at,
            value=g.wait_hours,
            flagged=bool(g.breached),
            label=f"{run.key} {g.gate} round {g.round} ({g.outcome.replace('_', ' ')})",
        )
        for run in runs
        for g in run.gates
        if g.wait_hours is not None
    ]
    return time_scatter(
        "gate-waits-over-time",
        "Gate waits by the date the gate opened",
        points,
        [g.gate for g in m.gates],
    )


def _wait_bars(m: FlowMetrics) -> str:
    return paired_bars(
        "gate-wait-percentiles",
        "Gate wait p50 and p90",
        [(g.gate, g.wait_hours.p50, g.wait_hours.p90) for g in m.gates if g.wait_hours.count],
        ("p50", "p90"),
    )


def _tiers(m: FlowMetrics) -> tuple[dict[str, TierFlow], list[str]]:
    """Each tier's figures, and the tiers present in the policy's order (unknown ones last)."""
    tiers = {t.tier: t for t in m.by_tier}
    present = [t for t in TIERS if t in tiers] + [t for t in tiers if t not in TIERS]
    return tiers, present


def _rework_chart(m: FlowMetrics) -> str:
    tiers, present = _tiers(m)
    return bar_chart(
        "rework-by-tier",
        "Rework rounds per run, by tier",
        [
            Bar(
                label=f"{t} (n={tiers[t].runs})",
                value=tiers[t].rework_mean,
                text=f"{tiers[t].rework_mean or 0:.2f} ({tiers[t].rework_total})",
            )
            for t in present
        ],
        color="#F58518",
    )


def _rejection_chart(m: FlowMetrics) -> str:
    tiers, present = _tiers(m)
    return bar_chart(
        "rejection-by-tier",
        "Rejection rate, by tier",
        [
            Bar(
                label=f"{t} (n={tiers[t].rejection.denominator})",
                value=None if (r := tiers[t].rejection.rate) is None else r * 100,
                text="n/a" if r is None else percent(r),
            )
            for t in present
        ],
        unit="%",
        high=100,
        color="#E45756",
    )


def _run_table(runs: list[RunFlow]) -> str:
    return _table(
        [
            "use case",
            "tier",
            "outcome",
            "stage now",
            "started",
            "lead time",
            "rework",
            *(s.replace("_", " ") for s in TABLE_STAGES),
            "gates",
        ],
        (
            [
                f"<b>{escape(r.key)}</b><br><span class='meta'>{escape(r.title)}</span>",
                escape(r.tier),
                f"<span class='tag {escape(r.outcome)}'>{escape(r.outcome.replace('_', ' '))}"
                "</span>",
                escape(r.stage),
                when(r.started_at),
                hours(r.lead_time_hours),
                str(r.rework_rounds),
                *(hours(r.stage_hours.get(s)) for s in TABLE_STAGES),
                _gate_cell(r),
            ]
            for r in runs
        ),
        {5, 6, *range(7, 7 + len(TABLE_STAGES))},
    )


def _gate_table(m: FlowMetrics) -> str:
    return _table(
        ["gate", "visits", "passed", "changes", "rejected", "expired", "open", "p50", "p90",
         "SLA breach", "expiry"],
        (
            [
                escape(g.gate), str(g.visits), str(g.passed), str(g.changes_requested),
                str(g.rejected), str(g.expired), str(g.open), hours(g.wait_hours.p50),
                hours(g.wait_hours.p90),
                f"{percent(g.sla_breach.rate)} ({g.sla_breach.numerator}/"
                f"{g.sla_breach.denominator})",
                f"{percent(g.expiry.rate)} ({g.expiry.numerator}/{g.expiry.denominator})",
            ]
            for g in m.gates
        ),
        set(range(1, 11)),
    )  # fmt: skip


def _approver_table(m: FlowMetrics) -> str:
    return _table(
        ["approver", *(d.value.replace("_", " ") for d in Decision), "total"],
        (
            [escape(a.actor), *(str(getattr(a, d.value)) for d in Decision), str(a.total)]
            for a in m.approvers
        ),
        {1, 2, 3, 4},
    )


def _controls(m: FlowMetrics) -> str:
    # imported here: the controls page borrows this module's styles
    from services.report.controls import coverage_section

    return coverage_section(m.controls)


def _definitions(m: FlowMetrics) -> str:
    return "".join(
        f"<dt>{escape(name.replace('_', ' '))}</dt><dd>{escape(text)}</dd>"
        for name, text in m.definitions.items()
    )


def page_head(title: str, style: str) -> str:
    """A report page up to its ``<body>``: the report's CSP (no scripts), ``style`` inline."""
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="Content-Security-Policy" content="{CSP}">
<title>{escape(title)}</title>
<style>{style}</style>
</head>
<body>
"""


def render_report(
    data: FlowMetrics | Mapping[str, Any],
    *,
    title: str = "ReleaseGate flow report",
    source: str = "",
) -> str:
    """The page for one ``GET /v1/metrics/flow?detail=true`` answer."""
    m = data if isinstance(data, FlowMetrics) else FlowMetrics.model_validate(data)
    runs = m.run_rows or []
    details = "".join(_run_detail(r) for r in runs) or "<p class='meta'>No runs.</p>"
    return f"""{page_head(title, CSS)}<main>
<h1>{escape(title)}</h1>
<div class="meta">{escape(_window(m))} · generated {when(m.generated_at)} UTC{
        f" from {escape(source)}" if source else ""
    }</div>
<section class="cards" id="summary">{_cards(m)}</section>

<h2>Where time goes</h2>
{
        _figure(
            _stage_chart(m),
            "Box: p25–p75; dark bar: p50; tick above: p90; diamond: mean; "
            "whiskers: min–max. Open visits are not included.",
        )
    }

<h2>Gate waits</h2>
{
        _figure(
            _wait_chart(m, runs),
            "Each point is one decided gate visit: when the gate opened and how long "
            "it waited for its decision. Ringed points were decided after their SLA.",
        )
    }
{_figure(_wait_bars(m), "Wait until the deciding decision, per gate.")}
{_gate_table(m)}

<h2>Rework and rejection by tier</h2>
<div class="pair">
{_figure(_rework_chart(m), "Mean request-changes rounds per run (total in brackets).")}
{_figure(_rejection_chart(m), "Rejected runs / runs that reached live or were rejected.")}
</div>

<h2>Use cases</h2>
{_run_table(runs)}
<h3>Each use case in detail</h3>
{details}

<h2 id="controls">Controls: open gaps of live use cases</h2>
{_controls(m)}

<h2>Decisions per approver</h2>
{_approver_table(m)}

<h2>How the figures are computed</h2>
<dl>{_definitions(m)}</dl>
</main>
</body>
</html>
"""

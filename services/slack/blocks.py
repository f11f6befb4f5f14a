"""Block Kit for ReleaseGate, as pure functions: gate cards, modals and command replies.

Nothing here does I/O. The worker's Slack adapter renders cards from the workflow's
notifications (``card_from_notice``); the bot re-renders a clicked card from the run's state
and history (``card_from_state``) when the click came too late.

Every text that a person supplied (titles, summaries, keys, comments, evidence names and URIs,
details of a refusal) passes through ``esc`` before it is put into any field, mrkdwn or plain
text, blocks or the ``text`` fallback: ``<!channel>`` in a title must reach Slack as text, never
as a mention, a link or a broadcast. Only this module's own markup (mentions of directory
people, dates, links it builds) goes out unescaped.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from services.commands.evidence import bound_digests, evidence_fingerprint
from services.slack.actions import (
    CARD_EVENT_TYPE,
    GATE_ACTIONS_BLOCK,
    SLASH_COMMAND,
    ActionId,
    CallbackId,
    InputId,
)
from workflows.activities import Notification, RegistryRow
from workflows.model import (
    Approval,
    Decision,
    EventKind,
    Evidence,
    GateOutcome,
    HistoryEvent,
    RiskTier,
    UseCaseView,
)
from workflows.policy import Person
from workflows.presentation import deputy_lines

Block = dict[str, Any]
People = Mapping[str, str]  # person id -> how a message shows them (a Slack mention or a name)

SECTION_LIMIT = 3000  # Slack refuses longer section texts
HEADER_LIMIT = 150
MAX_EVIDENCE_LINES = 20
MAX_SELECT_OPTIONS = 100  # Slack's limit for a static select
SLACK_USER_ID = re.compile(r"^[UW][A-Z0-9]{2,20}$")  # what may go into a <@…> mention

OUTCOME_LINES: dict[str, str] = {
    GateOutcome.PASSED: ":white_check_mark: *Passed*",
    GateOutcome.CHANGES_REQUESTED: ":leftwards_arrow_with_hook: *Changes requested*",
    GateOutcome.REJECTED: ":no_entry: *Rejected*",
    GateOutcome.EXPIRED: ":hourglass: *Expired*",
    GateOutcome.CANCELLED: ":black_square_for_stop: *Cancelled*",
}
# a card rebuilt from history whose gate ended in no recorded outcome
CLOSED = "closed"
DECISION_WORDS = {
    Decision.APPROVE: "approved",
    Decision.REQUEST_CHANGES: "requested changes",
    Decision.REJECT: "rejected",
}


# --------------------------------------------------------------------------- text helpers


def esc(text: str) -> str:
    """Escape the three characters Slack's mrkdwn treats as control characters."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


PARTIAL_ENTITY = re.compile(r"&[a-z]{0,3}$")


def clip(text: str, limit: int) -> str:
    """At most ``limit`` characters; never ends inside an escape (``&am…``)."""
    if len(text) <= limit:
        return text
    return PARTIAL_ENTITY.sub("", text[: limit - 1]) + "…"


def people_labels(people: Iterable[Person]) -> dict[str, str]:
    """Mentions for people with a Slack id (Slack shows their current name), names otherwise."""
    return {
        p.id: f"<@{p.slack_user_id}>"
        if p.slack_user_id and SLACK_USER_ID.match(p.slack_user_id)
        else esc(p.name)
        for p in people
    }


def who(person_id: str, people: People) -> str:
    return people.get(person_id) or esc(person_id)


def when(at: datetime) -> str:
    """A date Slack renders in the reader's time zone, with a UTC fallback."""
    return f"<!date^{int(at.timestamp())}^{{date_short_pretty}} {{time}}|{at:%Y-%m-%d %H:%M} UTC>"


def label(name: str) -> str:
    return esc(name.replace("_", " ").capitalize())


def _quote(comment: str) -> str:
    return "\n".join(f"> {esc(line)}" for line in comment.strip().splitlines())


def _mrkdwn(text: str) -> Block:
    return {"type": "mrkdwn", "text": clip(text, SECTION_LIMIT)}


def _section(text: str) -> Block:
    return {"type": "section", "text": _mrkdwn(text)}


def _plain(text: str, limit: int = 75) -> Block:
    """A plain-text object: no mrkdwn, but Slack still reads ``&`` ``<`` ``>`` as escapes."""
    return {"type": "plain_text", "text": clip(esc(text), limit)}


def _linkable(uri: str) -> bool:
    return uri.startswith(("https://", "http://")) and not any(c in uri for c in "|<> ")


def evidence_line(item: Evidence) -> str:
    name = esc(item.name)
    uri = esc(item.uri)  # `&` in a query string; `<`, `>` and `|` are never linked
    shown = f"<{uri}|{name}>" if _linkable(item.uri) else f"{name} (`{uri}`)"
    return f"• {shown} · {esc(item.kind)} · `{item.sha256[:12]}`"


# --------------------------------------------------------------------------- the gate card


@dataclass(frozen=True)
class CardRef:
    """What a card's buttons carry: which run, gate, round and evidence the reader saw."""

    workflow_id: str
    gate: str
    round: int
    evidence: str

    def encode(self) -> str:
        doc = {"w": self.workflow_id, "g": self.gate, "r": self.round, "e": self.evidence}
        return json.dumps(doc, separators=(",", ":"))

    @classmethod
    def decode(cls, value: str | None) -> CardRef | None:
        try:
            doc = json.loads(value or "")
            ref = cls(str(doc["w"]), str(doc["g"]), int(doc["r"]), str(doc["e"]))
        except (ValueError, TypeError, KeyError):
            return None
        return ref if ref.workflow_id and ref.gate else None


@dataclass(frozen=True)
class Card:
    """Everything a gate card shows. ``outcome`` None means the gate is open (buttons on)."""

    workflow_id: str
    key: str
    title: str
    risk_tier: str
    stage: str
    gate: str
    round: int
    evidence: tuple[Evidence, ...]
    approvals: tuple[Approval, ...]
    eligible: tuple[str, ...] = ()
    # who the gate waits on; None when unknown (a card rebuilt from state shows who may decide)
    pending: tuple[str, ...] | None = None
    quorum: int | None = None
    due_at: datetime | None = None
    ui_url: str | None = None
    outcome: str | None = None
    decided_by: str | None = None
    decided_at: datetime | None = None
    comment: str = ""
    # the digests an approval from this card binds to, when ``evidence`` shows only some of
    # them (a card rebuilt from the state, whose view lists the latest items only)
    bound: tuple[str, ...] | None = None
    # delegation of authority in force on the run: role -> "person" or "person (until …)"
    deputies: tuple[tuple[str, tuple[str, ...]], ...] = ()
    # governed exceptions pending or in force on the run, one line each (never "satisfied")
    exceptions: tuple[str, ...] = ()

    @property
    def is_open(self) -> bool:
        return self.outcome is None

    @property
    def ref(self) -> CardRef:
        digests = self.bound if self.bound is not None else (e.sha256 for e in self.evidence)
        return CardRef(self.workflow_id, self.gate, self.round, evidence_fingerprint(digests))


def card_from_notice(notice: Notification, ui_url: str | None = None) -> Card:
    """The card a gate notification describes (gate_opened, gate_updated, gate_closed)."""
    gate = notice.gate
    if gate is None:
        raise ValueError(f"notice {notice.kind.value} carries no gate card")
    closed = gate.outcome is not None
    return Card(
        workflow_id=notice.workflow_id,
        key=notice.key,
        title=notice.title,
        risk_tier=notice.risk_tier,
        stage=notice.stage,
        gate=gate.gate,
        round=gate.round,
        evidence=tuple(notice.evidence),
        approvals=tuple(gate.approvals),
        eligible=tuple(gate.eligible),
        pending=tuple(gate.pending),
        quorum=gate.quorum,
        due_at=gate.due_at,
        ui_url=ui_url,
        outcome=gate.outcome,
        decided_by=gate.decided_by,
        decided_at=notice.at if closed else None,
        comment=gate.comment,
        deputies=tuple((role, tuple(people)) for role, people in gate.deputies.items()),
        exceptions=tuple(gate.exceptions),
    )


def card_from_state(
    view: UseCaseView, events: Sequence[HistoryEvent], gate: str, round_: int
) -> Card:
    """The card for ``gate`` in ``round_`` as the run stands now (open, or how it ended)."""
    base: dict[str, Any] = {
        "workflow_id": view.id,
        "key": view.key,
        "title": view.title,
        "risk_tier": view.risk_tier.value,
        "stage": view.stage.value,
        "gate": gate,
        "round": round_,
        "evidence": tuple(
            Evidence(**e.model_dump(include={"kind", "name", "uri", "sha256"}))
            for e in view.evidence
        ),
        "ui_url": view.temporal_ui_url,
        "bound": tuple(bound_digests(view)),
        "deputies": tuple(
            (role, tuple(people)) for role, people in deputy_lines(view.deputies).items()
        ),
        "exceptions": exception_lines(view),
    }
    open_gate = view.open_gate
    if (
        open_gate is not None
        and not view.closed
        and open_gate.gate.value == gate
        and open_gate.round == round_
    ):
        return Card(
            **base,
            approvals=tuple(open_gate.approvals),
            eligible=tuple(open_gate.eligible),
            quorum=open_gate.quorum,
            due_at=open_gate.due_at,
        )
    approvals: list[Approval] = []
    outcome: str = CLOSED
    by, at, comment = None, None, ""
    for ev in events:
        if ev.gate is None or ev.gate.value != gate or ev.round != round_:
            continue
        if ev.kind == EventKind.APPROVALS_VOIDED:
            approvals = []
        elif ev.kind == EventKind.DECISION and ev.decision == Decision.APPROVE:
            approvals.append(Approval(actor=ev.actor, at=ev.at, channel=ev.channel))
        elif ev.kind == EventKind.DECISION and ev.decision is not None:
            outcome = (
                GateOutcome.CHANGES_REQUESTED
                if ev.decision == Decision.REQUEST_CHANGES
                else GateOutcome.REJECTED
            )
            by, at, comment = ev.actor, ev.at, ev.comment
        elif ev.kind == EventKind.GATE_PASSED:
            outcome, by, at = GateOutcome.PASSED, ev.actor, ev.at
        elif ev.kind == EventKind.GATE_EXPIRED:
            outcome, at = GateOutcome.EXPIRED, ev.at
    return Card(
        **base,
        approvals=tuple(approvals),
        outcome=outcome,
        decided_by=by,
        decided_at=at,
        comment=comment,
    )


def exception_lines(view: UseCaseView) -> tuple[str, ...]:
    """The run's governed exceptions pending or in force, one line each."""
    return tuple(w.summary() for w in view.waivers if w.is_open)


def _exceptions_text(lines: Sequence[str]) -> str:
    """Exceptions are shown as exceptions: what is waived and until when, never as met."""
    return ":warning: *Exceptions:*\n" + "\n".join(f"• {esc(line)}" for line in lines)


def card_text(card: Card) -> str:
    """Plain-text fallback (notifications, screen readers); Slack parses it like mrkdwn."""
    gate = f"{label(card.gate)} (round {card.round})"
    title = esc(card.title)
    if card.is_open:
        return f"{title}: {gate} waits for a decision"
    return f"{title}: {gate} — {esc(card.outcome or CLOSED)}" + (
        f" by {esc(card.decided_by)}" if card.decided_by else ""
    )


def card_metadata(card: Card) -> dict[str, Any]:
    """Message metadata, so anything reading the channel can tell which card a message is."""
    return {
        "event_type": CARD_EVENT_TYPE,
        "event_payload": {
            "workflow_id": card.workflow_id,
            "key": card.key,
            "gate": card.gate,
            "round": card.round,
            "outcome": card.outcome or "open",
        },
    }


def _approval_line(a: Approval, people: People) -> str:
    line = f":white_check_mark: {who(a.actor, people)} approved {when(a.at)} via {a.channel.value}"
    return line + (f"\n{_quote(a.comment)}" if a.comment.strip() else "")


def _outcome_text(card: Card, people: People) -> str:
    head = OUTCOME_LINES.get(card.outcome or "", ":lock: *Closed*")
    if card.outcome == GateOutcome.PASSED and card.decided_by:
        head += f" — final approval by {who(card.decided_by, people)}"
    elif card.decided_by:
        head += f" by {who(card.decided_by, people)}"
    if card.decided_at is not None:
        head += f" {when(card.decided_at)}"
    if card.outcome not in OUTCOME_LINES:
        head += f" — no longer open; the use case is at *{label(card.stage)}*"
    if card.comment.strip():
        head += f"\n{_quote(card.comment)}"
    return head


def _evidence_lines(items: Sequence[Evidence]) -> list[str]:
    """As many evidence lines as fit one section; the rest are counted, never cut mid-link."""
    lines: list[str] = []
    budget = SECTION_LIMIT - 200  # room for the heading and the "… more" line
    for item in items[:MAX_EVIDENCE_LINES]:
        line = evidence_line(item)
        if len(line) + 1 > budget:
            break
        budget -= len(line) + 1
        lines.append(line)
    if len(lines) < len(items):
        lines.append(f"… and {len(items) - len(lines)} more in the Temporal UI")
    return lines


def decision_buttons(ref: CardRef) -> Block:
    value = ref.encode()
    return {
        "type": "actions",
        "block_id": GATE_ACTIONS_BLOCK,
        "elements": [
            {
                "type": "button",
                "action_id": ActionId.APPROVE.value,
                "text": _plain("Approve"),
                "style": "primary",
                "value": value,
            },
            {
                "type": "button",
                "action_id": ActionId.REQUEST_CHANGES.value,
                "text": _plain("Request changes"),
                "value": value,
            },
            {
                "type": "button",
                "action_id": ActionId.REJECT.value,
                "text": _plain("Reject"),
                "style": "danger",
                "value": value,
            },
        ],
    }


def gate_card(card: Card, people: People | None = None) -> list[Block]:
    """The gate card: what is decided, on which evidence, by whom so far; buttons while open."""
    people = people or {}
    fields = [
        _mrkdwn(f"*Gate*\n{label(card.gate)} · round {card.round}"),
        _mrkdwn(f"*Use case*\n`{esc(card.key)}`"),
        _mrkdwn(f"*Risk tier*\n{esc(card.risk_tier)}"),
        _mrkdwn(f"*Stage*\n{label(card.stage)}"),
    ]
    if card.due_at is not None:
        fields.append(_mrkdwn(f"*Due*\n{when(card.due_at)}"))
    if card.quorum is not None:
        fields.append(_mrkdwn(f"*Quorum*\n{card.quorum} distinct approver(s)"))
    lines = _evidence_lines(card.evidence)
    counted = f" {len(card.approvals)}/{card.quorum}" if card.quorum else ""
    approvals = [_approval_line(a, people) for a in card.approvals] or ["_none yet_"]
    blocks: list[Block] = [
        {"type": "header", "text": _plain(card.title, HEADER_LIMIT)},
        {"type": "section", "fields": fields},
        _section("*Evidence*\n" + ("\n".join(lines) or "_none submitted yet_")),
        _section(f"*Approvals*{counted}\n" + "\n".join(approvals)),
    ]
    if card.deputies:
        named = "; ".join(
            f"{label(role)}: {', '.join(esc(d) for d in deputies)}"
            for role, deputies in card.deputies
        )
        blocks.append(_section(f"*Deputies:* {named}"))
    if card.exceptions:
        blocks.append(_section(_exceptions_text(card.exceptions)))
    if card.is_open:
        if card.pending is not None:
            waiting = ", ".join(who(p, people) for p in card.pending) or "nobody"
            blocks.append(_section(f"*Waiting on:* {waiting}"))
        else:
            approved = {a.actor for a in card.approvals}
            may = [who(p, people) for p in card.eligible if p not in approved]
            blocks.append(_section(f"*May decide:* {', '.join(may) or 'nobody'}"))
    else:
        blocks.append(_section(_outcome_text(card, people)))
    context = f"Workflow `{esc(card.workflow_id)}`"
    if card.ui_url:
        context = f"<{card.ui_url}|Open the run in the Temporal UI> · {context}"
    blocks.append({"type": "context", "elements": [_mrkdwn(context)]})
    if card.is_open:
        blocks.append(decision_buttons(card.ref))
    return blocks


# --------------------------------------------------------------------------- the comment modal


@dataclass(frozen=True)
class PendingDecision:
    """What a comment modal remembers (its private_metadata) between click and submission."""

    ref: CardRef
    decision: Decision
    idempotency_key: str
    channel: str | None = None
    message_ts: str | None = None

    def encode(self) -> str:
        doc = {
            "ref": self.ref.encode(),
            "d": self.decision.value,
            "k": self.idempotency_key,
            "c": self.channel,
            "m": self.message_ts,
        }
        return json.dumps(doc, separators=(",", ":"))

    @classmethod
    def decode(cls, value: str | None) -> PendingDecision | None:
        try:
            doc = json.loads(value or "")
            ref = CardRef.decode(doc["ref"])
            if ref is None:
                return None
            return cls(ref, Decision(doc["d"]), str(doc["k"]), doc.get("c"), doc.get("m"))
        except (ValueError, TypeError, KeyError):
            return None


def comment_modal(pending: PendingDecision, title: str) -> Block:
    verb = "Request changes" if pending.decision == Decision.REQUEST_CHANGES else "Reject"
    gate = f"{label(pending.ref.gate)} · round {pending.ref.round}"
    hint = (
        "Say what has to change; the use case goes back for rework."
        if pending.decision == Decision.REQUEST_CHANGES
        else "Say why; rejecting ends the use case."
    )
    return {
        "type": "modal",
        "callback_id": CallbackId.DECISION_COMMENT.value,
        "title": _plain(verb, 24),
        "submit": _plain(verb, 24),
        "close": _plain("Cancel", 24),
        "private_metadata": pending.encode(),
        "blocks": [
            _section(f"*{esc(title)}*\n{gate}\n{hint}"),
            {
                "type": "input",
                "block_id": InputId.COMMENT.value,
                "label": _plain("Comment (required)", 2000),
                "element": {
                    "type": "plain_text_input",
                    "action_id": InputId.COMMENT.value,
                    "multiline": True,
                    "max_length": 4000,
                },
            },
        ],
    }


# --------------------------------------------------------------------------- command replies


def help_text() -> str:
    return (
        f"`{SLASH_COMMAND} status KEY` — where a use case stands\n"
        f"`{SLASH_COMMAND} pending` — gates waiting on you\n"
        f"`{SLASH_COMMAND} start` — launch a use case (you become its delivery lead)"
    )


def status_blocks(view: UseCaseView, people: People | None = None) -> list[Block]:
    people = people or {}
    state = f"closed ({esc(f'{view.outcome}')})" if view.closed else "open"
    fields = [
        _mrkdwn(f"*Use case*\n`{esc(view.key)}`"),
        _mrkdwn(f"*Risk tier*\n{esc(view.risk_tier.value)}"),
        _mrkdwn(f"*Stage*\n{label(view.stage.value)} · round {view.round}"),
        _mrkdwn(f"*Run*\n{state}"),
        _mrkdwn(f"*Business owner*\n{who(view.owners.business_owner, people)}"),
        _mrkdwn(f"*Delivery lead*\n{who(view.owners.delivery_lead, people)}"),
    ]
    blocks: list[Block] = [
        {"type": "header", "text": _plain(view.title, HEADER_LIMIT)},
        {"type": "section", "fields": fields},
    ]
    gate = view.open_gate
    if gate is not None:
        approved = ", ".join(who(a.actor, people) for a in gate.approvals) or "nobody yet"
        blocks.append(
            _section(
                f"*Open gate:* {label(gate.gate.value)} — {len(gate.approvals)}/{gate.quorum} "
                f"approved (by {approved}), due {when(gate.due_at)}\n"
                f"*May decide:* {', '.join(who(p, people) for p in gate.eligible) or 'nobody'}"
            )
        )
    if view.required_evidence:
        missing = ", ".join(esc(kind) for kind in view.required_evidence)
        blocks.append(_section(f"*Evidence missing:* {missing}"))
    exceptions = exception_lines(view)
    if exceptions:
        blocks.append(_section(_exceptions_text(exceptions)))
    if view.temporal_ui_url:
        blocks.append(
            {
                "type": "context",
                "elements": [_mrkdwn(f"<{view.temporal_ui_url}|Open the run in the Temporal UI>")],
            }
        )
    return blocks


def status_text(view: UseCaseView) -> str:
    return f"{esc(view.title)} ({esc(view.key)}): {view.stage.value}" + (
        " — closed" if view.closed else ""
    )


def pending_blocks(rows: Sequence[RegistryRow]) -> list[Block]:
    if not rows:
        return [_section("Nothing is waiting on you. :tada:")]
    lines = []
    for r in rows:
        due = f", due {when(r.due_at)}" if r.due_at else ""
        quorum = f"{len(r.approvals)}/{r.quorum}" if r.quorum else f"{len(r.approvals)}"
        lines.append(
            f"• *{esc(r.title)}* (`{esc(r.key)}`) — {label(r.gate or r.stage)}, "
            f"round {r.round}, {quorum} approved{due}"
        )
    return [_section(f"*Waiting on you ({len(rows)})*\n" + "\n".join(lines))]


# --------------------------------------------------------------------------- the start modal


@dataclass(frozen=True)
class StartContext:
    """What the start modal remembers: where to answer once the run has started."""

    channel: str | None = None
    response_url: str | None = None

    def encode(self) -> str:
        return json.dumps({"c": self.channel, "u": self.response_url}, separators=(",", ":"))

    @classmethod
    def decode(cls, value: str | None) -> StartContext:
        try:
            doc = json.loads(value or "")
            return cls(doc.get("c"), doc.get("u"))
        except (ValueError, TypeError, AttributeError):
            return cls()


def _option(text: str, value: str) -> Block:
    return {"text": _plain(text), "value": value}


def _input(
    block: InputId, title: str, element: Block, *, optional: bool = False, hint: str = ""
) -> Block:
    out: Block = {
        "type": "input",
        "block_id": block.value,
        "label": _plain(title, 2000),
        "element": {**element, "action_id": block.value},
        "optional": optional,
    }
    if hint:
        out["hint"] = _plain(hint, 2000)
    return out


def _person_select(people: Sequence[Person], *, multi: bool = False) -> Block:
    if len(people) > MAX_SELECT_OPTIONS:
        # too many for a select: person ids typed in, comma-separated when several
        return {"type": "plain_text_input", "placeholder": _plain("person id, e.g. rita")}
    return {
        "type": "multi_static_select" if multi else "static_select",
        "options": [_option(f"{p.name} ({p.id})", p.id) for p in people],
    }


def start_modal(people: Sequence[Person], groups: Sequence[str], context: StartContext) -> Block:
    """Launch a use case: owners picked from the directory, tier from the policy's tiers."""
    risk_options = [_option(f"group: {g}", f"group:{g}") for g in groups]
    risk_options += [_option(f"{p.name} ({p.id})", p.id) for p in people]
    risk_element: Block = (
        {"type": "multi_static_select", "options": risk_options}
        if len(risk_options) <= MAX_SELECT_OPTIONS
        else {"type": "plain_text_input", "placeholder": _plain("group:risk-committee, rita")}
    )
    channel: Block = {
        "type": "conversations_select",
        "filter": {"include": ["public", "private"], "exclude_bot_users": True},
    }
    if context.channel and context.channel.startswith(("C", "G")):
        channel["initial_conversation"] = context.channel
    return {
        "type": "modal",
        "callback_id": CallbackId.START_USE_CASE.value,
        "title": _plain("Start a use case", 24),
        "submit": _plain("Start", 24),
        "close": _plain("Cancel", 24),
        "private_metadata": context.encode(),
        "blocks": [
            _input(
                InputId.KEY,
                "Key",
                {"type": "plain_text_input", "placeholder": _plain("kyc-onboarding")},
                hint="lower-case letters, digits and dashes; the run id is usecase-<key>",
            ),
            _input(InputId.TITLE, "Title", {"type": "plain_text_input", "max_length": 200}),
            _input(
                InputId.SUMMARY,
                "Summary",
                {"type": "plain_text_input", "multiline": True, "max_length": 4000},
                optional=True,
            ),
            _input(
                InputId.RISK_TIER,
                "Risk tier",
                {
                    "type": "static_select",
                    "options": [_option(t.value, t.value) for t in RiskTier],
                },
            ),
            _input(InputId.BUSINESS_OWNER, "Business owner", _person_select(people)),
            _input(InputId.TECHNICAL_OWNER, "Technical owner", _person_select(people)),
            _input(InputId.OPERATIONS_OWNER, "Operations owner", _person_select(people)),
            _input(InputId.RISK_APPROVERS, "Risk approvers", risk_element),
            _input(InputId.ESCALATION_OWNER, "Escalation owner", _person_select(people)),
            _input(
                InputId.STOP_AUTHORITY,
                "Stop authority",
                _person_select(people, multi=True),
                optional=True,
                hint="default: the business, technical and operations owners",
            ),
            _input(
                InputId.SLACK_CHANNEL,
                "Channel for gate cards",
                channel,
                optional=True,
            ),
        ],
    }

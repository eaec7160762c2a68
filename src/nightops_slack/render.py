"""Core responses -> Block Kit, built with ``slack_sdk.models.blocks`` and validated.

Every piece of user or cloud text goes into ``mrkdwn`` escaped (:func:`~.text.escape`);
``plain_text`` (headers, buttons, modal titles) only ever holds our own fixed words. Block
Kit limits (FACTS.md, Slack) are enforced here: at most :data:`MAX_BLOCKS` blocks, section
text cut at 3000 characters, a total text budget per message (long messages fail before the
documented limits), at most 25 buttons per actions block.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, assert_never

import attrs
from slack_sdk.models.blocks import (
    ActionsBlock,
    Block,
    ButtonElement,
    ContextBlock,
    DividerBlock,
    HeaderBlock,
    InputBlock,
    MarkdownTextObject,
    PlainTextInputElement,
    PlainTextObject,
    SectionBlock,
)
from slack_sdk.models.views import View

from nightops_core.model import ResourceState
from nightops_core.responses import (
    ApprovalCard,
    Body,
    Button,
    CollectionCard,
    CollectionDetail,
    CollectionList,
    Confirmation,
    Notice,
    OperationReport,
    Problem,
    ReasonRequired,
    ResourceRow,
    ScheduleView,
    StatusOverview,
    Tone,
    WhoAmIView,
)
from nightops_slack.text import escape, truncate

__all__ = [
    "MAX_BLOCKS",
    "REASON_CALLBACK_ID",
    "Rendered",
    "iter_texts",
    "reason_modal",
    "render",
]

#: Blocks per message (100 in modals).
MAX_BLOCKS = 50
#: Characters of section text.
SECTION_TEXT = 3000
#: Characters of all text in one message; Slack refuses long messages (msg_blocks_too_long)
#: well before 50 full sections, so we stop early and say what was left out.
MESSAGE_TEXT_BUDGET = 12000
#: Top-level ``text`` (notification / fallback); Slack truncates at 40k, we keep it short.
FALLBACK_TEXT = 3000
HEADER_TEXT = 150
BUTTON_TEXT = 75
BUTTON_VALUE = 2000
BUTTONS_PER_BLOCK = 25
CONTEXT_TEXT = 2000
MODAL_TITLE = 24
PRIVATE_METADATA = 3000

REASON_CALLBACK_ID = "nightops.reason"
REASON_BLOCK_ID = "reason"
REASON_ACTION_ID = "reason"

_TONE_EMOJI = {Tone.INFO: "", Tone.SUCCESS: "✅ ", Tone.WARNING: "⚠️ ", Tone.ERROR: "❌ "}
_STATE_EMOJI = {
    ResourceState.RUNNING: "🟢",
    ResourceState.STOPPED: "🔴",
    ResourceState.STARTING: "🔄",
    ResourceState.STOPPING: "🔄",
    ResourceState.FAILED: "❌",
    ResourceState.MISSING: "⚫",
    ResourceState.UNKNOWN: "⚪",
}


@attrs.frozen
class Rendered:
    """A message ready for chat.postMessage / chat.update / response_url / an ack."""

    text: str
    blocks: tuple[dict[str, Any], ...]

    def payload(self) -> dict[str, Any]:
        return {"text": self.text, "blocks": list(self.blocks)}


class _Builder:
    """Collects blocks under the block-count and text budgets."""

    def __init__(self) -> None:
        self.blocks: list[Block] = []
        self.used = 0
        self.dropped = 0

    def room(self, reserve: int = 1) -> bool:
        return len(self.blocks) + reserve < MAX_BLOCKS and self.used < MESSAGE_TEXT_BUDGET

    def add(self, block: Block, text: str = "", *, force: bool = False) -> bool:
        if not force and (not self.room() or self.used + len(text) > MESSAGE_TEXT_BUDGET):
            self.dropped += 1
            return False
        self.blocks.append(block)
        self.used += len(text)
        return True

    def header(self, title: str) -> None:
        # Our own fixed words only (see module docstring): plain_text is not escaped.
        self.add(HeaderBlock(text=PlainTextObject(text=truncate(title, HEADER_TEXT))), title)

    def section(self, mrkdwn: str, *, force: bool = False) -> bool:
        text = truncate(mrkdwn, SECTION_TEXT)
        return self.add(SectionBlock(text=MarkdownTextObject(text=text)), text, force=force)

    def context(self, mrkdwn: str, *, force: bool = False) -> None:
        text = truncate(mrkdwn, CONTEXT_TEXT)
        self.add(ContextBlock(elements=[MarkdownTextObject(text=text)]), text, force=force)

    def buttons(self, buttons: Sequence[Button], *, force: bool = False) -> None:
        for start in range(0, len(buttons), BUTTONS_PER_BLOCK):
            chunk = buttons[start : start + BUTTONS_PER_BLOCK]
            self.add(ActionsBlock(elements=[_button(b) for b in chunk]), force=force)

    def lines(self, lines: Sequence[str], what: str) -> None:
        """Pack ``lines`` into as few sections as fit; say how many did not fit."""
        chunk: list[str] = []
        size = 0
        shown = 0
        for line in lines:
            line = truncate(line, SECTION_TEXT)
            if chunk and size + len(line) + 1 > SECTION_TEXT:
                if not self.section("\n".join(chunk)):
                    break
                shown += len(chunk)
                chunk, size = [], 0
            chunk.append(line)
            size += len(line) + 1
        else:
            if chunk and self.section("\n".join(chunk)):
                shown += len(chunk)
        if shown < len(lines):
            self.context(f"… and {len(lines) - shown} more {what} not shown here.", force=True)

    def done(self, fallback: str) -> Rendered:
        blocks = tuple(_validated(b) for b in self.blocks[:MAX_BLOCKS])
        return Rendered(truncate(fallback, FALLBACK_TEXT), blocks)


def _validated(block: Block) -> dict[str, Any]:
    # to_dict() runs slack_sdk's validate_json(): lengths, counts and required fields.
    data: dict[str, Any] = block.to_dict()
    return data


def _button(button: Button) -> ButtonElement:
    return ButtonElement(
        text=PlainTextObject(text=truncate(button.label, BUTTON_TEXT), emoji=True),
        action_id=button.action_id,
        value=truncate(button.value, BUTTON_VALUE),
        style=button.style,
    )


def _card_text(card: CollectionCard) -> str:
    env = f"  _{escape(card.env)}_" if card.env else ""
    text = f"{card.status.emoji} *{escape(card.name)}*{env}\n{escape(card.summary)}"
    if card.busy:
        text += f"\n⏳ {escape(card.busy)}"
    return text


def _problem_text(problem: Problem) -> str:
    text = f"❌ {escape(problem.message)}"
    if problem.usage:
        text += f"\n*Usage:*\n```{escape(problem.usage)}```"
    return text


def render(body: Body) -> Rendered:
    """The Block Kit message for ``body`` (blocks validated, within the limits)."""
    b = _Builder()
    match body:
        case Notice():
            if body.title:
                b.header(body.title)
            b.lines(escape(body.text).split("\n"), "lines")
            return b.done(f"{_TONE_EMOJI[body.tone]}{escape(body.text)}")
        case Problem():
            b.section(_problem_text(body))
            return b.done(f"❌ {escape(body.message)}")
        case StatusOverview():
            b.header(body.title)
            for card in body.cards:
                if not b.room(reserve=3):
                    b.dropped += 1
                    continue
                b.section(_card_text(card))
                if card.buttons:
                    b.buttons(card.buttons)
            if b.dropped:
                b.context(
                    f"{b.dropped} more collections not shown: ask for one with "
                    "`/nightops status <collection>`.",
                    force=True,
                )
            if body.more is not None:
                b.buttons((body.more,), force=True)
            names = ", ".join(escape(c.name) for c in body.cards)
            return b.done(f"{body.title}: {names}" if names else body.title)
        case CollectionDetail():
            card = body.card
            b.section(_card_text(card))
            if body.schedule:
                b.context(f"🗓 Schedule: {escape(body.schedule)}")
            rows = [_resource_line(row) for row in body.rows]
            if rows:
                b.add(DividerBlock(), force=False)
                b.lines(rows, "resources")
            if card.buttons:
                b.buttons(card.buttons, force=True)
            return b.done(f"{card.status.emoji} {escape(card.name)}: {escape(card.summary)}")
        case CollectionList():
            title = f"Collections ({body.filters})" if body.filters else "Collections"
            b.header(title)
            if not body.cards:
                b.section("No collections to show.")
            lines = [
                f"{c.status.emoji} *{escape(c.name)}* `{escape(c.collection_id)}` "
                f"{escape(c.status.value)} • {escape(c.summary)}"
                for c in body.cards
            ]
            b.lines(lines, "collections")
            return b.done(title)
        case Confirmation():
            b.section(f"*{escape(body.title)}*\n{escape(body.text)}")
            b.lines([f"• {escape(item)}" for item in body.items], "resources")
            b.buttons((body.cancel, body.confirm), force=True)
            return b.done(escape(body.title))
        case ApprovalCard():
            request = body.request
            b.section(f"🔐 *Approval request* · *{escape(body.collection_name)}*")
            b.section(escape(body.status_text))
            b.context(f"Request `{escape(request.id)}` · action *{escape(request.action)}*")
            if body.buttons:
                b.buttons(body.buttons, force=True)
            return b.done(
                f"Approval request {escape(request.id)} for {escape(body.collection_name)}: "
                f"{escape(body.status_text)}"
            )
        case ReasonRequired():
            b.section(f"🔐 {escape(body.prompt)}")
            return b.done(escape(body.prompt))
        case OperationReport():
            emoji = "" if body.finished else "⏳ "
            b.section(f"{emoji}{escape(body.text)}")
            return b.done(f"{emoji}{escape(body.text)}")
        case ScheduleView():
            b.header(body.title)
            lines = []
            for entry in body.entries:
                name = f" — {escape(entry.schedule_name)}" if entry.schedule_name else ""
                line = f"*{escape(entry.collection_name)}*{name}\n{escape(entry.schedule_text)}"
                if entry.desired_now:
                    line += f"\nnow: {escape(entry.desired_now)}"
                if entry.next_transitions:
                    line += f"\nnext: {escape(', '.join(entry.next_transitions))}"
                lines.append(line)
            b.lines(lines, "schedules")
            return b.done(body.title)
        case WhoAmIView():
            b.section(f"👤 {escape(body.text)}")
            return b.done(escape(body.text))
        case _:
            assert_never(body)


def _resource_line(row: ResourceRow) -> str:
    kind = f"{row.kind}/{row.size}" if row.size else row.kind
    money = f"{row.monthly}/mo" if row.monthly is not None else "cost unknown"
    line = (
        f"{_STATE_EMOJI.get(row.state, '⚪')} *{escape(row.name)}* — {escape(row.state.value)}"
        f" • `{escape(kind)}` • {escape(money)}"
    )
    if row.detail:
        line += f" _({escape(row.detail)})_"
    return line


def reason_modal(body: ReasonRequired, metadata: str) -> dict[str, Any]:
    """The modal asking for an approval reason; ``metadata`` (≤ 3000 chars) comes back in
    the view_submission as ``private_metadata``."""
    if len(metadata) > PRIVATE_METADATA:
        raise ValueError("private_metadata over 3000 characters")
    verb = body.action.value.capitalize()
    view = View(
        type="modal",
        callback_id=REASON_CALLBACK_ID,
        title=PlainTextObject(text=truncate("Approval needed", MODAL_TITLE)),
        submit=PlainTextObject(text=truncate(f"Request {body.action.value}", MODAL_TITLE)),
        close=PlainTextObject(text="Cancel"),
        private_metadata=metadata,
        blocks=[
            SectionBlock(
                text=MarkdownTextObject(
                    text=truncate(
                        f"🔐 *{escape(body.collection_name)}* needs approval to "
                        f"{escape(body.action.value)}. Approvers will see your reason.",
                        SECTION_TEXT,
                    )
                )
            ),
            InputBlock(
                block_id=REASON_BLOCK_ID,
                label=PlainTextObject(text=f"Why do you need to {verb.lower()} it?"),
                element=PlainTextInputElement(
                    action_id=REASON_ACTION_ID, multiline=True, min_length=3, max_length=500
                ),
            ),
        ],
    )
    data: dict[str, Any] = view.to_dict()
    return data


def iter_texts(blocks: Iterable[dict[str, Any]]) -> Iterable[str]:
    """Every text string inside ``blocks`` (tests use it to look for unescaped text)."""
    stack: list[Any] = list(blocks)
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            if isinstance(item.get("text"), str):
                yield item["text"]
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)

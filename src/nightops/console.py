"""The terminal console: talk to NightOps as if in Slack, one line at a time.

A thin adapter (STYLE.md rule 7): each input line becomes one
:class:`~nightops_core.service.CommandRequest` or
:class:`~nightops_core.service.ActionRequest`, the service answers with adapter-neutral
:mod:`~nightops_core.responses`, and this module only turns them into text. Buttons are shown
as numbered choices (``[1] Start  [2] View Details``); typing the number presses the button.

Console commands (everything else is a ``/nightops`` command; the prefix is optional)::

    :as USER      act as another person (an account email, or its name)
    :in CHANNEL   type in another channel (#qa-team or qa-team)
    N, click N    press button N of the latest screen that showed buttons
    :help         list these
    :quit         leave (end of input works too)

Lines starting with ``# `` are comments (for piped scripts); ``#qa-team`` is not one.
"""

from __future__ import annotations

import itertools
import re
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import NamedTuple, TextIO, assert_never

from nightops_core import (
    ActionRequest,
    Actor,
    Channel,
    CommandRequest,
    NightOpsError,
    Service,
)
from nightops_core.notify import Notification
from nightops_core.permissions import is_channel_id
from nightops_core.responses import (
    ApprovalCard,
    Body,
    Button,
    CollectionCard,
    CollectionDetail,
    CollectionList,
    Confirmation,
    Destination,
    Job,
    Message,
    Notice,
    OperationReport,
    Outcome,
    Problem,
    ReasonRequired,
    ScheduleView,
    StatusOverview,
    WhoAmIView,
)

__all__ = ["Console", "ConsoleNotifier", "Numberer", "render"]

#: Gives a button its choice number; called once per button, in display order.
Numberer = Callable[[Button], int]

# One lock for everything the console and its notifier write: jobs and schedulers may
# report from worker threads while the console prints, and they share one terminal.
_OUTPUT_LOCK = threading.RLock()

_INDENT = "   "
_CLICK = re.compile(r"(?:click\s+)?(\d+)", re.IGNORECASE)

HELP = """\
Console commands:
  :as USER       act as someone else: an account email or its name (e.g. :as bob)
  :in CHANNEL    type in another channel (e.g. :in #qa-team)
  N / click N    press button [N] of the latest screen
  :help          show this list
  :quit          leave (end of input works too)
Anything else is a /nightops command (the /nightops is optional): status, list,
start <collection>, stop <collection>, schedule, whoami, help …
Lines starting with "# " are comments."""


# --- rendering -----------------------------------------------------------------------------


def render(body: Body, number: Numberer | None = None) -> str:
    """The text a console user sees for ``body`` (no trailing newline).

    Buttons are shown as ``[N] Label``; ``number`` assigns N to each button in display
    order, so a caller can number buttons across several messages of one screen and keep
    a map from number to button. By default the buttons of ``body`` count from 1.
    """
    if number is None:
        number = _count_from_one()
    match body:
        case Notice():
            return "\n".join(line for line in (body.title, body.text) if line)
        case Problem():
            return _render_problem(body)
        case StatusOverview():
            return _render_overview(body, number)
        case CollectionDetail():
            return _render_detail(body, number)
        case CollectionList():
            return _render_list(body)
        case Confirmation():
            lines = [body.title, body.text, *(f"  • {item}" for item in body.items)]
            lines.append(_buttons((body.confirm, body.cancel), number))
            return "\n".join(lines)
        case ApprovalCard():
            lines = [f"Approval request {body.request.id} · {body.collection_name}"]
            lines.append(body.status_text)
            if body.buttons:
                lines.append(_buttons(body.buttons, number))
            return "\n".join(lines)
        case ReasonRequired():
            return body.prompt
        case OperationReport():
            return body.text
        case ScheduleView():
            return _render_schedules(body)
        case WhoAmIView():
            return body.text
        case _:
            assert_never(body)


def _count_from_one() -> Numberer:
    counter = itertools.count(1)

    def number(_button: Button) -> int:
        return next(counter)

    return number


def _buttons(buttons: Sequence[Button], number: Numberer) -> str:
    return "  ".join(f"[{number(button)}] {button.label}" for button in buttons)


def _render_problem(problem: Problem) -> str:
    text = f"✗ {problem.message}"
    if problem.usage:
        first, *rest = problem.usage.splitlines() or [""]
        text += f"\nUsage: {first}"
        text += "".join(f"\n       {line}" for line in rest)
    return text


def _headline(card: CollectionCard) -> str:
    env = f" ({card.env})" if card.env else ""
    return f"{card.status.emoji} {card.name}{env} — {card.status.value}"


def _card_lines(card: CollectionCard, number: Numberer) -> list[str]:
    lines = [_headline(card), f"{_INDENT}{card.summary}"]
    if card.busy:
        lines.append(f"{_INDENT}⏳ {card.busy}")
    if card.buttons:
        lines.append(f"{_INDENT}{_buttons(card.buttons, number)}")
    return lines


def _render_overview(overview: StatusOverview, number: Numberer) -> str:
    lines = [overview.title]
    for card in overview.cards:
        lines.extend(f"  {line}" for line in _card_lines(card, number))
    if overview.more is not None:
        lines.append(f"  {_buttons((overview.more,), number)}")
    return "\n".join(lines)


def _table(rows: Sequence[Sequence[str]], right: frozenset[int] = frozenset()) -> list[str]:
    """Rows with each column padded to its widest cell (columns in ``right`` right-aligned)."""
    if not rows:
        return []
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = []
    for row in rows:
        cells = [
            cell.rjust(widths[i]) if i in right else cell.ljust(widths[i])
            for i, cell in enumerate(row)
        ]
        lines.append("  ".join(cells).rstrip())
    return lines


def _render_detail(detail: CollectionDetail, number: Numberer) -> str:
    card = detail.card
    lines = [_headline(card), f"{_INDENT}{card.summary}"]
    if card.busy:
        lines.append(f"{_INDENT}⏳ {card.busy}")
    rows = [
        (
            row.name,
            row.state.value,
            f"{row.kind}/{row.size}" if row.size else row.kind,
            f"{row.monthly}/mo" if row.monthly is not None else "unknown",
            f"({row.detail})" if row.detail else "",
        )
        for row in detail.rows
    ]
    lines.extend(f"{_INDENT}{line}" for line in _table(rows, right=frozenset({3})))
    if detail.schedule:
        lines.append(f"{_INDENT}Schedule: {detail.schedule}")
    if card.buttons:
        lines.append(f"{_INDENT}{_buttons(card.buttons, number)}")
    return "\n".join(lines)


def _render_list(listing: CollectionList) -> str:
    title = f"Collections ({listing.filters})" if listing.filters else "Collections"
    if not listing.cards:
        return f"{title}\n  No collections to show."
    rows = [
        (
            f"{card.status.emoji} {card.name}",
            card.collection_id,
            card.env,
            card.status.value,
            card.summary,
        )
        for card in listing.cards
    ]
    return "\n".join([title, *(f"  {line}" for line in _table(rows))])


def _render_schedules(view: ScheduleView) -> str:
    lines = [view.title]
    for entry in view.entries:
        name = f" — {entry.schedule_name}" if entry.schedule_name else ""
        lines.append(f"  {entry.collection_name}{name}")
        lines.append(f"{_INDENT}  {entry.schedule_text}")
        if entry.desired_now:
            lines.append(f"{_INDENT}  now: {entry.desired_now}")
        if entry.next_transitions:
            lines.append(f"{_INDENT}  next: {', '.join(entry.next_transitions)}")
    return "\n".join(lines)


# --- output --------------------------------------------------------------------------------


def _channel(text: str) -> Channel:
    """``#qa-team``, ``qa-team`` -> the channel named ``#qa-team``; ``C0123ABC`` -> by ID."""
    text = text.strip()
    if not text.startswith("#") and is_channel_id(text):
        return Channel(id=text)
    return Channel(name="#" + text.lstrip("#").lower())


def _with_header(header: str, text: str) -> str:
    """``header`` then ``text``: on one line if the text is one line, else indented below."""
    lines = text.splitlines() or [""]
    if not header:
        return text
    if len(lines) == 1:
        return f"{header} {lines[0]}"
    return "\n".join([header, *(f"  {line}" if line else "" for line in lines)])


def _write(out: TextIO, text: str) -> None:
    with _OUTPUT_LOCK:
        out.write(text if text.endswith("\n") else text + "\n")
        out.flush()


class ConsoleNotifier:
    """The Notifier port for the console: prints each delivery of a routed notification,
    ``🔔 #staging-ops: text`` for a channel and ``✉ alice@company.com: text`` for a person.

    Safe to call from worker threads.
    """

    def __init__(self, out: TextIO) -> None:
        self.out = out

    def notify(self, notification: Notification) -> None:
        """Print ``notification`` once per delivery."""
        lines = []
        for delivery in notification.deliveries:
            if delivery.channel:
                lines.append(_with_header(f"🔔 {_channel(delivery.channel)}:", notification.text))
            if delivery.person:
                lines.append(_with_header(f"✉ {delivery.person}:", notification.text))
        if lines:
            _write(self.out, "\n".join(lines))


class _Place(NamedTuple):
    """Where a message is shown: a channel, or a direct message to a person."""

    channel: Channel
    person: str | None = None

    def __str__(self) -> str:
        return f"the direct message to {self.person}" if self.person else str(self.channel)


class Console:
    """The chat shell: one NightOps conversation in a terminal.

    ``accounts_by_name`` maps short names to account emails (built from the config), so
    ``:as bob`` acts as ``bob@company.com``; an unknown name is an unlinked chat user.
    ``user`` and ``channel`` are where the session starts. With ``prompt`` (an interactive
    terminal) a ``alice@#dev-team>`` prompt is written before each line is read.
    """

    def __init__(
        self,
        service: Service,
        *,
        accounts_by_name: Mapping[str, str] | None = None,
        user: str,
        channel: str,
        out: TextIO,
        workspace: str = "console",
        prompt: bool = False,
    ) -> None:
        self.service = service
        self.out = out
        self.workspace = workspace
        self.prompt = prompt
        self._accounts = {
            name.lower(): (name, email) for name, email in (accounts_by_name or {}).items()
        }
        self.actor = self._actor_for(user)
        self.channel = _channel(channel)
        # number -> (button, where its message is shown), for the latest screen with buttons
        self._buttons: dict[int, tuple[Button, _Place]] = {}
        # buttons of the screen being printed
        self._screen: list[tuple[Button, _Place]] = []
        # message ref -> (where it was shown, its last text)
        self._refs: dict[str, tuple[_Place, str]] = {}

    # --- the loop --------------------------------------------------------------------------

    def banner(self) -> None:
        """Print who you are, where, and how to get help."""
        self._say(
            f"NightOps console — you are {self._who()} in {self.channel}.\n"
            "Type a /nightops command (status, help, …), a number to press a button, "
            "or :help."
        )

    def prompt_text(self) -> str:
        """``alice@#dev-team> ``."""
        return f"{self.actor.label}@{self.channel}> "

    def run(self, lines: Iterable[str]) -> int:
        """Handle ``lines`` until ``:quit`` or their end; the exit code (0)."""
        iterator = iter(lines)
        while True:
            if self.prompt:
                with _OUTPUT_LOCK:
                    self.out.write(self.prompt_text())
                    self.out.flush()
            try:
                line = next(iterator)
            except StopIteration:
                if self.prompt:
                    self._say("")
                return 0
            if not self.handle_line(line):
                return 0

    def handle_line(self, line: str) -> bool:
        """Handle one input line; False when it asks to quit.

        Pending approvals whose time is up are expired first, whatever the line.
        A :class:`~nightops_core.errors.NightOpsError` is shown, never raised.
        """
        try:
            try:
                self._show_outcome(self.service.expire_approvals(), self._here())
            except NightOpsError as exc:  # the sweep failing must not swallow the line
                self._problem(exc)
            return self._interpret(_without_comment(line).strip())
        except NightOpsError as exc:
            self._problem(exc)
            return True
        finally:
            self._end_screen()

    def _interpret(self, line: str) -> bool:
        if not line or line == "#" or line.startswith(("# ", "#\t")):
            return True
        if line.startswith(":"):
            return self._console_command(line)
        click = _CLICK.fullmatch(line)
        if click is not None:
            self._click(int(click.group(1)))
            return True
        request = CommandRequest(self.actor, self.channel, line)
        self._run(self.service.handle_command(request), self._here())
        return True

    # --- console commands ------------------------------------------------------------------

    def _console_command(self, line: str) -> bool:
        word, *rest = line.split(maxsplit=1)
        argument = rest[0].strip() if rest else ""
        match word.lower():
            case ":quit" | ":q" | ":exit":
                return False
            case ":help" | ":h" | ":?":
                self._say(HELP)
            case ":as":
                self._switch_user(argument)
            case ":in":
                self._switch_channel(argument)
            case _:
                self._say(f"✗ Unknown console command {word}; type :help for the list.")
        return True

    def _switch_user(self, user: str) -> None:
        if not user:
            known = ", ".join(name for name, _ in self._accounts.values()) or "none configured"
            self._say(f"You are {self._who()}. Usage: :as USER (known accounts: {known}).")
            return
        self.actor = self._actor_for(user)
        if self.service.account_for(self.actor) is None:
            self._say(
                f"You are now {self.actor.label}. Note: {user} is not a configured account, "
                "so you act as an unlinked user (see: whoami)."
            )
        else:
            self._say(f"You are now {self._who()}.")

    def _switch_channel(self, channel: str) -> None:
        if not channel or any(c.isspace() for c in channel):
            self._say(f"You are in {self.channel}. Usage: :in CHANNEL (e.g. :in #qa-team).")
            return
        self.channel = _channel(channel)
        self._say(f"You are now in {self.channel}.")

    def _actor_for(self, user: str) -> Actor:
        text = user.strip()
        known = self._accounts.get(text.lower())
        if known is not None:
            name, email = known
        elif "@" in text:
            email = text
            name = next(
                (n for n, e in self._accounts.values() if e.lower() == text.lower()),
                text.partition("@")[0],
            )
        else:
            name, email = text, None
        return Actor(self.workspace, user_id=name, name=name, email=email or None, via="console")

    def _who(self) -> str:
        account = self.service.account_for(self.actor)
        if account is None:
            return f"{self.actor.label} (not linked to an account)"
        return f"{self.actor.label} ({account.email}, {account.role.value})"

    # --- requests --------------------------------------------------------------------------

    def _click(self, number: int) -> None:
        entry = self._buttons.get(number)
        if entry is None:
            if not self._buttons:
                self._say("✗ There are no buttons to press yet; run a command first (status).")
            else:
                self._say(f"✗ There is no button [{number}]; choose 1 to {len(self._buttons)}.")
            return
        button, place = entry
        where = "" if place == self._here() else f" (in {place})"
        self._say(f"▸ {button.label}{where}")
        request = ActionRequest(self.actor, place.channel, button.action_id, button.value)
        self._run(self.service.handle_action(request), place)

    def show(self, outcome: Outcome) -> None:
        """Show an outcome produced outside a typed line (start-up reconciliation, expiry)
        in the current channel, running its jobs."""
        self._run(outcome, self._here())

    def _run(self, outcome: Outcome, context: _Place) -> None:
        """Show ``outcome``, then run its jobs here and now, showing their progress."""
        jobs = list(self._show_outcome(outcome, context))
        while jobs:
            job = jobs.pop(0)

            def progress(update: Outcome) -> None:
                jobs.extend(self._show_outcome(update, context))

            jobs.extend(self._show_outcome(self.service.run_job(job, progress=progress), context))

    # --- showing messages ------------------------------------------------------------------

    def _here(self) -> _Place:
        return _Place(self.channel)

    def _show_outcome(self, outcome: Outcome, context: _Place) -> tuple[Job, ...]:
        with _OUTPUT_LOCK:
            for message in outcome.messages:
                self._show(message, context)
        return outcome.jobs

    def _show(self, message: Message, context: _Place) -> None:
        """Print one message where it goes; an already shown ``ref`` is an update of it
        (skipped when its text has not changed)."""
        previous = self._refs.get(message.ref) if message.ref else None
        if previous is not None:
            place = previous[0]
            header = "↻ updated:" if place == self._here() else f"↻ updated in {place}:"
        else:
            place, header = self._placement(message, context)
        pending: list[tuple[Button, _Place]] = []
        base = len(self._screen)

        def number(button: Button) -> int:
            pending.append((button, place))
            return base + len(pending)

        text = render(message.body, number)
        if previous is not None and previous[1] == text:
            return
        self._screen.extend(pending)
        if message.ref:
            self._refs[message.ref] = (place, text)
        self._say(_with_header(header, text))

    def _placement(self, message: Message, context: _Place) -> tuple[_Place, str]:
        elsewhere = "" if context == self._here() else f" in {context}"
        match message.to:
            case Destination.REPLY:
                return context, f"(only visible to you{elsewhere})"
            case Destination.IN_CHANNEL | Destination.REPLACE:
                return context, f"in {context}:" if elsewhere else ""
            case Destination.CHANNEL:
                if not message.target:
                    return context, f"in {context}:" if elsewhere else ""
                place = _Place(_channel(message.target))
                return place, f"→ posted in {place}:"
            case Destination.PERSON:
                # A DM matches no channel rule: an unknown channel, told apart by the person.
                person = message.target or "you"
                return _Place(Channel(), person), f"→ direct message to {person}:"
            case _:
                assert_never(message.to)

    def _end_screen(self) -> None:
        with _OUTPUT_LOCK:
            if self._screen:
                self._buttons = dict(enumerate(self._screen, start=1))
                self._screen = []

    def _problem(self, exc: NightOpsError) -> None:
        self._say(render(Problem(exc.message, getattr(exc, "usage", None))))

    def _say(self, text: str) -> None:
        _write(self.out, text)


_QUOTES = {'"': '"', "'": "'", "“": "”", "‘": "’"}


def _without_comment(line: str) -> str:
    """Drop a trailing comment: whitespace, ``#`` and a space, outside quotes — so examples
    with explanations can be pasted as they are (``#qa-team`` is a channel, not a comment)."""
    closing: str | None = None
    for index, char in enumerate(line):
        if closing is not None:
            if char == closing or (closing != "'" and char in '"”'):
                closing = None
        elif char in _QUOTES:
            closing = _QUOTES[char]
        elif (
            char == "#"
            and index > 0
            and line[index - 1].isspace()
            and line[index + 1 : index + 2] in (" ", "\t", "")
        ):
            return line[:index]
    return line

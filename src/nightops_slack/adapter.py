"""The adapter core: verify, translate Slack payloads into the service's requests, ack
within 3 s, run the work in the background and deliver the answers.

One seam per transport, all framework-free:

* :meth:`SlackAdapter.dispatch` — an :class:`~.http.HttpRequest` to ``/slack/events``
  (signature checked on the raw body with slack-sdk's ``SignatureVerifier``, 5-minute
  window; replays refused) -> :class:`~.http.HttpResponse` (the ack);
* :meth:`SlackAdapter.on_command` / :meth:`SlackAdapter.on_interaction` — an already
  authenticated payload (Socket Mode, Bolt) -> the ack body.

Acknowledging: commands that call a cloud (status, list, start, stop: the service
describes or discovers resources) are acked at once with an empty 200 and handled on the
adapter's pool; their answer follows through ``response_url`` (or the Web API). Commands
answered from NightOps's own state (help, whoami, link, schedule, syntax errors) are
handled on the pool too, and their reply rides in the ack if it is ready within
``ack_budget`` (1.5 s), else the ack says "Working…" and the reply follows. Clicks and
modal submissions are acked empty at once and handled on the pool. Messages that will be
updated, cards for other channels, DMs and jobs are always delivered after the ack. A
retried or replayed delivery never acts twice: each request carries a ``delivery_id``
(trigger_id, action_ts) the service claims once.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any, Protocol

import attrs
from slack_sdk.signature import Clock as SignatureClock
from slack_sdk.signature import SignatureVerifier

from nightops_core import grammar
from nightops_core.errors import CommandError
from nightops_core.permissions import Channel
from nightops_core.responses import (
    Destination,
    Message,
    Outcome,
    Problem,
    ReasonRequired,
)
from nightops_core.service import ActionRequest, Actor, CommandRequest, Service
from nightops_slack.http import HttpRequest, HttpResponse
from nightops_slack.messenger import Context, Messenger
from nightops_slack.render import (
    REASON_ACTION_ID,
    REASON_BLOCK_ID,
    REASON_CALLBACK_ID,
    render,
)
from nightops_slack.text import quote_value
from nightops_slack.web import Team

__all__ = ["JobSubmitter", "SlackAdapter"]

log = logging.getLogger("nightops.slack")

#: Slack's non-channel names in slash-command payloads.
_PSEUDO_CHANNELS = frozenset({"privategroup", "directmessage", "mpdm"})
_WORKING = "⏳ Working on it…"
_SIGNATURE_WINDOW = 5 * 60 + 30


class JobSubmitter(Protocol):
    """Runs an outcome's jobs off the request thread (``nightops.workers.Workers.submit``
    has this shape) and passes every progress and final outcome to ``deliver``."""

    def __call__(self, outcome: Outcome, deliver: Callable[[Outcome], None]) -> object: ...


class SlackAdapter:
    """Slack <-> :class:`~nightops_core.service.Service`. Build one per process."""

    def __init__(
        self,
        service: Service,
        messenger: Messenger,
        *,
        signing_secret: str | None = None,
        signature_clock: SignatureClock | None = None,
        submit_jobs: JobSubmitter | None = None,
        ack_budget: float = 1.5,
        max_workers: int = 4,
        command: str = "/nightops",
    ) -> None:
        self.service = service
        self.messenger = messenger
        self.command = command
        self.ack_budget = ack_budget
        self._verifier = (
            SignatureVerifier(signing_secret, clock=signature_clock or SignatureClock())
            if signing_secret
            else None
        )
        self._seen_signatures: dict[str, float] = {}
        self._seen_lock = threading.Lock()
        self._pool = ThreadPoolExecutor(max_workers, thread_name_prefix="nightops-slack")
        self._submit_jobs = submit_jobs or self._run_jobs

    # --- HTTP ----------------------------------------------------------------------------

    def dispatch(self, request: HttpRequest) -> HttpResponse:
        """Handle one POST to ``/slack/events``; the response is the ack."""
        if request.method != "POST":
            return HttpResponse.text("POST only", 405)
        if not self._authentic(request):
            return HttpResponse.text("invalid or expired signature", 401)
        content_type = request.header("content-type") or ""
        if content_type.startswith("application/json"):
            data = json.loads(request.body or b"{}")
            if data.get("type") == "url_verification":
                return HttpResponse.json({"challenge": data.get("challenge", "")})
            return HttpResponse.empty()  # NightOps subscribes to no events
        form = request.form()
        if form.get("ssl_check"):
            return HttpResponse.empty()
        if "payload" in form:
            try:
                payload = json.loads(form["payload"])
            except ValueError:
                return HttpResponse.text("bad payload", 400)
            ack = self.on_interaction(payload)
        elif "command" in form:
            ack = self.on_command(form, retry=request.header("x-slack-retry-num"))
        else:
            return HttpResponse.text("unknown request", 400)
        return HttpResponse.json(ack) if ack else HttpResponse.empty()

    def _authentic(self, request: HttpRequest) -> bool:
        if self._verifier is None:
            log.error("No signing secret configured: refusing every HTTP request")
            return False
        if not self._verifier.is_valid_request(request.body, dict(request.headers)):
            return False
        # A valid signature seen before is a replay (Slack's own retries are re-signed
        # with a new timestamp). Kept for the signature window only.
        signature = request.header("x-slack-signature") or ""
        now = time.monotonic()
        with self._seen_lock:
            if signature in self._seen_signatures:
                return False
            if len(self._seen_signatures) > 10000:
                cutoff = now - _SIGNATURE_WINDOW
                self._seen_signatures = {
                    s: t for s, t in self._seen_signatures.items() if t > cutoff
                }
            self._seen_signatures[signature] = now
        return True

    # --- payloads -> requests ------------------------------------------------------------

    def on_command(
        self, payload: Mapping[str, Any], *, retry: str | None = None
    ) -> dict[str, Any] | None:
        """A slash command's fields -> the ack body (None: an empty 200)."""
        team = Team(_str(payload.get("team_id")), _str(payload.get("enterprise_id")))
        user_id = _str(payload.get("user_id")) or ""
        channel = _channel(payload.get("channel_id"), payload.get("channel_name"))
        trigger = _str(payload.get("trigger_id"))
        ctx = Context(
            team=team,
            user_id=user_id,
            channel=channel,
            response_url=_str(payload.get("response_url")),
            trigger_id=trigger,
        )
        text = str(payload.get("text") or "")
        delivery = f"slack:command:{team.key}:{trigger}" if trigger else None
        if retry:
            log.info("Slack retry %s of a command (delivery %s)", retry, delivery)

        def work() -> Outcome:
            actor = self._actor(team, user_id, _str(payload.get("user_name")))
            with self.messenger.acting_for(team):
                return self.service.handle_command(CommandRequest(actor, channel, text, delivery))

        future = self._pool.submit(work)
        if not _answers_locally(text):
            # It reads or changes the cloud: ack now (empty), answer through response_url.
            future.add_done_callback(lambda done: self._pool.submit(self._finish_later, done, ctx))
            return None
        try:
            outcome = future.result(timeout=self.ack_budget)
        except FutureTimeout:
            # Never wait on the pool from the pool: finish from the future's callback.
            future.add_done_callback(lambda done: self._pool.submit(self._finish_later, done, ctx))
            return {"response_type": "ephemeral", "text": _WORKING}
        except Exception:  # the service never raises NightOpsError; this is a bug
            log.exception("/nightops %s failed", text)
            return _ack(Message(Problem("Something went wrong; the NightOps logs say why.")))
        first, rest = _split_ack(outcome, ctx)
        self._pool.submit(self._complete, Outcome(rest, outcome.jobs), ctx)
        return _ack(first) if first is not None else None

    def on_interaction(self, payload: Mapping[str, Any]) -> dict[str, Any] | None:
        """An interaction payload (block_actions, view_submission) -> the ack body."""
        kind = payload.get("type")
        if kind == "block_actions":
            self._pool.submit(self._guard, self._block_actions, payload)
            return None
        if kind == "view_submission":
            view = payload.get("view") or {}
            if view.get("callback_id") != REASON_CALLBACK_ID:
                return None
            reason = _reason(view)
            if len(reason.strip()) < 3:
                return {
                    "response_action": "errors",
                    "errors": {REASON_BLOCK_ID: "Please give a reason (a few words)."},
                }
            self._pool.submit(self._guard, self._view_submission, payload, reason)
            return None  # closes the modal
        return None

    def _block_actions(self, payload: Mapping[str, Any]) -> None:
        team = _team_of(payload)
        user = payload.get("user") or {}
        user_id = str(user.get("id") or "")
        raw_channel = payload.get("channel") or {}
        channel = _channel(raw_channel.get("id"), raw_channel.get("name"))
        ctx = Context(
            team=team,
            user_id=user_id,
            channel=channel,
            response_url=_str(payload.get("response_url")),
            trigger_id=_str(payload.get("trigger_id")),
        )
        actor = self._actor(team, user_id, _str(user.get("username") or user.get("name")))
        for action in payload.get("actions") or []:
            action_id = str(action.get("action_id") or "")
            if not action_id.startswith("nightops."):
                continue
            delivery = f"slack:action:{team.key}:{user_id}:{action.get('action_ts')}:{action_id}"
            value = str(action.get("value") or "")
            if action_id in ("nightops.approve", "nightops.deny"):
                actor = self._with_approver_group(actor, team, value)
            request = ActionRequest(actor, channel, action_id, value, delivery)
            with self.messenger.acting_for(team):
                outcome = self.service.handle_action(request)
            self._complete(outcome, ctx)

    def _view_submission(self, payload: Mapping[str, Any], reason: str) -> None:
        team = _team_of(payload)
        user = payload.get("user") or {}
        user_id = str(user.get("id") or "")
        view = payload.get("view") or {}
        try:
            meta = json.loads(view.get("private_metadata") or "{}")
            collection, action = str(meta["c"]), str(meta["a"])
        except (ValueError, KeyError, TypeError):
            log.warning("A reason modal came back without its metadata; ignored")
            return
        channel = _channel(meta.get("ch"), meta.get("cn"))
        ctx = Context(
            team=team, user_id=user_id, channel=channel, response_url=_str(meta.get("ru"))
        )
        actor = self._actor(team, user_id, _str(user.get("username") or user.get("name")))
        text = f"{action} {collection} -r {quote_value(reason)}"
        delivery = f"slack:view:{team.key}:{view.get('id')}:{view.get('hash')}"
        with self.messenger.acting_for(team):
            outcome = self.service.handle_command(CommandRequest(actor, channel, text, delivery))
        self._complete(outcome, ctx)

    def _actor(self, team: Team, user_id: str, name: str | None) -> Actor:
        info = self.messenger.directory.user(team, user_id) if user_id else None
        return Actor(
            workspace=team.key,
            user_id=user_id,
            name=(info.name if info else None) or name or user_id,
            email=info.email if info else None,
            via="Slack",
        )

    def _with_approver_group(self, actor: Actor, team: Team, approval_id: str) -> Actor:
        """Tell the service whether the clicker is in the approvers' user group, when the
        request names one (needs the ``usergroups:read`` scope; without it, no one is)."""
        request = self.service.store.get_approval(approval_id)
        group = request.approvers.usergroup if request is not None else None
        if not group:
            return actor
        if self.messenger.directory.in_usergroup(team, actor.user_id, group):
            return attrs.evolve(actor, groups=(*actor.groups, group))
        return actor

    # --- after the ack -------------------------------------------------------------------

    def _finish_later(self, future: Future[Outcome], ctx: Context) -> None:
        try:
            outcome = future.result()
        except Exception:  # a bug: say so instead of leaving "Working…" forever
            log.exception("a slow /nightops command failed")
            outcome = Outcome.reply(Problem("Something went wrong; the NightOps logs say why."))
        self._complete(outcome, ctx)

    def _complete(self, outcome: Outcome, ctx: Context) -> None:
        """Deliver the messages (so refs exist), then start the jobs."""
        with self.messenger.acting_for(ctx.team):
            self.messenger.deliver(outcome, ctx)
        if outcome.jobs:

            def deliver(update: Outcome) -> None:
                with self.messenger.acting_for(ctx.team):
                    self.messenger.deliver(update, ctx)

            self._submit_jobs(outcome, deliver)

    def _run_jobs(self, outcome: Outcome, deliver: Callable[[Outcome], None]) -> object:
        """The default job runner (embedding without the host's Workers)."""
        futures = []
        for job in outcome.jobs:

            def run(job: Any = job) -> None:
                final = self.service.run_job(job, progress=deliver)
                deliver(final)
                if final.jobs:
                    self._run_jobs(final, deliver)

            futures.append(self._pool.submit(self._guard, run))
        return futures

    def deliver(self, outcome: Outcome) -> None:
        """Deliver an outcome produced outside any request (expiry sweep, start-up
        reconciliation) to the home workspace, running its jobs."""
        self._complete(outcome, Context(team=self.messenger.current_team()))

    def _guard(self, fn: Callable[..., None], *args: Any) -> None:
        try:
            fn(*args)
        except Exception:  # a worker thread must survive any bug
            log.exception("handling a Slack request failed")

    def close(self, wait: bool = True) -> None:
        self._pool.shutdown(wait=wait)


def _str(value: Any) -> str | None:
    return str(value) if value else None


def _channel(channel_id: Any, name: Any) -> Channel:
    name_text = str(name) if name and str(name) not in _PSEUDO_CHANNELS else None
    if name_text and not name_text.startswith("#"):
        name_text = f"#{name_text}"
    return Channel(id=_str(channel_id), name=name_text)


def _team_of(payload: Mapping[str, Any]) -> Team:
    team = payload.get("team") or {}
    enterprise = payload.get("enterprise") or {}
    user = payload.get("user") or {}
    return Team(
        _str(team.get("id") or user.get("team_id")),
        _str(enterprise.get("id") if isinstance(enterprise, Mapping) else None),
    )


def _reason(view: Mapping[str, Any]) -> str:
    values = (view.get("state") or {}).get("values") or {}
    field = (values.get(REASON_BLOCK_ID) or {}).get(REASON_ACTION_ID) or {}
    return str(field.get("value") or "")


def _answers_locally(text: str) -> bool:
    """Commands answered from NightOps's own state (help, whoami, link, schedule, and
    every syntax error) ride in the ack; the others call a cloud (status, list, start,
    stop describe or discover resources) and are answered after an empty ack."""
    try:
        command = grammar.parse(text)
    except CommandError:
        return True
    return isinstance(command, grammar.Help | grammar.WhoAmI | grammar.Link | grammar.ScheduleCmd)


def _split_ack(outcome: Outcome, ctx: Context) -> tuple[Message | None, tuple[Message, ...]]:
    """The message that rides in the ack (a reply or an in-channel answer that is never
    updated), and the rest."""
    for i, message in enumerate(outcome.messages):
        if message.ref is not None:
            continue
        if message.to not in (Destination.REPLY, Destination.IN_CHANNEL):
            continue
        if isinstance(message.body, ReasonRequired) and ctx.trigger_id:
            continue  # opens a modal instead
        return message, outcome.messages[:i] + outcome.messages[i + 1 :]
    return None, outcome.messages


def _ack(message: Message) -> dict[str, Any]:
    rendered = render(message.body)
    response_type = "in_channel" if message.to is Destination.IN_CHANNEL else "ephemeral"
    return {"response_type": response_type, **rendered.payload()}

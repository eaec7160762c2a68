"""Putting the service's messages where they belong in Slack, and updating them by ref.

:class:`Messenger` turns each :class:`~nightops_core.responses.Message` into Web API or
``response_url`` calls according to its :class:`~nightops_core.responses.Destination`:

* ``REPLY``: ephemeral to the requester (``response_url``, else ``chat.postEphemeral``);
* ``IN_CHANNEL``: in the requester's channel; a message with a ``ref`` (it will be updated)
  is posted with ``chat.postMessage`` so it can be edited with ``chat.update`` (ephemeral
  messages cannot; FACTS.md) — and through ``response_url`` if the bot is not in the channel;
* ``REPLACE``: replaces the message the click came from (``response_url``);
* ``CHANNEL``: ``chat.postMessage`` to the target channel (name or ID);
* ``PERSON``: a DM to the account email's Slack user (``users.lookupByEmail`` ->
  ``conversations.open`` -> ``chat.postMessage``).

Where a ref was posted is kept in the state store (namespace ``slack.refs``, keyed by the
ref, which the service makes unique per deployment; the value names the workspace), so a
decision, an expiry or a job's progress updates the same message even across a restart.
Delivery failures are logged with the fix and, when someone is waiting, told to them;
they are never raised into the service.
"""

from __future__ import annotations

import contextlib
import contextvars
import json
import logging
import threading
import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

import attrs
from slack_sdk.errors import SlackApiError, SlackClientError

from nightops_core.notify import Notification
from nightops_core.permissions import Channel
from nightops_core.ports import Clock, StateStore
from nightops_core.responses import (
    Destination,
    Message,
    Notice,
    OperationReport,
    Outcome,
    ReasonRequired,
    Tone,
)
from nightops_slack.render import Rendered, reason_modal, render
from nightops_slack.text import escape
from nightops_slack.users import Directory
from nightops_slack.web import Clients, NoToken, Team, team_from_key

__all__ = ["Context", "Messenger", "SlackNotifier"]

log = logging.getLogger("nightops.slack")

REFS = "slack.refs"
#: How long a posted message stays updatable by ref.
REF_TTL = timedelta(days=30)
#: response_url accepts 5 posts in 30 minutes (FACTS.md); keep the last ones for results.
RESPONSE_URL_POSTS = 5
RESPONSE_URL_TTL = timedelta(minutes=30)

_FIXES = {
    "channel_not_found": "check the channel name in the config, or invite the bot to it "
    "(private channels are invisible until it is a member)",
    "not_in_channel": "invite the bot: /invite @NightOps in {channel}",
    "is_archived": "the channel is archived; point the config at another one",
    "restricted_action": "a workspace admin restricts posting there",
    "ratelimited": "Slack is rate limiting NightOps; it retried and gave up",
}

_current_team: contextvars.ContextVar[Team | None] = contextvars.ContextVar(
    "nightops_slack_team", default=None
)


@attrs.frozen
class Context:
    """Where a request came from: who, which workspace, which channel, how to answer."""

    team: Team | None = None
    user_id: str | None = None
    channel: Channel | None = None
    response_url: str | None = None
    trigger_id: str | None = None


class DeliveryError(Exception):
    def __init__(self, where: str, error: str) -> None:
        self.where = where
        self.error = error
        fix = _FIXES.get(error, "see the NightOps logs").format(channel=where)
        super().__init__(f"could not post to {where} ({error}): {fix}")


def _slack_error(exc: SlackApiError) -> str:
    return str(exc.response.get("error") or exc.response.status_code)


class Messenger:
    """Delivers outcomes to Slack (thread-safe)."""

    def __init__(
        self,
        clients: Clients,
        store: StateStore,
        clock: Clock,
        *,
        directory: Directory | None = None,
        progress_interval: float = 1.0,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.clients = clients
        self.store = store
        self.clock = clock
        self.directory = directory or Directory(clients)
        self.progress_interval = progress_interval
        self._monotonic = monotonic
        self._last_update: dict[str, float] = {}
        self._ref_locks: dict[str, threading.Lock] = {}
        self._lock = threading.Lock()
        self.notifier = SlackNotifier(self)

    # --- context ---------------------------------------------------------------------------

    @contextlib.contextmanager
    def acting_for(self, team: Team | None) -> Iterator[None]:
        """Notifications raised inside go to ``team`` (else the home workspace)."""
        token = _current_team.set(team)
        try:
            yield
        finally:
            _current_team.reset(token)

    def current_team(self) -> Team | None:
        return _current_team.get() or self.clients.tokens.home_team()

    # --- outcomes --------------------------------------------------------------------------

    def deliver(self, outcome: Outcome, ctx: Context | None = None) -> None:
        """Deliver every message of ``outcome`` in order (jobs are not run here)."""
        ctx = ctx or Context(team=self.current_team())
        for message in outcome.messages:
            self.place(message, ctx)

    def place(self, message: Message, ctx: Context) -> None:
        try:
            self._place(message, ctx)
        except DeliveryError as exc:
            log.warning("NightOps %s", exc)
            self._tell(ctx, f"⚠️ I {exc}.")
        except NoToken as exc:
            log.error("%s", exc)
        except (SlackApiError, SlackClientError, OSError) as exc:
            log.warning("Delivering a %s message failed: %s", message.to.value, exc)

    def _place(self, message: Message, ctx: Context) -> None:
        if message.ref and self._update(message):
            return
        body = message.body
        if isinstance(body, ReasonRequired) and ctx.trigger_id and self._open_reason(body, ctx):
            return
        rendered = render(body)
        match message.to:
            case Destination.REPLY:
                self._reply(rendered, ctx)
            case Destination.IN_CHANNEL:
                self._in_channel(rendered, ctx, message.ref)
            case Destination.REPLACE:
                self._replace(rendered, ctx, message.ref)
            case Destination.CHANNEL:
                target = message.target or (_channel_target(ctx.channel) if ctx.channel else None)
                if target is None:
                    self._reply(rendered, ctx)
                    return
                team = ctx.team or self.current_team()
                channel, ts = self._post(team, target, rendered)
                self._remember(message.ref, team, channel, ts)
            case Destination.PERSON:
                team = ctx.team or self.current_team()
                posted = self._dm(team, message.target or "", rendered)
                if posted is not None:
                    self._remember(message.ref, team, *posted)

    # --- ways to say something ---------------------------------------------------------------

    def _reply(self, rendered: Rendered, ctx: Context) -> None:
        if ctx.response_url:
            self._respond(ctx.response_url, rendered, response_type="ephemeral")
        elif ctx.channel and ctx.channel.id and ctx.user_id:
            client = self.clients.for_team(ctx.team)
            client.chat_postEphemeral(
                channel=ctx.channel.id, user=ctx.user_id, **rendered.payload()
            )
        else:
            log.info("A reply had nowhere to go (no response_url, channel or user)")

    def _in_channel(self, rendered: Rendered, ctx: Context, ref: str | None) -> None:
        channel = _channel_target(ctx.channel) if ctx.channel else None
        if ref is None or channel is None:
            if ctx.response_url:
                self._respond(ctx.response_url, rendered, response_type="in_channel")
            elif channel:
                self._post(ctx.team, channel, rendered)
            return
        try:
            posted_channel, ts = self._post(ctx.team, channel, rendered)
        except DeliveryError:
            if not ctx.response_url:
                raise
            # Not a member of the channel: answer through response_url and keep updating it
            # there (replace_original), within its 5 posts.
            self._respond(ctx.response_url, rendered, response_type="in_channel")
            self._remember_url(ref, ctx.team, ctx.response_url)
            return
        self._remember(ref, ctx.team, posted_channel, ts)

    def _replace(self, rendered: Rendered, ctx: Context, ref: str | None) -> None:
        if not ctx.response_url:
            self._in_channel(rendered, ctx, ref)
            return
        if ref is not None and ctx.channel is not None:
            # The card will be updated: post it in the channel, then drop the (usually
            # ephemeral) message the click came from.
            channel = _channel_target(ctx.channel)
            try:
                posted_channel, ts = self._post(ctx.team, channel, rendered)
            except DeliveryError:
                self._respond(ctx.response_url, rendered, replace_original=True)
                self._remember_url(ref, ctx.team, ctx.response_url)
                return
            self._remember(ref, ctx.team, posted_channel, ts)
            self._send_url(ctx.response_url, {"delete_original": True})
            return
        self._respond(ctx.response_url, rendered, replace_original=True)

    def _respond(
        self,
        url: str,
        rendered: Rendered,
        *,
        response_type: str | None = None,
        replace_original: bool = False,
    ) -> None:
        payload: dict[str, Any] = {**rendered.payload(), "replace_original": replace_original}
        if response_type:
            payload["response_type"] = response_type
        self._send_url(url, payload)

    def _send_url(self, url: str, payload: dict[str, Any]) -> None:
        response = self.clients.webhook(url).send_dict(payload)
        if response.status_code >= 300:
            log.warning("response_url answered %s: %s", response.status_code, response.body)

    def _post(self, team: Team | None, channel: str, rendered: Rendered) -> tuple[str, str]:
        self.clients.pace(channel)
        try:
            response = self.clients.for_team(team).chat_postMessage(
                channel=channel, unfurl_links=False, unfurl_media=False, **rendered.payload()
            )
        except SlackApiError as exc:
            raise DeliveryError(_shown(channel), _slack_error(exc)) from None
        return str(response.get("channel") or channel), str(response.get("ts") or "")

    def _dm(self, team: Team | None, email: str, rendered: Rendered) -> tuple[str, str] | None:
        user_id = self.directory.user_id_for(team, email)
        if user_id is None:
            return None
        channel = self.directory.dm_channel(team, user_id)
        if channel is None:
            return None
        return self._post(team, channel, rendered)

    def _open_reason(self, body: ReasonRequired, ctx: Context) -> bool:
        metadata = json.dumps(
            {
                "c": body.collection_id,
                "a": body.action.value,
                "ch": ctx.channel.id if ctx.channel else None,
                "cn": ctx.channel.name if ctx.channel else None,
                "ru": ctx.response_url,
            },
            separators=(",", ":"),
        )
        try:
            self.clients.for_team(ctx.team).views_open(
                trigger_id=ctx.trigger_id, view=reason_modal(body, metadata)
            )
        except (SlackApiError, ValueError) as exc:
            # trigger_id lasts 3 s and works once: fall back to asking in text.
            log.info("views.open failed (%s); asking for the reason in text", exc)
            return False
        return True

    def _tell(self, ctx: Context, text: str) -> None:
        """Tell the person waiting (if any) that something went wrong; never raises."""
        if not (ctx.response_url or (ctx.channel and ctx.user_id)):
            return
        with contextlib.suppress(SlackApiError, SlackClientError, NoToken, OSError):
            self._reply(render(Notice(text, Tone.WARNING)), ctx)

    # --- refs --------------------------------------------------------------------------------

    def _remember(self, ref: str | None, team: Team | None, channel: str, ts: str) -> None:
        if not ref or not ts:
            return
        value = {"team": team.key if team else None, "channel": channel, "ts": ts}
        self.store.put_value(REFS, ref, json.dumps(value), self.clock.now() + REF_TTL)

    def _remember_url(self, ref: str, team: Team | None, url: str) -> None:
        value = {"team": team.key if team else None, "url": url, "uses": 1}
        self.store.put_value(REFS, ref, json.dumps(value), self.clock.now() + RESPONSE_URL_TTL)

    def _ref_lock(self, ref: str) -> threading.Lock:
        with self._lock:
            return self._ref_locks.setdefault(ref, threading.Lock())

    def _update(self, message: Message) -> bool:
        """Update the message posted for ``message.ref``; False if none was posted."""
        assert message.ref is not None
        with self._ref_lock(message.ref):
            raw = self.store.get_value(REFS, message.ref, self.clock.now())
            if raw is None:
                return False
            where = json.loads(raw)
            body = message.body
            final = not (isinstance(body, OperationReport) and not body.finished)
            now = self._monotonic()
            if not final and now - self._last_update.get(message.ref, -1e9) < (
                self.progress_interval
            ):
                return True  # a progress update too soon after the last: skip it
            self._last_update[message.ref] = now
            rendered = render(body)
            team = team_from_key(where["team"]) if where.get("team") else None
            if "url" in where:
                uses = int(where["uses"])
                if uses >= RESPONSE_URL_POSTS or (not final and uses >= RESPONSE_URL_POSTS - 2):
                    return True
                self._respond(where["url"], rendered, replace_original=True)
                where["uses"] = uses + 1
                self.store.put_value(
                    REFS, message.ref, json.dumps(where), self.clock.now() + RESPONSE_URL_TTL
                )
                return True
            try:
                self.clients.for_team(team).chat_update(
                    channel=where["channel"], ts=where["ts"], **rendered.payload()
                )
            except SlackApiError as exc:
                log.warning("chat.update of %s failed: %s", message.ref, _slack_error(exc))
            return True

    # --- notifications -----------------------------------------------------------------------

    def notify(self, notification: Notification) -> None:
        team = self.current_team()
        rendered = Rendered(
            escape(notification.text),
            render(Notice(f"🔔 {notification.text}")).blocks,
        )
        tags = self._mentions(team, notification.mentions)
        if tags:
            # Our own markup around ids Slack gave us: not escaped (the text itself is).
            rendered = Rendered(
                f"{tags} {rendered.text}",
                ({"type": "section", "text": {"type": "mrkdwn", "text": tags}}, *rendered.blocks),
            )
        for delivery in notification.deliveries:
            try:
                if delivery.channel:
                    self._post(team, delivery.channel, rendered)
                if delivery.person:
                    self._dm(team, delivery.person, rendered)
            except DeliveryError as exc:
                log.warning("Notification %s: %s", notification.kind.value, exc)
            except NoToken as exc:
                log.error("Notification %s not sent: %s", notification.kind.value, exc)
            except (SlackApiError, SlackClientError, OSError) as exc:
                log.warning("Notification %s not sent: %s", notification.kind.value, exc)

    def _mentions(self, team: Team | None, mentions: tuple[str, ...]) -> str:
        """``<@U…>`` for each email Slack knows, ``<!subteam^S…>`` for each user group."""
        tags = []
        for mention in mentions:
            if "@" in mention:
                user = self.directory.user_id_for(team, mention)
                if user:
                    tags.append(f"<@{user}>")
            elif mention.isalnum():
                tags.append(f"<!subteam^{mention}>")
        return " ".join(tags)


def _channel_target(channel: Channel) -> str:
    """What chat.postMessage takes: the ID if known, else the name."""
    if channel.id:
        return channel.id
    return str(channel)


def _shown(channel: str) -> str:
    if channel.startswith("#") or (channel[:1] in "CGD" and channel.isalnum()):
        return channel
    return f"#{channel}"


class SlackNotifier:
    """The core's Notifier port for Slack: channels (names or IDs) and persons (email ->
    DM). Never raises for a delivery failure; logs it with the fix."""

    def __init__(self, messenger: Messenger) -> None:
        self._messenger = messenger

    def notify(self, notification: Notification) -> None:
        self._messenger.notify(notification)

"""Add NightOps to a slack-bolt App you already run (optional extra ``bolt``)::

    from slack_bolt import App
    from nightops_slack.bolt import messenger_for, register

    app = App(token=..., signing_secret=...)            # your bot
    messenger = messenger_for(app, store=store, clock=clock)
    service = Service(settings, providers=..., store=store, clock=clock, ids=...,
                      notifier=messenger.notifier)
    register(app, service, messenger)                   # /nightops + its buttons + modal

Bolt verifies requests and acks; NightOps's adapter does the rest exactly as in the
standalone app (same acks, same background delivery). Tokens: Bolt's installation store
when it has one (OAuth), else its client's token.
"""

from __future__ import annotations

import re
from typing import Any

from slack_bolt import Ack, App

from nightops_core.ports import Clock, StateStore
from nightops_core.service import Service
from nightops_slack.adapter import JobSubmitter, SlackAdapter
from nightops_slack.messenger import Messenger
from nightops_slack.render import REASON_CALLBACK_ID
from nightops_slack.web import Clients, InstalledTokens, StaticToken, TokenSource

__all__ = ["messenger_for", "register"]


def messenger_for(app: App, *, store: StateStore, clock: Clock) -> Messenger:
    """A Messenger that posts with ``app``'s tokens and API URL."""
    static: TokenSource | None = StaticToken(app.client.token) if app.client.token else None
    tokens: TokenSource
    if app.installation_store is not None:
        tokens = InstalledTokens(app.installation_store, static)
    elif static is not None:
        tokens = static
    else:
        raise ValueError("The Bolt App has neither a token nor an installation store")
    return Messenger(Clients(tokens, api_url=app.client.base_url), store, clock)


def register(
    app: App,
    service: Service,
    messenger: Messenger,
    *,
    command: str = "/nightops",
    submit_jobs: JobSubmitter | None = None,
) -> SlackAdapter:
    """Register NightOps's slash command, buttons (``nightops.*``) and reason modal."""
    adapter = SlackAdapter(service, messenger, submit_jobs=submit_jobs, command=command)

    def on_command(ack: Ack, body: dict[str, Any]) -> None:
        answer = adapter.on_command(body)
        ack(answer) if answer else ack()

    def on_action(ack: Ack, body: dict[str, Any]) -> None:
        ack()
        adapter.on_interaction(body)

    def on_view(ack: Ack, body: dict[str, Any]) -> None:
        answer = adapter.on_interaction(body)
        ack(answer) if answer else ack()

    app.command(command)(on_command)
    app.action(re.compile(r"^nightops\."))(on_action)
    app.view(REASON_CALLBACK_ID)(on_view)
    return adapter

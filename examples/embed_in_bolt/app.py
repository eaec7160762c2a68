"""Your slack-bolt app, with its own ``/deploy``, and NightOps added in five lines.

export SLACK_BOT_TOKEN=xoxb-… SLACK_SIGNING_SECRET=…
python examples/embed_in_bolt/app.py      # http://0.0.0.0:3000/slack/events
"""

from __future__ import annotations

import os
from pathlib import Path

from slack_bolt import Ack, App, Respond
from slack_sdk import WebClient

from nightops.app import SystemClock, build
from nightops.config import load_config
from nightops.state import open_store
from nightops_slack.bolt import messenger_for, register


def create_app(
    config_path: str | Path, token: str, signing_secret: str, api_url: str | None = None
) -> App:
    """The Bolt app; ``api_url`` points it at another Slack Web API (a test double)."""
    client = WebClient(token=token, base_url=api_url or WebClient.BASE_URL)
    app = App(client=client, signing_secret=signing_secret)

    @app.command("/deploy")  # your bot's own commands stay as they are
    def deploy(ack: Ack, respond: Respond, command: dict[str, str]) -> None:
        ack()
        respond(f"Deploying {command.get('text') or 'main'}…")

    # NightOps: the config, where it keeps its state, and /nightops with its buttons and modal.
    config = load_config(config_path)
    store, clock = open_store(config.state_url), SystemClock()
    messenger = messenger_for(app, store=store, clock=clock)  # posts with the app's token
    nightops = build(config, notifier=messenger.notifier, store=store, clock=clock)
    register(app, nightops.service, messenger)
    return app


if __name__ == "__main__":
    app = create_app(
        Path(__file__).with_name("nightops.toml"),
        token=os.environ["SLACK_BOT_TOKEN"],
        signing_secret=os.environ["SLACK_SIGNING_SECRET"],
    )
    app.start(port=3000)  # Bolt's development server; in production, a WSGI adapter

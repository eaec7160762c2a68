"""Add NightOps to a slack-bolt app you already run (pip install 'nightops[aws,bolt]').

export SLACK_BOT_TOKEN=xoxb-… SLACK_SIGNING_SECRET=…
python examples/slack_app/embed_bolt.py      # serves http://0.0.0.0:3000/slack/events
"""

from __future__ import annotations

import os
from pathlib import Path

from slack_bolt import App

from nightops.app import build
from nightops.config import load_config
from nightops.state import open_store
from nightops_slack.bolt import messenger_for, register

app = App(token=os.environ["SLACK_BOT_TOKEN"], signing_secret=os.environ["SLACK_SIGNING_SECRET"])


@app.command("/deploy")  # your bot's own commands stay as they are
def deploy(ack, respond):  # type: ignore[no-untyped-def]
    ack()
    respond("Deploying…")


if __name__ == "__main__":
    from nightops.app import SystemClock

    config = load_config(Path(__file__).with_name("nightops.toml"))
    store, clock = open_store(config.state_url), SystemClock()
    messenger = messenger_for(app, store=store, clock=clock)
    nightops = build(config, notifier=messenger.notifier, store=store, clock=clock)
    register(app, nightops.service, messenger)  # /nightops, its buttons, its modal
    app.start(port=3000)

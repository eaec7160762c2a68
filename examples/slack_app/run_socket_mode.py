"""Run NightOps for Slack over Socket Mode on the sandbox cloud (no public URL needed).

    export SLACK_BOT_TOKEN=xoxb-… SLACK_SIGNING_SECRET=… SLACK_APP_TOKEN=xapp-…
    python examples/slack_app/run_socket_mode.py

Once the lead's ``nightops serve`` command lands, the same is
``nightops serve --config examples/slack_app/nightops.toml --socket-mode``.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

from nightops.config import load_config
from nightops.slack_host import serve

if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO)
    config = load_config(Path(__file__).with_name("nightops.toml"))
    sys.exit(serve(config, socket_mode=True, http_port=None))

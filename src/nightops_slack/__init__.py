"""NightOps's Slack adapter: verification, slash commands, Block Kit, interactivity,
notifications, user lookup and linking; transports: HTTP (WSGI), Socket Mode, and
registration into an existing Bolt app (:mod:`nightops_slack.bolt`, extra ``bolt``).

Imports only :mod:`nightops_core`, slack-sdk and the standard library. Nothing happens at
import time; the host (``nightops.slack_host``) builds the pieces from the config.
"""

from nightops_slack.adapter import JobSubmitter, SlackAdapter
from nightops_slack.http import HttpRequest, HttpResponse
from nightops_slack.linking import DEFAULT_EMAIL_HEADER, Linker
from nightops_slack.messenger import Context, Messenger, SlackNotifier
from nightops_slack.oauth import SCOPES, KvInstallationStore, KvOAuthStateStore, OAuthFlow
from nightops_slack.render import Rendered, reason_modal, render
from nightops_slack.socket_mode import SocketModeTransport
from nightops_slack.text import escape
from nightops_slack.users import Directory
from nightops_slack.web import Clients, InstalledTokens, StaticToken, Team, TokenSource
from nightops_slack.wsgi import make_wsgi_app

__all__ = [
    "DEFAULT_EMAIL_HEADER",
    "SCOPES",
    "Clients",
    "Context",
    "Directory",
    "HttpRequest",
    "HttpResponse",
    "InstalledTokens",
    "JobSubmitter",
    "KvInstallationStore",
    "KvOAuthStateStore",
    "Linker",
    "Messenger",
    "OAuthFlow",
    "Rendered",
    "SlackAdapter",
    "SlackNotifier",
    "SocketModeTransport",
    "StaticToken",
    "Team",
    "TokenSource",
    "escape",
    "make_wsgi_app",
    "reason_modal",
    "render",
]

"""Web API access: which bot token for which workspace, configured clients, pacing.

Every :class:`~slack_sdk.WebClient` built here has slack-sdk's
``RateLimitErrorRetryHandler`` added (it is off by default; FACTS.md, Slack) beside the
default connection-error handler, and talks to the configured API base URL (tests point it
at a local fake). Posts to one channel are paced (≈ 1 message/s per channel).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Protocol

import attrs
from slack_sdk import WebClient
from slack_sdk.http_retry.builtin_handlers import (
    ConnectionErrorRetryHandler,
    RateLimitErrorRetryHandler,
)
from slack_sdk.http_retry.handler import RetryHandler
from slack_sdk.oauth.installation_store import InstallationStore
from slack_sdk.webhook import WebhookClient

__all__ = [
    "DEFAULT_API_URL",
    "Clients",
    "InstalledTokens",
    "NoToken",
    "StaticToken",
    "Team",
    "TokenSource",
]

DEFAULT_API_URL = "https://slack.com/api/"


@attrs.frozen
class Team:
    """A workspace (and its Enterprise Grid org, when there is one)."""

    team_id: str | None
    enterprise_id: str | None = None

    @property
    def key(self) -> str:
        """The workspace key records are stored under (Actor.workspace, links, refs)."""
        return workspace_key(self.team_id, self.enterprise_id)


def workspace_key(team_id: str | None, enterprise_id: str | None) -> str:
    """``T123``, or ``E456/T123`` inside an Enterprise Grid org (FACTS.md: key records by
    enterprise and team)."""
    team = team_id or "-"
    return f"{enterprise_id}/{team}" if enterprise_id else team


def team_from_key(key: str) -> Team:
    enterprise, _, team = key.rpartition("/")
    return Team(None if team == "-" else team, enterprise or None)


class NoToken(Exception):
    """No bot token is known for a workspace (not installed)."""


class TokenSource(Protocol):
    def bot_token(self, team: Team | None) -> str | None:
        """The bot token for ``team`` (None: the deployment's home workspace)."""
        ...

    def home_team(self) -> Team | None:
        """The workspace to use when nothing says which (notifications, the sweeper)."""
        ...


class StaticToken:
    """One workspace: the bot token from the config or the environment."""

    def __init__(self, token: str, team: Team | None = None) -> None:
        self._token = token
        self._team = team

    def bot_token(self, team: Team | None) -> str | None:
        return self._token

    def home_team(self) -> Team | None:
        return self._team


class InstalledTokens:
    """Several workspaces: tokens saved by the OAuth flow in an InstallationStore; the
    static token (if any) for the home workspace and as the fallback."""

    def __init__(
        self,
        store: InstallationStore,
        fallback: TokenSource | None = None,
        home: Team | None = None,
    ) -> None:
        self._store = store
        self._fallback = fallback
        self._home = home

    def bot_token(self, team: Team | None) -> str | None:
        team = team or self.home_team()
        if team is not None:
            bot = self._store.find_bot(
                enterprise_id=team.enterprise_id,
                team_id=team.team_id,
                is_enterprise_install=team.team_id is None,
            )
            if bot is not None:
                return bot.bot_token
        return self._fallback.bot_token(team) if self._fallback else None

    def home_team(self) -> Team | None:
        if self._home is not None:
            return self._home
        return self._fallback.home_team() if self._fallback else None


def _retry_handlers() -> list[RetryHandler]:
    return [ConnectionErrorRetryHandler(), RateLimitErrorRetryHandler(max_retry_count=2)]


class Clients:
    """Builds (and caches) Web API clients per token; paces posts per channel."""

    def __init__(
        self,
        tokens: TokenSource,
        *,
        api_url: str | None = None,
        channel_interval: float = 1.0,
        timeout: int = 10,
        monotonic: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.tokens = tokens
        url = api_url or DEFAULT_API_URL
        self.api_url = url if url.endswith("/") else url + "/"
        self.channel_interval = channel_interval
        self.timeout = timeout
        self._monotonic = monotonic
        self._sleep = sleep
        self._clients: dict[str, WebClient] = {}
        self._lock = threading.Lock()
        self._next_post: dict[str, float] = {}

    def for_team(self, team: Team | None) -> WebClient:
        token = self.tokens.bot_token(team)
        if not token:
            where = team.key if team else "the home workspace"
            raise NoToken(
                f"No bot token for {where}: install the app there (/slack/install) or "
                "set slack.bot_token."
            )
        with self._lock:
            client = self._clients.get(token)
            if client is None:
                client = self.anonymous(token)
                self._clients[token] = client
        return client

    def anonymous(self, token: str | None = None) -> WebClient:
        """A client with our settings and ``token`` (or none: oauth.v2.access)."""
        return WebClient(
            token=token,
            base_url=self.api_url,
            timeout=self.timeout,
            retry_handlers=_retry_handlers(),
        )

    def webhook(self, url: str) -> WebhookClient:
        """A client for one ``response_url``."""
        return WebhookClient(url, timeout=self.timeout, retry_handlers=_retry_handlers())

    def pace(self, channel: str) -> None:
        """Wait until ``channel`` may take another message (≈ 1/s per channel; FACTS.md)."""
        if self.channel_interval <= 0:
            return
        with self._lock:
            now = self._monotonic()
            at = max(now, self._next_post.get(channel, now))
            self._next_post[channel] = at + self.channel_interval
        if at > now:
            self._sleep(at - now)

"""Installing into several workspaces: the OAuth v2 "Add to Slack" flow.

slack-sdk's pieces, with storage in our :class:`~nightops_core.ports.StateStore`:

* :class:`KvInstallationStore` — an ``InstallationStore`` (``slack.installations``
  namespace, keyed by enterprise and team id), so the bot token is chosen per team id;
* :class:`KvOAuthStateStore` — an ``OAuthStateStore`` (``slack.oauth_state``; each state
  is single use and expires in 10 minutes); the state is also bound to the browser with a
  cookie, so a state leaked to someone else's browser is refused;
* :class:`OAuthFlow` — ``/slack/install`` (redirects to Slack's authorize URL made by
  ``AuthorizeUrlGenerator``) and ``/slack/oauth_redirect`` (exchanges the code with
  ``oauth.v2.access``, saves the installation).

Bot tokens are stored in the state store as they are: protect it as you would the
config's secrets.
"""

from __future__ import annotations

import json
import logging
import secrets
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from slack_sdk.errors import SlackApiError, SlackClientError
from slack_sdk.oauth import AuthorizeUrlGenerator
from slack_sdk.oauth.installation_store import Bot, Installation, InstallationStore
from slack_sdk.oauth.state_store import OAuthStateStore

from nightops_core.ports import Clock, StateStore
from nightops_slack.http import HttpRequest, HttpResponse, page
from nightops_slack.web import Clients, workspace_key

__all__ = [
    "INSTALL_PATH",
    "REDIRECT_PATH",
    "SCOPES",
    "KvInstallationStore",
    "KvOAuthStateStore",
    "OAuthFlow",
]

log = logging.getLogger("nightops.slack")

#: The minimal bot scopes (FACTS.md): commands, posting, user lookup, DMs.
SCOPES = ("commands", "chat:write", "users:read", "users:read.email", "im:write")
INSTALL_PATH = "/slack/install"
REDIRECT_PATH = "/slack/oauth_redirect"
INSTALLATIONS = "slack.installations"
STATES = "slack.oauth_state"
STATE_COOKIE = "nightops-oauth-state"
STATE_TTL = timedelta(minutes=10)

_BOT_FIELDS = (
    "app_id",
    "enterprise_id",
    "enterprise_name",
    "team_id",
    "team_name",
    "bot_token",
    "bot_id",
    "bot_user_id",
    "is_enterprise_install",
)


def _key(enterprise_id: str | None, team_id: str | None, is_enterprise_install: bool) -> str:
    return workspace_key(None if is_enterprise_install else team_id, enterprise_id)


def _fields(data: dict[str, Any]) -> dict[str, Any]:
    return {field: data.get(field) for field in _BOT_FIELDS}


class KvInstallationStore(InstallationStore):
    """slack-sdk's InstallationStore over the state store's key/value namespace."""

    def __init__(self, store: StateStore, clock: Clock) -> None:
        self._store = store
        self._clock = clock
        self._logger = log

    @property
    def logger(self) -> logging.Logger:
        return self._logger

    def save(self, installation: Installation) -> None:
        data = {field: getattr(installation, field) for field in _BOT_FIELDS}
        data |= {
            "bot_scopes": list(installation.bot_scopes or ()),
            "user_id": installation.user_id,
            "installed_at": installation.installed_at,
        }
        key = _key(
            installation.enterprise_id,
            installation.team_id,
            bool(installation.is_enterprise_install),
        )
        self._store.put_value(INSTALLATIONS, key, json.dumps(data))

    def save_bot(self, bot: Bot) -> None:
        data = {field: getattr(bot, field) for field in _BOT_FIELDS}
        data |= {"bot_scopes": list(bot.bot_scopes or ()), "installed_at": bot.installed_at}
        key = _key(bot.enterprise_id, bot.team_id, bool(bot.is_enterprise_install))
        self._store.put_value(INSTALLATIONS, key, json.dumps(data))

    def _load(
        self, enterprise_id: str | None, team_id: str | None, is_enterprise_install: bool | None
    ) -> dict[str, Any] | None:
        now = self._clock.now()
        keys = [_key(enterprise_id, team_id, bool(is_enterprise_install))]
        if enterprise_id and not is_enterprise_install:
            keys.append(_key(enterprise_id, None, True))  # an org-wide install covers it
        for key in keys:
            raw = self._store.get_value(INSTALLATIONS, key, now)
            if raw is not None:
                data: dict[str, Any] = json.loads(raw)
                return data
        return None

    def find_bot(
        self,
        *,
        enterprise_id: str | None,
        team_id: str | None,
        is_enterprise_install: bool | None = False,
    ) -> Bot | None:
        data = self._load(enterprise_id, team_id, is_enterprise_install)
        if data is None or not data.get("bot_token"):
            return None
        return Bot(
            **_fields(data),
            bot_scopes=data.get("bot_scopes") or [],
            installed_at=float(data.get("installed_at") or 0.0),
        )

    def find_installation(
        self,
        *,
        enterprise_id: str | None,
        team_id: str | None,
        user_id: str | None = None,
        is_enterprise_install: bool | None = False,
    ) -> Installation | None:
        data = self._load(enterprise_id, team_id, is_enterprise_install)
        if data is None:
            return None
        return Installation(
            **_fields(data),
            bot_scopes=data.get("bot_scopes") or [],
            user_id=str(data.get("user_id") or ""),
            installed_at=float(data.get("installed_at") or 0.0),
        )

    def delete_bot(self, *, enterprise_id: str | None, team_id: str | None) -> None:
        now = self._clock.now()
        for enterprise_install in (False, True):
            key = _key(enterprise_id, team_id, enterprise_install)
            self._store.take_value(INSTALLATIONS, key, now)

    def delete_installation(
        self, *, enterprise_id: str | None, team_id: str | None, user_id: str | None = None
    ) -> None:
        self.delete_bot(enterprise_id=enterprise_id, team_id=team_id)


class KvOAuthStateStore(OAuthStateStore):
    """Single-use OAuth ``state`` values in the state store, valid for 10 minutes."""

    def __init__(self, store: StateStore, clock: Clock) -> None:
        self._store = store
        self._clock = clock

    @property
    def logger(self) -> logging.Logger:
        return log

    def issue(self, *args: Any, **kwargs: Any) -> str:
        state = secrets.token_urlsafe(24)
        self._store.put_value(STATES, state, "1", self._clock.now() + STATE_TTL)
        return state

    def consume(self, state: str) -> bool:
        return self._store.take_value(STATES, state, self._clock.now()) is not None


class OAuthFlow:
    """The two OAuth endpoints of the HTTP app."""

    def __init__(
        self,
        *,
        client_id: str,
        client_secret: str,
        redirect_uri: str,
        clients: Clients,
        installations: InstallationStore,
        states: OAuthStateStore,
        scopes: Sequence[str] = SCOPES,
        authorization_url: str = "https://slack.com/oauth/v2/authorize",
    ) -> None:
        self.client_id = client_id
        self._client_secret = client_secret
        self.redirect_uri = redirect_uri
        self.clients = clients
        self.installations = installations
        self.states = states
        self._urls = AuthorizeUrlGenerator(
            client_id=client_id,
            redirect_uri=redirect_uri,
            scopes=list(scopes),
            authorization_url=authorization_url,
        )

    def install(self, request: HttpRequest) -> HttpResponse:
        state = self.states.issue()
        cookie = f"{STATE_COOKIE}={state}; Path=/slack; Max-Age=600; HttpOnly; Secure; SameSite=Lax"
        return HttpResponse.redirect(self._urls.generate(state), (("Set-Cookie", cookie),))

    def redirect(self, request: HttpRequest) -> HttpResponse:
        if request.query.get("error"):
            return _page("Installation cancelled", f"Slack said: {request.query['error']}.", 200)
        state = request.query.get("state", "")
        if not state or request.cookie(STATE_COOKIE) != state or not self.states.consume(state):
            return _page(
                "Installation link expired",
                "This installation attempt is no longer valid (it expired, was already used "
                f"or began in another browser). Start again at {INSTALL_PATH}.",
                400,
            )
        code = request.query.get("code", "")
        try:
            client = self.clients.anonymous()
            response = client.oauth_v2_access(
                client_id=self.client_id,
                client_secret=self._client_secret,
                code=code,
                redirect_uri=self.redirect_uri,
            )
            token = response.get("access_token")
            bot_id = None
            if token:
                bot_id = self.clients.anonymous(str(token)).auth_test().get("bot_id")
        except (SlackApiError, SlackClientError, OSError) as exc:
            log.warning("oauth.v2.access failed: %s", exc)
            return _page("Installation failed", "Slack refused the installation; try again.", 400)
        team = response.get("team") or {}
        enterprise = response.get("enterprise") or {}
        installer = response.get("authed_user") or {}
        installation = Installation(
            app_id=response.get("app_id"),
            enterprise_id=enterprise.get("id"),
            enterprise_name=enterprise.get("name"),
            team_id=team.get("id"),
            team_name=team.get("name"),
            bot_token=token,
            bot_id=bot_id,
            bot_user_id=response.get("bot_user_id"),
            bot_scopes=response.get("scope") or "",
            user_id=str(installer.get("id") or ""),
            is_enterprise_install=bool(response.get("is_enterprise_install")),
            token_type=response.get("token_type"),
        )
        self.installations.save(installation)
        name = team.get("name") or enterprise.get("name") or "your workspace"
        clear = f"{STATE_COOKIE}=; Path=/slack; Max-Age=0"
        return HttpResponse.html(
            page(
                "NightOps is installed",
                (f"NightOps was added to {name}.", "Try /nightops help in any channel."),
            ),
            200,
            (("Set-Cookie", clear),),
        )


def _page(title: str, text: str, status: int) -> HttpResponse:
    return HttpResponse.html(page(title, (text,)), status)

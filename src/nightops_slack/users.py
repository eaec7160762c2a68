"""Slack users: verified emails (users.info), users by email (users.lookupByEmail), DM
channels (conversations.open) — each cached with a time to live."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from slack_sdk.errors import SlackApiError, SlackClientError

from nightops_slack.web import Clients, NoToken, Team

__all__ = ["Directory", "UserInfo"]

log = logging.getLogger("nightops.slack")


class UserInfo:
    """What we use of a Slack user: a name, and an email we trust (or None)."""

    def __init__(self, name: str, email: str | None) -> None:
        self.name = name
        self.email = email


def trusted_email(user: dict[str, Any]) -> str | None:
    """The profile email of a real, full member whose email Slack confirmed.

    Bots, deleted users and guests (restricted accounts) are never linked automatically:
    a guest could otherwise borrow the SSO domain's viewer access.
    """
    if user.get("is_bot") or user.get("deleted"):
        return None
    if user.get("is_restricted") or user.get("is_ultra_restricted"):
        return None
    if user.get("is_email_confirmed") is False:
        return None
    email = (user.get("profile") or {}).get("email")
    return email.strip().lower() if isinstance(email, str) and "@" in email else None


class _Cache:
    def __init__(self, ttl: float, monotonic: Callable[[], float]) -> None:
        self.ttl = ttl
        self._monotonic = monotonic
        self._items: dict[tuple[str, str], tuple[float, Any]] = {}
        self._lock = threading.Lock()

    def get(self, key: tuple[str, str]) -> tuple[bool, Any]:
        with self._lock:
            found = self._items.get(key)
            if found is None or found[0] <= self._monotonic():
                return False, None
            return True, found[1]

    def put(self, key: tuple[str, str], value: Any) -> None:
        with self._lock:
            self._items[key] = (self._monotonic() + self.ttl, value)


class Directory:
    """Looks users up through the Web API. Failures are logged and read as unknown."""

    def __init__(
        self,
        clients: Clients,
        *,
        ttl: float = 600.0,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.clients = clients
        self._users = _Cache(ttl, monotonic)
        self._by_email = _Cache(ttl, monotonic)
        self._dms = _Cache(24 * 3600.0, monotonic)
        self._groups = _Cache(ttl, monotonic)

    def user(self, team: Team, user_id: str) -> UserInfo | None:
        """users.info (needs users:read and users:read.email)."""
        key = (team.key, user_id)
        hit, value = self._users.get(key)
        if hit:
            return value if isinstance(value, UserInfo) else None
        try:
            response = self.clients.for_team(team).users_info(user=user_id)
        except (SlackApiError, SlackClientError, NoToken, OSError) as exc:
            log.warning("users.info for %s in %s failed: %s", user_id, team.key, exc)
            return None
        user = response.get("user") or {}
        profile = user.get("profile") or {}
        name = profile.get("display_name") or user.get("name") or user_id
        info = UserInfo(str(name), trusted_email(user))
        self._users.put(key, info)
        return info

    def user_id_for(self, team: Team | None, email: str) -> str | None:
        """users.lookupByEmail; None (and a log line) when nobody has that email."""
        key = (team.key if team else "", email.lower())
        hit, value = self._by_email.get(key)
        if hit:
            return value if isinstance(value, str) else None
        try:
            response = self.clients.for_team(team).users_lookupByEmail(email=email)
        except SlackApiError as exc:
            log.warning(
                "No Slack user has the email %s (%s); they get no direct messages until "
                "their Slack email matches their NightOps account.",
                email,
                exc.response.get("error"),
            )
            self._by_email.put(key, None)
            return None
        except (SlackClientError, NoToken, OSError) as exc:
            log.warning("users.lookupByEmail for %s failed: %s", email, exc)
            return None
        user_id = (response.get("user") or {}).get("id")
        self._by_email.put(key, user_id)
        return str(user_id) if user_id else None

    def in_usergroup(self, team: Team, user_id: str, group: str) -> bool:
        """Is the user a member of the user group ``group`` — its ID (``S0123ABC``) or its
        handle (``@oncall``)? usergroups.list / usergroups.users.list, cached; needs the
        ``usergroups:read`` scope (without it: logged, and nobody is a member)."""
        group_id = self._usergroup_id(team, group)
        if group_id is None:
            return False
        key = (team.key, f"members:{group_id}")
        hit, value = self._groups.get(key)
        if not hit:
            try:
                response = self.clients.for_team(team).usergroups_users_list(usergroup=group_id)
            except (SlackApiError, SlackClientError, NoToken, OSError) as exc:
                log.warning(
                    "Cannot read the members of user group %s (%s); approvers by user group "
                    "need the usergroups:read scope.",
                    group,
                    exc,
                )
                return False
            value = frozenset(str(u) for u in response.get("users") or [])
            self._groups.put(key, value)
        return isinstance(value, frozenset) and user_id in value

    def _usergroup_id(self, team: Team, group: str) -> str | None:
        if not group.startswith("@"):
            return group
        key = (team.key, f"handle:{group.lower()}")
        hit, value = self._groups.get(key)
        if hit:
            return value if isinstance(value, str) else None
        try:
            response = self.clients.for_team(team).usergroups_list()
        except (SlackApiError, SlackClientError, NoToken, OSError) as exc:
            log.warning("usergroups.list failed (%s); needs the usergroups:read scope.", exc)
            return None
        found = next(
            (
                str(g.get("id"))
                for g in response.get("usergroups") or []
                if f"@{g.get('handle', '')}".lower() == group.lower()
            ),
            None,
        )
        if found is None:
            log.warning("No Slack user group has the handle %s.", group)
        self._groups.put(key, found)
        return found

    def dm_channel(self, team: Team | None, user_id: str) -> str | None:
        """conversations.open with one user (needs im:write)."""
        key = (team.key if team else "", user_id)
        hit, value = self._dms.get(key)
        if hit:
            return str(value)
        try:
            response = self.clients.for_team(team).conversations_open(users=[user_id])
        except (SlackApiError, SlackClientError, NoToken, OSError) as exc:
            log.warning("conversations.open with %s failed: %s", user_id, exc)
            return None
        channel = (response.get("channel") or {}).get("id")
        if not channel:
            return None
        self._dms.put(key, channel)
        return str(channel)

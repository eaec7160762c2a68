"""``nightops doctor --config FILE``: the troubleshooting guide as checks.

Each check prints ``✓`` (fine), ``✗`` (a problem, followed by how to fix it) or ``–``
(skipped, with why). The exit status is 0 when nothing failed, else 1:

1. **config** — the file loads and validates (as ``nightops check-config``);
2. **state** — the state store opens (reachable, migrated to this version's schema) and
   takes a write and a read;
3. **provider NAME** — for every provider the collections use: the plugin loads with its
   ``[providers.NAME]`` options, and its credentials work: ``describe`` of the first
   resource listed for it (or ``discover`` with the first ``select`` rule);
4. **Slack** (only with a ``[slack]`` table) — ``auth.test`` accepts the bot token; the
   token's scopes (the ``x-oauth-scopes`` header) include the five NinghtOps needs; the
   app-level token opens a Socket Mode connection URL; the bot is a member of every channel
   it posts to (collections' ``slack_channel``, default channels, approvers' channels);
5. **clock** — the local clock against the ``Date`` header of Slack's answer (Slack refuses
   requests signed more than 5 minutes off).

Nothing is started or stopped, nothing is posted to Slack.
"""

from __future__ import annotations

import enum
import os
import socket
import sqlite3
from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any, Final, TextIO

import attrs

from nightops.config import Config, load_config
from nightops.plugins import load_provider
from nightops.state import open_store
from nightops_core.errors import NightOpsError, ProviderError
from nightops_core.model import ResourceState

__all__ = ["Check", "Status", "doctor", "run_checks"]

#: The bot scopes NightOps needs (the manifest's list).
REQUIRED_SCOPES: Final = ("commands", "chat:write", "users:read", "users:read.email", "im:write")
#: Clock difference from which the check fails; Slack's own limit is 300 s.
MAX_SKEW: Final = timedelta(seconds=60)
DEFAULT_SLACK_API: Final = "https://slack.com/api/"
_DOCTOR_NS: Final = "nightops.doctor"


class Status(enum.Enum):
    PASS = "✓"  # noqa: S105 - a check mark, not a password
    FAIL = "✗"
    SKIP = "–"


@attrs.frozen
class Check:
    """One line of the report: ``name`` (what was checked), ``status``, ``detail`` (what
    was found) and, for a failure, ``fix`` (what to do)."""

    name: str
    status: Status
    detail: str = ""
    fix: str = ""

    def text(self) -> str:
        line = f"{self.status.value} {self.name}"
        if self.detail:
            line += ": " + self.detail.replace("\n", "\n    ")
        if self.fix:
            line += f"\n    fix: {self.fix}"
        return line


def _ok(name: str, detail: str = "") -> Check:
    return Check(name, Status.PASS, detail)


def _fail(name: str, detail: str, fix: str) -> Check:
    return Check(name, Status.FAIL, detail, fix)


def _skip(name: str, detail: str) -> Check:
    return Check(name, Status.SKIP, detail)


SlackClientFactory = Callable[[str, str], Any]


def doctor(
    config_path: str | Path,
    out: TextIO,
    *,
    env: Mapping[str, str] | None = None,
    slack_client: SlackClientFactory | None = None,
    now: Callable[[], datetime] | None = None,
) -> int:
    """Run every check on the configuration at ``config_path``, print the report to
    ``out``; 0 if nothing failed, else 1."""
    out.write(f"nightops doctor: {config_path}\n")
    failed = 0
    for check in run_checks(config_path, env=env, slack_client=slack_client, now=now):
        out.write(check.text() + "\n")
        out.flush()
        failed += check.status is Status.FAIL
    if failed:
        noun = "problem" if failed == 1 else "problems"
        out.write(f"{failed} {noun} found.\n")
        return 1
    out.write("All checks passed.\n")
    return 0


def run_checks(
    config_path: str | Path,
    *,
    env: Mapping[str, str] | None = None,
    slack_client: SlackClientFactory | None = None,
    now: Callable[[], datetime] | None = None,
) -> Iterator[Check]:
    """The checks, one by one (each yielded as soon as it is done)."""
    clock = now or (lambda: datetime.now(UTC))
    try:
        config = load_config(config_path, env=env)
    except NightOpsError as exc:
        yield _fail(
            "config",
            exc.message,
            f"correct the keys listed above (nightops check-config {config_path})",
        )
        return
    settings = config.settings
    yield _ok(
        "config",
        f"valid ({len(settings.collections)} collections, "
        f"providers: {', '.join(sorted(config.provider_names)) or 'none'})",
    )
    yield _check_state(config, clock())
    for name in sorted(config.provider_names):
        yield _check_provider(config, name)
    if config.slack is None:
        yield _skip("Slack", "no [slack] table: NightOps runs without Slack (console, scheduler)")
        yield _skip("clock", "not compared: it is compared with Slack's clock when Slack is set")
        return
    yield from _check_slack(config, slack_client or _web_client, clock)


# -- state --------------------------------------------------------------------------------


def _check_state(config: Config, now: datetime) -> Check:
    url = config.state_url
    shown = config.shown_state_url
    name = "state"
    version_before: int | None = None
    if url.startswith("sqlite:///"):
        path = url.removeprefix("sqlite:///")
        if path == ":memory:":
            return _ok(name, f"{shown}: in memory (nothing survives a restart; one process only)")
        file = Path(path)
        if not file.exists():
            parent = _existing_parent(file.parent)
            if not os.access(parent, os.W_OK):
                return _fail(
                    name,
                    f"{shown}: {file} does not exist and {parent} is not writable",
                    f"create {file.parent} writable by the user NightOps runs as",
                )
            return _ok(name, f"{shown}: {file} does not exist yet; it is created at start")
        version_before = _sqlite_version(file)
    try:
        store = open_store(url)
    except NightOpsError as exc:
        return _fail(name, f"{shown}: {exc.message}", _state_fix(url))
    try:
        key = f"{socket.gethostname()}-{os.getpid()}"
        store.put_value(_DOCTOR_NS, key, "ok", expires_at=now + timedelta(minutes=1))
        if store.take_value(_DOCTOR_NS, key, now) != "ok":
            return _fail(name, f"{shown}: a value written could not be read back", _state_fix(url))
    except NightOpsError as exc:
        return _fail(name, f"{shown}: {exc.message}", _state_fix(url))
    finally:
        close = getattr(store, "close", None)
        if callable(close):
            close()
    current = _schema_version(url)
    detail = f"{shown}: reachable, schema version {current}"
    if version_before is not None and version_before < current:
        detail += f" (migrated from {version_before})"
    return _ok(name, detail)


def _existing_parent(path: Path) -> Path:
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def _sqlite_version(file: Path) -> int | None:
    try:
        conn = sqlite3.connect(f"{file.absolute().as_uri()}?mode=ro", uri=True)
        try:
            return int(conn.execute("PRAGMA user_version").fetchone()[0])
        finally:
            conn.close()
    except sqlite3.Error:
        return None  # opening the store reports why


def _schema_version(url: str) -> int:
    if url.startswith("sqlite:///"):
        from nightops.state.sqlite import SCHEMA_VERSION

        return SCHEMA_VERSION
    from nightops.state.postgres import SCHEMA_VERSION as PG_VERSION

    return PG_VERSION


def _state_fix(url: str) -> str:
    if url.startswith("sqlite:///"):
        return (
            "make the file and its folder readable and writable by the user NightOps runs "
            "as, on a local disk (not NFS); a database from a newer NightOps needs that version"
        )
    return (
        "check host, port, database, user and password in [nightops] state (password from "
        "the environment), that the server accepts connections from here (pg_hba.conf), "
        "and that the role may create tables (first start) or use them"
    )


# -- providers ----------------------------------------------------------------------------


def _check_provider(config: Config, name: str) -> Check:
    title = f"provider {name}"
    try:
        provider = load_provider(name, config.providers.get(name, {}))
    except NightOpsError as exc:
        return _fail(
            title,
            exc.message,
            f"install the plugin or extra named above, or fix [providers.{name}]",
        )
    resources = [r for c in config.settings.collections for r in c.resources if r.provider == name]
    selectors = [s for c in config.settings.collections for s in c.selectors if s.provider == name]
    fix = (
        f"give NightOps's identity read access for {name} (docs/iam-policy.json, "
        "docs/gcp-role.yaml, docs/azure-role.json) and check its credentials in the "
        "environment"
    )
    try:
        if resources:
            resource = resources[0]
            (status,) = provider.describe([resource])
            who = f"{resource.label} ({resource.id})" if resource.name else resource.id
            if status.state is ResourceState.UNKNOWN:
                why = status.detail or "the provider could not read its state"
                return _fail(title, f"cannot describe {who}: {why}", fix)
            if status.state is ResourceState.MISSING:
                return _fail(
                    title,
                    f"credentials work, but {who} does not exist"
                    + (f": {status.detail}" if status.detail else ""),
                    "correct the resource's id, region and account in the collection, or remove it",
                )
            return _ok(title, f"loaded; {who} is {status.state.value}")
        if selectors:
            found = provider.discover(selectors[0])
            return _ok(title, f"loaded; its first select rule finds {len(found)} resources")
        return _ok(title, "loaded (no resource to describe)")
    except ProviderError as exc:
        return _fail(title, exc.message, fix)
    except Exception as exc:  # noqa: BLE001 - a plugin's bug is a finding, not a crash
        return _fail(
            title,
            f"the plugin raised {type(exc).__name__}: {exc}",
            "report it to the plugin's authors; it must raise ProviderError",
        )


# -- Slack --------------------------------------------------------------------------------


def _web_client(token: str, base_url: str) -> Any:
    try:
        from slack_sdk import WebClient
    except ImportError:
        raise NightOpsError("Slack needs: pip install 'nightops[slack]'") from None
    return WebClient(token=token, base_url=base_url, timeout=10)


def _header(headers: Mapping[str, Any], name: str) -> str | None:
    for key, value in headers.items():
        if key.lower() == name:
            return str(value[0] if isinstance(value, list) else value)
    return None


def _slack_error(exc: Exception) -> str:
    response = getattr(exc, "response", None)
    if response is not None:
        try:
            error = response.get("error")
        except Exception:  # noqa: BLE001 - any shape: fall back to the text
            error = None
        if error:
            return str(error)
    return f"{type(exc).__name__}: {exc}"


def _posting_channels(config: Config) -> dict[str, str]:
    """Channels the bot posts to, each with why: {channel: role}."""
    found: dict[str, str] = {}
    slack = config.slack
    settings = config.settings
    if slack is not None and slack.default_channel:
        found.setdefault(slack.default_channel, "[slack] default_channel")
    if settings.notifications.default_channel:
        found.setdefault(settings.notifications.default_channel, "[notifications] default_channel")
    for collection in settings.collections:
        if collection.slack_channel:
            found.setdefault(collection.slack_channel, f"slack_channel of {collection.id}")
    for i, rule in enumerate(settings.approval_rules):
        if rule.approvers.channel:
            found.setdefault(rule.approvers.channel, f"approvers of approvals[{i}]")
    return {c: why for c, why in found.items() if not any(ch in c for ch in "*?[")}


def _check_slack(
    config: Config, make_client: SlackClientFactory, clock: Callable[[], datetime]
) -> Iterator[Check]:
    slack = config.slack
    assert slack is not None
    base_url = slack.api_url or DEFAULT_SLACK_API
    base_url = base_url if base_url.endswith("/") else base_url + "/"
    if slack.bot_token is None:
        why = (
            "tokens come from the Add to Slack installations"
            if slack.client_id
            else "no slack.bot_token"
        )
        yield _skip("Slack token", f"{why}; token, scopes and channels not checked")
        yield _skip("clock", "not compared without a bot token")
        return
    try:
        client = make_client(slack.bot_token.reveal(), base_url)
        sent = clock()
        response = client.auth_test()
        received = clock()
    except NightOpsError as exc:
        yield _fail("Slack token", exc.message, "pip install 'nightops[slack]'")
        return
    except Exception as exc:  # noqa: BLE001 - SlackApiError, URLError, timeouts alike
        error = _slack_error(exc)
        if getattr(exc, "response", None) is None:
            yield _fail(
                "Slack token",
                f"cannot reach the Slack API at {base_url}: {error}",
                "check the network path to Slack (proxy: HTTPS_PROXY; firewall) and "
                "[slack] api_url",
            )
        else:
            yield _fail(
                "Slack token",
                f"auth.test refused the bot token: {error}",
                "reinstall the app to the workspace and put its Bot User OAuth Token "
                "(xoxb-…) in the environment variable slack.bot_token names",
            )
        yield _skip("clock", "not compared: Slack did not answer")
        return
    team, user = response.get("team"), response.get("user")
    yield _ok("Slack token", f"valid: bot @{user} in workspace {team}")
    headers: Mapping[str, Any] = getattr(response, "headers", None) or {}
    yield _check_scopes(_header(headers, "x-oauth-scopes"))
    if slack.app_token is not None:
        app_token = slack.app_token.reveal()
        yield _check_app_token(make_client(app_token, base_url), app_token)
    yield from _check_channels(client, _posting_channels(config))
    yield _check_clock(_header(headers, "date"), sent, received)


def _check_scopes(header: str | None) -> Check:
    if header is None:
        return _skip("Slack scopes", "Slack sent no x-oauth-scopes header; scopes not checked")
    granted = {s.strip() for s in header.split(",") if s.strip()}
    missing = [s for s in REQUIRED_SCOPES if s not in granted]
    if missing:
        return _fail(
            "Slack scopes",
            f"the token lacks {', '.join(missing)} (it has: {', '.join(sorted(granted))})",
            "add them under OAuth & Permissions → Bot Token Scopes (manifest.yml lists "
            "them) and reinstall the app",
        )
    return _ok("Slack scopes", ", ".join(REQUIRED_SCOPES))


def _check_app_token(client: Any, token: str) -> Check:
    name = "Socket Mode token"
    try:
        response = client.apps_connections_open(app_token=token)
    except Exception as exc:  # noqa: BLE001 - any failure is the finding
        return _fail(
            name,
            f"apps.connections.open refused the app-level token: {_slack_error(exc)}",
            "under Basic Information → App-Level Tokens create a token with "
            "connections:write (xapp-…), and enable Socket Mode for the app",
        )
    if not response.get("url"):
        return _fail(name, "Slack returned no connection URL", "enable Socket Mode for the app")
    return _ok(name, "opens a Socket Mode connection URL")


def _check_channels(client: Any, channels: Mapping[str, str]) -> Iterator[Check]:
    if not channels:
        yield _skip("Slack channels", "no channel to post to is configured")
        return
    member: set[str] = set()
    cursor: str | None = None
    try:
        while True:
            args: dict[str, Any] = {"types": "public_channel,private_channel", "limit": 1000}
            if cursor:
                args["cursor"] = cursor
            page = client.users_conversations(**args)
            for channel in page.get("channels") or []:
                member.add(str(channel.get("id")))
                member.add("#" + str(channel.get("name")))
            cursor = (page.get("response_metadata") or {}).get("next_cursor") or None
            if not cursor:
                break
    except Exception as exc:  # noqa: BLE001 - missing_scope and the like
        listed = ", ".join(channels)
        yield _skip(
            "Slack channels",
            f"membership not checked ({_slack_error(exc)}; users.conversations needs "
            f"channels:read and groups:read): invite the bot by hand to {listed}",
        )
        return
    for channel, why in channels.items():
        name = f"Slack channel {channel}"
        if channel in member:
            yield _ok(name, f"the bot is a member ({why})")
        else:
            yield _fail(
                name,
                f"the bot is not a member ({why}); posts there fail with not_in_channel",
                f"in Slack, /invite @NightOps in {channel}"
                + ("" if channel.startswith("#") else " (or correct the channel ID)"),
            )


def _check_clock(date: str | None, sent: datetime, received: datetime) -> Check:
    if date is None:
        return _skip("clock", "Slack sent no Date header; not compared")
    try:
        theirs = parsedate_to_datetime(date)
    except (TypeError, ValueError):
        return _skip("clock", f"unreadable Date header {date!r}; not compared")
    ours = sent + (received - sent) / 2
    skew = (ours - theirs).total_seconds()
    # The header has whole seconds only: allow for that and for the round trip.
    slack_s = 1 + (received - sent).total_seconds() / 2
    shown = f"{abs(skew):.0f} s {'ahead of' if skew > 0 else 'behind'} Slack"
    if abs(skew) > MAX_SKEW.total_seconds() + slack_s:
        return _fail(
            "clock",
            f"this machine's clock is {shown}; Slack refuses requests signed more than "
            "5 minutes off, and schedules fire at the wrong time",
            "synchronise the clock with NTP (timedatectl set-ntp true; chrony)",
        )
    return _ok("clock", f"within {max(abs(skew), 1):.0f} s of Slack's")

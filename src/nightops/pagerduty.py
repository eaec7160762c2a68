"""PagerDuty: page on-call through the Events API v2, and ask who is on call (REST API v2).

Both through the ``pagerduty`` package (``pip install 'nightops[pagerduty]'``), imported
when a :class:`PagerDuty` is built, not when this module is: configuration can name
PagerDuty without the package installed until something pages.

* Events API v2 (``POST /v2/enqueue`` on ``https://events.pagerduty.com``): ``trigger``
  with ``routing_key``, ``dedup_key`` (≤ 255 characters) and a payload of ``summary``,
  ``source``, ``severity`` (critical | error | warning | info); ``resolve`` with the same
  ``dedup_key``. ``pagerduty.EventsApiV2Client``.
* On-calls (``GET /oncalls`` on ``https://api.pagerduty.com``, ``include[]=users`` for the
  email, ``earliest=true``): the person at the lowest escalation level of a schedule or an
  escalation policy. ``pagerduty.RestApiV2Client``.

Both base URLs may be overridden (``events_url`` / ``api_url``) — a PagerDuty region, or a
local stand-in in tests; the package insists on ``https://``. Errors of the package are
translated into :class:`PagerDutyError` here and never leak further.
"""

from __future__ import annotations

import contextlib
import ssl
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from types import ModuleType
from typing import Any

import attrs

from nightops_core.drift import DEDUP_KEY_LIMIT
from nightops_core.errors import ConfigError, NightOpsError

__all__ = [
    "SEVERITIES",
    "OnCallPerson",
    "PagerDuty",
    "PagerDutyError",
    "PagerDutySettings",
]

#: ``payload.severity`` values the Events API v2 accepts.
SEVERITIES = ("critical", "error", "warning", "info")
#: The ``summary`` limit of the Events API v2.
SUMMARY_LIMIT = 1024


class PagerDutyError(NightOpsError):
    """PagerDuty could not be reached or refused the request (the message says which)."""


@attrs.frozen
class PagerDutySettings:
    """``[pagerduty]``: the default routing key (an Events API v2 integration key),
    the default severity, the REST API token for on-call lookups, and base URLs."""

    routing_key: str | None = attrs.field(default=None, repr=False)
    severity: str = "error"
    api_token: str | None = attrs.field(default=None, repr=False)
    events_url: str | None = None
    api_url: str | None = None


@attrs.frozen
class OnCallPerson:
    """Who is on call now: a name and (when PagerDuty gives it) an email."""

    name: str
    email: str | None = None


def _package() -> ModuleType:
    try:
        import pagerduty  # the optional extra, imported when PagerDuty is used
    except ImportError:
        raise ConfigError(
            "PagerDuty is configured but the 'pagerduty' package is not installed: "
            "pip install 'nightops[pagerduty]'"
        ) from None
    return pagerduty


class PagerDuty:
    """A PagerDuty client for NightOps: trigger/resolve alerts, look up who is on call.

    ``verify``: an ``ssl.SSLContext`` for a stand-in's certificate (tests); ``retry_pause``:
    the package's first pause before retrying a 5xx/429/network error (it doubles each
    time); ``oncall_ttl``: seconds an on-call answer is reused.
    """

    def __init__(
        self,
        settings: PagerDutySettings,
        *,
        verify: ssl.SSLContext | bool = True,
        retry_pause: float = 1.5,
        oncall_ttl: float = 300.0,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.settings = settings
        self._pd = _package()
        self._verify = verify
        self._retry_pause = retry_pause
        self._oncall_ttl = oncall_ttl
        self._monotonic = monotonic
        self._lock = threading.Lock()
        self._events: dict[str, Any] = {}
        self._rest: Any = None
        self._oncall_cache: dict[tuple[str, str], tuple[float, OnCallPerson | None]] = {}

    # --- Events API v2 ------------------------------------------------------------------------

    def _events_client(self, routing_key: str) -> Any:
        with self._lock:
            client = self._events.get(routing_key)
            if client is None:
                client = self._pd.EventsApiV2Client(
                    routing_key, base_url=self.settings.events_url, verify=self._verify
                )
                client.sleep_timer = self._retry_pause
                self._events[routing_key] = client
            return client

    def _routing_key(self, routing_key: str | None) -> str:
        key = routing_key or self.settings.routing_key
        if not key:
            raise PagerDutyError(
                "No PagerDuty routing key: set [pagerduty] routing_key, or "
                "pagerduty_routing_key on the collection."
            )
        return key

    def trigger(
        self,
        dedup_key: str,
        summary: str,
        source: str,
        *,
        routing_key: str | None = None,
        severity: str | None = None,
        details: Mapping[str, str] | None = None,
    ) -> None:
        """Open (or add to) the alert ``dedup_key``. PagerDutyError if it was not accepted."""
        if len(dedup_key) > DEDUP_KEY_LIMIT:
            raise PagerDutyError(f"dedup_key longer than {DEDUP_KEY_LIMIT} characters")
        client = self._events_client(self._routing_key(routing_key))
        text = summary if len(summary) <= SUMMARY_LIMIT else summary[: SUMMARY_LIMIT - 1] + "…"
        with _translated("trigger"):
            client.trigger(
                text,
                source,
                dedup_key=dedup_key,
                severity=severity or self.settings.severity,
                custom_details=dict(details) if details else None,
            )

    def resolve(self, dedup_key: str, *, routing_key: str | None = None) -> None:
        """Resolve the alert ``dedup_key``. PagerDutyError if it was not accepted."""
        client = self._events_client(self._routing_key(routing_key))
        with _translated("resolve"):
            client.resolve(dedup_key)

    # --- on-call (REST API v2) ----------------------------------------------------------------

    def oncall(
        self, *, schedule: str | None = None, escalation_policy: str | None = None
    ) -> OnCallPerson | None:
        """Who is on call for the schedule (or escalation policy) id now; None if nobody.
        Answers are reused for ``oncall_ttl`` seconds."""
        if schedule:
            where = ("schedule_ids[]", schedule)
        elif escalation_policy:
            where = ("escalation_policy_ids[]", escalation_policy)
        else:
            return None
        now = self._monotonic()
        cached = self._oncall_cache.get(where)
        if cached is not None and now - cached[0] < self._oncall_ttl:
            return cached[1]
        person = self._lookup(where)
        self._oncall_cache[where] = (now, person)
        return person

    def _lookup(self, where: tuple[str, str]) -> OnCallPerson | None:
        if not self.settings.api_token:
            raise PagerDutyError(
                "No PagerDuty API token for the on-call lookup: set [pagerduty] api_token "
                "(a read-only REST API key is enough)."
            )
        with self._lock:
            if self._rest is None:
                self._rest = self._pd.RestApiV2Client(
                    self.settings.api_token, base_url=self.settings.api_url, verify=self._verify
                )
                self._rest.sleep_timer = self._retry_pause
            rest = self._rest
        params = {where[0]: [where[1]], "include[]": ["users"], "earliest": "true"}
        with _translated("on-call lookup"):
            entries = list(rest.iter_all("/oncalls", params=params))
        best: tuple[int, OnCallPerson] | None = None
        for entry in entries:
            user = entry.get("user") or {}
            name = user.get("name") or user.get("summary") or user.get("email")
            if not name:
                continue
            level = int(entry.get("escalation_level") or 1)
            if best is None or level < best[0]:
                best = (level, OnCallPerson(str(name), user.get("email")))
        return best[1] if best else None

    def close(self) -> None:
        with self._lock:
            for client in self._events.values():
                client.close()
            self._events.clear()
            if self._rest is not None:
                self._rest.close()
                self._rest = None


@contextlib.contextmanager
def _translated(what: str) -> Iterator[None]:
    """Turn the package's errors (and the network's) into PagerDutyError."""
    pd = _package()
    try:
        yield
    except pd.Error as exc:
        status = getattr(getattr(exc, "response", None), "status_code", None)
        where = f" (HTTP {status})" if status else ""
        raise PagerDutyError(f"PagerDuty {what} failed{where}: {exc}") from exc
    except OSError as exc:
        raise PagerDutyError(f"PagerDuty {what} failed: {exc}") from exc

"""Logging for the host: text or JSON lines on standard error, with secrets redacted.

:func:`configure_logging` is what ``nightops --log-format json --log-level info …`` calls.
It installs one handler on the root logger (replacing the one it installed before, never
anyone else's) with:

* a formatter: the classic ``time level logger: message`` line, or :class:`JsonFormatter`
  (one JSON object per line, standard library only) for log shippers;
* a :class:`RedactingFilter` that rewrites every record before it is formatted: Slack tokens
  (``xoxb-…``, ``xoxp-…``, ``xapp-…``), passwords in URLs (``postgresql://u:***@db``),
  ``Authorization: Bearer …`` values, and the exact values of known secrets — those of
  environment variables whose names say they are secret (``SLACK_BOT_TOKEN``,
  ``DB_PASSWORD``, …) and whatever :func:`redact_config_secrets` or
  :meth:`RedactingFilter.add_secrets` registers. The message, its arguments, extra fields,
  the formatted traceback and stack are all covered.

Nothing happens at import time.
"""

from __future__ import annotations

import json
import logging
import os
import re
import sys
import threading
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime
from typing import Any, Final, Literal, TextIO

from nightops.config import Config

__all__ = [
    "LOG_FORMATS",
    "LOG_LEVELS",
    "REDACTED",
    "JsonFormatter",
    "RedactingFilter",
    "config_secrets",
    "configure_logging",
    "redact",
    "redact_config_secrets",
    "redacting_filter",
    "setup_cli_logging",
]

LogFormat = Literal["text", "json"]
#: The values of ``--log-format``.
LOG_FORMATS: Final = ("text", "json")
#: The values of ``--log-level`` (any case).
LOG_LEVELS: Final = ("debug", "info", "warning", "error", "critical")
#: What a secret is replaced with.
REDACTED: Final = "***"

TEXT_FORMAT: Final = "%(asctime)s %(levelname)s %(name)s: %(message)s"

#: Secrets shorter than this are not redacted by value (too many false hits: "1", "dev").
_MIN_SECRET_LENGTH: Final = 6
#: Environment variables whose values are secrets, by name.
_SECRET_ENV_NAME: Final = re.compile(
    r"TOKEN|SECRET|PASSWORD|PASSWD|PASSPHRASE|PRIVATE_KEY|ACCESS_KEY|API_KEY|CREDENTIAL",
    re.IGNORECASE,
)
#: Secret shapes, each with its replacement.
_PATTERNS: Final[tuple[tuple[re.Pattern[str], str], ...]] = (
    # Slack bot/user/app/config/refresh tokens.
    (re.compile(r"\bx(?:ox[abposre]|app)-[A-Za-z0-9-]+"), REDACTED),
    # scheme://user:password@host -> scheme://user:***@host
    (re.compile(r"([a-z][a-z0-9+.-]*://[^\s:/@]*):[^\s@/]+@", re.IGNORECASE), rf"\1:{REDACTED}@"),
    # Authorization: Bearer <token>, Basic <credentials>
    (re.compile(r"\b(Bearer|Basic)\s+[A-Za-z0-9._~+/=-]{8,}", re.IGNORECASE), rf"\1 {REDACTED}"),
    # password=…, client_secret: …, token=… in key/value text (query strings, DSNs).
    (
        re.compile(
            r"\b((?:password|passwd|client_secret|signing_secret|secret|token|api_key)"
            r"\s*[=:]\s*)(?!\*\*\*)[^\s&,;'\"]+",
            re.IGNORECASE,
        ),
        rf"\1{REDACTED}",
    ),
)

#: LogRecord attributes that are not "extra" fields.
_STANDARD_ATTRS: Final = frozenset(
    vars(logging.LogRecord("", 0, "", 0, "", (), None)).keys() | {"message", "asctime"}
)


def redact(text: str, secrets: Iterable[str] = ()) -> str:
    """``text`` with every secret pattern and every value in ``secrets`` replaced."""
    for value in sorted(secrets, key=len, reverse=True):
        if value:
            text = text.replace(value, REDACTED)
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    return text


def _env_secrets(environ: Mapping[str, str]) -> set[str]:
    return {
        value
        for name, value in environ.items()
        if _SECRET_ENV_NAME.search(name) and len(value) >= _MIN_SECRET_LENGTH
    }


class RedactingFilter(logging.Filter):
    """Rewrites a record so that no secret reaches a handler; never drops a record.

    ``secrets`` are exact values to hide; ``environ`` (default ``os.environ``) is scanned
    once for variables named like secrets (``*_TOKEN``, ``*_SECRET``, ``*PASSWORD*``, …).
    """

    def __init__(
        self, secrets: Iterable[str] = (), *, environ: Mapping[str, str] | None = None
    ) -> None:
        super().__init__()
        self._lock = threading.Lock()
        self._secrets: frozenset[str] = frozenset()
        self.add_secrets(_env_secrets(os.environ if environ is None else environ))
        self.add_secrets(secrets)

    def add_secrets(self, values: Iterable[str]) -> None:
        """Also hide these exact values (short ones are ignored)."""
        fresh = {v for v in values if len(v) >= _MIN_SECRET_LENGTH}
        with self._lock:
            self._secrets = self._secrets | fresh

    def redact(self, text: str) -> str:
        return redact(text, self._secrets)

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # noqa: BLE001 - a bad format string must not hide the record
            message = f"{record.msg!r} % {record.args!r}"
        record.msg = self.redact(message)
        record.args = None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = self.redact(record.exc_text)
        if record.stack_info:
            record.stack_info = self.redact(record.stack_info)
        for key, value in list(vars(record).items()):
            if key not in _STANDARD_ATTRS and isinstance(value, str):
                setattr(record, key, self.redact(value))
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ``time`` (UTC, ISO 8601), ``level``, ``logger``,
    ``message``, then ``exception`` / ``stack`` when present and any ``extra={…}`` fields
    (values JSON cannot hold are written with ``str``)."""

    def format(self, record: logging.LogRecord) -> str:
        data: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            data["exception"] = record.exc_text
        if record.stack_info:
            data["stack"] = record.stack_info
        for key, value in vars(record).items():
            if key not in _STANDARD_ATTRS and key not in data:
                data[key] = value
        return json.dumps(data, default=str, ensure_ascii=False)


class _StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever ``sys.stderr`` is at the time (test runners swap it)."""

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    @property
    def stream(self) -> TextIO:
        return sys.stderr

    @stream.setter
    def stream(self, _value: TextIO) -> None:
        pass


_MARK: Final = "_nightops_handler"


def configure_logging(
    fmt: str = "text",
    level: str | int = "INFO",
    *,
    stream: TextIO | None = None,
    secrets: Iterable[str] = (),
    environ: Mapping[str, str] | None = None,
) -> logging.Handler:
    """Send log records at ``level`` and above to ``stream`` (default: standard error) in
    ``fmt`` (``text`` or ``json``), secrets redacted. Calling it again replaces the handler
    it installed before. Returns the handler (its :class:`RedactingFilter` is
    ``handler.filters[0]``)."""
    if fmt not in LOG_FORMATS:
        raise ValueError(f"unknown log format {fmt!r}; use one of: {', '.join(LOG_FORMATS)}")
    number = level if isinstance(level, int) else logging.getLevelName(level.upper())
    if not isinstance(number, int):
        raise ValueError(f"unknown log level {level!r}; use one of: {', '.join(LOG_LEVELS)}")
    handler: logging.Handler = _StderrHandler() if stream is None else logging.StreamHandler(stream)
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter(TEXT_FORMAT))
    handler.addFilter(RedactingFilter(secrets, environ=environ))
    setattr(handler, _MARK, True)
    root = logging.getLogger()
    for old in [h for h in root.handlers if getattr(h, _MARK, False)]:
        root.removeHandler(old)
        old.close()
    root.addHandler(handler)
    root.setLevel(number)
    return handler


def redacting_filter() -> RedactingFilter | None:
    """The filter of the handler :func:`configure_logging` installed, if any."""
    for handler in logging.getLogger().handlers:
        if getattr(handler, _MARK, False):
            for f in handler.filters:
                if isinstance(f, RedactingFilter):
                    return f
    return None


def config_secrets(config: Config) -> set[str]:
    """The secret values a configuration holds: Slack's tokens and secrets, the state URL's
    password, and provider options named like secrets."""
    found: set[str] = set()
    slack = config.slack
    if slack is not None:
        for secret in (slack.bot_token, slack.signing_secret, slack.app_token, slack.client_secret):
            if secret is not None:
                found.add(secret.reveal())
    password = re.match(r"^[a-z][a-z0-9+.-]*://[^:/@]*:([^@/]+)@", config.state_url)
    if password:
        found.add(password.group(1))
    for options in config.providers.values():
        for key, value in options.items():
            if isinstance(value, str) and _SECRET_ENV_NAME.search(key):
                found.add(value)
    return found


def redact_config_secrets(config: Config) -> None:
    """Hide ``config``'s secrets in the log from now on (no-op without
    :func:`configure_logging`)."""
    active = redacting_filter()
    if active is not None:
        active.add_secrets(config_secrets(config))


#: Commands that run for long and log what they do at INFO by default.
_LONG_RUNNING: Final = frozenset({"serve", "scheduler"})


def setup_cli_logging(fmt: str, level: str | None, command: str | None) -> Callable[[], None]:
    """Configure logging for one ``nightops`` command: ``level`` if given, else INFO for
    ``serve`` and ``scheduler`` and WARNING for the rest. Returns a function that undoes it
    (removes the handler, restores the root level), for ``main()`` run in-process."""
    root = logging.getLogger()
    before = root.level
    default = "INFO" if command in _LONG_RUNNING else "WARNING"
    handler = configure_logging(fmt, level or default)

    def undo() -> None:
        root.removeHandler(handler)
        handler.close()
        root.setLevel(before)

    return undo

"""Load and validate the TOML configuration into the core's :class:`Settings`.

Two layers: cattrs structures the TOML into plain attrs classes that mirror the file
(shape errors come out as ``collections[2].resources[0].id: required``), then every value is
checked and turned into the core's value objects (reference errors come out as
``collections[2].schedule: unknown schedule 'ofice-hours'; did you mean 'office-hours'?``).
All problems are reported at once in one :class:`ConfigError`.

Secrets are written as ``${ENV_VAR}`` and read from the environment; they are kept in
:class:`Secret` objects that never show their value in ``repr`` or ``str``.
"""

from __future__ import annotations

import difflib
import os
import re
import tomllib
import types
import typing
from collections.abc import Callable, Iterable, Mapping
from datetime import date, timedelta
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

import attrs
import cattrs
from cattrs.errors import (
    ClassValidationError,
    ForbiddenExtraKeysError,
    IterableValidationError,
    IterableValidationNote,
)

from nightops.attention import AttentionSettings, CollectionPolicy, OnCallSettings
from nightops.holidays import dates_from_ics
from nightops.pagerduty import SEVERITIES, PagerDutySettings
from nightops_core.approvals import DEFAULT_TIMEOUT, ApprovalRule, Approvers
from nightops_core.drift import Policy, Thresholds
from nightops_core.durations import parse_duration
from nightops_core.errors import ConfigError, NightOpsError, ScheduleError
from nightops_core.model import Collection, Money, Resource, Selector
from nightops_core.notify import NotificationKind, NotificationSettings, Route
from nightops_core.permissions import ALL_COMMANDS, Account, ChannelRule, Role
from nightops_core.schedule import Schedule, parse_schedule
from nightops_core.settings import Settings

__all__ = ["Config", "Secret", "SlackConfig", "load_config", "parse_config"]

_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
_COLLECTION_ID = re.compile(r"^[a-z0-9][a-z0-9_.-]*$")


@attrs.frozen(repr=False)
class Secret:
    """A secret value from the environment. Never printed; use :meth:`reveal`."""

    _value: str
    source: str = ""

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return f"Secret({self.source or '***'})"

    __str__ = __repr__


# --- the file's shape (structured by cattrs) ------------------------------------------------


@attrs.define
class _RawNightOps:
    state: str = "sqlite:///nightops-state.db"
    timezone: str = "UTC"
    sso_domains: list[str] = attrs.Factory(list)
    scheduler_tick: str = "30s"
    catch_up_grace: str = "15m"


@attrs.define
class _RawSlack:
    bot_token: str | None = None
    signing_secret: str | None = None
    app_token: str | None = None
    client_id: str | None = None
    client_secret: str | None = None
    default_channel: str | None = None
    api_url: str | None = None
    public_url: str | None = None
    trusted_email_header: str | None = None
    answer_workers: int = 4


@attrs.define
class _RawNotifications:
    default_channel: str | None = None
    schedule_started: str | None = None
    schedule_stopped: str | None = None
    action_failed: str | None = None
    manual_override: str | None = None
    approval_requested: str | None = None
    approval_decided: str | None = None
    approval_expired: str | None = None
    needs_attention: str | None = None


@attrs.define
class _RawAttention:
    interval: str = "5m"
    stuck_after: str = "15m"
    settle: str = "10m"
    max_enforce_attempts: int = 3


@attrs.define
class _RawPagerDuty:
    routing_key: str | None = None
    severity: str = "error"
    api_token: str | None = None
    events_url: str | None = None
    api_url: str | None = None


@attrs.define
class _RawOnCall:
    schedule: str | None = None
    escalation_policy: str | None = None
    slack_usergroup: str | None = None


@attrs.define
class _RawAccount:
    email: str
    role: str = "viewer"
    collections: list[str] = attrs.Factory(list)
    name: str = ""


@attrs.define
class _RawChannel:
    channel: str
    commands: list[str] = attrs.Factory(lambda: ["all"])
    collections: list[str] = attrs.Factory(lambda: ["*"])
    approvals: bool = False


@attrs.define
class _RawApprovers:
    channel: str | None = None
    usergroup: str | None = None
    accounts: list[str] = attrs.Factory(list)


@attrs.define
class _RawApproval:
    collections: list[str]
    approvers: _RawApprovers
    timeout: str = "30m"
    actions: list[str] = attrs.Factory(lambda: ["start"])


@attrs.define
class _RawSchedule:
    on: list[str]
    timezone: str | None = None
    except_: list[str] = attrs.Factory(list)
    except_ics: list[str] = attrs.Factory(list)


@attrs.define
class _RawResource:
    provider: str
    kind: str
    id: str
    name: str = ""
    region: str = ""
    size: str | None = None
    stage: int = 0
    account: str | None = None
    hourly_price: str | None = None
    tags: dict[str, str] = attrs.Factory(dict)


@attrs.define
class _RawSelector:
    provider: str
    regions: list[str] = attrs.Factory(list)
    tags: dict[str, str] = attrs.Factory(dict)
    kinds: list[str] = attrs.Factory(list)
    account: str | None = None


@attrs.define
class _RawCollection:
    id: str
    name: str = ""
    env: str = ""
    schedule: str | None = None
    slack_channel: str | None = None
    confirm_start: bool = False
    confirm_stop: bool = True
    description: str = ""
    resources: list[_RawResource] = attrs.Factory(list)
    select: list[_RawSelector] = attrs.Factory(list)
    policy: str = "notify"
    oncall: bool = False
    pagerduty_routing_key: str | None = None
    pagerduty_severity: str | None = None


@attrs.define
class _RawConfig:
    nightops: _RawNightOps = attrs.Factory(_RawNightOps)
    slack: _RawSlack | None = None
    notifications: _RawNotifications = attrs.Factory(_RawNotifications)
    attention: _RawAttention = attrs.Factory(_RawAttention)
    pagerduty: _RawPagerDuty | None = None
    oncall: _RawOnCall = attrs.Factory(_RawOnCall)
    providers: dict[str, dict[str, Any]] = attrs.Factory(dict)
    prices: dict[str, dict[str, Any]] = attrs.Factory(dict)
    accounts: list[_RawAccount] = attrs.Factory(list)
    channels: list[_RawChannel] = attrs.Factory(list)
    approvals: list[_RawApproval] = attrs.Factory(list)
    schedules: dict[str, _RawSchedule] = attrs.Factory(dict)
    collections: list[_RawCollection] = attrs.Factory(list)


def _make_converter() -> cattrs.Converter:
    converter = cattrs.Converter(forbid_extra_keys=True)

    def str_or_list(value: Any, _: type) -> list[str]:
        if isinstance(value, str):
            return [value]
        if isinstance(value, list) and all(isinstance(v, str) for v in value):
            return value
        raise ValueError(f"expected a string or a list of strings, got {value!r}")

    approvers_table = cattrs.gen.make_dict_structure_fn(
        _RawApprovers, converter, _cattrs_forbid_extra_keys=True
    )

    def approvers(value: Any, _: type) -> _RawApprovers:
        # approvers = "#channel" | ["bob@x", "#channel", "@group"] | {channel=…, usergroup=…}
        if isinstance(value, dict):
            return approvers_table(value, _RawApprovers)
        items = str_or_list(value, list)
        result = _RawApprovers()
        for item in items:
            if item.startswith("#") or re.fullmatch(r"[CG][A-Z0-9]{6,}", item):
                if result.channel is not None:  # keeping only one would drop approvers
                    raise ValueError(f"one channel only: {result.channel!r} and {item!r}")
                result.channel = item
            elif item.startswith("@") or re.fullmatch(r"S[A-Z0-9]{6,}", item):
                if result.usergroup is not None:
                    raise ValueError(f"one user group only: {result.usergroup!r} and {item!r}")
                result.usergroup = item
            else:
                result.accounts.append(item)
        return result

    def price(value: Any, _: type) -> str | None:
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int | float | str):
            raise ValueError(f"expected an hourly price like 0.0416, got {value!r}")
        return str(value)

    converter.register_structure_hook(_RawApprovers, approvers)
    converter.register_structure_hook(str | None, lambda v, _: _optional_str(v))
    # TOML has types: "yes" is not a boolean, 1.5 not a stage, 123 not a name.
    converter.register_structure_hook(str, lambda v, _: _strict(v, str, "a string"))
    converter.register_structure_hook(bool, lambda v, _: _strict(v, bool, "true or false"))
    converter.register_structure_hook(int, lambda v, _: _strict(v, int, "a whole number"))
    converter.register_structure_hook_func(_is_list, _strict_list(converter))
    # A list of strings may be written as one string: commands = "all".
    converter.register_structure_hook_func(lambda t: t == list[str], str_or_list)
    raw_resource = cattrs.gen.make_dict_structure_fn(
        _RawResource,
        converter,
        _cattrs_forbid_extra_keys=True,
        hourly_price=cattrs.gen.override(struct_hook=price),
    )
    converter.register_structure_hook(_RawResource, raw_resource)
    raw_schedule = cattrs.gen.make_dict_structure_fn(
        _RawSchedule,
        converter,
        _cattrs_forbid_extra_keys=True,
        except_=cattrs.gen.override(rename="except"),
    )
    converter.register_structure_hook(_RawSchedule, raw_schedule)
    return converter


def _strict(value: Any, type_: type, expected: str) -> Any:
    if isinstance(value, type_) and (type_ is bool or not isinstance(value, bool)):
        return value
    raise ValueError(f"expected {expected}, got {value!r}")


def _is_list(type_: Any) -> bool:
    return getattr(type_, "__origin__", None) is list


def _strict_list(converter: cattrs.Converter) -> Callable[[Any, Any], list[Any]]:
    """A list hook that refuses a non-list (cattrs would iterate a string's letters)."""

    def structure(value: Any, type_: Any) -> list[Any]:
        if not isinstance(value, list):
            raise ValueError(f"expected a list [...], got {value!r}")
        (item_type,) = type_.__args__
        hook = converter.get_structure_hook(item_type)
        result, errors = [], []
        for i, item in enumerate(value):
            try:
                result.append(hook(item, item_type))
            except Exception as exc:  # noqa: BLE001 - collected and re-raised as a group
                note = IterableValidationNote(f"Structuring {type_} @ index {i}", i, item_type)
                exc.add_note(note)
                errors.append(exc)
        if errors:
            raise IterableValidationError(f"While structuring {type_!r}", errors, type_)
        return result

    return structure


def _optional_str(value: Any) -> str | None:
    if value is None or isinstance(value, str):
        return value
    raise ValueError(f"expected a string, got {value!r}")


# --- the validated result -------------------------------------------------------------------


@attrs.frozen
class SlackConfig:
    """Slack credentials and options (only present when the file has a [slack] table)."""

    bot_token: Secret | None = None
    signing_secret: Secret | None = None
    app_token: Secret | None = None
    client_id: str | None = None
    client_secret: Secret | None = None
    default_channel: str | None = None
    api_url: str | None = None
    #: Where people reach this deployment (link page, OAuth redirect), e.g. https://nightops.example.com
    public_url: str | None = None
    #: The header an authenticating proxy sets to the signed-in person's email.
    trusted_email_header: str | None = None
    #: Threads that compute answers after the ack (cloud reads are I/O: more is faster;
    #: fewer keeps acks quick when the machine is CPU-bound).
    answer_workers: int = 4


@attrs.frozen(eq=False)
class Config:
    """A loaded configuration: the core's settings plus what only the host needs."""

    settings: Settings
    state_url: str = attrs.field(repr=lambda url: repr(_hide_password(url)))
    providers: Mapping[str, Mapping[str, Any]] = attrs.field(repr=False)  # may hold secrets
    slack: SlackConfig | None = None
    source: str = "<memory>"
    scheduler_tick: timedelta = timedelta(seconds=30)
    catch_up_grace: timedelta = timedelta(minutes=15)
    #: The reconciliation pass: interval, thresholds, per-collection policies, PagerDuty.
    attention: AttentionSettings = attrs.field(factory=AttentionSettings)
    #: ``[prices.<provider>.<kind>]`` tables: (provider, kind, size) -> hourly price.
    price_overrides: Mapping[tuple[str, str, str], Money] = attrs.field(factory=dict)

    @property
    def shown_state_url(self) -> str:
        """``state_url`` with its password (if any) replaced by ``***``, for output."""
        return _hide_password(self.state_url)

    @property
    def provider_names(self) -> set[str]:
        names = {r.provider for c in self.settings.collections for r in c.resources}
        names |= {s.provider for c in self.settings.collections for s in c.selectors}
        return names


def _hide_password(url: str) -> str:
    return re.sub(r"^([a-z][a-z0-9+.-]*://[^:/@]*):[^/]*@", r"\1:***@", url)


def load_config(path: str | Path, env: Mapping[str, str] | None = None) -> Config:
    """Read and validate a TOML file. Relative SQLite paths are taken relative to the file."""
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{file}: no such file. Pass the path of your nightops.toml.") from None
    except OSError as exc:
        raise ConfigError(f"{file}: cannot read it ({exc.strerror}).") from None
    return parse_config(text, env=env, source=str(file), base_dir=file.parent)


def parse_config(
    text: str,
    *,
    env: Mapping[str, str] | None = None,
    source: str = "<string>",
    base_dir: Path | None = None,
) -> Config:
    """Validate TOML text. Raises ConfigError listing every problem with its key path."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{source}: not valid TOML: {exc}") from None
    errors: list[str] = []
    env = os.environ if env is None else env
    data = _substitute(data, env, "", errors)
    # Values read from the environment may be secrets: never echo them in a message.
    hide = {env[n]: n for n in _ENV_REF.findall(text) if n in env and len(env[n]) >= 4}
    if errors:
        raise _config_error(source, errors, hide)
    try:
        raw = _make_converter().structure(data, _RawConfig)
    except (ClassValidationError, IterableValidationError, ForbiddenExtraKeysError) as exc:
        raise _config_error(source, _shape_errors(exc), hide) from None
    config = _Validator(errors, env).build(raw, source, base_dir)
    if errors:
        raise _config_error(source, errors, hide)
    assert config is not None
    return config


def _config_error(source: str, errors: list[str], hide: Mapping[str, str]) -> ConfigError:
    noun = "problem" if len(errors) == 1 else "problems"
    lines = "\n".join(f"  - {e}" for e in errors)
    for value in sorted(hide, key=len, reverse=True):
        lines = lines.replace(value, f"${{{hide[value]}}}")
    return ConfigError(f"{source}: {len(errors)} {noun}:\n{lines}")


def _shape_errors(exc: Exception) -> list[str]:
    messages = cattrs.transform_error(exc, path="$", format_exception=_format_exception)
    out = []
    for message in messages:
        # "required field missing @ $.collections[0].id" -> "collections[0].id: required ..."
        text, _, where = message.rpartition(" @ ")
        key = where.removeprefix("$").removeprefix(".") or "(top level)"
        out.append(f"{key}: {text}")
    return out


def _format_exception(exc: BaseException, type_: type | None) -> str:
    if isinstance(exc, KeyError):
        return "required key is missing"
    if isinstance(exc, ForbiddenExtraKeysError):
        allowed = sorted(f.name for f in attrs.fields(exc.cl)) if attrs.has(exc.cl) else []
        allowed = [a.rstrip("_") for a in allowed]
        hints = []
        for key in sorted(exc.extra_fields):
            close = difflib.get_close_matches(key, allowed, n=1)
            hints.append(f"'{key}'" + (f" (did you mean '{close[0]}'?)" if close else ""))
        return f"unknown key {', '.join(hints)}; allowed: {', '.join(allowed)}"
    if isinstance(exc, AttributeError | TypeError) and _is_table(type_):  # given a str, int, …
        return "expected a table ({ key = value, … } or a [section])"
    if isinstance(exc, ValueError | TypeError):
        name = getattr(type_, "__name__", str(type_))
        text = str(exc)
        if "invalid literal" in text or "could not convert" in text:
            return f"expected {name}"
        return text if text else f"expected {name}"
    return str(exc)


def _is_table(type_: Any) -> bool:
    """Is ``type_`` (or ``type_ | None``) structured from a TOML table?"""
    options = typing.get_args(type_) if isinstance(type_, types.UnionType) else (type_,)
    return any(
        t is not type(None) and (attrs.has(t) or typing.get_origin(t) is dict) for t in options
    )


def _substitute(value: Any, env: Mapping[str, str], path: str, errors: list[str]) -> Any:
    if isinstance(value, str):

        def repl(match: re.Match[str]) -> str:
            name = match.group(1)
            if name not in env:
                errors.append(f"{path}: environment variable {name} is not set")
                return ""
            return env[name]

        return _ENV_REF.sub(repl, value)
    if isinstance(value, dict):
        return {
            k: _substitute(v, env, f"{path}.{k}" if path else k, errors) for k, v in value.items()
        }
    if isinstance(value, list):
        return [_substitute(v, env, f"{path}[{i}]", errors) for i, v in enumerate(value)]
    return value


def _suggest(word: str, choices: Iterable[str]) -> str:
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f"; did you mean '{close[0]}'?" if close else ""


_TICK = timedelta(seconds=30)
_GRACE = timedelta(minutes=15)


class _Validator:
    def __init__(self, errors: list[str], env: Mapping[str, str]) -> None:
        self.errors = errors
        self.env = env
        self.base_dir: Path | None = None

    def fail(self, path: str, message: str) -> None:
        self.errors.append(f"{path}: {message}")

    def build(self, raw: _RawConfig, source: str, base_dir: Path | None) -> Config | None:
        self.base_dir = base_dir
        schedules = self.schedules(raw)
        tick = self.duration("nightops.scheduler_tick", raw.nightops.scheduler_tick, _TICK)
        grace = self.duration("nightops.catch_up_grace", raw.nightops.catch_up_grace, _GRACE)
        accounts = self.accounts(raw.accounts)
        rules = self.channels(raw.channels)
        approvals = self.approvals(raw.approvals)
        collections = self.collections(raw.collections, set(raw.schedules))
        notifications = self.notifications(raw)
        attention = self.attention(raw)
        state_url = self.state(raw.nightops.state, base_dir)
        self.timezone("nightops.timezone", raw.nightops.timezone)
        if self.errors:
            return None
        settings = Settings(
            collections=collections,
            schedules=schedules,
            channel_rules=rules,
            accounts=accounts,
            approval_rules=approvals,
            notifications=notifications,
            sso_domains=tuple(d.lower().lstrip("@") for d in raw.nightops.sso_domains),
            timezone=raw.nightops.timezone,
        )
        return Config(
            settings=settings,
            state_url=state_url,
            providers={k: dict(v) for k, v in raw.providers.items()},
            slack=self.slack(raw.slack),
            source=source,
            scheduler_tick=tick,
            catch_up_grace=grace,
            attention=attention,
            price_overrides=self.prices(raw.prices),
        )

    def timezone(self, path: str, name: str) -> None:
        try:
            parse_schedule([], name)
        except ScheduleError as exc:
            self.fail(path, exc.message)

    def state(self, url: str, base_dir: Path | None) -> str:
        if url.startswith("sqlite:///"):
            file = Path(url.removeprefix("sqlite:///"))
            if url == "sqlite:///:memory:":
                return url
            if not file.is_absolute() and base_dir is not None:
                file = base_dir / file
            return f"sqlite:///{file}"
        if url.startswith(("postgresql://", "postgres://")):
            return url
        self.fail(
            "nightops.state",
            f"'{url}' is not a state URL: use sqlite:///path/to/state.db or "
            "postgresql://user@host/dbname",
        )
        return url

    def schedules(self, raw: _RawConfig) -> dict[str, Schedule]:
        result = {}
        for name, item in raw.schedules.items():
            holidays: set[str | date] = set(item.except_)
            for i, file in enumerate(item.except_ics):
                path = Path(file)
                if not path.is_absolute() and self.base_dir is not None:
                    path = self.base_dir / path
                try:
                    holidays |= dates_from_ics(path)
                except ConfigError as exc:
                    self.fail(f"schedules.{name}.except_ics[{i}]", exc.message)
            try:
                result[name] = parse_schedule(
                    item.on, item.timezone or raw.nightops.timezone, holidays, name=name
                )
            except ScheduleError as exc:
                self.fail(f"schedules.{name}", exc.message)
        return result

    def prices(self, raw: dict[str, dict[str, Any]]) -> dict[tuple[str, str, str], Money]:
        result = {}
        for provider, kinds in raw.items():
            for kind, sizes in kinds.items():
                if not isinstance(sizes, dict):
                    self.fail(
                        f"prices.{provider}.{kind}",
                        'expected a table of sizes, e.g. [prices.aws.ec2] "t3.medium" = "0.0416"',
                    )
                    continue
                for size, value in sizes.items():
                    path = f'prices.{provider}.{kind}."{size}"'
                    try:
                        if isinstance(value, bool) or not isinstance(value, int | float | str):
                            raise InvalidOperation
                        amount = Decimal(str(value))
                        if amount < 0 or not amount.is_finite():
                            raise InvalidOperation
                    except InvalidOperation:
                        self.fail(path, f"'{value}' is not a price: write dollars per hour")
                        continue
                    result[(provider, kind, size)] = Money(amount)
        return result

    def positive(self, path: str, value: int, default: int) -> int:
        if value < 1:
            self.fail(path, f"{value} is not a positive whole number of threads")
            return default
        return value

    def duration(self, path: str, text: str, default: timedelta) -> timedelta:
        try:
            return parse_duration(text)
        except NightOpsError as exc:
            self.fail(path, exc.message)
            return default

    def accounts(self, raw: list[_RawAccount]) -> tuple[Account, ...]:
        result = []
        seen: set[str] = set()
        roles = [r.value for r in Role]
        for i, item in enumerate(raw):
            path = f"accounts[{i}]"
            if "@" not in item.email:
                self.fail(f"{path}.email", f"'{item.email}' is not an email address")
            if item.email.lower() in seen:
                self.fail(f"{path}.email", f"{item.email} is listed twice")
            seen.add(item.email.lower())
            if item.role not in roles:
                self.fail(
                    f"{path}.role",
                    f"unknown role '{item.role}'{_suggest(item.role, roles)} "
                    f"(roles: {', '.join(roles)})",
                )
                continue
            result.append(Account(item.email, Role(item.role), tuple(item.collections), item.name))
        return tuple(result)

    def channels(self, raw: list[_RawChannel]) -> tuple[ChannelRule, ...]:
        result = []
        known = sorted(ALL_COMMANDS)
        for i, item in enumerate(raw):
            bad = [c for c in item.commands if c != "all" and c not in ALL_COMMANDS]
            for command in bad:
                self.fail(
                    f"channels[{i}].commands",
                    f"unknown command '{command}'{_suggest(command, known)} "
                    f'(use "all" or some of: {", ".join(known)})',
                )
            if not bad:
                result.append(
                    ChannelRule(
                        item.channel,
                        frozenset(item.commands),
                        tuple(item.collections),
                        item.approvals,
                    )
                )
        return tuple(result)

    def approvals(self, raw: list[_RawApproval]) -> tuple[ApprovalRule, ...]:
        result = []
        for i, item in enumerate(raw):
            path = f"approvals[{i}]"
            approvers = item.approvers
            if not (approvers.channel or approvers.usergroup or approvers.accounts):
                self.fail(
                    f"{path}.approvers",
                    'name who decides: a channel ("#approvers"), a user group ("@oncall") '
                    "or account emails",
                )
                continue
            for action in item.actions:
                if action not in ("start", "stop"):
                    self.fail(f"{path}.actions", f"'{action}' is not start or stop")
            try:
                timeout = parse_duration(item.timeout) if item.timeout else DEFAULT_TIMEOUT
            except NightOpsError as exc:
                self.fail(f"{path}.timeout", exc.message)
                continue
            result.append(
                ApprovalRule(
                    tuple(item.collections),
                    Approvers(
                        approvers.channel,
                        approvers.usergroup,
                        frozenset(a.lower() for a in approvers.accounts),
                    ),
                    timeout,
                    frozenset(item.actions),
                )
            )
        return tuple(result)

    def collections(self, raw: list[_RawCollection], schedules: set[str]) -> tuple[Collection, ...]:
        result = []
        ids: set[str] = set()
        for i, item in enumerate(raw):
            path = f"collections[{i}]"
            if not _COLLECTION_ID.match(item.id):
                self.fail(
                    f"{path}.id",
                    f"'{item.id}' is not a collection id: use lowercase letters, digits and "
                    "dashes, e.g. staging-api",
                )
            if item.id in ids:
                self.fail(f"{path}.id", f"collection id '{item.id}' is used twice")
            ids.add(item.id)
            if item.schedule is not None and item.schedule not in schedules:
                self.fail(
                    f"{path}.schedule",
                    f"unknown schedule '{item.schedule}'"
                    + _suggest(item.schedule, sorted(schedules))
                    + ("" if schedules else " (there is no [schedules.NAME] table)"),
                )
            if not item.resources and not item.select:
                self.fail(path, f"collection '{item.id}' has no resources and no select rule")
            resources = tuple(
                self.resource(f"{path}.resources[{j}]", r) for j, r in enumerate(item.resources)
            )
            keys = [r.key for r in resources]
            for j, key in enumerate(keys):
                if keys.index(key) != j:
                    self.fail(f"{path}.resources[{j}]", f"resource {key.id} is listed twice")
            result.append(
                Collection(
                    id=item.id,
                    name=item.name,
                    env=item.env,
                    resources=resources,
                    selectors=tuple(
                        Selector(s.provider, tuple(s.regions), s.tags, tuple(s.kinds), s.account)
                        for s in item.select
                    ),
                    schedule=item.schedule,
                    slack_channel=item.slack_channel,
                    confirm_start=item.confirm_start,
                    confirm_stop=item.confirm_stop,
                    description=item.description,
                )
            )
        return tuple(result)

    def resource(self, path: str, item: _RawResource) -> Resource:
        price = None
        if item.hourly_price is not None:
            try:
                amount = Decimal(item.hourly_price)
                if amount < 0 or not amount.is_finite():
                    raise InvalidOperation
                price = Money(amount)
            except InvalidOperation:
                self.fail(
                    f"{path}.hourly_price",
                    f"'{item.hourly_price}' is not a price: write dollars per hour, e.g. 0.0416",
                )
        return Resource(
            provider=item.provider,
            kind=item.kind,
            id=item.id,
            name=item.name,
            region=item.region,
            size=item.size,
            stage=item.stage,
            account=item.account,
            hourly_price=price,
            tags=item.tags,
        )

    def notifications(self, raw: _RawConfig) -> NotificationSettings:
        routes = []
        values = [r.value for r in Route]
        for kind in NotificationKind:
            value = getattr(raw.notifications, kind.value)
            if value is None:
                continue
            if value not in values:
                self.fail(
                    f"notifications.{kind.value}",
                    f"'{value}' is not a route{_suggest(value, values)} (use {', '.join(values)})",
                )
                continue
            routes.append((kind, Route(value)))
        default = raw.notifications.default_channel or (
            raw.slack.default_channel if raw.slack else None
        )
        return NotificationSettings(default_channel=default, routes=tuple(routes))

    def attention(self, raw: _RawConfig) -> AttentionSettings:
        a = raw.attention
        interval = self.duration("attention.interval", a.interval, timedelta(minutes=5))
        stuck = self.duration("attention.stuck_after", a.stuck_after, timedelta(minutes=15))
        settle = self.duration("attention.settle", a.settle, timedelta(minutes=10))
        if a.max_enforce_attempts < 1:
            self.fail("attention.max_enforce_attempts", "must be at least 1")
        pd = raw.pagerduty
        if pd is not None:
            if pd.severity not in SEVERITIES:
                self.fail(
                    "pagerduty.severity",
                    f"'{pd.severity}' is not a severity{_suggest(pd.severity, SEVERITIES)} "
                    f"(use {', '.join(SEVERITIES)})",
                )
            for key in ("events_url", "api_url"):
                url = getattr(pd, key)
                if url is not None and not url.startswith("https://"):
                    self.fail(f"pagerduty.{key}", f"'{url}' must start with https://")
        oncall = raw.oncall
        if (oncall.schedule or oncall.escalation_policy) and not (pd and pd.api_token):
            self.fail(
                "oncall",
                "finding who is on call in PagerDuty needs [pagerduty] api_token "
                "(a read-only REST API key)",
            )
        policies = {}
        values = [p.value for p in Policy]
        for i, item in enumerate(raw.collections):
            path = f"collections[{i}]"
            if item.policy not in values:
                self.fail(
                    f"{path}.policy",
                    f"'{item.policy}' is not a policy{_suggest(item.policy, values)} "
                    f"(use {', '.join(values)})",
                )
                continue
            if item.pagerduty_severity is not None and item.pagerduty_severity not in SEVERITIES:
                self.fail(
                    f"{path}.pagerduty_severity",
                    f"'{item.pagerduty_severity}' is not a severity (use {', '.join(SEVERITIES)})",
                )
            paged = item.oncall or item.pagerduty_routing_key is not None
            if paged and not (item.pagerduty_routing_key or (pd and pd.routing_key)):
                self.fail(
                    f"{path}.oncall",
                    "paging on-call needs a routing key: set [pagerduty] routing_key or "
                    "pagerduty_routing_key here",
                )
            policies[item.id] = CollectionPolicy(
                Policy(item.policy),
                item.oncall,
                item.pagerduty_routing_key,
                item.pagerduty_severity,
            )
        pagerduty = None
        if pd is not None:
            pagerduty = PagerDutySettings(
                pd.routing_key, pd.severity, pd.api_token, pd.events_url, pd.api_url
            )
        return AttentionSettings(
            interval=interval,
            thresholds=Thresholds(stuck_after=stuck, settle=settle),
            max_enforce_attempts=a.max_enforce_attempts,
            collections=policies,
            pagerduty=pagerduty,
            oncall=OnCallSettings(
                oncall.schedule, oncall.escalation_policy, oncall.slack_usergroup
            ),
        )

    def slack(self, raw: _RawSlack | None) -> SlackConfig | None:
        if raw is None:
            return None

        def secret(value: str | None, name: str) -> Secret | None:
            return Secret(value, f"slack.{name}") if value else None

        return SlackConfig(
            bot_token=secret(raw.bot_token, "bot_token"),
            signing_secret=secret(raw.signing_secret, "signing_secret"),
            app_token=secret(raw.app_token, "app_token"),
            client_id=raw.client_id,
            client_secret=secret(raw.client_secret, "client_secret"),
            default_channel=raw.default_channel,
            api_url=raw.api_url,
            public_url=raw.public_url,
            trusted_email_header=raw.trusted_email_header,
            answer_workers=self.positive("slack.answer_workers", raw.answer_workers, 4),
        )

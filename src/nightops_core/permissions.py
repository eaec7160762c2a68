"""Who may do what, where: channel rules x user accounts -> a Decision.

Rules only grant; everything else is denied. A mutating command needs BOTH the channel
and the user to allow it for that collection. Globs are compiled once, in :class:`Policy`.

Channel rules name a channel by name (``#qa-team`` or ``qa-team``, compared without the
``#`` and case-insensitively), by Slack ID (``C0123ABC``: upper case, starting with C, G or
D, with at least one digit; compared exactly), or by a glob of either (``#nightops-*``).
An ID rule never matches a channel *name*, so nobody can borrow a rule by creating a
channel whose name spells another channel's ID.
"""

from __future__ import annotations

import enum
import fnmatch
import functools
import re
from collections.abc import Iterable, Sequence

import attrs

__all__ = [
    "ALL_COMMANDS",
    "MUTATING_COMMANDS",
    "PERSONAL_COMMANDS",
    "READ_COMMANDS",
    "Account",
    "Channel",
    "ChannelRule",
    "Decision",
    "Policy",
    "Refuser",
    "Role",
    "glob_matches",
    "is_channel_id",
]

#: Commands anyone may run in any channel (they reveal nothing or only the actor's own data).
PERSONAL_COMMANDS = frozenset({"help", "whoami", "link"})
#: Commands a channel without a rule still allows.
READ_COMMANDS = frozenset({"status", "list", "help"})
#: Commands that change cloud state.
MUTATING_COMMANDS = frozenset({"start", "stop"})
ALL_COMMANDS = frozenset({"help", "status", "list", "start", "stop", "schedule", "link", "whoami"})

#: The word in a rule's ``commands`` that grants every command.
_ALL = "all"
_GLOB_CHARS = frozenset("*?[")
# Slack conversation IDs: C (public), G (private / group), D (DM), then upper-case letters
# and digits. We require a digit so that a shouted name such as "DEVOPS" stays a name.
_CHANNEL_ID = re.compile(r"[CGD](?=[A-Z0-9*?\[\]!]*[0-9])[A-Z0-9*?\[\]!]{2,}")


def _strings(values: str | Iterable[str]) -> tuple[str, ...]:
    # Named converters keep the constructors typed for mypy (``converter=tuple`` makes the
    # parameter a bare generic); a lone string is one item, not a sequence of characters.
    return (values,) if isinstance(values, str) else tuple(values)


def _string_set(values: str | Iterable[str]) -> frozenset[str]:
    return frozenset(_strings(values))


def _lower(text: str) -> str:
    # A named function: mypy's attrs plugin does not accept ``str.lower`` as a converter.
    return text.strip().lower()


class Role(enum.Enum):
    """viewer: read only. member: start/stop on their collection globs. admin: like member,
    and their globs default to every collection."""

    VIEWER = "viewer"
    MEMBER = "member"
    ADMIN = "admin"


@attrs.frozen
class Account:
    """A person NightOps knows: email (the identity), role, collection globs."""

    email: str = attrs.field(converter=_lower)
    role: Role = Role.VIEWER
    collections: tuple[str, ...] = attrs.field(default=(), converter=_strings)
    name: str = ""

    @property
    def effective_collections(self) -> tuple[str, ...]:
        """The collection globs this account may change: its own, or ``*`` for an admin
        without any (a member without any may change nothing)."""
        if not self.collections and self.role is Role.ADMIN:
            return ("*",)
        return self.collections


@attrs.frozen
class Channel:
    """Where a command was typed. Either may be unknown; rules match on both."""

    id: str | None = None
    name: str | None = None

    def __str__(self) -> str:
        if self.name:
            return self.name if self.name.startswith("#") else f"#{self.name}"
        return self.id or "this channel"


@attrs.frozen
class ChannelRule:
    """Grant, in channels matching ``channel`` (name like ``#qa-team``, an ID like
    ``C0123``, or a glob such as ``#nightops-*``), the ``commands`` (``"all"`` or a list)
    on collections matching ``collections`` globs; ``approvals`` lets approvals be
    decided there."""

    channel: str
    commands: frozenset[str] = attrs.field(default=frozenset({"all"}), converter=_string_set)
    collections: tuple[str, ...] = attrs.field(default=("*",), converter=_strings)
    approvals: bool = False


class Refuser(enum.Enum):
    """Which of the two checks refused a command: the channel's rules or the user's access."""

    CHANNEL = "channel"
    USER = "user"


@attrs.frozen
class Decision:
    """Outcome of a permission check. ``reason`` always says why; when refused,
    ``refused_by`` says whether the channel or the user refused and ``reason`` how to fix it."""

    allowed: bool
    reason: str
    refused_by: Refuser | None = None

    def __bool__(self) -> bool:
        return self.allowed


# --- globs -------------------------------------------------------------------------------------


@functools.lru_cache(maxsize=4096)
def _glob_regex(pattern: str) -> re.Pattern[str]:
    """One compiled, case-sensitive regex for an fnmatch glob (shared by equal globs)."""
    return re.compile(fnmatch.translate(pattern))


def glob_matches(globs: Iterable[str], value: str) -> str | None:
    """The first of ``globs`` (fnmatch syntax, case-sensitive) that matches ``value``."""
    for glob in globs:
        if _glob_regex(glob).match(value):
            return glob
    return None


def is_channel_id(text: str) -> bool:
    """Does ``text`` (without a leading ``#``) look like a Slack channel ID or a glob of IDs?"""
    return _CHANNEL_ID.fullmatch(text) is not None


def _has_glob(text: str) -> bool:
    return not _GLOB_CHARS.isdisjoint(text)


def _normalise_name(name: str) -> str:
    return name.removeprefix("#").lower()


def _literal_prefix(glob: str) -> str:
    for i, char in enumerate(glob):
        if char in _GLOB_CHARS:
            return glob[:i]
    return glob


def _join(words: Iterable[str]) -> str:
    items = list(words)
    if len(items) <= 1:
        return "".join(items)
    return f"{', '.join(items[:-1])} and {items[-1]}"


class _CompiledRule:
    """A :class:`ChannelRule` with its globs compiled."""

    __slots__ = (
        "collections",
        "commands",
        "grants_all",
        "is_id",
        "pattern",
        "position",
        "rule",
        "shown",
    )

    def __init__(self, rule: ChannelRule, position: int) -> None:
        self.rule = rule
        self.position = position
        text = rule.channel.strip()
        self.is_id = not text.startswith("#") and is_channel_id(text)
        self.pattern = text if self.is_id else _normalise_name(text)
        # How the rule is named in messages: "#dev-team", "C0123ABC", "#nightops-*".
        self.shown = text if self.is_id else f"#{self.pattern}"
        self.commands = rule.commands
        self.grants_all = _ALL in rule.commands
        patterns = [f"(?:{fnmatch.translate(glob)})" for glob in rule.collections]
        self.collections = re.compile("|".join(patterns)) if patterns else None

    def grants(self, command: str) -> bool:
        return self.grants_all or command in self.commands

    def covers(self, collection_id: str | None) -> bool:
        """Does a collection glob match (``None``: any collection at all)?"""
        if self.collections is None:
            return False
        return collection_id is None or self.collections.match(collection_id) is not None

    def allows(self, command: str, collection_id: str | None) -> bool:
        return self.grants(command) and self.covers(collection_id)


def _position(rule: _CompiledRule) -> int:
    return rule.position


class _GlobIndex:
    """Glob rules keyed by their literal prefix, so a lookup tries only the rules whose
    prefix the value starts with, not every glob rule."""

    __slots__ = ("_by_prefix", "_lengths")

    def __init__(self) -> None:
        self._by_prefix: dict[str, list[tuple[re.Pattern[str], _CompiledRule]]] = {}
        self._lengths: tuple[int, ...] = ()

    def add(self, pattern: str, rule: _CompiledRule, *, ignore_case: bool) -> None:
        prefix = _literal_prefix(pattern)
        flags = re.IGNORECASE if ignore_case else 0
        regex = re.compile(fnmatch.translate(pattern), flags)
        self._by_prefix.setdefault(prefix, []).append((regex, rule))
        self._lengths = tuple(sorted({len(p) for p in self._by_prefix}))

    def match(self, value: str, out: list[_CompiledRule]) -> None:
        by_prefix = self._by_prefix
        for length in self._lengths:
            if length > len(value):
                break
            candidates = by_prefix.get(value[:length])
            if candidates:
                out.extend(rule for regex, rule in candidates if regex.match(value))


def _on(collection_id: str | None) -> str:
    return f" on {collection_id}" if collection_id else ""


def _rules_refusal(
    rules: Sequence[_CompiledRule], channel: Channel, command: str, collection_id: str | None
) -> str:
    """Why the channel's rules do not allow ``command`` on ``collection_id``."""
    commanding = [r for r in rules if r.grants(command)]
    if commanding:
        globs = dict.fromkeys(g for r in commanding for g in r.rule.collections)
        detail = f"its rules allow {command} only on {_join(globs)}" if globs else ""
    else:
        granted = {c for r in rules for c in (ALL_COMMANDS if r.grants_all else r.commands)}
        useful = sorted((granted & ALL_COMMANDS) - PERSONAL_COMMANDS)
        detail = f"its rules allow only {_join(useful)}" if useful else ""
    detail = detail or "its rules allow no commands on any collection"
    return f"{channel} does not allow {command}{_on(collection_id)} ({detail})."


class Policy:
    """Compiled channel rules and accounts; answers permission questions quickly.

    Exact channel rules are indexed by ID and by normalised name; glob rules by their literal
    prefix. A check costs a few dictionary look-ups plus the regexes of the rules that can
    match, whatever the number of rules and accounts.
    """

    def __init__(self, rules: Iterable[ChannelRule], accounts: Iterable[Account]) -> None:
        self._rules: tuple[_CompiledRule, ...] = tuple(
            _CompiledRule(r, i) for i, r in enumerate(rules)
        )
        self._by_id: dict[str, list[_CompiledRule]] = {}
        self._by_name: dict[str, list[_CompiledRule]] = {}
        self._id_globs = _GlobIndex()
        self._name_globs = _GlobIndex()
        for rule in self._rules:
            if _has_glob(rule.pattern):
                index = self._id_globs if rule.is_id else self._name_globs
                index.add(rule.pattern, rule, ignore_case=not rule.is_id)
            else:
                exact = self._by_id if rule.is_id else self._by_name
                exact.setdefault(rule.pattern, []).append(rule)
        self._accounts: dict[str, Account] = {}
        for account in accounts:
            # The first entry for an email wins; duplicates are a config error reported there.
            self._accounts.setdefault(account.email, account)
        self._suggestions: dict[tuple[str, str | None], str | None] = {}

    @property
    def rules(self) -> tuple[ChannelRule, ...]:
        """The channel rules, in configuration order."""
        return tuple(r.rule for r in self._rules)

    def account(self, email: str | None) -> Account | None:
        """The configured account for ``email`` (case-insensitive), if any."""
        if not email:
            return None
        return self._accounts.get(email.strip().lower())

    def rules_for(self, channel: Channel) -> tuple[ChannelRule, ...]:
        """Every rule that matches ``channel`` (by ID or by name), in configuration order."""
        return tuple(r.rule for r in self._matching(channel))

    def _matching(self, channel: Channel) -> list[_CompiledRule]:
        found: list[_CompiledRule] = []
        if channel.id:
            found.extend(self._by_id.get(channel.id, ()))
            self._id_globs.match(channel.id, found)
        if channel.name:
            name = _normalise_name(channel.name)
            found.extend(self._by_name.get(name, ()))
            self._name_globs.match(name, found)
        if len(found) > 1:
            # Each rule sits in exactly one index, so no duplicates; messages and the allowed
            # reason name rules in configuration order.
            found.sort(key=_position)
        return found

    # --- the question -----------------------------------------------------------------------

    def check(
        self,
        account: Account | None,
        channel: Channel,
        command: str,
        collection_id: str | None = None,
    ) -> Decision:
        """May ``account`` (``None`` = unlinked) run ``command`` on ``collection_id`` in
        ``channel``? See DESIGN.md §4 and docs/permissions.md.

        Personal commands are always allowed. Read commands depend on the channel only.
        Mutating commands need the channel (checked first) and then the user to allow them.
        ``collection_id=None`` asks about the command on any collection (e.g. ``list``).
        """
        if command in PERSONAL_COMMANDS:
            return Decision(True, f"{command} is allowed for everyone, in every channel.")
        if command not in ALL_COMMANDS:
            known = ", ".join(sorted(ALL_COMMANDS))
            return Decision(
                False,
                f"Unknown command {command!r}; NightOps knows {known}.",
                Refuser.CHANNEL,
            )
        if command in READ_COMMANDS:
            # Rules only grant: a channel with rules keeps what every channel has.
            return Decision(True, f"{command} is open to everyone, in every channel.")
        granted = self.channel_allows(channel, command, collection_id)
        if not granted.allowed or command not in MUTATING_COMMANDS:
            return granted
        granting = next(r for r in self._matching(channel) if r.allows(command, collection_id))
        return self._check_user(account, granting, command, collection_id)

    def channel_allows(
        self, channel: Channel, command: str, collection_id: str | None = None
    ) -> Decision:
        """The channel's half of :meth:`check`: does a rule for ``channel`` grant
        ``command`` on ``collection_id`` (whoever asks)?"""
        if command in PERSONAL_COMMANDS or command in READ_COMMANDS:
            return Decision(True, f"{command} is open to everyone, in every channel.")
        rules = self._matching(channel)
        if not rules:
            return self._channel_refusal(
                f"{channel} does not allow {command}{_on(collection_id)}: no [[channels]] "
                f"rule matches it, so only {_join(sorted(READ_COMMANDS | PERSONAL_COMMANDS))} "
                "work there.",
                command,
                collection_id,
            )
        granting = next((r for r in rules if r.allows(command, collection_id)), None)
        if granting is None:
            return self._channel_refusal(
                _rules_refusal(rules, channel, command, collection_id), command, collection_id
            )
        return Decision(True, f"allowed by channel rule {granting.shown}")

    def _channel_refusal(self, why: str, command: str, collection_id: str | None) -> Decision:
        where = self._suggest_channel(command, collection_id)
        if where:
            fix = (
                f" Use a channel whose rule allows it, e.g. {where}, "
                "or ask an admin to add a [[channels]] rule."
            )
        else:
            fix = " Ask an admin to add a [[channels]] rule that allows it."
        return Decision(False, why + fix, Refuser.CHANNEL)

    def _suggest_channel(self, command: str, collection_id: str | None) -> str | None:
        """The first exact-name rule that would allow the command, to name in the fix."""
        key = (command, collection_id)
        if key not in self._suggestions:
            best = next(
                (
                    r.shown
                    for r in self._rules
                    if not r.is_id and not _has_glob(r.pattern) and r.allows(command, collection_id)
                ),
                None,
            )
            if len(self._suggestions) >= 1024:  # bounded: collection ids come from users
                self._suggestions.clear()
            self._suggestions[key] = best
        return self._suggestions[key]

    def _check_user(
        self,
        account: Account | None,
        granting: _CompiledRule,
        command: str,
        collection_id: str | None,
    ) -> Decision:
        if account is None:
            return Decision(
                False,
                "You are not linked to a NightOps account. Run /nightops link.",
                Refuser.USER,
            )
        if account.role is Role.VIEWER:
            return Decision(
                False,
                f"You cannot {command}: your role is viewer; ask an admin for member.",
                Refuser.USER,
            )
        globs = account.effective_collections
        if not globs:
            return Decision(
                False,
                f"You ({account.email}) have no collections you may {command}; ask an admin "
                f"to add {collection_id or 'some'} to your account's collections.",
                Refuser.USER,
            )
        if collection_id is None:
            access = f"{account.email}'s access to {_join(globs)}"
        else:
            glob = glob_matches(globs, collection_id)
            if glob is None:
                return Decision(
                    False,
                    f"You ({account.email}) may {command} only {_join(globs)}, not "
                    f"{collection_id}; ask an admin to add {collection_id} to your "
                    "account's collections.",
                    Refuser.USER,
                )
            access = f"{account.email}'s access to {glob}"
        if account.role is Role.ADMIN and not account.collections:
            access = f"{account.email}'s admin access to every collection"
        return Decision(True, f"allowed by channel rule {granting.shown} and {access}")

    def visible(self, channel: Channel, command: str, collection_id: str) -> bool:
        """Should an overview by ``command`` in ``channel`` include the collection?

        In a channel with matching rules, the overview keeps to the collections those rules
        cover (a team channel shows its team's collections; any collection can still be
        asked for by name with ``status``). ``schedule`` needs a rule granting it. In a
        channel without rules, ``status`` and ``list`` show everything.
        """
        if command not in ALL_COMMANDS:
            return False
        rules = self._matching(channel)
        if command == "schedule" or not rules:
            if not rules:
                return command in READ_COMMANDS
            return any(r.allows(command, collection_id) for r in rules)
        return any(r.covers(collection_id) for r in rules)

    def may_decide_approvals(self, channel: Channel) -> bool:
        """Does a rule for ``channel`` allow approvals to be decided there?"""
        return any(r.rule.approvals for r in self._matching(channel))

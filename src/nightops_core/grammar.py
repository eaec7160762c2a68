"""``/nightops …`` text -> Command values, from one grammar table.

The table (:data:`COMMANDS`) is the single source of truth: the parser reads it, and so do
``help`` and every usage line. Parsing never raises anything but :class:`CommandError`.

How text is read (what a user notices):

* Words are separated by whitespace. A word may be quoted with straight quotes (``"`` ``'``)
  or the typographic ones Slack clients insert (``“ ” ‘ ’ „``); any quote of the same kind
  closes it (``“Staging API"`` is fine). A quote opens only at the start of a word (or right
  after ``--option=``) and closes only at the end of a word, so apostrophes inside words
  (``don’t``, ``O'Brien``) are ordinary characters. Backslash is not special.
* A positional argument may be typed unquoted as several words: ``start Staging API`` names
  the collection ``Staging API`` (the words are joined with one space).
* Options may come before or after the positional, as ``--opt value`` or ``--opt=value``;
  names are case-insensitive. A text value such as ``--reason`` may also be several unquoted
  words: it runs up to the next option (``stop qa -r nobody uses it --force``); a quoted
  value ends at its closing quote (``start -r "hotfix test" qa``).
* A quoted word never counts as an option, so ``-r "--force was needed"`` is a reason.
* ``-h`` / ``--help`` after any command shows that command's help.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import timedelta
from typing import TypeAlias

import attrs

from nightops_core.durations import parse_duration
from nightops_core.errors import CommandError, NightOpsError
from nightops_core.model import Collection, CollectionStatus

__all__ = [
    "COMMANDS",
    "PREFIX",
    "Command",
    "CommandSpec",
    "Help",
    "Link",
    "List",
    "OptionSpec",
    "Savings",
    "ScheduleCmd",
    "Start",
    "Status",
    "Stop",
    "WhoAmI",
    "command_name",
    "help_text",
    "parse",
    "resolve_collection",
    "usage",
]

#: The slash command; tolerated at the start of the text given to :func:`parse`.
PREFIX = "/nightops"


@attrs.frozen
class OptionSpec:
    """One option: ``--long`` (and ``-s``), whether it takes a value, allowed values.

    ``metavar`` None means a flag without a value. ``multiword`` lets the value be several
    unquoted words, up to the next option (meant for free text such as a reason).
    """

    long: str
    help: str
    short: str | None = None
    metavar: str | None = None  # None = a flag without a value
    choices: tuple[str, ...] = ()
    multiword: bool = False

    @property
    def takes_value(self) -> bool:
        """Whether the option needs a value (``--env ENV``) rather than being a flag."""
        return self.metavar is not None

    @property
    def names(self) -> str:
        """``-r/--reason`` or ``--force``: how usage lines and messages name the option."""
        return f"{self.short}/{self.long}" if self.short else self.long

    @property
    def form(self) -> str:
        """The option as in a usage line, without brackets: ``--status running|stopped``."""
        if not self.takes_value:
            return self.names
        value = "|".join(self.choices) if self.choices else self.metavar
        return f"{self.names} {value}"


@attrs.frozen
class CommandSpec:
    """One command: its name, summary, positional argument and options."""

    name: str
    summary: str
    argument: str | None = None  # metavar of the positional, e.g. "collection"
    argument_required: bool = False
    options: tuple[OptionSpec, ...] = ()
    details: str = ""

    def option(self, name: str) -> OptionSpec | None:
        """The option called ``name`` (long or short form, case-insensitive), if any."""
        wanted = name.lower()
        for opt in self.options:
            if wanted == opt.long.lower() or (opt.short and wanted == opt.short.lower()):
                return opt
        return None


@attrs.frozen
class Help:
    """``help [command]``: the overview, or one command's help (``topic`` is its name)."""

    topic: str | None = None


@attrs.frozen
class Status:
    """``status [collection]``: overview of all collections, or one in detail."""

    collection: str | None = None


@attrs.frozen
class List:
    """``list [--status …] [--env ENV]``: the collections the user may see, filtered."""

    status: CollectionStatus | None = None
    env: str | None = None


@attrs.frozen
class Start:
    """``start <collection> [-r TEXT] [--no-confirm]``. ``collection`` is as typed."""

    collection: str
    reason: str = ""
    no_confirm: bool = False
    hold: timedelta | None = None


@attrs.frozen
class Stop:
    """``stop <collection> [-r TEXT] [--force]``. ``collection`` is as typed."""

    collection: str
    reason: str = ""
    force: bool = False
    hold: timedelta | None = None


@attrs.frozen
class ScheduleCmd:
    """``schedule [collection]``: all schedules, or one collection's and its next transitions."""

    collection: str | None = None


@attrs.frozen
class Savings:
    """``savings [collection] [--since DATE]``: hours stopped and money saved, versus 24/7."""

    collection: str | None = None
    since: str | None = None


@attrs.frozen
class Link:
    """``link``: link the chat account to a NightOps account."""


@attrs.frozen
class WhoAmI:
    """``whoami``: the linked email, role and collection globs."""


Command: TypeAlias = Help | Status | List | Start | Stop | ScheduleCmd | Savings | Link | WhoAmI

_COLLECTION_NAMING = (
    'Name the collection by its id (staging-api) or its display name ("Staging API"), in '
    "any case; a name with spaces may be quoted or typed as it is."
)
_REASON = OptionSpec(
    "--reason",
    "Why: recorded in the audit log and shown to approvers. Several words are fine.",
    short="-r",
    metavar="TEXT",
    multiword=True,
)

_FOR = OptionSpec(
    "--for",
    "Keep it so for this long (30m, 2h, 1h30m, 1d), then return it to its schedule "
    "(or undo it, for a collection without a schedule).",
    metavar="DURATION",
)

_SPECS = (
    CommandSpec(
        "help",
        "Show the commands, or how to use one.",
        argument="command",
    ),
    CommandSpec(
        "status",
        "Show whether collections are running; name one to see each resource.",
        argument="collection",
        details=(
            "Without a collection: an overview of every collection you may see. With one: "
            "each resource's name, state, type and monthly cost. " + _COLLECTION_NAMING
        ),
    ),
    CommandSpec(
        "list",
        "List the collections you have access to.",
        options=(
            OptionSpec(
                "--status",
                "Only collections that are running, stopped, or mixed (some of each).",
                metavar="STATUS",
                choices=tuple(
                    s.value
                    for s in (
                        CollectionStatus.RUNNING,
                        CollectionStatus.STOPPED,
                        CollectionStatus.MIXED,
                    )
                ),
            ),
            OptionSpec(
                "--env",
                "Only collections of this environment, e.g. staging.",
                metavar="ENV",
            ),
        ),
    ),
    CommandSpec(
        "start",
        "Start every resource of a collection.",
        argument="collection",
        argument_required=True,
        options=(
            _REASON,
            _FOR,
            OptionSpec(
                "--no-confirm",
                "Skip the confirmation dialog. An approval, where required, is still asked for.",
            ),
        ),
        details=(
            "Asks for confirmation only if the collection is configured to. " + _COLLECTION_NAMING
        ),
    ),
    CommandSpec(
        "stop",
        "Stop every resource of a collection.",
        argument="collection",
        argument_required=True,
        options=(
            _REASON,
            _FOR,
            OptionSpec(
                "--force",
                "Skip the confirmation dialog. An approval, where required, is still asked for.",
            ),
        ),
        details=(
            "Asks you to confirm, listing the resources that will stop, unless --force is "
            "given. " + _COLLECTION_NAMING
        ),
    ),
    CommandSpec(
        "schedule",
        "Show the schedules, or one collection's schedule and its next start and stop.",
        argument="collection",
        details=_COLLECTION_NAMING,
    ),
    CommandSpec(
        "savings",
        "Show the hours stopped and the money saved, versus running 24/7.",
        argument="collection",
        options=(
            OptionSpec(
                "--since",
                "From this date (YYYY-MM-DD, midnight in NightOps's timezone); "
                "default: the 1st of this month.",
                metavar="DATE",
            ),
        ),
        details=(
            "Counted from the audit trail's starts and stops and the resources' hourly "
            "prices; a resource without a price has unknown savings. " + _COLLECTION_NAMING
        ),
    ),
    CommandSpec(
        "link",
        "Link your Slack account to your NightOps account.",
    ),
    CommandSpec(
        "whoami",
        "Show your linked email, your role and the collections you may act on.",
    ),
)

#: The grammar table, in help order.
COMMANDS: Mapping[str, CommandSpec] = {spec.name: spec for spec in _SPECS}

_HELP_FLAGS = frozenset({"-h", "--help"})

# Quote characters, each mapped to the characters that may close it (its family).
_DOUBLE = '"“”„'
_SINGLE = "'‘’"
_CLOSERS: Mapping[str, str] = dict.fromkeys(_DOUBLE, _DOUBLE) | dict.fromkeys(_SINGLE, _SINGLE)
# resolve_collection also strips backticks, which people use for ids in chat.
_STRIPPABLE = _DOUBLE + _SINGLE + "`"


# --- tokenizer -------------------------------------------------------------------------------


@attrs.frozen
class _Token:
    text: str
    #: The whole word was quoted: it is a value, never an option.
    quoted: bool = False

    @property
    def is_option(self) -> bool:
        return not self.quoted and _looks_like_option(self.text)


def _looks_like_option(word: str) -> bool:
    """``-r``, ``--force``; not ``-`` or ``-5``."""
    return len(word) >= 2 and word[0] == "-" and (word[1] == "-" or word[1].isalpha())


def _tokenize(text: str) -> list[_Token]:
    tokens: list[_Token] = []
    i, n = 0, len(text)
    while i < n:
        if text[i].isspace():
            i += 1
            continue
        if text[i] in _CLOSERS:
            value, i = _read_quoted(text, i)
            tokens.append(_Token(value, quoted=True))
            continue
        start = i
        while i < n and not text[i].isspace():
            # ``--reason="two words"``: a quote may open right after an option's first "=".
            if (
                text[i] == "="
                and text[start] == "-"
                and "=" not in text[start:i]
                and i + 1 < n
                and text[i + 1] in _CLOSERS
            ):
                value, end = _read_quoted(text, i + 1)
                tokens.append(_Token(text[start : i + 1] + value))
                i = end
                break
            i += 1
        else:
            tokens.append(_Token(text[start:i]))
    return tokens


def _read_quoted(text: str, i: int) -> tuple[str, int]:
    """Read the quoted word opening at ``text[i]``; return its content and the next index.

    It closes at the first quote of the same kind that ends a word (followed by whitespace
    or the end of the text).
    """
    closers = _CLOSERS[text[i]]
    for j in range(i + 1, len(text)):
        if text[j] in closers and (j + 1 == len(text) or text[j + 1].isspace()):
            return text[i + 1 : j], j + 1
    fragment = text[i:]
    if len(fragment) > 40:
        fragment = fragment[:40] + "…"
    raise CommandError(
        f"Unterminated quote: {fragment} — close it or remove it.",
        usage=_usage_guess(text[:i]),
    )


def _usage_guess(before: str) -> str:
    """The usage of the command the text seems to be about, else the overview."""
    words = before.split()
    if words and words[0].lower() == PREFIX:
        words = words[1:]
    if words and words[0].lower() in COMMANDS:
        return usage(words[0].lower())
    return usage(None)


# --- parser ----------------------------------------------------------------------------------


def _close(word: str, candidates: Iterable[str]) -> str | None:
    matches = difflib.get_close_matches(word, list(candidates), n=1, cutoff=0.6)
    return matches[0] if matches else None


def _did_you_mean(word: str, candidates: Iterable[str]) -> str:
    match = _close(word, candidates)
    return f" Did you mean '{match}'?" if match else ""


@attrs.frozen
class _Parsed:
    argument: str | None
    values: Mapping[str, str]
    flags: frozenset[str]


def parse(text: str) -> Command:
    """Parse the text after ``/nightops`` (a leading ``/nightops`` is tolerated).

    Empty text means ``help``. Raises CommandError (with the relevant usage) on unknown
    command or option (with a closest-match suggestion), missing/extra argument, missing
    option value, bad choice, or unterminated quote. See the module docstring for how words,
    quotes and multi-word arguments are read.
    """
    tokens = _tokenize(text)
    if tokens and not tokens[0].quoted and tokens[0].text.lower() == PREFIX:
        tokens = tokens[1:]
    if not tokens:
        return Help()
    head, rest = tokens[0], tokens[1:]
    name = head.text.lower()
    if not head.quoted and name in _HELP_FLAGS:
        return Help()
    spec = COMMANDS.get(name)
    if spec is None:
        if head.is_option:
            raise CommandError(
                f"Start with a command, then options: '{head.text}' is an option. "
                f"Commands: {', '.join(COMMANDS)}.",
                usage=usage(None),
            )
        raise _unknown_command(head.text)
    if any(t.is_option and t.text.split("=", 1)[0].lower() in _HELP_FLAGS for t in rest):
        return Help(spec.name)
    return _BUILDERS[spec.name](_parse_rest(spec, rest))


def _parse_rest(spec: CommandSpec, tokens: Sequence[_Token]) -> _Parsed:
    the_usage = usage(spec.name)
    words: list[str] = []
    values: dict[str, str] = {}
    flags: set[str] = set()
    multiword_used: OptionSpec | None = None
    i = 0
    while i < len(tokens):
        token = tokens[i]
        i += 1
        if not token.is_option:
            words.append(token.text)
            continue
        name, eq, attached = token.text.partition("=")
        opt = spec.option(name)
        if opt is None:
            raise CommandError(_unknown_option(spec, name), usage=the_usage)
        if opt.long in values or opt.long in flags:
            raise CommandError(f"{opt.names} is given twice; give it once.", usage=the_usage)
        if not opt.takes_value:
            if eq:
                raise CommandError(
                    f"{opt.long} is a flag and takes no value: write {opt.long}, not {token.text}.",
                    usage=the_usage,
                )
            flags.add(opt.long)
            continue
        if eq:
            value = attached
        elif opt.multiword and i < len(tokens) and tokens[i].quoted:
            value = tokens[i].text  # a quoted value ends at its closing quote
            i += 1
        elif opt.multiword:
            taken: list[str] = []
            while i < len(tokens) and not tokens[i].is_option:
                taken.append(tokens[i].text)
                i += 1
            value = " ".join(taken)
            if len(taken) > 1:
                multiword_used = opt
        elif i < len(tokens) and not tokens[i].is_option:
            value = tokens[i].text
            i += 1
        else:
            value = ""
        value = value.strip()
        if not value:
            raise CommandError(
                f"{opt.names} needs a value: {opt.form}"
                + (f" (one of {', '.join(opt.choices)})." if opt.choices else "."),
                usage=the_usage,
            )
        if opt.choices:
            choice = value.lower()
            if choice not in opt.choices:
                raise CommandError(
                    f"{opt.long} must be one of {', '.join(opt.choices)}, not '{value}'."
                    + _did_you_mean(choice, opt.choices),
                    usage=the_usage,
                )
            value = choice
        values[opt.long] = value

    argument = " ".join(words).strip() or None
    if spec.argument is None and argument is not None:
        raise CommandError(_unexpected_argument(spec, argument), usage=the_usage)
    if spec.argument_required and argument is None:
        message = f"{spec.name} needs a {spec.argument}: {PREFIX} {spec.name} <{spec.argument}>"
        if multiword_used is not None:
            what = multiword_used.long.lstrip("-")
            message += (
                f" (the words after {multiword_used.names} were read as the {what}: "
                f"put the {spec.argument} first, or quote the {what})"
            )
        raise CommandError(message, usage=the_usage)
    return _Parsed(argument, values, frozenset(flags))


def _unknown_option(spec: CommandSpec, name: str) -> str:
    lowered = name.lower()
    if not spec.options:
        return f"{spec.name} takes no options, but got '{name}'."
    own = f" {spec.name} takes {_option_list(spec)}."
    # ``-rdeploy``: a short option glued to its value.
    for opt in spec.options:
        if (
            opt.short
            and opt.takes_value
            and not lowered.startswith("--")
            and lowered.startswith(opt.short.lower())
            and len(name) > len(opt.short)
        ):
            return (
                f"Unknown option '{name}' for {spec.name}. "
                f"Did you mean '{opt.short} {name[len(opt.short) :]}'?"
            )
    # An exact option of another command says more than a near miss (--force vs --for).
    elsewhere = [other.name for other in COMMANDS.values() if other.option(name) is not None]
    if elsewhere:
        return f"{spec.name} has no option '{name}' (that is an option of {elsewhere[0]}).{own}"
    spellings = {o.long.lower(): o.long for o in spec.options}
    spellings |= {o.short.lower(): o.long for o in spec.options if o.short}
    match = _close(lowered, spellings)
    if match is not None:
        return f"Unknown option '{name}' for {spec.name}. Did you mean '{spellings[match]}'?"
    return f"Unknown option '{name}' for {spec.name}.{own}"


def _option_list(spec: CommandSpec) -> str:
    return ", ".join(opt.names for opt in spec.options)


def _unexpected_argument(spec: CommandSpec, argument: str) -> str:
    message = f"{spec.name} takes no argument, but got '{argument}'."
    for opt in spec.options:
        if argument.lower() in opt.choices:
            return message + f" Did you mean '{opt.long} {argument.lower()}'?"
    return message


def _build_help(p: _Parsed) -> Command:
    if p.argument is None:
        return Help()
    return Help(_topic(p.argument))


def _topic(name: str) -> str:
    """The command a help topic names (case-insensitive, ``/nightops`` tolerated)."""
    topic = name.strip().lower()
    if topic.startswith(PREFIX):
        topic = topic[len(PREFIX) :].strip()
    if topic in COMMANDS:
        return topic
    raise _unknown_command(name.strip())


def _unknown_command(word: str) -> CommandError:
    suggestion = _did_you_mean(word.lower(), COMMANDS) or f" Commands: {', '.join(COMMANDS)}."
    return CommandError(f"Unknown command '{word}'.{suggestion}", usage=usage(None))


def _build_list(p: _Parsed) -> Command:
    status = p.values.get("--status")
    return List(
        status=CollectionStatus(status) if status is not None else None,
        env=p.values.get("--env"),
    )


def _hold(p: _Parsed, command: str) -> timedelta | None:
    text = p.values.get("--for")
    if text is None:
        return None
    try:
        return parse_duration(text)
    except NightOpsError as exc:
        raise CommandError(f"--for: {exc.message}", usage=usage(command)) from None


def _build_start(p: _Parsed) -> Command:
    assert p.argument is not None  # argument_required
    return Start(
        p.argument, p.values.get("--reason", ""), "--no-confirm" in p.flags, _hold(p, "start")
    )


def _build_stop(p: _Parsed) -> Command:
    assert p.argument is not None  # argument_required
    return Stop(p.argument, p.values.get("--reason", ""), "--force" in p.flags, _hold(p, "stop"))


#: How each row of :data:`COMMANDS` becomes a Command value.
_BUILDERS: Mapping[str, Callable[[_Parsed], Command]] = {
    "help": _build_help,
    "status": lambda p: Status(p.argument),
    "list": _build_list,
    "start": _build_start,
    "stop": _build_stop,
    "schedule": lambda p: ScheduleCmd(p.argument),
    "savings": lambda p: Savings(p.argument, p.values.get("--since")),
    "link": lambda p: Link(),
    "whoami": lambda p: WhoAmI(),
}
assert _BUILDERS.keys() == COMMANDS.keys()


def command_name(command: Command) -> str:
    """The grammar name of a parsed command (``Stop(...)`` -> ``"stop"``), e.g. for
    permission checks and audit events."""
    return _NAMES[type(command)]


_NAMES: Mapping[type, str] = {
    Help: "help",
    Status: "status",
    List: "list",
    Start: "start",
    Stop: "stop",
    ScheduleCmd: "schedule",
    Savings: "savings",
    Link: "link",
    WhoAmI: "whoami",
}


# --- usage and help --------------------------------------------------------------------------


def usage(command: str | None = None) -> str:
    """``/nightops stop <collection> [-r/--reason TEXT] [--force]``; None -> overview.

    The overview is every command's usage line, one a line, in table order. An unknown
    command raises CommandError with a suggestion.
    """
    if command is None:
        return "\n".join(_usage_line(spec) for spec in COMMANDS.values())
    return _usage_line(_spec(command))


def _usage_line(spec: CommandSpec) -> str:
    parts = [PREFIX, spec.name]
    if spec.argument is not None:
        parts.append(f"<{spec.argument}>" if spec.argument_required else f"[{spec.argument}]")
    parts.extend(f"[{opt.form}]" for opt in spec.options)
    return " ".join(parts)


def _spec(command: str) -> CommandSpec:
    return COMMANDS[_topic(command)]


def help_text(topic: str | None = None) -> str:
    """All commands with summaries, or one command's usage, options and details.

    An unknown topic raises CommandError naming the closest command.
    """
    if topic is None:
        lines = ["NightOps starts and stops groups of cloud resources (collections).", ""]
        for spec in COMMANDS.values():
            lines.append(_usage_line(spec))
            lines.append(f"    {spec.summary}")
        lines.append("")
        lines.append(f"Run {PREFIX} help <command> (or add --help) for a command's options.")
        return "\n".join(lines)
    spec = _spec(topic)
    lines = [_usage_line(spec), "", spec.summary]
    if spec.options:
        width = max(len(opt.form) for opt in spec.options)
        lines += ["", "Options:"]
        lines += [f"  {opt.form.ljust(width)}  {opt.help}" for opt in spec.options]
    if spec.details:
        lines += ["", spec.details]
    return "\n".join(lines)


# --- collections -----------------------------------------------------------------------------


def _normalise(name: str) -> str:
    """Casefolded, quotes and surrounding whitespace removed, inner whitespace collapsed."""
    text = name.strip()
    while len(text) >= 2 and text[0] in _STRIPPABLE and text[-1] in _STRIPPABLE:
        text = text[1:-1].strip()
    return " ".join(text.split()).casefold()


def resolve_collection(name: str, collections: Sequence[Collection]) -> Collection:
    """Find a collection by id or display name, case-insensitively (surrounding
    whitespace ignored). Unknown -> CommandError naming the closest match if any.

    Quotes left around the name (straight, typographic or backticks) are ignored, and runs
    of spaces inside it count as one. An id wins over another collection's display name;
    a display name shared by several collections is refused, naming their ids.
    """
    key = _normalise(name)
    shown = " ".join(name.strip().strip(_STRIPPABLE).split())
    if not key:
        raise CommandError(f"Name a collection, e.g. {PREFIX} status <collection>.")
    for collection in collections:
        if _normalise(collection.id) == key:
            return collection
    named = [c for c in collections if _normalise(c.display_name) == key]
    if len(named) == 1:
        return named[0]
    if named:
        ids = ", ".join(c.id for c in named)
        raise CommandError(f"Several collections are named '{shown}' ({ids}); use the id.")
    raise CommandError(_unknown_collection(shown, key, collections))


def _unknown_collection(shown: str, key: str, collections: Sequence[Collection]) -> str:
    message = f"No collection named '{shown}'."
    by_key: dict[str, Collection] = {}
    for collection in collections:
        by_key.setdefault(_normalise(collection.id), collection)
    for collection in collections:
        by_key.setdefault(_normalise(collection.display_name), collection)
    match = _close(key, by_key)
    if match is not None:
        found = by_key[match]
        label = f"'{found.id}'"
        if found.display_name != found.id:
            label += f" ({found.display_name})"
        return f"{message} Did you mean {label}?"
    if not collections:
        return f"{message} There are no collections you can see."
    known = ", ".join(c.id for c in collections[:5])
    if len(collections) > 5:
        return f"{message} Known collections include {known}; run {PREFIX} list to see all."
    return f"{message} Known collections: {known}."

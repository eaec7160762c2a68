"""The ``/nightops`` grammar: parsing, errors people can act on, help from the table."""

from __future__ import annotations

from datetime import timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from nightops_core.errors import CommandError
from nightops_core.grammar import (
    COMMANDS,
    Command,
    Help,
    Link,
    List,
    Savings,
    ScheduleCmd,
    Start,
    Status,
    Stop,
    WhoAmI,
    command_name,
    help_text,
    parse,
    resolve_collection,
    usage,
)
from nightops_core.model import Collection, CollectionStatus

COMMAND_TYPES = (Help, Status, List, Start, Stop, ScheduleCmd, Savings, Link, WhoAmI)


def error_of(text: str) -> CommandError:
    with pytest.raises(CommandError) as info:
        parse(text)
    return info.value


# --- the table -------------------------------------------------------------------------------


def test_table_has_every_command_of_the_design_in_help_order() -> None:
    assert list(COMMANDS) == [
        "help",
        "status",
        "list",
        "start",
        "stop",
        "schedule",
        "savings",
        "link",
        "whoami",
    ]


@pytest.mark.parametrize(
    ("text", "hold"),
    [
        ("start qa-api --for 2h", timedelta(hours=2)),
        ("stop qa-api --for=1h30m --force", timedelta(hours=1, minutes=30)),
        ("start qa-api -r testing the build --for 45m", timedelta(minutes=45)),
    ],
)
def test_for_takes_a_duration(text: str, hold: timedelta) -> None:
    command = parse(text)
    assert isinstance(command, Start | Stop)
    assert command.hold == hold


@pytest.mark.parametrize("value", ["2x", "0m", "soon", "-1h"])
def test_for_rejects_what_is_not_a_duration(value: str) -> None:
    with pytest.raises(CommandError, match="like 30m, 2h"):
        parse(f"start qa-api --for={value}")


@pytest.mark.parametrize(
    ("command", "line"),
    [
        ("help", "/nightops help [command]"),
        ("status", "/nightops status [collection]"),
        ("list", "/nightops list [--status running|stopped|mixed] [--env ENV]"),
        (
            "start",
            "/nightops start <collection> [-r/--reason TEXT] [--for DURATION] [--no-confirm]",
        ),
        ("stop", "/nightops stop <collection> [-r/--reason TEXT] [--for DURATION] [--force]"),
        ("schedule", "/nightops schedule [collection]"),
        ("link", "/nightops link"),
        ("whoami", "/nightops whoami"),
    ],
)
def test_usage_lines_match_the_design(command: str, line: str) -> None:
    assert usage(command) == line
    assert usage(command.upper()) == line


def test_usage_overview_is_every_usage_line_in_table_order() -> None:
    assert usage(None).splitlines() == [usage(name) for name in COMMANDS]


def test_status_filter_offers_only_running_stopped_mixed() -> None:
    status = COMMANDS["list"].option("--status")
    assert status is not None
    assert status.choices == ("running", "stopped", "mixed")
    for choice in status.choices:
        CollectionStatus(choice)  # every choice is a real status


# --- parsing: the happy paths ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # empty and help
        ("", Help()),
        ("   \n\t ", Help()),
        ("/nightops", Help()),
        ("help", Help()),
        ("help stop", Help("stop")),
        ("help STOP", Help("stop")),
        ("help /nightops stop", Help("stop")),
        ("--help", Help()),
        ("-h", Help()),
        ("stop --help", Help("stop")),
        ("start staging-api -h", Help("start")),
        # status / schedule, optional collection
        ("status", Status()),
        ("status staging-api", Status("staging-api")),
        ("schedule", ScheduleCmd()),
        ("schedule qa-web", ScheduleCmd("qa-web")),
        # list and its options
        ("list", List()),
        ("list --status running", List(status=CollectionStatus.RUNNING)),
        ("list --status=stopped", List(status=CollectionStatus.STOPPED)),
        ("list --status MIXED", List(status=CollectionStatus.MIXED)),
        ("list --env staging", List(env="staging")),
        ("list --env=prod --status running", List(CollectionStatus.RUNNING, "prod")),
        ("list --ENV qa", List(env="qa")),
        # start
        ("start staging-api", Start("staging-api")),
        ("start staging-api -r deploy test", Start("staging-api", "deploy test")),
        ("start staging-api --reason=hotfix", Start("staging-api", "hotfix")),
        ("start staging-api --no-confirm", Start("staging-api", no_confirm=True)),
        ("start --no-confirm staging-api -r qa run", Start("staging-api", "qa run", True)),
        ("start -r 'qa run' --NO-CONFIRM staging-api", Start("staging-api", "qa run", True)),
        # stop
        ("stop staging-api", Stop("staging-api")),
        ("stop staging-api --force", Stop("staging-api", force=True)),
        ("stop --force staging-api", Stop("staging-api", force=True)),
        ("stop staging-api -r nobody uses it --force", Stop("staging-api", "nobody uses it", True)),
        ('stop -r "nobody uses it" staging-api', Stop("staging-api", "nobody uses it")),
        # personal commands
        ("link", Link()),
        ("whoami", WhoAmI()),
        # a leading /nightops and the case of the command name do not matter
        ("/nightops whoami", WhoAmI()),
        ("/NightOps STOP staging-api", Stop("staging-api")),
        ("Start staging-api", Start("staging-api")),
    ],
)
def test_parse(text: str, expected: Command) -> None:
    assert parse(text) == expected


def test_unquoted_reason_runs_to_the_next_option() -> None:
    # Unquoted, the reason runs up to the next option, so a collection after it is read
    # as part of the reason (the error says so); quoted, the reason ends at its quote.
    assert "read as the reason" in error_of("start -r qa run staging-api").message
    assert parse("start -r qa run --no-confirm staging-api") == Start("staging-api", "qa run", True)
    assert parse("start -r 'qa run' staging-api") == Start("staging-api", "qa run")


def test_collection_may_be_several_unquoted_words() -> None:
    assert parse("start Staging API") == Start("Staging API")
    assert parse("status   Staging    API  ") == Status("Staging API")
    assert parse("stop Staging API --force -r done") == Stop("Staging API", "done", True)


@pytest.mark.parametrize(
    ("opening", "closing"),
    [
        ('"', '"'),
        ("'", "'"),
        ("“", "”"),  # what macOS / iOS Slack inserts
        ("‘", "’"),
        ("“", '"'),  # mixed: typographic opening, straight closing
        ('"', "”"),
        ("”", "”"),  # some keyboards produce the closing quote twice
        ("„", "“"),  # German typography
        ("‘", "'"),
    ],
)
def test_quotes_straight_and_typographic(opening: str, closing: str) -> None:
    quoted = f"{opening}Staging API{closing}"
    assert parse(f"start {quoted}") == Start("Staging API")
    assert parse(f"stop {quoted} -r {opening}night time{closing}") == Stop(
        "Staging API", "night time"
    )
    assert parse(f"stop --reason={opening}night time{closing} x") == Stop("x", "night time")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("stop qa -r don’t need it", Stop("qa", "don’t need it")),
        ("stop qa -r don't need it", Stop("qa", "don't need it")),
        ("stop qa -r ‘it’s late’", Stop("qa", "it’s late")),
        ("stop qa -r 'it's late'", Stop("qa", "it's late")),
        ("status O'Brien's env", Status("O'Brien's env")),
        ('status a"b', Status('a"b')),
        ("start x -r C:\\path\\", Start("x", "C:\\path\\")),  # backslash is not special
    ],
)
def test_apostrophes_inside_words_are_not_quotes(text: str, expected: Command) -> None:
    assert parse(text) == expected


def test_quoted_words_are_never_options() -> None:
    assert parse('start x -r "--force was needed"') == Start("x", "--force was needed")
    assert parse("status '--force'") == Status("--force")


def test_words_that_merely_start_with_a_dash_are_values() -> None:
    assert parse("stop qa -r - -5 degrees") == Stop("qa", "- -5 degrees")


def test_whitespace_slack_sends_separates_words() -> None:
    assert parse("stop\u00a0qa\u00a0--force") == Stop("qa", force=True)
    assert parse("stop qa\n--force") == Stop("qa", force=True)


# --- parsing: errors -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "message", "usage_of"),
    [
        ("strat staging", "Unknown command 'strat'. Did you mean 'start'?", None),
        ("ls", "Unknown command 'ls'. Did you mean 'list'?", None),
        ("WHOAMi2", "Unknown command 'WHOAMi2'. Did you mean 'whoami'?", None),
        (
            "frobnicate",
            "Unknown command 'frobnicate'. Commands: help, status, list, start, stop, "
            "schedule, savings, link, whoami.",
            None,
        ),
        ("help stp", "Unknown command 'stp'. Did you mean 'stop'?", None),
        ("--force stop x", "Start with a command, then options: '--force' is an option.", None),
        (
            "start",
            "start needs a collection: /nightops start <collection>",
            "start",
        ),
        ("stop --force", "stop needs a collection: /nightops stop <collection>", "stop"),
        ('stop ""', "stop needs a collection: /nightops stop <collection>", "stop"),
        (
            "start -r testing the api staging",
            "start needs a collection: /nightops start <collection> (the words after "
            "-r/--reason were read as the reason: put the collection first, or quote the reason)",
            "start",
        ),
        ("stop qa --forse", "Unknown option '--forse' for stop. Did you mean '--force'?", "stop"),
        (
            "start qa --no-confrim",
            "Unknown option '--no-confrim' for start. Did you mean '--no-confirm'?",
            "start",
        ),
        (
            "start qa -rdeploy",
            "Unknown option '-rdeploy' for start. Did you mean '-r deploy'?",
            "start",
        ),
        (
            "start qa --force",
            "start has no option '--force' (that is an option of stop). "
            "start takes -r/--reason, --for, --no-confirm.",
            "start",
        ),
        ("list --bogus", "Unknown option '--bogus' for list. list takes --status, --env.", "list"),
        ("whoami --verbose", "whoami takes no options, but got '--verbose'.", "whoami"),
        ("whoami alice", "whoami takes no argument, but got 'alice'.", "whoami"),
        ("link my account", "link takes no argument, but got 'my account'.", "link"),
        (
            "list running",
            "list takes no argument, but got 'running'. Did you mean '--status running'?",
            "list",
        ),
        ("stop qa -r", "-r/--reason needs a value: -r/--reason TEXT.", "stop"),
        ("stop qa -r --force", "-r/--reason needs a value", "stop"),
        ("stop qa --reason=", "-r/--reason needs a value", "stop"),
        ("list --env", "--env needs a value: --env ENV.", "list"),
        ("list --env --status running", "--env needs a value", "list"),
        (
            "list --status",
            "--status needs a value: --status running|stopped|mixed (one of running, stopped, "
            "mixed).",
            "list",
        ),
        ("stop qa -r a --reason b", "-r/--reason is given twice; give it once.", "stop"),
        ("stop qa --force --force", "--force is given twice; give it once.", "stop"),
        ("list --env a --env=a", "--env is given twice", "list"),
        (
            "list --status runing",
            "--status must be one of running, stopped, mixed, not 'runing'. "
            "Did you mean 'running'?",
            "list",
        ),
        ("list --status transitioning", "--status must be one of running, stopped, mixed", "list"),
        ("list --status unknown", "--status must be one of running, stopped, mixed", "list"),
        (
            "stop qa --force=yes",
            "--force is a flag and takes no value: write --force, not --force=yes.",
            "stop",
        ),
        ("start qa --no-confirm=true", "--no-confirm is a flag and takes no value", "start"),
    ],
)
def test_errors_say_what_to_do_and_show_the_right_usage(
    text: str, message: str, usage_of: str | None
) -> None:
    error = error_of(text)
    assert error.message.startswith(message)
    assert error.usage == usage(usage_of)
    assert str(error).endswith(f"Usage: {usage(usage_of)}")


@pytest.mark.parametrize("quote", ['"', "'", "“", "”", "‘", "’", "„"])
def test_unterminated_quote(quote: str) -> None:
    error = error_of(f"start {quote}Staging API -r late")
    assert error.message == (
        f"Unterminated quote: {quote}Staging API -r late — close it or remove it."
    )
    assert error.usage == usage("start")


def test_unterminated_quote_before_any_command_shows_the_overview() -> None:
    error = error_of("“start staging")
    assert "Unterminated quote" in error.message
    assert error.usage == usage(None)


def test_unterminated_quote_after_equals_and_long_fragment_is_shortened() -> None:
    error = error_of("stop qa --reason='" + "x" * 100)
    assert error.message.startswith("Unterminated quote: 'xxxx")
    assert "…" in error.message
    assert len(error.message) < 100
    assert error.usage == usage("stop")


def test_a_quote_must_end_a_word_to_close_it() -> None:
    # The ' after Staging is followed by a letter, so it does not close the quote.
    assert "Unterminated quote" in error_of("status 'Staging'API").message


# --- help ------------------------------------------------------------------------------------


def test_overview_help_lists_every_command_with_its_summary() -> None:
    text = help_text()
    for spec in COMMANDS.values():
        assert usage(spec.name) in text
        assert spec.summary in text
    positions = [text.index(usage(name)) for name in COMMANDS]
    assert positions == sorted(positions)
    assert "/nightops help <command>" in text


@pytest.mark.parametrize("name", list(COMMANDS))
def test_command_help_shows_usage_summary_options_and_details(name: str) -> None:
    spec = COMMANDS[name]
    text = help_text(name)
    assert text.splitlines()[0] == usage(name)
    assert spec.summary in text
    for opt in spec.options:
        assert opt.form in text
        assert opt.help in text
    assert spec.details in text
    assert ("Options:" in text) == bool(spec.options)
    assert help_text(name.upper()) == text


def test_stop_help_explains_force_and_collection_names() -> None:
    text = help_text("stop")
    assert "-r/--reason TEXT" in text
    assert "--force" in text
    assert "confirm" in text
    assert "Staging API" in text


def test_help_for_unknown_topic_suggests_the_closest() -> None:
    with pytest.raises(CommandError, match=r"Unknown command 'strt'\. Did you mean 'start'\?"):
        help_text("strt")
    with pytest.raises(CommandError, match="Did you mean 'schedule'"):
        usage("shedule")


def test_every_parsed_command_knows_its_table_name() -> None:
    examples = {
        "help": "help",
        "status": "status",
        "list": "list",
        "start": "start x",
        "stop": "stop x",
        "schedule": "schedule",
        "savings": "savings --since 2026-11-01",
        "link": "link",
        "whoami": "whoami",
    }
    assert examples.keys() == COMMANDS.keys()
    for name, text in examples.items():
        assert command_name(parse(text)) == name


# --- resolving collections -------------------------------------------------------------------

STAGING = Collection("staging-api", name="Staging API", env="staging")
QA = Collection("qa-web", name="QA Web", env="qa")
BARE = Collection("batch")  # no display name: shown by its id
COLLECTIONS = [STAGING, QA, BARE]


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("staging-api", STAGING),
        ("STAGING-API", STAGING),
        ("Staging API", STAGING),
        ("staging api", STAGING),
        ("  Staging   API  ", STAGING),
        ('"Staging API"', STAGING),
        ("“Staging API”", STAGING),
        ("‘qa-web’", QA),
        ("`qa-web`", QA),
        ("qa web", QA),
        ("Batch", BARE),
    ],
)
def test_resolve_by_id_or_display_name(name: str, expected: Collection) -> None:
    assert resolve_collection(name, COLLECTIONS) is expected


def test_resolve_what_parse_returned() -> None:
    command = parse("stop “Staging API” --force")
    assert isinstance(command, Stop)
    assert resolve_collection(command.collection, COLLECTIONS) is STAGING


def test_an_id_wins_over_another_collections_display_name() -> None:
    tricky = Collection("legacy", name="staging-api")
    assert resolve_collection("staging-api", [tricky, STAGING]) is STAGING
    assert resolve_collection("legacy", [tricky, STAGING]) is tricky


def test_a_display_name_shared_by_two_collections_asks_for_the_id() -> None:
    a = Collection("api-eu", name="API")
    b = Collection("api-us", name="API")
    with pytest.raises(CommandError) as info:
        resolve_collection("api", [a, b])
    assert info.value.message == "Several collections are named 'api' (api-eu, api-us); use the id."


@pytest.mark.parametrize(
    ("name", "message"),
    [
        (
            "stagin-api",
            "No collection named 'stagin-api'. Did you mean 'staging-api' (Staging API)?",
        ),
        (
            "'stagin-api'",
            "No collection named 'stagin-api'. Did you mean 'staging-api' (Staging API)?",
        ),
        (
            "Stagng API",
            "No collection named 'Stagng API'. Did you mean 'staging-api' (Staging API)?",
        ),
        ("QA Wbe", "No collection named 'QA Wbe'. Did you mean 'qa-web' (QA Web)?"),
        ("batc", "No collection named 'batc'. Did you mean 'batch'?"),
        ("zzzz", "No collection named 'zzzz'. Known collections: staging-api, qa-web, batch."),
    ],
)
def test_unknown_collection_suggests_the_closest(name: str, message: str) -> None:
    with pytest.raises(CommandError) as info:
        resolve_collection(name, COLLECTIONS)
    assert info.value.message == message


def test_unknown_collection_among_many_points_to_list() -> None:
    many = [Collection(f"env-{i:02d}") for i in range(12)]
    with pytest.raises(CommandError) as info:
        resolve_collection("production", many)
    message = info.value.message
    assert message.startswith("No collection named 'production'. Known collections include ")
    assert "env-00" in message
    assert "env-11" not in message
    assert "/nightops list" in message


def test_unknown_collection_when_there_are_none() -> None:
    with pytest.raises(CommandError, match="There are no collections you can see"):
        resolve_collection("staging-api", [])


@pytest.mark.parametrize("name", ["", "   ", '""', "“”"])
def test_empty_collection_name(name: str) -> None:
    with pytest.raises(CommandError, match="Name a collection"):
        resolve_collection(name, COLLECTIONS)


# --- properties ------------------------------------------------------------------------------


def assert_command_or_command_error(text: str) -> None:
    outcome: Command | CommandError
    try:
        outcome = parse(text)
    except CommandError as error:  # anything else escapes and fails the test
        outcome = error
    if isinstance(outcome, CommandError):
        assert outcome.message
        assert outcome.usage  # every parse error shows the form to use
    else:
        assert isinstance(outcome, COMMAND_TYPES)


@given(st.text())
def test_any_text_parses_or_raises_command_error(text: str) -> None:
    assert_command_or_command_error(text)


VOCABULARY = [
    *COMMANDS,
    "/nightops",
    "staging-api",
    "Staging",
    "API",
    "-r",
    "--reason",
    "--reason=",
    "--force",
    "--force=yes",
    "--no-confirm",
    "--status",
    "--status=",
    "--env",
    "--env=",
    "running",
    "transitioning",
    "-h",
    "--help",
    "--",
    "-",
    "-x",
    "don't",
    "it’s",
    "=",
]
QUOTES = ['"', "'", "“", "”", "‘", "’", "„", "`"]


@given(
    st.lists(
        st.one_of(
            st.sampled_from(VOCABULARY),
            st.sampled_from(QUOTES),
            st.builds("".join, st.lists(st.sampled_from(VOCABULARY + QUOTES), max_size=3)),
        ),
        max_size=10,
    ),
    st.sampled_from([" ", "  ", "\u00a0", "\n"]),
)
def test_command_like_text_parses_or_raises_command_error(words: list[str], sep: str) -> None:
    assert_command_or_command_error(sep.join(words))


WORD = st.text(
    alphabet="abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.",
    min_size=1,
    max_size=8,
)
PAIRS = [('"', '"'), ("'", "'"), ("“", "”"), ("‘", "’"), ("“", '"')]


@given(
    collection=st.lists(WORD, min_size=1, max_size=3),
    reason=st.lists(WORD, max_size=4),
    force=st.booleans(),
    pair=st.sampled_from(PAIRS),
    quote_collection=st.booleans(),
    reason_form=st.sampled_from(["-r {q}", "--reason {q}", "--reason={q}", "-R={q}"]),
    prefix=st.sampled_from(["", "/nightops ", "/NIGHTOPS "]),
    name=st.sampled_from(["stop", "STOP", "Stop"]),
    data=st.data(),
)
def test_option_order_and_quote_style_do_not_change_the_meaning(
    collection: list[str],
    reason: list[str],
    force: bool,
    pair: tuple[str, str],
    quote_collection: bool,
    reason_form: str,
    prefix: str,
    name: str,
    data: st.DataObject,
) -> None:
    opening, closing = pair
    target = " ".join(collection)
    parts = [f"{opening}{target}{closing}" if quote_collection else target]
    if reason:
        parts.append(reason_form.format(q=f"{opening}{' '.join(reason)}{closing}"))
    if force:
        parts.append("--force")
    ordered = data.draw(st.permutations(parts))
    assert parse(prefix + f"{name} " + " ".join(ordered)) == Stop(target, " ".join(reason), force)


def test_savings_takes_a_collection_and_a_date() -> None:
    assert parse("savings") == Savings()
    assert parse("savings Staging API --since 2026-11-01") == Savings("Staging API", "2026-11-01")

"""What someone writing nightops.toml meets: the Settings a good file becomes, and for a bad
one every problem at once, each with its key path and a message saying what to write."""

from __future__ import annotations

import re
import textwrap
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import attrs
import pytest

from nightops import config as config_module
from nightops.cli import demo_config_text
from nightops.config import Config, Secret, load_config, parse_config
from nightops_core.approvals import ApprovalRule, Approvers
from nightops_core.costs import collection_monthly
from nightops_core.errors import ConfigError
from nightops_core.model import Money, Resource
from nightops_core.notify import NotificationKind, Route
from nightops_core.permissions import Account, ChannelRule, Role

DOCS = Path(__file__).resolve().parents[2] / "docs"

#: The smallest valid collection, appended to snippets that are about something else.
ONE_COLLECTION = """
[[collections]]
id = "dev"
resources = [{ provider = "sandbox", kind = "ec2", id = "i-1" }]
"""


def parse(text: str, env: dict[str, str] | None = None) -> Config:
    return parse_config(textwrap.dedent(text), env={} if env is None else env)


def problems(text: str, env: dict[str, str] | None = None) -> str:
    """The message of the ConfigError ``text`` raises."""
    with pytest.raises(ConfigError) as info:
        parse(text, env)
    return str(info.value)


def allowed(raw_class: str) -> str:
    """The keys a table accepts, as an unknown-key message lists them."""
    fields = attrs.fields(getattr(config_module, raw_class))
    return ", ".join(sorted(f.name.rstrip("_") for f in fields))


def problem_lines(text: str, env: dict[str, str] | None = None) -> list[str]:
    """The ``  - key.path: message`` lines of the error, without the bullet."""
    return [line.removeprefix("  - ") for line in problems(text, env).splitlines()[1:]]


# --- a valid file: the demo's ----------------------------------------------------------------


@pytest.fixture(scope="module")
def demo() -> Config:
    return parse_config(demo_config_text(), env={}, source="demo")


def test_demo_collections_in_file_order(demo: Config) -> None:
    collections = demo.settings.collections
    assert [(c.id, c.name, c.env, c.schedule) for c in collections] == [
        ("staging-api", "Staging API", "staging", "office-hours"),
        ("dev-environment", "Dev Environment", "dev", "office-hours"),
        ("qa-environment", "QA Environment", "qa", "qa-hours"),
        ("production-api", "Production API", "production", None),
    ]
    assert [len(c.resources) for c in collections] == [5, 8, 3, 3]
    staging, _, qa, production = collections
    assert staging.slack_channel == "#staging-ops"
    assert (staging.confirm_start, staging.confirm_stop) == (False, True)
    assert qa.confirm_start is True
    assert production.resources[2].hourly_price is None  # prod-reporting has no price


def test_demo_resources_carry_money_prices_and_stages(demo: Config) -> None:
    staging = demo.settings.collections[0]
    assert staging.resources[0] == Resource(
        provider="sandbox",
        kind="ec2",
        id="i-0a1b2c3d4e5f60001",
        name="api-server-1",
        region="eu-central-1",
        size="t3.medium",
        stage=1,
        hourly_price=Money(Decimal("0.0416")),
        tags={"sandbox:state": "stopped"},
    )
    cache = staging.resources[4]
    assert (cache.kind, cache.stage, cache.hourly_price) == (
        "elasticache",
        0,
        Money(Decimal("0.17754")),
    )
    # The figure the status card shows.
    assert str(collection_monthly(staging.resources)) == "$350.36"
    qa_app = demo.settings.collections[2].resources[0]
    assert qa_app.tags == (("sandbox:state", "stopped"),)


def test_demo_schedules(demo: Config) -> None:
    schedules = demo.settings.schedules
    assert set(schedules) == {"office-hours", "qa-hours"}
    assert schedules["office-hours"].text() == (
        "Mon-Fri 08:00-19:00 (Europe/Berlin), except 2026-12-24, 2026-12-25, 2026-12-31, 2027-01-01"
    )
    assert schedules["qa-hours"].text() == "Mon-Fri 09:00-17:00 (America/New_York)"


def test_demo_channel_rules_and_accounts(demo: Config) -> None:
    rules = demo.settings.channel_rules
    assert rules[0] == ChannelRule("#platform-team", frozenset({"all"}), ("*",), False)
    assert rules[2] == ChannelRule("#qa-team", frozenset({"start", "stop"}), ("qa-*",), False)
    assert rules[5] == ChannelRule(
        "#infrastructure-approvers", frozenset({"status", "list"}), ("production-*",), True
    )
    assert [r.channel for r in rules] == [
        "#platform-team",
        "#dev-team",
        "#qa-team",
        "#all-hands",
        "#production-ops",
        "#infrastructure-approvers",
    ]
    assert demo.settings.accounts[0] == Account(
        "dave@company.com", Role.MEMBER, ("dev-*", "staging-*", "qa-*"), "Dave (platform team)"
    )
    assert [(a.email, a.role) for a in demo.settings.accounts] == [
        ("dave@company.com", Role.MEMBER),
        ("alice@company.com", Role.MEMBER),
        ("bob@company.com", Role.MEMBER),
        ("carol@company.com", Role.VIEWER),
    ]


def test_demo_approval_rule(demo: Config) -> None:
    assert demo.settings.approval_rules == (
        ApprovalRule(
            ("production-*",),
            Approvers(channel="#infrastructure-approvers", accounts=frozenset({"bob@company.com"})),
            timedelta(minutes=30),
            frozenset({"start", "stop"}),
        ),
    )


def test_demo_notifications_and_host_settings(demo: Config) -> None:
    notifications = demo.settings.notifications
    assert notifications.default_channel == "#nightops-alerts"
    assert notifications.route_for(NotificationKind.ACTION_FAILED) is Route.CHANNEL_AND_DM
    assert notifications.route_for(NotificationKind.SCHEDULE_STARTED) is Route.CHANNEL
    # Kinds the file does not name keep their defaults.
    assert notifications.route_for(NotificationKind.APPROVAL_DECIDED) is Route.CHANNEL_AND_DM
    assert demo.settings.timezone == "Europe/Berlin"
    assert demo.settings.sso_domains == ("company.com",)
    assert demo.providers == {"sandbox": {"transition_seconds": 0.3}}
    assert demo.provider_names == {"sandbox"}
    assert demo.slack is None
    assert demo.source == "demo"


def test_an_empty_file_is_valid_with_defaults() -> None:
    config = parse("")
    assert config.settings.collections == ()
    assert config.state_url == "sqlite:///nightops-state.db"
    assert config.settings.timezone == "UTC"


# --- shape errors: syntax, keys, types --------------------------------------------------------


def test_bad_toml_syntax_names_line_and_column() -> None:
    message = problems('[nightops\nstate = "x"\n')
    assert message.startswith("<string>: not valid TOML:")
    assert "line 1" in message


def test_unknown_key_suggests_the_right_one() -> None:
    lines = problem_lines(
        """
        [[collections]]
        idd = "dev"
        resources = [{ provider = "sandbox", kind = "ec2", id = "i-1" }]
        """
    )
    assert "collections[0]: unknown key 'idd' (did you mean 'id'?); allowed: " in "\n".join(lines)
    assert "collections[0].id: required key is missing" in lines


def test_unknown_top_level_table() -> None:
    assert problem_lines("[nightopz]\n") == [
        "(top level): unknown key 'nightopz' (did you mean 'nightops'?); allowed: "
        + allowed("_RawConfig")
    ]
    assert "accounts, approvals, attention, channels, collections, nightops," in allowed(
        "_RawConfig"
    )


def test_unknown_key_in_schedule_table_offers_except() -> None:
    lines = problem_lines('[schedules.x]\non = ["daily 08:00-18:00"]\nexcept_ = ["2026-12-24"]\n')
    assert lines == [
        "schedules['x']: unknown key 'except_' (did you mean 'except'?); allowed: "
        + allowed("_RawSchedule")
    ]
    assert "except, " in allowed("_RawSchedule")


def test_missing_required_key_has_its_full_path() -> None:
    lines = problem_lines(
        """
        [[collections]]
        id = "dev"
        resources = [{ provider = "sandbox", kind = "ec2" }]
        """
    )
    assert lines == ["collections[0].resources[0].id: required key is missing"]


@pytest.mark.parametrize(
    ("snippet", "expected"),
    [
        (
            'resources = [{ provider = "sandbox", kind = "ec2", id = "i-1", stage = "one" }]',
            "collections[0].resources[0].stage: expected a whole number, got 'one'",
        ),
        (
            'resources = [{ provider = "sandbox", kind = "ec2", id = "i-1", stage = 1.5 }]',
            "collections[0].resources[0].stage: expected a whole number, got 1.5",
        ),
        (
            'confirm_stop = "yes"\n' + ONE_COLLECTION.split("\n", 3)[3],
            "collections[0].confirm_stop: expected true or false, got 'yes'",
        ),
        (
            'name = ["Dev"]\n' + ONE_COLLECTION.split("\n", 3)[3],
            "collections[0].name: expected a string, got ['Dev']",
        ),
        (
            'resources = "i-1"',
            "collections[0].resources: expected a list [...], got 'i-1'",
        ),
        (
            'resources = ["i-1"]',
            "collections[0].resources[0]: expected a table ({ key = value, … } or a [section])",
        ),
        (
            'resources = [{ provider = "sandbox", kind = "ec2", id = "i-1", tags = { a = 1 } }]',
            "collections[0].resources[0].tags['a']: expected a string, got 1",
        ),
    ],
)
def test_wrong_types_are_refused_not_coerced(snippet: str, expected: str) -> None:
    text = f'[[collections]]\nid = "dev"\n{snippet}\n'
    assert problem_lines(text) == [expected]


def test_a_string_is_not_a_boolean_even_when_it_says_no() -> None:
    # "no" would be truthy if coerced: the channel would gain approvals.
    assert problem_lines('[[channels]]\nchannel = "#a"\napprovals = "no"\n') == [
        "channels[0].approvals: expected true or false, got 'no'"
    ]


def test_a_table_where_a_table_is_expected() -> None:
    assert problem_lines("[providers]\nsandbox = 3\n") == [
        "providers['sandbox']: expected a table ({ key = value, … } or a [section])"
    ]


# --- value errors: references, names, formats ------------------------------------------------


def test_unknown_schedule_reference_suggests_the_close_one() -> None:
    lines = problem_lines(
        """
        [schedules.office-hours]
        on = ["Mon-Fri 08:00-19:00"]

        [[collections]]
        id = "dev"
        schedule = "ofice-hours"
        resources = [{ provider = "sandbox", kind = "ec2", id = "i-1" }]
        """
    )
    assert lines == [
        "collections[0].schedule: unknown schedule 'ofice-hours'; did you mean 'office-hours'?"
    ]


def test_schedule_reference_without_any_schedules_says_so() -> None:
    text = ONE_COLLECTION.replace('id = "dev"', 'id = "dev"\nschedule = "nights"')
    assert problem_lines(text) == [
        "collections[0].schedule: unknown schedule 'nights' (there is no [schedules.NAME] table)"
    ]


def test_unknown_timezone_suggests_the_close_one() -> None:
    assert problem_lines(
        '[schedules.office]\ntimezone = "Europe/Berln"\non = ["Mon-Fri 08:00-19:00"]\n'
    ) == ["schedules.office: unknown timezone 'Europe/Berln'; did you mean 'Europe/Berlin'?"]
    assert problem_lines('[nightops]\ntimezone = "Europe/Berln"\n') == [
        "nightops.timezone: unknown timezone 'Europe/Berln'; did you mean 'Europe/Berlin'?"
    ]


def test_bad_window_text_shows_the_expected_form() -> None:
    assert problem_lines('[schedules.x]\non = ["Mon-Fri 8 to 7"]\n') == [
        "schedules.x: bad time range '8' in 'Mon-Fri 8 to 7': use HH:MM-HH:MM, "
        "e.g. 'Mon-Fri 08:00-19:00'"
    ]


def test_schedule_on_may_be_one_string_and_except_are_dates() -> None:
    config = parse(
        '[schedules.x]\ntimezone = "UTC"\non = "daily 07:00-21:00"\nexcept = ["2026-12-24"]\n'
    )
    assert config.settings.schedules["x"].text() == "daily 07:00-21:00 (UTC), except 2026-12-24"


def test_bad_role() -> None:
    assert problem_lines('[[accounts]]\nemail = "a@company.com"\nrole = "admn"\n') == [
        "accounts[0].role: unknown role 'admn'; did you mean 'admin'? "
        "(roles: viewer, member, admin)"
    ]


def test_account_email_must_be_an_email_and_listed_once() -> None:
    assert problem_lines(
        '[[accounts]]\nemail = "alice"\n[[accounts]]\nemail = "b@x.io"\n'
        '[[accounts]]\nemail = "B@x.io"\n'
    ) == [
        "accounts[0].email: 'alice' is not an email address",
        "accounts[2].email: B@x.io is listed twice",
    ]


def test_bad_command_in_channel_rule() -> None:
    assert problem_lines('[[channels]]\nchannel = "#qa"\ncommands = ["start", "strat"]\n') == [
        "channels[0].commands: unknown command 'strat'; did you mean 'start'? "
        '(use "all" or some of: help, link, list, schedule, start, status, stop, whoami)'
    ]


def test_commands_all_may_be_a_single_string() -> None:
    config = parse('[[channels]]\nchannel = "#dev"\ncommands = "all"\n')
    assert config.settings.channel_rules == (ChannelRule("#dev", frozenset({"all"}), ("*",)),)
    single = parse('[[channels]]\nchannel = "#dev"\ncommands = "status"\n')
    assert single.settings.channel_rules[0].commands == frozenset({"status"})


def test_bad_approval_timeout() -> None:
    text = '[[approvals]]\ncollections = ["p-*"]\napprovers = "#ok"\ntimeout = "soon"\n'
    assert problem_lines(text) == [
        "approvals[0].timeout: 'soon' is not a duration: write a number and a unit, "
        "like 30m, 2h, 1h30m or 1d"
    ]


def test_bad_approval_action() -> None:
    text = '[[approvals]]\ncollections = ["p-*"]\napprovers = "#ok"\nactions = ["restart"]\n'
    assert problem_lines(text) == ["approvals[0].actions: 'restart' is not start or stop"]


@pytest.mark.parametrize("approvers", ["[]", "{}", "{ accounts = [] }"])
def test_approvers_may_not_be_empty(approvers: str) -> None:
    text = f'[[approvals]]\ncollections = ["p-*"]\napprovers = {approvers}\n'
    assert problem_lines(text) == [
        'approvals[0].approvers: name who decides: a channel ("#approvers"), '
        'a user group ("@oncall") or account emails'
    ]


def test_approvers_table_refuses_unknown_keys() -> None:
    # A typo must not silently drop the people who may approve.
    text = (
        '[[approvals]]\ncollections = ["p-*"]\n'
        'approvers = { channel = "#ok", acounts = ["bob@x.io"] }\n'
    )
    assert problem_lines(text) == [
        "approvals[0].approvers: unknown key 'acounts' (did you mean 'accounts'?); "
        "allowed: accounts, channel, usergroup"
    ]
    assert allowed("_RawApprovers") == "accounts, channel, usergroup"


@pytest.mark.parametrize(
    ("approvers", "expected"),
    [
        ('"#infra"', Approvers(channel="#infra")),
        ('"C0123ABCD"', Approvers(channel="C0123ABCD")),
        ('"@sre-oncall"', Approvers(usergroup="@sre-oncall")),
        (
            '["#infra", "@sre-oncall", "Bob@Company.com", "carol@company.com"]',
            Approvers("#infra", "@sre-oncall", frozenset({"bob@company.com", "carol@company.com"})),
        ),
        (
            '{ channel = "#infra", usergroup = "S0456DEFG", accounts = ["bob@company.com"] }',
            Approvers("#infra", "S0456DEFG", frozenset({"bob@company.com"})),
        ),
    ],
)
def test_approvers_forms(approvers: str, expected: Approvers) -> None:
    config = parse(f'[[approvals]]\ncollections = ["production-*"]\napprovers = {approvers}\n')
    (rule,) = config.settings.approval_rules
    assert rule.approvers == expected
    assert rule.timeout == timedelta(minutes=30)
    assert rule.actions == frozenset({"start"})


@pytest.mark.parametrize(
    ("approvers", "expected"),
    [
        ('["#infra", "#sre"]', "one channel only: '#infra' and '#sre'"),
        ('["@sre", "S0456DEFG"]', "one user group only: '@sre' and 'S0456DEFG'"),
    ],
)
def test_approvers_list_names_one_channel_and_one_group(approvers: str, expected: str) -> None:
    # Keeping only the last one would silently drop people who may approve.
    text = f'[[approvals]]\ncollections = ["p-*"]\napprovers = {approvers}\n'
    assert problem_lines(text) == [f"approvals[0].approvers: {expected}"]


def test_bad_notification_route() -> None:
    assert problem_lines('[notifications]\naction_failed = "chanel"\n') == [
        "notifications.action_failed: 'chanel' is not a route; did you mean 'channel'? "
        "(use channel, channel+dm, off)"
    ]


def test_notification_default_channel_falls_back_to_slack_default() -> None:
    config = parse('[slack]\ndefault_channel = "#alerts"\n')
    assert config.settings.notifications.default_channel == "#alerts"


def test_bad_state_url() -> None:
    assert problem_lines('[nightops]\nstate = "mysql://db/nightops"\n') == [
        "nightops.state: 'mysql://db/nightops' is not a state URL: use "
        "sqlite:///path/to/state.db or postgresql://user@host/dbname"
    ]


def test_postgres_state_url_is_kept_but_its_password_is_never_shown() -> None:
    config = parse('[nightops]\nstate = "postgresql://nightops:hunter2@db/nightops"\n')
    assert config.state_url == "postgresql://nightops:hunter2@db/nightops"
    assert config.shown_state_url == "postgresql://nightops:***@db/nightops"
    assert "hunter2" not in repr(config)


@pytest.mark.parametrize("bad_id", ["Staging API", "-dev", "dev/env", ""])
def test_bad_collection_id(bad_id: str) -> None:
    text = ONE_COLLECTION.replace('id = "dev"', f'id = "{bad_id}"')
    assert problem_lines(text) == [
        f"collections[0].id: '{bad_id}' is not a collection id: use lowercase letters, digits "
        "and dashes, e.g. staging-api"
    ]


def test_duplicate_collection_ids() -> None:
    assert problem_lines(ONE_COLLECTION + ONE_COLLECTION) == [
        "collections[1].id: collection id 'dev' is used twice"
    ]


def test_duplicate_resources_in_a_collection() -> None:
    text = (
        '[[collections]]\nid = "dev"\nresources = [\n'
        '  { provider = "sandbox", kind = "ec2", id = "i-1" },\n'
        '  { provider = "sandbox", kind = "ec2", id = "i-2" },\n'
        '  { provider = "sandbox", kind = "ec2", id = "i-1", name = "again" },\n]\n'
    )
    assert problem_lines(text) == ["collections[0].resources[2]: resource i-1 is listed twice"]


def test_collection_without_resources() -> None:
    assert problem_lines('[[collections]]\nid = "empty"\n') == [
        "collections[0]: collection 'empty' has no resources and no select rule"
    ]


def test_collection_with_only_a_select_rule_is_valid() -> None:
    config = parse(
        '[[collections]]\nid = "tagged"\n'
        'select = [{ provider = "aws", regions = ["us-east-1"], tags = { team = "web" } }]\n'
    )
    (collection,) = config.settings.collections
    assert collection.resources == ()
    assert collection.selectors[0].tags == (("team", "web"),)
    assert config.provider_names == {"aws"}


@pytest.mark.parametrize(
    ("price", "expected"),
    [
        ('"cheap"', "'cheap' is not a price: write dollars per hour, e.g. 0.0416"),
        ("-1", "'-1' is not a price: write dollars per hour, e.g. 0.0416"),
        ('"nan"', "'nan' is not a price: write dollars per hour, e.g. 0.0416"),
        ("true", "expected an hourly price like 0.0416, got True"),
    ],
)
def test_bad_hourly_price(price: str, expected: str) -> None:
    text = ONE_COLLECTION.replace('id = "i-1"', f'id = "i-1", hourly_price = {price}')
    assert problem_lines(text) == [f"collections[0].resources[0].hourly_price: {expected}"]


@pytest.mark.parametrize("price", ['"0.0416"', "0.0416", "1"])
def test_hourly_price_as_string_or_number(price: str) -> None:
    text = ONE_COLLECTION.replace('id = "i-1"', f'id = "i-1", hourly_price = {price}')
    resource = parse(text).settings.collections[0].resources[0]
    assert resource.hourly_price == Money(Decimal(price.strip('"')))


def test_several_problems_are_reported_at_once() -> None:
    message = problems(
        """
        [nightops]
        state = "mysql://db"

        [[accounts]]
        email = "alice@company.com"
        role = "admn"

        [[channels]]
        channel = "#qa"
        commands = ["strat"]

        [[collections]]
        id = "empty"
        """
    )
    head, *lines = message.splitlines()
    assert head == "<string>: 4 problems:"
    assert [line.split(":")[0] for line in lines] == [
        "  - accounts[0].role",
        "  - channels[0].commands",
        "  - collections[0]",
        "  - nightops.state",
    ]


def test_several_shape_problems_are_reported_at_once() -> None:
    lines = problem_lines('[nightops]\nstat = "x"\n[[accounts]]\nemal = "a@x.io"\n')
    assert lines == [
        "nightops: unknown key 'stat' (did you mean 'state'?); allowed: " + allowed("_RawNightOps"),
        "accounts[0].email: required key is missing",
        "accounts[0]: unknown key 'emal' (did you mean 'email'?); allowed: "
        + allowed("_RawAccount"),
    ]


# --- environment variables and secrets --------------------------------------------------------


def test_env_reference_is_replaced_by_its_value() -> None:
    config = parse(
        '[slack]\nbot_token = "${SLACK_BOT_TOKEN}"\napi_url = "http://${API_HOST}/api/"\n',
        env={"SLACK_BOT_TOKEN": "xoxb-123-secret", "API_HOST": "127.0.0.1:9000"},
    )
    assert config.slack is not None
    assert config.slack.bot_token is not None
    assert config.slack.bot_token.reveal() == "xoxb-123-secret"
    assert config.slack.api_url == "http://127.0.0.1:9000/api/"
    assert config.slack.signing_secret is None


def test_missing_env_variable_is_named_with_its_key() -> None:
    text = '[slack]\nbot_token = "${SLACK_BOT_TOKEN}"\nsigning_secret = "${SLACK_SIGNING}"\n'
    assert problem_lines(text, env={"SLACK_BOT_TOKEN": "xoxb-1"}) == [
        "slack.signing_secret: environment variable SLACK_SIGNING is not set"
    ]


def test_load_config_reads_the_process_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NIGHTOPS_TEST_TOKEN", "xoxb-from-env")
    file = tmp_path / "nightops.toml"
    file.write_text('[slack]\nbot_token = "${NIGHTOPS_TEST_TOKEN}"\n', encoding="utf-8")
    config = load_config(file)
    assert config.slack is not None
    assert config.slack.bot_token is not None
    assert config.slack.bot_token.reveal() == "xoxb-from-env"


def test_secret_never_shows_its_value() -> None:
    config = parse(
        '[slack]\nbot_token = "${TOKEN}"\nsigning_secret = "${SIGNING}"\nclient_id = "123.456"\n',
        env={"TOKEN": "xoxb-very-secret", "SIGNING": "s1gn1ng-s3cret"},
    )
    assert config.slack is not None
    token = config.slack.bot_token
    assert isinstance(token, Secret)
    assert repr(token) == str(token) == "Secret(slack.bot_token)"
    assert f"{token}" == "Secret(slack.bot_token)"
    for shown in (repr(config), str(config), repr(config.slack)):
        assert "xoxb-very-secret" not in shown
        assert "s1gn1ng-s3cret" not in shown
    assert Secret("abc") != Secret("abd")
    assert repr(Secret("abc")) == "Secret(***)"


def test_config_error_never_contains_a_value_from_the_environment() -> None:
    secret_url = "mysql://nightops:hunter2@db/nightops"
    message = problems(
        '[nightops]\nstate = "${DATABASE_URL}"\n[slack]\nbot_token = "${TOKEN}"\nbogus = 1\n',
        env={"DATABASE_URL": secret_url, "TOKEN": "xoxb-very-secret"},
    )
    assert "hunter2" not in message
    assert "xoxb-very-secret" not in message
    assert "slack: unknown key 'bogus'" in message
    # Shape errors come first: fix the key, and the state URL is reported by name.
    message = problems('[nightops]\nstate = "${DATABASE_URL}"\n', env={"DATABASE_URL": secret_url})
    assert "hunter2" not in message
    assert "nightops.state: '${DATABASE_URL}' is not a state URL" in message


# --- files ------------------------------------------------------------------------------------


def test_relative_sqlite_path_is_taken_relative_to_the_config_file(tmp_path: Path) -> None:
    folder = tmp_path / "etc"
    folder.mkdir()
    file = folder / "nightops.toml"
    file.write_text('[nightops]\nstate = "sqlite:///data/state.db"\n', encoding="utf-8")
    config = load_config(file)
    assert config.state_url == f"sqlite:///{folder / 'data' / 'state.db'}"
    assert config.source == str(file)


def test_absolute_sqlite_path_and_memory_are_kept(tmp_path: Path) -> None:
    file = tmp_path / "nightops.toml"
    file.write_text(f'[nightops]\nstate = "sqlite:///{tmp_path}/s.db"\n', encoding="utf-8")
    assert load_config(file).state_url == f"sqlite:///{tmp_path}/s.db"
    file.write_text('[nightops]\nstate = "sqlite:///:memory:"\n', encoding="utf-8")
    assert load_config(file).state_url == "sqlite:///:memory:"


def test_errors_of_a_file_name_the_file(tmp_path: Path) -> None:
    file = tmp_path / "nightops.toml"
    file.write_text('[[collections]]\nid = "empty"\n', encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_config(file)
    assert str(info.value).startswith(f"{file}: 1 problem:\n  - collections[0]: ")


def test_missing_file(tmp_path: Path) -> None:
    missing = tmp_path / "nope.toml"
    with pytest.raises(ConfigError) as info:
        load_config(missing)
    assert str(info.value) == f"{missing}: no such file. Pass the path of your nightops.toml."


# --- docs/configuration.md documents exactly the keys config.py accepts ----------------------

_MARKER = re.compile(r"<!-- keys: (\w+) -->\n+((?:\|.*\n)+)")


def _raw_classes() -> dict[str, type]:
    return {
        name: value
        for name, value in vars(config_module).items()
        if name.startswith("_Raw") and attrs.has(value)
    }


def _documented_tables() -> dict[str, list[list[str]]]:
    """``<!-- keys: _RawX -->`` markers and the rows (cells) of the table that follows."""
    text = (DOCS / "configuration.md").read_text(encoding="utf-8")
    tables: dict[str, list[list[str]]] = {}
    for match in _MARKER.finditer(text):
        name, table = match.groups()
        assert name not in tables, f"docs/configuration.md documents {name} twice"
        rows = [
            [cell.strip() for cell in line.strip().strip("|").split(" | ")]
            for line in table.splitlines()
        ]
        assert rows[0][:3] == ["key", "type", "default"], f"{name}: header is {rows[0]}"
        tables[name] = rows[2:]  # after the header and the |---| line
    return tables


def test_configuration_doc_lists_every_table() -> None:
    assert set(_documented_tables()) == set(_raw_classes())


@pytest.mark.parametrize("name", sorted(_raw_classes()))
def test_configuration_doc_lists_exactly_the_keys_of(name: str) -> None:
    rows = _documented_tables()[name]
    documented = {row[0].strip("`"): row for row in rows}
    fields = {f.name.rstrip("_"): f for f in attrs.fields(_raw_classes()[name])}
    assert sorted(documented) == sorted(fields), f"docs/configuration.md, table {name}"
    for key, field in fields.items():
        default = documented[key][2]
        required = field.default is attrs.NOTHING
        assert (default == "required") == required, f"{name}.{key}: default column {default!r}"
        assert documented[key][3], f"{name}.{key} has no meaning"


# --- attention, PagerDuty, on-call -------------------------------------------------------------


def test_attention_pagerduty_and_oncall() -> None:
    config = parse(
        """
        [attention]
        interval = "2m"
        stuck_after = "20m"
        max_enforce_attempts = 5

        [pagerduty]
        routing_key = "${PD_KEY}"
        severity = "warning"
        api_token = "${PD_TOKEN}"

        [oncall]
        schedule = "PSCHED1"
        slack_usergroup = "S0123ABC"

        [[collections]]
        id = "dev"
        policy = "enforce"
        oncall = true
        pagerduty_severity = "critical"
        resources = [{ provider = "sandbox", kind = "ec2", id = "i-1" }]
        """,
        env={"PD_KEY": "routing-key-1", "PD_TOKEN": "token-1"},
    )
    attention = config.attention
    assert attention.interval == timedelta(minutes=2)
    assert attention.thresholds.stuck_after == timedelta(minutes=20)
    assert attention.thresholds.settle == timedelta(minutes=10)
    assert attention.max_enforce_attempts == 5
    policy = attention.policy_for("dev")
    assert (policy.policy.value, policy.oncall, policy.severity) == ("enforce", True, "critical")
    assert attention.pagerduty is not None
    assert attention.pagerduty.routing_key == "routing-key-1"
    assert "routing-key-1" not in repr(attention)
    assert attention.oncall.schedule == "PSCHED1"
    assert attention.policy_for("other").policy.value == "notify"


def test_attention_problems() -> None:
    lines = problem_lines(
        """
        [attention]
        max_enforce_attempts = 0

        [pagerduty]
        severity = "urgent"
        events_url = "http://127.0.0.1:9"

        [oncall]
        schedule = "PSCHED1"

        [[collections]]
        id = "dev"
        policy = "enforc"
        resources = [{ provider = "sandbox", kind = "ec2", id = "i-1" }]

        [[collections]]
        id = "qa"
        oncall = true
        resources = [{ provider = "sandbox", kind = "ec2", id = "i-2" }]
        """
    )
    assert lines == [
        "attention.max_enforce_attempts: must be at least 1",
        "pagerduty.severity: 'urgent' is not a severity (use critical, error, warning, info)",
        "pagerduty.events_url: 'http://127.0.0.1:9' must start with https://",
        "oncall: finding who is on call in PagerDuty needs [pagerduty] api_token "
        "(a read-only REST API key)",
        "collections[0].policy: 'enforc' is not a policy; did you mean 'enforce'? "
        "(use notify, enforce)",
        "collections[1].oncall: paging on-call needs a routing key: set [pagerduty] "
        "routing_key or pagerduty_routing_key here",
    ]

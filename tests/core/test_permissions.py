"""Channel rules x user accounts: the product docs' channel table, ID and glob matching,
and properties over random rule sets (DESIGN.md §4, docs/permissions.md)."""

from __future__ import annotations

import fnmatch

import pytest
from hypothesis import given
from hypothesis import strategies as st

from nightops_core.permissions import (
    ALL_COMMANDS,
    MUTATING_COMMANDS,
    PERSONAL_COMMANDS,
    Account,
    Channel,
    ChannelRule,
    Decision,
    Policy,
    Refuser,
    Role,
    glob_matches,
    is_channel_id,
)

# --- the product docs' channel table ----------------------------------------------------------

RULES = (
    ChannelRule("#dev-team", {"all"}, ("dev-*", "staging-*")),
    ChannelRule("#qa-team", {"start", "stop"}, ("qa-*",)),
    ChannelRule("#all-hands", {"status"}, ("*",)),
    ChannelRule("#production-ops", {"all"}, ("production-*",), approvals=True),
)
ALICE = Account("alice@company.com", Role.MEMBER, ("staging-*", "qa-*"), name="Alice")
CAROL = Account("carol@company.com", Role.VIEWER)
DAVE = Account("dave@company.com", Role.ADMIN)
USERS: dict[str, Account | None] = {"alice": ALICE, "carol": CAROL, "dave": DAVE, "unlinked": None}
POLICY = Policy(RULES, [ALICE, CAROL, DAVE])

DEV = Channel(id="C0DEV1", name="dev-team")
QA = Channel(id="C0QA01", name="#qa-team")
ALL_HANDS = Channel(id="C0ALL1", name="all-hands")
PROD = Channel(id="C0PRD1", name="production-ops")
RANDOM = Channel(id="C0RND1", name="random")
CHANNELS = {"#dev-team": DEV, "#qa-team": QA, "#all-hands": ALL_HANDS, "#production-ops": PROD}
CHANNELS["#random"] = RANDOM

ALLOW = "allow"
CH = Refuser.CHANNEL
USER = Refuser.USER
NOT_LINKED = "You are not linked to a NightOps account. Run /nightops link."
VIEWER = "your role is viewer; ask an admin for member"
ALICE_GLOBS = "only staging-* and qa-*"
ADD_RULE = "ask an admin to add a [[channels]] rule"

# (channel, user, command, collection, expected, a fragment the reason must contain)
TABLE: list[tuple[str, str, str, str | None, object, str]] = [
    # #dev-team: all commands on dev-*, staging-*
    ("#dev-team", "alice", "start", "staging-api", ALLOW, "allowed by channel rule #dev-team"),
    ("#dev-team", "alice", "stop", "staging-api", ALLOW, "alice@company.com's access to staging-*"),
    ("#dev-team", "alice", "start", "dev-api", USER, ALICE_GLOBS),
    ("#dev-team", "alice", "schedule", "staging-api", ALLOW, "#dev-team"),
    ("#dev-team", "alice", "start", "production-api", CH, "e.g. #production-ops"),
    ("#dev-team", "alice", "status", "production-api", ALLOW, "every channel"),
    ("#dev-team", "dave", "start", "dev-api", ALLOW, "admin access to every collection"),
    ("#dev-team", "dave", "stop", "staging-api", ALLOW, "#dev-team"),
    ("#dev-team", "carol", "start", "staging-api", USER, VIEWER),
    ("#dev-team", "carol", "status", "dev-api", ALLOW, "every channel"),
    ("#dev-team", "unlinked", "start", "staging-api", USER, NOT_LINKED),
    ("#dev-team", "unlinked", "stop", "dev-api", USER, NOT_LINKED),
    ("#dev-team", "unlinked", "status", "staging-api", ALLOW, "every channel"),
    ("#dev-team", "unlinked", "list", None, ALLOW, "every channel"),
    # #qa-team: start/stop on qa-*
    ("#qa-team", "alice", "start", "qa-api", ALLOW, "access to qa-*"),
    ("#qa-team", "alice", "stop", "qa-api", ALLOW, "#qa-team"),
    ("#qa-team", "dave", "stop", "qa-web", ALLOW, "#qa-team"),
    ("#qa-team", "alice", "start", "staging-api", CH, "e.g. #dev-team"),
    # rules only grant: #qa-team keeps the reads every channel has
    ("#qa-team", "alice", "status", "qa-api", ALLOW, "every channel"),
    ("#qa-team", "alice", "schedule", "staging-api", CH, "e.g. #dev-team"),
    ("#qa-team", "dave", "schedule", "qa-api", CH, "Ask an admin to add a [[channels]] rule"),
    ("#qa-team", "carol", "start", "qa-api", USER, VIEWER),
    ("#qa-team", "unlinked", "start", "qa-api", USER, NOT_LINKED),
    # #all-hands: status on *
    ("#all-hands", "alice", "start", "staging-api", CH, "#all-hands does not allow start on"),
    ("#all-hands", "dave", "start", "staging-api", CH, "e.g. #dev-team"),
    ("#all-hands", "dave", "stop", "production-api", CH, "e.g. #production-ops"),
    ("#all-hands", "unlinked", "start", "staging-api", CH, ADD_RULE),
    ("#all-hands", "unlinked", "status", "production-api", ALLOW, "every channel"),
    ("#all-hands", "carol", "status", None, ALLOW, "every channel"),
    ("#all-hands", "alice", "list", None, ALLOW, "every channel"),
    ("#all-hands", "dave", "schedule", "dev-api", CH, "e.g. #dev-team"),
    # #production-ops: all + approvals on production-*
    ("#production-ops", "dave", "start", "production-api", ALLOW, "#production-ops"),
    ("#production-ops", "alice", "start", "production-api", USER, ALICE_GLOBS),
    ("#production-ops", "carol", "stop", "production-api", USER, VIEWER),
    ("#production-ops", "unlinked", "start", "production-api", USER, NOT_LINKED),
    ("#production-ops", "dave", "start", "staging-api", CH, "e.g. #dev-team"),
    ("#production-ops", "carol", "status", "production-api", ALLOW, "every channel"),
    # #random: no rule -> status, list, help only
    ("#random", "unlinked", "status", "production-api", ALLOW, "every channel"),
    ("#random", "unlinked", "list", None, ALLOW, "every channel"),
    ("#random", "carol", "status", None, ALLOW, "every channel"),
    ("#random", "dave", "start", "dev-api", CH, "no [[channels]] rule matches"),
    ("#random", "dave", "stop", "staging-api", CH, "e.g. #dev-team"),
    ("#random", "alice", "start", "qa-api", CH, "e.g. #qa-team"),
    ("#random", "unlinked", "start", "staging-api", CH, ADD_RULE),
    ("#random", "dave", "schedule", "dev-api", CH, "only help, link, list, status and whoami"),
]


@pytest.mark.parametrize(
    ("channel", "user", "command", "collection", "expected", "fragment"),
    TABLE,
    ids=[f"{c}-{u}-{cmd}-{coll}" for c, u, cmd, coll, _, _ in TABLE],
)
def test_channel_table(
    channel: str,
    user: str,
    command: str,
    collection: str | None,
    expected: object,
    fragment: str,
) -> None:
    decision = POLICY.check(USERS[user], CHANNELS[channel], command, collection)
    assert fragment in decision.reason
    if expected == ALLOW:
        assert decision.allowed
        assert decision.refused_by is None
    else:
        assert not decision.allowed
        assert decision.refused_by is expected


@pytest.mark.parametrize("channel", list(CHANNELS.values()))
@pytest.mark.parametrize("user", list(USERS))
@pytest.mark.parametrize("command", sorted(PERSONAL_COMMANDS))
def test_personal_commands_always_allowed(channel: Channel, user: str, command: str) -> None:
    assert POLICY.check(USERS[user], channel, command)
    assert POLICY.check(USERS[user], Channel(), command, "anything")


def test_channel_denial_reads_like_the_docs() -> None:
    decision = POLICY.check(ALICE, ALL_HANDS, "start", "staging-api")
    assert decision.reason == (
        "#all-hands does not allow start on staging-api (its rules allow only status). "
        "Use a channel whose rule allows it, e.g. #dev-team, "
        "or ask an admin to add a [[channels]] rule."
    )


def test_allowed_reason_names_rule_and_access() -> None:
    decision = POLICY.check(ALICE, DEV, "start", "staging-api")
    assert decision == Decision(
        True, "allowed by channel rule #dev-team and alice@company.com's access to staging-*"
    )


def test_user_denial_names_globs_and_fix() -> None:
    decision = POLICY.check(ALICE, DEV, "stop", "dev-api")
    assert decision.reason == (
        "You (alice@company.com) may stop only staging-* and qa-*, not dev-api; "
        "ask an admin to add dev-api to your account's collections."
    )


def test_no_suggestion_when_no_exact_rule_allows_it() -> None:
    decision = POLICY.check(DAVE, RANDOM, "start", "legacy-db")
    assert not decision
    assert "e.g." not in decision.reason
    assert "Ask an admin to add a [[channels]] rule that allows it." in decision.reason


def test_channel_is_checked_before_the_user() -> None:
    decision = POLICY.check(None, RANDOM, "start", "staging-api")
    assert decision.refused_by is Refuser.CHANNEL


def test_unknown_command_denied() -> None:
    decision = POLICY.check(DAVE, DEV, "reboot", "dev-api")
    assert not decision
    assert "Unknown command 'reboot'" in decision.reason


def test_member_without_collections_may_change_nothing() -> None:
    bob = Account("bob@company.com", Role.MEMBER)
    decision = POLICY.check(bob, DEV, "start", "dev-api")
    assert decision.refused_by is Refuser.USER
    assert "have no collections you may start" in decision.reason


def test_admin_with_globs_is_limited_to_them() -> None:
    erin = Account("erin@company.com", Role.ADMIN, ("dev-*",))
    assert POLICY.check(erin, DEV, "start", "dev-api")
    assert POLICY.check(erin, DEV, "start", "staging-api").refused_by is Refuser.USER


def test_mutating_without_collection_checks_command_and_role() -> None:
    assert POLICY.check(ALICE, QA, "start")
    assert POLICY.check(ALICE, ALL_HANDS, "start").refused_by is Refuser.CHANNEL
    assert POLICY.check(CAROL, QA, "start").refused_by is Refuser.USER


def test_account_lookup_is_case_insensitive() -> None:
    assert POLICY.account("Alice@Company.COM") is ALICE
    assert POLICY.account(" dave@company.com ") is DAVE
    assert POLICY.account("nobody@company.com") is None
    assert POLICY.account(None) is None
    assert Account("Bob@Company.com").email == "bob@company.com"


def test_first_account_for_an_email_wins() -> None:
    first = Account("x@company.com", Role.MEMBER)
    policy = Policy([], [first, Account("X@company.com", Role.ADMIN)])
    assert policy.account("x@company.com") is first


def test_visible() -> None:
    assert POLICY.visible(DEV, "list", "dev-api")
    assert POLICY.visible(DEV, "status", "staging-web")
    assert not POLICY.visible(DEV, "list", "production-api")
    assert POLICY.visible(ALL_HANDS, "status", "production-api")
    assert POLICY.visible(ALL_HANDS, "list", "production-api")
    # a team channel's overview keeps to the collections its rules cover
    assert POLICY.visible(QA, "status", "qa-api")
    assert not POLICY.visible(QA, "status", "dev-api")
    assert POLICY.visible(RANDOM, "status", "production-api")
    assert POLICY.visible(RANDOM, "list", "anything")
    assert not POLICY.visible(RANDOM, "schedule", "dev-api")
    assert not POLICY.visible(DEV, "reboot", "dev-api")


def test_may_decide_approvals() -> None:
    assert POLICY.may_decide_approvals(PROD)
    assert POLICY.may_decide_approvals(Channel(name="#Production-Ops"))
    assert not POLICY.may_decide_approvals(DEV)
    assert not POLICY.may_decide_approvals(RANDOM)
    assert not POLICY.may_decide_approvals(Channel())


# --- matching by ID, by name, by glob --------------------------------------------------------


def test_match_by_id_without_a_name() -> None:
    policy = Policy([ChannelRule("C123", {"start"}, ("dev-*",))], [DAVE])
    assert policy.check(DAVE, Channel(id="C123", name=None), "start", "dev-api")
    assert not policy.check(DAVE, Channel(id="C124", name=None), "start", "dev-api")


def test_renamed_channel_still_matched_by_id() -> None:
    policy = Policy([ChannelRule("C0123ABC", {"all"}, ("dev-*",))], [DAVE])
    decision = policy.check(DAVE, Channel(id="C0123ABC", name="#dev-team-old"), "stop", "dev-x")
    assert decision.reason == (
        "allowed by channel rule C0123ABC and dave@company.com's admin access to every collection"
    )


def test_id_rule_never_matches_a_channel_name() -> None:
    # Anyone can create a channel called "c0123abc"; it must not inherit C0123ABC's rule.
    policy = Policy([ChannelRule("C0123ABC", {"all"}, ("*",))], [DAVE])
    assert not policy.check(DAVE, Channel(id="C0OTHER9", name="c0123abc"), "start", "x")
    assert not policy.check(DAVE, Channel(name="C0123ABC"), "start", "x")


def test_name_rule_matches_with_or_without_hash_and_any_case() -> None:
    policy = Policy([ChannelRule("dev-team", {"start"}, ("dev-*",))], [DAVE])
    for name in ("#dev-team", "dev-team", "#Dev-Team", "DEV-TEAM"):
        assert policy.check(DAVE, Channel(name=name), "start", "dev-api"), name
    assert not policy.check(DAVE, Channel(name="dev-team-2"), "start", "dev-api")


def test_glob_channel_rule() -> None:
    policy = Policy([ChannelRule("#nightops-*", {"start"}, ("sandbox-*",))], [DAVE])
    assert policy.check(DAVE, Channel(name="#nightops-berlin"), "start", "sandbox-1")
    assert policy.check(DAVE, Channel(id="C9", name="NightOps-Paris"), "start", "sandbox-1")
    assert not policy.check(DAVE, Channel(name="#nightops"), "start", "sandbox-1")
    assert not policy.check(DAVE, Channel(name="#other-nightops-x"), "start", "sandbox-1")
    assert not policy.check(DAVE, Channel(id="C9"), "start", "sandbox-1")


def test_glob_id_rule_and_bracket_globs() -> None:
    policy = Policy(
        [
            ChannelRule("C0*", {"start"}, ("a-*",)),
            ChannelRule("#team-[ab]", {"stop"}, ("b-*",)),
            ChannelRule("#?-ops", {"status"}, ("*",)),
        ],
        [DAVE],
    )
    assert policy.check(DAVE, Channel(id="C0XYZ"), "start", "a-1")
    assert not policy.check(DAVE, Channel(id="C1XYZ"), "start", "a-1")
    assert policy.check(DAVE, Channel(name="team-b"), "stop", "b-1")
    assert not policy.check(DAVE, Channel(name="team-c"), "stop", "b-1")
    assert policy.check(None, Channel(name="x-ops"), "status", "anything")
    assert policy.rules_for(Channel(name="xy-ops")) == ()


def test_matching_rules_add_up() -> None:
    policy = Policy(
        [
            ChannelRule("#nightops-*", {"status"}, ("*",)),
            ChannelRule("#nightops-dev", {"start"}, ("dev-*",)),
            ChannelRule("C42", {"stop"}, ("staging-*",), approvals=True),
        ],
        [DAVE],
    )
    channel = Channel(id="C42", name="nightops-dev")
    assert [r.channel for r in policy.rules_for(channel)] == ["#nightops-*", "#nightops-dev", "C42"]
    assert policy.check(DAVE, channel, "status", "prod-x")
    assert policy.check(DAVE, channel, "start", "dev-api")
    assert policy.check(DAVE, channel, "stop", "staging-api")
    assert not policy.check(DAVE, channel, "stop", "dev-api")
    assert policy.check(DAVE, channel, "list")  # reads are open in every channel
    assert not policy.check(DAVE, channel, "schedule")
    assert policy.may_decide_approvals(channel)
    assert not policy.may_decide_approvals(Channel(name="nightops-dev"))


def test_channel_str() -> None:
    assert str(Channel(name="dev")) == "#dev"
    assert str(Channel(name="#dev")) == "#dev"
    assert str(Channel(id="C1")) == "C1"
    assert str(Channel()) == "this channel"


def test_helpers() -> None:
    assert is_channel_id("C0123ABC")
    assert is_channel_id("G01ABC")
    assert not is_channel_id("dev-team")
    assert not is_channel_id("DEVOPS")
    assert glob_matches(("a-*", "b-*"), "b-1") == "b-*"
    assert glob_matches(("a-*",), "A-1") is None


# --- properties over random rule sets --------------------------------------------------------

NAMES = ["dev", "dev-team", "qa", "nightops-x", "nightops-y", "ops", "random", "Dev-Team"]
IDS = ["C01", "C02", "C0A1", "G77"]
channel_patterns = st.sampled_from(
    [*NAMES, *(f"#{n}" for n in NAMES), *IDS, "#nightops-*", "nightops-?", "#*", "C0*", "*-team"]
)
collection_globs = st.lists(st.sampled_from(["*", "dev-*", "qa-*", "prod-?", "x"]), max_size=3)
command_sets = st.frozensets(st.sampled_from([*sorted(ALL_COMMANDS), "all", "bogus"]))
rules_strategy = st.lists(
    st.builds(ChannelRule, channel_patterns, command_sets, collection_globs, st.booleans()),
    max_size=8,
)
channels = st.builds(
    Channel,
    st.none() | st.sampled_from([*IDS, "C99"]),
    st.none() | st.sampled_from([*NAMES, *(f"#{n}" for n in NAMES), "elsewhere"]),
)
accounts = st.none() | st.builds(
    Account,
    st.just("someone@company.com"),
    st.sampled_from(list(Role)),
    collection_globs,
)
collections = st.sampled_from(["dev-api", "qa-web", "prod-1", "x", "other"])


def naive_matches(rule: ChannelRule, channel: Channel) -> bool:
    """A slow, obviously-right reading of the matching rules, to compare Policy against."""
    pattern = rule.channel.strip()
    if not pattern.startswith("#") and is_channel_id(pattern):
        return channel.id is not None and fnmatch.fnmatchcase(channel.id, pattern)
    if channel.name is None:
        return False
    name = channel.name.removeprefix("#").lower()
    return fnmatch.fnmatchcase(name, pattern.removeprefix("#").lower())


@given(rules_strategy, channels, st.sampled_from(sorted(MUTATING_COMMANDS)), collections)
def test_unlinked_user_never_starts_or_stops(
    rules: list[ChannelRule], channel: Channel, command: str, collection: str
) -> None:
    policy = Policy(rules, [])
    assert not policy.check(None, channel, command, collection)
    assert not policy.check(None, channel, command)


@given(rules_strategy, channels, accounts, st.sampled_from(sorted(MUTATING_COMMANDS)), collections)
def test_channel_without_matching_rule_never_starts_or_stops(
    rules: list[ChannelRule],
    channel: Channel,
    account: Account | None,
    command: str,
    collection: str,
) -> None:
    policy = Policy(rules, [])
    if not any(naive_matches(r, channel) for r in rules):
        decision = policy.check(account, channel, command, collection)
        assert not decision
        assert decision.refused_by is Refuser.CHANNEL


@given(rules_strategy, channels)
def test_index_finds_exactly_the_naively_matching_rules(
    rules: list[ChannelRule], channel: Channel
) -> None:
    policy = Policy(rules, [])
    assert list(policy.rules_for(channel)) == [r for r in rules if naive_matches(r, channel)]


@given(rules_strategy, channels, accounts, st.sampled_from(sorted(ALL_COMMANDS)), collections)
def test_check_agrees_with_a_naive_reading(
    rules: list[ChannelRule],
    channel: Channel,
    account: Account | None,
    command: str,
    collection: str,
) -> None:
    policy = Policy(rules, [])
    matched = [r for r in rules if naive_matches(r, channel)]
    channel_ok = any(
        ("all" in r.commands or command in r.commands)
        and any(fnmatch.fnmatchcase(collection, g) for g in r.collections)
        for r in matched
    ) or command in {"status", "list", "help"}
    if command in PERSONAL_COMMANDS:
        expected = True
    elif command in MUTATING_COMMANDS:
        globs = account.collections if account else ()
        if account is not None and account.role is Role.ADMIN and not globs:
            globs = ("*",)
        user_ok = (
            account is not None
            and account.role is not Role.VIEWER
            and any(fnmatch.fnmatchcase(collection, g) for g in globs)
        )
        expected = channel_ok and user_ok
    else:
        expected = channel_ok
    decision = policy.check(account, channel, command, collection)
    assert decision.allowed is expected, decision.reason
    assert decision.reason
    assert (decision.refused_by is None) is decision.allowed

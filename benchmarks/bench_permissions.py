"""How long one permission check takes with 1,000 channel rules and 10,000 accounts.

Target: median < 20 µs per check. Run with pytest-benchmark::

    .venv/bin/pytest benchmarks/bench_permissions.py --benchmark-only

or as a script (prints the median of each scenario)::

    .venv/bin/python benchmarks/bench_permissions.py
"""

from __future__ import annotations

import functools
import statistics
import time
from collections.abc import Callable
from typing import Any

import pytest

from nightops_core.permissions import Account, Channel, ChannelRule, Decision, Policy, Role

N_RULES = 1_000
N_ACCOUNTS = 10_000
TARGET_SECONDS = 20e-6


def make_rules() -> list[ChannelRule]:
    """700 exact names, 100 IDs, 180 prefixed globs, 20 globs starting with ``*``."""
    rules: list[ChannelRule] = []
    for i in range(700):
        commands = {"all"} if i % 3 == 0 else {"start", "stop", "status"}
        rules.append(ChannelRule(f"#team-{i}", commands, (f"env{i}-*", f"shared-{i % 10}-*")))
    rules.extend(ChannelRule(f"C{i:08d}X", {"all"}, (f"env{i}-*",)) for i in range(100))
    rules.extend(
        ChannelRule(f"#squad-{i}-*", {"status", "list"}, (f"env{i}-*",)) for i in range(180)
    )
    rules.extend(ChannelRule(f"#*-ops-{i}", {"start"}, ("ops-*",)) for i in range(20))
    assert len(rules) == N_RULES
    return rules


def make_accounts() -> list[Account]:
    roles = (Role.VIEWER, Role.MEMBER, Role.MEMBER, Role.ADMIN)
    return [
        Account(
            f"user{i}@company.com",
            roles[i % 4],
            (f"env{i % 700}-*", "shared-*") if i % 4 != 3 else (),
        )
        for i in range(N_ACCOUNTS)
    ]


POLICY = Policy(make_rules(), make_accounts())

#: name -> (email, channel, command, collection, expected allowed)
SCENARIOS: dict[str, tuple[str, Channel, str, str | None, bool]] = {
    "start-exact-name": ("user1@company.com", Channel("C1", "#team-1"), "start", "env1-api", True),
    "start-by-id": (
        "user7@company.com",
        Channel("C00000007X", "renamed"),
        "start",
        "env7-db",
        True,
    ),
    "status-glob-rule": (
        "user2@company.com",
        Channel("C2", "#squad-5-eu"),
        "status",
        "env5-x",
        True,
    ),
    "start-denied-user": (
        "user5@company.com",
        Channel("C3", "#team-6"),
        "start",
        "env6-api",
        False,
    ),
    "start-no-rule": ("user1@company.com", Channel("C4", "#random"), "start", "env1-api", False),
}


def one_check(email: str, channel: Channel, command: str, collection: str | None) -> Decision:
    """What an adapter does per command: find the account, then ask the policy."""
    return POLICY.check(POLICY.account(email), channel, command, collection)


@pytest.mark.parametrize("scenario", list(SCENARIOS))
def test_check_1000_rules_10000_accounts(benchmark: Any, scenario: str) -> None:
    email, channel, command, collection, expected = SCENARIOS[scenario]
    decision = benchmark(one_check, email, channel, command, collection)
    assert decision.allowed is expected, decision.reason
    assert benchmark.stats.stats.median < TARGET_SECONDS


def test_build_policy(benchmark: Any) -> None:
    rules, accounts = make_rules(), make_accounts()
    benchmark.pedantic(Policy, args=(rules, accounts), rounds=5, iterations=1)


def _median_seconds(call: Callable[[], object], *, number: int = 2_000, repeat: int = 25) -> float:
    samples = []
    for _ in range(repeat):
        start = time.perf_counter()
        for _ in range(number):
            call()
        samples.append((time.perf_counter() - start) / number)
    return statistics.median(samples)


if __name__ == "__main__":
    start = time.perf_counter()
    Policy(make_rules(), make_accounts())
    built = time.perf_counter() - start
    print(f"build Policy ({N_RULES} rules, {N_ACCOUNTS} accounts): {built:.3f} s")
    for name, (email, channel, command, collection, _) in SCENARIOS.items():
        median = _median_seconds(functools.partial(one_check, email, channel, command, collection))
        print(f"{name:20} median {median * 1e6:6.2f} µs per check")

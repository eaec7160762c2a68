"""docs/iam-policy.json lists exactly the AWS API actions the provider calls.

Two views of "what the provider calls" must agree with the policy: the operations named
in the provider's source (every ``api.call`` / ``api.pages``), and the operations it is
seen calling (a botocore ``before-call`` hook on its clients) while it starts, stops,
describes and discovers every kind, across accounts and regions.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from aws_fixtures import OTHER_ACCOUNT, OTHER_ROLE, REGION, Cloud, make_provider, shared_session
from aws_fixtures import aws as aws  # fixtures, used by name
from aws_fixtures import clock as clock
from aws_fixtures import cloud as cloud
from contract import FakeTime

from nightops_core.model import ResourceState, Selector
from nightops_providers.aws._api import IAM_PREFIX

ROOT = Path(__file__).resolve().parents[2]
SOURCE = ROOT / "src" / "nightops_providers" / "aws"
POLICY = ROOT / "docs" / "iam-policy.json"


def policy_actions() -> set[str]:
    policy = json.loads(POLICY.read_text(encoding="utf-8"))
    actions: set[str] = set()
    for statement in policy["Statement"]:
        assert statement["Effect"] == "Allow"
        listed = statement["Action"]
        actions.update([listed] if isinstance(listed, str) else listed)
    return actions


def source_actions() -> set[str]:
    """The operations named at the provider's call sites: ``"service", "method"`` pairs
    (``f"{verb}_…"`` read as both start and stop), and the EC2 operations handed to the
    batching helper ``_isolating``."""
    code = "\n".join(path.read_text(encoding="utf-8") for path in sorted(SOURCE.glob("*.py")))
    services = "|".join(IAM_PREFIX)
    calls = [
        (service, name)
        for service, method in re.findall(rf'"({services})",\s*(f?"[\w{{}}]+")', code)
        for name in (
            [method[2:-1].replace("{verb}", verb) for verb in ("start", "stop")]
            if method.startswith("f")
            else [method[1:-1]]
        )
    ]
    calls += [("ec2", name) for name in re.findall(r'_isolating\(\s*\w+,\s*"(\w+)"', code)]
    assert calls, "no call sites found: has the provider's source moved?"
    found: set[str] = set()
    for service, name in calls:
        mapping = shared_session().client(service, region_name=REGION).meta.method_to_api_mapping
        if name in mapping:  # (not every "service", "word" pair is a call)
            found.add(f"{IAM_PREFIX[service]}:{mapping[name]}")
    return found


def test_the_policy_is_exactly_what_the_source_calls() -> None:
    assert source_actions() == policy_actions()


def test_the_policy_is_exactly_what_the_provider_is_seen_calling(
    cloud: Cloud, clock: FakeTime, monkeypatch: pytest.MonkeyPatch
) -> None:
    from moto.ec2.models import EC2Backend

    original = EC2Backend.describe_regions
    monkeypatch.setattr(
        EC2Backend,
        "describe_regions",
        lambda self, names=None: [r for r in original(self, names) if r.name == REGION],
    )
    seen: set[str] = set()

    def record(service: str, client: Any) -> None:
        prefix = IAM_PREFIX[service]
        client.meta.events.register(
            "before-call", lambda model, **_: seen.add(f"{prefix}:{model.name}")
        )

    team = {"team": "policy"}
    vm, _ = cloud.ec2(ResourceState.RUNNING, count=2, tags=team)
    theirs = cloud.ec2(ResourceState.RUNNING, account=OTHER_ACCOUNT)
    db = cloud.rds(ResourceState.RUNNING, tags=team)
    cluster, _member = cloud.aurora(ResourceState.RUNNING, tags=team)
    group = cloud.asg(tags=team)
    service = cloud.ecs(tags=team)
    provider = make_provider(clock, accounts={OTHER_ACCOUNT: OTHER_ROLE}, on_client=record)
    found = provider.discover(Selector("aws", tags=team))
    assert {r.kind for r in found} == {"ec2", "rds", "aurora", "asg", "ecs"}
    everything = [vm, db, cluster, group, service, *theirs]
    provider.describe(everything)
    assert all(r.ok for r in provider.stop(everything))
    assert all(r.ok for r in provider.start(everything))

    assert seen == policy_actions()

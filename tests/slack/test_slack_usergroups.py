"""Approvers named by a Slack user group: membership is read from Slack at the click."""

from __future__ import annotations

from datetime import timedelta

import attrs
from conftest import World

from nightops_core.approvals import ApprovalRule, Approvers
from nightops_core.model import ResourceState


def test_a_user_group_member_may_decide_and_others_may_not(world: World) -> None:
    world.fake.add_channel("CALERTS1", "alerts")
    world.fake.usergroups["S0SRE"] = ("sre", ["UCAROL"])
    world.service.settings = attrs.evolve(
        world.service.settings,
        approval_rules=(
            ApprovalRule(("production-*",), Approvers(usergroup="@sre"), timedelta(minutes=30)),
        ),
    )
    status, _, _ = world.command('start production-api -r "hotfix"')
    assert status == 200
    # no approvers' channel: the card goes to the default notification channel
    world.fake.wait_for(lambda: world.fake.posts_in("CALERTS1"))
    card = world.fake.posts_in("CALERTS1")[0]
    approve = next(e for b in card.blocks if b["type"] == "actions" for e in b["elements"])["value"]

    world.click("nightops.approve", approve, user="UBOB", channel=("CALERTS1", "alerts"))
    world.fake.wait_for(lambda: any("may decide" in str(r) for r in world.fake.responses))
    assert "Approved" not in world.fake.posts_in("CALERTS1")[0].text

    world.fake.usergroups["S0SRE"] = ("sre", ["UCAROL", "UBOB"])
    world.messenger.directory._groups._items.clear()  # the cache would hide the change
    world.click("nightops.approve", approve, user="UBOB", channel=("CALERTS1", "alerts"))
    world.fake.wait_for(lambda: "Approved by bob" in world.fake.posts_in("CALERTS1")[0].text)
    prod = next(r for r in world.cloud._known.values() if r.id == "p-1")
    world.fake.wait_for(lambda: world.cloud.state_of(prod) is ResourceState.RUNNING)
    assert world.fake.called("usergroups.users.list")

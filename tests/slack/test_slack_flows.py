"""Whole flows through the real HTTP endpoint: signed requests -> waitress -> adapter ->
Service (in-memory fakes) -> fake Slack Web API / response_url receiver."""

from __future__ import annotations

import json
import logging
from datetime import timedelta

import pytest
from conftest import World, text_of

from nightops_core.model import ResourceState
from nightops_core.operations import OperationState
from nightops_core.ports import ErrorKind


def blocks_text(blocks: list[dict[str, object]]) -> str:
    return json.dumps(blocks, ensure_ascii=False)


# --- status ---------------------------------------------------------------------------------


def test_status_cards_then_view_details(world: World) -> None:
    status, ack, url = world.command("status")
    assert status == 200
    assert ack is None  # status asks the cloud: an empty ack, the answer follows
    (ack,) = world.wait_responses(url)
    assert ack["response_type"] == "ephemeral"
    shown = text_of(ack["blocks"])
    assert "🟢 *Staging API*" in shown
    assert "5 resources • $438.00/month" in shown
    buttons = [e for b in ack["blocks"] if b["type"] == "actions" for e in b["elements"]]
    labels = [(b["text"]["text"], b["action_id"], b["value"]) for b in buttons]
    assert ("Stop", "nightops.stop", "staging-api") in labels
    assert ("View Details", "nightops.details", "staging-api") in labels
    assert ("Start", "nightops.start", "production-api") in labels

    _, url = world.click("nightops.details", "staging-api")
    (detail,) = world.wait_responses(url)
    assert detail["response_type"] == "ephemeral"
    shown = text_of(detail["blocks"])
    for name in ("rds-primary", "api-server-1", "api-server-2", "worker"):
        assert f"*{name}* — running" in shown
    assert "`vm/m.small`" in shown
    assert "$146.00/mo" in shown


def test_detail_of_an_unknown_collection_suggests_the_closest(world: World) -> None:
    ack = world.answer("status stagin-api")
    assert "❌" in ack["text"]
    assert "staging-api" in text_of(ack)


def test_forbidden_channel_is_refused_with_the_reason(world: World) -> None:
    ack = world.answer("start staging-api", channel=("CRANDOM1", "random"))
    assert ack["response_type"] == "ephemeral"
    assert "#random" in ack["text"]
    assert world.cloud.calls == []


def test_unlinked_user_may_read_but_not_stop(world: World) -> None:
    ack = world.answer("stop staging-api --force", user="UEVE")
    assert "link" in ack["text"].lower()
    assert world.cloud.calls == []
    ack = world.answer("whoami", user="UEVE")
    assert "not linked" in ack["text"]


def test_guest_email_is_not_trusted_for_linking(world: World) -> None:
    ack = world.answer("whoami", user="UGUEST")
    assert "not linked" in ack["text"]


def test_whoami_shows_email_role_and_collections(world: World) -> None:
    ack = world.answer("whoami")
    assert "alice@company.com" in ack["text"]
    assert "member" in ack["text"]
    assert "staging-*" in ack["text"]


def test_help_and_list_and_schedule(world: World) -> None:
    ack = world.answer("help")
    assert "NightOps help" in text_of(ack)
    ack = world.answer("list --status running")
    assert "Staging API" in text_of(ack)
    assert "Production API" not in text_of(ack)
    ack = world.answer("schedule")
    assert ack["response_type"] == "ephemeral"


# --- stop with confirmation, progress updated in place ---------------------------------------


def test_stop_confirm_progress_done(world: World) -> None:
    ack = world.answer("stop staging-api")
    shown = text_of(ack["blocks"])
    assert "Stop Staging API?" in shown
    assert "api-server-1" in shown
    buttons = [e for b in ack["blocks"] if b["type"] == "actions" for e in b["elements"]]
    assert [b["text"]["text"] for b in buttons] == ["Cancel", "Stop Collection"]
    confirm = buttons[1]

    _, url = world.click(confirm["action_id"], confirm["value"])
    # The progress card is posted in the channel (so it can be updated), the ephemeral
    # confirmation is deleted, then chat.update carries progress and the result.
    world.fake.wait_for(lambda: any("now stopped" in c.args.get("text", "")
                                    for c in world.fake.called("chat.update")))  # fmt: skip
    (first,) = [c for c in world.fake.called("chat.postMessage") if c.args["channel"] == "CDEV1"]
    assert "Stopping" in first.args["text"]
    assert "(5 resources)" in first.args["text"]
    updates = world.fake.called("chat.update")
    assert all(u.args["ts"] == updates[0].args["ts"] for u in updates)
    assert any("/5 stopped" in u.args["text"] for u in updates)
    assert "✓ Staging API is now stopped" in updates[-1].args["text"]
    assert world.fake.responses_to(url) == [{"delete_original": True}]
    assert all(world.cloud.state_of(r) is ResourceState.STOPPED for r in world.cloud._known.values()
               if r.id != "p-1")  # fmt: skip


def test_cancel_replaces_the_confirmation(world: World) -> None:
    ack = world.answer("stop staging-api")
    cancel = next(e for b in ack["blocks"] if b["type"] == "actions" for e in b["elements"])
    _, url = world.click(cancel["action_id"], cancel["value"])
    (answer,) = world.wait_responses(url)
    assert answer["replace_original"] is True
    assert "Cancelled" in answer["text"]
    assert world.cloud.calls == []


def test_bot_not_in_channel_falls_back_to_response_url(world: World) -> None:
    _, ack, url = world.command("stop staging-api --force", channel=("CQUIET1", "quiet"))
    assert ack is None  # nothing to say in the ack: the card follows
    world.fake.wait_for(lambda: "now stopped" in str(world.fake.responses_to(url)))
    answers = world.fake.responses_to(url)
    assert answers[0]["response_type"] == "in_channel"
    assert "Stopping" in answers[0]["text"]
    assert answers[-1]["replace_original"] is True
    assert "now stopped" in answers[-1]["text"]


# --- approvals -------------------------------------------------------------------------------


def request_approval(world: World, reason: str = "hotfix test") -> None:
    _, ack, _ = world.command("start production-api")
    assert ack is None  # a modal opens instead of a text answer
    (opened,) = world.fake.wait_for(lambda: world.fake.called("views.open"))
    view = opened.args["view"]
    assert view["callback_id"] == "nightops.reason"
    status, answer = world.submit_view(view["private_metadata"], reason)
    assert status == 200
    assert answer is None  # closes the modal
    world.fake.wait_for(lambda: world.fake.posts_in("CAPPR1"))


def approval_card(world: World) -> tuple[str, str]:
    (card,) = world.fake.posts_in("CAPPR1")
    return card.ts, text_of(card.blocks)


def test_approval_requested_then_approved_by_another_user(world: World) -> None:
    request_approval(world)
    ts, shown = approval_card(world)
    assert "hotfix test" in shown
    assert "Expires" in shown
    buttons = [e for b in world.fake.posts_in("CAPPR1")[0].blocks if b["type"] == "actions"
               for e in b["elements"]]  # fmt: skip
    assert [b["text"]["text"] for b in buttons] == ["Approve", "Deny"]

    world.click("nightops.approve", buttons[0]["value"], user="UBOB",
                channel=("CAPPR1", "approvers"))  # fmt: skip
    world.fake.wait_for(lambda: "Approved by bob" in world.fake.posts_in("CAPPR1")[0].text)
    # The requester is told by DM, and the collection starts.
    world.fake.wait_for(lambda: world.fake.posts_in("DUALICE"))
    assert "approved by bob@company.com" in world.fake.posts_in("DUALICE")[0].text
    world.fake.wait_for(lambda: world.cloud.state_of(world.cloud._known[("fake", "eu-1", "p-1")]
                                                     if False else _prod(world))
                        is ResourceState.RUNNING)  # fmt: skip
    assert world.fake.posts_in("CAPPR1")[0].ts == ts


def _prod(world: World):  # type: ignore[no-untyped-def]
    return next(r for r in world.cloud._known.values() if r.id == "p-1")


def test_approval_denied(world: World) -> None:
    request_approval(world)
    buttons = [e for b in world.fake.posts_in("CAPPR1")[0].blocks if b["type"] == "actions"
               for e in b["elements"]]  # fmt: skip
    world.click("nightops.deny", buttons[1]["value"], user="UBOB", channel=("CAPPR1", "approvers"))
    world.fake.wait_for(lambda: "Denied by bob" in world.fake.posts_in("CAPPR1")[0].text)
    world.fake.wait_for(lambda: world.fake.posts_in("DUALICE"))
    assert "was denied" in world.fake.posts_in("DUALICE")[0].text
    assert world.cloud.state_of(_prod(world)) is ResourceState.STOPPED


def test_approval_expires_card_updated_and_requester_told(world: World) -> None:
    request_approval(world)
    world.clock.advance(timedelta(minutes=31))
    world.adapter.deliver(world.service.expire_approvals())
    world.fake.wait_for(lambda: "Expired" in world.fake.posts_in("CAPPR1")[0].text)
    assert world.fake.called("chat.update")[-1].args["channel"] == "CAPPR1"
    world.fake.wait_for(lambda: world.fake.posts_in("DUALICE"))
    assert "expired" in world.fake.posts_in("DUALICE")[0].text


def test_self_approval_is_refused(world: World) -> None:
    request_approval(world)
    buttons = [e for b in world.fake.posts_in("CAPPR1")[0].blocks if b["type"] == "actions"
               for e in b["elements"]]  # fmt: skip
    _, url = world.click("nightops.approve", buttons[0]["value"], user="UALICE",
                         channel=("CAPPR1", "approvers"))  # fmt: skip
    (answer,) = world.wait_responses(url)
    assert answer["response_type"] == "ephemeral"
    assert "own" in answer["text"]
    assert world.cloud.state_of(_prod(world)) is ResourceState.STOPPED


def test_reason_given_inline_skips_the_modal(world: World) -> None:
    ack = world.answer('start production-api -r "db migration"')
    assert "needs approval" in ack["text"]
    world.fake.wait_for(lambda: world.fake.posts_in("CAPPR1"))
    assert world.fake.called("views.open") == []


def test_expired_trigger_falls_back_to_a_text_prompt(world: World) -> None:
    body, url = world.command_body("start production-api", trigger="expired")
    _, ack = world.post_events(body, world.signed(body))
    assert ack is None
    (answer,) = world.wait_responses(url)
    assert "-r" in answer["text"]


# --- escaping ---------------------------------------------------------------------------------


def test_mentions_in_reason_and_resource_names_are_escaped(world: World) -> None:
    request_approval(world, reason="<!channel> please <@UBOB> & co")
    (card,) = world.fake.posts_in("CAPPR1")
    raw = json.dumps({"text": card.text, "blocks": card.blocks})
    assert "<!channel>" not in raw
    assert "<@UBOB>" not in raw
    assert "&lt;!channel&gt; please &lt;@UBOB&gt; &amp; co" in raw

    ack = world.answer("status staging-api")
    raw = json.dumps(ack)
    assert "<!channel>" not in raw
    assert "&lt;!channel&gt; cache" in raw


# --- verification and idempotency ------------------------------------------------------------


def test_forged_stale_and_replayed_requests_are_refused(world: World) -> None:
    body, _ = world.command_body("stop staging-api --force")
    status, _ = world.post_events(body, world.signed(body, secret="not-the-secret"))
    assert status == 401
    status, _ = world.post_events(body, world.signed(body, age=6 * 60))
    assert status == 401
    tampered = body.replace(b"stop", b"stap")
    status, _ = world.post_events(tampered, world.signed(body))
    assert status == 401
    headers = world.signed(body)
    status, _ = world.post_events(body, headers)
    assert status == 200
    status, _ = world.post_events(body, headers)  # the very same request again
    assert status == 401
    world.fake.wait_for(lambda: any("now stopped" in c.args["text"]
                                    for c in world.fake.called("chat.update")))  # fmt: skip
    assert len(world.cloud.calls) == 2  # two stages, one operation
    assert len([r for r in world.store.audit_records() if r.event.action == "stop"]) == 1


def test_retried_delivery_acts_once(world: World) -> None:
    body, _ = world.command_body("stop staging-api --force")
    status, _ = world.post_events(body, world.signed(body))
    assert status == 200
    # Slack re-signs a retry with the time it sends it.
    status, ack = world.post_events(body, world.signed(body, retry=1, age=-1))
    assert status == 200
    assert ack is None
    world.fake.wait_for(lambda: any("now stopped" in c.args["text"]
                                    for c in world.fake.called("chat.update")))  # fmt: skip
    operations = [o for o in world.store._operations.values() if o.collection_id == "staging-api"]
    assert len(operations) == 1
    assert operations[0].state is OperationState.SUCCEEDED


def test_double_click_on_confirm_acts_once(world: World) -> None:
    ack = world.answer("stop staging-api")
    confirm = [e for b in ack["blocks"] if b["type"] == "actions" for e in b["elements"]][1]
    world.click(confirm["action_id"], confirm["value"])
    _, second = world.click(confirm["action_id"], confirm["value"])
    (answer,) = world.wait_responses(second)
    assert "already used" in answer["text"]
    world.fake.wait_for(lambda: any("now stopped" in c.args["text"]
                                    for c in world.fake.called("chat.update")))  # fmt: skip
    assert len(world.store._operations) == 1


# --- notifications ----------------------------------------------------------------------------


def test_failure_notified_in_the_collections_channel_and_by_dm(world: World) -> None:
    worker = next(r for r in world.cloud._known.values() if r.id == "i-3")
    world.cloud.fail(worker, ErrorKind.CAPACITY, "no capacity <!here>")
    world.cloud.set_state(worker, ResourceState.STOPPED)
    for r in world.cloud._known.values():
        if r.id != "p-1":
            world.cloud.set_state(r, ResourceState.STOPPED)
    world.cloud.fail(worker, ErrorKind.CAPACITY, "no capacity <!here>")
    world.command("start staging-api")
    world.fake.wait_for(lambda: world.fake.posts_in("CSTAGING1"))
    (note,) = world.fake.posts_in("CSTAGING1")
    assert "failed for 1 of 5" in note.text
    assert "<!here>" not in json.dumps(note.blocks) + note.text
    world.fake.wait_for(lambda: world.fake.posts_in("DUALICE"))
    assert "worker" in world.fake.posts_in("DUALICE")[0].text


def test_delivery_failures_are_logged_with_the_fix_not_raised(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, "nightops.slack")
    from nightops_core.notify import Delivery, Notification, NotificationKind

    world.messenger.notifier.notify(
        Notification(
            NotificationKind.MANUAL_OVERRIDE,
            "hello",
            None,
            (Delivery(channel="#quiet"), Delivery(channel="#nowhere")),
        )
    )
    assert "invite the bot: /invite @NightOps in #quiet" in caplog.text
    assert "channel_not_found" in caplog.text


def test_rate_limited_post_is_retried(world: World) -> None:
    from nightops_core.notify import Delivery, Notification, NotificationKind

    world.fake.rate_limit["chat.postMessage"] = 1
    world.messenger.notifier.notify(
        Notification(NotificationKind.MANUAL_OVERRIDE, "hi", None, (Delivery(channel="#random"),))
    )
    assert len(world.fake.called("chat.postMessage")) == 2
    assert len(world.fake.posts_in("CRANDOM1")) == 1

"""The use cases end to end over the in-memory ports (no I/O): what a user is told, what
the cloud ends up doing, what the audit trail says."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from nightops_core.approvals import ApprovalRule, ApprovalState, Approvers
from nightops_core.audit import Outcome as AuditOutcome
from nightops_core.audit import verify
from nightops_core.model import (
    Collection,
    CollectionStatus,
    Money,
    Resource,
    ResourceState,
    Selector,
)
from nightops_core.notify import NotificationKind, NotificationSettings
from nightops_core.permissions import Account, Channel, ChannelRule, Role
from nightops_core.ports import ErrorKind
from nightops_core.responses import (
    ApprovalCard,
    CollectionDetail,
    CollectionList,
    Confirmation,
    Destination,
    Job,
    Notice,
    OperationReport,
    Outcome,
    Problem,
    ReasonRequired,
    ScheduleView,
    StatusOverview,
    WhoAmIView,
)
from nightops_core.schedule import parse_schedule
from nightops_core.service import ActionRequest, Actor, CommandRequest, Service
from nightops_core.settings import Settings
from nightops_core.testing import (
    FakeClock,
    FakeCloud,
    InMemoryStateStore,
    RecordingNotifier,
    SequentialIds,
)


def res(rid: str, name: str, price: str | None = "0.10", stage: int = 0) -> Resource:
    return Resource(
        "fake",
        "vm",
        rid,
        name,
        "eu-1",
        size="m.small",
        stage=stage,
        hourly_price=Money(price) if price else None,
    )


DB = res("db-1", "database", "0.20", stage=0)
APP1 = res("i-1", "app-1", stage=1)
APP2 = res("i-2", "app-2", stage=1)
PROD = res("p-1", "prod-1")
QA = res("q-1", "qa-1", None)

STAGING = Collection(
    "staging-api",
    "Staging API",
    "staging",
    (DB, APP1, APP2),
    schedule="office",
    slack_channel="#staging-ops",
)
PRODUCTION = Collection("production-api", "Production API", "production", (PROD,))
QA_ENV = Collection("qa-env", "QA Env", "qa", (QA,), confirm_start=True)

ALICE = Account("alice@company.com", Role.MEMBER, ("staging-*", "qa-*"))
BOB = Account("bob@company.com", Role.MEMBER, ("production-*",))
CAROL = Account("carol@company.com", Role.VIEWER)

DEV_TEAM = Channel("C1", "#dev-team")
APPROVERS = Channel("C9", "#approvers")
RANDOM = Channel("C5", "#random")

# Monday 2026-01-12 10:00 Berlin: inside office hours.
MONDAY_MORNING = datetime(2026, 1, 12, 9, 0, tzinfo=UTC)


def actor(account: Account | None, user: str | None = None) -> Actor:
    if account is None:
        return Actor("T1", user or "U-nobody", "nobody", via="Slack")
    name = account.email.partition("@")[0]
    return Actor("T1", f"U-{name}", name, email=account.email, via="Slack")


class World:
    def __init__(self, now: datetime = MONDAY_MORNING) -> None:
        self.cloud = FakeCloud("fake")
        for r in (DB, APP1, APP2):
            self.cloud.add(r, ResourceState.RUNNING)
        self.cloud.add(PROD, ResourceState.STOPPED)
        self.cloud.add(QA, ResourceState.STOPPED)
        self.store = InMemoryStateStore()
        self.notifier = RecordingNotifier()
        self.clock = FakeClock(now)
        settings = Settings(
            collections=(STAGING, PRODUCTION, QA_ENV),
            schedules={"office": parse_schedule(["Mon-Fri 08:00-19:00"], "Europe/Berlin")},
            channel_rules=(
                ChannelRule("#dev-team", frozenset({"all"}), ("staging-*", "qa-*", "production-*")),
                ChannelRule("#approvers", frozenset({"status"}), ("*",), approvals=True),
            ),
            accounts=(ALICE, BOB, CAROL),
            approval_rules=(
                ApprovalRule(
                    ("production-*",),
                    Approvers(channel="#approvers", accounts=frozenset({"bob@company.com"})),
                    timedelta(minutes=30),
                ),
            ),
            notifications=NotificationSettings(default_channel="#alerts"),
        )
        self.service = Service(
            settings,
            providers={"fake": self.cloud},
            store=self.store,
            notifier=self.notifier,
            clock=self.clock,
            ids=SequentialIds(),
        )

    def say(self, who: Account | None, text: str, channel: Channel = DEV_TEAM) -> Outcome:
        return self.service.handle_command(CommandRequest(actor(who), channel, text))

    def click(self, who: Account | None, action_id: str, value: str, channel: Channel) -> Outcome:
        return self.service.handle_action(ActionRequest(actor(who), channel, action_id, value))

    def run(self, outcome: Outcome) -> list[Outcome]:
        """Run the outcome's jobs like the host does; return progress + final outcomes."""
        seen: list[Outcome] = []
        for job in outcome.jobs:
            seen.append(self.service.run_job(job, progress=seen.append))
        return seen


def only(outcome: Outcome, kind: type) -> object:
    bodies = [m.body for m in outcome.messages if isinstance(m.body, kind)]
    assert len(bodies) == 1, f"expected one {kind.__name__}, got {outcome.messages}"
    return bodies[0]


def problem_text(outcome: Outcome) -> str:
    body = only(outcome, Problem)
    assert isinstance(body, Problem)
    return body.message


# --- reading ---------------------------------------------------------------------------------


def test_status_overview_cards_show_state_size_cost_and_allowed_buttons() -> None:
    world = World()
    overview = only(world.say(ALICE, "status"), StatusOverview)
    assert isinstance(overview, StatusOverview)
    cards = {c.collection_id: c for c in overview.cards}
    staging = cards["staging-api"]
    assert staging.status is CollectionStatus.RUNNING
    # 0.20 + 0.10 + 0.10 per hour x 730
    assert staging.summary == "3 resources • $292.00/month"
    assert [b.label for b in staging.buttons] == ["Stop", "View Details"]
    # alice may not act on production: no Start button, but the card is visible here
    assert [b.label for b in cards["production-api"].buttons] == ["View Details"]
    assert str(cards["qa-env"].monthly) == "unknown"


def test_status_detail_lists_every_resource_with_state_type_and_cost() -> None:
    world = World()
    world.cloud.set_state(APP2, ResourceState.STOPPED)
    detail = only(world.say(None, "status staging api"), CollectionDetail)
    assert isinstance(detail, CollectionDetail)
    assert detail.card.status is CollectionStatus.MIXED
    rows = {r.name: r for r in detail.rows}
    assert rows["app-2"].state is ResourceState.STOPPED
    assert str(rows["database"].monthly) == "$146.00"
    assert "Mon-Fri 08:00-19:00" in detail.schedule
    assert "View Details" not in [b.label for b in detail.card.buttons]


def test_list_filters_by_status_and_env() -> None:
    world = World()
    listed = only(world.say(ALICE, "list --status stopped"), CollectionList)
    assert isinstance(listed, CollectionList)
    assert {c.collection_id for c in listed.cards} == {"production-api", "qa-env"}
    listed = only(world.say(ALICE, "list --env QA"), CollectionList)
    assert isinstance(listed, CollectionList)
    assert [c.collection_id for c in listed.cards] == ["qa-env"]


def test_status_pages_beyond_the_page_size_with_a_more_button() -> None:
    world = World()
    many = tuple(Collection(f"c-{i:02}", resources=(res(f"x{i}", f"x{i}"),)) for i in range(25))
    for c in many:
        world.cloud.add(c.resources[0])
    world.service = Service(
        Settings(collections=many, page_size=10),
        providers={"fake": world.cloud},
        store=world.store,
        notifier=world.notifier,
        clock=world.clock,
        ids=SequentialIds(),
    )
    first = only(world.say(None, "status", RANDOM), StatusOverview)
    assert isinstance(first, StatusOverview)
    assert len(first.cards) == 10
    assert first.more is not None
    assert first.more.label == "More (15 left)"
    third = only(world.click(None, "nightops.more", "2", RANDOM), StatusOverview)
    assert isinstance(third, StatusOverview)
    assert [c.collection_id for c in third.cards] == [f"c-{i}" for i in range(20, 25)]
    assert third.more is None


def test_unknown_collection_suggests_the_closest_name() -> None:
    world = World()
    assert "Did you mean 'staging-api'" in problem_text(world.say(ALICE, "start stagin-api"))


def test_bad_syntax_comes_back_with_usage() -> None:
    world = World()
    body = only(world.say(ALICE, "stop"), Problem)
    assert isinstance(body, Problem)
    assert body.usage is not None
    assert "stop <collection>" in body.usage


def test_whoami_and_help() -> None:
    world = World()
    who = only(world.say(ALICE, "whoami"), WhoAmIView)
    assert isinstance(who, WhoAmIView)
    assert who.email == "alice@company.com"
    assert who.role == "member"
    assert who.collections == ("staging-*", "qa-*")
    nobody = only(world.say(None, "whoami"), WhoAmIView)
    assert isinstance(nobody, WhoAmIView)
    assert not nobody.linked
    assert "/nightops link" in nobody.text
    help_body = only(world.say(None, "help stop"), Notice)
    assert isinstance(help_body, Notice)
    assert "--force" in help_body.text


def test_schedule_shows_next_transitions_in_the_schedule_zone() -> None:
    world = World()
    view = only(world.say(ALICE, "schedule staging-api"), ScheduleView)
    assert isinstance(view, ScheduleView)
    entry = view.entries[0]
    assert entry.desired_now == "on"
    assert entry.next_transitions[0] == "stop Mon 2026-01-12 19:00 CET"
    assert entry.next_transitions[1] == "start Tue 2026-01-13 08:00 CET"


# --- start / stop ----------------------------------------------------------------------------


def test_start_runs_as_a_job_reporting_progress_then_success() -> None:
    world = World(now=datetime(2026, 1, 12, 9, 0, tzinfo=UTC))
    for r in (DB, APP1, APP2):
        world.cloud.set_state(r, ResourceState.STOPPED)
    first = world.say(ALICE, "start staging-api -r testing")
    report = only(first, OperationReport)
    assert isinstance(report, OperationReport)
    assert report.text == 'Starting "Staging API" (3 resources)… 0/3 running'
    assert len(first.jobs) == 1
    # nothing happened yet: the request thread never waits on the cloud
    assert world.cloud.state_of(DB) is ResourceState.STOPPED
    outcomes = world.run(first)
    texts = [
        m.body.text for o in outcomes for m in o.messages if isinstance(m.body, OperationReport)
    ]
    assert texts[-1] == "✓ Staging API is now running"
    assert "2/3 running" in " ".join(texts)
    assert all(world.cloud.state_of(r) is ResourceState.RUNNING for r in (DB, APP1, APP2))
    # every progress message updates the same message
    refs = {m.ref for o in outcomes for m in o.messages}
    assert refs == {report.operation.id and f"op:{report.operation.id}"}
    # stage 0 (database) started before stage 1 (apps)
    assert world.cloud.calls == [("start", ("db-1",)), ("start", ("i-1", "i-2"))]


def test_stop_asks_for_confirmation_listing_resources_then_stops_in_reverse_stages() -> None:
    world = World(now=datetime(2026, 1, 12, 20, 0, tzinfo=UTC))  # after office hours
    asked = only(world.say(ALICE, "stop staging-api"), Confirmation)
    assert isinstance(asked, Confirmation)
    assert asked.items == ("database (vm, m.small)", "app-1 (vm, m.small)", "app-2 (vm, m.small)")
    assert world.cloud.calls == []
    started = world.click(ALICE, asked.confirm.action_id, asked.confirm.value, DEV_TEAM)
    assert started.messages[0].to is Destination.REPLACE
    world.run(started)
    assert world.cloud.calls == [("stop", ("i-1", "i-2")), ("stop", ("db-1",))]
    # the confirmation is single use
    again = world.click(ALICE, asked.confirm.action_id, asked.confirm.value, DEV_TEAM)
    assert "already used" in problem_text(again)


def test_starting_a_running_collection_says_there_was_nothing_to_do() -> None:
    world = World()
    outcomes = world.run(world.say(ALICE, "start staging-api"))
    final = outcomes[-1].messages[0].body
    assert isinstance(final, OperationReport)
    assert final.text == "✓ Staging API was already running: nothing to do"
    assert world.cloud.calls == []


def test_force_skips_confirmation_and_cancel_does_nothing() -> None:
    world = World()
    asked = only(world.say(ALICE, "stop staging-api"), Confirmation)
    assert isinstance(asked, Confirmation)
    cancelled = only(world.click(ALICE, "nightops.cancel", asked.cancel.value, DEV_TEAM), Notice)
    assert isinstance(cancelled, Notice)
    assert "Staging API was not stopped" in cancelled.text
    assert world.cloud.calls == []
    forced = world.say(ALICE, "stop staging-api --force")
    assert forced.jobs
    world.run(forced)
    assert world.cloud.state_of(APP1) is ResourceState.STOPPED


def test_someone_else_cannot_press_your_confirm_button() -> None:
    world = World()
    asked = only(world.say(ALICE, "stop staging-api"), Confirmation)
    assert isinstance(asked, Confirmation)
    other = world.click(BOB, "nightops.confirm", asked.confirm.value, DEV_TEAM)
    assert "Only alice@company.com can confirm" in problem_text(other)
    mine = world.click(ALICE, "nightops.confirm", asked.confirm.value, DEV_TEAM)
    assert mine.jobs


def test_start_confirms_only_where_the_collection_asks_for_it() -> None:
    world = World()
    assert isinstance(only(world.say(ALICE, "start qa-env"), Confirmation), Confirmation)
    assert world.say(ALICE, "start qa-env --no-confirm").jobs


def test_denials_name_who_refused() -> None:
    world = World()
    assert "#random" in problem_text(world.say(ALICE, "start staging-api", RANDOM))
    assert "not linked" in problem_text(world.say(None, "start staging-api"))
    assert "viewer" in problem_text(world.say(CAROL, "stop staging-api --force"))
    assert world.cloud.calls == []
    denied = [
        r.event for r in world.store.audit_records() if r.event.outcome is AuditOutcome.DENIED
    ]
    assert len(denied) == 3


def test_clicks_are_rechecked_for_the_clicking_user() -> None:
    world = World()
    clicked = world.click(CAROL, "nightops.stop", "staging-api", DEV_TEAM)
    assert "viewer" in problem_text(clicked)


def test_a_second_operation_is_told_who_is_busy() -> None:
    world = World()
    first = world.say(ALICE, "stop staging-api --force")
    assert first.jobs
    second = world.say(ALICE, "stop staging-api --force")
    assert problem_text(second) == (
        "Staging API is being stopped by alice — 0/3 stopped. Try again when it has finished."
    )
    world.run(first)
    assert world.say(ALICE, "start staging-api").jobs


def test_partial_failure_is_reported_per_resource_and_notified_with_a_dm() -> None:
    world = World()
    world.cloud.fail(APP2, ErrorKind.PERMISSION_DENIED, "missing ec2:StopInstances; grant it")
    outcomes = world.run(world.say(ALICE, "stop staging-api --force -r cost"))
    final = outcomes[-1].messages[0].body
    assert isinstance(final, OperationReport)
    assert final.text.startswith("⚠ Staging API is partly stopped: 2/3 stopped")
    assert "app-2: missing ec2:StopInstances; grant it" in final.text
    failed = [n for n in world.notifier.sent if n.kind is NotificationKind.ACTION_FAILED]
    assert len(failed) == 1
    targets = {(d.channel, d.person) for d in failed[0].deliveries}
    assert targets == {("#staging-ops", None), (None, "alice@company.com")}
    last = world.store.audit_records()[-1].event
    assert last.outcome is AuditOutcome.PARTIAL
    assert last.reason == "cost"


def test_manual_stop_during_office_hours_is_an_override_until_the_next_boundary() -> None:
    world = World()  # Monday 10:00 Berlin, schedule says on
    world.run(world.say(ALICE, "stop staging-api --force"))
    override = world.store.get_override("staging-api")
    assert override is not None
    assert override.desired == "off"
    assert override.until == datetime(2026, 1, 12, 18, 0, tzinfo=UTC)  # 19:00 CET
    notes = [n.text for n in world.notifier.sent if n.kind is NotificationKind.MANUAL_OVERRIDE]
    assert notes == [
        "alice stopped Staging API outside its schedule; it stays stopped until Mon 19:00 CET, "
        "when its schedule resumes."
    ]


def test_retried_delivery_is_ignored() -> None:
    world = World()
    request = CommandRequest(actor(ALICE), DEV_TEAM, "stop staging-api --force", "delivery-1")
    assert world.service.handle_command(request).jobs
    assert world.service.handle_command(request) == Outcome()


# --- approvals -------------------------------------------------------------------------------


def test_approval_asks_for_a_reason_first() -> None:
    world = World()
    asked = only(world.say(ALICE, "start production-api"), ReasonRequired)
    assert isinstance(asked, ReasonRequired)
    assert '-r "why you need it"' in asked.prompt


def test_approval_flow_request_approve_start() -> None:
    world = World()
    requested = world.say(ALICE, 'start production-api -r "Debugging"')
    assert not requested.jobs
    card_message = next(m for m in requested.messages if isinstance(m.body, ApprovalCard))
    assert (card_message.to, card_message.target) == (Destination.CHANNEL, "#approvers")
    card = card_message.body
    assert isinstance(card, ApprovalCard)
    assert [b.label for b in card.buttons] == ["Approve", "Deny"]
    assert "“Debugging”" in card.status_text
    approve = card.buttons[0]

    own = world.click(ALICE, approve.action_id, approve.value, APPROVERS)
    assert "your own request" in problem_text(own)

    decided = world.click(BOB, approve.action_id, approve.value, APPROVERS)
    updated = next(m for m in decided.messages if isinstance(m.body, ApprovalCard))
    assert updated.ref == card_message.ref
    assert updated.body.buttons == ()
    assert updated.body.status_text.startswith("✓ Approved by bob@company.com")
    told = [m for m in decided.messages if m.to is Destination.PERSON]
    assert told[0].target == "alice@company.com"
    assert len(decided.jobs) == 1
    world.run(decided)
    assert world.cloud.state_of(PROD) is ResourceState.RUNNING
    operation = world.store.audit_records()[-1].event
    assert (operation.actor, operation.action, operation.approval_id) == (
        "alice@company.com",
        "start",
        card.request.id,
    )
    # a second decision is refused and says who decided
    late = world.click(BOB, "nightops.deny", approve.value, APPROVERS)
    assert "already approved by bob@company.com" in problem_text(late)


def test_approval_denied_tells_the_requester_and_starts_nothing() -> None:
    world = World()
    requested = world.say(ALICE, "start production-api -r please")
    card = only(requested, ApprovalCard)
    assert isinstance(card, ApprovalCard)
    decided = world.click(BOB, "nightops.deny", card.request.id, APPROVERS)
    assert not decided.jobs
    told = next(m for m in decided.messages if m.to is Destination.PERSON)
    assert isinstance(told.body, Notice)
    assert "was denied by bob@company.com" in told.body.text
    assert world.cloud.calls == []


def test_non_approvers_cannot_decide() -> None:
    world = World()
    card = only(world.say(ALICE, "start production-api -r please"), ApprovalCard)
    assert isinstance(card, ApprovalCard)
    refused = world.click(CAROL, "nightops.approve", card.request.id, DEV_TEAM)
    assert "may decide" in problem_text(refused)


def test_approval_expires_on_time_without_anyone_clicking() -> None:
    world = World()
    card = only(world.say(ALICE, "start production-api -r please"), ApprovalCard)
    assert isinstance(card, ApprovalCard)
    world.clock.advance(timedelta(minutes=29))
    assert world.service.expire_approvals() == Outcome()
    world.clock.advance(timedelta(minutes=1))
    expired = world.service.expire_approvals()
    told = next(m for m in expired.messages if m.to is Destination.PERSON)
    assert isinstance(told.body, Notice)
    assert "expired" in told.body.text
    card_update = next(m for m in expired.messages if isinstance(m.body, ApprovalCard))
    assert card_update.ref == f"approval:{card.request.id}"
    stored = world.store.get_approval(card.request.id)
    assert stored is not None
    assert stored.state is ApprovalState.EXPIRED
    late = world.click(BOB, "nightops.approve", card.request.id, APPROVERS)
    assert "expired" in problem_text(late)
    assert world.cloud.calls == []


def test_audit_trail_records_every_step_and_verifies() -> None:
    world = World()
    card = only(world.say(ALICE, "start production-api -r Debugging"), ApprovalCard)
    assert isinstance(card, ApprovalCard)
    world.run(world.click(BOB, "nightops.approve", card.request.id, APPROVERS))
    records = world.store.audit_records()
    assert verify(records).ok
    lines = [r.event.text() for r in records]
    assert lines[0].startswith("2026-01-12 09:00 alice@company.com (Slack) START REQUESTED")
    assert any("bob@company.com (Slack) APPROVED production-api" in line for line in lines)
    assert lines[-1].startswith("2026-01-12 09:00 alice@company.com (Slack) STARTED production-api")


def test_unknown_button_and_unknown_approval_are_clear_errors() -> None:
    world = World()
    assert "Unknown button" in problem_text(world.click(ALICE, "nightops.x", "1", DEV_TEAM))
    assert "unknown" in problem_text(world.click(BOB, "nightops.approve", "apr-999", APPROVERS))


def test_reconcile_continues_an_operation_a_crash_left_behind() -> None:
    world = World()
    first = world.say(ALICE, "stop staging-api --force")
    (job,) = first.jobs
    # the process died after the journal entry, while app-1 was already stopping
    world.cloud.set_state(APP1, ResourceState.STOPPED)
    resumed = world.service.reconcile_operations()
    assert resumed.jobs == (job,)
    assert "interrupted at 0/3" in only(resumed, Notice).text  # type: ignore[attr-defined]
    world.run(resumed)
    operation = world.store.get_operation(job.operation_id)
    assert operation is not None
    assert operation.state.is_final
    assert world.store.unfinished_operations() == []
    # nothing is done twice: app-1 was not stopped again
    assert world.cloud.calls == [("stop", ("i-2",)), ("stop", ("db-1",))]
    stops = [r.event for r in world.store.audit_records() if r.event.action == "stop"]
    assert [e.outcome for e in stops] == [AuditOutcome.OK]
    assert world.service.run_job(Job(job.operation_id)) == Outcome()
    # the lease is free again
    assert world.say(ALICE, "start staging-api").jobs


@pytest.mark.parametrize("text", ["", "   ", "help"])
def test_empty_text_is_help(text: str) -> None:
    world = World()
    body = only(world.say(None, text), Notice)
    assert isinstance(body, Notice)
    assert "start" in body.text
    assert "stop" in body.text


def test_discovered_members_are_cached_for_status_and_refreshed_for_actions() -> None:
    tagged = Collection(
        "tagged",
        "Tagged",
        selectors=(Selector("fake", ("eu-1",), {"team": "web"}),),
    )
    cloud = FakeCloud("fake")
    first = Resource("fake", "vm", "w-1", "web-1", "eu-1", tags={"team": "web"})
    later = Resource("fake", "vm", "w-2", "web-2", "eu-1", tags={"team": "web"})
    cloud.add(first)
    clock = FakeClock(MONDAY_MORNING)
    service = Service(
        Settings(
            collections=(tagged,),
            channel_rules=(ChannelRule("#dev-team", frozenset({"all"}), ("*",)),),
            accounts=(Account("alice@company.com", Role.MEMBER, ("*",)),),
        ),
        providers={"fake": cloud},
        store=InMemoryStateStore(),
        notifier=RecordingNotifier(),
        clock=clock,
        ids=SequentialIds(),
    )

    def shown() -> list[str]:
        detail = only(
            service.handle_command(CommandRequest(actor(ALICE), DEV_TEAM, "status tagged")),
            CollectionDetail,
        )
        assert isinstance(detail, CollectionDetail)
        return [row.name for row in detail.rows]

    assert shown() == ["web-1"]
    cloud.add(later)
    assert shown() == ["web-1"]  # cached
    stop = service.handle_command(CommandRequest(actor(ALICE), DEV_TEAM, "stop tagged --force"))
    for job in stop.jobs:
        service.run_job(job)
    assert cloud.state_of(later) is ResourceState.STOPPED  # an action always rediscovers
    assert shown() == ["web-1", "web-2"]

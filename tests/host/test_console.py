"""The terminal console, driven the way a person uses it: lines in, text out.

A real Service over the in-memory ports; the assertions are on what the user reads.
"""

from __future__ import annotations

import io
import itertools
import threading
from collections.abc import Sequence
from datetime import timedelta

import attrs
import pytest

from nightops.console import Console, ConsoleNotifier, render
from nightops_core.approvals import ApprovalRequest, ApprovalRule, Approvers
from nightops_core.errors import StateError
from nightops_core.model import Collection, Money, Resource, ResourceState
from nightops_core.notify import Delivery, Notification, NotificationKind, NotificationSettings
from nightops_core.permissions import Account, ChannelRule, Role
from nightops_core.ports import ErrorKind
from nightops_core.responses import Button, Confirmation, Problem, ScheduleEntry, ScheduleView
from nightops_core.schedule import parse_schedule
from nightops_core.service import Service
from nightops_core.settings import Settings
from nightops_core.testing import FakeClock, FakeCloud, InMemoryStateStore, SequentialIds


def _vm(
    rid: str, name: str, kind: str = "ec2", size: str = "t3.large", price: str = "0.0832"
) -> Resource:
    return Resource(
        "fake", kind, rid, name=name, region="us-east-1", size=size, hourly_price=Money(price)
    )


STAGING = (
    _vm("i-1", "api-server-1"),
    _vm("i-2", "api-server-2"),
    _vm("db-1", "rds-primary", "rds", "db.t3.medium", "0.068"),
)
QA = (_vm("i-q1", "qa-web"),)
DEV = (_vm("i-d1", "dev-web"),)
PROD = (_vm("db-p", "prod-db", "rds", "db.r5.large", "0.25"),)
ACCOUNTS = {
    "alice": "alice@company.com",
    "bob": "bob@company.com",
    "carol": "carol@company.com",
}


class FlakyStore(InMemoryStateStore):
    """A store that can be made unreachable."""

    broken = False

    def pending_approvals(self) -> Sequence[ApprovalRequest]:
        if self.broken:
            raise StateError("The state store is unreachable; check the database.")
        return super().pending_approvals()


@attrs.define
class World:
    cloud: FakeCloud
    clock: FakeClock
    store: FlakyStore
    service: Service
    out: io.StringIO

    def console(
        self, user: str = "alice", channel: str = "#dev-team", *, prompt: bool = False
    ) -> Console:
        return Console(
            self.service,
            accounts_by_name=ACCOUNTS,
            user=user,
            channel=channel,
            out=self.out,
            prompt=prompt,
        )

    def says(self, console: Console, *lines: str) -> str:
        """Feed ``lines``; return only what they printed."""
        start = len(self.out.getvalue())
        assert console.run(lines) == 0
        return self.out.getvalue()[start:]


@pytest.fixture
def world() -> World:
    return make_world(Approvers(channel="#infrastructure-approvers"))


def make_world(approvers: Approvers) -> World:
    settings = Settings(
        collections=[
            Collection("staging-api", "Staging API", "staging", STAGING),
            Collection("dev-web", "Dev Web", "dev", DEV, schedule="office-hours"),
            Collection("qa-env", "QA Environment", "qa", QA),
            Collection("production-db", "Production DB", "production", PROD),
        ],
        schedules={
            "office-hours": parse_schedule(
                ["Mon-Fri 08:00-19:00"], "Europe/Berlin", name="office-hours"
            )
        },
        channel_rules=[
            ChannelRule("#dev-team", collections=("dev-*", "staging-*")),
            ChannelRule("#qa-team", commands={"start", "stop"}, collections=("qa-*",)),
            ChannelRule("#production-ops", collections=("production-*",), approvals=True),
        ],
        accounts=[
            Account("alice@company.com", Role.MEMBER, ("staging-*", "qa-*", "production-*")),
            Account("bob@company.com", Role.ADMIN),
            Account("carol@company.com", Role.VIEWER),
        ],
        approval_rules=[
            ApprovalRule(
                ("production-*",),
                approvers,
                timedelta(minutes=30),
            )
        ],
        notifications=NotificationSettings(default_channel="#nightops-alerts"),
    )
    cloud = FakeCloud()
    for resource in STAGING + DEV:
        cloud.add(resource)
    for resource in QA + PROD:
        cloud.add(resource, ResourceState.STOPPED)
    clock = FakeClock()
    store = FlakyStore()
    out = io.StringIO()
    service = Service(
        settings,
        providers={"fake": cloud},
        store=store,
        notifier=ConsoleNotifier(out),
        clock=clock,
        ids=SequentialIds(),
    )
    return World(cloud, clock, store, service, out)


# --- status, details, buttons ------------------------------------------------------------------


def test_status_shows_cards_with_numbered_buttons(world: World) -> None:
    shown = world.says(world.console(), "status")

    assert "(only visible to you)" in shown
    assert "🟢 Staging API (staging) — running" in shown
    assert "3 resources • $171.11/month" in shown
    assert "[1] Stop  [2] View Details" in shown
    # #dev-team's rule covers staging-* only
    assert "Production DB" not in shown


def test_typing_a_number_presses_that_button(world: World) -> None:
    console = world.console()
    world.says(console, "/nightops status")

    shown = world.says(console, "2")

    assert "▸ View Details" in shown
    rows = [line.strip() for line in shown.splitlines() if "  running  " in line]
    assert rows == [
        "api-server-1  running  ec2/t3.large      $60.74/mo",
        "api-server-2  running  ec2/t3.large      $60.74/mo",
        "rds-primary   running  rds/db.t3.medium  $49.64/mo",
    ]
    assert "Schedule: manual only (no schedule)" in shown


def test_click_n_works_too_and_a_missing_number_is_explained(world: World) -> None:
    console = world.console()

    assert "no buttons to press yet" in world.says(console, "1")
    world.says(console, "status")
    assert "Staging API" in world.says(console, "click 2")
    assert "There is no button [7]; choose 1 to 1." in world.says(console, "7")


def test_stop_asks_for_confirmation_and_the_confirm_button_stops(world: World) -> None:
    console = world.console()

    asked = world.says(console, "stop staging-api")
    assert "Stop Staging API?" in asked
    assert "• api-server-1 (ec2, t3.large)" in asked
    assert "[1] Stop Collection  [2] Cancel" in asked
    assert all(world.cloud.state_of(r) is ResourceState.RUNNING for r in STAGING)

    done = world.says(console, "1")

    assert 'Stopping "Staging API" (3 resources)… 0/3 stopped' in done
    assert '↻ updated: Stopping "Staging API" (3 resources)… 2/3 stopped' in done
    assert "↻ updated: ✓ Staging API is now stopped" in done
    lines = done.splitlines()
    assert all(a != b for a, b in itertools.pairwise(lines)), "repeated progress"
    assert all(world.cloud.state_of(r) is ResourceState.STOPPED for r in STAGING)

    again = world.says(console, "status")
    assert "🔴 Staging API (staging) — stopped" in again
    assert "[1] Start  [2] View Details" in again


def test_a_failure_is_reported_once_with_who_is_told(world: World) -> None:
    console = world.console()
    world.cloud.fail(STAGING[1], ErrorKind.PERMISSION_DENIED, "not authorised to stop i-2")
    world.says(console, "stop staging-api")

    done = world.says(console, "1")

    progress = [line for line in done.splitlines() if line.startswith("↻ updated: Stopping")]
    assert len(progress) == len(set(progress))  # "1/3 stopped" twice is shown once
    assert "⚠ Staging API is partly stopped: 2/3 stopped" in done
    assert "• api-server-2: not authorised to stop i-2" in done
    told = "\n  Stop of Staging API by alice failed for 1 of 3 resources:\n"
    assert f"🔔 #nightops-alerts:{told}" in done
    assert f"✉ alice@company.com:{told}" in done


def test_schedules_and_a_manual_stop_outside_them(world: World) -> None:
    console = world.console()

    shown = world.says(console, "schedule")
    assert "Dev Web — office-hours" in shown
    assert "Mon-Fri 08:00-19:00 (Europe/Berlin)" in shown
    assert "now: on" in shown
    assert "next: stop Thu 2026-01-15 19:00 CET, start Fri 2026-01-16 08:00 CET" in shown

    detail = world.says(console, "status dev-web")
    assert "Schedule: Mon-Fri 08:00-19:00 (Europe/Berlin)" in detail

    stopped = world.says(console, ":as bob", "stop dev-web --force")
    assert "✓ Dev Web is now stopped" in stopped
    assert "🔔 #nightops-alerts: bob stopped Dev Web outside its schedule" in stopped


def test_cancel_leaves_the_collection_alone(world: World) -> None:
    console = world.console()
    world.says(console, "stop staging-api")

    shown = world.says(console, "2")

    assert "Cancelled: Staging API was not stopped." in shown
    assert all(world.cloud.state_of(r) is ResourceState.RUNNING for r in STAGING)


def test_list_is_a_compact_table(world: World) -> None:
    shown = world.says(world.console(channel="#random"), "list --env qa")

    assert "Collections (env qa)" in shown
    assert "🔴 QA Environment  qa-env  qa  stopped  1 resource • $60.74/month" in shown


# --- identity and channel ----------------------------------------------------------------------


def test_as_and_in_switch_who_and_where(world: World) -> None:
    console = world.console()

    assert "You are now bob (bob@company.com, admin)." in world.says(console, ":as bob")
    assert "You are now in #qa-team." in world.says(console, ":in qa-team")
    started = world.says(console, "start qa-env")
    assert "✓ QA Environment is now running" in started
    assert world.cloud.state_of(QA[0]) is ResourceState.RUNNING

    assert "You are now alice (alice@company.com, member)." in world.says(
        console, ":as alice@company.com"
    )
    assert "You are alice@company.com, role member" in world.says(console, "whoami")


def test_an_unknown_name_becomes_an_unlinked_user(world: World) -> None:
    console = world.console()

    note = world.says(console, ":as zed")
    assert "zed is not a configured account" in note
    assert "unlinked" in note
    assert "You (zed) are not linked to a NightOps account" in world.says(console, "whoami")


def test_the_prompt_shows_who_and_where(world: World) -> None:
    console = world.console(prompt=True)

    shown = world.says(console, ":in #qa-team", ":as bob")

    assert shown.startswith("alice@#dev-team> ")
    assert "alice@#qa-team> " in shown
    assert shown.endswith("bob@#qa-team> \n")


def test_the_banner_says_who_where_and_how_to_get_help(world: World) -> None:
    world.console(user="carol", channel="qa-team").banner()

    banner = world.out.getvalue()
    assert "carol (carol@company.com, viewer)" in banner
    assert "#qa-team" in banner
    assert ":help" in banner


def test_help_lists_the_console_commands(world: World) -> None:
    shown = world.says(world.console(), ":help")

    for command in (":as USER", ":in CHANNEL", "click N", ":quit"):
        assert command in shown


# --- refusals ------------------------------------------------------------------------------------


def test_a_start_in_a_channel_without_rules_says_the_channel_refused(world: World) -> None:
    console = world.console()
    world.says(console, ":in #random")

    shown = world.says(console, "start staging-api")

    assert "✗ #random does not allow start on staging-api" in shown
    assert "#dev-team" in shown  # how to fix it
    assert world.cloud.calls == []


def test_a_viewer_is_refused_by_their_role(world: World) -> None:
    shown = world.says(world.console(user="carol"), "start staging-api")

    assert "✗ You cannot start: your role is viewer" in shown
    assert world.cloud.calls == []


# --- approvals -----------------------------------------------------------------------------------


def test_approval_flow_across_users_and_channels(world: World) -> None:
    console = world.console(channel="#production-ops")

    ask = world.says(console, "start production-db")
    assert "Give a reason" in ask

    asked = world.says(console, 'start production-db -r "hotfix deploy"')
    assert "Approval requested" in asked
    assert "→ posted in #infrastructure-approvers:" in asked
    assert "alice asks to start Production DB: “hotfix deploy”" in asked
    assert "[1] Approve  [2] Deny" in asked

    own = world.says(console, "1")
    assert "You cannot approve your own request." in own
    assert world.cloud.calls == []

    # bob stays in #dev-team: the button remembers the card is in #infrastructure-approvers
    world.says(console, ":as bob", ":in #dev-team")
    approved = world.says(console, "1")

    assert "▸ Approve (in #infrastructure-approvers)" in approved
    assert "↻ updated in #infrastructure-approvers:" in approved
    assert "✓ Approved by bob@company.com" in approved
    assert "→ direct message to alice@company.com: Your request" in approved
    assert "→ posted in #production-ops: Starting" in approved
    assert "↻ updated in #production-ops: ✓ Production DB is now running" in approved
    assert "🔔 #nightops-alerts:" in approved
    assert world.cloud.state_of(PROD[0]) is ResourceState.RUNNING

    twice = world.says(console, "1")
    assert "already approved by bob@company.com" in twice


def test_approvals_expire_on_time_with_any_line(world: World) -> None:
    console = world.console(channel="#production-ops")
    world.says(console, 'start production-db -r "hotfix deploy"')

    world.clock.advance(timedelta(minutes=31))
    shown = world.says(console, "")

    assert "↻ updated in #infrastructure-approvers:" in shown
    assert "⌛ Expired with no decision" in shown
    assert "→ direct message to alice@company.com:" in shown
    assert "expired with no decision" in shown

    world.says(console, ":as bob")
    late = world.says(console, "1")
    assert "This request expired at 11:00 UTC" in late
    assert world.cloud.calls == []


def test_an_approval_card_sent_as_a_direct_message_can_be_clicked() -> None:
    world = make_world(Approvers(accounts={"bob@company.com"}))
    console = world.console(channel="#production-ops")

    asked = world.says(console, "start production-db -r deploy")
    assert "→ direct message to bob@company.com:" in asked
    assert "[1] Approve  [2] Deny" in asked

    approved = world.says(console, ":as bob", "1")
    assert "▸ Approve (in the direct message to bob@company.com)" in approved
    assert "↻ updated in the direct message to bob@company.com:" in approved
    assert "✓ Production DB is now running" in approved
    assert world.cloud.state_of(PROD[0]) is ResourceState.RUNNING


# --- input handling ----------------------------------------------------------------------------


def test_blank_lines_and_comments_are_ignored_but_a_channel_name_is_not(world: World) -> None:
    console = world.console()

    assert world.says(console, "", "   ", "# start staging-api", "#") == ""
    assert "Unknown command '#qa-team'" in world.says(console, "#qa-team")
    assert world.cloud.calls == []


def test_quit_stops_reading_and_eof_returns_zero(world: World) -> None:
    console = world.console()

    assert console.run([":quit", "start staging-api --no-confirm"]) == 0
    assert console.run([]) == 0
    assert world.cloud.calls == []


def test_errors_are_shown_not_raised(world: World) -> None:
    console = world.console()
    world.store.broken = True

    shown = world.says(console, "status", ":nope")

    assert "✗ The state store is unreachable; check the database." in shown
    assert "✗ Unknown console command :nope" in shown


# --- notifier and rendering ----------------------------------------------------------------------


def test_notifier_prints_each_delivery() -> None:
    out = io.StringIO()
    ConsoleNotifier(out).notify(
        Notification(
            NotificationKind.ACTION_FAILED,
            "Stop of Staging API failed",
            "staging-api",
            (Delivery(channel="staging-ops"), Delivery(person="alice@company.com")),
        )
    )

    assert out.getvalue() == (
        "🔔 #staging-ops: Stop of Staging API failed\n"
        "✉ alice@company.com: Stop of Staging API failed\n"
    )


def test_notifier_lines_stay_whole_across_threads() -> None:
    out = io.StringIO()
    notifier = ConsoleNotifier(out)
    note = Notification(
        NotificationKind.SCHEDULE_STARTED, "x" * 200, None, (Delivery(channel="#a"),)
    )

    def spam() -> None:
        for _ in range(50):
            notifier.notify(note)

    threads = [threading.Thread(target=spam) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert out.getvalue().splitlines() == [f"🔔 #a: {'x' * 200}"] * 400


def test_render_problem_shows_usage_under_the_message() -> None:
    text = render(Problem("No collection named 'stagin'.", "/nightops start <collection>"))

    assert text == "✗ No collection named 'stagin'.\nUsage: /nightops start <collection>"


def test_render_schedule_view() -> None:
    view = ScheduleView(
        (
            ScheduleEntry(
                "staging-api",
                "Staging API",
                "office-hours",
                "Mon-Fri 08:00-19:00 (Europe/Berlin)",
                "on",
                ("stop Thu 2026-01-15 19:00 CET", "start Fri 2026-01-16 08:00 CET"),
            ),
            ScheduleEntry("qa-env", "QA Environment", "", "manual only", "", ()),
        )
    )

    assert render(view).splitlines() == [
        "Schedules",
        "  Staging API — office-hours",
        "     Mon-Fri 08:00-19:00 (Europe/Berlin)",
        "     now: on",
        "     next: stop Thu 2026-01-15 19:00 CET, start Fri 2026-01-16 08:00 CET",
        "  QA Environment",
        "     manual only",
    ]


def test_render_numbers_buttons_with_the_callers_numbering() -> None:
    body = Confirmation(
        "Stop Staging API?",
        "This will stop 1 resource of Staging API:",
        ("api-server-1 (ec2, t3.large)",),
        Button("Stop Collection", "nightops.confirm", "cnf-1", "danger"),
        Button("Cancel", "nightops.cancel", "cnf-1"),
    )
    numbers = iter((7, 8))

    assert render(body).endswith("[1] Stop Collection  [2] Cancel")
    assert render(body, lambda _b: next(numbers)).endswith("[7] Stop Collection  [8] Cancel")


@pytest.mark.parametrize(
    ("line", "kept"),
    [
        ("/nightops stop dev   # asks to confirm", "/nightops stop dev   "),
        ("1        # the Approve button", "1        "),
        (":in #qa-team", ":in #qa-team"),
        ('/nightops start qa -r "fix # 12 now"', '/nightops start qa -r "fix # 12 now"'),
        ("/nightops start qa -r “fix # 12” # why", "/nightops start qa -r “fix # 12” "),
        ("/nightops status #nightops", "/nightops status #nightops"),
    ],
)
def test_trailing_comments_are_dropped_outside_quotes(line: str, kept: str) -> None:
    from nightops.console import _without_comment

    assert _without_comment(line) == kept

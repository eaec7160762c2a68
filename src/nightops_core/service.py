"""The use cases: run a command or a button click for an actor in a channel.

The service is the one entry point every adapter calls (Slack, console, embedding). It
parses, checks permissions, asks for confirmation or approval, journals operations, calls
the cloud providers through ports, writes the audit trail and routes notifications. It
returns adapter-neutral :mod:`~nightops_core.responses`; it never renders or sleeps.

Slow work (starting a collection) is split off as a :class:`~nightops_core.responses.Job`
which the host runs on a worker with :meth:`Service.run_job`, so a request thread answers
at once.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from itertools import groupby
from zoneinfo import ZoneInfo

import attrs

from nightops_core import grammar
from nightops_core.approvals import (
    ApprovalEvent,
    ApprovalRequest,
    ApprovalRule,
    ApprovalState,
    apply,
    describe_approvers,
    matching_rule,
    new_request,
)
from nightops_core.audit import AuditEvent
from nightops_core.audit import Outcome as AuditOutcome
from nightops_core.costs import collection_monthly, resource_monthly
from nightops_core.errors import ApprovalError, CommandError, NightOpsError, ProviderError
from nightops_core.inventory import inventory_from_json, inventory_to_json
from nightops_core.model import (
    Collection,
    CollectionStatus,
    Resource,
    ResourceState,
    ResourceStatus,
    collection_status,
)
from nightops_core.notify import NotificationKind, route
from nightops_core.operations import (
    Action,
    Confirmation,
    Lease,
    Operation,
    OperationState,
    ResourceOutcome,
)
from nightops_core.permissions import Account, Channel, Policy, Refuser, Role, is_channel_id
from nightops_core.ports import (
    ActionResult,
    Clock,
    CloudProvider,
    IdSource,
    Notifier,
    Override,
    ResultKind,
    StateStore,
)
from nightops_core.responses import (
    ApprovalCard,
    Button,
    CollectionCard,
    CollectionDetail,
    CollectionList,
    Destination,
    Job,
    Message,
    Notice,
    OperationReport,
    Outcome,
    Problem,
    ReasonRequired,
    ResourceRow,
    ScheduleEntry,
    ScheduleView,
    StatusOverview,
    Tone,
    WhoAmIView,
)
from nightops_core.responses import Confirmation as ConfirmationBody
from nightops_core.savings import savings_command
from nightops_core.schedule import Desired, desired_state, next_boundary
from nightops_core.scheduling import DueAction
from nightops_core.settings import Settings

__all__ = ["ActionRequest", "Actor", "CommandRequest", "Service"]

SYSTEM = "system"
SCHEDULE = "schedule"
#: State-store namespace of the discovered-members cache.
INVENTORY = "inventory"
#: The message recorded for a resource that was already in the wanted state.
ALREADY = "already in that state"


@attrs.frozen
class Actor:
    """Who is acting: a chat user in a workspace.

    ``email`` is an email the platform has verified (Slack's profile email, or the account
    the console names); it links the user when it matches an account. ``groups`` are the
    chat user groups the user belongs to (for approver groups), when the adapter knows them.
    """

    workspace: str
    user_id: str
    name: str = ""
    email: str | None = None
    via: str = "console"
    groups: tuple[str, ...] = ()

    @property
    def label(self) -> str:
        return self.name or self.user_id


@attrs.frozen
class CommandRequest:
    """``/nightops <text>`` typed by ``actor`` in ``channel``. ``delivery_id`` identifies
    the delivery so a retried one is ignored."""

    actor: Actor
    channel: Channel
    text: str
    delivery_id: str | None = None


@attrs.frozen
class ActionRequest:
    """A button click: ``action_id`` and the opaque ``value`` it carried."""

    actor: Actor
    channel: Channel
    action_id: str
    value: str
    delivery_id: str | None = None


ProgressSink = Callable[[Outcome], None]


class Service:
    """NightOps's use cases over the ports. Build one per process (composition root)."""

    def __init__(
        self,
        settings: Settings,
        *,
        providers: Mapping[str, CloudProvider],
        store: StateStore,
        notifier: Notifier,
        clock: Clock,
        ids: IdSource,
        link_url: Callable[[Actor], str] | None = None,
    ) -> None:
        self.settings = settings
        self.providers = dict(providers)
        self.store = store
        self.notifier = notifier
        self.clock = clock
        self.ids = ids
        self.link_url = link_url
        self.policy = Policy(settings.channel_rules, settings.accounts)
        self._collections = {c.id: c for c in settings.collections}

    # ------------------------------------------------------------------ entry points

    def handle_command(self, request: CommandRequest) -> Outcome:
        """Answer a typed command. Never raises NightOpsError: it becomes a Problem."""
        if request.delivery_id and not self.store.claim_once(request.delivery_id, self._now()):
            return Outcome()
        try:
            command = grammar.parse(request.text)
        except CommandError as exc:
            return Outcome.reply(Problem(exc.message, exc.usage))
        account = self.account_for(request.actor)
        try:
            return self._dispatch(command, request.actor, account, request.channel)
        except NightOpsError as exc:
            return Outcome.reply(Problem(exc.message, getattr(exc, "usage", None)))

    def handle_action(self, request: ActionRequest) -> Outcome:
        """Answer a button click; re-checks everything for the clicking user and channel."""
        if request.delivery_id and not self.store.claim_once(request.delivery_id, self._now()):
            return Outcome()
        actor, channel = request.actor, request.channel
        account = self.account_for(actor)
        value = request.value
        try:
            match request.action_id:
                case "nightops.start":
                    return self._dispatch(grammar.Start(value), actor, account, channel)
                case "nightops.stop":
                    return self._dispatch(grammar.Stop(value), actor, account, channel)
                case "nightops.details":
                    return self._dispatch(grammar.Status(value), actor, account, channel)
                case "nightops.more":
                    return self._status_overview(actor, account, channel, page=_page(value))
                case "nightops.confirm":
                    return self._confirm(actor, account, channel, value)
                case "nightops.cancel":
                    return self._cancel(actor, account, value)
                case "nightops.approve":
                    return self._decide(actor, account, channel, value, ApprovalEvent.APPROVE)
                case "nightops.deny":
                    return self._decide(actor, account, channel, value, ApprovalEvent.DENY)
                case _:
                    return Outcome.reply(
                        Problem(f"Unknown button '{request.action_id}'. Run /nightops help.")
                    )
        except NightOpsError as exc:
            return Outcome.reply(Problem(exc.message, getattr(exc, "usage", None)))

    def run_job(self, job: Job, progress: ProgressSink | None = None) -> Outcome:
        """Carry out a journaled operation: stage by stage, provider by provider, updating
        the journal per resource; then audit, notify, release the lease."""
        operation = self.store.get_operation(job.operation_id)
        if operation is None:
            return Outcome.reply(Problem(f"Operation {job.operation_id} is unknown."))
        if operation.state.is_final:
            return Outcome()
        collection = self._collections.get(operation.collection_id)
        if collection is None:
            return self._finish(operation, None, "its collection is no longer configured")
        operation = operation.moved_to(OperationState.RUNNING)
        self.store.save_operation(operation)
        resources = {r.key: r for r in self.members(collection)}
        stages = sorted(
            {r.stage for r in resources.values()}, reverse=operation.action is Action.STOP
        )
        blocked = ""
        for stage in stages:
            wanted = [r for r in resources.values() if r.stage == stage]
            if blocked:
                for resource in wanted:
                    operation = self._record(
                        operation,
                        ResourceOutcome(str(resource.key), resource.label, False, "", blocked),
                    )
                continue
            operation = self._run_stage(operation, collection, wanted, progress)
            if operation.failures and operation.action is Action.START and len(stages) > 1:
                blocked = f"not started: an earlier stage (stage {stage}) failed"
        return self._finish(operation, collection)

    def expire_approvals(self) -> Outcome:
        """Expire every pending approval whose time is up (the host's sweeper calls this
        periodically and at start-up, so expiry happens with nobody clicking)."""
        now = self._now()
        out = Outcome()
        for request in self.store.pending_approvals():
            if request.expires_at > now:
                continue
            expired = apply(request, ApprovalEvent.EXPIRE, actor=SYSTEM, now=now)
            if not self.store.transition_approval(ApprovalState.PENDING, expired):
                continue
            self._audit(SYSTEM, "schedule", "expire", expired.collection_id, approval_id=expired.id)
            out += self._approval_decided_messages(expired)
        return out

    def reconcile_operations(self) -> Outcome:
        """Operations a crash left unfinished (journaled, not final) are continued: their
        jobs are returned to be run again. Providers are idempotent, so resources that had
        already reached the wanted state are not acted on twice. Called at start-up."""
        unfinished = self.store.unfinished_operations()
        jobs = tuple(Job(o.id) for o in unfinished)
        messages = tuple(
            Message(
                Notice(
                    f"Resuming {o.action.value} of {o.collection_id} by {o.actor_label}, "
                    f"interrupted at {o.done}/{len(o.resources)} resources.",
                    Tone.WARNING,
                ),
                Destination.CHANNEL,
                o.channel,
            )
            for o in unfinished
            if o.channel
        )
        return Outcome(messages, jobs)

    def apply_due(self, due: DueAction) -> Outcome:
        """Carry out one scheduled action (the scheduler has claimed it already): journal
        the operation as the actor ``schedule`` and return its job."""
        collection = self._collections.get(due.collection_id)
        if collection is None:
            return Outcome()
        if due.ends_hold:
            self.store.clear_override(collection.id)
        else:
            override = self.store.get_override(collection.id)
            if override is not None and not override.explicit:
                self.store.clear_override(collection.id)
        action = Action.START if due.desired is Desired.ON else Action.STOP
        channel = Channel(name=collection.slack_channel) if collection.slack_channel else Channel()
        outcome = self._begin(action, SCHEDULE, SCHEDULE, SCHEDULE, channel, collection, due.reason)
        if not outcome.jobs:  # busy: someone is acting on it right now; they win
            self._audit(
                SCHEDULE,
                SCHEDULE,
                action.value,
                collection.id,
                AuditOutcome.CANCELLED,
                reason=due.reason,
                detail="skipped: another operation was in progress",
            )
            return Outcome()
        # Scheduled actions are announced when they finish (schedule_started/stopped).
        return Outcome(jobs=outcome.jobs)

    # ------------------------------------------------------------------ identity

    def account_for(self, actor: Actor) -> Account | None:
        """The account ``actor`` is linked to: an explicit link, else the platform-verified
        email matching an account, else a viewer in an SSO domain; None = unlinked."""
        email = self.store.get_link(actor.workspace, actor.user_id) or actor.email
        if not email:
            return None
        account = self.policy.account(email)
        if account is not None:
            return account
        domain = email.rpartition("@")[2].lower()
        if domain and domain in {d.lower() for d in self.settings.sso_domains}:
            return Account(email=email, role=Role.VIEWER)
        return None

    # ------------------------------------------------------------------ cloud reads

    def members(self, collection: Collection, *, fresh: bool = False) -> list[Resource]:
        """Explicit resources plus those discovered by the collection's selectors.

        Discovery results are cached in the state store for ``settings.inventory_ttl`` (so a
        status card does not list a whole account each time); a start or stop asks with
        ``fresh=True`` and refreshes the cache.
        """
        found: dict[object, Resource] = {r.key: r for r in collection.resources}
        if not collection.selectors:
            return list(found.values())
        now = self._now()
        cached = None if fresh else self.store.get_value(INVENTORY, collection.id, now)
        if cached is not None:
            discovered = inventory_from_json(cached)
        else:
            discovered = []
            for selector in collection.selectors:
                discovered.extend(self._provider(selector.provider).discover(selector))
            self.store.put_value(
                INVENTORY,
                collection.id,
                inventory_to_json(discovered),
                now + self.settings.inventory_ttl,
            )
        for resource in discovered:
            found.setdefault(resource.key, resource)
        return list(found.values())

    def describe(self, collection: Collection) -> list[ResourceStatus]:
        """Current state of every member, one describe call per provider."""
        try:
            resources = self.members(collection)
        except ProviderError as exc:
            return [
                ResourceStatus(r, ResourceState.UNKNOWN, exc.message) for r in collection.resources
            ]
        statuses: list[ResourceStatus] = []
        for name, group in _by_provider(resources):
            try:
                statuses.extend(self._provider(name).describe(group))
            except ProviderError as exc:
                statuses.extend(
                    ResourceStatus(r, ResourceState.UNKNOWN, exc.message) for r in group
                )
        return statuses

    # ------------------------------------------------------------------ commands

    def _dispatch(
        self, command: grammar.Command, actor: Actor, account: Account | None, channel: Channel
    ) -> Outcome:
        match command:
            case grammar.Help(topic):
                return Outcome.reply(Notice(grammar.help_text(topic), title="NightOps help"))
            case grammar.WhoAmI():
                return Outcome.reply(self._whoami(actor, account))
            case grammar.Link():
                return Outcome.reply(self._link(actor, account))
            case grammar.Status(None):
                return self._status_overview(actor, account, channel, page=0)
            case grammar.Status(name) if name is not None:
                return self._status_detail(actor, account, channel, name)
            case grammar.List(status, env):
                return self._list(actor, account, channel, status, env)
            case grammar.ScheduleCmd(name):
                return self._schedule(actor, account, channel, name)
            case grammar.Savings(name, since):
                return self._savings(actor, account, channel, name, since)
            case grammar.Start(name, reason, no_confirm, hold):
                return self._mutate(
                    Action.START, actor, account, channel, name, reason, no_confirm, hold
                )
            case grammar.Stop(name, reason, force, hold):
                return self._mutate(Action.STOP, actor, account, channel, name, reason, force, hold)
        raise CommandError("That command is not supported here.", grammar.usage())

    def _read_check(
        self, actor: Actor, account: Account | None, channel: Channel, command: str
    ) -> Problem | None:
        decision = self.policy.check(account, channel, command)
        if decision.allowed:
            return None
        self._audit_actor(
            actor, account, command, None, AuditOutcome.DENIED, detail=decision.reason
        )
        return Problem(decision.reason)

    def _visible(self, channel: Channel, command: str) -> list[Collection]:
        return [c for c in self.settings.collections if self.policy.visible(channel, command, c.id)]

    def _resolve_visible(self, name: str, channel: Channel, command: str) -> Collection:
        visible = self._visible(channel, command)
        try:
            return grammar.resolve_collection(name, visible)
        except CommandError:
            collection = self._find(name)
            if collection is not None:
                raise CommandError(
                    f"{collection.display_name} cannot be shown in {channel}: no channel rule "
                    f"here covers {collection.id}. Ask in a channel whose rule does."
                ) from None
            raise

    def _find(self, name: str) -> Collection | None:
        try:
            return grammar.resolve_collection(name, self.settings.collections)
        except CommandError:
            return None

    def _card(
        self,
        collection: Collection,
        statuses: Sequence[ResourceStatus],
        account: Account | None,
        channel: Channel,
        *,
        details_button: bool = True,
    ) -> CollectionCard:
        status = collection_status(s.state for s in statuses)
        buttons: list[Button] = []
        if self.policy.check(account, channel, "start", collection.id).allowed and status in (
            CollectionStatus.STOPPED,
            CollectionStatus.MIXED,
            CollectionStatus.UNKNOWN,
        ):
            buttons.append(Button("Start", "nightops.start", collection.id, "primary"))
        if self.policy.check(account, channel, "stop", collection.id).allowed and status in (
            CollectionStatus.RUNNING,
            CollectionStatus.MIXED,
            CollectionStatus.UNKNOWN,
        ):
            buttons.append(Button("Stop", "nightops.stop", collection.id, "danger"))
        if details_button:
            buttons.append(Button("View Details", "nightops.details", collection.id))
        return CollectionCard(
            collection_id=collection.id,
            name=collection.display_name,
            env=collection.env,
            status=status,
            resource_count=len(statuses),
            monthly=collection_monthly(s.resource for s in statuses),
            buttons=tuple(buttons),
            busy=self._busy_text(collection),
        )

    def _busy_text(self, collection: Collection) -> str:
        for operation in self.store.unfinished_operations():
            if operation.collection_id == collection.id:
                return (
                    f"being {operation.action.past} by {operation.actor_label} — "
                    f"{operation.succeeded}/{len(operation.resources)} "
                    f"{operation.action.wanted_word}"
                )
        return ""

    def _status_overview(
        self, actor: Actor, account: Account | None, channel: Channel, page: int
    ) -> Outcome:
        if problem := self._read_check(actor, account, channel, "status"):
            return Outcome.reply(problem)
        visible = self._visible(channel, "status")
        size = self.settings.page_size
        shown = visible[page * size : (page + 1) * size]
        cards = tuple(self._card(c, self.describe(c), account, channel) for c in shown)
        more = None
        if (page + 1) * size < len(visible):
            more = Button(
                f"More ({len(visible) - (page + 1) * size} left)", "nightops.more", str(page + 1)
            )
        self._audit_actor(actor, account, "status", None, AuditOutcome.OK)
        if not visible:
            return Outcome.reply(
                Notice(f"No collections are visible in {channel}.", title="Collections")
            )
        return Outcome.reply(StatusOverview(cards, more))

    def _status_detail(
        self, actor: Actor, account: Account | None, channel: Channel, name: str
    ) -> Outcome:
        if problem := self._read_check(actor, account, channel, "status"):
            return Outcome.reply(problem)
        collection = self._resolve_visible(name, channel, "status")
        statuses = self.describe(collection)
        rows = tuple(
            ResourceRow(
                name=s.resource.label,
                state=s.state,
                kind=s.resource.kind,
                size=s.resource.size,
                monthly=resource_monthly(s.resource),
                detail=s.detail,
            )
            for s in statuses
        )
        schedule = self.settings.schedules.get(collection.schedule or "")
        self._audit_actor(actor, account, "status", collection.id, AuditOutcome.OK)
        return Outcome.reply(
            CollectionDetail(
                self._card(collection, statuses, account, channel, details_button=False),
                rows,
                schedule.text() if schedule else "manual only (no schedule)",
            )
        )

    def _list(
        self,
        actor: Actor,
        account: Account | None,
        channel: Channel,
        status: CollectionStatus | None,
        env: str | None,
    ) -> Outcome:
        if problem := self._read_check(actor, account, channel, "list"):
            return Outcome.reply(problem)
        cards = []
        for collection in self._visible(channel, "list"):
            if env is not None and collection.env.lower() != env.lower():
                continue
            card = self._card(collection, self.describe(collection), account, channel)
            if status is not None and card.status is not status:
                continue
            cards.append(card)
        filters = ", ".join(
            f
            for f in (f"status {status.value}" if status else "", f"env {env}" if env else "")
            if f
        )
        self._audit_actor(
            actor, account, "list", None, AuditOutcome.OK, params=(("filters", filters),)
        )
        return Outcome.reply(CollectionList(tuple(cards), filters))

    def _schedule(
        self, actor: Actor, account: Account | None, channel: Channel, name: str | None
    ) -> Outcome:
        if problem := self._read_check(actor, account, channel, "schedule"):
            return Outcome.reply(problem)
        if name is not None:
            chosen = [self._resolve_visible(name, channel, "schedule")]
        else:
            chosen = [c for c in self._visible(channel, "schedule") if c.schedule]
        now = self._now()
        entries = []
        for collection in chosen:
            schedule = self.settings.schedules.get(collection.schedule or "")
            if schedule is None:
                entries.append(
                    ScheduleEntry(collection.id, collection.display_name, "", "manual only", "", ())
                )
                continue
            transitions: list[str] = []
            at = now
            for _ in range(2):
                boundary = next_boundary(schedule, at)
                if boundary is None:
                    break
                local = boundary.at.astimezone(schedule.zone)
                verb = "start" if boundary.desired is Desired.ON else "stop"
                transitions.append(f"{verb} {local:%a %Y-%m-%d %H:%M %Z}")
                at = boundary.at
            entries.append(
                ScheduleEntry(
                    collection.id,
                    collection.display_name,
                    schedule.name or collection.schedule or "",
                    schedule.text(),
                    desired_state(schedule, now).value,
                    tuple(transitions),
                )
            )
        self._audit_actor(actor, account, "schedule", name, AuditOutcome.OK)
        if not entries:
            return Outcome.reply(Notice("No collection visible here has a schedule."))
        return Outcome.reply(ScheduleView(tuple(entries)))

    def _savings(
        self,
        actor: Actor,
        account: Account | None,
        channel: Channel,
        name: str | None,
        since: str | None,
    ) -> Outcome:
        """Savings of the collections visible here (as for status), from the audit trail."""
        if problem := self._read_check(actor, account, channel, "status"):
            return Outcome.reply(problem)
        if name is not None:
            chosen = [self._resolve_visible(name, channel, "status")]
        else:
            chosen = self._visible(channel, "status")

        def members(collection: Collection) -> list[Resource]:
            try:
                return self.members(collection)
            except ProviderError:
                return list(collection.resources)

        body = savings_command(
            chosen, members, self.store.audit_records(), self._now(), self._zone(), since
        )
        params = (("since", since),) if since else ()
        self._audit_actor(actor, account, "savings", name, AuditOutcome.OK, params=params)
        return Outcome.reply(body)

    def _whoami(self, actor: Actor, account: Account | None) -> WhoAmIView:
        if account is None:
            return WhoAmIView(
                False,
                None,
                None,
                (),
                f"You ({actor.label}) are not linked to a NightOps account: you can read "
                "status but not start or stop anything. Run /nightops link.",
            )
        globs = account.collections or (("*",) if account.role is Role.ADMIN else ())
        return WhoAmIView(
            True,
            account.email,
            account.role.value,
            globs,
            f"You are {account.email}, role {account.role.value}, collections: "
            f"{', '.join(globs) or 'none'}.",
        )

    def _link(self, actor: Actor, account: Account | None) -> Notice:
        self._audit_actor(actor, account, "link", None, AuditOutcome.OK)
        if self.link_url is None:
            if account is not None:
                return Notice(f"You are linked as {account.email}.", Tone.SUCCESS)
            return Notice(
                "Linking is not available here. Ask an admin to add your email to "
                "[[accounts]] or to sso_domains.",
                Tone.WARNING,
            )
        url = self.link_url(actor)
        prefix = f"You are linked as {account.email}. To link again, " if account else "To link, "
        return Notice(
            f"{prefix}open this single-use link within 10 minutes: {url}",
            title="Link your account",
        )

    # ------------------------------------------------------------------ start / stop

    def _mutate(
        self,
        action: Action,
        actor: Actor,
        account: Account | None,
        channel: Channel,
        name: str,
        reason: str,
        skip_confirm: bool,
        hold: timedelta | None = None,
    ) -> Outcome:
        collection = grammar.resolve_collection(name, self.settings.collections)
        rule = matching_rule(self.settings.approval_rules, collection.id, action.value)
        decision = self.policy.check(account, channel, action.value, collection.id)
        if (
            not decision.allowed
            and rule is not None
            and decision.refused_by is Refuser.USER
            and account is not None
            and account.role is not Role.VIEWER
        ):
            # Under an approval rule a member may *ask* beyond their own collection globs:
            # the approver's decision is the grant. The channel must still allow it.
            decision = self.policy.channel_allows(channel, action.value, collection.id)
        if not decision.allowed or account is None:
            self._audit_actor(
                actor,
                account,
                action.value,
                collection.id,
                AuditOutcome.DENIED,
                reason=reason,
                detail=decision.reason,
            )
            return Outcome.reply(Problem(decision.reason))
        if rule is not None:
            if not reason.strip():
                return Outcome.reply(
                    ReasonRequired(
                        collection.id,
                        collection.display_name,
                        action,
                        f"{collection.display_name} needs approval to {action.value}. "
                        f"Give a reason: /nightops {action.value} {collection.id} "
                        '-r "why you need it"',
                    )
                )
            return self._request_approval(
                rule, action, actor, account, channel, collection, reason, hold
            )
        confirm = collection.confirm_stop if action is Action.STOP else collection.confirm_start
        if confirm and not skip_confirm:
            return self._ask_confirmation(action, actor, account, channel, collection, reason, hold)
        return self._begin(
            action, account.email, actor.label, actor.via, channel, collection, reason, hold=hold
        )

    def _ask_confirmation(
        self,
        action: Action,
        actor: Actor,
        account: Account,
        channel: Channel,
        collection: Collection,
        reason: str,
        hold: timedelta | None,
    ) -> Outcome:
        now = self._now()
        confirmation = Confirmation(
            id=self.ids.new_id("cnf-"),
            requester=account.email,
            workspace=actor.workspace,
            user_id=actor.user_id,
            collection_id=collection.id,
            action=action,
            reason=reason,
            created_at=now,
            expires_at=now + self.settings.confirmation_ttl,
            channel_id=channel.id,
            channel_name=channel.name,
            hold_seconds=int(hold.total_seconds()) if hold else 0,
        )
        self.store.add_confirmation(confirmation)
        items = tuple(
            f"{r.label} ({r.kind}{', ' + r.size if r.size else ''})" for r in collection.resources
        ) + tuple(f"resources tagged {dict(s.tags)} in {s.provider}" for s in collection.selectors)
        verb = action.value.capitalize()
        return Outcome.reply(
            ConfirmationBody(
                title=f"{verb} {collection.display_name}?",
                text=(
                    f"This will {action.value} {len(items)} resource"
                    f"{'' if len(items) == 1 else 's'} of {collection.display_name}:"
                ),
                items=items,
                confirm=Button(
                    f"{verb} Collection",
                    "nightops.confirm",
                    confirmation.id,
                    "danger" if action is Action.STOP else "primary",
                ),
                cancel=Button("Cancel", "nightops.cancel", confirmation.id),
            )
        )

    def _confirm(
        self, actor: Actor, account: Account | None, channel: Channel, confirmation_id: str
    ) -> Outcome:
        confirmation = self.store.take_confirmation(confirmation_id)
        if confirmation is None:
            return Outcome.reply(
                Problem("This confirmation was already used or cancelled. Run the command again.")
            )
        if (confirmation.workspace, confirmation.user_id) != (actor.workspace, actor.user_id):
            self.store.add_confirmation(confirmation)
            return Outcome.reply(
                Problem(
                    f"Only {confirmation.requester} can confirm this; run the command yourself."
                )
            )
        if confirmation.expires_at <= self._now():
            return Outcome.reply(
                Problem("This confirmation expired. Run the command again."), Destination.REPLACE
            )
        collection = self._collections.get(confirmation.collection_id)
        if collection is None:
            return Outcome.reply(Problem("That collection is no longer configured."))
        action = confirmation.action
        decision = self.policy.check(account, channel, action.value, collection.id)
        if not decision.allowed or account is None:
            return Outcome.reply(Problem(decision.reason), Destination.REPLACE)
        return self._begin(
            action,
            account.email,
            actor.label,
            actor.via,
            channel,
            collection,
            confirmation.reason,
            to=Destination.REPLACE,
            hold=timedelta(seconds=confirmation.hold_seconds)
            if confirmation.hold_seconds
            else None,
        )

    def _cancel(self, actor: Actor, account: Account | None, confirmation_id: str) -> Outcome:
        confirmation = self.store.take_confirmation(confirmation_id)
        if confirmation is None:
            return Outcome.reply(Notice("Nothing to cancel: that was already used or cancelled."))
        if (confirmation.workspace, confirmation.user_id) != (actor.workspace, actor.user_id):
            self.store.add_confirmation(confirmation)
            return Outcome.reply(Problem(f"Only {confirmation.requester} can cancel this."))
        self._audit_actor(
            actor,
            account,
            confirmation.action.value,
            confirmation.collection_id,
            AuditOutcome.CANCELLED,
        )
        collection = self._collections.get(confirmation.collection_id)
        label = collection.display_name if collection else confirmation.collection_id
        return Outcome.reply(
            Notice(f"Cancelled: {label} was not {confirmation.action.past}."), Destination.REPLACE
        )

    def _begin(
        self,
        action: Action,
        actor_email: str,
        actor_label: str,
        via: str,
        channel: Channel,
        collection: Collection,
        reason: str,
        *,
        approval_id: str | None = None,
        to: Destination = Destination.IN_CHANNEL,
        target: str | None = None,
        hold: timedelta | None = None,
    ) -> Outcome:
        now = self._now()
        operation_id = self.ids.new_id("op-")
        lease = Lease(
            collection.id, operation_id, action, actor_label, now, now + self.settings.lease_ttl
        )
        held = self.store.acquire_lease(lease, now)
        if held is not None:
            busy = self._busy_text(collection) or f"being {held.action.past} by {held.holder}"
            return Outcome.reply(
                Problem(f"{collection.display_name} is {busy}. Try again when it has finished.")
            )
        try:
            members = self.members(collection, fresh=True)
        except ProviderError as exc:
            self.store.release_lease(collection.id, operation_id)
            return Outcome.reply(Problem(exc.message))
        operation = Operation(
            id=operation_id,
            collection_id=collection.id,
            action=action,
            actor=actor_email,
            actor_label=actor_label,
            via=via,
            started_at=now,
            resources=tuple(ResourceOutcome(str(r.key), r.label) for r in members),
            reason=reason,
            approval_id=approval_id,
            channel=channel.id or channel.name,
            hold_until=now + hold if hold else None,
        )
        self.store.save_operation(operation)
        report = self._report(operation, collection)
        return Outcome(
            (Message(report, to, target, ref=f"op:{operation.id}"),), (Job(operation.id),)
        )

    def _run_stage(
        self,
        operation: Operation,
        collection: Collection,
        resources: Sequence[Resource],
        progress: ProgressSink | None,
    ) -> Operation:
        current = operation

        def on_result(result: ActionResult) -> None:
            nonlocal current
            current = self._record(current, _outcome_of(result))
            if progress is not None:
                progress(self._progress_outcome(current, collection))

        for name, group in _by_provider(resources):
            try:
                provider = self._provider(name)
                act = provider.start if operation.action is Action.START else provider.stop
                results = act(group, on_result)
            except ProviderError as exc:
                results = []
                for resource in group:
                    on_result(
                        ActionResult(
                            resource, ResultKind.FAILED, ResourceState.UNKNOWN, exc.message
                        )
                    )
            for result in results:
                # Providers report progress; this covers one that did not.
                entry = next(r for r in current.resources if r.key == str(result.resource.key))
                if entry.ok is None:
                    on_result(result)
        return current

    def _record(self, operation: Operation, outcome: ResourceOutcome) -> Operation:
        updated = operation.with_outcome(outcome)
        self.store.save_operation(updated)
        return updated

    def _finish(
        self, operation: Operation, collection: Collection | None, why: str = ""
    ) -> Outcome:
        now = self._now()
        if why:
            operation = attrs.evolve(
                operation,
                resources=tuple(
                    r if r.ok is not None else attrs.evolve(r, ok=False, message=why)
                    for r in operation.resources
                ),
            )
        failures = operation.failures
        if not failures:
            state = OperationState.SUCCEEDED
        elif len(failures) == len(operation.resources) or why:
            state = OperationState.FAILED
        else:
            state = OperationState.PARTIAL
        if operation.state is OperationState.PENDING:
            operation = operation.moved_to(OperationState.RUNNING)
        operation = operation.moved_to(state, finished_at=now)
        self.store.save_operation(operation)
        self.store.release_lease(operation.collection_id, operation.id)
        outcome = {
            OperationState.SUCCEEDED: AuditOutcome.OK,
            OperationState.PARTIAL: AuditOutcome.PARTIAL,
            OperationState.FAILED: AuditOutcome.FAILED,
        }[state]
        self.store.append_audit(
            AuditEvent(
                at=now,
                actor=operation.actor,
                via=operation.via,
                action=operation.action.value,
                collection=operation.collection_id,
                outcome=outcome,
                reason=operation.reason,
                approval_id=operation.approval_id,
                operation_id=operation.id,
                resources=tuple(r.label for r in operation.resources),
                detail="; ".join(f"{r.label}: {r.message}" for r in failures),
            )
        )
        name = collection.display_name if collection else operation.collection_id
        if failures:
            lines = "\n".join(f"• {r.label}: {r.message}" for r in failures)
            self._notify(
                NotificationKind.ACTION_FAILED,
                f"{operation.action.value.capitalize()} of {name} by {operation.actor_label} "
                f"failed for {len(failures)} of {len(operation.resources)} resources:\n{lines}",
                collection,
                person=None if operation.actor in (SCHEDULE, SYSTEM) else operation.actor,
            )
        scheduled = operation.via == SCHEDULE
        if collection is not None and not scheduled and state is not OperationState.FAILED:
            self._note_override(operation, collection, now)
        if scheduled and state is not OperationState.FAILED:
            self._notify(
                NotificationKind.SCHEDULE_STARTED
                if operation.action is Action.START
                else NotificationKind.SCHEDULE_STOPPED,
                f"⏰ {name} {operation.action.past} on schedule "
                f"({operation.succeeded}/{len(operation.resources)} "
                f"{operation.action.wanted_word}; {operation.reason}).",
                collection,
            )
        if scheduled:
            return Outcome()  # announced by the notification above, not as a reply
        return Outcome(
            (
                Message(
                    self._report(operation, collection),
                    Destination.IN_CHANNEL,
                    ref=f"op:{operation.id}",
                ),
            )
        )

    def _note_override(self, operation: Operation, collection: Collection, now: datetime) -> None:
        """A manual action against the schedule (or any --for hold) becomes an override,
        so the scheduler knows; people are told how long it holds."""
        schedule = self.settings.schedules.get(collection.schedule or "")
        wanted = Desired.ON if operation.action is Action.START else Desired.OFF
        hold_until = operation.hold_until
        if hold_until is None:
            if schedule is None:
                return
            if desired_state(schedule, now) is wanted:
                self.store.clear_override(collection.id)
                return
            boundary = next_boundary(schedule, now)
            until = boundary.at if boundary else None
        else:
            until = hold_until
        self.store.set_override(
            Override(
                collection.id, wanted.value, operation.actor, now, until, hold_until is not None
            )
        )
        zone = schedule.zone if schedule else self._zone()
        if hold_until is not None:
            after = "returns to its schedule" if schedule else "is put back"
            when = f"until {hold_until.astimezone(zone):%a %H:%M %Z}, then {after}"
        elif until is not None:
            when = f"until {until.astimezone(zone):%a %H:%M %Z}, when its schedule resumes"
        else:
            when = "until changed by hand"
        against = "outside its schedule" if hold_until is None else "for a while"
        self._notify(
            NotificationKind.MANUAL_OVERRIDE,
            f"{operation.actor_label} {operation.action.past} {collection.display_name} "
            f"{against}; it stays {operation.action.wanted_word} {when}.",
            collection,
        )

    def _report(self, operation: Operation, collection: Collection | None) -> OperationReport:
        name = collection.display_name if collection else operation.collection_id
        total = len(operation.resources)
        action = operation.action
        if not operation.state.is_final:
            text = (
                f'{action.ing} "{name}" ({total} resource{"" if total == 1 else "s"})… '
                f"{operation.succeeded}/{total} {action.wanted_word}"
            )
            return OperationReport(operation, name, text, finished=False)
        if operation.state is OperationState.SUCCEEDED:
            if operation.resources and all(r.message == ALREADY for r in operation.resources):
                text = f"✓ {name} was already {action.wanted_word}: nothing to do"
            else:
                text = f"✓ {name} is now {action.wanted_word}"
            return OperationReport(operation, name, text, True, Tone.SUCCESS)
        lines = "\n".join(f"• {r.label}: {r.message}" for r in operation.failures)
        head = (
            f"✗ {name} could not be {action.past}"
            if operation.state is OperationState.FAILED
            else f"⚠ {name} is partly {action.wanted_word}: "
            f"{operation.succeeded}/{total} {action.wanted_word}"
        )
        return OperationReport(operation, name, f"{head}\n{lines}", True, Tone.ERROR)

    def _progress_outcome(self, operation: Operation, collection: Collection) -> Outcome:
        return Outcome(
            (
                Message(
                    self._report(operation, collection),
                    Destination.IN_CHANNEL,
                    ref=f"op:{operation.id}",
                ),
            )
        )

    # ------------------------------------------------------------------ approvals

    def _request_approval(
        self,
        rule: ApprovalRule,
        action: Action,
        actor: Actor,
        account: Account,
        channel: Channel,
        collection: Collection,
        reason: str,
        hold: timedelta | None,
    ) -> Outcome:
        params = (("hold_seconds", str(int(hold.total_seconds()))),) if hold else ()
        request = new_request(
            id=self.ids.new_id("apr-"),
            rule=rule,
            collection_id=collection.id,
            action=action.value,
            requester=account.email,
            requester_label=actor.label,
            reason=reason,
            now=self._now(),
            channel=channel.id or channel.name,
            params=params,
        )
        self.store.add_approval(request)
        self._audit_actor(
            actor,
            account,
            action.value,
            collection.id,
            AuditOutcome.PENDING,
            reason=reason,
            approval_id=request.id,
        )
        card = self._approval_card(request, collection, pending=True)
        who = describe_approvers(request.approvers)
        expires = request.expires_at.astimezone(self._zone())
        messages = [
            Message(
                Notice(
                    f"{collection.display_name} needs approval to {action.value}. "
                    f"Request {request.id} was sent to {who}; it expires at "
                    f"{expires:%H:%M %Z}. You will get the decision by direct message.",
                    Tone.INFO,
                    title="Approval requested",
                ),
                Destination.REPLY,
            )
        ]
        messages.extend(
            Message(card, to, target, ref) for to, target, ref in self._card_places(request)
        )
        return Outcome(tuple(messages))

    def _card_places(self, request: ApprovalRequest) -> list[tuple[Destination, str, str]]:
        """Where the approval card goes: the approvers' channel; else a DM to each listed
        approver; else (a user group only) the default notification channel."""
        ref = f"approval:{request.id}"
        approvers = request.approvers
        if approvers.channel:
            return [(Destination.CHANNEL, approvers.channel, ref)]
        if approvers.accounts:
            return [(Destination.PERSON, p, f"{ref}:{p}") for p in sorted(approvers.accounts)]
        default = self.settings.notifications.default_channel
        return [(Destination.CHANNEL, default, ref)] if default else []

    def _approval_card(
        self, request: ApprovalRequest, collection: Collection | None, *, pending: bool
    ) -> ApprovalCard:
        name = collection.display_name if collection else request.collection_id
        zone = self._zone()
        if pending:
            status = (
                f"{request.requester_label or request.requester} asks to {request.action} {name}: "
                f"“{request.reason}”. Expires {request.expires_at.astimezone(zone):%H:%M %Z}."
            )
            buttons = (
                Button("Approve", "nightops.approve", request.id, "primary"),
                Button("Deny", "nightops.deny", request.id, "danger"),
            )
            return ApprovalCard(request, name, buttons, status)
        when = request.decided_at.astimezone(zone) if request.decided_at else None
        status = {
            ApprovalState.APPROVED: f"✓ Approved by {request.decided_by}",
            ApprovalState.DENIED: f"✗ Denied by {request.decided_by}",
            ApprovalState.EXPIRED: "⌛ Expired with no decision",
            ApprovalState.CANCELLED: "Cancelled by the requester",
            ApprovalState.PENDING: "Pending",
        }[request.state]
        if request.state is ApprovalState.EXPIRED:
            when = request.expires_at.astimezone(zone)
        if when is not None:
            status += f" at {when:%H:%M %Z}"
        return ApprovalCard(request, name, (), status)

    def _is_approver(
        self, actor: Actor, account: Account | None, channel: Channel, request: ApprovalRequest
    ) -> bool:
        if account is None:
            return False
        approvers = request.approvers
        if account.email in {a.lower() for a in approvers.accounts}:
            return True
        if approvers.usergroup and approvers.usergroup in actor.groups:
            return True
        if approvers.channel:
            wanted = approvers.channel.lstrip("#").lower()
            names = {(channel.id or "").lower(), (channel.name or "").lstrip("#").lower()}
            return wanted in names
        return False

    def _decide(
        self,
        actor: Actor,
        account: Account | None,
        channel: Channel,
        approval_id: str,
        event: ApprovalEvent,
    ) -> Outcome:
        request = self.store.get_approval(approval_id)
        if request is None:
            return Outcome.reply(Problem(f"Approval request {approval_id} is unknown."))
        if account is None:
            return Outcome.reply(
                Problem("You are not linked to a NightOps account; run /nightops link first.")
            )
        now = self._now()
        if request.state is ApprovalState.PENDING and request.expires_at <= now:
            self.expire_approvals()
            request = self.store.get_approval(approval_id) or request
        try:
            decided = apply(
                request,
                event,
                actor=account.email,
                now=now,
                actor_is_approver=self._is_approver(actor, account, channel, request),
            )
        except ApprovalError as exc:
            self._audit_actor(
                actor,
                account,
                event.value,
                request.collection_id,
                AuditOutcome.DENIED,
                approval_id=request.id,
                detail=exc.message,
            )
            return Outcome.reply(Problem(exc.message))
        if not self.store.transition_approval(ApprovalState.PENDING, decided):
            current = self.store.get_approval(approval_id) or request
            try:
                apply(current, event, actor=account.email, now=now, actor_is_approver=True)
            except ApprovalError as exc:
                return Outcome.reply(Problem(exc.message))
            return Outcome.reply(Problem("Someone else decided this request at the same moment."))
        self._audit_actor(
            actor,
            account,
            event.value,
            decided.collection_id,
            AuditOutcome.OK,
            approval_id=decided.id,
        )
        out = self._approval_decided_messages(decided)
        collection = self._collections.get(decided.collection_id)
        if decided.state is ApprovalState.APPROVED and collection is not None:
            requester_channel = _channel_from(decided.channel) if decided.channel else channel
            out += self._begin(
                Action(decided.action),
                decided.requester,
                decided.requester_label or decided.requester,
                actor.via,
                requester_channel,
                collection,
                decided.reason,
                approval_id=decided.id,
                to=Destination.CHANNEL if decided.channel else Destination.IN_CHANNEL,
                target=decided.channel,
                hold=_hold_of(decided),
            )
        return out

    def _approval_decided_messages(self, request: ApprovalRequest) -> Outcome:
        collection = self._collections.get(request.collection_id)
        card = self._approval_card(request, collection, pending=False)
        # Every copy of the card is updated in place (adapters know each ref).
        messages = [
            Message(card, to, target, ref) for to, target, ref in self._card_places(request)
        ]
        name = card.collection_name
        verdict = {
            ApprovalState.APPROVED: f"was approved by {request.decided_by}; starting it now",
            ApprovalState.DENIED: f"was denied by {request.decided_by}",
            ApprovalState.EXPIRED: "expired with no decision; ask again if you still need it",
            ApprovalState.CANCELLED: "was cancelled",
            ApprovalState.PENDING: "is pending",
        }[request.state]
        if request.state is ApprovalState.APPROVED and request.action == "stop":
            verdict = verdict.replace("starting", "stopping")
        text = f"Your request {request.id} to {request.action} {name} {verdict}."
        if request.note:
            text += f" Note: {request.note}"
        messages.append(
            Message(Notice(text, _tone(request.state)), Destination.PERSON, request.requester)
        )
        kind = (
            NotificationKind.APPROVAL_EXPIRED
            if request.state is ApprovalState.EXPIRED
            else NotificationKind.APPROVAL_DECIDED
        )
        self._notify(kind, text.replace("Your request", "Request"), collection)
        return Outcome(tuple(messages))

    # ------------------------------------------------------------------ helpers

    def _provider(self, name: str) -> CloudProvider:
        try:
            return self.providers[name]
        except KeyError:
            raise ProviderError(
                f"No cloud provider '{name}' is loaded. Install it "
                f"(pip install 'nightops[{name}]') or fix the resource's provider."
            ) from None

    def _now(self) -> datetime:
        return self.clock.now()

    def _zone(self) -> ZoneInfo:
        return ZoneInfo(self.settings.timezone)

    def _notify(
        self,
        kind: NotificationKind,
        text: str,
        collection: Collection | None,
        person: str | None = None,
    ) -> None:
        notification = route(kind, text, collection, self.settings.notifications, person)
        if notification is not None:
            self.notifier.notify(notification)

    def _audit(
        self,
        actor: str,
        via: str,
        action: str,
        collection: str | None,
        outcome: AuditOutcome = AuditOutcome.OK,
        *,
        reason: str = "",
        approval_id: str | None = None,
        params: tuple[tuple[str, str], ...] = (),
        detail: str = "",
    ) -> None:
        self.store.append_audit(
            AuditEvent(
                at=self._now(),
                actor=actor,
                via=via,
                action=action,
                collection=collection,
                outcome=outcome,
                reason=reason,
                params=params,
                approval_id=approval_id,
                detail=detail,
            )
        )

    def _audit_actor(
        self,
        actor: Actor,
        account: Account | None,
        action: str,
        collection: str | None,
        outcome: AuditOutcome,
        *,
        reason: str = "",
        approval_id: str | None = None,
        params: tuple[tuple[str, str], ...] = (),
        detail: str = "",
    ) -> None:
        who = (
            account.email
            if account
            else f"{actor.label} (unlinked {actor.workspace}/{actor.user_id})"
        )
        self._audit(
            who,
            actor.via,
            action,
            collection,
            outcome,
            reason=reason,
            approval_id=approval_id,
            params=params,
            detail=detail,
        )


def _hold_of(request: ApprovalRequest) -> timedelta | None:
    seconds = dict(request.params).get("hold_seconds")
    return timedelta(seconds=int(seconds)) if seconds else None


def _channel_from(text: str) -> Channel:
    """Rebuild a Channel from what was stored: an ID if it looks like one, else a name."""
    return Channel(id=text) if is_channel_id(text) else Channel(name=text)


def _tone(state: ApprovalState) -> Tone:
    return Tone.SUCCESS if state is ApprovalState.APPROVED else Tone.WARNING


def _outcome_of(result: ActionResult) -> ResourceOutcome:
    message = result.message
    if result.kind is ResultKind.ALREADY and not message:
        message = ALREADY
    return ResourceOutcome(
        str(result.resource.key), result.resource.label, result.ok, result.state.value, message
    )


def _by_provider(resources: Iterable[Resource]) -> list[tuple[str, list[Resource]]]:
    ordered = sorted(resources, key=lambda r: r.provider)
    return [(name, list(group)) for name, group in groupby(ordered, key=lambda r: r.provider)]


def _page(value: str) -> int:
    try:
        return max(0, int(value))
    except ValueError:
        return 0

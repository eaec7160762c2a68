"""Stop (or start) a NightOps collection from a script — a CI job, a cron job — no chat.

    python nightly_stop.py staging-api                      # the built-in sandbox setup
    python nightly_stop.py qa-env                           # one resource refuses: exit 1
    python nightly_stop.py --action start staging-api -r "load test"
    python nightly_stop.py --config nightops.toml --as ci@company.com staging-api

It prints one line per resource and the audit lines the run wrote, and exits 0 when every
resource reached the wanted state, 1 when some did not, 2 when the command was refused.

Without ``--config`` everything is built here in Python from ``nightops_core`` and
``nightops_providers`` (the sandbox, a simulated cloud); with ``--config`` the collections,
rules, providers and state store come from a ``nightops.toml`` through the host's
composition root (``nightops.app.build``), so the same script drives real clouds.
"""

from __future__ import annotations

import argparse
import secrets
import sys
from collections.abc import Sequence
from datetime import UTC, datetime

from nightops_core.model import Collection, Resource
from nightops_core.notify import Notification
from nightops_core.permissions import Account, Channel, ChannelRule, Role
from nightops_core.ports import StateStore
from nightops_core.responses import Body, Notice, OperationReport, Problem, ReasonRequired
from nightops_core.service import Actor, CommandRequest, Service
from nightops_core.settings import Settings
from nightops_core.testing import InMemoryStateStore
from nightops_providers import SandboxProvider

#: The account the job acts as, and the "channel" it acts in (rules apply as in Slack).
CI_ACCOUNT = "ci@company.com"
CI_CHANNEL = "#ci"

SANDBOX = "sandbox"
PAST = {"start": "started", "stop": "stopped"}


def sandbox_settings() -> Settings:
    """Two collections on the simulated cloud; the CI account may start and stop both."""

    def vm(name: str, rid: str, **tags: str) -> Resource:
        return Resource(SANDBOX, "ec2", rid, name=name, region="eu-west-1", tags=tags)

    staging = Collection(
        "staging-api",
        "Staging API",
        env="staging",
        resources=(
            vm("api-server-1", "i-0001"),
            vm("api-server-2", "i-0002"),
            Resource(SANDBOX, "rds", "staging-db", name="rds-primary", stage=0),
        ),
    )
    qa = Collection(
        "qa-env",
        "QA Environment",
        env="qa",
        resources=(
            vm("qa-web", "i-0101"),
            # The sandbox refuses to stop this one, as a cloud would without the permission.
            vm("qa-worker", "i-0102", **{"sandbox:fault": "fail-stop"}),
        ),
    )
    return Settings(
        collections=(staging, qa),
        accounts=(Account(CI_ACCOUNT, Role.ADMIN, name="CI"),),
        channel_rules=(ChannelRule(CI_CHANNEL, frozenset({"start", "stop"}), ("*",)),),
    )


class UtcClock:
    """The Clock port."""

    def now(self) -> datetime:
        return datetime.now(UTC)


class RandomIds:
    """The IdSource port."""

    def new_id(self, prefix: str) -> str:
        return f"{prefix}{secrets.token_hex(4)}"


class PrintNotifier:
    """The Notifier port: where Slack would post, a CI log prints."""

    def notify(self, notification: Notification) -> None:
        sys.stderr.write(f"[notify {notification.kind.value}] {notification.text}\n")


def sandbox_service() -> tuple[Service, StateStore]:
    """Core and providers only: the ports implemented above, the sandbox as the cloud."""
    store = InMemoryStateStore()  # a real job would keep its audit trail: see README.md
    service = Service(
        sandbox_settings(),
        providers={SANDBOX: SandboxProvider(transition_seconds=0.05, poll_seconds=0.01)},
        store=store,
        notifier=PrintNotifier(),
        clock=UtcClock(),
        ids=RandomIds(),
    )
    return service, store


def config_service(path: str) -> tuple[Service, StateStore]:
    """The same service from a nightops.toml (its providers, rules and state store)."""
    from nightops.app import build
    from nightops.config import load_config

    app = build(load_config(path), notifier=PrintNotifier())
    return app.service, app.store


def body_text(body: Body) -> str:
    if isinstance(body, Problem):
        return body.message
    if isinstance(body, Notice | OperationReport):
        return body.text
    if isinstance(body, ReasonRequired):
        return body.prompt
    return type(body).__name__


def run(
    service: Service, store: StateStore, action: str, collection: str, reason: str, actor: str
) -> int:
    out = sys.stdout
    skip_confirmation = "--force" if action == "stop" else "--no-confirm"
    text = f"{action} {collection} {skip_confirmation}"
    if reason:
        text += ' -r "' + reason.replace('"', "'") + '"'
    audit_before = len(store.audit_records())
    who = Actor(workspace="ci", user_id="ci-job", name="CI", email=actor, via="ci")
    outcome = service.handle_command(CommandRequest(who, Channel(name=CI_CHANNEL), text))
    out.write(f"NightOps: {text} (as {actor})\n")
    status = 0
    if not outcome.jobs:
        # Refused, unknown collection, needs approval, already busy …: say why.
        for message in outcome.messages:
            out.write(f"  {body_text(message.body)}\n")
        status = 2
    for job in outcome.jobs:
        service.run_job(job)
        operation = store.get_operation(job.operation_id)
        assert operation is not None
        for resource in operation.resources:
            mark = "✓" if resource.ok else "✗"
            line = f"{mark} {resource.label}: {resource.state or 'unknown'}"
            if resource.message:
                line += f" — {resource.message}"
            out.write(line + "\n")
        out.write(
            f"Result: {operation.state.value}, {operation.succeeded}/{len(operation.resources)} "
            f"resources {PAST[action]}\n"
        )
        if operation.failures:
            status = max(status, 1)
    out.write("Audit:\n")
    for record in store.audit_records()[audit_before:]:
        out.write(f"  {record.event.text()}\n")
    return status


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("collection", help="collection id or display name")
    parser.add_argument("--action", choices=("stop", "start"), default="stop")
    parser.add_argument("--reason", "-r", help='default: "nightly stop (CI)"')
    parser.add_argument("--config", "-c", help="a nightops.toml (default: the sandbox setup)")
    parser.add_argument("--as", dest="actor", default=CI_ACCOUNT, help="account email")
    args = parser.parse_args(argv)
    service, store = config_service(args.config) if args.config else sandbox_service()
    reason = args.reason or f"nightly {args.action} (CI)"
    return run(service, store, args.action, args.collection, reason, args.actor)


if __name__ == "__main__":
    sys.exit(main())

"""The ``nightops`` command line."""

from __future__ import annotations

import argparse
import difflib
import logging
import signal
import sys
import tempfile
import threading
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, TextIO
from zoneinfo import ZoneInfo

from nightops import __version__, savings_report
from nightops.app import build
from nightops.attention import build_attention
from nightops.audit_report import FORMATS, parse_day, select, write_records, write_verification
from nightops.config import Config, load_config, parse_config
from nightops.console import Console, ConsoleNotifier
from nightops.doctor import doctor
from nightops.holidays import uptime_calendar
from nightops.logs import LOG_FORMATS, LOG_LEVELS, redact_config_secrets, setup_cli_logging
from nightops.notifiers import LogNotifier
from nightops.plugins import available_providers
from nightops.pricing import Pricer
from nightops.scheduler import Scheduler
from nightops.state import open_store
from nightops.workers import Workers
from nightops_core.errors import ConfigError, NightOpsError
from nightops_core.grammar import resolve_collection
from nightops_core.model import Collection
from nightops_core.ports import StateStore
from nightops_core.savings import compute_savings, parse_period
from nightops_core.schedule import (
    Desired,
    Schedule,
    boundaries_between,
    desired_state,
    next_boundary,
)

if TYPE_CHECKING:  # prometheus-client is an optional extra
    from nightops.metrics import Metrics

__all__ = ["main"]

DEMO_USER = "dave"
DEMO_CHANNEL = "#platform-team"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="nightops",
        description="Start and stop groups of cloud resources from chat, on schedules, safely.",
    )
    parser.add_argument("--version", action="version", version=f"nightops {__version__}")
    parser.add_argument(
        "--log-format",
        choices=LOG_FORMATS,
        default="text",
        metavar="FORMAT",
        help="log lines as text (default) or json",
    )
    parser.add_argument(
        "--log-level",
        choices=LOG_LEVELS,
        type=str.lower,
        metavar="LEVEL",
        help="debug, info, warning, error or critical "
        "(default: info for serve and scheduler, else warning)",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    demo = commands.add_parser(
        "demo",
        help="a chat console on a simulated cloud (no setup needed)",
        description="Open the chat console on the built-in demo configuration: the product "
        "guide's collections, channels and people on the simulated 'sandbox' cloud. State "
        "lives in a temporary directory and is gone when you quit.",
    )
    demo.add_argument("--user", default=DEMO_USER, help=f"who you are (default {DEMO_USER})")
    demo.add_argument(
        "--channel", default=DEMO_CHANNEL, help=f"where you type (default {DEMO_CHANNEL})"
    )
    demo.add_argument(
        "--print-config", action="store_true", help="print the demo configuration and exit"
    )

    console = commands.add_parser(
        "console",
        help="a chat console on your own configuration",
        description="Type /nightops commands as USER in CHANNEL against the clouds your "
        "configuration names. Lines may also be piped on standard input.",
    )
    console.add_argument("--config", "-c", required=True, help="path of nightops.toml")
    console.add_argument("--user", "-u", required=True, help="account email or its name part")
    console.add_argument("--channel", required=True, help="channel name, e.g. #dev-team")

    check = commands.add_parser(
        "check-config",
        help="validate a configuration and summarise it",
        description="Print every problem in the file (exit 1), or a summary of collections, "
        "schedules, rules and the next transitions (exit 0).",
    )
    check.add_argument("config", help="path of nightops.toml")

    doctor_ = commands.add_parser(
        "doctor",
        help="check config, state, providers, Slack and the clock",
        description="Run the troubleshooting checks: each prints ✓ or ✗ with the fix. "
        "Nothing is started, stopped or posted. Exit 0 if all pass, else 1.",
    )
    doctor_.add_argument("--config", "-c", required=True, help="path of nightops.toml")

    serve = commands.add_parser(
        "serve",
        help="run the Slack app and the scheduler",
        description="Answer Slack (Socket Mode, HTTP on /slack/events, or both) and run the "
        "schedules, until Ctrl-C or SIGTERM. Several replicas may share one PostgreSQL state.",
    )
    serve.add_argument("--config", "-c", required=True, help="path of nightops.toml")
    serve.add_argument(
        "--socket-mode", action="store_true", help="connect to Slack with slack.app_token"
    )
    serve.add_argument(
        "--http-port", "--http", type=int, metavar="PORT", help="serve /slack/events on PORT"
    )
    serve.add_argument("--host", default="127.0.0.1", help="HTTP address (default 127.0.0.1)")
    serve.add_argument(
        "--no-scheduler", action="store_true", help="answer Slack only; run schedules elsewhere"
    )
    serve.add_argument(
        "--metrics-port",
        type=int,
        metavar="PORT",
        help="serve Prometheus metrics on PORT at /metrics (needs the metrics extra)",
    )

    scheduler = commands.add_parser(
        "scheduler",
        help="run the schedules alone (no chat)",
        description="Act on schedule boundaries and expire approvals every tick "
        "([nightops] scheduler_tick), until stopped with Ctrl-C or SIGTERM. Several "
        "replicas may run against one PostgreSQL state: each boundary acts exactly once.",
    )
    scheduler.add_argument("--config", "-c", required=True, help="path of nightops.toml")
    scheduler.add_argument("--once", action="store_true", help="run one tick and exit")

    audit = commands.add_parser(
        "audit",
        help="show, export or verify the audit trail",
        description="Print audit records (text, JSON or CSV), filtered by collection, actor "
        "and period; --verify checks the whole hash chain and names the first broken record.",
    )
    audit.add_argument("--config", "-c", required=True, help="path of nightops.toml")
    audit.add_argument("--collection", help="only records about this collection id")
    audit.add_argument("--actor", help="only records by this email (or 'schedule')")
    audit.add_argument("--since", help="from this date or time (2026-11-01)")
    audit.add_argument("--until", help="before this date or time")
    audit.add_argument("--format", choices=FORMATS, default="text", help="output format")
    audit.add_argument(
        "--verify", action="store_true", help="check the hash chain (exit 1 if broken)"
    )

    savings = commands.add_parser(
        "savings",
        help="hours stopped and money saved, versus running 24/7",
        description="Per collection and resource, from the audit trail's starts and stops "
        "and the hourly prices; a resource without a price has unknown savings, never zero. "
        "Dates are midnights in [nightops] timezone.",
    )
    savings.add_argument("--config", "-c", required=True, help="path of nightops.toml")
    savings.add_argument(
        "--since", help="from this date (2026-11-01; default: the 1st of this month)"
    )
    savings.add_argument("--until", help="before this date (default: now)")
    savings.add_argument("--collection", help="only this collection (id or display name)")
    savings.add_argument(
        "--format", choices=savings_report.FORMATS, default="table", help="output format"
    )

    schedule = commands.add_parser("schedule", help="preview or export a collection's schedule")
    schedule_commands = schedule.add_subparsers(dest="schedule_command", metavar="ACTION")
    preview = schedule_commands.add_parser(
        "preview", help="print the coming transitions in the schedule's zone"
    )
    export = schedule_commands.add_parser(
        "export", help="write the collection's uptime as an iCalendar file"
    )
    for sub in (preview, export):
        sub.add_argument("collection", help="collection id or display name")
        sub.add_argument("--config", "-c", required=True, help="path of nightops.toml")
        sub.add_argument("--days", type=int, default=7, help="how many days ahead (default 7)")
    export.add_argument("--ics", action="store_true", required=True, help="iCalendar format")
    export.add_argument("--output", "-o", help="file to write (default: standard output)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``nightops`` console script."""
    args = _parser().parse_args(argv)
    undo_logging = setup_cli_logging(args.log_format, args.log_level, args.command)
    try:
        match args.command:
            case "demo":
                return _demo(args, sys.stdin, sys.stdout)
            case "console":
                return _console(load_config(args.config), args.user, args.channel, sys.stdin)
            case "check-config":
                return _check_config(args.config, sys.stdout)
            case "doctor":
                return doctor(args.config, sys.stdout)
            case "audit":
                return _audit(load_config(args.config), args, sys.stdout)
            case "serve":
                return _serve(load_config(args.config), args)
            case "savings":
                return _savings(load_config(args.config), args, sys.stdout)
            case "scheduler":
                return _scheduler(load_config(args.config), once=args.once)
            case "schedule" if args.schedule_command == "preview":
                return _schedule_preview(load_config(args.config), args, sys.stdout)
            case "schedule" if args.schedule_command == "export":
                return _schedule_export(load_config(args.config), args, sys.stdout)
            case _:
                _parser().print_help()
                return 0
    except NightOpsError as exc:
        print(f"nightops: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    finally:
        undo_logging()


def demo_config_text() -> str:
    """The demo's TOML, as shipped in the package."""
    return resources.files("nightops").joinpath("demo/demo.toml").read_text(encoding="utf-8")


def _demo(args: argparse.Namespace, stdin: TextIO, stdout: TextIO) -> int:
    if args.print_config:
        stdout.write(demo_config_text())
        return 0
    with tempfile.TemporaryDirectory(prefix="nightops-demo-") as state_dir:
        config = parse_config(demo_config_text(), source="demo", base_dir=Path(state_dir), env={})
        return _console(config, args.user, args.channel, stdin)


def _console(config: Config, user: str, channel: str, stdin: TextIO) -> int:
    out = sys.stdout
    app = build(config, notifier=ConsoleNotifier(out))
    names: dict[str, str] = {}
    for account in config.settings.accounts:
        names[account.email] = account.email
        names.setdefault(account.email.partition("@")[0], account.email)
    console = Console(
        app.service,
        accounts_by_name=names,
        user=user,
        channel=channel,
        out=out,
        prompt=stdin.isatty(),
    )
    console.banner()
    # Finish what a previous run left half-done, and expire what is due.
    for outcome in (app.service.reconcile_operations(), app.service.expire_approvals()):
        console.show(outcome)
    return console.run(stdin)


def _check_provider_names(config: Config) -> None:
    """ConfigError for providers the file names that no installed plugin registers (read
    from package metadata: nothing is imported), as ``console`` would fail on them."""
    known = sorted(available_providers())
    named = [(f"providers.{name}", name) for name in config.providers]
    for i, collection in enumerate(config.settings.collections):
        named += [
            (f"collections[{i}].resources[{j}].provider", r.provider)
            for j, r in enumerate(collection.resources)
        ]
        named += [
            (f"collections[{i}].select[{j}].provider", s.provider)
            for j, s in enumerate(collection.selectors)
        ]
    problems = []
    for key, name in named:
        if name not in known:
            close = difflib.get_close_matches(name, known, n=1)
            guess = f"; did you mean '{close[0]}'?" if close else ""
            problems.append(
                f"  - {key}: unknown provider '{name}'{guess} (installed: {', '.join(known)})"
            )
    if problems:
        noun = "problem" if len(problems) == 1 else "problems"
        raise ConfigError(f"{config.source}: {len(problems)} {noun}:\n" + "\n".join(problems))


def _check_config(path: str, out: TextIO) -> int:
    config = load_config(path)  # its problems go to stderr with exit 1, as for every command
    _check_provider_names(config)
    settings = config.settings
    now = datetime.now(UTC)
    out.write(f"{config.source}: OK\n")
    out.write(f"  state: {config.shown_state_url}\n")
    out.write(f"  providers: {', '.join(sorted(config.provider_names)) or 'none'}\n")
    out.write(
        f"  {len(settings.collections)} collections, {len(settings.schedules)} schedules, "
        f"{len(settings.channel_rules)} channel rules, {len(settings.accounts)} accounts, "
        f"{len(settings.approval_rules)} approval rules\n"
    )
    for collection in settings.collections:
        schedule = settings.schedules.get(collection.schedule or "")
        line = f"  - {collection.id} ({collection.display_name}): "
        line += f"{len(collection.resources)} resources"
        if collection.selectors:
            line += f" + {len(collection.selectors)} selectors"
        if schedule is None:
            line += ", manual only"
        else:
            boundary = next_boundary(schedule, now)
            line += f", schedule {collection.schedule}"
            if boundary is not None:
                verb = "start" if boundary.desired is Desired.ON else "stop"
                line += (
                    f"; next: {verb} {boundary.at.astimezone(schedule.zone):%a %Y-%m-%d %H:%M %Z}"
                )
        out.write(line + "\n")
    return 0


def _audit(config: Config, args: argparse.Namespace, out: TextIO) -> int:
    store = open_store(config.state_url)
    records = store.audit_records()
    if args.verify:
        return 0 if write_verification(records, out) else 1
    chosen = select(
        records,
        collection=args.collection,
        actor=args.actor,
        since=parse_day(args.since, "--since") if args.since else None,
        until=parse_day(args.until, "--until") if args.until else None,
    )
    write_records(chosen, args.format, out)
    return 0


def _serve(config: Config, args: argparse.Namespace) -> int:
    if not args.socket_mode and args.http_port is None:
        raise NightOpsError(
            "Choose how Slack reaches NightOps: --socket-mode (no public URL needed) and/or "
            "--http-port PORT (Slack posts to https://YOUR-HOST/slack/events)."
        )
    if config.slack is None:
        raise NightOpsError(
            "serve needs a [slack] table in the configuration (see docs/slack.md); "
            "to run only the schedules, use nightops scheduler."
        )
    try:
        from nightops.slack_host import serve  # the slack extra is needed only here
    except ImportError as exc:
        raise NightOpsError(
            f"serve needs the Slack extra ({exc.name} is missing): pip install 'nightops[slack]'"
        ) from None

    redact_config_secrets(config)
    store = None
    server = None
    background: list[Callable[[threading.Event], None]] = []
    if args.metrics_port is not None:
        try:
            from nightops.metrics import MeteredStore, Metrics, start_metrics_server
        except ImportError:
            raise NightOpsError(
                "--metrics-port needs prometheus-client: pip install 'nightops[metrics]'"
            ) from None
        metrics = Metrics()
        store = MeteredStore(open_store(config.state_url), metrics)
        server = start_metrics_server(args.metrics_port, args.host, metrics)
        background.append(_savings_gauge(config, store.inner, metrics))
    try:
        return serve(
            config,
            socket_mode=args.socket_mode,
            http_port=args.http_port,
            host=args.host,
            scheduler=not args.no_scheduler,
            store=store,
            background=background,
        )
    finally:
        if server is not None:
            server.close()


#: How often serve refreshes the month-to-date savings gauge.
SAVINGS_REFRESH = timedelta(minutes=10)


def _savings_gauge(
    config: Config, store: StateStore, metrics: Metrics
) -> Callable[[threading.Event], None]:
    """A loop for serve: publish month-to-date savings every few minutes."""
    zone = ZoneInfo(config.settings.timezone)
    pricer = Pricer(config.price_overrides)
    collections = [pricer.collection(c) for c in config.settings.collections]

    def loop(stop: threading.Event) -> None:
        while not stop.is_set():
            try:
                start, end = parse_period(None, None, datetime.now(UTC), zone)
                report = compute_savings(store.audit_records(), collections, start, end)
                metrics.observe_savings(report)
            except NightOpsError as exc:
                logging.getLogger("nightops.metrics").warning("savings gauge: %s", exc)
            stop.wait(SAVINGS_REFRESH.total_seconds())

    return loop


def _savings(config: Config, args: argparse.Namespace, out: TextIO) -> int:
    settings = config.settings
    zone = ZoneInfo(settings.timezone)
    start, end = parse_period(args.since, args.until, datetime.now(UTC), zone)
    chosen = (
        [resolve_collection(args.collection, settings.collections)]
        if args.collection
        else list(settings.collections)
    )
    pricer = Pricer(config.price_overrides)  # listed resources, priced as the service prices
    collections = [pricer.collection(c) for c in chosen]
    records = open_store(config.state_url).audit_records()
    report = compute_savings(records, collections, start, end)
    out.write(savings_report.render(report, args.format, zone))
    return 0


def _scheduler(config: Config, *, once: bool) -> int:
    redact_config_secrets(config)
    app = build(config, notifier=LogNotifier())
    workers = Workers(app.service)
    scheduler = Scheduler(app, workers=workers)
    attention = build_attention(
        app.service, config.attention, workers=workers, deliver=scheduler.deliver
    )
    workers.submit(app.service.reconcile_operations(), scheduler.deliver)
    if once:
        scheduler.tick()
        attention.run_pass()
        workers.shutdown(wait=True)
        return 0
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    passes = threading.Thread(target=attention.run, args=(stop,), name="nightops-attention")
    passes.start()
    try:
        scheduler.run(stop)
    except KeyboardInterrupt:
        stop.set()
    passes.join()
    workers.shutdown(wait=True)
    return 0


def _schedule_of(config: Config, name: str) -> tuple[Collection, Schedule]:
    collection = resolve_collection(name, config.settings.collections)
    schedule = config.settings.schedules.get(collection.schedule or "")
    if schedule is None:
        raise NightOpsError(
            f"{collection.display_name} has no schedule: it is started and stopped by hand only."
        )
    return collection, schedule


def _schedule_preview(config: Config, args: argparse.Namespace, out: TextIO) -> int:
    collection, schedule = _schedule_of(config, args.collection)
    now = datetime.now(UTC)
    out.write(f"{collection.display_name}: {schedule.text()}\n")
    state = desired_state(schedule, now).value
    out.write(f"  now: {state}\n")
    boundaries = boundaries_between(schedule, now, now + timedelta(days=args.days))
    if not boundaries:
        out.write(f"  no transitions in the next {args.days} days\n")
    for boundary in boundaries:
        verb = "start" if boundary.desired is Desired.ON else "stop "
        out.write(f"  {verb} {boundary.at.astimezone(schedule.zone):%a %Y-%m-%d %H:%M %Z}\n")
    return 0


def _schedule_export(config: Config, args: argparse.Namespace, out: TextIO) -> int:
    collection, schedule = _schedule_of(config, args.collection)
    data = uptime_calendar(collection.display_name, schedule, datetime.now(UTC), args.days)
    if args.output:
        Path(args.output).write_bytes(data)
    else:
        out.write(data.decode("utf-8"))
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

"""Acknowledgement latency of ``/slack/events`` for slash commands: NightOps's HTTP app
beside a bare slack-bolt App that only acks, both served the same way (waitress, 8
threads, each in its own process), driven by 50 concurrent clients over loopback, each
request signed and unique (fresh trigger_id), one connection per request as Slack does.

Target: p99 far under Slack's 3 s, and within 1.5x of the bare Bolt ack. Run::

    .venv/bin/python benchmarks/bench_slack_ack.py [--requests 20]

It prints a table (figures for docs/slack.md "Benchmarks").
"""

from __future__ import annotations

import argparse
import http.client
import logging
import multiprocessing
import statistics
import sys
import threading
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from slack_sdk.signature import SignatureVerifier

ROOT = Path(__file__).resolve().parent.parent
SECRET = "bench-signing-secret"
CLIENTS = 50


def _quiet() -> None:
    # waitress logs "Task queue depth is N" under load: expected here.
    logging.getLogger("waitress.queue").setLevel(logging.ERROR)


def _fake_slack(port_queue: Any, stop: Any) -> None:
    """Slack's side (Web API + response_url receiver) in a process of its own, as it would
    be on another machine: its CPU is not the app's."""
    sys.path.insert(0, str(ROOT / "tests" / "slack"))
    from fake_slack import FakeSlack

    fake = FakeSlack().start()
    for i in range(CLIENTS):
        fake.add_user(f"U{i}", f"user{i}", f"user{i}@company.com")
    fake.add_channel("CDEV1", "dev-team")
    port_queue.put((fake.api_url, fake.response_url("bench")))
    stop.wait()
    fake.stop()


def _nightops_server(port_queue: Any, stop: Any, api_url: str, workers: int = 4) -> None:
    _quiet()
    sys.setswitchinterval(0.0005)  # as nightops serve does

    from nightops.slack_host import HttpServer
    from nightops_core.model import Collection, Money, Resource, ResourceState
    from nightops_core.permissions import Account, ChannelRule, Role
    from nightops_core.service import Service
    from nightops_core.settings import Settings
    from nightops_core.testing import FakeClock, FakeCloud, InMemoryStateStore, SequentialIds
    from nightops_slack import Clients, Messenger, SlackAdapter, StaticToken, make_wsgi_app

    cloud = FakeCloud("fake")
    collections = []
    for c in range(5):
        resources = tuple(
            Resource("fake", "vm", f"i-{c}-{r}", f"server-{r}", "eu-1", hourly_price=Money("0.1"))
            for r in range(5)
        )
        for resource in resources:
            cloud.add(resource, ResourceState.RUNNING)
        collections.append(Collection(f"env-{c}", f"Env {c}", "dev", resources))
    store = InMemoryStateStore()
    clock = FakeClock()
    messenger = Messenger(
        Clients(StaticToken("xoxb-test"), api_url=api_url, channel_interval=0), store, clock
    )
    settings = Settings(
        collections=collections,
        channel_rules=(ChannelRule("#dev-team", frozenset({"all"}), ("*",)),),
        accounts=tuple(Account(f"user{i}@company.com", Role.MEMBER, ("*",)) for i in range(50)),
    )
    service = Service(
        settings,
        providers={"fake": cloud},
        store=store,
        notifier=messenger.notifier,
        clock=clock,
        ids=SequentialIds(),
    )
    adapter = SlackAdapter(service, messenger, signing_secret=SECRET, max_workers=workers)
    server = HttpServer(make_wsgi_app(adapter)).start()
    port_queue.put(server.port)
    stop.wait()
    server.stop()
    adapter.close()


def _bolt_server(port_queue: Any, stop: Any, api_url: str) -> None:
    _quiet()
    from slack_bolt import Ack, App
    from slack_bolt.adapter.wsgi import SlackRequestHandler
    from slack_sdk import WebClient

    from nightops.slack_host import HttpServer

    app = App(
        client=WebClient(token="xoxb-test", base_url=api_url),
        signing_secret=SECRET,
        token_verification_enabled=False,
    )

    @app.command("/nightops")
    def ack_only(ack: Ack) -> None:
        ack()

    server = HttpServer(SlackRequestHandler(app)).start()
    port_queue.put(server.port)
    stop.wait()
    server.stop()


def _request(port: int, response_url: str, text: str, n: int, user: int) -> float:
    body = urlencode(
        {
            "team_id": "T1",
            "channel_id": "CDEV1",
            "channel_name": "dev-team",
            "user_id": f"U{user}",
            "user_name": f"user{user}",
            "command": "/nightops",
            "text": text,
            "response_url": response_url,
            "trigger_id": f"trigger-{time.monotonic_ns()}-{n}-{user}",
        }
    ).encode()
    timestamp = str(int(time.time()))
    signature = SignatureVerifier(SECRET).generate_signature(timestamp=timestamp, body=body)
    headers = {
        "Content-Type": "application/x-www-form-urlencoded",
        "X-Slack-Request-Timestamp": timestamp,
        "X-Slack-Signature": signature or "",
    }
    started = time.perf_counter()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("POST", "/slack/events", body, headers)
        response = conn.getresponse()
        response.read()
        if response.status != 200:
            raise RuntimeError(f"status {response.status}")
    finally:
        conn.close()
    return time.perf_counter() - started


def load(
    port: int, response_url: str, text: str, per_client: int, interval: float = 0.0
) -> list[float]:
    """``CLIENTS`` threads, each sending ``per_client`` requests: back to back (a closed
    loop that saturates the server), or one every ``interval`` seconds (paced)."""
    latencies: list[float] = []
    lock = threading.Lock()
    barrier = threading.Barrier(CLIENTS)

    def client(user: int) -> None:
        barrier.wait()
        mine = []
        start = time.monotonic() + interval * user / CLIENTS  # spread the clients out
        for n in range(per_client):
            if interval:
                time.sleep(max(0.0, start + n * interval - time.monotonic()))
            mine.append(_request(port, response_url, text, n, user))
        with lock:
            latencies.extend(mine)

    threads = [threading.Thread(target=client, args=(u,)) for u in range(CLIENTS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return latencies


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=20, help="per client (default 20)")
    parser.add_argument(
        "--interval",
        type=float,
        default=0.0,
        help="seconds between one client's requests (default 0: back to back, saturating)",
    )
    args = parser.parse_args(argv)
    ctx = multiprocessing.get_context("spawn")
    rows = []
    fake_queue: Any = ctx.Queue()
    fake_stop = ctx.Event()
    fake = ctx.Process(target=_fake_slack, args=(fake_queue, fake_stop), daemon=True)
    fake.start()
    api_url, response_url = fake_queue.get(timeout=60)
    for label, target, texts, extra in (
        ("bare Bolt (ack only)", _bolt_server, ("help",), ()),
        ("NightOps", _nightops_server, ("help", "status"), ()),
        ("NightOps, 2 answer workers", _nightops_server, ("status",), (2,)),
    ):
        ports: Any = ctx.Queue()
        stop = ctx.Event()
        process = ctx.Process(target=target, args=(ports, stop, api_url, *extra), daemon=True)
        process.start()
        try:
            port = ports.get(timeout=60)
            for text in texts:
                load(port, response_url, text, 2)  # warm up: imports, caches
                latencies = load(port, response_url, text, args.requests, args.interval)
                rows.append((label, text, latencies))
        finally:
            stop.set()
            process.join(10)
            if process.is_alive():
                process.terminate()
    fake_stop.set()
    fake.join(10)
    bolt_p99 = percentile(rows[0][2], 0.99)
    pace = f"one every {args.interval:g} s" if args.interval else "back to back"
    print(
        f"{CLIENTS} concurrent clients, {args.requests} requests each ({pace}), loopback, waitress"
    )
    print(f"{'server':<28} {'command':<8} {'n':>5} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8} "
          f"{'p99 / Bolt':>10}")  # fmt: skip
    for label, text, latencies in rows:
        p50 = statistics.median(latencies) * 1000
        p99 = percentile(latencies, 0.99) * 1000
        print(
            f"{label:<28} {text:<8} {len(latencies):>5} {p50:>8.1f} {p99:>8.1f} "
            f"{max(latencies) * 1000:>8.1f} {p99 / (bolt_p99 * 1000):>10.2f}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())

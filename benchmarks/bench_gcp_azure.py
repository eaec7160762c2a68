"""Starting 50 GCP instances and 50 Azure VMs: concurrent (max_in_flight=16) versus one by one.

    .venv/bin/python benchmarks/bench_gcp_azure.py            # the figures in the docs
    .venv/bin/python benchmarks/bench_gcp_azure.py --count 20 --latency 0.1

The real SDK clients talk to the local stand-ins of tests/providers (fake_gce, fake_arm),
which answer every call after ``--latency`` seconds (200 ms by default, a pessimistic cloud
round trip); operations finish immediately, so the figures measure NightOps's call pattern
(describe, act, await the operation, verify), not the cloud's boot time. One by one takes
about calls x latency x count; concurrently about that divided by min(16, count).
"""

from __future__ import annotations

import argparse
import logging
import os
import platform
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "providers"))

from azure.core.credentials import AccessToken
from fake_arm import FakeArm
from fake_gce import FakeGce
from google.auth.credentials import AnonymousCredentials

from nightops_core.model import Resource
from nightops_core.ports import ResultKind
from nightops_providers.azure import AzureProvider
from nightops_providers.gcp import GcpProvider

ZONE = "us-central1-a"


class _Token:
    def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
        return AccessToken("bench", int(time.time()) + 3600)


def gcp_run(count: int, latency: float, max_in_flight: int) -> float:
    fake = FakeGce(latency=latency, wait_cap=5)
    names = [f"vm-{n:03d}" for n in range(count)]
    for name in names:
        fake.add_instance("bench", ZONE, name, "TERMINATED")
    provider = GcpProvider(
        project="bench",
        credentials=AnonymousCredentials(),
        api_endpoint=fake.url,
        max_in_flight=max_in_flight,
        poll_seconds=0.01,
    )
    try:
        return _timed(
            lambda: provider.start([Resource("gcp", "gce", n, region=ZONE) for n in names])
        )
    finally:
        provider.close()
        fake.close()


def azure_run(count: int, latency: float, max_in_flight: int) -> float:
    fake = FakeArm(latency=latency)
    names = [f"vm-{n:03d}" for n in range(count)]
    for name in names:
        fake.add("sub", "rg", name, "deallocated")
    provider = AzureProvider(
        subscription_id="sub",
        credential=_Token(),
        base_url=fake.url,
        connection_verify=fake.ca_path,
        polling_interval=0,
        poll_seconds=0.01,
        max_in_flight=max_in_flight,
    )
    try:
        return _timed(lambda: provider.start([Resource("azure", "vm", f"rg/{n}") for n in names]))
    finally:
        provider.close()
        fake.close()


def _timed(start: Callable[[], Any]) -> float:
    began = time.perf_counter()
    results = start()
    elapsed = time.perf_counter() - began
    assert all(r.kind is ResultKind.DONE for r in results), results
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=50)
    parser.add_argument("--latency", type=float, default=0.2)
    parser.add_argument("--max-in-flight", type=int, default=16)
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)

    print(
        f"# {args.count} resources per cloud, {args.latency * 1000:.0f} ms per API call; "
        f"Python {platform.python_version()}, {os.cpu_count()} CPUs"
    )
    print(f"| cloud | one by one (s) | max_in_flight={args.max_in_flight} (s) | speed-up |")
    print("|---|---:|---:|---:|")
    for cloud, run in (("GCP (gce)", gcp_run), ("Azure (vm)", azure_run)):
        serial = run(args.count, args.latency, 1)
        fanned = run(args.count, args.latency, args.max_in_flight)
        print(f"| {cloud} | {serial:.1f} | {fanned:.2f} | {serial / fanned:.1f}x |")


if __name__ == "__main__":
    main()

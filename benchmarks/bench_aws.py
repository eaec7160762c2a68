"""API calls per operation of the AWS provider, counted at the HTTP layer.

    .venv/bin/python benchmarks/bench_aws.py

Starts moto in server mode on 127.0.0.1 (fake credentials; nothing reaches AWS), creates
1, 50 and 1,000 EC2 instances in one region and the same spread over three regions, and
runs stop, start and describe over each set. Every HTTP request a provider client sends is
counted (botocore's ``before-send`` event), by API operation. moto's transitions are
instant, so each start/stop needs one verification round; on AWS, add one round of
describes per ``poll_seconds`` (5 s) until the instances settle.

The floor the API permits: StartInstances/StopInstances take any number of ids (we send up
to 1,000 per call), so 1 call per region; DescribeInstances takes at most 200 filter values
per call (FilterLimitExceeded), so ceil(n / 200) calls per region per describe round, and a
start or stop makes two rounds (the state before, and the verification after).
"""

from __future__ import annotations

import collections
import logging
import os
import threading
import time
from collections.abc import Callable
from typing import Any

import boto3
from moto.server import ThreadedMotoServer

from nightops_core.model import Resource
from nightops_providers.aws import AwsProvider

SIZES = (1, 50, 1000)
ONE_REGION = ("us-east-1",)
THREE_REGIONS = ("us-east-1", "eu-west-1", "eu-central-1")
AMI = "ami-12c6146b"


class Counter:
    """Counts requests by operation (thread-safe: botocore sends from worker threads)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.counts: collections.Counter[str] = collections.Counter()

    def hook(self, service: str, client: Any) -> None:
        def count(event_name: str, **_: Any) -> None:
            with self._lock:
                self.counts[event_name.rsplit(".", 1)[-1]] += 1

        client.meta.events.register("before-send", count)

    def take(self) -> dict[str, int]:
        with self._lock:
            taken = dict(self.counts)
            self.counts.clear()
        return taken


def create(session: Any, regions: tuple[str, ...], n: int) -> list[Resource]:
    resources = []
    share, extra = divmod(n, len(regions))
    for index, region in enumerate(regions):
        count = share + (1 if index < extra else 0)
        if count == 0:
            continue
        ec2 = session.client("ec2", region_name=region)
        answer = ec2.run_instances(ImageId=AMI, MinCount=count, MaxCount=count)
        resources += [
            Resource("aws", "ec2", i["InstanceId"], region=region) for i in answer["Instances"]
        ]
    return resources


def measure(
    act: Callable[[list[Resource]], object], resources: list[Resource], counter: Counter
) -> tuple[dict[str, int], float]:
    counter.take()
    began = time.perf_counter()
    act(resources)
    elapsed = time.perf_counter() - began
    return counter.take(), elapsed


def main() -> None:
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    os.environ.update(
        AWS_ACCESS_KEY_ID="testing",
        AWS_SECRET_ACCESS_KEY="testing",
        AWS_DEFAULT_REGION="us-east-1",
        AWS_ENDPOINT_URL=f"http://{host}:{port}",
        AWS_CONFIG_FILE="/nonexistent",
        AWS_SHARED_CREDENTIALS_FILE="/nonexistent",
    )
    os.environ.pop("AWS_PROFILE", None)
    session = boto3.Session(region_name="us-east-1")
    rows = []
    try:
        for regions in (ONE_REGION, THREE_REGIONS):
            for n in SIZES:
                counter = Counter()
                provider = AwsProvider(
                    session=session, region="us-east-1", poll_seconds=0.01, on_client=counter.hook
                )
                resources = create(session, regions, n)
                for op, act in (
                    ("stop", provider.stop),
                    ("start", provider.start),
                    ("describe", provider.describe),
                ):
                    counts, elapsed = measure(act, resources, counter)
                    rows.append((op, n, len(regions), counts, elapsed))
    finally:
        server.stop()

    print(f"{'operation':<9} {'instances':>9} {'regions':>7} {'calls':>5}  {'by API':<48} {'s':>6}")
    for op, n, nregions, counts, elapsed in rows:
        by_api = ", ".join(f"{name} {count}" for name, count in sorted(counts.items()))
        print(
            f"{op:<9} {n:>9} {nregions:>7} {sum(counts.values()):>5}  {by_api:<48} {elapsed:>6.2f}"
        )


if __name__ == "__main__":
    main()

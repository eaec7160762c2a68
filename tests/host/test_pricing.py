"""Where a resource's price comes from: its own setting, the config's per-type table, the
shipped catalog — and "unknown" when none knows it."""

from __future__ import annotations

from decimal import Decimal

import pytest

from nightops.app import build
from nightops.config import parse_config
from nightops_core.errors import ConfigError
from nightops_core.model import Money, Resource, Selector
from nightops_core.testing import FakeCloud, InMemoryStateStore, RecordingNotifier

CONFIG = """
[prices.aws.ec2]
"t3.large" = "0.07"

[[collections]]
id = "web"
resources = [
  { provider = "aws", kind = "ec2", region = "eu-central-1", id = "i-1", size = "t3.medium" },
  { provider = "aws", kind = "ec2", region = "eu-central-1", id = "i-2", size = "t3.large" },
  { provider = "aws", kind = "ec2", region = "eu-central-1", id = "i-3", size = "t3.medium",\
hourly_price = "0.01" },
  { provider = "aws", kind = "ec2", region = "eu-central-1", id = "i-4", size = "x9.weird" },
  { provider = "aws", kind = "ec2", region = "ap-south-9", id = "i-5", size = "t3.medium" },
]
select = [{ provider = "aws", regions = ["us-east-1"], tags = { team = "web" } }]
"""


def prices_of(resources: list[Resource]) -> dict[str, Money | None]:
    return {r.id: r.hourly_price for r in resources}


def test_prices_come_from_resource_then_config_table_then_catalog() -> None:
    config = parse_config(CONFIG, env={})
    cloud = FakeCloud("aws")
    discovered = [
        Resource("aws", "ec2", "d-1", region="us-east-1", size="t3.medium", tags={"team": "web"}),
        Resource("aws", "ec2", "d-2", region="us-east-1", size="t3.large", tags={"team": "web"}),
    ]
    for resource in discovered:
        cloud.add(resource)
    app = build(
        config, notifier=RecordingNotifier(), store=InMemoryStateStore(), providers={"aws": cloud}
    )
    (web,) = app.service.settings.collections
    prices = prices_of(list(web.resources))
    assert prices["i-1"] == Money(Decimal("0.048"))  # catalog, eu-central-1
    assert prices["i-2"] == Money(Decimal("0.07"))  # the config's per-type table
    assert prices["i-3"] == Money(Decimal("0.01"))  # the resource's own price wins
    assert prices["i-4"] is None  # nobody knows: unknown, not zero
    assert prices["i-5"] is not None  # an unlisted region falls back to the default table
    found = prices_of(
        app.providers["aws"].discover(Selector("aws", ("us-east-1",), {"team": "web"}))
    )
    assert found == {"d-1": Money(Decimal("0.0416")), "d-2": Money(Decimal("0.07"))}


def test_a_bad_price_in_the_table_is_reported_with_its_path() -> None:
    with pytest.raises(
        ConfigError, match=r'prices\.aws\.ec2\."t3\.large": \'cheap\' is not a price'
    ):
        parse_config('[prices.aws.ec2]\n"t3.large" = "cheap"\n', env={})

"""Block Kit rendering: limits, truncation, escaping; quoting for the grammar."""

from __future__ import annotations

import json

import pytest

from nightops_core import grammar
from nightops_core.costs import CostEstimate
from nightops_core.model import CollectionStatus, Money, ResourceState
from nightops_core.responses import (
    Button,
    CollectionCard,
    CollectionDetail,
    Notice,
    Problem,
    ResourceRow,
    StatusOverview,
)
from nightops_slack.render import MAX_BLOCKS, iter_texts, render
from nightops_slack.text import escape, quote_value, truncate


def card(i: int) -> CollectionCard:
    return CollectionCard(
        f"c-{i}",
        f"Collection {i}",
        "dev",
        CollectionStatus.RUNNING,
        3,
        CostEstimate(Money("10")),
        (Button("Stop", "nightops.stop", f"c-{i}", "danger"),),
    )


def test_overview_beyond_the_block_limit_is_cut_with_a_note_and_keeps_more() -> None:
    more = Button("More (5 left)", "nightops.more", "1")
    rendered = render(StatusOverview(tuple(card(i) for i in range(40)), more))
    assert len(rendered.blocks) <= MAX_BLOCKS
    assert rendered.blocks[-1]["elements"][0]["action_id"] == "nightops.more"
    assert "more collections not shown" in json.dumps(rendered.blocks)


def test_detail_with_many_resources_fits() -> None:
    rows = tuple(
        ResourceRow(f"server-{i}-" + "x" * 80, ResourceState.RUNNING, "ec2", "t3.large",
                    Money("30.37"))
        for i in range(400)
    )  # fmt: skip
    rendered = render(CollectionDetail(card(1), rows, "Mon-Fri"))
    assert len(rendered.blocks) <= MAX_BLOCKS
    assert sum(len(t) for t in iter_texts(rendered.blocks)) < 13000
    assert "more resources not shown" in json.dumps(rendered.blocks)
    assert all(len(t) <= 3000 for t in iter_texts(rendered.blocks))


def test_long_text_is_truncated_and_escaped() -> None:
    rendered = render(Notice("<!here> " + "a" * 10000))
    texts = list(iter_texts(rendered.blocks))
    assert all(len(t) <= 3000 for t in texts)
    assert "<!here>" not in json.dumps(rendered.payload())


def test_problem_shows_usage_in_a_code_block() -> None:
    rendered = render(Problem("Unknown command 'strat'.", "/nightops start <collection>"))
    assert "```/nightops start &lt;collection&gt;```" in json.dumps(rendered.blocks)


def test_escape_and_truncate() -> None:
    assert escape("<@U1> & <!channel>") == "&lt;@U1&gt; &amp; &lt;!channel&gt;"
    assert truncate("a &amp; b", 5) == "a …"
    assert truncate("short", 10) == "short"


@pytest.mark.parametrize(
    "reason",
    ["plain", 'with "double" quotes', "it's", "both \" and ' here", "-r --force", "a\nb"],
)
def test_quoted_reason_reads_back(reason: str) -> None:
    command = grammar.parse(f"start staging-api -r {quote_value(reason)}")
    assert isinstance(command, grammar.Start)
    expected = " ".join(reason.split()).replace('"', "″") if "'" in reason and '"' in reason \
        else " ".join(reason.split())  # fmt: skip
    assert command.reason == expected

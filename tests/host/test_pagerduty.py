"""nightops.pagerduty through the real ``pagerduty`` package, against a local stand-in."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest
from fake_pagerduty import FakePagerDuty

from nightops.pagerduty import PagerDuty, PagerDutyError, PagerDutySettings

ROUTING_KEY = "R0UT1NGKEY0000000000000000000001"
ALICE = {"id": "PU1", "type": "user", "name": "Alice Smith", "email": "alice@company.com"}
BOB = {"id": "PU2", "type": "user", "name": "Bob Jones", "email": "bob@company.com"}


@pytest.fixture(scope="module")
def fake() -> Iterator[FakePagerDuty]:
    server = FakePagerDuty()
    yield server
    server.close()


@pytest.fixture(autouse=True)
def _quiet(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.CRITICAL, logger="pagerduty")


def client(fake: FakePagerDuty, **settings: str | None) -> PagerDuty:
    values: dict[str, str | None] = {
        "routing_key": ROUTING_KEY,
        "api_token": "u+token",
        "events_url": fake.url,
        "api_url": fake.url,
    }
    values.update(settings)
    return PagerDuty(PagerDutySettings(**values), verify=fake.ssl_context(), retry_pause=0.001)  # type: ignore[arg-type]


def test_trigger_and_resolve_speak_events_api_v2(fake: FakePagerDuty) -> None:
    pd = client(fake, severity="warning")
    pd.trigger(
        "nightops:staging:running-while-off",
        "Staging needs attention: db is running",
        "nightops/staging",
        details={"collection": "staging"},
    )
    pd.resolve("nightops:staging:running-while-off")
    trigger, resolve = fake.events[-2:]
    assert trigger["routing_key"] == ROUTING_KEY
    assert trigger["event_action"] == "trigger"
    assert trigger["dedup_key"] == "nightops:staging:running-while-off"
    assert trigger["payload"] == {
        "summary": "Staging needs attention: db is running",
        "source": "nightops/staging",
        "severity": "warning",
        "custom_details": {"collection": "staging"},
    }
    assert (resolve["event_action"], resolve["dedup_key"]) == (
        "resolve",
        "nightops:staging:running-while-off",
    )
    assert fake.alerts["nightops:staging:running-while-off"] == "resolved"
    pd.close()


def test_per_collection_routing_key_and_severity(fake: FakePagerDuty) -> None:
    pd = client(fake)
    pd.trigger("k1", "s", "src", routing_key="OTHERKEY", severity="critical")
    assert fake.events[-1]["routing_key"] == "OTHERKEY"
    assert fake.events[-1]["payload"]["severity"] == "critical"
    pd.close()


def test_long_summaries_are_cut_and_long_keys_refused(fake: FakePagerDuty) -> None:
    pd = client(fake)
    pd.trigger("k2", "x" * 5000, "src")
    assert len(fake.events[-1]["payload"]["summary"]) == 1024
    with pytest.raises(PagerDutyError, match="255"):
        pd.trigger("k" * 256, "s", "src")
    pd.close()


def test_refusals_and_outages_become_pagerduty_errors(fake: FakePagerDuty) -> None:
    pd = client(fake)
    fake.fail_next(400)
    with pytest.raises(PagerDutyError, match=r"trigger failed \(HTTP 400\)"):
        pd.trigger("k3", "s", "src")
    fake.fail_next(503, times=7)  # the package retries a 503 six times, then gives up
    with pytest.raises(PagerDutyError, match="HTTP 503"):
        pd.resolve("k3")
    assert fake.pending_failures == 0
    pd.close()


def test_a_missing_routing_key_says_what_to_set(fake: FakePagerDuty) -> None:
    pd = client(fake, routing_key=None)
    with pytest.raises(PagerDutyError, match="routing_key"):
        pd.trigger("k4", "s", "src")
    pd.close()


def test_oncall_of_a_schedule_is_the_lowest_level(fake: FakePagerDuty) -> None:
    fake.put_oncall(BOB, schedule="PSCHED1", escalation_policy="PEP1", level=2)
    fake.put_oncall(ALICE, schedule="PSCHED1", escalation_policy="PEP1", level=1)
    pd = client(fake)
    person = pd.oncall(schedule="PSCHED1")
    assert person is not None
    assert (person.name, person.email) == ("Alice Smith", "alice@company.com")
    method, path, query, auth = fake.requests[-1]
    assert (method, path) == ("GET", "/oncalls")
    assert query["schedule_ids[]"] == ["PSCHED1"]
    assert query["include[]"] == ["users"]
    assert auth == "Token token=u+token"
    assert pd.oncall(escalation_policy="PEP1") == person
    assert pd.oncall(schedule="PNOBODY") is None
    assert pd.oncall() is None
    pd.close()


def test_oncall_answers_are_reused_for_a_while(fake: FakePagerDuty) -> None:
    fake.put_oncall(ALICE, schedule="PCACHE")
    now = [0.0]
    pd = PagerDuty(
        PagerDutySettings(api_token="t", api_url=fake.url),
        verify=fake.ssl_context(),
        oncall_ttl=60,
        monotonic=lambda: now[0],
    )
    before = len(fake.requests)
    pd.oncall(schedule="PCACHE")
    pd.oncall(schedule="PCACHE")
    assert len(fake.requests) == before + 1
    now[0] = 61
    pd.oncall(schedule="PCACHE")
    assert len(fake.requests) == before + 2
    pd.close()


def test_oncall_needs_an_api_token(fake: FakePagerDuty) -> None:
    pd = client(fake, api_token=None)
    with pytest.raises(PagerDutyError, match="api_token"):
        pd.oncall(schedule="PSCHED1")
    pd.close()

"""Account linking (signed single-use link + trusted proxy header) and the OAuth v2
install flow, through the real HTTP app."""

from __future__ import annotations

import re
from datetime import timedelta
from urllib.parse import parse_qs, urlencode, urlsplit

from conftest import World, path_and_query

HEADER = {"X-Auth-Request-Email": "Eve@Company.com"}


def link_url(world: World, user: str = "UEVE") -> str:
    ack = world.answer("link", user=user)
    match = re.search(r"http://nightops\.example/slack/link\?t=[^\s\"&]+", ack["text"])
    assert match, ack
    return match.group(0)


def follow(world: World, url: str, headers: dict[str, str] | None = None) -> tuple[int, str]:
    status, _, body = world.request("GET", path_and_query(url), headers=headers)
    return status, body.decode()


def submit(world: World, url: str, headers: dict[str, str] | None = None) -> tuple[int, str]:
    token = parse_qs(urlsplit(url).query)["t"][0]
    body = urlencode({"t": token}).encode()
    status, _, page = world.request(
        "POST",
        "/slack/link",
        body,
        {"Content-Type": "application/x-www-form-urlencoded", **(headers or {})},
    )
    return status, page.decode()


def test_link_flow_links_the_proxy_identity(world: World) -> None:
    url = link_url(world)
    status, page = follow(world, url, HEADER)
    assert status == 200
    assert "signed in as eve@company.com" in page
    status, page = submit(world, url, HEADER)
    assert status == 200
    assert "now linked to eve@company.com" in page
    assert world.store.get_link("T1", "UEVE") == "eve@company.com"
    ack = world.answer("whoami", user="UEVE")
    assert "eve@company.com" in ack["text"]  # an SSO-domain viewer now


def test_reused_link_is_refused(world: World) -> None:
    url = link_url(world)
    assert submit(world, url, HEADER)[0] == 200
    status, page = submit(world, url, HEADER)
    assert status == 410
    assert "already used" in page


def test_tampered_link_is_refused(world: World) -> None:
    url = link_url(world)
    token = parse_qs(urlsplit(url).query)["t"][0]
    body, _, sig = token.partition(".")
    forged = url.replace(token, body[:-2] + ("AA" if body[-2:] != "AA" else "BB") + "." + sig)
    status, page = follow(world, forged, HEADER)
    assert status == 400
    assert "not valid" in page
    status, page = submit(world, forged, HEADER)
    assert status == 400
    assert world.store.get_link("T1", "UEVE") is None


def test_expired_link_is_refused(world: World) -> None:
    url = link_url(world)
    world.clock.advance(timedelta(minutes=11))
    status, page = submit(world, url, HEADER)
    assert status == 410
    assert "expired" in page
    assert world.store.get_link("T1", "UEVE") is None


def test_link_page_needs_the_proxy_header(world: World) -> None:
    url = link_url(world)
    status, page = submit(world, url)
    assert status == 403
    assert "X-Auth-Request-Email" in page
    assert world.store.get_link("T1", "UEVE") is None


def test_oauth_install_then_commands_from_the_new_workspace_use_its_token(world: World) -> None:
    status, headers, _ = world.request("GET", "/slack/install")
    assert status == 302
    location = headers["Location"]
    query = parse_qs(urlsplit(location).query)
    assert "users:read.email" in query["scope"][0]
    state = query["state"][0]
    cookie = headers["Set-Cookie"].split(";")[0]

    # A state without its browser cookie, or an unknown one, is refused.
    status, _, _ = world.request("GET", f"/slack/oauth_redirect?code=good-code&state={state}")
    assert status == 400
    status, _, page = world.request(
        "GET", f"/slack/oauth_redirect?code=good-code&state={state}", headers={"Cookie": cookie}
    )
    assert status == 200, page
    assert b"Second Team" in page
    bot = world.installations.find_bot(enterprise_id=None, team_id="T2")
    assert bot is not None
    assert bot.bot_token == "xoxb-second"
    # The state is single use.
    status, _, _ = world.request(
        "GET", f"/slack/oauth_redirect?code=good-code&state={state}", headers={"Cookie": cookie}
    )
    assert status == 400

    world.fake.add_user("UT2", "tina", "tina@company.com", team="T2")
    world.fake.add_channel("CT2", "dev-team")
    world.command("whoami", user="UT2", channel=("CT2", "dev-team"), team="T2")
    info = [c for c in world.fake.called("users.info") if c.args["user"] == "UT2"]
    assert info
    assert info[0].token == "xoxb-second"


def test_oauth_bad_code_says_so(world: World) -> None:
    status, headers, _ = world.request("GET", "/slack/install")
    state = parse_qs(urlsplit(headers["Location"]).query)["state"][0]
    cookie = headers["Set-Cookie"].split(";")[0]
    status, _, page = world.request(
        "GET", f"/slack/oauth_redirect?code=bad&state={state}", headers={"Cookie": cookie}
    )
    assert status == 400
    assert b"refused" in page

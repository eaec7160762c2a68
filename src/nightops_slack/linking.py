"""``/nightops link``: a signed, single-use, 10-minute link to the host's link page.

The token is ``base64url(json{w, u, x, n}) . base64url(HMAC-SHA256)`` with a key derived
from the signing secret; its nonce ``n`` is stored (``slack.link`` namespace, expiring with
the token) and taken on use, so a link works once. The page trusts one header for the
person's identity — set by an authenticating proxy in front of it (oauth2-proxy's
``X-Auth-Request-Email`` by default); serve the page only behind such a proxy, which must
overwrite the header on every request.

GET shows what will be linked and a button (link previewers only GET, so they cannot use
the link up); POST links: ``store.set_link(workspace, user, email)``. Tampered, expired
and reused links are refused with a page that says which and what to do.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import html
import json
import secrets
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote

from nightops_core.ports import Clock, StateStore
from nightops_core.service import Actor
from nightops_slack.http import HttpRequest, HttpResponse, page

__all__ = ["DEFAULT_EMAIL_HEADER", "LINK_PATH", "Linker"]

DEFAULT_EMAIL_HEADER = "X-Auth-Request-Email"
LINK_PATH = "/slack/link"
NAMESPACE = "slack.link"
TTL = timedelta(minutes=10)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class LinkRefused(Exception):
    def __init__(self, title: str, text: str, status: int = 400) -> None:
        super().__init__(text)
        self.title = title
        self.text = text
        self.status = status


class Linker:
    """Issues link URLs (the service's ``link_url``) and serves the link page."""

    def __init__(
        self,
        store: StateStore,
        clock: Clock,
        *,
        signing_secret: str,
        base_url: str,
        email_header: str = DEFAULT_EMAIL_HEADER,
        ttl: timedelta = TTL,
    ) -> None:
        self.store = store
        self.clock = clock
        self._key = hmac.new(
            signing_secret.encode("utf-8"), b"nightops link v1", hashlib.sha256
        ).digest()
        self.base_url = base_url.rstrip("/")
        self.email_header = email_header
        self.ttl = ttl

    # --- issuing ---------------------------------------------------------------------------

    def link_url(self, actor: Actor) -> str:
        """A fresh single-use URL for ``actor`` (pass as ``Service(link_url=…)``)."""
        expires = self.clock.now() + self.ttl
        nonce = secrets.token_urlsafe(16)
        claims = {"w": actor.workspace, "u": actor.user_id, "x": int(expires.timestamp())}
        claims["n"] = nonce
        body = _b64(json.dumps(claims, separators=(",", ":")).encode("utf-8"))
        token = f"{body}.{self._sign(body)}"
        self.store.put_value(NAMESPACE, nonce, f"{actor.workspace} {actor.user_id}", expires)
        return f"{self.base_url}{LINK_PATH}?t={quote(token)}"

    def _sign(self, body: str) -> str:
        return _b64(hmac.new(self._key, body.encode("ascii"), hashlib.sha256).digest())

    # --- checking --------------------------------------------------------------------------

    def _claims(self, token: str) -> dict[str, Any]:
        body, _, signature = token.partition(".")
        if not body or not signature or not hmac.compare_digest(self._sign(body), signature):
            raise LinkRefused(
                "Invalid link",
                "This link is not valid (it was changed or cut short). Run /nightops link "
                "in Slack for a new one.",
            )
        try:
            claims: dict[str, Any] = json.loads(_unb64(body))
            expires = datetime.fromtimestamp(int(claims["x"]), UTC)
        except (ValueError, KeyError, TypeError):
            raise LinkRefused("Invalid link", "This link is not valid.") from None
        if expires <= self.clock.now():
            raise LinkRefused(
                "Link expired",
                "This link has expired (links last 10 minutes). Run /nightops link in Slack "
                "for a new one.",
                410,
            )
        return claims

    def _email(self, request: HttpRequest) -> str:
        email = (request.header(self.email_header) or "").strip().lower()
        if "@" not in email:
            raise LinkRefused(
                "Not signed in",
                "No signed-in identity reached NightOps: this page must be served behind the "
                f"single sign-on proxy, which sets the {self.email_header} header.",
                403,
            )
        return email

    # --- the page --------------------------------------------------------------------------

    def handle(self, request: HttpRequest) -> HttpResponse:
        try:
            if request.method == "GET":
                return self._show(request)
            if request.method == "POST":
                return self._link(request)
            return HttpResponse.text("GET or POST only", 405)
        except LinkRefused as refused:
            return HttpResponse.html(page(refused.title, (refused.text,)), refused.status)

    def _show(self, request: HttpRequest) -> HttpResponse:
        token = request.query.get("t", "")
        self._claims(token)
        email = self._email(request)
        form = (
            f"<form method='post' action='{LINK_PATH}'>"
            f"<input type='hidden' name='t' value='{html.escape(token, quote=True)}'>"
            "<button type='submit'>Link my Slack account</button></form>"
        )
        return HttpResponse.html(
            page(
                "Link your Slack account to NightOps",
                (f"You are signed in as {email}.", "NightOps will act for you as this person."),
                form,
            )
        )

    def _link(self, request: HttpRequest) -> HttpResponse:
        token = request.form().get("t", "")
        claims = self._claims(token)
        email = self._email(request)
        if self.store.take_value(NAMESPACE, str(claims["n"]), self.clock.now()) is None:
            raise LinkRefused(
                "Link already used",
                "This link was already used; each link works once. Run /nightops link in "
                "Slack for a new one.",
                410,
            )
        self.store.set_link(str(claims["w"]), str(claims["u"]), email)
        return HttpResponse.html(
            page(
                "Linked",
                (
                    f"Your Slack account is now linked to {email}.",
                    "Back in Slack, /nightops whoami shows your role and collections.",
                ),
            )
        )

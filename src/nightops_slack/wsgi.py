"""The HTTP app as a WSGI application: ``/slack/events`` (commands and interactivity),
the link page, the OAuth endpoints and ``/healthz``. Serve it with a production WSGI server
(``nightops serve`` uses waitress). A ~50-line translation: environ -> HttpRequest ->
handler -> HttpResponse -> start_response."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING
from urllib.parse import parse_qsl

from nightops_slack.adapter import SlackAdapter
from nightops_slack.http import HttpRequest, HttpResponse
from nightops_slack.linking import LINK_PATH, Linker
from nightops_slack.oauth import INSTALL_PATH, REDIRECT_PATH, OAuthFlow

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

__all__ = ["EVENTS_PATH", "MAX_BODY", "make_wsgi_app", "to_request"]

EVENTS_PATH = "/slack/events"
#: Slack's payloads are small; anything larger is refused before it is read.
MAX_BODY = 1024 * 1024

_REASONS = {200: "OK", 302: "Found", 400: "Bad Request", 401: "Unauthorized",
            403: "Forbidden", 404: "Not Found", 405: "Method Not Allowed", 410: "Gone",
            413: "Payload Too Large", 500: "Internal Server Error"}  # fmt: skip


def to_request(environ: WSGIEnvironment) -> HttpRequest | None:
    """The request, or None when its body is too large."""
    length = int(environ.get("CONTENT_LENGTH") or 0)
    if length > MAX_BODY:
        return None
    body = environ["wsgi.input"].read(length) if length > 0 else b""
    headers = {
        key[5:].replace("_", "-"): value
        for key, value in environ.items()
        if key.startswith("HTTP_")
    }
    if environ.get("CONTENT_TYPE"):
        headers["content-type"] = environ["CONTENT_TYPE"]
    return HttpRequest(
        method=environ.get("REQUEST_METHOD", "GET"),
        path=environ.get("PATH_INFO", "/"),
        headers=headers,
        body=body,
        query=dict(parse_qsl(environ.get("QUERY_STRING", ""), keep_blank_values=True)),
    )


def make_wsgi_app(
    adapter: SlackAdapter | None,
    *,
    linker: Linker | None = None,
    oauth: OAuthFlow | None = None,
) -> WSGIApplication:
    """The WSGI app; routes whose part is None answer 404."""
    routes: dict[str, Callable[[HttpRequest], HttpResponse]] = {
        "/healthz": lambda _request: HttpResponse.text("ok"),
    }
    if adapter is not None:
        routes[EVENTS_PATH] = adapter.dispatch
    if linker is not None:
        routes[LINK_PATH] = linker.handle
    if oauth is not None:
        routes[INSTALL_PATH] = oauth.install
        routes[REDIRECT_PATH] = oauth.redirect

    def app(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        request = to_request(environ)
        if request is None:
            response = HttpResponse.text("payload too large", 413)
        else:
            handler = routes.get(request.path.rstrip("/") or "/")
            response = handler(request) if handler else HttpResponse.text("not found", 404)
        status = f"{response.status} {_REASONS.get(response.status, 'Status')}"
        headers = [*response.headers, ("Content-Length", str(len(response.body)))]
        start_response(status, headers)
        return [response.body]

    return app

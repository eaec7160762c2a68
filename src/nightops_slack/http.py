"""Framework-free HTTP request and response types (the one shape every transport uses).

The WSGI app, the Bolt embedding and the tests all build an :class:`HttpRequest` and read
an :class:`HttpResponse`; nothing in the adapter knows which server runs it.
"""

from __future__ import annotations

import html
import json
from collections.abc import Mapping
from typing import Any
from urllib.parse import parse_qsl

import attrs

__all__ = ["HttpRequest", "HttpResponse", "page"]


def _lower_keys(headers: Mapping[str, str]) -> Mapping[str, str]:
    return {k.lower(): v for k, v in headers.items()}


@attrs.frozen
class HttpRequest:
    """One request: header names are compared case-insensitively, ``body`` is raw bytes
    (signatures are computed over it before any parsing)."""

    method: str
    path: str
    headers: Mapping[str, str] = attrs.field(factory=dict, converter=_lower_keys)
    body: bytes = b""
    query: Mapping[str, str] = attrs.field(factory=dict)

    def header(self, name: str) -> str | None:
        return self.headers.get(name.lower())

    def form(self) -> dict[str, str]:
        """The body as ``application/x-www-form-urlencoded`` fields (last value wins)."""
        return dict(parse_qsl(self.body.decode("utf-8", "replace"), keep_blank_values=True))

    def cookie(self, name: str) -> str | None:
        for part in (self.header("cookie") or "").split(";"):
            key, _, value = part.strip().partition("=")
            if key == name:
                return value
        return None


@attrs.frozen
class HttpResponse:
    status: int = 200
    body: bytes = b""
    headers: tuple[tuple[str, str], ...] = ()

    @classmethod
    def empty(cls, status: int = 200) -> HttpResponse:
        return cls(status)

    @classmethod
    def json(cls, data: Mapping[str, Any], status: int = 200) -> HttpResponse:
        body = json.dumps(data, ensure_ascii=False).encode("utf-8")
        return cls(status, body, (("Content-Type", "application/json; charset=utf-8"),))

    @classmethod
    def text(cls, text: str, status: int = 200) -> HttpResponse:
        return cls(status, text.encode("utf-8"), (("Content-Type", "text/plain; charset=utf-8"),))

    @classmethod
    def html(
        cls, document: str, status: int = 200, headers: tuple[tuple[str, str], ...] = ()
    ) -> HttpResponse:
        return cls(
            status,
            document.encode("utf-8"),
            (
                ("Content-Type", "text/html; charset=utf-8"),
                ("Cache-Control", "no-store"),
                ("X-Frame-Options", "DENY"),
                *headers,
            ),
        )

    @classmethod
    def redirect(cls, url: str, headers: tuple[tuple[str, str], ...] = ()) -> HttpResponse:
        return cls(302, b"", (("Location", url), ("Cache-Control", "no-store"), *headers))


def page(title: str, paragraphs: tuple[str, ...], form: str = "") -> str:
    """A minimal HTML page; every text is escaped here (``form`` is trusted markup)."""
    body = "".join(f"<p>{html.escape(p)}</p>" for p in paragraphs)
    return (
        "<!doctype html><html><head><meta charset='utf-8'>"
        f"<title>{html.escape(title)}</title>"
        "<style>body{font-family:sans-serif;max-width:36em;margin:3em auto}</style>"
        f"</head><body><h1>{html.escape(title)}</h1>{body}{form}</body></html>"
    )

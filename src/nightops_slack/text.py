"""Text helpers: mrkdwn escaping, truncation, quoting a value for the command grammar."""

from __future__ import annotations

__all__ = ["escape", "quote_value", "truncate"]

_DOUBLE = '"“”„‟'  # the grammar's double-quote family (any closes any)
_SINGLE = "'‘’‚‛"  # and its single-quote family
_ELLIPSIS = "…"


def escape(text: str) -> str:
    """Escape ``&``, ``<`` and ``>`` for Slack mrkdwn, so user or cloud text can never
    form a link or a mention (``<!channel>``, ``<@U123>``); see FACTS.md (Slack)."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def truncate(text: str, limit: int) -> str:
    """``text`` cut to at most ``limit`` characters, ending in ``…`` when cut. Never ends
    inside an escape sequence such as ``&amp;``."""
    if len(text) <= limit:
        return text
    cut = text[: max(0, limit - 1)]
    amp = cut.rfind("&")
    if amp != -1 and ";" not in cut[amp:]:
        cut = cut[:amp]
    return cut + _ELLIPSIS


def quote_value(value: str) -> str:
    """Quote free text so the command grammar reads it back as one value.

    A quoted word closes at a quote of its family that ends a word, so we pick a family
    that does not occur in the text; if both do, the text's double quotes become ″.
    Newlines become spaces.
    """
    value = " ".join(value.split())
    if not any(c in _DOUBLE for c in value):
        return f'"{value}"'
    if not any(c in _SINGLE for c in value):
        return f"'{value}'"
    return '"' + "".join("″" if c in _DOUBLE else c for c in value) + '"'

"""JSON encoding of stored values, with our own cattrs converter (no global state)."""

from __future__ import annotations

import json
from datetime import datetime
from decimal import Decimal
from typing import Any, TypeVar

import cattrs
from cattrs.preconf.json import make_converter

__all__ = ["dumps", "loads"]

T = TypeVar("T")


def _make() -> cattrs.Converter:
    converter = make_converter()
    converter.register_unstructure_hook(Decimal, str)
    converter.register_structure_hook(Decimal, lambda v, _: Decimal(v))
    converter.register_unstructure_hook(datetime, lambda d: d.isoformat())
    converter.register_structure_hook(datetime, lambda v, _: datetime.fromisoformat(v))
    return converter


_CONVERTER = _make()


def dumps(value: Any) -> str:
    """Encode an attrs value as compact JSON."""
    return json.dumps(_CONVERTER.unstructure(value), separators=(",", ":"), ensure_ascii=False)


def loads(text: str, cls: type[T]) -> T:
    """Decode JSON written by :func:`dumps` back into ``cls``."""
    return _CONVERTER.structure(json.loads(text), cls)

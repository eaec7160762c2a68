"""State stores: SQLite (default, one process) behind the core's StateStore protocol."""

from __future__ import annotations

from nightops.state.sqlite import SQLiteStateStore
from nightops_core.errors import StateError
from nightops_core.ports import StateStore

__all__ = ["SQLiteStateStore", "open_store"]


def open_store(url: str) -> StateStore:
    """Open the store a state URL names: ``sqlite:///path`` or ``sqlite:///:memory:``."""
    if url.startswith("sqlite:///"):
        return SQLiteStateStore(url.removeprefix("sqlite:///"))
    if url.startswith(("postgresql://", "postgres://")):
        raise StateError(
            "PostgreSQL state stores are not available in this version yet; "
            'use state = "sqlite:///path/to/state.db" for now.'
        )
    raise StateError(f"'{url}' is not a state URL: use sqlite:///path/to/state.db")

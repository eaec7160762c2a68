"""State stores behind the core's StateStore protocol: SQLite (default, one process) and
PostgreSQL (several replicas; the ``postgres`` extra, imported only when asked for)."""

from __future__ import annotations

from nightops.state.sqlite import SQLiteStateStore
from nightops_core.errors import StateError
from nightops_core.ports import StateStore

__all__ = ["SQLiteStateStore", "open_store"]

_POSTGRES_EXTRA = "PostgreSQL needs: pip install 'nightops[postgres]'"


def open_store(url: str) -> StateStore:
    """Open the store a state URL names: ``sqlite:///path``, ``sqlite:///:memory:`` or
    ``postgresql://user:password@host:5432/database[?schema=name]`` (``postgres://`` too)."""
    if url.startswith("sqlite:///"):
        return SQLiteStateStore(url.removeprefix("sqlite:///"))
    if url.startswith(("postgresql://", "postgres://")):
        try:
            from nightops.state.postgres import PostgresStateStore
        except ImportError as exc:
            if (exc.name or "").partition(".")[0] not in ("psycopg", "psycopg_pool"):
                raise
            raise StateError(_POSTGRES_EXTRA) from None
        return PostgresStateStore(url)
    # Never echo the whole URL: it may carry a password.
    shown = f"'{url.partition('://')[0]}://…' is not" if "://" in url else "that is not"
    raise StateError(
        f"{shown} a state URL: use sqlite:///path/to/state.db, or "
        "postgresql://user:password@host:5432/database for several replicas"
    )

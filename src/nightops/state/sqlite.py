"""The SQLite state store: the embedded default for one NightOps process.

One connection per thread (sqlite3 connections must not be shared across threads), WAL
mode so readers never block the writer, and ``BEGIN IMMEDIATE`` around every
read-modify-write so compare-and-set operations are atomic across threads and processes.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

from nightops.state.codec import dumps, loads
from nightops_core.approvals import ApprovalRequest, ApprovalState
from nightops_core.audit import AuditEvent, AuditRecord, chain, event_from_dict, event_to_dict
from nightops_core.errors import StateError
from nightops_core.operations import Confirmation, Lease, Operation
from nightops_core.ports import Override

__all__ = ["SCHEMA_VERSION", "SQLiteStateStore"]

#: Each entry migrates from version i to i+1. Never edit a shipped entry; append.
_MIGRATIONS: tuple[str, ...] = (
    """
    CREATE TABLE approvals (id TEXT PRIMARY KEY, state TEXT NOT NULL, data TEXT NOT NULL);
    CREATE INDEX approvals_state ON approvals (state);
    CREATE TABLE links (workspace TEXT NOT NULL, user_id TEXT NOT NULL, email TEXT NOT NULL,
                        PRIMARY KEY (workspace, user_id));
    CREATE TABLE confirmations (id TEXT PRIMARY KEY, data TEXT NOT NULL);
    CREATE TABLE leases (collection_id TEXT PRIMARY KEY, operation_id TEXT NOT NULL,
                         expires_at TEXT NOT NULL, data TEXT NOT NULL);
    CREATE TABLE operations (id TEXT PRIMARY KEY, final INTEGER NOT NULL, data TEXT NOT NULL);
    CREATE INDEX operations_open ON operations (final);
    CREATE TABLE audit (seq INTEGER PRIMARY KEY, prev_hash TEXT NOT NULL, hash TEXT NOT NULL,
                        data TEXT NOT NULL);
    CREATE TABLE boundary_claims (collection_id TEXT NOT NULL, at TEXT NOT NULL,
                                  claimer TEXT NOT NULL, PRIMARY KEY (collection_id, at));
    CREATE TABLE overrides (collection_id TEXT PRIMARY KEY, data TEXT NOT NULL);
    CREATE TABLE seen_keys (key TEXT PRIMARY KEY, at TEXT NOT NULL);
    CREATE TABLE kv (namespace TEXT NOT NULL, key TEXT NOT NULL, value TEXT NOT NULL,
                     expires_at TEXT, PRIMARY KEY (namespace, key));
    """,
)
SCHEMA_VERSION = len(_MIGRATIONS)


class SQLiteStateStore:
    """StateStore over one SQLite file (``":memory:"`` for a private in-memory database)."""

    def __init__(self, path: str | Path) -> None:
        self.path = str(path)
        self._local = threading.local()
        if self.path == ":memory:":
            # A shared-cache URI, so every thread sees the same in-memory database.
            self._uri = f"file:nightops-{id(self)}?mode=memory&cache=shared"
            self._keepalive = self._connect()
        else:
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
            self._uri = Path(self.path).absolute().as_uri()
        self._migrate()

    # ---------------------------------------------------------------- plumbing

    def _connect(self) -> sqlite3.Connection:
        try:
            conn = sqlite3.connect(
                self._uri, uri=True, isolation_level=None, timeout=10, check_same_thread=True
            )
        except sqlite3.Error as exc:
            raise StateError(f"cannot open the state database {self.path}: {exc}") from None
        conn.execute("PRAGMA busy_timeout = 10000")
        if self.path != ":memory:":
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute("PRAGMA synchronous = NORMAL")
        return conn

    @property
    def _conn(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._connect()
            self._local.conn = conn
        return conn

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        conn = self._conn
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield conn
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")

    def _migrate(self) -> None:
        with self._write() as conn:
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            if version > SCHEMA_VERSION:
                raise StateError(
                    f"the state database {self.path} has schema version {version}, newer than "
                    f"this NightOps understands ({SCHEMA_VERSION}); upgrade NightOps"
                )
            for index in range(version, SCHEMA_VERSION):
                for statement in _MIGRATIONS[index].split(";"):
                    if statement.strip():
                        conn.execute(statement)
            conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")

    def close(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None

    # ---------------------------------------------------------------- approvals

    def add_approval(self, request: ApprovalRequest) -> None:
        with self._write() as conn:
            conn.execute(
                "INSERT INTO approvals (id, state, data) VALUES (?, ?, ?)",
                (request.id, request.state.value, dumps(request)),
            )

    def get_approval(self, approval_id: str) -> ApprovalRequest | None:
        row = self._conn.execute("SELECT data FROM approvals WHERE id = ?", (approval_id,))
        found = row.fetchone()
        return loads(found[0], ApprovalRequest) if found else None

    def transition_approval(self, expected: ApprovalState, request: ApprovalRequest) -> bool:
        with self._write() as conn:
            cursor = conn.execute(
                "UPDATE approvals SET state = ?, data = ? WHERE id = ? AND state = ?",
                (request.state.value, dumps(request), request.id, expected.value),
            )
            return cursor.rowcount == 1

    def pending_approvals(self) -> Sequence[ApprovalRequest]:
        rows = self._conn.execute(
            "SELECT data FROM approvals WHERE state = ? ORDER BY id",
            (ApprovalState.PENDING.value,),
        )
        return [loads(r[0], ApprovalRequest) for r in rows]

    # ---------------------------------------------------------------- links

    def get_link(self, workspace: str, user_id: str) -> str | None:
        row = self._conn.execute(
            "SELECT email FROM links WHERE workspace = ? AND user_id = ?", (workspace, user_id)
        ).fetchone()
        return str(row[0]) if row else None

    def set_link(self, workspace: str, user_id: str, email: str) -> None:
        with self._write() as conn:
            conn.execute(
                "INSERT INTO links (workspace, user_id, email) VALUES (?, ?, ?) "
                "ON CONFLICT (workspace, user_id) DO UPDATE SET email = excluded.email",
                (workspace, user_id, email),
            )

    # ---------------------------------------------------------------- confirmations

    def add_confirmation(self, confirmation: Confirmation) -> None:
        with self._write() as conn:
            conn.execute(
                "INSERT OR REPLACE INTO confirmations (id, data) VALUES (?, ?)",
                (confirmation.id, dumps(confirmation)),
            )

    def take_confirmation(self, confirmation_id: str) -> Confirmation | None:
        with self._write() as conn:
            row = conn.execute(
                "SELECT data FROM confirmations WHERE id = ?", (confirmation_id,)
            ).fetchone()
            if row is None:
                return None
            conn.execute("DELETE FROM confirmations WHERE id = ?", (confirmation_id,))
            return loads(row[0], Confirmation)

    # ---------------------------------------------------------------- leases

    def acquire_lease(self, lease: Lease, now: datetime) -> Lease | None:
        with self._write() as conn:
            row = conn.execute(
                "SELECT data FROM leases WHERE collection_id = ?", (lease.collection_id,)
            ).fetchone()
            if row is not None:
                current = loads(row[0], Lease)
                if current.expires_at > now:
                    return current
            conn.execute(
                "INSERT OR REPLACE INTO leases (collection_id, operation_id, expires_at, data) "
                "VALUES (?, ?, ?, ?)",
                (
                    lease.collection_id,
                    lease.operation_id,
                    lease.expires_at.isoformat(),
                    dumps(lease),
                ),
            )
            return None

    def release_lease(self, collection_id: str, operation_id: str) -> None:
        with self._write() as conn:
            conn.execute(
                "DELETE FROM leases WHERE collection_id = ? AND operation_id = ?",
                (collection_id, operation_id),
            )

    # ---------------------------------------------------------------- operations

    def save_operation(self, operation: Operation) -> None:
        with self._write() as conn:
            conn.execute(
                "INSERT OR REPLACE INTO operations (id, final, data) VALUES (?, ?, ?)",
                (operation.id, int(operation.state.is_final), dumps(operation)),
            )

    def get_operation(self, operation_id: str) -> Operation | None:
        row = self._conn.execute(
            "SELECT data FROM operations WHERE id = ?", (operation_id,)
        ).fetchone()
        return loads(row[0], Operation) if row else None

    def unfinished_operations(self) -> Sequence[Operation]:
        rows = self._conn.execute("SELECT data FROM operations WHERE final = 0 ORDER BY id")
        return [loads(r[0], Operation) for r in rows]

    # ---------------------------------------------------------------- audit

    def append_audit(self, event: AuditEvent) -> AuditRecord:
        with self._write() as conn:
            row = conn.execute(
                "SELECT seq, prev_hash, hash, data FROM audit ORDER BY seq DESC LIMIT 1"
            ).fetchone()
            previous = self._record(row) if row else None
            record = chain(previous, event)
            conn.execute(
                "INSERT INTO audit (seq, prev_hash, hash, data) VALUES (?, ?, ?, ?)",
                (record.seq, record.prev_hash, record.hash, _event_json(event)),
            )
            return record

    def audit_records(self) -> Sequence[AuditRecord]:
        rows = self._conn.execute("SELECT seq, prev_hash, hash, data FROM audit ORDER BY seq")
        return [self._record(r) for r in rows]

    @staticmethod
    def _record(row: tuple[int, str, str, str]) -> AuditRecord:
        import json

        seq, prev_hash, digest, data = row
        return AuditRecord(seq, event_from_dict(json.loads(data)), prev_hash, digest)

    # ---------------------------------------------------------------- scheduler

    def claim_boundary(self, collection_id: str, at: datetime, claimer: str) -> bool:
        with self._write() as conn:
            cursor = conn.execute(
                "INSERT OR IGNORE INTO boundary_claims (collection_id, at, claimer) "
                "VALUES (?, ?, ?)",
                (collection_id, _utc(at), claimer),
            )
            return cursor.rowcount == 1

    def set_override(self, override: Override) -> None:
        with self._write() as conn:
            conn.execute(
                "INSERT OR REPLACE INTO overrides (collection_id, data) VALUES (?, ?)",
                (override.collection_id, dumps(override)),
            )

    def get_override(self, collection_id: str) -> Override | None:
        row = self._conn.execute(
            "SELECT data FROM overrides WHERE collection_id = ?", (collection_id,)
        ).fetchone()
        return loads(row[0], Override) if row else None

    def clear_override(self, collection_id: str) -> None:
        with self._write() as conn:
            conn.execute("DELETE FROM overrides WHERE collection_id = ?", (collection_id,))

    def list_overrides(self) -> Sequence[Override]:
        rows = self._conn.execute("SELECT data FROM overrides ORDER BY collection_id")
        return [loads(r[0], Override) for r in rows]

    # ---------------------------------------------------------------- dedupe

    def claim_once(self, key: str, now: datetime) -> bool:
        with self._write() as conn:
            cursor = conn.execute(
                "INSERT OR IGNORE INTO seen_keys (key, at) VALUES (?, ?)", (key, _utc(now))
            )
            return cursor.rowcount == 1

    # ---------------------------------------------------------------- values

    def put_value(
        self, namespace: str, key: str, value: str, expires_at: datetime | None = None
    ) -> None:
        with self._write() as conn:
            conn.execute(
                "INSERT OR REPLACE INTO kv (namespace, key, value, expires_at) VALUES (?, ?, ?, ?)",
                (namespace, key, value, _utc(expires_at)),
            )

    def get_value(self, namespace: str, key: str, now: datetime) -> str | None:
        row = self._conn.execute(
            "SELECT value FROM kv WHERE namespace = ? AND key = ? "
            "AND (expires_at IS NULL OR expires_at > ?)",
            (namespace, key, _utc(now)),
        ).fetchone()
        return str(row[0]) if row else None

    def take_value(self, namespace: str, key: str, now: datetime) -> str | None:
        with self._write() as conn:
            row = conn.execute(
                "SELECT value, expires_at FROM kv WHERE namespace = ? AND key = ?",
                (namespace, key),
            ).fetchone()
            if row is None:
                return None
            conn.execute("DELETE FROM kv WHERE namespace = ? AND key = ?", (namespace, key))
            expired = row[1] is not None and row[1] <= _utc(now)
            return None if expired else str(row[0])

    # ---------------------------------------------------------------- housekeeping

    def prune(self, before: datetime) -> int:
        cutoff = _utc(before)
        with self._write() as conn:
            removed = conn.execute("DELETE FROM boundary_claims WHERE at < ?", (cutoff,)).rowcount
            removed += conn.execute("DELETE FROM seen_keys WHERE at < ?", (cutoff,)).rowcount
            removed += conn.execute(
                "DELETE FROM kv WHERE expires_at IS NOT NULL AND expires_at < ?", (cutoff,)
            ).rowcount
            return removed


def _utc(when: datetime | None) -> str | None:
    """Timestamps are stored as UTC ISO strings so that text order is time order."""
    return None if when is None else when.astimezone(UTC).isoformat()


def _event_json(event: AuditEvent) -> str:
    import json

    return json.dumps(event_to_dict(event), separators=(",", ":"), ensure_ascii=False)

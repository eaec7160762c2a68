"""The PostgreSQL state store: for several NightOps replicas sharing one state.

Needs the ``postgres`` extra (psycopg 3 and psycopg-pool), imported here at the top: import
this module only when a ``postgresql://`` state URL is used (:func:`nightops.state.open_store`
does). A :class:`psycopg_pool.ConnectionPool` serves every thread; each public method is one
statement in autocommit mode, or one explicit transaction where it reads before it writes.
Each method is atomic across threads, processes and machines:

- compare-and-set and claims are single conditional statements (``UPDATE … WHERE state =``,
  ``INSERT … ON CONFLICT DO NOTHING``, ``DELETE … RETURNING``), decided by the server;
- a lease is an upsert that overwrites only an expired row, and locks the row it found;
- audit appends are serialised by a row lock on a one-row chain head, so the hash chain
  stays one serial chain whoever writes.

Migrations run at start-up under a transaction-scoped advisory lock, so several processes
starting at once against an empty schema all succeed. Messages never carry the password.
"""

from __future__ import annotations

import json
import os
import re
import threading
import time
import weakref
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from types import TracebackType
from typing import Any, LiteralString
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict
from psycopg_pool import ConnectionPool, PoolClosed, PoolTimeout

from nightops.state.codec import dumps, loads
from nightops_core.approvals import ApprovalRequest, ApprovalState
from nightops_core.audit import AuditEvent, AuditRecord, chain, event_from_dict, event_to_dict
from nightops_core.errors import StateError
from nightops_core.operations import Confirmation, Lease, Operation
from nightops_core.ports import Override

__all__ = ["SCHEMA_VERSION", "PostgresStateStore"]

#: Each entry migrates from version i to i+1 (one transaction, statements split on ";").
#: Never edit a shipped entry; append. Keys are ``COLLATE "C"`` so that ``ORDER BY id`` is
#: byte order, as in SQLite, whatever the database's locale.
_MIGRATIONS: tuple[str, ...] = (
    """
    CREATE TABLE approvals (id TEXT COLLATE "C" PRIMARY KEY, state TEXT NOT NULL,
                            data TEXT NOT NULL);
    CREATE INDEX approvals_state ON approvals (state);
    CREATE TABLE links (workspace TEXT COLLATE "C" NOT NULL, user_id TEXT COLLATE "C" NOT NULL,
                        email TEXT NOT NULL, PRIMARY KEY (workspace, user_id));
    CREATE TABLE confirmations (id TEXT COLLATE "C" PRIMARY KEY, data TEXT NOT NULL);
    CREATE TABLE leases (collection_id TEXT COLLATE "C" PRIMARY KEY,
                         operation_id TEXT NOT NULL, expires_at TIMESTAMPTZ NOT NULL,
                         data TEXT NOT NULL);
    CREATE TABLE operations (id TEXT COLLATE "C" PRIMARY KEY, final BOOLEAN NOT NULL,
                             data TEXT NOT NULL);
    CREATE INDEX operations_open ON operations (id) WHERE NOT final;
    CREATE TABLE audit (seq BIGINT PRIMARY KEY, prev_hash TEXT NOT NULL, hash TEXT NOT NULL,
                        data TEXT NOT NULL);
    CREATE TABLE audit_head (one BOOLEAN PRIMARY KEY DEFAULT TRUE CHECK (one));
    INSERT INTO audit_head DEFAULT VALUES;
    CREATE TABLE boundary_claims (collection_id TEXT COLLATE "C" NOT NULL,
                                  at TIMESTAMPTZ NOT NULL, claimer TEXT NOT NULL,
                                  PRIMARY KEY (collection_id, at));
    CREATE TABLE overrides (collection_id TEXT COLLATE "C" PRIMARY KEY, data TEXT NOT NULL);
    CREATE TABLE seen_keys (key TEXT COLLATE "C" PRIMARY KEY, at TIMESTAMPTZ NOT NULL);
    CREATE TABLE kv (namespace TEXT COLLATE "C" NOT NULL, key TEXT COLLATE "C" NOT NULL,
                     value TEXT NOT NULL, expires_at TIMESTAMPTZ,
                     PRIMARY KEY (namespace, key));
    """,
)
SCHEMA_VERSION = len(_MIGRATIONS)

#: Key of the transaction-scoped advisory lock held while migrating ("NightOps" in ASCII).
#: Database-wide on purpose: it also guards CREATE SCHEMA, and start-ups are short.
_MIGRATION_LOCK = 0x4E696768744F7073

#: Seconds a pooled connection may sit unused before it is pinged on checkout.
_PING_AFTER_IDLE = 1.0

_SCHEMA_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,62}")


class PostgresStateStore:
    """StateStore over a PostgreSQL database, safe for several threads and processes.

    ``dsn`` is a libpq URL or ``key=value`` string; a ``schema=`` query parameter in a URL
    (or the ``schema`` argument, which wins) puts NightOps's tables in that schema, created
    if missing, through the connections' ``search_path``. The pool keeps ``min_size`` to
    ``max_size`` connections; a call waits up to ``timeout`` seconds for a free one.
    Open a store after forking, never before: a store belongs to the process that opened it.
    """

    def __init__(
        self,
        dsn: str,
        *,
        schema: str | None = None,
        min_size: int = 1,
        max_size: int = 10,
        timeout: float = 10.0,
    ) -> None:
        dsn, url_schema = _split_schema(dsn)
        self._secret = str(_conninfo(dsn).get("password") or "")
        self.schema = schema if schema is not None else url_schema
        self.url = _redacted(dsn)
        self._timeout = timeout
        self._max_size = max_size
        self._pid = os.getpid()
        self._lock = threading.Lock()
        self._last_used: weakref.WeakKeyDictionary[psycopg.Connection[Any], float] = (
            weakref.WeakKeyDictionary()
        )
        if self.schema is not None and not _SCHEMA_NAME.fullmatch(self.schema):
            raise StateError(
                f"{self.schema!r} is not a usable PostgreSQL schema name: use letters, digits "
                "and underscores, starting with a letter or underscore (at most 63)"
            )
        params: dict[str, Any] = {"autocommit": True}
        given = _conninfo(dsn)
        if "connect_timeout" not in given:
            params["connect_timeout"] = max(1, round(timeout))
        if "application_name" not in given:
            params["application_name"] = "nightops"  # what pg_stat_activity shows
        if self.schema is not None:
            params["options"] = f"-c search_path={self.schema}"
        # One plain connection first: its error says why the server cannot be reached
        # (a pool would only time out), and it runs the migrations.
        try:
            with psycopg.connect(dsn, **params) as conn:
                self._migrate(conn)
        except psycopg.Error as exc:
            raise StateError(self._unreachable(exc)) from None
        self._pool: ConnectionPool[psycopg.Connection[tuple[Any, ...]]] = ConnectionPool(
            dsn,
            kwargs=params,
            min_size=min_size,
            max_size=max_size,
            timeout=timeout,
            check=self._check,
            open=False,
            name="nightops-state",
        )
        try:
            self._pool.open(wait=True, timeout=timeout)
        except PoolTimeout:
            self._pool.close()
            raise StateError(
                f"cannot open {min_size} connection(s) to PostgreSQL at {self.url} within "
                f"{timeout:g} s; is max_connections on the server large enough?"
            ) from None

    def __repr__(self) -> str:
        schema = f", schema={self.schema!r}" if self.schema else ""
        return f"PostgresStateStore({self.url!r}{schema})"

    # ---------------------------------------------------------------- plumbing

    def _migrate(self, conn: psycopg.Connection[tuple[Any, ...]]) -> None:
        where = f"the NightOps tables at {self.url}" + (
            f" (schema {self.schema})" if self.schema else ""
        )
        with conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (_MIGRATION_LOCK,))
            # Look before creating: even CREATE … IF NOT EXISTS needs the CREATE privilege,
            # which a role that only reads and writes the tables does not have.
            if self.schema is not None and not _exists(
                conn, "SELECT 1 FROM pg_namespace WHERE nspname = %s", self.schema
            ):
                conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(self.schema)))
            version = 0
            if _exists(conn, "SELECT to_regclass(%s)", "nightops_schema_version"):
                row = conn.execute("SELECT max(version) FROM nightops_schema_version").fetchone()
                version = int(row[0]) if row is not None and row[0] is not None else 0
            else:
                conn.execute("CREATE TABLE nightops_schema_version (version INTEGER NOT NULL)")
            if version > SCHEMA_VERSION:
                raise StateError(
                    f"{where} have schema version {version}, newer than this NightOps "
                    f"understands ({SCHEMA_VERSION}); upgrade NightOps"
                )
            for index in range(version, SCHEMA_VERSION):
                for statement in _MIGRATIONS[index].split(";"):
                    if statement.strip():
                        conn.execute(statement.encode())
            if version < SCHEMA_VERSION:
                conn.execute("DELETE FROM nightops_schema_version")
                conn.execute(
                    "INSERT INTO nightops_schema_version (version) VALUES (%s)", (SCHEMA_VERSION,)
                )

    def _check(self, conn: psycopg.Connection[Any]) -> None:
        """Ping a connection that sat idle, so that one the server dropped (a restart, a
        failover, an idle timeout) is replaced instead of failing the call. Recently used
        ones skip the round trip, as HikariCP does."""
        with self._lock:
            idle = time.monotonic() - self._last_used.get(conn, 0.0)
        if idle > _PING_AFTER_IDLE:
            ConnectionPool.check_connection(conn)

    def _unreachable(self, exc: psycopg.Error) -> str:
        return f"cannot reach PostgreSQL at {self.url}: {_reason(exc, self._secret)}"

    @contextmanager
    def _conn(self) -> Iterator[psycopg.Connection[tuple[Any, ...]]]:
        """A pooled connection in autocommit mode; psycopg errors become StateError."""
        if os.getpid() != self._pid:
            raise StateError(
                "this PostgresStateStore was opened in another process; "
                "open a new store in each process (after forking)"
            )
        try:
            with self._pool.connection() as conn:
                try:
                    yield conn
                finally:
                    with self._lock:
                        self._last_used[conn] = time.monotonic()
        except PoolClosed:
            raise StateError(f"the state store for {self.url} is closed") from None
        except PoolTimeout:
            raise StateError(
                f"no usable PostgreSQL connection to {self.url} within {self._timeout:g} s: "
                "the server may be down, or all its connections busy "
                f"(max_size={self._max_size})"
            ) from None
        except psycopg.Error as exc:
            if _connection_lost(exc):
                raise StateError(
                    f"lost the connection to PostgreSQL at {self.url}: "
                    f"{_reason(exc, self._secret)}; NightOps reconnects on the next call"
                ) from None
            raise StateError(
                f"PostgreSQL at {self.url} failed: {_reason(exc, self._secret)}"
            ) from None

    @contextmanager
    def _transaction(self) -> Iterator[psycopg.Connection[tuple[Any, ...]]]:
        with self._conn() as conn, conn.transaction():
            yield conn

    def close(self) -> None:
        """Close every pooled connection (idempotent)."""
        self._pool.close()

    def __enter__(self) -> PostgresStateStore:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    # ---------------------------------------------------------------- approvals

    def add_approval(self, request: ApprovalRequest) -> None:
        with self._conn() as conn:
            row = conn.execute(
                "INSERT INTO approvals (id, state, data) VALUES (%s, %s, %s) "
                "ON CONFLICT DO NOTHING RETURNING id",
                (request.id, request.state.value, dumps(request)),
            ).fetchone()
        if row is None:
            raise StateError(f"approval {request.id} exists already")

    def get_approval(self, approval_id: str) -> ApprovalRequest | None:
        with self._conn() as conn:
            row = conn.execute("SELECT data FROM approvals WHERE id = %s", (approval_id,))
            found = row.fetchone()
        return loads(found[0], ApprovalRequest) if found else None

    def transition_approval(self, expected: ApprovalState, request: ApprovalRequest) -> bool:
        with self._conn() as conn:
            cursor = conn.execute(
                "UPDATE approvals SET state = %s, data = %s WHERE id = %s AND state = %s",
                (request.state.value, dumps(request), request.id, expected.value),
            )
            return cursor.rowcount == 1

    def pending_approvals(self) -> Sequence[ApprovalRequest]:
        with self._conn() as conn:
            rows = conn.execute(
                "SELECT data FROM approvals WHERE state = %s ORDER BY id",
                (ApprovalState.PENDING.value,),
            ).fetchall()
        return [loads(r[0], ApprovalRequest) for r in rows]

    # ---------------------------------------------------------------- links

    def get_link(self, workspace: str, user_id: str) -> str | None:
        with self._conn() as conn:
            row = conn.execute(
                "SELECT email FROM links WHERE workspace = %s AND user_id = %s",
                (workspace, user_id),
            ).fetchone()
        return str(row[0]) if row else None

    def set_link(self, workspace: str, user_id: str, email: str) -> None:
        with self._conn() as conn:
            conn.execute(
                "INSERT INTO links (workspace, user_id, email) VALUES (%s, %s, %s) "
                "ON CONFLICT (workspace, user_id) DO UPDATE SET email = excluded.email",
                (workspace, user_id, email),
            )

    # ---------------------------------------------------------------- confirmations

    def add_confirmation(self, confirmation: Confirmation) -> None:
        with self._conn() as conn:
            conn.execute(
                "INSERT INTO confirmations (id, data) VALUES (%s, %s) "
                "ON CONFLICT (id) DO UPDATE SET data = excluded.data",
                (confirmation.id, dumps(confirmation)),
            )

    def take_confirmation(self, confirmation_id: str) -> Confirmation | None:
        with self._conn() as conn:
            row = conn.execute(
                "DELETE FROM confirmations WHERE id = %s RETURNING data", (confirmation_id,)
            ).fetchone()
        return loads(row[0], Confirmation) if row else None

    # ---------------------------------------------------------------- leases

    def acquire_lease(self, lease: Lease, now: datetime) -> Lease | None:
        with self._transaction() as conn:
            # Takes the row if absent or expired. When the WHERE fails, ON CONFLICT DO UPDATE
            # still locks the existing row, so the SELECT below (a new statement, a new
            # snapshot) reads the holder that is current until this transaction ends.
            taken = conn.execute(
                "INSERT INTO leases (collection_id, operation_id, expires_at, data) "
                "VALUES (%s, %s, %s, %s) ON CONFLICT (collection_id) DO UPDATE SET "
                "operation_id = excluded.operation_id, expires_at = excluded.expires_at, "
                "data = excluded.data WHERE leases.expires_at <= %s RETURNING 1",
                (lease.collection_id, lease.operation_id, lease.expires_at, dumps(lease), now),
            ).fetchone()
            if taken is not None:
                return None
            row = conn.execute(
                "SELECT data FROM leases WHERE collection_id = %s", (lease.collection_id,)
            ).fetchone()
        if row is None:  # pragma: no cover - the row is locked by this transaction
            raise StateError(f"the lease of {lease.collection_id} vanished while locked")
        return loads(row[0], Lease)

    def release_lease(self, collection_id: str, operation_id: str) -> None:
        with self._conn() as conn:
            conn.execute(
                "DELETE FROM leases WHERE collection_id = %s AND operation_id = %s",
                (collection_id, operation_id),
            )

    # ---------------------------------------------------------------- operations

    def save_operation(self, operation: Operation) -> None:
        with self._conn() as conn:
            conn.execute(
                "INSERT INTO operations (id, final, data) VALUES (%s, %s, %s) "
                "ON CONFLICT (id) DO UPDATE SET final = excluded.final, data = excluded.data",
                (operation.id, operation.state.is_final, dumps(operation)),
            )

    def get_operation(self, operation_id: str) -> Operation | None:
        with self._conn() as conn:
            row = conn.execute(
                "SELECT data FROM operations WHERE id = %s", (operation_id,)
            ).fetchone()
        return loads(row[0], Operation) if row else None

    def unfinished_operations(self) -> Sequence[Operation]:
        with self._conn() as conn:
            rows = conn.execute(
                "SELECT data FROM operations WHERE NOT final ORDER BY id"
            ).fetchall()
        return [loads(r[0], Operation) for r in rows]

    # ---------------------------------------------------------------- audit

    def append_audit(self, event: AuditEvent) -> AuditRecord:
        with self._transaction() as conn:
            # The chain head's row lock makes appenders queue up. The tail is read by the
            # next statement, whose snapshot includes what the previous holder committed.
            conn.execute("SELECT one FROM audit_head FOR UPDATE")
            row = conn.execute(
                "SELECT seq, prev_hash, hash, data FROM audit ORDER BY seq DESC LIMIT 1"
            ).fetchone()
            record = chain(_record(row) if row else None, event)
            conn.execute(
                "INSERT INTO audit (seq, prev_hash, hash, data) VALUES (%s, %s, %s, %s)",
                (record.seq, record.prev_hash, record.hash, _event_json(event)),
            )
        return record

    def audit_records(self) -> Sequence[AuditRecord]:
        with self._conn() as conn:
            rows = conn.execute(
                "SELECT seq, prev_hash, hash, data FROM audit ORDER BY seq"
            ).fetchall()
        return [_record(r) for r in rows]

    # ---------------------------------------------------------------- scheduler

    def claim_boundary(self, collection_id: str, at: datetime, claimer: str) -> bool:
        with self._conn() as conn:
            cursor = conn.execute(
                "INSERT INTO boundary_claims (collection_id, at, claimer) VALUES (%s, %s, %s) "
                "ON CONFLICT DO NOTHING",
                (collection_id, at, claimer),
            )
            return cursor.rowcount == 1

    def set_override(self, override: Override) -> None:
        with self._conn() as conn:
            conn.execute(
                "INSERT INTO overrides (collection_id, data) VALUES (%s, %s) "
                "ON CONFLICT (collection_id) DO UPDATE SET data = excluded.data",
                (override.collection_id, dumps(override)),
            )

    def get_override(self, collection_id: str) -> Override | None:
        with self._conn() as conn:
            row = conn.execute(
                "SELECT data FROM overrides WHERE collection_id = %s", (collection_id,)
            ).fetchone()
        return loads(row[0], Override) if row else None

    def clear_override(self, collection_id: str) -> None:
        with self._conn() as conn:
            conn.execute("DELETE FROM overrides WHERE collection_id = %s", (collection_id,))

    def list_overrides(self) -> Sequence[Override]:
        with self._conn() as conn:
            rows = conn.execute("SELECT data FROM overrides ORDER BY collection_id").fetchall()
        return [loads(r[0], Override) for r in rows]

    # ---------------------------------------------------------------- dedupe

    def claim_once(self, key: str, now: datetime) -> bool:
        with self._conn() as conn:
            cursor = conn.execute(
                "INSERT INTO seen_keys (key, at) VALUES (%s, %s) ON CONFLICT DO NOTHING",
                (key, now),
            )
            return cursor.rowcount == 1

    # ---------------------------------------------------------------- values

    def put_value(
        self, namespace: str, key: str, value: str, expires_at: datetime | None = None
    ) -> None:
        with self._conn() as conn:
            conn.execute(
                "INSERT INTO kv (namespace, key, value, expires_at) VALUES (%s, %s, %s, %s) "
                "ON CONFLICT (namespace, key) DO UPDATE "
                "SET value = excluded.value, expires_at = excluded.expires_at",
                (namespace, key, value, expires_at),
            )

    def get_value(self, namespace: str, key: str, now: datetime) -> str | None:
        with self._conn() as conn:
            row = conn.execute(
                "SELECT value FROM kv WHERE namespace = %s AND key = %s "
                "AND (expires_at IS NULL OR expires_at > %s)",
                (namespace, key, now),
            ).fetchone()
        return str(row[0]) if row else None

    def take_value(self, namespace: str, key: str, now: datetime) -> str | None:
        with self._conn() as conn:
            # Removed whether or not it has expired; only an unexpired value is returned.
            row = conn.execute(
                "DELETE FROM kv WHERE namespace = %s AND key = %s "
                "RETURNING value, (expires_at IS NULL OR expires_at > %s)",
                (namespace, key, now),
            ).fetchone()
        return str(row[0]) if row is not None and row[1] else None

    # ---------------------------------------------------------------- housekeeping

    def prune(self, before: datetime) -> int:
        with self._conn() as conn:
            removed = conn.execute("DELETE FROM boundary_claims WHERE at < %s", (before,)).rowcount
            removed += conn.execute("DELETE FROM seen_keys WHERE at < %s", (before,)).rowcount
            removed += conn.execute(
                "DELETE FROM kv WHERE expires_at IS NOT NULL AND expires_at < %s", (before,)
            ).rowcount
        return removed


# ---------------------------------------------------------------- helpers


def _exists(conn: psycopg.Connection[tuple[Any, ...]], query: LiteralString, name: str) -> bool:
    row = conn.execute(query, (name,)).fetchone()
    return row is not None and row[0] is not None


def _record(row: tuple[Any, ...]) -> AuditRecord:
    seq, prev_hash, digest, data = row
    return AuditRecord(int(seq), event_from_dict(json.loads(data)), prev_hash, digest)


def _event_json(event: AuditEvent) -> str:
    text = json.dumps(event_to_dict(event), separators=(",", ":"), ensure_ascii=False)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        # Lone surrogates cannot travel as UTF-8; escaped, they read back the same.
        text = json.dumps(event_to_dict(event), separators=(",", ":"))
    return text


def _split_schema(dsn: str) -> tuple[str, str | None]:
    """Take a ``schema=`` query parameter (ours, unknown to libpq) out of a URL."""
    if not dsn.startswith(("postgresql://", "postgres://")):
        return dsn, None
    parts = urlsplit(dsn)
    query = parse_qsl(parts.query, keep_blank_values=True)
    schemas = [value for name, value in query if name == "schema"]
    if not schemas:
        return dsn, None
    rest = urlencode([(name, value) for name, value in query if name != "schema"])
    return urlunsplit(parts._replace(query=rest)), schemas[-1]


def _conninfo(dsn: str) -> dict[str, Any]:
    try:
        return conninfo_to_dict(dsn)
    except psycopg.Error:
        # libpq's message may quote the string, password and all: say it without it.
        raise StateError(
            "the PostgreSQL state URL is not valid; write it as "
            "postgresql://user:password@host:5432/database"
        ) from None


def _redacted(dsn: str) -> str:
    """The URL of ``dsn`` without its password (nor any other parameter)."""
    info = _conninfo(dsn)
    user = f"{info['user']}@" if info.get("user") else ""
    host = str(info.get("host") or "localhost")
    port = f":{info['port']}" if info.get("port") else ""
    database = f"/{info['dbname']}" if info.get("dbname") else ""
    return f"postgresql://{user}{host}{port}{database}"


def _connection_lost(exc: psycopg.Error) -> bool:
    """The connection broke (class 08, or the server shutting down), not the statement."""
    state = exc.sqlstate
    return isinstance(exc, psycopg.OperationalError) and (
        state is None or state.startswith(("08", "57P"))
    )


def _reason(exc: psycopg.Error, secret: str) -> str:
    """What went wrong, in a few words, with a hint; never the connection string."""
    message = str(exc)
    lowered = message.lower()
    if "connection refused" in lowered:
        return "connection refused; is the server running?"
    if "password authentication failed" in lowered:
        return "password authentication failed; check the user and password"
    if "timeout expired" in lowered:
        return "no answer in time; check the host and port, and any firewall"
    if "failed to resolve host" in lowered or "could not translate host name" in lowered:
        return "unknown host name; check the host in the state URL"
    # libpq's own text: the last line of "connection to server at …: FATAL:  <why>"
    detail = message.strip().splitlines()[0] if message.strip() else type(exc).__name__
    detail = detail.rsplit("FATAL:", 1)[-1].strip()
    return detail.replace(secret, "***") if secret else detail

"""A tiny Socket Mode server (stdlib only): the RFC 6455 handshake and frames, a ``hello``
on connect, envelopes pushed by the test, and every message the client sends recorded
(acks carry ``envelope_id`` and the response ``payload``). Pings are answered."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import socket
import struct
import threading
import time
from typing import Any

_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


class FakeSocketMode:
    def __init__(self) -> None:
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen()
        self.port = self._listener.getsockname()[1]
        self.received: list[dict[str, Any]] = []
        self.connections: list[socket.socket] = []
        self._lock = threading.Lock()
        self._closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/link/?ticket=t1"

    def _accept(self) -> None:
        while not self._closed:
            try:
                conn, _ = self._listener.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        try:
            request = b""
            while b"\r\n\r\n" not in request:
                chunk = conn.recv(4096)
                if not chunk:
                    return
                request += chunk
            key = ""
            for line in request.decode("latin-1").split("\r\n"):
                name, _, value = line.partition(":")
                if name.strip().lower() == "sec-websocket-key":
                    key = value.strip()
            accept = base64.b64encode(hashlib.sha1((key + _GUID).encode()).digest()).decode()
            conn.sendall(
                (
                    "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                    f"Connection: Upgrade\r\nSec-WebSocket-Accept: {accept}\r\n\r\n"
                ).encode()
            )
            with self._lock:
                self.connections.append(conn)
            self._send(conn, 0x1, json.dumps({"type": "hello", "num_connections": 1}).encode())
            self._read(conn)
        except OSError:
            return

    def _read(self, conn: socket.socket) -> None:
        buffer = b""

        def need(n: int) -> bytes:
            nonlocal buffer
            while len(buffer) < n:
                chunk = conn.recv(65536)
                if not chunk:
                    raise OSError("closed")
                buffer += chunk
            out, buffer = buffer[:n], buffer[n:]
            return out

        while True:
            first, second = need(2)
            opcode = first & 0x0F
            length = second & 0x7F
            if length == 126:
                (length,) = struct.unpack("!H", need(2))
            elif length == 127:
                (length,) = struct.unpack("!Q", need(8))
            mask = need(4) if second & 0x80 else b"\0\0\0\0"
            data = bytes(b ^ mask[i % 4] for i, b in enumerate(need(length)))
            if opcode == 0x1:
                with self._lock:
                    self.received.append(json.loads(data))
            elif opcode == 0x9:
                self._send(conn, 0xA, data)
            elif opcode == 0x8:
                self._send(conn, 0x8, data[:2])
                conn.close()
                return

    @staticmethod
    def _send(conn: socket.socket, opcode: int, data: bytes) -> None:
        header = bytes([0x80 | opcode])
        if len(data) < 126:
            header += bytes([len(data)])
        elif len(data) < 65536:
            header += bytes([126]) + struct.pack("!H", len(data))
        else:
            header += bytes([127]) + struct.pack("!Q", len(data))
        conn.sendall(header + data)

    def push(self, envelope: dict[str, Any], timeout: float = 5.0) -> None:
        """Send an envelope on the newest connection (waiting for one)."""
        deadline = time.monotonic() + timeout
        while not self.connections and time.monotonic() < deadline:
            time.sleep(0.01)
        with self._lock:
            conn = self.connections[-1]
        self._send(conn, 0x1, json.dumps(envelope).encode())

    def ack_for(self, envelope_id: str, timeout: float = 5.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                for message in self.received:
                    if message.get("envelope_id") == envelope_id:
                        return message
            time.sleep(0.01)
        raise AssertionError(f"no ack for {envelope_id}")

    def close(self) -> None:
        self._closed = True
        self._listener.close()
        with self._lock:
            for conn in self.connections:
                with contextlib.suppress(OSError):
                    conn.close()

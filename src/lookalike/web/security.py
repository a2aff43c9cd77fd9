"""Signed anonymous sessions, signed pair tokens, and a per-session rate limit."""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import threading
import time
from pathlib import Path


def load_secret(explicit: str | None, workspace_root: Path) -> bytes:
    """``--secret``, else ``$LOOKALIKE_SECRET``, else a random secret kept in ``WS/web-secret`` (mode 600)."""
    value = explicit or os.environ.get("LOOKALIKE_SECRET")
    if value:
        return value.encode()
    path = workspace_root / "web-secret"
    if not path.is_file():
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(secrets.token_hex(32))
    return path.read_text().strip().encode()


class Signer:
    """HMAC-SHA256 signatures: ``value.signature``; ``unsign`` returns None when forged or altered."""

    def __init__(self, secret: bytes, purpose: str):
        self.key = hashlib.sha256(secret + b"|" + purpose.encode()).digest()

    def _mac(self, value: str) -> str:
        return hmac.new(self.key, value.encode(), hashlib.sha256).hexdigest()[:32]

    def sign(self, value: str) -> str:
        return f"{value}.{self._mac(value)}"

    def unsign(self, signed: str | None) -> str | None:
        """The signed value, or None for anything forged, altered or malformed (any text, never an error)."""
        if not signed or "." not in signed:
            return None
        value, mac = signed.rsplit(".", 1)
        if len(mac) != 32 or not mac.isascii() or not value.isascii() or not value.isprintable():
            return None  # our values and signatures are printable ASCII: the rest is forged
        return value if hmac.compare_digest(mac.encode(), self._mac(value).encode()) else None


class RateLimiter:
    """Token bucket per key: ``rate`` events per second on average, bursts up to ``burst``."""

    def __init__(self, rate: float, burst: int):
        self.rate, self.burst = rate, burst
        self._buckets: dict[str, tuple[float, float]] = {}
        self._lock = threading.Lock()

    def allow(self, key: str) -> bool:
        now = time.monotonic()
        with self._lock:
            tokens, last = self._buckets.get(key, (float(self.burst), now))
            tokens = min(float(self.burst), tokens + (now - last) * self.rate)
            if tokens < 1:
                self._buckets[key] = (tokens, now)
                return False
            self._buckets[key] = (tokens - 1, now)
            if len(self._buckets) > 100_000:  # forget idle sessions
                self._buckets = {k: v for k, v in self._buckets.items() if now - v[1] < 600}
            return True


class BodyLimit:
    """ASGI middleware: a size limit on every request body, 413 before the body is read.

    ``limits`` maps a path to its limit in bytes; other paths get ``default``. A declared Content-Length
    over the limit is refused at once; a body sent without one (chunked) is counted as it arrives and
    refused as soon as it passes the limit, so the application never holds more than the limit.
    """

    def __init__(self, app, *, default: int, limits: dict[str, int] | None = None):
        self.app, self.default, self.limits = app, default, dict(limits or {})

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        limit = self.limits.get(scope.get("path", ""), self.default)
        length = dict(scope.get("headers") or []).get(b"content-length")
        if length is not None and (not length.isdigit() or int(length) > limit):
            return await self._refuse(send, limit, bad=not length.isdigit())
        received = 0
        refused = False

        async def limited_receive():
            nonlocal received, refused
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    refused = True
                    raise _TooLarge
            return message

        answered = False

        async def checked_send(message):
            nonlocal answered
            if refused:  # whatever the app makes of a body cut off (FastAPI: 400), the answer is 413
                if not answered:
                    answered = True
                    await self._refuse(send, limit)
                return
            if message["type"] == "http.response.start":
                answered = True
            await send(message)

        try:
            await self.app(scope, limited_receive, checked_send)
        except Exception:
            if not refused:
                raise
            if not answered:  # the app gave up on a body cut off at the limit
                await self._refuse(send, limit)

    @staticmethod
    async def _refuse(send, limit: int, bad: bool = False) -> None:
        import json

        status, detail = (400, "invalid Content-Length") if bad else (413, f"the request body is larger than "
                                                                            f"{limit:,} bytes")
        body = json.dumps({"detail": detail}).encode()
        await send({"type": "http.response.start", "status": status,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                                (b"connection", b"close")]})
        await send({"type": "http.response.body", "body": body})


class _TooLarge(Exception):
    """Raised inside the app's receive() when a body passes its limit."""


class LookupLog:
    """Which items each client (address or session) looked up in public search, for ``window`` seconds.

    A vote on a pair whose items its voter had just looked up is suspect: that is how the hidden system of
    a pair is worked out before voting (the steering attack in docs/web.md). Bounded: per client the
    ``per_client`` latest lookups, and at most ``clients`` clients.
    """

    def __init__(self, window: float = 1800.0, per_client: int = 1000, clients: int = 100_000):
        self.window, self.per_client, self.clients = window, per_client, clients
        self._seen: dict[str, dict[str, float]] = {}
        self._lock = threading.Lock()

    def record(self, clients: list[str], item: str) -> None:
        now = time.monotonic()
        with self._lock:
            for client in clients:
                items = self._seen.setdefault(client, {})
                items.pop(item, None)
                items[item] = now  # newest last
                while len(items) > self.per_client:
                    items.pop(next(iter(items)))
            if len(self._seen) > self.clients:  # forget the idle ones
                self._seen = {c: v for c, v in self._seen.items() if v and now - max(v.values()) < self.window}

    def knows(self, clients: list[str]) -> bool:
        """True when any of ``clients`` looked anything up (a vote of anyone else needs no pair read)."""
        with self._lock:
            return any(self._seen.get(c) for c in clients)

    def looked_up(self, clients: list[str], items: list[str]) -> bool:
        """True when any of ``clients`` looked up any of ``items`` within the window."""
        now = time.monotonic()
        with self._lock:
            return any(now - self._seen.get(c, {}).get(i, -1e18) < self.window for c in clients for i in items)

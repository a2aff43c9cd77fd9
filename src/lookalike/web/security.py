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
        if not signed or "." not in signed:
            return None
        value, mac = signed.rsplit(".", 1)
        return value if hmac.compare_digest(mac, self._mac(value)) else None


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

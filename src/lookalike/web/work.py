"""CPU work off the event loop: a bounded pool of worker threads with a bounded queue.

Decoding photos, running the models and searching release the GIL (Pillow, ONNX Runtime, faiss), so a
few threads keep the cores busy while the event loop keeps answering every other request. When the pool
and its queue are full, a request is refused at once (503 with Retry-After) instead of waiting without end.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

import anyio
import anyio.to_thread

T = TypeVar("T")


class PoolFull(Exception):
    """Every worker is busy and the queue is full: try again in ``retry_after`` seconds."""

    def __init__(self, retry_after: int):
        super().__init__(f"the server is busy; retry in {retry_after} s")
        self.retry_after = retry_after


class WorkPool:
    """At most ``workers`` jobs run at once and at most ``queue`` wait; more are refused with ``PoolFull``."""

    def __init__(self, workers: int, queue: int, retry_after: int = 2):
        if workers < 1 or queue < 0:
            raise ValueError(f"workers must be >= 1 and queue >= 0, got {workers} and {queue}")
        self.workers, self.queue, self.retry_after = workers, queue, retry_after
        self._limiter: anyio.CapacityLimiter | None = None  # made inside the event loop
        self._admitted = 0  # changed only on the event loop's thread: no lock needed

    @property
    def busy(self) -> int:
        """Jobs running or waiting."""
        return self._admitted

    async def run(self, func: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run ``func(*args, **kwargs)`` in a worker thread, or raise ``PoolFull`` at once."""
        if self._admitted >= self.workers + self.queue:
            raise PoolFull(self.retry_after)
        if self._limiter is None:
            self._limiter = anyio.CapacityLimiter(self.workers)
        self._admitted += 1
        try:
            return await anyio.to_thread.run_sync(functools.partial(func, *args, **kwargs), limiter=self._limiter)
        finally:
            self._admitted -= 1

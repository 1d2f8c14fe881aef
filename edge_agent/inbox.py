"""The inbox between paho's network thread and the decider, bounded by message count *and* payload bytes.

A `queue.Queue(10_000)` of 64 KiB payloads may hold 640 MiB: too much for a hub. `ByteBoundedInbox` is a
drop-in for `queue.Queue[tuple[str, bytes, float, bool]]` (`put/put_nowait/get/get_nowait/qsize/maxsize/empty/
full`, raising `queue.Full` / `queue.Empty`) that also refuses an item while the queued payloads would exceed
`max_bytes`. A blocking `put` (the link's QoS1 back-pressure) waits until both bounds have room or its timeout
passes, exactly as `queue.Queue.put` does; an item larger than `max_bytes` on its own can never fit and is
refused at once (`queue.Full`), never waited on. `wait` lets the consumer block until there is work without
taking an item (the decider pops only while it holds the controller, see `edge_agent.eventpath`); `wake` ends
that wait with no item (work left by another thread).
"""

from __future__ import annotations

import queue
import threading
import time
from collections import deque

Item = tuple[str, bytes, float, bool]  # topic, payload, received (monotonic), retained

DEFAULT_MAX_BYTES = 16 * 1024 * 1024


class ByteBoundedInbox:
    """FIFO of `(topic, payload, received)` bounded by `maxsize` items and `max_bytes` payload+topic bytes."""

    def __init__(self, maxsize: int = 10_000, max_bytes: int = DEFAULT_MAX_BYTES) -> None:
        if maxsize < 1 or max_bytes < 1:
            raise ValueError("ByteBoundedInbox needs maxsize >= 1 and max_bytes >= 1")
        self.maxsize = maxsize
        self.max_bytes = max_bytes
        self._items: deque[Item] = deque()
        self._bytes = 0
        self._waiting = 0  # producers blocked in put (QoS1 back-pressure in action)
        self._woken = False  # `wake()` called since the last `wait()` returned
        self._lock = threading.Lock()
        self._not_empty = threading.Condition(self._lock)
        self._not_full = threading.Condition(self._lock)

    @staticmethod
    def size_of(item: Item) -> int:
        return len(item[1]) + len(item[0])

    # ---- producer ----------------------------------------------------------------------------------------
    def put(self, item: Item, block: bool = True, timeout: float | None = None) -> None:
        n = self.size_of(item)
        with self._not_full:
            if n > self.max_bytes:
                raise queue.Full
            if not self._fits(n):
                if not block:
                    raise queue.Full
                if timeout is not None and timeout < 0:
                    raise ValueError("'timeout' must be a non-negative number")
                end = None if timeout is None else time.monotonic() + timeout
                self._waiting += 1
                try:
                    while not self._fits(n):
                        left = None if end is None else end - time.monotonic()
                        if left is not None and left <= 0:
                            raise queue.Full
                        self._not_full.wait(left)
                finally:
                    self._waiting -= 1
            self._items.append(item)
            self._bytes += n
            self._not_empty.notify()

    def put_nowait(self, item: Item) -> None:
        self.put(item, block=False)

    def _fits(self, n: int) -> bool:
        return len(self._items) < self.maxsize and self._bytes + n <= self.max_bytes

    # ---- consumer ----------------------------------------------------------------------------------------
    def get(self, block: bool = True, timeout: float | None = None) -> Item:
        with self._not_empty:
            if not self._items:
                if not block:
                    raise queue.Empty
                if timeout is None:
                    while not self._items:
                        self._not_empty.wait()
                else:
                    if timeout < 0:
                        raise ValueError("'timeout' must be a non-negative number")
                    end = time.monotonic() + timeout
                    while not self._items:
                        left = end - time.monotonic()
                        if left <= 0:
                            raise queue.Empty
                        self._not_empty.wait(left)
            item = self._items.popleft()
            self._bytes -= self.size_of(item)
            self._not_full.notify_all()  # a freed slot may fit several small waiting items
            return item

    def get_nowait(self) -> Item:
        return self.get(block=False)

    def wait(self, timeout: float) -> bool:
        """Block until an item is queued or `wake()` is called, at most `timeout` seconds; takes nothing.
        True unless it timed out (a spurious wake-up also returns True: the caller just looks)."""
        with self._not_empty:
            if not self._items and not self._woken:
                self._not_empty.wait(timeout)
            ready = bool(self._items) or self._woken
            self._woken = False
            return ready

    def wake(self) -> None:
        """End the consumer's `wait` now, with no item (another thread left it work)."""
        with self._not_empty:
            self._woken = True
            self._not_empty.notify()

    # ---- introspection -----------------------------------------------------------------------------------
    def qsize(self) -> int:
        with self._lock:
            return len(self._items)

    def bytes(self) -> int:
        """Bytes (payload + topic) queued now."""
        with self._lock:
            return self._bytes

    def waiting(self) -> int:
        """Producers blocked in `put` right now."""
        with self._lock:
            return self._waiting

    def empty(self) -> bool:
        return self.qsize() == 0

    def full(self) -> bool:
        with self._lock:
            return len(self._items) >= self.maxsize or self._bytes >= self.max_bytes

"""The event path's gate: who holds the controller, and deciding a sensor event on the thread that received it.

The controller has one owner at a time: `EventGate.lock`. The decider takes it to drain the inbox (it pops
*and* handles messages while holding it, never pops without it), to tick, to sample the load, to explain. While
the decider is idle, paho's network thread may take it, never blocking (a non-blocking acquire), to decide a
sensor event the moment it arrives: no queue hand-off, no wake-up of another thread before the command is
written (`MqttLink.write_now`). Measured with bench/bench_event_path.py, those two hops were most of the
agent's own latency on top of the wire (see the README).

An event is decided inline only when all of these hold, otherwise it goes through the inbox as before:
- its topic is one of `topics` (a sensor topic that feeds a fast channel of the bundle and nothing else: no
  device state, switch, mode, suggestion, retrain or Zigbee2MQTT topic, so a person's change is always the
  decider's, with its hold made durable before anything else);
- the lock is free (the decider is not busy) and the inbox is empty: every older message has been handled,
  so order is kept;
- the previous inline decision's remainder is done (`pending` is empty): under a flood the inbox's batches
  take over and the remainders never pile up.
What is left after the command (the explanation, records, decision payloads) is kept in `pending` and the
decider is woken (`inbox.wake`) to carry it out once the command is on the wire, but not before `hold_seconds`
have passed (`remainder_hold`; sooner if a message arrives, which it handles after the remainder): the command
is still crossing the broker to the device then, and on a busy hub the decider's explanation, records and
payload took the CPU the broker and the device's link needed (measured in bench/bench_event_path.py: ~0.3-0.6
ms of the p50 on two loaded cores). `decide` is the agent's; an exception in it is counted (`on_error`) and the
message is consumed, as the decider's loop would have done.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Generic, TypeVar

from edge_agent.inbox import ByteBoundedInbox, Item

T = TypeVar("T")

HOLD_SECONDS = 0.01  # an inline decision's remainder waits this long (the command's way to the device)


class EventGate(Generic[T]):
    """The controller's lock and the inline event path (`offer`, called on paho's network thread)."""

    def __init__(
        self,
        inbox: ByteBoundedInbox,
        decide: Callable[[Item], T],
        on_error: Callable[[], None],
        *,
        enabled: bool = True,
        hold_seconds: float = HOLD_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.lock = threading.Lock()
        self.inbox = inbox
        self.topics: frozenset[str] = frozenset()  # set by the agent (and again after a bundle swap)
        self.enabled = enabled
        self._decide = decide
        self._on_error = on_error
        self._pending: list[T] = []  # remainders of inline decisions, for the decider
        self.hold_seconds = hold_seconds
        self._clock = clock
        self._due = 0.0  # when the pending remainder is the decider's (`remainder_hold`)
        self.inline = 0  # events decided on the receiving thread
        self.queued = 0  # events of `topics` that went through the inbox (decider busy, queue or remainder)

    def offer(self, item: Item) -> bool:
        """Decide `item` here and now if the gate allows it (True: handled, do not queue it)."""
        if not self.enabled or item[0] not in self.topics:
            return False
        if not self.lock.acquire(blocking=False):
            self.queued += 1
            return False
        try:
            if self._pending or self.inbox.qsize():
                self.queued += 1
                return False
            try:
                out = self._decide(item)
            except Exception:  # counted and logged by the owner; the decider's loop would have lost it too
                self._on_error()
                return True
            self._pending.append(out)
            self._due = self._clock() + self.hold_seconds
            self.inline += 1
        finally:
            self.lock.release()
        self.inbox.wake()  # after the command is written: the decider carries out the remainder
        return True

    def remainder_hold(self) -> float:
        """Seconds the decider lets the pending remainder wait still (0.0: none pending, or due now)."""
        if not self._pending:
            return 0.0
        return max(0.0, self._due - self._clock())

    def take(self) -> list[T]:
        """The inline decisions' remainders, oldest first (the decider, holding `lock`)."""
        out, self._pending = self._pending, []
        return out

    def close(self) -> list[T]:
        """No more inline decisions (waits for one in progress); the remainders left."""
        with self.lock:
            self.enabled = False
            return self.take()

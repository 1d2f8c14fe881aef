"""The event path (issue 21): the inbox's wait/wake, the EventGate's rules (who decides an event, and when it must
go through the queue), and the running agent deciding a motion event on paho's network thread with its
explanation carried out by the decider. Threads are synchronised on events, never on sleeps."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest
from conftest import Broker, EchoDevices, JumpClock, Observer, agent_config_dict, wait_until

from edge_agent.agent import Agent
from edge_agent.config import parse_config
from edge_agent.eventpath import EventGate
from edge_agent.inbox import ByteBoundedInbox, Item

MOTION = "zigbee2mqtt/living_motion"
SET = "zigbee2mqtt/living_light/set"


def item(topic: str = MOTION, payload: bytes = b'{"occupancy": true}') -> Item:
    return (topic, payload, 0.0, False)


# ---- the inbox: wait without taking, wake without an item ---------------------------------------------------
def test_inbox_wait_takes_nothing_and_wake_ends_it() -> None:
    inbox = ByteBoundedInbox(10)
    inbox.put(item())
    assert inbox.wait(5.0) and inbox.qsize() == 1  # an item is there: returns at once, leaves it
    inbox.get_nowait()
    inbox.wake()
    assert inbox.wait(5.0) and inbox.qsize() == 0  # woken with no item
    assert not inbox.wait(0.0)  # the wake was consumed: nothing pending, times out


def test_inbox_wake_from_another_thread_ends_a_blocked_wait() -> None:
    inbox = ByteBoundedInbox(10)
    started, result = threading.Event(), []

    def consumer() -> None:
        started.set()
        result.append(inbox.wait(30.0))

    t = threading.Thread(target=consumer)
    t.start()
    started.wait(5)
    inbox.wake()  # whether the consumer is already blocked or not: the flag is kept until it looks
    t.join(10)
    assert result == [True] and not t.is_alive()


# ---- the gate -----------------------------------------------------------------------------------------------
class Decider:
    def __init__(self, fail: bool = False) -> None:
        self.seen: list[Item] = []
        self.errors = 0
        self.fail = fail

    def decide(self, it: Item) -> str:
        if self.fail:
            raise RuntimeError("boom")
        self.seen.append(it)
        return f"remainder-{len(self.seen)}"

    def on_error(self) -> None:
        self.errors += 1


def gate(d: Decider, inbox: ByteBoundedInbox | None = None) -> EventGate[str]:
    g: EventGate[str] = EventGate(inbox or ByteBoundedInbox(10), d.decide, d.on_error)
    g.topics = frozenset({MOTION})
    return g


def test_gate_decides_an_event_when_idle_and_wakes_the_decider() -> None:
    d, inbox = Decider(), ByteBoundedInbox(10)
    g = gate(d, inbox)
    assert g.offer(item()) is True
    assert d.seen == [item()] and g.inline == 1
    assert inbox.wait(0.0)  # woken for the remainder, with nothing queued
    assert g.take() == ["remainder-1"] and g.take() == []


def test_gate_leaves_other_topics_to_the_queue() -> None:
    d = Decider()
    g = gate(d)
    assert g.offer(item("zigbee2mqtt/living_light", b'{"state": "ON"}')) is False  # a person's change
    assert d.seen == [] and g.inline == 0 and g.queued == 0


def test_gate_never_jumps_the_queue() -> None:
    """An older message still in the inbox: the event goes behind it."""
    d, inbox = Decider(), ByteBoundedInbox(10)
    g = gate(d, inbox)
    inbox.put(item(payload=b'{"occupancy": false}'))
    assert g.offer(item()) is False and d.seen == [] and g.queued == 1


def test_gate_queues_while_the_decider_holds_the_controller() -> None:
    d = Decider()
    g = gate(d)
    holding, release, done = threading.Event(), threading.Event(), threading.Event()

    def decider() -> None:
        with g.lock:
            holding.set()
            release.wait(30)
        done.set()

    t = threading.Thread(target=decider)
    t.start()
    holding.wait(5)
    assert g.offer(item()) is False and g.queued == 1 and d.seen == []  # never waits for the lock
    release.set()
    done.wait(10)
    t.join(10)
    assert g.offer(item()) is True and g.inline == 1


def test_gate_falls_back_while_a_remainder_is_pending_and_counts_errors() -> None:
    d = Decider()
    g = gate(d)
    assert g.offer(item()) is True
    assert g.offer(item()) is False  # the first one's explanation is not carried out yet: a flood batches
    g.take()
    assert g.offer(item()) is True
    bad = Decider(fail=True)
    gb = gate(bad)
    assert gb.offer(item()) is True and bad.errors == 1 and gb.take() == []  # consumed, counted
    assert gb.close() == [] and gb.offer(item()) is False  # closed: nothing decided inline any more


def test_the_remainder_is_held_while_the_command_travels() -> None:
    """`remainder_hold`: the decider lets an inline decision's remainder wait `hold_seconds` (a fake clock)."""
    now = [100.0]
    d, inbox = Decider(), ByteBoundedInbox(10)
    g: EventGate[str] = EventGate(inbox, d.decide, d.on_error, hold_seconds=0.01, clock=lambda: now[0])
    g.topics = frozenset({MOTION})
    assert g.remainder_hold() == 0.0  # nothing pending
    assert g.offer(item()) is True and inbox.wait(0.0)  # the decider is woken at once, to wait the hold
    assert g.remainder_hold() == pytest.approx(0.01)
    now[0] += 0.004
    assert g.remainder_hold() == pytest.approx(0.006)
    now[0] += 0.01
    assert g.remainder_hold() == 0.0  # due
    assert g.take() == ["remainder-1"] and g.remainder_hold() == 0.0


# ---- the running agent --------------------------------------------------------------------------------------
@pytest.mark.integration
def test_agent_decides_an_event_on_the_mqtt_thread_and_explains_it_after(
    bundle_path: Path, broker: Broker, observer: Observer, devices: EchoDevices, tmp_path: Path
) -> None:
    cfg = parse_config(
        agent_config_dict(bundle_path, broker.port, tmp_path / "s", decision_tick_seconds=3600)
    )
    clock = JumpClock()
    agent = Agent(cfg, clock=clock)
    threads: list[tuple[str, bytes]] = []
    send = agent.link.send_command

    def send_(topic: str, payload: bytes, *a: Any, **k: Any) -> str:
        threads.append((threading.current_thread().name, payload))
        return send(topic, payload, *a, **k)

    agent.link.send_command = send_  # type: ignore[method-assign]
    assert MOTION in agent.gate.topics and "zigbee2mqtt/hall_door" in agent.gate.topics
    assert not agent.gate.topics & {"zigbee2mqtt/living_light", "zigbee2mqtt/living_climate"}  # state / slow
    agent.start()
    try:
        assert agent.link.wait_connected(5)
        wait_until(lambda: agent.devices[0].tracker.reported == 0.0)
        # the decider busy (holding the controller): the event goes through the queue, decided by the decider
        with agent.gate.lock:
            observer.publish(MOTION, {"occupancy": True, "illuminance": 5})
            wait_until(lambda: agent.inbox.qsize() == 1)
        assert wait_until(lambda: observer.on(SET)) == [{"state": "ON"}]
        assert agent.gate.queued == 1 and threads[-1] == ("decider", b'{"state":"ON"}')
        wait_until(lambda: agent.devices[0].tracker.reported == 1.0)  # the echo
        # the decider idle: decided on paho's thread, the explanation published by the decider afterwards.
        # (The decider takes the controller briefly every poll and for stats: an event that meets it is queued,
        # rightly; then the next toggle is tried.)
        for i in range(6):
            inline, n_set = agent.gate.inline, len(observer.on(SET))
            clock.jump(120.0)  # the next step of the window (within a step, motion keeps its max)
            want = i % 2 == 1
            observer.publish(MOTION, {"occupancy": want, "illuminance": 5})
            state = "ON" if want else "OFF"
            assert wait_until(lambda n=n_set: observer.on(SET)[n:])[0] == {"state": state}
            wait_until(lambda w=want: agent.devices[0].tracker.reported == float(w))  # the echo
            if agent.gate.inline > inline:
                break
        assert agent.gate.inline > inline
        name, payload = threads[-1]
        assert name != "decider" and payload == f'{{"state":"{state}"}}'.encode()
        dec = wait_until(
            lambda: [
                x
                for x in observer.on("edge-agent/t1/decision/living.light")
                if x["sent"] and x["value"] == float(want)
            ]
        )
        assert dec[0]["trigger"].startswith("event:living.motion")
        stats = wait_until(lambda: [s for s in observer.on("edge-agent/t1/stats") if s["events_inline"] >= 1])
        assert stats[-1]["errors"] == 0
    finally:
        agent.stop()


def test_write_now_only_on_pahos_thread_and_never_under_on_publish() -> None:
    """Inside on_message paho holds its callback mutex; a QoS0 packet's on_publish would take it again."""
    from test_mqtt_link_unit import FakeClient, Msg

    from edge_agent.config import BrokerSettings
    from edge_agent.mqtt import MqttLink

    link = MqttLink(
        BrokerSettings(host="127.0.0.1", port=1), "c", "w", ByteBoundedInbox(10), client_factory=FakeClient
    )
    seen: list[Any] = []
    link.client.loop_write = lambda: seen.append(link.client.on_publish)
    assert link.write_now() is False and seen == []  # not paho's thread: paho's writes are not thread-safe
    link.inline = lambda it: link.write_now()
    link._on_message(None, None, Msg(MOTION, b"{}"))  # type: ignore[arg-type]
    assert seen == [None] and link.client.on_publish is not None  # off for the write, back after
    assert link.inbox.qsize() == 0  # decided there: not queued

"""`SimHomeDriver`: runs the simulated home live against an MQTT broker, as Zigbee2MQTT would.

A thread advances the home on a sim clock (`sim = start + (monotonic - t0) * speed`, shared through
`clock()`), publishes the sensors' messages (`stream`), applies `/set` commands (and echoes the new
state on the state topic, as Z2M does) and plays the person (`person`): they change back a controller's
command that disagrees with their preference, and, with `manual_operation`, operate devices themselves.
A state message not caused by a `/set` is a manual change. paho-mqtt 2 runs its network loop in its own
thread and reconnects by itself after a broker restart (subscriptions are renewed in `on_connect`).
"""

from __future__ import annotations

import datetime as dt
import logging
import math
import queue
import threading
import time
from collections import Counter
from collections.abc import Callable

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from simhome.home import SimHome
from simhome.layout import BASE_TOPIC, DEFAULT_TIMEZONE, DEVICE_NAMES, topology
from simhome.person import Person
from simhome.stream import Message, Z2MStream, decode_command, device_state

log = logging.getLogger(__name__)


class SimHomeDriver:
    """The simulated home on a broker. `start()`, then read `stats()`; `stop()` when done."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 1883,
        *,
        speed: float = 60.0,
        seed: int = 0,
        start: dt.datetime | None = None,
        clock: Callable[[], float] | None = None,
        overrides: bool = True,
        manual_operation: bool = True,
        n_occupants: int = 1,
        dropouts: bool = True,
        base_topic: str = BASE_TOPIC,
        timezone: str = DEFAULT_TIMEZONE,
        max_step: float = 5.0,
        tick: float = 0.02,
        client_id: str | None = None,
    ):
        if speed <= 0:
            raise ValueError(f"speed must be > 0 (got {speed})")
        from zoneinfo import ZoneInfo

        start = start or dt.datetime.now(ZoneInfo(timezone))
        self.host, self.port, self.speed = host, port, float(speed)
        self.home = SimHome(seed, start, n_occupants, timezone=timezone, dropouts=dropouts)
        self.topo = topology(base_topic, timezone)
        self.stream = Z2MStream(self.topo, seed)
        self.person = Person(seed=seed, overrides=overrides, manual_operation=manual_operation)
        self._start_ts = start.timestamp()
        self._external_clock = clock
        self._t0: float | None = None
        self.max_step, self.tick = float(max_step), float(tick)
        self.source = dict.fromkeys(DEVICE_NAMES, "person")  # who set each device's current state
        self.commands: Counter[str] = Counter()
        self.published = self.dropped = self.bad_commands = self.connects = 0
        self._agree = {d: [0, 0] for d in DEVICE_NAMES}  # device -> [agreeing samples, samples]
        self._minute: int | None = None
        self._cmds: queue.SimpleQueue[tuple[str, bytes]] = queue.SimpleQueue()
        self._lock = threading.RLock()
        self._stop = threading.Event()
        self.connected = threading.Event()
        self._thread: threading.Thread | None = None
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=client_id or f"simhome-{seed}-{id(self):x}"
        )
        self.client.reconnect_delay_set(min_delay=0.2, max_delay=2)
        self.client.will_set(f"{base_topic}/bridge/state", '{"state":"offline"}', qos=1, retain=True)
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_message = self._on_message

    # ------------------------------------------------------------------ clock and lifecycle
    def clock(self) -> float:
        """Sim time now, UTC epoch seconds (share it with the agent)."""
        if self._external_clock is not None:
            return float(self._external_clock())
        if self._t0 is None:
            return self._start_ts
        return self._start_ts + (time.monotonic() - self._t0) * self.speed

    def start(self) -> None:
        self.home.step(0.0)  # warm the home up (two simulated days) before the clock runs
        self._t0 = time.monotonic()
        self.client.connect_async(self.host, self.port, keepalive=15)
        self.client.loop_start()
        self._thread = threading.Thread(target=self._run, name="simhome-driver", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        if self.connected.is_set():
            for m in self.stream.availability():
                self.client.publish(m.topic, '{"state":"offline"}', qos=1, retain=True)
            self.client.publish(
                f"{self.topo.base_topic}/bridge/state", '{"state":"offline"}', qos=1, retain=True
            )
        self.client.disconnect()
        self.client.loop_stop()

    def wait_connected(self, timeout: float = 5.0) -> bool:
        return self.connected.wait(timeout)

    # ------------------------------------------------------------------ MQTT callbacks (paho thread)
    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:
        if reason_code.is_failure:
            log.warning("broker %s:%s refused the connection: %s", self.host, self.port, reason_code)
            return
        self.connects += 1
        for d in self.topo.devices:
            client.subscribe(d.command_topic, qos=1)
        client.publish(f"{self.topo.base_topic}/bridge/state", '{"state":"online"}', qos=1, retain=True)
        for m in self.stream.availability():
            client.publish(m.topic, m.encode(), qos=1, retain=True)
        with self._lock:  # Z2M re-sends cached device states on start
            for d in self.topo.devices:
                self._publish(self._state_message(d.name))
        self.connected.set()
        log.info("simulated home connected to %s:%s", self.host, self.port)

    def _on_disconnect(self, client, userdata, flags, reason_code, properties) -> None:
        self.connected.clear()
        if not self._stop.is_set():
            log.warning("simulated home lost the broker (%s); reconnecting", reason_code)

    def _on_message(self, client, userdata, msg) -> None:
        self._cmds.put((msg.topic, bytes(msg.payload)))

    # ------------------------------------------------------------------ simulation thread
    def _publish(self, m: Message) -> None:
        info = self.client.publish(m.topic, m.encode(), qos=0, retain=m.retain)
        if info.rc == mqtt.MQTT_ERR_SUCCESS:
            self.published += 1
        else:
            self.dropped += 1

    def _state_message(self, device: str) -> Message:
        local = float(self.home.state.temp[0]) if device == "living.heating" else None
        return device_state(self.topo.device(device), self.home.device(device), local)

    def _apply_commands(self) -> None:
        while True:
            try:
                topic, raw = self._cmds.get_nowait()
            except queue.Empty:
                return
            try:
                dev = next(d for d in self.topo.devices if d.command_topic == topic)
                dev, value = decode_command(self.topo, topic, raw, self.home.device(dev.name))
            except (ValueError, StopIteration) as e:
                self.bad_commands += 1
                log.warning("ignored command: %s", e)
                continue
            self.home.set_device(dev.name, value)
            self.commands[dev.name] += 1
            self.source[dev.name] = "controller"
            self.person.pending.pop(dev.name, None)
            self._publish(self._state_message(dev.name))  # the echo of a /set

    def _person_and_agreement(self) -> None:
        now = self.home.now
        pref = self.home.preferred()
        minute = math.floor(now / 60.0)
        sample = minute != self._minute
        self._minute = minute
        for d in DEVICE_NAMES:
            actual = self.home.device(d)
            if sample:
                kind = self.person.pref.differs
                agree = not kind(self.topo.device(d).kind, actual, pref[d])
                self._agree[d][0] += int(agree)
                self._agree[d][1] += 1
            present, awake = self.home.presence(d)
            v = self.person.tick(now, d, actual, pref[d], present, awake, self.source[d])
            if v is not None:
                self.home.set_device(d, v)
                self.source[d] = "person"
                self._publish(self._state_message(d))  # a manual change: no /set caused it

    def _advance(self, target: float) -> None:
        for _ in range(200):  # bounded catch-up per loop, so commands are served
            gap = target - self.home.now
            if gap < 1e-3:
                return
            self.home.step(min(self.max_step, gap))
            if self.connected.is_set():  # offline, sensors' reports would be lost: report once back
                for m in self.stream.poll(self.home.now, self.home.readings()):
                    self._publish(m)
            self._person_and_agreement()

    def _run(self) -> None:
        while not self._stop.is_set():
            with self._lock:
                self._apply_commands()
                self._advance(self.clock())
            self._stop.wait(self.tick)

    # ------------------------------------------------------------------ observers (any thread)
    def preferred_state(self, device: str) -> float:
        with self._lock:
            return self.home.preferred()[device]

    def device_state(self, device: str) -> float:
        with self._lock:
            return self.home.device(device)

    def stats(self) -> dict:
        with self._lock:
            agree = {d: (a / n if n else None) for d, (a, n) in self._agree.items()}
            total = sum(n for _, n in self._agree.values())
            return {
                "sim_time": self.home.now_local().isoformat(timespec="seconds"),
                "connected": self.connected.is_set(),
                "connects": self.connects,
                "published": self.published,
                "dropped": self.dropped,
                "commands": dict(self.commands),
                "bad_commands": self.bad_commands,
                "overrides": dict(self.person.override_count),
                "manual_changes": dict(self.person.manual_count),
                "agreement": agree,
                "agreement_all": (sum(a for a, _ in self._agree.values()) / total) if total else None,
                "devices": {d: self.home.device(d) for d in DEVICE_NAMES},
                "preferred": self.home.preferred(),
            }

"""SimHomeDriver against a real mosquitto on a free port: sensor messages, /set -> state echo, reconnect."""

from __future__ import annotations

import datetime as dt
import json
import threading
import time
from zoneinfo import ZoneInfo

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from simhome import SimHomeDriver

TZ = ZoneInfo("Europe/Brussels")


class Listener:
    def __init__(self, port: int):
        self.msgs: list[tuple[str, bytes]] = []
        self.cond = threading.Condition()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="test-listener")
        self.client.on_connect = lambda c, *a: c.subscribe("zigbee2mqtt/#", qos=1)
        self.client.on_message = self._on_message
        self.client.reconnect_delay_set(0.1, 1)
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()

    def _on_message(self, client, userdata, msg):
        with self.cond:
            self.msgs.append((msg.topic, bytes(msg.payload)))
            self.cond.notify_all()

    def wait_for(self, pred, timeout: float = 10.0, since: int = 0):
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                for topic, raw in self.msgs[since:]:
                    if pred(topic, raw):
                        return topic, json.loads(raw)
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                self.cond.wait(left)

    def close(self):
        self.client.loop_stop()
        self.client.disconnect()


@pytest.mark.integration
def test_driver_streams_applies_commands_and_reconnects(broker):
    listener = Listener(broker.port)
    start = dt.datetime(2022, 12, 5, 18, 0, tzinfo=TZ)
    drv = SimHomeDriver("127.0.0.1", broker.port, speed=600, seed=1, start=start, manual_operation=False)
    try:
        drv.start()
        assert drv.wait_connected(5)
        got = listener.wait_for(lambda t, r: t == "zigbee2mqtt/living_climate")
        assert got is not None and {"temperature", "humidity", "co2"} <= set(got[1])
        assert listener.wait_for(lambda t, r: t == "zigbee2mqtt/house_meter") is not None
        assert drv.clock() > start.timestamp()
        # a /set command changes the device and is echoed on its state topic, like Z2M
        mark = len(listener.msgs)
        listener.client.publish("zigbee2mqtt/bedroom_fan/set", json.dumps({"fan_mode": "high"}), qos=1)
        echo = listener.wait_for(lambda t, r: t == "zigbee2mqtt/bedroom_fan", since=mark)
        assert echo is not None and echo[1] == {"fan_mode": "high"}
        assert drv.device_state("bedroom.fan") == 3.0
        listener.client.publish("zigbee2mqtt/living_light/set", b"not json", qos=1)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and drv.stats()["bad_commands"] < 1:
            time.sleep(0.02)
        stats = drv.stats()
        assert stats["commands"] == {"bedroom.fan": 1} and stats["bad_commands"] == 1
        assert drv.preferred_state("bedroom.fan") in (0.0, 1.0, 2.0, 3.0)
        # broker restart: the driver reconnects, resubscribes and keeps publishing
        broker.stop()
        broker.start()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and drv.stats()["connects"] < 2:
            time.sleep(0.05)
        assert drv.stats()["connects"] == 2
        mark = len(listener.msgs)
        assert listener.wait_for(lambda t, r: t == "zigbee2mqtt/house_meter", since=mark) is not None
        listener.client.publish(
            "zigbee2mqtt/living_thermostat/set", b'{"occupied_heating_setpoint": 22}', qos=1
        )
        echo = listener.wait_for(lambda t, r: t == "zigbee2mqtt/living_thermostat" and b"22" in r, since=mark)
        assert echo is not None and echo[1]["occupied_heating_setpoint"] == 22.0
    finally:
        drv.stop()
        listener.close()

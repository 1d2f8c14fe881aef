"""`edge-agent discover`: propose a config from Zigbee2MQTT's retained `bridge/devices` (edge_agent.zigbee2mqtt).

    edge-agent discover --broker HOST:PORT [--base-topic zigbee2mqtt] [--write config.yaml] [--force]
                        [--include-diagnostic] [--timeout 5] [--from-file bridge_devices.json]

Prints the proposed YAML (or writes it; an existing file is kept unless --force). The proposal is validated
with the agent's own config loader before it is shown. Bad input (no broker, no retained device list,
malformed payload, unwritable file) is one line on stderr and exit 2.
"""

from __future__ import annotations

import argparse
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from edge_agent.cli_common import fail


def add_parsers(sub: Any) -> dict[str, Callable[[argparse.Namespace], int]]:
    d = sub.add_parser("discover", help="propose a config from Zigbee2MQTT's device list (bridge/devices)")
    d.add_argument(
        "--broker", default="127.0.0.1:1883", help="MQTT broker HOST:PORT (default 127.0.0.1:1883)"
    )
    d.add_argument(
        "--base-topic", default="zigbee2mqtt", help="Zigbee2MQTT's base topic (default zigbee2mqtt)"
    )
    d.add_argument("--write", help="write the proposed config to this file (default: print it)")
    d.add_argument("--force", action="store_true", help="overwrite the --write file if it exists")
    d.add_argument(
        "--include-diagnostic", action="store_true", help="also propose battery, link quality, ... channels"
    )
    d.add_argument("--timeout", type=float, default=5.0, help="seconds to wait for the retained device list")
    d.add_argument("--username", help="broker user name (the password from --password-file)")
    d.add_argument("--password-file", help="file holding the broker password")
    d.add_argument("--from-file", help="read a saved bridge/devices JSON instead of the broker")
    return {"discover": cmd_discover}


def parse_broker(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep:
        host, port = text, "1883"
    host = host.strip("[]")
    if not host or not port.isdigit() or not 1 <= int(port) <= 65535:
        raise ValueError(f"--broker {text!r}: write HOST:PORT, e.g. 192.168.1.10:1883")
    return host, int(port)


def read_retained(
    host: str, port: int, topic: str, timeout: float, username: str | None = None, password: str | None = None
) -> bytes:
    """The retained payload on `topic` (ConnectionError / TimeoutError with the fix)."""
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion

    got: list[bytes] = []
    done = threading.Event()
    refused: list[str] = []
    client = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv311)
    if username:
        client.username_pw_set(username, password)

    def on_connect(c: Any, _u: Any, _f: Any, reason: Any, _p: Any = None) -> None:
        if getattr(reason, "is_failure", False):
            refused.append(str(reason))
            done.set()
        else:
            c.subscribe(topic, qos=1)

    def on_message(_c: Any, _u: Any, msg: Any) -> None:
        if msg.topic == topic:
            got.append(bytes(msg.payload))
            done.set()

    client.on_connect = on_connect
    client.on_message = on_message
    try:
        client.connect(host, port, keepalive=30)
    except OSError as e:
        raise ConnectionError(
            f"cannot reach the broker at {host}:{port} ({e.strerror or e}); check --broker and that it runs"
        ) from None
    client.loop_start()
    try:
        done.wait(timeout)
    finally:
        client.disconnect()
        client.loop_stop()
    if refused:
        raise ConnectionError(
            f"the broker at {host}:{port} refused the connection ({refused[0]}); check --username"
        )
    if not got:
        raise TimeoutError(
            f"no retained {topic} within {timeout:g}s; is Zigbee2MQTT running on this broker, and is its base "
            "topic right (--base-topic)?"
        )
    return got[0]


def cmd_discover(args: argparse.Namespace) -> int:
    import yaml

    from edge_agent.config import ConfigError, parse_config
    from edge_agent.zigbee2mqtt import Z2mError, parse_bridge_devices, propose, render_yaml

    try:
        host, port = parse_broker(args.broker)
    except ValueError as e:
        return fail(str(e))
    base = args.base_topic.strip("/") or "zigbee2mqtt"
    topic = f"{base}/bridge/devices"
    if args.write and Path(args.write).exists() and not args.force:
        return fail(f"--write {args.write}: the file exists; pick another name or add --force")
    try:
        if args.from_file:
            payload = Path(args.from_file).read_bytes()
            source = args.from_file
        else:
            password = Path(args.password_file).read_text().strip() if args.password_file else None
            payload = read_retained(host, port, topic, args.timeout, args.username, password)
            source = f"{topic} on {host}:{port}"
        devices = parse_bridge_devices(payload)
    except (OSError, ConnectionError, TimeoutError, Z2mError) as e:
        what = (
            e.strerror if isinstance(e, OSError) and e.strerror and not isinstance(e, ConnectionError) else e
        )
        return fail(str(what))
    proposal = propose(devices, base, include_diagnostic=args.include_diagnostic)
    text = render_yaml(proposal, broker_host=host, broker_port=port, source=source, base_topic=base)
    try:
        parse_config(yaml.safe_load(text), "<proposed config>")
    except ConfigError as e:  # a bug in the proposal, never the user's input: say so plainly
        return fail(f"the proposed config does not validate (please report this):\n{e}")
    summary = (
        f"{len(proposal.channels)} channels and {len(proposal.devices)} devices proposed from "
        f"{proposal.device_count} Zigbee2MQTT devices ({len(proposal.not_used)} not used)"
    )
    if args.write:
        try:
            Path(args.write).write_text(text, encoding="utf-8")
        except OSError as e:
            return fail(f"--write {args.write}: cannot write ({e.strerror}); fix the path or permissions")
        print(f"wrote {args.write}: {summary}; review it, then `edge-agent run --config {args.write}`")
    else:
        sys.stdout.write(text)
        print(f"# {summary}", file=sys.stderr)
    return 0

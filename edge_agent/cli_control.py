"""Command line for the running agent's modes and suggestions: `edge-agent mode` and `edge-agent suggest`.

`edge-agent mode MODE [--device NAME] --config FILE` publishes on `edge-agent/<id>/mode[/<device>]/set`, and
`edge-agent suggest accept|reject DEVICE --config FILE` on `edge-agent/<id>/suggest/<device>/<verb>`: the same
commands Home Assistant's selects and buttons send, so the daemon handles (and persists) them in one place.
Bad input (a mode that does not exist, a device the config lacks) is one line and exit 2; a broker that cannot
be reached is one line and exit 1.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable

from edge_agent.cli_common import EXIT_FAILED, fail
from edge_agent.config import AgentConfig, ConfigError, load_config
from edge_agent.ingest import PayloadError
from edge_agent.modes import MODES, parse_mode


def add_parsers(sub: argparse._SubParsersAction) -> dict[str, Callable[[argparse.Namespace], int]]:
    m = sub.add_parser("mode", help="set the running agent's mode (global or one device); persisted")
    m.add_argument("mode", help=" | ".join(MODES))
    m.add_argument("--device", default=None, help="one configured device (default: the global mode)")
    m.add_argument("--config", required=True, help="YAML config file")
    s = sub.add_parser("suggest", help="accept or reject what the agent suggests for a device")
    s.add_argument("verb", choices=["accept", "reject"])
    s.add_argument("device", help="a configured device")
    s.add_argument("--config", required=True, help="YAML config file")
    return {"mode": cmd_mode, "suggest": cmd_suggest}


def _device_known(cfg: AgentConfig, name: str) -> str | None:
    names = [d.name for d in cfg.devices]
    return None if name in names else f"{name!r} is not a configured device (devices: {', '.join(names)})"


def publish_once(cfg: AgentConfig, topic: str, payload: bytes, timeout: float = 5.0) -> str | None:
    """Publish one QoS1 message with the config's broker settings; None when the broker acknowledged it."""
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion

    b = cfg.broker
    c = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv311)
    if b.username:
        c.username_pw_set(b.username, b.password.get_secret_value() if b.password else None)
    if b.tls is not None:
        t = b.tls
        c.tls_set(
            ca_certs=str(t.ca_file) if t.ca_file else None,
            certfile=str(t.cert_file) if t.cert_file else None,
            keyfile=str(t.key_file) if t.key_file else None,
        )
        if t.tls_insecure:
            c.tls_insecure_set(True)
    try:
        c.connect(b.host, b.port, keepalive=10)
    except OSError as e:
        return f"cannot reach the broker at {b.host}:{b.port} ({e}); is it running? (broker: in the config)"
    c.loop_start()
    try:
        info = c.publish(topic, payload, qos=1)
        info.wait_for_publish(timeout)
        if not info.is_published():
            return f"the broker at {b.host}:{b.port} did not acknowledge {topic} within {timeout:g}s"
    except (RuntimeError, ValueError) as e:
        return f"publishing {topic} failed ({e})"
    finally:
        c.disconnect()
        c.loop_stop()
    return None


def cmd_mode(args: argparse.Namespace) -> int:
    try:
        cfg = load_config(args.config)
        mode = parse_mode(args.mode.encode())
    except (ConfigError, PayloadError) as e:
        return fail(str(e))
    base = f"edge-agent/{cfg.agent_id}/mode"
    if args.device is not None:
        bad = _device_known(cfg, args.device)
        if bad:
            return fail(f"--device: {bad}")
        base = f"{base}/{args.device}"
    err = publish_once(cfg, f"{base}/set", mode.encode())
    if err:
        return fail(err, EXIT_FAILED)
    print(f"{args.device or 'global'} mode -> {mode} (sent on {base}/set)")
    return 0


def cmd_suggest(args: argparse.Namespace) -> int:
    try:
        cfg = load_config(args.config)
    except ConfigError as e:
        return fail(str(e))
    bad = _device_known(cfg, args.device)
    if bad:
        return fail(bad)
    topic = f"edge-agent/{cfg.agent_id}/suggest/{args.device}/{args.verb}"
    err = publish_once(cfg, topic, b"PRESS")
    if err:
        return fail(err, EXIT_FAILED)
    print(f"{args.verb} sent for {args.device} (the agent's log says whether it was carried out)")
    return 0

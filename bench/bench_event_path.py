"""Where the event path's time goes: bench_latency's configuration with the agent in this process, its stages
stamped on the monotonic clock, and a cProfile of the decider thread.

Stages of one motion event (probe publish -> `/set` received by the probe):
  inbox   paho's network thread put the message in the inbox (`received` stamp) -> the decider took it
  decide  the controller's `handle` (ingest, window, tier, policy, decision payloads) -> the command's effects
  send    `_carry_out` start -> the command handed to paho (publish returns)
  write   the command handed to paho -> its bytes written to the socket (paho's network thread)
  after   the command handed to paho -> `_carry_out` done (records, explanations published)
  wire    probe publish -> inbox, plus paho publish -> probe receives (the rest of the total)
Baseline in the same run: the bare paho relay of bench_latency (same broker, same probe). JSON lines; p50/p99
in ms. `PROFILE=1` prints the decider's top functions by cumulative time (stderr).
"""

from __future__ import annotations

import cProfile
import io
import multiprocessing as mp
import os
import pstats
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from _common import Mosquitto, emit, pct
from bench_latency import MOTION, SET, measure, relay

ITER = int(os.environ.get("ITER", 200))


def agent_config(bundle: Path, port: int, state: Path) -> dict[str, Any]:
    dev = {"min_dwell_seconds": 0, "max_commands_per_hour": 1_000_000}
    return {
        "agent_id": "bench",
        "mode": "auto",
        "bundle": str(bundle),
        "state_dir": str(state),
        "log_level": "WARNING",
        "broker": {"host": "127.0.0.1", "port": port},
        "channels": [
            {"topic": MOTION, "channel": "living.motion", "field": "occupancy"},
            {"topic": MOTION, "channel": "living.illuminance", "field": "illuminance"},
        ],
        "devices": [{"name": "living.light", "state_topic": "zigbee2mqtt/living_light", **dev}],
    }


def main() -> None:
    from testbundle import home_bundle

    from edge_agent.agent import Agent
    from edge_agent.config import parse_config

    broker = Mosquitto()
    try:
        with tempfile.TemporaryDirectory() as d:
            p = mp.get_context("spawn").Process(target=relay, args=(broker.port,), daemon=True)
            p.start()
            time.sleep(0.5)
            lat = measure(broker.port)
            p.terminate()
            emit(
                bench="event_path",
                path="bare-paho-relay",
                n=len(lat),
                p50_ms=pct(lat, 50),
                p99_ms=pct(lat, 99),
            )

            bundle = home_bundle(Path(d) / "bundle", step_seconds=0.1)
            agent = Agent(parse_config(agent_config(bundle, broker.port, Path(d) / "s")))
            stamps: dict[str, list[float]] = {k: [] for k in ("inbox", "decide", "send", "write", "after")}
            cur: dict[str, float] = {}
            ctrl, link = agent.controller, agent.link
            handle, carry, send = ctrl.handle, agent._carry_out, link.send_command

            def handle_(batch, now, **kw):  # type: ignore[no-untyped-def]
                t = time.monotonic()
                if batch:
                    cur["recv"], cur["drained"] = batch[0][2], t
                fx = handle(batch, now, **kw)
                cur["decided"] = time.monotonic()
                return fx

            def carry_(fx):  # type: ignore[no-untyped-def]
                cur["carry"] = time.monotonic()
                carry(fx)
                if fx.commands and "sent" in cur:
                    end = time.monotonic()
                    stamps["inbox"].append((cur["drained"] - cur["recv"]) * 1e3)
                    stamps["decide"].append((cur["decided"] - cur["drained"]) * 1e3)
                    stamps["send"].append((cur["sent"] - cur["carry"]) * 1e3)
                    stamps["after"].append((end - cur["sent"]) * 1e3)
                    cur.pop("sent")

            def send_(*a, **kw):  # type: ignore[no-untyped-def]
                t = time.monotonic()
                cur["sent_at"] = t  # before publish: a write from this thread lands inside the call
                r = send(*a, **kw)
                cur["sent"] = time.monotonic()
                return r

            ctrl.handle, agent._carry_out, link.send_command = handle_, carry_, send_  # type: ignore[method-assign]
            set_topic = SET.encode()

            def wrap_sock(real):  # type: ignore[no-untyped-def]
                def sock_send(buf):  # type: ignore[no-untyped-def]
                    n = real(buf)
                    if set_topic in bytes(buf[:64]) and "sent_at" in cur:
                        stamps["write"].append((time.monotonic() - cur.pop("sent_at")) * 1e3)
                    return n

                return sock_send

            link.client._sock_send = wrap_sock(link.client._sock_send)  # type: ignore[method-assign]
            prof = cProfile.Profile() if os.environ.get("PROFILE") else None
            if prof is not None:
                loop = agent._loop

                def profiled() -> None:
                    prof.enable()
                    try:
                        loop()
                    finally:
                        prof.disable()

                agent._thread = threading.Thread(target=profiled, name="decider", daemon=True)
            agent.start()
            agent.ready.wait(10)
            time.sleep(0.5)
            lat = measure(broker.port)
            agent.stop()
            emit(
                bench="event_path",
                path="edge-agent-in-process",
                n=len(lat),
                p50_ms=pct(lat, 50),
                p99_ms=pct(lat, 99),
                stages_p50_ms={k: pct(v, 50) for k, v in stamps.items() if v},
                stages_p99_ms={k: pct(v, 99) for k, v in stamps.items() if v},
                commands=len(stamps["send"]),
            )
            if prof is not None:
                out = io.StringIO()
                pstats.Stats(prof, stream=out).sort_stats("cumulative").print_stats(30)
                print(out.getvalue(), file=sys.stderr)
    finally:
        broker.stop()


if __name__ == "__main__":
    main()

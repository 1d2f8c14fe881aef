"""The agent: wires config, MQTT link, ingest, window, bundle, governor, policy, devices, recorder, publisher.

Threads: paho's network thread (fills the inbox), the decider (drains the inbox, updates the window, decides
on fast-channel events and on the periodic tick, samples CPU and updates the governor each second, publishes
stats), the recorder's writer and the scheduler. Every time comparison uses the injected `clock` (the demo
shares a scaled simulation clock); latency, CPU sampling and the stats cadence use real time.
"""

from __future__ import annotations

import logging
import math
import queue
import threading
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import psutil

from edge_agent.actuate import DeviceRuntime, build_devices
from edge_agent.calendar_features import load_zone
from edge_agent.config import AgentConfig
from edge_agent.focus import AttentionTracker
from edge_agent.governor import Governor
from edge_agent.inference import Bundle
from edge_agent.ingest import Ingestor, LogLimiter, PayloadError
from edge_agent.kinds import FAST_KINDS, stale_limit
from edge_agent.mqtt import MqttLink, subscriptions
from edge_agent.procprio import apply_process_priority
from edge_agent.publish import Publisher
from edge_agent.recorder import Recorder, retention_job
from edge_agent.scheduler import Scheduler
from edge_agent.stats import Counters, LatencyStats, RateMeter, release_free_memory, rss_mb
from edge_agent.tiering import run_tier, select_channels
from edge_agent.window import Window

logger = logging.getLogger(__name__)

DRAIN_MAX = 2000  # messages handled before deciding on the events among them
POLL_SECONDS = 0.02  # real-time wake-up of the decider when idle (ticks follow the possibly scaled clock)
PERSIST_SECONDS = 30.0  # real seconds between saves of the attention tracker and holds
TOP_CHANNELS = 3  # channels (by attention) published with each decision


class Agent:
    """The running controller. `start()`, `stop()`, `snapshot()`."""

    def __init__(
        self, config: AgentConfig, *, clock: Callable[[], float] = time.time, bundle: Bundle | None = None
    ) -> None:
        self.cfg = config
        self.clock = clock
        self.bundle = bundle or Bundle.load(config.bundle, threads=config.process.inference_threads)
        m = self.bundle.manifest
        self.names = [c.name for c in m.channels]
        self.kinds = [c.kind for c in m.channels]
        index = m.channel_index()
        self.index = index
        rules = []
        for i, r in enumerate(config.channels):
            if r.channel in index:
                rules.append(r)
            else:
                logger.warning(
                    "config channels[%d].channel: %r is not in bundle %s; rule ignored (fix the name "
                    "or use a bundle that has it)",
                    i,
                    r.channel,
                    m.version,
                )
        self.ingestor = Ingestor(
            rules,
            dict(zip(self.names, self.kinds, strict=True)),
            config.field_aliases,
            config.max_payload_bytes,
        )
        stale = {r.channel: r.stale_after_seconds for r in rules if r.stale_after_seconds}
        self.window = Window(
            self.names,
            self.kinds,
            m.step_seconds,
            m.window,
            [stale_limit(k, stale.get(n)) for n, k in zip(self.names, self.kinds, strict=True)],
            zone=load_zone(config.timezone),
        )
        self.fast = {i for i, k in enumerate(self.kinds) if k in FAST_KINDS}
        self.devices: list[DeviceRuntime] = build_devices(config, m)
        self.by_state_topic = {d.tracker.cfg.state_topic: d for d in self.devices}
        self.command_topics = {d.tracker.command_topic for d in self.devices}
        self.inbox: queue.Queue[tuple[str, bytes, float]] = queue.Queue(config.queue_size)
        self.publisher_topics = config.topics()
        self.link = MqttLink(
            config.broker,
            f"edge-agent-{config.agent_id}",
            self.publisher_topics["availability"],
            self.inbox,
            clock=clock,
            command_expiry=config.command_expiry_seconds,
        )
        self.link.subscriptions = subscriptions(
            set(self.ingestor.topics()) | set(self.by_state_topic), config.broker.extra_subscriptions
        )
        self.publisher = Publisher(self.link, config.agent_id)
        self.link.on_connect_hooks.append(self.publisher.announce)
        r = config.recorder
        self.recorder = Recorder(
            config.database_url,
            flush_interval=r.flush_interval_seconds,
            batch_rows=r.batch_rows,
            queue_size=r.queue_size,
        )
        p99 = {t.name: t.latency_us_p99 / 1000.0 for t in m.tiers if t.latency_us_p99}
        self.governor = Governor(config.governor, self.bundle.tiers, clock, tier_p99_ms=p99)
        self.tracker = AttentionTracker.from_json(
            self.recorder.get_state("attention_tracker"),
            len(self.names),
            always=sorted(self.fast),
            names=self.names,
        )
        holds = self.recorder.get_state("holds") or {}
        for d in self.devices:
            d.tracker.restore(holds.get(d.name, {}))
        self.scheduler = Scheduler()
        self.scheduler.every(
            r.retention_interval_seconds, retention_job(self.recorder, clock, r.retention_days), "retention"
        )
        self.counters = Counters()
        self.latency = LatencyStats()
        self._rate = RateMeter()
        self._limiter = LogLimiter(60.0)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="decider", daemon=True)
        self._tick_count = 0
        self._started_at = time.monotonic()
        self._cpu: float | None = None
        self._last_stats: dict[str, Any] = {}
        self.first_decision_at: float | None = None  # monotonic, for the cold-start bench
        # Service hooks (issue 18, wired by cli.cmd_run): heartbeat_hooks run once per decider loop iteration
        # (systemd watchdog: a stuck loop stops the pings); `ready` is set on the first broker connect.
        self.heartbeat_hooks: list[Callable[[], None]] = []
        self.ready = threading.Event()
        self.link.on_connect_hooks.append(self.ready.set)

    # ---- lifecycle -------------------------------------------------------------------------------------
    def start(self) -> None:
        proc = self.cfg.process
        if proc.nice is not None or proc.cpu_affinity is not None:
            apply_process_priority(proc.nice, proc.cpu_affinity)
        m = self.bundle.manifest
        self.recorder.add(
            "model_versions",
            {
                "version": m.version,
                "loaded_at": self.clock(),
                "path": str(self.bundle.path),
                "manifest": m.model_dump_json(),
            },
        )
        psutil.cpu_percent(None)  # prime: the first call has no interval to measure
        release_free_memory()
        self.link.start()
        self.scheduler.start()
        self._thread.start()
        logger.info(
            "agent %s started: mode %s, %d channels, %d devices, tier %s, broker %s:%s",
            self.cfg.agent_id,
            self.cfg.mode,
            len(self.names),
            len(self.devices),
            self.governor.tier,
            self.cfg.broker.host,
            self.cfg.broker.port,
        )

    def stop(self, timeout: float = 10.0) -> None:
        """Stop deciding, flush the recorder (all rows written), publish `offline`, disconnect."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout)
        now = self.clock()
        for c in self.window.open_steps():
            self.recorder.add("readings", {"ts": c.ts, "channel": self.names[c.channel], "value": c.value})
        self._persist(now)
        self.scheduler.stop()
        self.link.stop(self.publisher.offline_message())
        self.recorder.close(timeout)
        logger.info("agent %s stopped: %s", self.cfg.agent_id, self.counters.as_dict())

    # ---- the decider thread ----------------------------------------------------------------------------
    def _loop(self) -> None:
        next_tick = self.clock() + self.cfg.decision_tick_seconds
        next_sample = next_stats = next_persist = time.monotonic()
        while not self._stop.is_set():
            try:
                self._step()
                now = self.clock()
                if now >= next_tick:
                    self._tick_count += 1
                    next_tick = now + self.cfg.decision_tick_seconds
                    self.decide(now, "tick", time.monotonic())
                real = time.monotonic()
                if real >= next_sample:
                    next_sample = real + self.cfg.governor.sample_seconds
                    self._govern()
                if real >= next_stats:
                    next_stats = real + self.cfg.stats_interval_seconds
                    self.publisher.stats(self.stats())
                if real >= next_persist:
                    next_persist = real + PERSIST_SECONDS
                    self._persist(now)
                self.link.pump()
                for hook in self.heartbeat_hooks:  # issue 18: systemd watchdog ping (rate-limited)
                    hook()
            except Exception:  # thread boundary: count, log, keep deciding
                self.counters.errors += 1
                if self._limiter.allow("loop", time.monotonic()):
                    logger.exception("decider: unexpected error (loop goes on)")
                time.sleep(0.1)

    def _step(self) -> None:
        """Handle queued messages (up to DRAIN_MAX), then decide once if a fast channel changed."""
        try:
            item = self.inbox.get(timeout=POLL_SECONDS)
        except queue.Empty:
            return
        triggered: set[int] = set()
        t0 = item[2]
        n = 0
        while True:
            ch = self._handle(*item)
            if ch is not None and not triggered:
                t0 = item[2]
            if ch is not None:
                triggered.add(ch)
            n += 1
            if n >= DRAIN_MAX:
                break
            try:
                item = self.inbox.get_nowait()
            except queue.Empty:
                break
        if triggered:
            names = ",".join(self.names[c] for c in sorted(triggered))
            self.decide(self.clock(), f"event:{names}", t0, triggered)

    def _handle(self, topic: str, payload: bytes, _recv: float) -> int | None:
        """One message; returns a fast channel index whose value changed (decision trigger) or None."""
        self.counters.messages += 1
        now = self.clock()
        trigger = None
        dev = self.by_state_topic.get(topic)
        try:
            if dev is not None:
                self._device_state(dev, payload, now)
            if self.ingestor.knows(topic):
                for r in self.ingestor.parse(topic, payload):
                    ch = self.index[r.channel]
                    old = self.window.last_value[ch]
                    closed = self.window.update(ch, r.value, now)
                    self.counters.readings += 1
                    if closed is not None:
                        self.recorder.add(
                            "readings", {"ts": closed.ts, "channel": self.names[ch], "value": closed.value}
                        )
                    if ch in self.fast and old != r.value:
                        trigger = ch
            elif dev is None and topic not in self.command_topics:
                self.counters.unknown_topic += 1
                if self._limiter.allow(f"unknown:{topic}", now):
                    logger.warning(
                        "ingest: message on %s matches no channel rule or device; ignored (add a rule "
                        "under `channels` if it is a sensor)",
                        topic,
                    )
        except PayloadError as e:
            self.counters.invalid += 1
            if self._limiter.allow(f"bad:{topic}", now):
                logger.warning(
                    "ingest: bad payload on %s: %s (fix the sensor or its rule in `channels`; "
                    "logged once a minute per topic)",
                    topic,
                    e,
                )
        return trigger

    def _device_state(self, dev: DeviceRuntime, payload: bytes, now: float) -> None:
        value = dev.tracker.parse_state(payload)
        if value is None:
            return
        ev = dev.tracker.on_state(value, now)
        if ev.kind != "override":
            return
        self.counters.overrides += 1
        dev.policy.note_change(now)
        last = dev.last or {}
        logger.info(
            "override: %s set to %g by a person (agent's value %s); held until %+.0fs",
            dev.name,
            value,
            last.get("value"),
            self.cfg.devices[dev.cfg_index].override_hold_seconds,
        )
        self.recorder.add(
            "overrides",
            {
                "ts": now,
                "device": dev.name,
                "value": value,
                "previous": ev.previous,
                "agent_target": last.get("value"),
                "agent_output": last.get("output"),
                "decision_ts": last.get("time"),
                "model_version": self.bundle.version,
                "hold_until": dev.tracker.held_until,
            },
        )
        self._persist_holds(now)

    # ---- decisions -------------------------------------------------------------------------------------
    def decide(self, now: float, trigger: str, t0: float, triggered: set[int] | None = None) -> None:
        """Run the current tier on the window and apply the policy to every device not `off`."""
        active = [d for d in self.devices if self.cfg.device_mode(self.cfg.devices[d.cfg_index]) != "off"]
        if not active:
            return
        tier = self.bundle.tier(self.governor.tier)
        if trigger == "tick" and self._tick_count % tier.every_n_ticks != 0:
            return  # sparse tier: decisions held between its ticks
        x, mask = self.window.snapshot(now)  # [C, W], [C]
        sensors_live = bool(mask[[i for i, k in enumerate(self.kinds) if k != "calendar"]].any())
        ids = select_channels(tier, len(self.names), self.tracker, triggered or ())
        out = run_tier(self.bundle, tier, x, mask, ids)
        self.tracker.update(out.attention, ids)
        model_ms = (time.monotonic() - t0) * 1000.0  # message received -> model output
        for d in active:
            self._apply(d, out, ids, mask, sensors_live, now, tier.name, trigger, model_ms)
        ms = (time.monotonic() - t0) * 1000.0
        self.latency.add(ms)
        self.governor.observe(latency_ms=ms)
        self.counters.decisions += 1
        if self.first_decision_at is None:
            self.first_decision_at = time.monotonic()

    def _apply(
        self,
        d: DeviceRuntime,
        out: Any,
        ids: np.ndarray,
        mask: np.ndarray,
        sensors_live: bool,
        now: float,
        tier: str,
        trigger: str,
        model_ms: float,
    ) -> None:
        dcfg = self.cfg.devices[d.cfg_index]
        mode = self.cfg.device_mode(dcfg)
        output = float(out.devices[d.index])
        fresh = sensors_live and all(
            c in self.index and mask[self.index[c]] > 0 for c in dcfg.required_channels
        )
        current = d.tracker.reported if d.tracker.reported is not None else d.last_target
        res = d.policy.decide(
            output, now, current=current, basis_fresh=fresh, held_until=d.tracker.held_until
        )
        if res.reason == "stale":
            self.counters.skipped_stale += 1
        sent = False
        if res.send and mode == "auto":
            payload = d.tracker.command_bytes(res.target)
            topic = d.tracker.command_topic

            def _done(
                status: str, _d: DeviceRuntime = d, _p: bytes = payload, _v: float = res.target
            ) -> None:
                self.recorder.add(
                    "commands",
                    {
                        "ts": self.clock(),
                        "device": _d.name,
                        "topic": topic,
                        "payload": _p.decode(),
                        "value": _v,
                        "status": status,
                    },
                )

            status = self.link.send_command(topic, payload, now, on_done=_done)
            if status != "dropped-disconnected":
                d.policy.note_sent(now)
                d.tracker.note_command(res.target, now)
                d.last_target = res.target
                self.counters.commands += 1
                sent = True
        weights = out.attention[d.index]  # [C_fed]
        top = np.argsort(-weights)[:TOP_CHANNELS]
        top_list = [[self.names[int(ids[j])], round(float(weights[j]), 4)] for j in top if weights[j] > 0]
        held = d.tracker.held(now)
        payload_d = {
            "time": now,
            "device": d.name,
            "value": res.target,
            "output": round(output, 4),
            "confidence": round(float(out.confidence[d.index]), 4),
            "tier": tier,
            "mode": mode,
            "sent": sent,
            "reason": res.reason,
            "trigger": trigger,
            "top": top_list,
            "held": held,
            "held_until": d.tracker.held_until if held else None,
            "model_version": self.bundle.version,
        }
        d.last = payload_d
        self.recorder.add(
            "decisions",
            {
                "ts": now,
                "device": d.name,
                "output": output,
                "target": res.target,
                "confidence": payload_d["confidence"],
                "sent": sent,
                "reason": res.reason,
                "mode": mode,
                "tier": tier,
                "trigger": trigger[:160],
                "model_version": self.bundle.version,
                "latency_ms": round(model_ms, 3),
                "attention": _dumps(top_list),
            },
        )
        if self.cfg.publish_decisions:
            self.publisher.decision(d.name, payload_d)

    # ---- governor, stats, persistence ------------------------------------------------------------------
    def _govern(self) -> None:
        self._cpu = psutil.cpu_percent(None)
        self.governor.observe(cpu_percent=self._cpu, queue_depth=self.inbox.qsize())
        change = self.governor.update()
        if change is None:
            return
        self.recorder.add(
            "tier_changes",
            {
                "ts": change.at,
                "old": change.old,
                "new": change.new,
                "reason": change.reason,
                "signal": change.signal,
                "value": change.value,
            },
        )
        self.publisher.stats(self.stats())

    def stats(self) -> dict[str, Any]:
        p50, p99 = self.latency.percentiles()
        lc = self.link.counters
        s = {
            "time": self.clock(),
            "agent_id": self.cfg.agent_id,
            "uptime_s": round(time.monotonic() - self._started_at, 1),
            "connected": self.link.connected.is_set(),
            "mode": self.cfg.mode,
            "model_version": self.bundle.version,
            "tier": self.governor.tier,
            "msgs_per_s": self._rate.rate(lc.received),
            "received": lc.received,
            "dropped": lc.dropped,
            "queue_depth": self.inbox.qsize(),
            "latency_ms_p50": p50,
            "latency_ms_p99": p99,
            "cpu_percent": self._cpu,
            "rss_mb": rss_mb(),
            "commands_sent": lc.commands_sent,
            "commands_expired": lc.commands_expired,
            "commands_disconnected": lc.commands_disconnected,
            "recorder_dropped": self.recorder.dropped,
            "reconnects": max(0, lc.connects - 1),
            "governor": self.governor.state(),
            **self.counters.as_dict(),
        }
        self._last_stats = s
        return s

    def _persist_holds(self, now: float) -> None:
        self.recorder.set_state("holds", {d.name: d.tracker.state() for d in self.devices}, now)

    def _persist(self, now: float) -> None:
        self.recorder.set_state("attention_tracker", self.tracker.to_json(), now)
        self._persist_holds(now)

    def snapshot(self) -> dict[str, Any]:
        """State for a live view: devices (state, last decision, mode, hold), tier, counters."""
        now = self.clock()
        devs = {}
        for d in self.devices:
            held = d.tracker.held(now)
            devs[d.name] = {
                "state": d.tracker.reported,
                "mode": self.cfg.device_mode(self.cfg.devices[d.cfg_index]),
                "held_until": d.tracker.held_until if held else None,
                "last_decision": d.last,
                "top": (d.last or {}).get("top", []),
            }
        return {
            "time": now,
            "agent_id": self.cfg.agent_id,
            "tier": self.governor.tier,
            "connected": self.link.connected.is_set(),
            "model_version": self.bundle.version,
            "devices": devs,
            "counters": self.counters.as_dict(),
            "link": vars(self.link.counters).copy(),
            "governor": self.governor.state(),
        }


def _dumps(obj: Any) -> str:
    import json

    return json.dumps(
        obj, separators=(",", ":"), default=lambda v: None if isinstance(v, float) and math.isnan(v) else v
    )

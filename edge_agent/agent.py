"""The runtime: owns the threads, the MQTT link, the recorder, the publisher and the scheduler around the
pure `Controller`, and carries out the effects it returns.

Threads: paho's network thread (fills the inbox; while the decider is idle it decides a sensor event itself,
through `edge_agent.eventpath.EventGate`, and leaves the explanation to the decider), the decider (drains the
inbox into the controller, runs its tick, samples CPU for the governor, publishes stats, pumps commands), the
recorder's writer and the scheduler. The controller is touched only under the gate's lock. The controller's
time is the injected `clock` (the demo shares a scaled simulation clock); latency, CPU sampling and the stats
cadence use real time. No error path sleeps the decider.
"""

from __future__ import annotations

import logging
import queue
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

import psutil

from edge_agent.bundlestore import BundleWatcher
from edge_agent.config import AgentConfig
from edge_agent.controller import Controller, Message, command_record
from edge_agent.devices import DeviceRuntime, build_devices
from edge_agent.effects import Command, CommandRecord, Effects, StateRecord
from edge_agent.eventpath import EventGate
from edge_agent.focus import AttentionTracker
from edge_agent.governor import Governor
from edge_agent.inbox import ByteBoundedInbox, Item
from edge_agent.inference import Bundle
from edge_agent.ingest import LogLimiter
from edge_agent.mqtt import MqttLink, subscriptions
from edge_agent.procprio import apply_process_priority
from edge_agent.publish import Publisher
from edge_agent.recorder import Recorder, retention_job
from edge_agent.retrain_service import RetrainService, retrain_topics
from edge_agent.scheduler import Scheduler
from edge_agent.shadow_report import ShadowScoreJob
from edge_agent.statelock import StateLock
from edge_agent.stats import Counters, RateMeter, release_free_memory, rss_mb

logger = logging.getLogger(__name__)

DRAIN_MAX = 2000  # messages handed to the controller before it decides on the events among them
POLL_SECONDS = (
    0.02  # the decider's wake-up when idle on a simulated clock, or with commands waiting to go out
)
# On the real clock the idle decider sleeps until its next due work (tick, load sample, stats, persist), at most
# this long: every wake-up takes the controller's lock and the GIL, and an event that arrives meanwhile waits
# for it (measured in bench/bench_latency.py --load busy: the tail under load)
IDLE_SECONDS = 0.25
# The GIL hand-off: a thread that wants it (paho's, with a sensor event) waits at most this long for a thread
# running Python (the recorder's batch insert, the decider's explanations); CPython's default is 5 ms.
SWITCH_INTERVAL_SECONDS = 0.001
PERSIST_SECONDS = 30.0  # real seconds between saves of the attention tracker and holds
DURABLE_WAIT_SECONDS = 2.0
BURST_MESSAGES = 500  # a batch this big means a flood: trim the heap once it is over
TRIM_EVERY_SECONDS = 5.0  # longest wait for a person's hold to be committed before going on
WATCH_SECONDS = 5.0  # how often the store's `current` is checked for a new bundle (no bundle: in config)
Carried = tuple[Effects, int]  # effects whose commands are out, and how many of their records are written


def merge_holds(saved: dict[str, Any], from_overrides: dict[str, float]) -> dict[str, Any]:
    """The saved hold state, with every still-running override hold added (the later end wins)."""
    out = {k: dict(v) for k, v in saved.items() if isinstance(v, dict)}
    for device, until in from_overrides.items():
        have = out.setdefault(device, {}).get("held_until")
        if not isinstance(have, int | float) or have < until:
            out[device]["held_until"] = until
    return out


class Agent:
    """The running service. `start()`, `stop()`, `stats()`, `snapshot()`; `swap_bundle()` between decisions."""

    def __init__(
        self,
        config: AgentConfig,
        *,
        clock: Callable[[], float] = time.time,
        bundle: Bundle | None = None,
        steady: Callable[[], float] | None = None,
    ) -> None:
        self.cfg = config
        self.clock = clock
        # staleness, ticks, the governor: on a steady clock that a wall-clock step cannot move (a scaled
        # simulation clock is its own steady clock)
        self.steady = steady or (time.monotonic if clock is time.time else clock)
        if bundle is None:
            path = config.bundle_path()
            if path is not None:
                bundle = Bundle.load(path, threads=config.process.inference_threads)
            else:
                logger.info(
                    "no model yet (no bundle: and nothing in %s): observing — every configured channel and "
                    "device change is recorded; train a first model with `edge-agent train`",
                    config.bundle_store,
                )
        r = config.recorder
        self.recorder = Recorder(
            config.database_url,
            flush_interval=r.flush_interval_seconds,
            batch_rows=r.batch_rows,
            queue_size=r.queue_size,
        )
        keys = ("attention_tracker", "holds", "switches", "modes", "ha_components")
        state = {k: self.recorder.get_state(k) for k in keys}
        state["holds"] = merge_holds(state.get("holds") or {}, self.recorder.override_holds(clock()))
        state["label_counts"] = self.recorder.label_counts()
        self.controller = Controller(config, bundle, now=clock(), mono=self.steady(), state=state)
        self.controller.defer_explanations = True  # commands first (`_carry_out`), explanations after
        self.inbox = ByteBoundedInbox(config.queue_size)  # bounded by count and by bytes
        self._limiter = LogLimiter(60.0)
        # the controller's one owner at a time; while the decider is idle, paho's thread decides an event
        self.gate: EventGate[Carried] = EventGate(
            self.inbox, self._decide_inline, self._inline_error, enabled=config.inline_events
        )
        self.topics = config.topics()
        self.link = MqttLink(
            config.broker,
            f"edge-agent-{config.agent_id}",
            self.topics["availability"],
            self.inbox,
            clock=clock,
            command_expiry=config.command_expiry_seconds,
            max_payload_bytes=config.max_payload_bytes,
        )
        self.link.inline = self.gate.offer
        self._subscribe()
        self.publisher = Publisher(self.link, config.agent_id)
        self.link.on_connect_hooks.append(self.publisher.announce)
        self.link.on_connect_hooks.append(self._publish_switches)
        self.publisher.announce_hooks.append(self._announce)  # modes' states, Home Assistant discovery
        self.scheduler = Scheduler()
        self.scheduler.every(
            r.retention_interval_seconds, retention_job(self.recorder, clock, r.retention_days), "retention"
        )
        self.watcher: BundleWatcher | None = None
        if config.bundle is None:  # serving the store's current: a new one is swapped in without a restart
            serving = bundle.version if bundle is not None else None
            threads = config.process.inference_threads
            self.watcher = BundleWatcher(
                config.bundle_store, serving=serving, threads=threads, accept=self._fits
            )
            self.scheduler.every(WATCH_SECONDS, self._watch_bundle, "bundle-watch")
        self._watch_lock = threading.Lock()
        self.retrain = RetrainService(config, pickup=self._watch_bundle, clock=clock)  # retrain/rollback
        self.retrain.schedule(self.scheduler.cron)
        self.scheduler.every(WATCH_SECONDS, self.retrain.refresh, "retrain-status")
        self.shadow_score = ShadowScoreJob(config, clock)  # shadow decisions beside the person's changes
        self.scheduler.every(
            config.learning.shadow_score.interval_seconds, self.shadow_score.run, "shadow-score", run_now=True
        )
        self._lock = StateLock(config.state_dir)
        self.heartbeat_hooks: list[Callable[[], None]] = []  # called once per decider loop (e.g. a watchdog)
        self._rate = RateMeter()
        self._decision_rate = RateMeter(span=60.0)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="decider", daemon=True)
        self._started_at = time.monotonic()
        self._cpu: float | None = None
        self._proc = psutil.Process()  # the agent's own CPU time, a governor signal
        self._burst = False
        self._trimmed_at = 0.0
        self._swap: Bundle | None = None
        self._held_back: list[CommandRecord] | None = None  # see _send_all
        self._swap_lock = threading.Lock()

    # ---- views of the controller (tests, demo, benches) ------------------------------------------------
    @property
    def bundle(self) -> Bundle | None:
        return self.controller.bundle

    @property
    def devices(self) -> list[DeviceRuntime]:
        return self.controller.devices

    @property
    def counters(self) -> Counters:
        return self.controller.counters

    @property
    def governor(self) -> Governor | None:
        return self.controller.governor

    @property
    def focus(self) -> AttentionTracker | None:
        return self.controller.focus

    @property
    def first_decision_at(self) -> float | None:
        return self.controller.first_decision_at

    def _subscribe(self) -> None:
        c = self.controller
        own = (
            set(c.switches.command_topics) | c.attributor.topics() | set(retrain_topics(self.cfg))
        )  # pause switches, other automations' topics, retrain/rollback buttons
        own |= set(c.modes.command_topics) | set(c.suggestions.answer_topics)  # HA's selects and buttons
        if self.cfg.homeassistant.discovery:
            own.add(self.cfg.homeassistant.status_topic)  # `online`: announce again
        self.link.subscriptions = subscriptions(
            set(c.ingestor.topics()) | set(c.by_state_topic) | own | c.z2m.topics(),
            self.cfg.broker.extra_subscriptions,
        )
        self.link.payload_limits = c.z2m.payload_limits()  # Zigbee2MQTT's device list may be large
        self.gate.topics = c.event_topics() - set(retrain_topics(self.cfg))  # decided on paho's thread
        # Service hooks (wired by cli.cmd_run): `ready` is set on the first broker connect (sd_notify READY)
        self.ready = threading.Event()
        self.link.on_connect_hooks.append(self.ready.set)

    # ---- lifecycle -------------------------------------------------------------------------------------
    def start(self) -> None:
        """Start deciding (raises StateLockError when another agent holds the state directory)."""
        self._lock.acquire()
        proc = self.cfg.process
        if proc.nice is not None or proc.cpu_affinity is not None:
            apply_process_priority(proc.nice, proc.cpu_affinity)
        for rec in self.controller.start_records(self.clock()):
            self.recorder.write(rec)
        sys.setswitchinterval(min(sys.getswitchinterval(), SWITCH_INTERVAL_SECONDS))
        psutil.cpu_percent(None)  # prime: the first call has no interval to measure
        self._proc.cpu_percent(None)
        release_free_memory()
        self.link.start()
        self.scheduler.start()
        self.retrain.start()
        self._thread.start()
        logger.info(
            "agent %s started: mode %s, %d channels, %d devices, tier %s, broker %s:%s",
            self.cfg.agent_id,
            self.controller.modes.global_mode,
            len(self.controller.names),
            len(self.devices),
            self.controller.tier,
            self.cfg.broker.host,
            self.cfg.broker.port,
        )

    def stop(self, timeout: float = 10.0) -> None:
        """Stop deciding, flush the recorder (all rows written), publish `offline`, disconnect."""
        self._stop.set()
        self.inbox.wake()  # out of an idle wait now
        if self._thread.is_alive():
            self._thread.join(timeout)
        left = self.gate.close()  # no inline decision from here on; the last remainders carried out
        with self.gate.lock:
            carried = [self._finish(c) for c in left]
        for c in carried:
            self._write_out(c)
        self._carry_out(self.controller.close(self.clock()))
        self.scheduler.stop()
        self.retrain.stop()
        self.link.stop(self.publisher.offline_message())
        self.recorder.close(timeout)
        self._lock.release()
        logger.info("agent %s stopped: %s", self.cfg.agent_id, self.counters.as_dict())

    def swap_bundle(self, bundle: Bundle) -> None:
        """Serve `bundle` from the next decision on (the decider swaps it between two calls)."""
        with self._swap_lock:
            self._swap = bundle
        self.inbox.wake()

    def _fits(self, bundle: Bundle) -> None:
        build_devices(self.cfg, bundle.manifest)  # raises ConfigError when the config cannot serve it

    def _watch_bundle(self) -> None:
        with self._watch_lock:  # the scheduler's watch job and the retrain worker's pickup
            bundle = self.watcher.check() if self.watcher is not None else None
        if bundle is not None:
            self.swap_bundle(bundle)

    # ---- the decider thread ----------------------------------------------------------------------------
    def _loop(self) -> None:
        next_sample = next_stats = next_persist = time.monotonic()
        wait = 0.0
        while not self._stop.is_set():
            try:
                self.inbox.wait(wait)  # a message, an inline decision's remainder, a wake(), or due work
                hold = self.gate.remainder_hold()  # the command is still on its way to the device
                if hold > 0.0 and not self.inbox.qsize() and not self._stop.is_set() and self._swap is None:
                    wait = min(
                        hold, self._idle_wait(min(next_sample, next_stats, next_persist) - time.monotonic())
                    )
                    if wait > 0.0:
                        continue
                done: list[Carried] = []
                stats: dict[str, Any] | None = None
                # pops and handles together, holding the controller: an event decided inline never jumps the queue
                with self.gate.lock:
                    done += [self._finish(c) for c in self.gate.take()]
                    batch = self._drain()
                    now, mono = self.clock(), self.steady()
                    up = self.link.connected.is_set()
                    self._maybe_swap(now)
                    if batch:  # the retrain/rollback buttons go to the retrain worker, not the controller
                        batch = [m for m in batch if not self.retrain.offer(m[0], m[1])]
                    if batch:
                        done.append(self._first(self.controller.handle(batch, now, mono=mono, link_up=up)))
                    self._after_burst(len(batch))
                    done.append(self._first(self.controller.poll(now, mono=mono, link_up=up)))
                    real = time.monotonic()
                    if real >= next_sample:
                        next_sample = real + self.cfg.governor.sample_seconds
                        self._cpu = psutil.cpu_percent(None)
                        fx = self.controller.observe_load(
                            now,
                            cpu_percent=self._cpu,
                            queue_depth=self.inbox.qsize(),
                            mono=mono,
                            own_cpu_percent=self._proc.cpu_percent(None),  # % of one core since the last
                        )
                        done.append(self._first(fx))
                        if fx.records:
                            stats = self.stats()
                    if real >= next_stats:
                        next_stats = real + self.cfg.stats_interval_seconds
                        stats = self.stats()
                    if real >= next_persist:
                        next_persist = real + PERSIST_SECONDS
                        done.append(self._first(self.controller.persist(now)))
                    self.link.pump()
                for c in done:  # records, publications, decision payloads: outside the lock
                    self._write_out(c)
                if stats is not None:
                    self.publisher.stats(stats)
                for hook in self.heartbeat_hooks:  # the systemd watchdog ping: a stuck loop stops pinging
                    hook()
                wait = self._idle_wait(min(next_sample, next_stats, next_persist) - time.monotonic())
            except Exception:  # thread boundary: count, log (rate-limited), keep deciding; never sleep here
                wait = POLL_SECONDS  # not a spin on a repeating error, not a long pause either
                self.counters.errors += 1
                if self._limiter.allow("loop", time.monotonic()):
                    logger.exception("decider: unexpected error (loop goes on; logged once a minute)")

    def _idle_wait(self, due: float) -> float:
        """How long the idle decider may sleep: until its next due work (`due` real seconds, or the
        controller's next tick), at most IDLE_SECONDS; POLL_SECONDS on a simulated clock (its ticks do not
        follow real time) or while commands wait for room in the in-flight window."""
        if self.steady is not time.monotonic or self.link.outbox_size():
            return POLL_SECONDS
        return max(0.0, min(IDLE_SECONDS, due, self.controller.next_tick_in()))

    def _decide_inline(self, item: Item) -> Carried:
        """On paho's thread, holding the gate (`EventGate.offer`): decide one sensor event and send its
        commands; the explanation is left for the decider."""
        now, mono = self.clock(), self.steady()
        fx = self.controller.handle([item], now, mono=mono, link_up=self.link.connected.is_set())
        return fx, self._send_first(fx)

    def _inline_error(self) -> None:
        self.counters.errors += 1
        if self._limiter.allow("inline", time.monotonic()):
            logger.exception(
                "event path: unexpected error deciding on the MQTT thread (logged once a minute)"
            )

    def _after_burst(self, n: int) -> None:
        """Once a flood is over (big batches, then an idle inbox), give the freed heap back to the OS."""
        if n >= BURST_MESSAGES:
            self._burst = True
        elif self._burst and n == 0 and time.monotonic() - self._trimmed_at > TRIM_EVERY_SECONDS:
            self._burst = False
            self._trimmed_at = time.monotonic()
            release_free_memory()

    def _drain(self) -> list[Message]:
        """Up to DRAIN_MAX queued messages, never waiting (the loop waited in `inbox.wait`, without the lock)."""
        batch: list[Message] = []
        while len(batch) < DRAIN_MAX:
            try:
                batch.append(self.inbox.get_nowait())
            except queue.Empty:
                break
        return batch

    def _maybe_swap(self, now: float) -> None:
        with self._swap_lock:
            bundle, self._swap = self._swap, None
        if bundle is not None:
            self._carry_out(self.controller.swap_bundle(bundle, now))
            self._subscribe()

    def _carry_out(self, fx: Effects) -> None:
        """Send the commands first (the event path: nothing else runs before them), then record the rows and
        publish the explanations; with a person's hold among the records, the hold is durable first."""
        self._write_out(self._first(fx))

    def _first(self, fx: Effects) -> Carried:
        """Holding the gate: the commands out (`_send_first`), then the explanations built (`_finish`)."""
        return self._finish((fx, self._send_first(fx)))

    def _send_first(self, fx: Effects) -> int:
        """A person's hold durable first (urgent records written and committed), then the commands sent;
        returns how many of the records are written already."""
        if any(isinstance(rec, StateRecord) and rec.urgent for rec in fx.records):
            for rec in fx.records:
                self.recorder.write(rec)
            if not self.recorder.flush(DURABLE_WAIT_SECONDS):
                logger.warning(
                    "recorder: a person's hold was not committed within %.0fs", DURABLE_WAIT_SECONDS
                )
            done = len(fx.records)
        else:
            done = 0
        fx.records += self._send_all(fx.commands)
        return done

    def _finish(self, carried: Carried) -> Carried:
        carried[0].finish()  # the explanations (they read and update the controller: under the gate's lock)
        return carried

    def _write_out(self, carried: Carried) -> None:
        """The rest, after the commands: records, publications, decision payloads (no lock needed)."""
        fx, done = carried
        for rec in fx.records[done:]:
            self.recorder.write(rec)
        for pub in fx.publications:
            self.link.publish(pub.topic, pub.payload, qos=1, retain=pub.retain)
        if self.cfg.publish_decisions:
            for d in fx.decisions:
                self.publisher.decision(d.device, d.payload())

    def _announce(self) -> None:
        """On every connect (paho's thread): the modes' retained states and the HA device config."""
        with self.gate.lock:
            carried = self._first(self.controller.announce(self.clock()))
        self._write_out(carried)

    def _publish_switches(self) -> None:
        """On every connect: the pause switches' retained states (paho's thread; the state is a dict read)."""
        for pub in self.controller.switches.publications():
            self.link.publish(pub.topic, pub.payload, qos=1, retain=True)

    def _send_all(self, commands: list[Command]) -> list[CommandRecord]:
        """Hand the commands to paho and have them written before anything else runs; returns their records
        (written by the caller after the explanations: no recorder wake-up on the event path). On paho's
        thread (an inline decision) the socket is written at once; on the decider, the GIL is released so the
        network thread, woken by paho, writes them now (it would otherwise wait behind the explanations)."""
        if not commands:
            return []
        held: list[CommandRecord] = []
        self._held_back = held  # the command records of this hand-off
        try:
            for cmd in commands:
                self._send(cmd)
            if not self.link.write_now():
                time.sleep(0)
        except Exception:
            for rec in held:  # what was sent is recorded even so
                self.recorder.write(rec)
            raise
        finally:
            self._held_back = None
        return held

    def _send(self, cmd: Command) -> None:
        def done(status: str, _cmd: Command = cmd) -> None:
            rec = command_record(_cmd, status, self.clock())
            if self._held_back is not None:
                self._held_back.append(rec)
            else:  # a command sent later (pump) or expired
                self.recorder.write(rec)

        self.link.send_command(cmd.topic, cmd.payload, cmd.created, on_done=done)

    # ---- views -----------------------------------------------------------------------------------------
    def stats(self) -> dict[str, Any]:
        lc = self.link.counters
        c = self.controller.stats()
        return {
            "time": self.clock(),
            "agent_id": self.cfg.agent_id,
            "uptime_s": round(time.monotonic() - self._started_at, 1),
            "connected": self.link.connected.is_set(),
            "msgs_per_s": self._rate.rate(lc.received),
            "decisions_per_min": round(self._decision_rate.rate(self.counters.decisions) * 60.0, 1),
            "received": lc.received,
            "dropped": lc.dropped,
            "queue_depth": self.inbox.qsize(),
            "cpu_percent": self._cpu,
            "rss_mb": rss_mb(),
            "commands_sent": lc.commands_sent,
            "events_inline": self.gate.inline,  # decided on paho's thread (no hand-off)
            "events_queued": self.gate.queued,  # event topics that went through the inbox (decider busy)
            "commands_expired": lc.commands_expired,
            "oversized": lc.oversized,
            "connect_failures": lc.connect_failures,
            "recorder_dropped": self.recorder.dropped,
            "reconnects": max(0, lc.connects - 1),
            **c,
            "last_retrain": self.retrain.status(),
            "shadow_score": self.shadow_score.status(),
            "commands_disconnected": lc.commands_disconnected + c["commands_disconnected"],
        }

    def snapshot(self) -> dict[str, Any]:
        """State for a live view: devices (state, last decision, mode, hold), tier, counters, link."""
        snap = self.controller.snapshot(self.clock())
        snap.update(
            agent_id=self.cfg.agent_id,
            connected=self.link.connected.is_set(),
            link=vars(self.link.counters).copy(),
        )
        return snap

"""The controller: the one decision path, pure. Messages, ticks, load samples and clock values in; `Effects` out.

ingest (topic rules, validation) -> window (ring buffer, stale mask, calendar in the home's zone) -> the
governor's tier (channels fed, time pooling) -> onnxruntime -> policy per device (hysteresis, dwell, rate
limit, clamps, hold) -> commands, records and decisions to publish. A change on a fast channel (motion,
contact) decides in the same call; slow channels are served by `poll`'s periodic tick. A device state report
that is neither the first, an echo of our command nor a repeat is a person's change: the device is held,
and an `OverrideRecord` plus an urgent `StateRecord` of the holds are returned before anything else.

With no bundle (a fresh install) or for a channel/device the bundle lacks, the controller observes: every
configured channel is recorded (it becomes an input at the next training) and every device change is
recorded as a `DeviceChangeRecord`, attributed (`edge_agent.attribution`); nothing is decided for it. The
effective mode of a device is also capped by its readiness (`edge_agent.readiness`), and the two pause
switches (`edge_agent.switches`) stop labels or commands at once. Modes set at run time (Home Assistant's
selects, `mode/set`) are `edge_agent.modes`; in `suggest` a decision that would command offers a suggestion
instead (`edge_agent.suggest`), sent only when a person accepts it on a fresh basis. `announce` is what the
agent says about itself on connect and when Home Assistant comes online (`edge_agent.ha_discovery`).

Nothing here reads the wall clock, sleeps, or touches a socket or a file: the runtime (`edge_agent.agent`),
the demo, training's closed-loop check, the benches and the tests all drive this class. `perf` (monotonic
seconds, injectable) only measures latency, which the governor reads as a signal.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import numpy as np

from edge_agent.agent_commands import AgentCommands
from edge_agent.attribution import Attributor
from edge_agent.calendar_features import load_zone
from edge_agent.catalog import CATALOG_KEY, build_catalog, channel_kinds
from edge_agent.config import MODE_ORDER, AgentConfig
from edge_agent.device_reports import DeviceReports
from edge_agent.devices import DeviceRuntime, build_devices
from edge_agent.effects import (
    Command,
    CommandRecord,
    Decision,
    DecisionRecord,
    Effects,
    ModelVersionRecord,
    OverrideRecord,
    ReadingRecord,
    Record,
    StateRecord,
    TierChangeRecord,
    dumps,
)
from edge_agent.focus import fast_channels, runtime_tracker
from edge_agent.governor import Governor
from edge_agent.ha_discovery import Discovery
from edge_agent.inference import Bundle, ModelOutput
from edge_agent.ingest import Ingestor, LogLimiter, PayloadError, safe_topic
from edge_agent.kinds import stale_limit, state_channel
from edge_agent.modes import RuntimeModes
from edge_agent.readiness import Readiness, device_readiness
from edge_agent.stats import Counters, LatencyStats
from edge_agent.suggest import SuggestionBook, reason_text, value_text
from edge_agent.switches import PauseSwitches
from edge_agent.tiering import run_tier, select_channels
from edge_agent.window import Window
from edge_agent.z2m_follow import Zigbee2MqttFollower

logger = logging.getLogger(__name__)

TOP_CHANNELS = 3  # channels (by attention) published with each decision
NO_MODEL = "none"  # model version and tier shown while observing with no bundle
OBSERVE_WINDOW = 2  # steps kept per channel with no bundle (only the recorder's downsampling needs it)
Message = tuple[str, bytes, float, bool]  # topic, payload, perf time received, retained flag


SUGGEST_PENDING = "suggest-pending"  # _act -> _explain: a change to offer, not to send


class Controller(AgentCommands):
    """Decides for one home with one bundle at a time (hot-swappable between two calls)."""

    def __init__(
        self,
        config: AgentConfig,
        bundle: Bundle | None,
        *,
        now: float,
        state: Mapping[str, Any] | None = None,
        perf: Callable[[], float] = time.monotonic,
        mono: float | None = None,
    ) -> None:
        self.cfg = config
        self.perf = perf
        self.zone = load_zone(config.timezone)
        self.counters = Counters()
        self.latency = LatencyStats()
        self._limiter = LogLimiter(60.0)
        self._now = now
        self._mono = now if mono is None else mono  # steady clock (see `handle`): staleness, ticks, governor
        self._tick_count = 0
        self._link_up = True  # as of the last `handle` (an accepted suggestion is sent only while up)
        self._next_tick = self._mono + config.decision_tick_seconds
        self.first_decision_at: float | None = None  # perf time, for the cold-start bench
        # True (the daemon): a decision's explanation (attention tracker, decisions, decision records) is left
        # in `Effects.later`, run by the caller once the commands are out; False: built at once (tests, demo)
        self.defer_explanations = False
        state = state or {}
        self.switches = PauseSwitches(config.topics(), state.get("switches"))
        self.modes = RuntimeModes(config, state.get("modes"))  # set from HA / MQTT, persisted
        names = [d.name for d in config.devices]
        self.suggestions = SuggestionBook(config.suggest, config.agent_id, names)
        self.ha = Discovery(
            config.agent_id,
            names,
            config.homeassistant,
            state.get("ha_components"),
            stats_seconds=config.stats_interval_seconds,
        )
        counts = state.get("label_counts")
        self.labels_collected: dict[str, int] = dict(counts) if isinstance(counts, dict) else {}
        self.attributor = Attributor(config.learning.automations, self.zone)
        self.reports = DeviceReports(self.attributor, self.switches, self.labels_collected)
        self.z2m = Zigbee2MqttFollower(config)  # availability and the device list of Zigbee2MQTT
        self.unavailable: set[str] = set()  # channels whose sensor is offline or gone: masked at once
        self._own_state_topics = set(self.switches.state_topics.values()) | {
            self.modes.state_topic(k) for k in ["", *names]
        }
        self._install(bundle, now, tracker_json=state.get("attention_tracker"))
        holds = state.get("holds") or {}
        for d in self.devices:
            d.tracker.restore(holds.get(d.name, {}))

    # ---- the bundle ------------------------------------------------------------------------------------
    def _install(self, bundle: Bundle | None, now: float, tracker_json: str | None = None) -> None:
        cfg = self.cfg
        m = bundle.manifest if bundle is not None else None
        self.bundle = bundle
        configured = channel_kinds(cfg, m)  # every configured channel -> kind
        model_names = [c.name for c in m.channels] if m is not None else []
        extra = [n for n in configured if n not in set(model_names)]
        self.n_model = len(model_names)  # rows 0..n_model-1 feed the model; the rest are only recorded
        self.names = model_names + extra
        self.kinds = ([c.kind for c in m.channels] if m is not None else []) + [configured[n] for n in extra]
        self.index = {n: i for i, n in enumerate(self.names)}
        self.unmodelled = extra if m is not None else []
        if self.unmodelled and m is not None:
            logger.info(
                "channels not in bundle %s are recorded for the next training: %s",
                m.version,
                ", ".join(extra),
            )
        self.ingestor = Ingestor(
            cfg.channels,
            dict(zip(self.names, self.kinds, strict=True)),
            cfg.field_aliases,
            cfg.max_payload_bytes,
        )
        stale = {r.channel: r.stale_after_seconds for r in cfg.channels if r.stale_after_seconds}
        limits = [stale_limit(k, stale.get(n)) for n, k in zip(self.names, self.kinds, strict=True)]
        step = m.step_seconds if m is not None else cfg.learning.recording_step_seconds
        length = m.window if m is not None else OBSERVE_WINDOW
        self.window = Window(self.names, self.kinds, step, length, limits, zone=self.zone)
        self.fast = {i for i in fast_channels(self.kinds) if i < self.n_model}
        self._sensor_rows = np.array(
            [i for i in range(self.n_model) if self.kinds[i] not in ("calendar", "device_state")],
            dtype=np.int64,
        )
        self.devices: list[DeviceRuntime] = build_devices(cfg, m)
        rows = {d.name: self.index.get(state_channel(d.name)) for d in self.devices}
        self.state_rows = {
            k: v for k, v in rows.items() if v is not None and v < self.n_model
        }  # model inputs
        self.by_state_topic = {d.tracker.cfg.state_topic: d for d in self.devices}
        self.command_topics = {d.tracker.command_topic for d in self.devices}
        self.readiness: dict[str, Readiness] = {
            d.name: device_readiness(d.name, m, cfg.learning.readiness) for d in self.devices
        }
        if bundle is None or m is None:
            self.governor: Governor | None = None
            self.focus = None
            return
        p99: dict[str, float] = {t.name: t.latency_us_p99 / 1000.0 for t in m.tiers if t.latency_us_p99}
        self.governor = Governor(cfg.governor, bundle.ladder, lambda: self._mono, tier_p99_ms=p99)
        skipped = [t for t in bundle.tiers if t not in bundle.ladder]
        if skipped:
            logger.info(
                "bundle %s: tiers %s failed the event test at export; not on the ladder", m.version, skipped
            )
        self.focus = runtime_tracker(m, tracker_json)  # the same construction evaluation uses
        if m.timezone is not None and m.timezone != cfg.timezone:
            logger.warning(
                "bundle %s was trained with calendar inputs in %s, the config says timezone: %s; the config's "
                "zone is used (retrain, or set timezone: to the home's zone)",
                m.version,
                m.timezone,
                cfg.timezone,
            )

    @property
    def version(self) -> str:
        return self.bundle.version if self.bundle is not None else NO_MODEL

    @property
    def tier(self) -> str:
        return self.governor.tier if self.governor is not None else NO_MODEL

    def start_records(self, now: float) -> list[Record]:
        """What the log needs to describe itself: the catalog (channels, devices, zone, learning settings)
        and the bundle loaded, if any."""
        m = self.bundle.manifest if self.bundle is not None else None
        out: list[Record] = [StateRecord(CATALOG_KEY, build_catalog(self.cfg, m), now, urgent=True)]
        if self.bundle is not None:
            out.append(self.loaded_record(now))
        return out

    def loaded_record(self, now: float) -> ModelVersionRecord:
        assert self.bundle is not None
        m = self.bundle.manifest
        return ModelVersionRecord(m.version, now, str(self.bundle.path), m.model_dump_json())

    def swap_bundle(self, bundle: Bundle, now: float) -> Effects:
        """Serve `bundle` from the next decision on: channel history, holds and device state are kept."""
        old_window, old_index, old_devices = self.window, self.index, {d.name: d for d in self.devices}
        self._install(bundle, now)
        self.window.adopt(old_window, [(old_index[n], i) for n, i in self.index.items() if n in old_index])
        self.set_available([(n, False) for n in self.unavailable])
        for d in self.devices:
            if d.name in old_devices:
                d.carry_over(old_devices[d.name])
            if d.tracker.reported is not None and d.name in self.state_rows:
                self.window.update(self.state_rows[d.name], d.tracker.reported, now, seen=self._mono)
        logger.info(
            "bundle %s now in service (%d model channels, %d devices decided)",
            bundle.version,
            self.n_model,
            sum(d.index is not None for d in self.devices),
        )
        return Effects(records=self.start_records(now))

    def event_topics(self) -> frozenset[str]:
        """Sensor topics that feed a fast channel of the bundle and carry nothing else the controller reads
        (no device state, switch, mode, suggestion, automation or Zigbee2MQTT topic): a message on one yields
        readings and at most a decision, never a person's change (`edge_agent.eventpath` decides them inline)."""
        if self.bundle is None:
            return frozenset()
        fast = {self.names[i] for i in self.fast}
        other = (
            set(self.by_state_topic)
            | set(self.switches.command_topics)
            | set(self.modes.command_topics)
            | set(self.suggestions.answer_topics)
            | self.attributor.topics()
            | self.z2m.topics()
            | self._own_state_topics
            | {self.cfg.homeassistant.status_topic}
        )
        return frozenset(r.topic for r in self.cfg.channels if r.channel in fast and r.topic not in other)

    # ---- inputs ----------------------------------------------------------------------------------------
    def _clock(self, now: float, mono: float | None) -> float:
        self._now = now
        self._mono = now if mono is None else mono
        return self._mono

    def handle(
        self, messages: Iterable[Message], now: float, *, mono: float | None = None, link_up: bool = True
    ) -> Effects:
        """Handle a batch of messages, then decide once if a fast channel changed among them.

        `now` is the clock time (records, calendar inputs, holds); `mono` the steady clock (default `now`):
        the runtime passes a monotonic clock so a wall-clock step never turns stale detection off."""
        self._clock(now, mono)
        self._link_up = link_up
        fx = Effects()
        triggered: set[int] = set()
        t0 = 0.0
        for topic, payload, received, retained in messages:
            ch = self._message(topic, payload, now, fx, retained)
            if ch is not None:
                if not triggered:
                    t0 = received
                triggered.add(ch)
        if triggered:
            names = ",".join(self.names[c] for c in sorted(triggered))
            self._decide(now, f"event:{names}", t0, fx, link_up, triggered)
        return fx

    def poll(self, now: float, *, mono: float | None = None, link_up: bool = True) -> Effects:
        """The periodic tick, when due (serves slow channels; the sparse tier runs on every n-th one)."""
        steady = self._clock(now, mono)
        fx = Effects()
        if steady < self._next_tick:
            return fx
        self._tick_count += 1
        self._next_tick = steady + self.cfg.decision_tick_seconds
        self.suggestions.expire(now, fx)  # unanswered ones are recorded as ignored
        if self.bundle is None or self.governor is None:
            return fx
        tier = self.bundle.tier(self.governor.tier)
        if self._tick_count % tier.every_n_ticks == 0:
            self._decide(now, "tick", self.perf(), fx, link_up)
        return fx

    def next_tick_in(self) -> float:
        """Steady-clock seconds until `poll` has a tick to run (<= 0: due now)."""
        return self._next_tick - self._mono

    def observe_load(
        self,
        now: float,
        *,
        cpu_percent: float | None,
        queue_depth: int,
        mono: float | None = None,
        own_cpu_percent: float | None = None,
    ) -> Effects:
        """A CPU/queue sample (system CPU %, the agent's own CPU % of a core) for the governor; a tier
        change comes back as a record."""
        self._clock(now, mono)
        if self.governor is None:
            return Effects()
        self.governor.observe(
            cpu_percent=cpu_percent, queue_depth=queue_depth, own_cpu_percent=own_cpu_percent
        )
        change = self.governor.update()
        if change is None:
            return Effects()
        return Effects(
            records=[
                TierChangeRecord(now, change.old, change.new, change.reason, change.signal, change.value)
            ]
        )

    def persist(self, now: float) -> Effects:
        """The state that survives a restart: the attention tracker and the holds."""
        fx = Effects(records=[self._holds(now)])
        if self.focus is not None:
            fx.records.insert(0, StateRecord("attention_tracker", self.focus.to_json(), now))
        return fx

    def close(self, now: float) -> Effects:
        """On stop: the still-open step of every channel, and the persistent state."""
        fx = Effects(
            records=[ReadingRecord(c.ts, self.names[c.channel], c.value) for c in self.window.open_steps()]
        )
        return fx.extend(self.persist(now))

    def _holds(self, now: float) -> StateRecord:
        return StateRecord("holds", {d.name: d.tracker.state() for d in self.devices}, now, urgent=True)

    # ---- one message -----------------------------------------------------------------------------------
    def _message(
        self, topic: str, payload: bytes, now: float, fx: Effects, retained: bool = False
    ) -> int | None:
        """Returns the fast channel whose value changed (a decision trigger), or None. A retained sensor
        value (its age unknown: it may be from before a restart) fills the window but stays masked and
        triggers nothing until a live report comes."""
        self.counters.messages += 1
        trigger = None
        dev = self.by_state_topic.get(topic)
        try:
            switch = self.switches.command_topics.get(topic)
            if switch is not None:
                self.switches.command(switch, payload, now, fx)
                return None
            if self._agent_command(topic, payload, now, fx, retained):
                return None
            if self.attributor.note_topic(topic, now):
                return None
            if self.z2m.knows(topic):
                self.set_available(self.z2m.handle(topic, payload))
                return None
            if dev is not None:
                self._device_state(dev, payload, now, fx)
            if self.ingestor.knows(topic):
                for r in self.ingestor.parse(topic, payload):
                    ch = self.index[r.channel]
                    old = self.window.last_value[ch]
                    was_live = self.window.is_live(ch, self._mono)
                    fresh = not retained and r.channel not in self.unavailable
                    closed = self.window.update(ch, r.value, now, fresh=fresh, seen=self._mono)
                    self.counters.readings += 1
                    if closed is not None:
                        fx.records.append(ReadingRecord(closed.ts, self.names[ch], closed.value))
                    if ch in self.fast and not retained and (old != r.value or not was_live):
                        trigger = ch
            elif dev is None and topic not in self.command_topics and topic not in self._own_state_topics:
                self.counters.unknown_topic += 1
                self._limiter.log(
                    logger,
                    logging.WARNING,
                    "unknown-topic",
                    now,
                    "ingest: message on %s matches no channel rule or device; ignored (add a rule under "
                    "`channels` if it is a sensor; %d unknown-topic messages so far)",
                    safe_topic(topic),
                    self.counters.unknown_topic,
                )
        except PayloadError as e:
            self.counters.invalid += 1
            self._limiter.log(
                logger,
                logging.WARNING,
                "bad-payload",
                now,
                "ingest: bad payload on %s: %s (fix the sensor or its rule in `channels`; %d bad payloads so far)",
                safe_topic(topic),
                e,
                self.counters.invalid,
            )
        return trigger

    def set_available(self, changes: Iterable[tuple[str, bool]]) -> None:
        """`(channel, available)`: an unavailable channel is masked at once; available again, it stays masked
        until its next live report."""
        for name, ok in changes:
            if ok:
                self.unavailable.discard(name)
            else:
                self.unavailable.add(name)
                if name in self.index:
                    self.window.mask(self.index[name])

    def _device_state(self, dev: DeviceRuntime, payload: bytes, now: float, fx: Effects) -> None:
        value = dev.tracker.parse_state(payload, self.cfg.max_payload_bytes)
        if value is None:
            return
        ev = dev.tracker.on_state(value, now)
        if ev.kind == "repeat":
            return
        self.suggestions.device_changed(dev.name)  # a pending suggestion's basis is gone
        row = self.state_rows.get(dev.name)
        if row is not None:  # the device's own state as a model input
            self.window.update(row, value, now, seen=self._mono)
        hold = self.cfg.devices[dev.cfg_index].override_hold_seconds
        records, held = self.reports.records(dev, ev, now, hold, self.bundle.version if self.bundle else None)
        fx.records += records
        if held:
            if isinstance(records[-1], OverrideRecord):  # a person's change, not another automation's
                self.counters.overrides += 1
            fx.records.append(self._holds(now))  # the hold is durable before anything else is done

    # ---- decisions -------------------------------------------------------------------------------------
    def _decide(
        self,
        now: float,
        trigger: str,
        t0: float,
        fx: Effects,
        link_up: bool,
        triggered: set[int] | None = None,
    ) -> None:
        if self.bundle is None or self.governor is None or self.focus is None:
            return
        modes = {d.name: self.device_mode(d) for d in self.devices if d.index is not None}
        active = [d for d in self.devices if modes.get(d.name, "off") not in ("off", "observe")]
        if not active:
            return
        tier = self.bundle.tier(self.governor.tier)
        x, mask = self.window.snapshot(now, self._mono)  # [C_all, W], [C_all]
        if len(mask) > self.n_model:
            x, mask = x[: self.n_model], mask[: self.n_model]  # [C, W], [C]: the bundle's channels
        sensors_live = bool(mask[self._sensor_rows].any())
        ids = select_channels(tier, self.n_model, self.focus, triggered or ())  # [C_fed]
        out = run_tier(self.bundle, tier, x, mask, ids)
        model_ms = (self.perf() - t0) * 1000.0  # message received -> model output
        acts = [(d, self._act(d, out, mask, sensors_live, now, fx, link_up, modes[d.name])) for d in active]
        ms = (self.perf() - t0) * 1000.0  # message received -> commands ready: the event path's latency
        self.latency.add(ms)
        self.governor.observe(latency_ms=ms)
        self.counters.decisions += 1
        if self.first_decision_at is None:
            self.first_decision_at = self.perf()
        focus = self.focus

        def explain() -> None:  # after the commands are out (`defer_explanations`), or right now
            focus.update(out.attention, ids)
            for d, act in acts:
                self._explain(d, act, out, ids, now, tier.name, trigger, model_ms, fx)

        if self.defer_explanations:
            fx.later.append(explain)
        else:
            explain()

    def device_mode(self, d: DeviceRuntime) -> str:
        """The configured mode, capped by the device's readiness (observe with no model for it)."""
        mode = self.modes.device_mode(self.cfg.devices[d.cfg_index])  # config, or as set from HA / MQTT
        if mode == "off":
            return mode
        cap = self.readiness[d.name].max_mode
        return mode if MODE_ORDER[mode] <= MODE_ORDER[cap] else cap

    def _act(
        self,
        d: DeviceRuntime,
        out: ModelOutput,
        mask: np.ndarray,
        sensors_live: bool,
        now: float,
        fx: Effects,
        link_up: bool,
        mode: str,
    ) -> tuple[float, float, bool, str, str]:
        """The policy and the command of one device in `mode` (`device_mode`, as of this decision):
        (output, target, sent, reason, mode)."""
        assert d.index is not None and self.bundle is not None
        dcfg = self.cfg.devices[d.cfg_index]
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
        reason = res.reason
        if res.send and mode in ("auto", "suggest") and self.switches.control_paused:
            reason = "paused"  # pause control: no command at all
        elif res.send and mode == "suggest":
            reason = SUGGEST_PENDING  # nothing sent: offered to a person in `_explain` (edge_agent.suggest)
        elif res.send and mode == "auto":
            cmd = Command(
                d.name, d.tracker.command_topic, d.tracker.command_bytes(res.target), res.target, now
            )
            if link_up:
                fx.commands.append(cmd)
                d.policy.note_sent(now)
                d.tracker.note_command(res.target, now)
                d.last_target = res.target
                self.counters.commands += 1
                sent = True
            else:  # never queued for later: a command goes out on a fresh basis or not at all
                self.counters.commands_disconnected += 1
                fx.records.append(command_record(cmd, "dropped-disconnected", now))
        return output, res.target, sent, reason, mode

    def _explain(
        self,
        d: DeviceRuntime,
        act: tuple[float, float, bool, str, str],
        out: ModelOutput,
        ids: np.ndarray,
        now: float,
        tier: str,
        trigger: str,
        model_ms: float,
        fx: Effects,
    ) -> None:
        """The decision's explanation (top channels by attention) to publish, and its record."""
        assert d.index is not None and self.bundle is not None
        output, target, sent, reason, mode = act
        weights = out.attention[d.index]  # [C_fed]
        top = [
            (self.names[int(ids[j])], round(float(weights[j]), 4))
            for j in np.argsort(-weights)[:TOP_CHANNELS]
            if weights[j] > 0
        ]
        suggested = False
        if reason == SUGGEST_PENDING:
            t = d.tracker
            text = reason_text(value_text(t.spec.kind, t.values, t.spec.unit, target), top)
            suggested = self.suggestions.offer(d.name, target, t.reported, text, self.bundle.version, now, fx)
            reason = text if suggested else "rejected-recently"
        held = d.tracker.held(now)
        dec = Decision(
            time=now,
            device=d.name,
            value=target,
            output=round(output, 4),
            confidence=round(float(out.confidence[d.index]), 4),
            tier=tier,
            mode=mode,
            sent=sent,
            reason=reason,
            trigger=trigger,
            top=top,
            held=held,
            held_until=d.tracker.held_until if held else None,
            model_version=self.bundle.version,
            suggested=suggested,
        )
        d.last = dec
        fx.decisions.append(dec)
        fx.records.append(
            DecisionRecord(
                ts=now,
                device=d.name,
                output=output,
                target=target,
                confidence=dec.confidence,
                sent=sent,
                reason="suggested" if suggested else reason,
                mode=mode,
                tier=tier,
                trigger=trigger[:160],
                model_version=self.bundle.version,
                latency_ms=round(model_ms, 3),
                attention=dumps([[c, w] for c, w in top]),  # as in the payload, without building it
            )
        )

    # ---- views -----------------------------------------------------------------------------------------
    def device_views(self) -> dict[str, dict[str, Any]]:
        """Per device: effective mode, readiness (cap and why), the person's changes collected as labels."""
        return {
            d.name: {
                "mode": self.device_mode(d),
                "decided": d.index is not None,
                "labels_collected": self.labels_collected.get(d.name, 0),
                **self.readiness[d.name].as_dict(),
            }
            for d in self.devices
        }

    def stats(self) -> dict[str, Any]:
        p50, p99 = self.latency.percentiles()
        return {
            "mode": self.modes.global_mode,
            "model_version": self.version,
            "tier": self.tier,
            "latency_ms_p50": p50,
            "latency_ms_p99": p99,
            "governor": self.governor.state() if self.governor is not None else None,
            **self.switches.state,
            "unmodelled_channels": list(self.unmodelled),
            "zigbee2mqtt": self.z2m.stats() if self.z2m.topics() else None,
            "devices": self.device_views(),
            **self.counters.as_dict(),
        }

    def snapshot(self, now: float) -> dict[str, Any]:
        """Devices (state, last decision, mode, hold), tier, counters: for live views."""
        devs = {}
        for d in self.devices:
            held = d.tracker.held(now)
            last = d.last.payload() if d.last is not None else None
            devs[d.name] = {
                "state": d.tracker.reported,
                "mode": self.device_mode(d),
                "held_until": d.tracker.held_until if held else None,
                "last_decision": last,
                "top": (last or {}).get("top", []),
            }
        return {
            "time": now,
            "tier": self.tier,
            "model_version": self.version,
            "devices": devs,
            "counters": self.counters.as_dict(),
            "governor": self.governor.state() if self.governor is not None else None,
            "switches": dict(self.switches.state),
        }


def command_record(cmd: Command, status: str, now: float) -> CommandRecord:
    return CommandRecord(now, cmd.device, cmd.topic, cmd.payload.decode(), cmd.value, status)

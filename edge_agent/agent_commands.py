"""The agent's own command topics, handled for the controller: mode commands (Home Assistant's selects,
`mode/set`), answers to suggestions (`suggest/<device>/accept|reject`) and Home Assistant's birth message
(`homeassistant/status` `online`: announce again), and what the agent announces about itself on connect.

A mixin of `edge_agent.controller.Controller` (pure like it: the message and the clock in, `Effects` out); the
attributes it reads are declared here. A retained command is refused (it would replay at every reconnect).
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from edge_agent.config import AgentConfig
from edge_agent.devices import DeviceRuntime
from edge_agent.effects import Command, Effects
from edge_agent.ha_discovery import Discovery
from edge_agent.ingest import LogLimiter, safe_topic
from edge_agent.modes import RuntimeModes
from edge_agent.stats import Counters
from edge_agent.suggest import SuggestionBook, accept_problem
from edge_agent.switches import PauseSwitches

logger = logging.getLogger(__name__)


class AgentCommands:
    """Mode commands, answers to suggestions, HA's status and the announcement (mixed into the Controller)."""

    cfg: AgentConfig
    modes: RuntimeModes
    suggestions: SuggestionBook
    switches: PauseSwitches
    ha: Discovery
    counters: Counters
    devices: list[DeviceRuntime]
    _limiter: LogLimiter
    _link_up: bool
    device_mode: Callable[[DeviceRuntime], str]

    def _agent_command(self, topic: str, payload: bytes, now: float, fx: Effects, retained: bool) -> bool:
        """Handles `topic` (True) if it is a mode command, an answer to a suggestion or HA's status. A retained
        command is refused: it would be carried out again at every reconnect (an accept: on every suggestion)."""
        key = self.modes.command_topics.get(topic)
        answer = self.suggestions.answer_topics.get(topic)
        if retained and (key is not None or answer is not None):
            self.counters.invalid += 1
            self._limiter.log(
                logger,
                logging.WARNING,
                "retained-command",
                now,
                "retained command on %s ignored: publish commands without the retain flag (clear it with "
                "mosquitto_pub -r -n -t '%s')",
                safe_topic(topic),
                safe_topic(topic),
            )
            return True
        if key is not None:
            self.modes.command(key, payload, now, fx)
            return True
        if answer is not None:
            if answer[1] == "reject":
                self.suggestions.reject(answer[0], now, fx)
            else:
                self._accept(answer[0], now, fx)
            return True
        if topic == self.cfg.homeassistant.status_topic:
            if self.ha.is_online(payload):  # HA (re)started: the config, then every state it shows again
                fx.extend(self.announce(now))
                fx.publications += self.switches.publications()
                fx.decisions += [d.last for d in self.devices if d.last is not None]
            return True
        return False

    def announce(self, now: float) -> Effects:
        """What the agent says about itself on every connect and when HA comes online: the modes' retained
        states and (unless homeassistant.discovery is off) the HA device config."""
        fx = Effects(publications=self.modes.publications())
        if self.cfg.homeassistant.discovery:
            pubs, rec = self.ha.announce(now)
            fx.publications += pubs
            fx.records.append(rec)
        return fx

    def _accept(self, name: str, now: float, fx: Effects) -> None:
        """A person accepted the suggestion for `name`: one command if the basis is still fresh, else a line."""
        d = next((x for x in self.devices if x.name == name), None)
        why = self.suggestions.basis_problem(name, now)
        if why is None and d is not None:
            why = accept_problem(
                held_for=d.tracker.held_until - now,
                mode=self.device_mode(d),
                paused=self.switches.control_paused,
                sent_last_hour=d.policy.commands_last_hour(now),
                max_per_hour=d.policy.cfg.max_commands_per_hour,
                link_up=self._link_up,
            )
        if d is None or why is not None:
            self.suggestions.refused(name, why or "not a configured device", now, fx)
            return
        s = self.suggestions.accepted(name, now, fx)
        cmd = Command(d.name, d.tracker.command_topic, d.tracker.command_bytes(s.value), s.value, now)
        fx.commands.append(cmd)
        d.policy.note_sent(now)
        d.tracker.note_command(s.value, now)
        d.last_target = s.value
        self.counters.commands += 1
        logger.info("suggestion for %s accepted: %s sent", name, cmd.payload.decode())

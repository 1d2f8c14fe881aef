"""The two switches a person can reach (from Home Assistant or any MQTT client): pause learning (a party,
guests: those hours are not labels) and pause control (no command at all). Pure: payload parsing and state.

Commands on `edge-agent/<id>/<switch>/set` (ON/OFF, true/false, 1/0, or JSON {"state": "ON"}); the state is
published retained on `edge-agent/<id>/<switch>`, persisted in agent_state['switches'] and every flip is a
`switches` row, so training knows which hours to leave out.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from edge_agent.effects import Effects, Publication, StateRecord, SwitchRecord
from edge_agent.ingest import PayloadError

logger = logging.getLogger(__name__)

SWITCHES: tuple[str, ...] = ("pause_learning", "pause_control")
_ON = {"on", "true", "1", "yes"}
_OFF = {"off", "false", "0", "no"}


def command_word(payload: bytes, json_key: str, what: str, accepted: str) -> tuple[str, str]:
    """A command payload -> (lower-case word, the text as sent): plain text, or JSON `{json_key: word}`.
    PayloadError naming `accepted` if it is too big to be a command."""
    if len(payload) > 256:
        raise PayloadError(f"{what} payload of {len(payload)} bytes; send {accepted}")
    text = payload.decode("utf-8", errors="replace").strip()
    if text.startswith("{"):
        try:
            obj = json.loads(text)
        except ValueError:
            obj = None
        if isinstance(obj, dict) and json_key in obj:
            text = str(obj[json_key])
    return text.strip().lower(), text


def parse_switch(payload: bytes) -> bool:
    """ON/OFF payload -> bool (PayloadError with the accepted forms otherwise)."""
    word, text = command_word(payload, "state", "switch", "ON or OFF")
    if word in _ON:
        return True
    if word in _OFF:
        return False
    raise PayloadError(f"switch payload {text[:40]!r} is not ON or OFF")


def restore_switches(saved: Any) -> dict[str, bool]:
    out = dict.fromkeys(SWITCHES, False)
    if isinstance(saved, dict):
        for k in SWITCHES:
            if isinstance(saved.get(k), bool):
                out[k] = saved[k]
    return out


def state_payload(on: bool) -> bytes:
    return b"ON" if on else b"OFF"


class PauseSwitches:
    """The switches' state, their topics, and what a command on one of them asks for."""

    def __init__(self, topics: dict[str, str], saved: Any = None) -> None:
        self.state = restore_switches(saved)
        self.command_topics = {f"{topics[k]}/set": k for k in SWITCHES}
        self.state_topics = {k: topics[k] for k in SWITCHES}

    @property
    def learning_paused(self) -> bool:
        return self.state["pause_learning"]

    @property
    def control_paused(self) -> bool:
        return self.state["pause_control"]

    def command(self, name: str, payload: bytes, now: float, fx: Effects) -> None:
        """A command on `name`'s set topic (PayloadError if not ON/OFF): recorded and persisted when it flips,
        the state published (retained) in any case, so the client that set it sees it."""
        on = parse_switch(payload)
        if self.state[name] != on:
            self.state[name] = on
            logger.info("%s %s", name.replace("_", " "), "ON" if on else "OFF")
            fx.records.append(SwitchRecord(now, name, on))
            fx.records.append(StateRecord("switches", dict(self.state), now, urgent=True))
        fx.publications.append(Publication(self.state_topics[name], state_payload(on)))

    def publications(self) -> list[Publication]:
        """The retained states (published on every connect)."""
        return [Publication(self.state_topics[k], state_payload(v)) for k, v in self.state.items()]

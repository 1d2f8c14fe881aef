"""Who changed a device: the agent's echo, a person, or another automation named in config (pure).

A model must learn the person, not a thermostat's own schedule or a Home Assistant automation. A change
that is not the agent's echo is the automation's when (per `learning.automations` entry that lists the
device) the entry says `always`, or the change falls within `window_seconds` of one of its local `at`
times (in the home's zone), or within `window_seconds` after a message on its `topic`. Otherwise: a person.
"""

from __future__ import annotations

from zoneinfo import ZoneInfo

import numpy as np

from edge_agent.calendar_features import local_seconds
from edge_agent.learning_config import AutomationSource, minutes_of

DAY = 86400.0
PERSON = "person"


class Attributor:
    """Attribution of a device change to another automation, from config, its topics and the clock."""

    def __init__(self, automations: list[AutomationSource], zone: ZoneInfo) -> None:
        self.automations = list(automations)
        self.zone = zone
        self._at = [[minutes_of(t) * 60.0 for t in a.at] for a in self.automations]
        self._topic_seen: dict[int, float] = {}  # automation index -> clock time of its last topic message
        self._by_topic: dict[str, list[int]] = {}
        for i, a in enumerate(self.automations):
            if a.topic is not None:
                self._by_topic.setdefault(a.topic, []).append(i)

    def topics(self) -> set[str]:
        return set(self._by_topic)

    def note_topic(self, topic: str, now: float) -> bool:
        """A message on an automation's topic (it acts now); True if the topic is one of theirs."""
        ids = self._by_topic.get(topic)
        for i in ids or ():
            self._topic_seen[i] = now
        return ids is not None

    def source(self, device: str, now: float) -> str:
        """'automation:<name>' or 'person' for a change of `device` at `now` that is not the agent's echo."""
        tod: float | None = None
        for i, a in enumerate(self.automations):
            if device not in a.devices:
                continue
            if a.always:
                return f"automation:{a.name}"
            seen = self._topic_seen.get(i)
            if seen is not None and 0.0 <= now - seen <= a.window_seconds:
                return f"automation:{a.name}"
            if self._at[i]:
                if tod is None:
                    tod = float(local_seconds(np.array([now]), self.zone)[0]) % DAY
                for at in self._at[i]:
                    d = abs(tod - at)
                    if min(d, DAY - d) <= a.window_seconds:
                        return f"automation:{a.name}"
        return PERSON

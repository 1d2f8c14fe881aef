"""Training masks shaped like the runtime's channel budgets, so the full model has seen the subsets the
budgeted tiers (`focused`, `sparse`) feed it.

At run time a budgeted tier is fed (`edge_agent.tiering.select_channels`): the tracker's top-k (the fast event
channels first, then each device's own top channel, then the highest attention), the calendar channels on top,
and the whole room of each channel whose event triggered the decision (`edge_agent.focus.room_groups`).
Random per-channel dropout rarely produces that shape (every motion and contact live, the calendar live, one
room whole, a handful of other channels), and the full model fed such a subset answered a light's event
differently from itself on every channel in a few percent of the demo home's event decisions (the event
test, `training.tierevents`). A `BudgetShape` draws masks of that shape: always the fast and calendar channels,
the room of one random fast channel (of two with probability `SECOND_TRIGGER`), and `extra` random others
(the slots the tracker fills after the fast ones). The channel rules come from `edge_agent.focus`: one
definition for training and the daemon.

Shapes: mask [B, C] float (1 live, 0 missing), the same out; the rows drawn keep >= 1 live channel.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from edge_agent.focus import fast_channels, free_channels, room_groups

SECOND_TRIGGER = 0.25  # share of budget-shaped rows with two triggering channels (two rooms whole)


class BudgetShape:
    """Budget-shaped masks over one channel list (names and kinds in model order) for a budget of k."""

    def __init__(self, names: Sequence[str], kinds: Sequence[str], budget: int) -> None:
        c = len(names)
        if len(kinds) != c:
            raise ValueError(f"{len(kinds)} kinds for {c} channel names")
        if budget < 1:
            raise ValueError(f"budget must be >= 1, got {budget}")
        self.n_channels = c
        self.fast = torch.tensor(fast_channels(kinds), dtype=torch.long)  # [F]
        base = torch.zeros(c, dtype=torch.bool)
        base[self.fast] = True
        base[torch.tensor(free_channels(kinds), dtype=torch.long)] = True
        self.base = base  # [C]: fast + calendar, always fed
        rooms = torch.zeros(c, c, dtype=torch.bool)  # [C, C]: row t = the channels of t's room
        for i, g in enumerate(room_groups(names, kinds)):
            rooms[i, torch.tensor(g, dtype=torch.long)] = True
        self.rooms = rooms
        self.extra = max(0, budget - len(self.fast))  # slots after the fast channels (top_k fills them)

    def keep(self, b: int, gen: torch.Generator) -> torch.Tensor:
        """bool [b, C]: the channels one budgeted decision would feed, b independent draws."""
        keep = self.base.expand(b, -1).clone()  # [b, C]
        if len(self.fast):
            for n_trig in range(2):
                pick = self.fast[torch.randint(len(self.fast), (b,), generator=gen)]  # [b]
                rows = self.rooms[pick]  # [b, C]
                if n_trig:
                    rows &= (torch.rand(b, 1, generator=gen) < SECOND_TRIGGER).expand(-1, self.n_channels)
                keep |= rows
        if self.extra:
            score = torch.rand(b, self.n_channels, generator=gen).masked_fill(keep, -1.0)  # [b, C]
            top = score.topk(min(self.extra, self.n_channels), dim=1)
            add = torch.zeros_like(keep).scatter_(1, top.indices, top.values > 0)  # only ones not kept yet
            keep |= add
        return keep

    def apply(
        self, mask: torch.Tensor, dropped: torch.Tensor, frac: float, gen: torch.Generator
    ) -> torch.Tensor:
        """[B, C]: `dropped` (the random channel dropout of `mask`) with a `frac` share of its rows replaced by
        `mask` restricted to a budget-shaped draw; a replaced row keeps >= 1 live channel."""
        b, c = mask.shape
        if c != self.n_channels:
            raise ValueError(f"mask has {c} channels, the budget shape {self.n_channels}")
        if frac <= 0.0:
            return dropped
        rows = torch.rand(b, generator=gen) < frac  # [B]
        shaped = mask * self.keep(b, gen).to(mask.dtype)  # [B, C]
        empty = (shaped.sum(1) == 0) & (mask.sum(1) > 0)
        shaped[empty] = mask[empty]  # nothing of the draw is live: the row stays whole
        return torch.where(rows[:, None], shaped, dropped)

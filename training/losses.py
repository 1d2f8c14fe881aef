"""The training loss over all device heads, and the heads built from a training log (modes: training.heads).

`build_heads(log, level_head, setpoint_head)` -> one `DeviceHead` per device of the log (setpoint heads get the
training-label mean/std/range, and their class values in `classes` mode). `DeviceLoss(heads, labels,
level_balance)(raw [N, O], labels [N, D])` sums over devices: BCE (binary), class-weighted CE (level softmax)
or cumulative-logit BCE (level ordinal), Huber on the normalized value (setpoint regression) or
class-weighted CE over the class values (setpoint classes); NaN = no label.

`seen_only=True` (validation) leaves out labels of a class the training span never showed (a fan level
used only in summer when training ended in spring): no model can learn them from this data, and their
growing loss would stop training after the first epoch.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch.nn import functional as F

from training.head_modes import DEFAULT_LEVEL_HEAD, DEFAULT_SETPOINT_HEAD, LEVEL_MODES, SETPOINT_MODES
from training.heads import (
    level_class_weights,
    ordinal_loss,
    setpoint_values,
    value_index,
)
from training.model import DeviceHead
from training.sensorlog import SensorLog


def build_heads(
    log: SensorLog, level_head: str = DEFAULT_LEVEL_HEAD, setpoint_head: str = DEFAULT_SETPOINT_HEAD
) -> list[DeviceHead]:
    """Output heads from the log's devices; setpoint heads get the training-label mean/std, range and values."""
    if level_head not in LEVEL_MODES:
        raise ValueError(f"level_head {level_head!r}: use one of {', '.join(LEVEL_MODES)}")
    if setpoint_head not in SETPOINT_MODES:
        raise ValueError(f"setpoint_head {setpoint_head!r}: use one of {', '.join(SETPOINT_MODES)}")
    heads = []
    for k, dev in enumerate(log.devices):
        if dev.kind == "setpoint":
            y = log.labels[:, k]
            y = y[~np.isnan(y)]
            if y.size == 0:
                raise ValueError(f"device {dev.name!r} has no labels in the training span")
            values = setpoint_values(y) if setpoint_head == "classes" else []
            heads.append(
                DeviceHead(
                    dev.name,
                    "setpoint",
                    mean=float(y.mean()),
                    std=float(max(y.std(), 0.1)),
                    min_value=float(y.min()),
                    max_value=float(y.max()),
                    # one distinct value cannot be a classifier: regression (it learns the constant)
                    mode="classes" if len(values) >= 2 else "",
                    values=values if len(values) >= 2 else [],
                )
            )
        elif dev.kind == "level":
            heads.append(
                DeviceHead(
                    dev.name, "level", levels=dev.levels, mode="" if level_head == "softmax" else level_head
                )
            )
        else:
            heads.append(DeviceHead(dev.name, dev.kind))
    return heads


class DeviceLoss:
    """Sum over devices of each head's loss (module docstring); class weights from the training labels."""

    def __init__(self, heads: list[DeviceHead], labels: np.ndarray, level_balance: float = 0.5) -> None:
        self.heads = heads
        self.pos_weight: dict[int, torch.Tensor] = {}
        self.class_weight: dict[int, torch.Tensor] = {}
        self.seen: dict[int, torch.Tensor] = {}  # class -> present in training (binary, level)
        for k, h in enumerate(heads):
            y = labels[:, k]
            y = y[~np.isnan(y)]
            if h.kind != "setpoint":
                self.seen[k] = torch.from_numpy(
                    np.bincount(y.astype(int), minlength=h.levels if h.kind == "level" else 2) > 0
                )
            if h.kind == "binary" and y.size:
                rate = float(np.clip(y.mean(), 1e-3, 1 - 1e-3))
                # tempered (sqrt) weighting: balanced sampling already lifted rare positives
                self.pos_weight[k] = torch.tensor(min(math.sqrt((1 - rate) / rate), 10.0))
            elif h.kind == "level" and y.size:
                self.class_weight[k] = level_class_weights(y, h.levels, level_balance)
            elif h.mode == "classes" and y.size:
                idx = value_index(h.values, torch.from_numpy(y.astype(np.float32))).numpy()
                self.class_weight[k] = level_class_weights(idx, len(h.values), level_balance)

    def __call__(self, raw: torch.Tensor, labels: torch.Tensor, seen_only: bool = False) -> torch.Tensor:
        total = raw.new_zeros(())
        o = 0
        for k, h in enumerate(self.heads):
            y = labels[:, k]
            known = ~torch.isnan(y)
            if seen_only and k in self.seen:
                known &= self.seen[k][torch.nan_to_num(y).long().clamp(0, len(self.seen[k]) - 1)]
            if known.any():
                r = raw[known][:, o : o + h.n_out]
                yk = y[known]
                cw = self.class_weight.get(k)
                if h.kind == "binary":
                    total = total + F.binary_cross_entropy_with_logits(
                        r[:, 0], yk, pos_weight=self.pos_weight.get(k)
                    )
                elif h.kind == "level" and h.mode == "ordinal":
                    total = total + ordinal_loss(r, yk, cw)
                elif h.kind == "level":
                    total = total + F.cross_entropy(r, yk.long(), weight=cw)
                elif h.mode == "classes":
                    total = total + F.cross_entropy(r, value_index(h.values, yk), weight=cw)
                else:
                    total = total + F.huber_loss(r[:, 0], (yk - h.mean) / h.std, delta=1.0)
            o += h.n_out
        return total

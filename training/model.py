"""The channel-as-token attention model (CAT-VSN): config, torch module, pooling helper.

Each channel is one token: a per-channel temporal encoder with shared weights turns the channel's own window
into a vector z_c (+ channel-identity and kind embeddings, + RevIN-style window mean/std scalars). One
self-attention layer mixes the channel tokens into h_c, used ONLY to compute, per device, a readout
attention w_kc over the live channels. The device output is an exact attention-weighted sum of per-channel
values computed from the unmixed z_c, so w_kc is the explanation the runtime publishes (faithful by
construction; measured by `faithfulness_top1` in the evaluation).

Inputs and outputs follow `edge_agent.manifest` (x [B,C,T] normalized, mask [B,C], channel_ids [B,C] ->
devices [B,D], confidence [B,D], attention [B,D,C]).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from edge_agent import features
from edge_agent.kinds import KIND_NAMES
from training.heads import decode_level, decode_setpoint_classes

KINDS: tuple[str, ...] = KIND_NAMES  # kind-embedding index order (append-only table)
NEG = -1e9  # masked attention logit: finite, so an all-masked row stays finite (no NaN)


@dataclass
class DeviceHead:
    name: str
    kind: str = "binary"  # binary | level | setpoint
    levels: int = 2  # level devices: number of classes 0..levels-1
    mean: float = 0.0  # setpoint: training-label mean (the head predicts (y - mean) / std)
    std: float = 1.0
    min_value: float | None = None  # setpoint clamp
    max_value: float | None = None
    # training.heads: level softmax | ordinal; setpoint regression | classes ("" = the kind's first mode)
    mode: str = ""
    values: list[float] = field(default_factory=list)  # setpoint classes: the class values (device units)

    @property
    def n_out(self) -> int:
        if self.kind == "level":
            return self.levels - 1 if self.mode == "ordinal" else self.levels
        if self.kind == "setpoint" and self.mode == "classes":
            return len(self.values)
        return 1


@dataclass
class ModelConfig:
    channel_kinds: list[str]  # kind of each manifest channel, in manifest order (indexed by channel_ids)
    devices: list[DeviceHead]
    window: int = 64  # time steps fed to THIS model (the coarse model gets window // time_factor)
    patch: int = 8  # steps per patch; window % patch == 0
    d: int = 32  # token width: 32 keeps the model ~30-60k params, 50-100 us in onnxruntime
    heads: int = 4
    ff_mult: int = 2
    dropout: float = 0.05  # small: the model is tiny and channel dropout already regularizes
    time_factor: int = 1  # fine steps merged per input step (1 = full, 4 = coarse); informational
    level_free_kinds: list[str] = field(default_factory=list)  # kinds whose window level is withheld (drift)
    # Extra per-token dynamics scalars (first differences of the newest step at DYN_LAGS, short-window mean
    # and log std), computed inside the graph from x: same ONNX inputs/outputs, one token per channel.
    # Off by default until it measures better over seeds (issue 20).
    dynamics: bool = False
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.devices = [d if isinstance(d, DeviceHead) else DeviceHead(**d) for d in self.devices]
        if self.window % self.patch:
            raise ValueError(f"window {self.window} is not a multiple of patch {self.patch}")
        if self.d % self.heads:
            raise ValueError(f"d {self.d} is not a multiple of heads {self.heads}")
        unknown = [k for k in self.channel_kinds if k not in KINDS]
        if unknown:
            raise ValueError(f"unknown channel kinds {unknown}")

    @property
    def n_patches(self) -> int:
        return self.window // self.patch

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ModelConfig:
        return cls(**d)


def pool_time(x: torch.Tensor, factor: int, event: np.ndarray) -> torch.Tensor:
    """The runtime's pooling (`edge_agent.features.pool_time`: per kind, the newest step whole) on input
    tensors [..., C, T] -> [..., C, T // factor]; event [C] bool. Inputs carry no gradient."""
    if factor == 1:
        return x
    return torch.from_numpy(features.pool_time(x.detach().cpu().numpy(), factor, event))


DYN_LAGS = (1, 4, 16)  # first differences x[t] - x[t - lag] of the newest step
DYN_SHORT = 8  # steps of the short-scale summary beside the whole window


def dynamics_scalars(x: torch.Tensor) -> torch.Tensor:
    """Per-channel dynamics of x [B, C, T]: lagged differences of the newest step and the short-window mean
    minus the window mean, and the short-window log std: [B, C, len(DYN_LAGS) + 2]. Lags beyond T clip to T-1.
    Level-free: built from differences only, so it is safe for drifting kinds too."""
    t = x.shape[-1]
    last = x[..., -1:]  # [B, C, 1]
    diffs = [last - x[..., t - 1 - min(lag, t - 1) : t - min(lag, t - 1)] for lag in DYN_LAGS]
    k = min(DYN_SHORT, t)
    short = x[..., t - k :]  # [B, C, k]
    s_mean = short.mean(-1, keepdim=True)
    s_std = ((short - s_mean).pow(2).mean(-1, keepdim=True) + 1e-4).sqrt()
    return torch.cat([*diffs, s_mean - x.mean(-1, keepdim=True), s_std.log()], -1)


class ChannelEncoder(nn.Module):
    """Per-channel temporal encoder (shared weights): [B, C, T] -> [B, C, d]."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        d, p, n = cfg.d, cfg.patch, cfg.n_patches
        self.patch = p
        self.embed = nn.Linear(p, d)
        self.pos = nn.Parameter(torch.zeros(n, d))
        self.mix = nn.Linear(n * d, d)
        self.stats = nn.Linear(3, d)  # scalars: newest value, window mean, log std (RevIN-style)
        self.dynamics = nn.Linear(len(DYN_LAGS) + 2, d) if cfg.dynamics else None  # see dynamics_scalars
        self.out = nn.Linear(d, d)
        self.norm = nn.LayerNorm(d)
        self.drop = nn.Dropout(cfg.dropout)

    def forward(self, x: torch.Tensor, mask: torch.Tensor, level_keep: torch.Tensor) -> torch.Tensor:
        """x [B, C, T], mask [B, C], level_keep [B, C, 1] (0: hide the window level of that channel)."""
        b, c, t = x.shape
        mean = x.mean(-1, keepdim=True)  # [B, C, 1]
        std = ((x - mean).pow(2).mean(-1, keepdim=True) + 1e-4).sqrt()  # [B, C, 1]
        shape = x - mean  # level removed; scale kept (global z units), so flat noisy channels stay small
        patches = shape.reshape(b, c, t // self.patch, self.patch)  # [B, C, P, p]
        e = F.gelu(self.embed(patches) + self.pos)  # [B, C, P, d]
        e = self.mix(e.flatten(2))  # [B, C, d]
        level = torch.cat([x[..., -1:], mean], -1) * level_keep  # [B, C, 2] newest value, window mean
        s = self.stats(torch.cat([level, std.log()], -1))  # [B, C, d]
        if self.dynamics is not None:
            s = s + self.dynamics(dynamics_scalars(x))  # [B, C, d]
        z = self.out(self.drop(F.gelu(e + s)))  # [B, C, d]
        return self.norm(z) * mask.unsqueeze(-1)


class ChannelAttention(nn.Module):
    """One pre-norm transformer layer across channel tokens with a key-padding mask: [B, C, d] -> [B, C, d]."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        d = cfg.d
        self.heads = cfg.heads
        self.norm1 = nn.LayerNorm(d)
        self.qkv = nn.Linear(d, 3 * d)
        self.proj = nn.Linear(d, d)
        self.norm2 = nn.LayerNorm(d)
        self.ff = nn.Sequential(nn.Linear(d, cfg.ff_mult * d), nn.GELU(), nn.Linear(cfg.ff_mult * d, d))
        self.drop = nn.Dropout(cfg.dropout)

    def forward(self, z: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        b, c, d = z.shape
        hd = d // self.heads
        q, k, v = self.qkv(self.norm1(z)).chunk(3, dim=-1)  # 3 x [B, C, d]
        q = q.reshape(b, c, self.heads, hd).transpose(1, 2)  # [B, H, C, hd]
        k = k.reshape(b, c, self.heads, hd).transpose(1, 2)
        v = v.reshape(b, c, self.heads, hd).transpose(1, 2)
        logits = q @ k.transpose(-1, -2) / math.sqrt(hd)  # [B, H, C, C]
        logits = logits.masked_fill(mask[:, None, None, :] < 0.5, NEG)
        a = torch.softmax(logits, -1)
        mixed = (a @ v).transpose(1, 2).reshape(b, c, d)  # [B, C, d]
        h = z + self.drop(self.proj(mixed))
        return h + self.drop(self.ff(self.norm2(h)))


class CatVsn(nn.Module):
    """Channel-as-token encoder + per-device variable-selection readout (see module docstring)."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.cfg = cfg
        d = cfg.d
        n_ch = len(cfg.channel_kinds)
        self.encoder = ChannelEncoder(cfg)
        self.channel_emb = nn.Embedding(n_ch, d)
        self.kind_emb = nn.Embedding(len(KINDS), d)
        self.register_buffer(
            "kind_of", torch.tensor([KINDS.index(k) for k in cfg.channel_kinds], dtype=torch.long)
        )
        keep = [0.0 if k in cfg.level_free_kinds else 1.0 for k in cfg.channel_kinds]
        self.register_buffer("level_keep", torch.tensor(keep), persistent=False)  # [n_ch]
        self.context = ChannelAttention(cfg)
        self.key_norm = nn.LayerNorm(d)
        self.key = nn.Linear(d, d)
        n_dev = len(cfg.devices)
        self.query = nn.Parameter(torch.randn(n_dev, d) / math.sqrt(d))
        # Per-channel values from the UNMIXED tokens: [B, C, d] -> [B, C, O], O = sum of heads' outputs.
        n_out = sum(h.n_out for h in cfg.devices)
        self.value = nn.Sequential(nn.Linear(d, d), nn.GELU(), nn.Linear(d, n_out))
        self.value_bias = nn.Parameter(torch.zeros(n_out))
        out_dev = [i for i, h in enumerate(cfg.devices) for _ in range(h.n_out)]
        self.register_buffer("out_device", torch.tensor(out_dev, dtype=torch.long))  # [O]
        self.one_out_per_device = n_out == n_dev  # then out_device is the identity (no gather needed)
        # Output assembly: binary heads vectorized, then level/setpoint heads, then back to device order.
        starts = [sum(h.n_out for h in cfg.devices[:k]) for k in range(n_dev)]
        self.binary = [k for k, h in enumerate(cfg.devices) if h.kind == "binary"]
        self.register_buffer(
            "binary_cols", torch.tensor([starts[k] for k in self.binary], dtype=torch.long), persistent=False
        )
        self.others = [(k, starts[k]) for k, h in enumerate(cfg.devices) if h.kind != "binary"]
        order = self.binary + [k for k, _ in self.others]
        self.identity_order = order == list(range(n_dev))
        self.register_buffer(
            "device_order",
            torch.tensor([order.index(k) for k in range(n_dev)], dtype=torch.long),
            persistent=False,
        )

    def raw(
        self, x: torch.Tensor, mask: torch.Tensor, channel_ids: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Training view: (raw outputs [B, O], attention [B, D, C], per-channel values [B, C, O])."""
        mask = mask.to(x.dtype)
        x = x * mask.unsqueeze(-1)  # masked channels carry no signal, whatever was fed
        z = self.encoder(x, mask, self.level_keep[channel_ids].unsqueeze(-1))  # [B, C, d]
        table = self.channel_emb.weight + self.kind_emb.weight[self.kind_of]  # [n_ch, d], constant in ONNX
        z = z + F.embedding(
            channel_ids, table
        )  # [B, C, d]; (advanced-indexing backward is not deterministic)
        h = self.context(z, mask)  # [B, C, d]
        keys = self.key(self.key_norm(h))  # [B, C, d]
        logits = torch.einsum("kd,bcd->bkc", self.query, keys) / math.sqrt(self.cfg.d)  # [B, D, C]
        logits = logits.masked_fill(mask[:, None, :] < 0.5, NEG)
        att = torch.softmax(logits, -1) * mask[:, None, :]  # [B, D, C]; all-masked -> zeros
        values = self.value(z)  # [B, C, O], each from its own channel only
        w = att if self.one_out_per_device else att.index_select(1, self.out_device)  # [B, O, C]
        out = (w * values.transpose(1, 2)).sum(-1) + self.value_bias  # [B, O]
        return out, att, values

    def forward(
        self, x: torch.Tensor, mask: torch.Tensor, channel_ids: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Bundle contract: (devices [B, D], confidence [B, D], attention [B, D, C])."""
        out, att, values = self.raw(x, mask, channel_ids)
        devs, confs = [], []
        if self.binary:
            p = torch.sigmoid(out[:, self.binary_cols])  # [B, n_binary]
            devs.append(p)
            confs.append(torch.maximum(p, 1 - p))
        for k, o in self.others:
            head = self.cfg.devices[k]
            if head.kind == "level":
                lv, cf = decode_level(out[:, o : o + head.n_out], head.mode)  # [B, 1] levels, confidence
                devs.append(lv)
                confs.append(cf)
            elif head.mode == "classes":
                sp, cf = decode_setpoint_classes(out[:, o : o + head.n_out], head.values)  # [B, 1] unit
                devs.append(sp)
                confs.append(cf)
            else:
                r = out[:, o : o + 1]  # [B, 1] normalized setpoint
                lo = head.min_value if head.min_value is not None else -1e9
                hi = head.max_value if head.max_value is not None else 1e9
                devs.append((r * head.std + head.mean).clamp(lo, hi))
                # spread: attention-weighted dispersion of the per-channel proposals (normalized units)
                v = values[:, :, o] + self.value_bias[o]  # [B, C]
                spread = (att[:, k, :] * (v - r).pow(2)).sum(-1, keepdim=True).sqrt()
                confs.append(1 - torch.tanh(spread))
        dev, conf = torch.cat(devs, -1), torch.cat(confs, -1)  # [B, D] in (binary, others) order
        if not self.identity_order:
            dev, conf = dev[:, self.device_order], conf[:, self.device_order]
        return dev, conf, att


def n_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())

"""A tiny contract-conformant model bundle built with `onnx.helper`, so runtime tests control the model exactly.

Per device d: logit_d = bias_d + sum_c W[id_c, d] * xn_c * mask_c, with xn_c the newest normalized value of
channel c. Output = sigmoid(logit) * scale_d + offset_d (binary: scale 1, offset 0; a level device with L
levels: scale L-1; a setpoint: scale/offset set the range). confidence = max(p, 1 - p). attention = |term|
(+ a tiny floor on live channels) normalized over channels: rows sum to 1 over live channels, 0 on masked.
Used by tests and benches (benches add `tests/` to sys.path); needs `onnx` (dev extra), never the runtime.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from edge_agent.manifest import ChannelSpec, DeviceSpec, Manifest, TierSpec, sha256_file, write_manifest

TIER_DEFAULTS = {
    "full": {"precision": "fp32"},
    "int8": {"precision": "int8"},
    "coarse": {"precision": "int8", "time_factor": 4},
    "focused": {"precision": "int8", "time_factor": 4, "channel_budget": 4},
    "sparse": {"precision": "int8", "time_factor": 4, "channel_budget": 4, "every_n_ticks": 2},
}


def build_model(
    weights: np.ndarray, bias: np.ndarray, scale: np.ndarray, offset: np.ndarray
) -> onnx.ModelProto:
    """weights [C_total, D]; bias, scale, offset [D]."""
    inits = [
        numpy_helper.from_array(weights.astype(np.float32), "W"),
        numpy_helper.from_array(bias.astype(np.float32), "bias"),
        numpy_helper.from_array(scale.astype(np.float32), "scale"),
        numpy_helper.from_array(offset.astype(np.float32), "offset"),
        numpy_helper.from_array(np.array([-1], np.int64), "start"),
        numpy_helper.from_array(np.array([2**62], np.int64), "end"),
        numpy_helper.from_array(np.array([2], np.int64), "ax2"),
        numpy_helper.from_array(np.array([1], np.int64), "ax1"),
        numpy_helper.from_array(np.array(1.0, np.float32), "one"),
        numpy_helper.from_array(np.array(1e-6, np.float32), "floor"),
        numpy_helper.from_array(np.array(1e-12, np.float32), "eps"),
    ]
    n = helper.make_node
    nodes = [
        n("Gather", ["W", "channel_ids"], ["w"], axis=0),  # [B, C, D]
        n("Slice", ["x", "start", "end", "ax2"], ["last"]),  # [B, C, 1]
        n("Unsqueeze", ["mask", "ax2"], ["m3"]),  # [B, C, 1]
        n("Mul", ["last", "m3"], ["lm"]),
        n("Mul", ["w", "lm"], ["term"]),  # [B, C, D]
        n("ReduceSum", ["term", "ax1"], ["s"], keepdims=0),  # [B, D]
        n("Add", ["s", "bias"], ["logit"]),
        n("Sigmoid", ["logit"], ["p"]),
        n("Mul", ["p", "scale"], ["ps"]),
        n("Add", ["ps", "offset"], ["devices"]),
        n("Sub", ["one", "p"], ["q"]),
        n("Max", ["p", "q"], ["confidence"]),
        n("Abs", ["term"], ["a"]),
        n("Mul", ["m3", "floor"], ["fl"]),
        n("Add", ["a", "fl"], ["a2"]),
        n("ReduceSum", ["a2", "ax1"], ["asum"], keepdims=1),  # [B, 1, D]
        n("Add", ["asum", "eps"], ["asum2"]),
        n("Div", ["a2", "asum2"], ["att"]),  # [B, C, D]
        n("Transpose", ["att"], ["attention"], perm=[0, 2, 1]),  # [B, D, C]
    ]
    f = TensorProto.FLOAT
    graph = helper.make_graph(
        nodes,
        "testbundle",
        [
            helper.make_tensor_value_info("x", f, ["B", "C", "T"]),
            helper.make_tensor_value_info("mask", f, ["B", "C"]),
            helper.make_tensor_value_info("channel_ids", TensorProto.INT64, ["B", "C"]),
        ],
        [
            helper.make_tensor_value_info("devices", f, ["B", "D"]),
            helper.make_tensor_value_info("confidence", f, ["B", "D"]),
            helper.make_tensor_value_info("attention", f, ["B", "D", "C"]),
        ],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def build_bundle(
    out: Path,
    channels: Sequence[ChannelSpec],
    devices: Sequence[DeviceSpec],
    weights: np.ndarray,
    bias: np.ndarray,
    *,
    scale: np.ndarray | None = None,
    offset: np.ndarray | None = None,
    tiers: Sequence[str] = ("full", "int8", "coarse", "focused", "sparse"),
    step_seconds: float = 10.0,
    window: int = 16,
    version: str = "test-1",
    metrics: dict[str, float] | None = None,
) -> Path:
    """Write a bundle directory (one identical ONNX file per tier) and return its path."""
    out.mkdir(parents=True, exist_ok=True)
    d = len(devices)
    scale = np.ones(d) if scale is None else scale
    offset = np.zeros(d) if offset is None else offset
    data = build_model(weights, bias, scale, offset).SerializeToString()
    specs = []
    for name in tiers:
        f = out / f"model_{name}.onnx"
        f.write_bytes(data)
        extra = dict(TIER_DEFAULTS[name])
        specs.append(TierSpec(name=name, file=f.name, sha256=sha256_file(f), **extra))  # type: ignore[arg-type]
    manifest = Manifest(
        version=version,
        created="2026-01-01T00:00:00Z",
        step_seconds=step_seconds,
        window=window,
        channels=list(channels),
        devices=list(devices),
        tiers=specs,
        metrics=dict(metrics or {}),
    )
    write_manifest(out, manifest)
    return out


HOME_CHANNELS = [
    ChannelSpec(name="living.motion", kind="motion", mean=0.0, std=1.0),
    ChannelSpec(name="living.illuminance", kind="illuminance", unit="lux", mean=0.0, std=100.0),
    ChannelSpec(name="living.temperature", kind="temperature", unit="°C", mean=20.0, std=5.0),
    ChannelSpec(name="hall.door", kind="contact", mean=0.0, std=1.0),
    ChannelSpec(name="bedroom.humidity", kind="humidity", unit="%", mean=50.0, std=20.0),
    ChannelSpec(name="calendar.tod_sin", kind="calendar", mean=0.0, std=1.0),
]
HOME_DEVICES = [
    DeviceSpec(name="living.light", kind="binary", threshold=0.5),
    DeviceSpec(name="bedroom.fan", kind="level", levels=4),
    DeviceSpec(name="living.heating", kind="setpoint", unit="°C", min_value=15, max_value=25),
]


def home_bundle(out: Path, **kw: object) -> Path:
    """living.light = sigmoid(8*motion - 4*lux/100 - 4): ON with motion in the dark, OFF otherwise.
    bedroom.fan = 3*sigmoid(3*(hum-50)/20 - 1.5); living.heating = 15 + 10*sigmoid(-2*(temp-20)/5)."""
    w = np.zeros((len(HOME_CHANNELS), len(HOME_DEVICES)))
    w[0, 0], w[1, 0] = 8.0, -4.0
    w[4, 1] = 3.0
    w[2, 2] = -2.0
    bias = np.array([-4.0, -1.5, 0.0])
    return build_bundle(
        out,
        HOME_CHANNELS,
        HOME_DEVICES,
        w,
        bias,
        scale=np.array([1.0, 3.0, 10.0]),
        offset=np.array([0.0, 0.0, 15.0]),
        **kw,
    )  # type: ignore[arg-type]


def simhome_bundle(out: Path, **kw: object) -> Path:
    """A bundle over the simulated home's channels and devices: each room's light follows motion in the dark,
    the bedroom fan follows humidity, the heating follows the living-room temperature."""
    from simhome.layout import CHANNELS, DEVICES

    scale = {"illuminance": 100.0, "temperature": 5.0, "humidity": 20.0, "co2": 300.0, "power": 1000.0}
    mean = {"temperature": 20.0, "humidity": 50.0, "co2": 600.0, "power": 500.0}
    chans = [
        ChannelSpec(
            name=c.name,
            kind=c.kind,
            unit=c.unit,
            mean=mean.get(c.kind, 0.0),  # type: ignore[arg-type]
            std=scale.get(c.kind, 1.0),
        )
        for c in CHANNELS
    ]
    devs = [
        DeviceSpec(
            name=d.name,
            kind=d.kind,
            unit=d.unit,
            levels=d.levels,
            min_value=d.min_value,  # type: ignore[arg-type]
            max_value=d.max_value,
        )
        for d in DEVICES
    ]
    idx = {c.name: i for i, c in enumerate(chans)}
    w = np.zeros((len(chans), len(devs)))
    bias = np.zeros(len(devs))
    sc, off = np.ones(len(devs)), np.zeros(len(devs))
    for j, d in enumerate(devs):
        room = d.name.split(".")[0]
        if d.kind == "binary":
            w[idx[f"{room}.motion"], j], w[idx[f"{room}.illuminance"], j], bias[j] = 8.0, -4.0, -4.0
        elif d.kind == "level":
            w[idx[f"{room}.humidity"], j], bias[j], sc[j] = 3.0, -1.5, d.levels - 1
        else:
            w[idx[f"{room}.temperature"], j], sc[j], off[j] = -2.0, 10.0, 15.0
    return build_bundle(
        out,
        chans,
        devs,
        w,
        bias,
        scale=sc,
        offset=off,
        step_seconds=60.0,
        window=16,
        version="sim-test-1",
        **kw,
    )  # type: ignore[arg-type]

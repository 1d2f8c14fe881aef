"""The model bundle contract: `manifest.json` schema shared by `training/` (writer) and the runtime (reader).

A bundle is a directory holding `manifest.json` and one ONNX file per tier. Every tier takes the same
inputs and gives the same outputs (see DESIGN.md):

  inputs   x            float32 [batch, channels, time]   normalized: (raw - mean) / std, 0 where masked
           mask         float32 [batch, channels]         1 live, 0 stale/missing
           channel_ids  int64   [batch, channels]         index into `Manifest.channels`
  outputs  devices      float32 [batch, n_devices]        per device, by `DeviceSpec.kind`:
                                                            binary   -> probability of ON
                                                            level    -> expected level (sum_k p_k * k)
                                                            setpoint -> value in the device's unit
           confidence   float32 [batch, n_devices]        binary: max(p, 1-p); level: max class prob;
                                                            setpoint: 1 - normalized spread (0..1)
           attention    float32 [batch, n_devices, channels]  rows sum to 1 over live channels, 0 on masked

Time axis: `window` steps of `step_seconds`, oldest first, newest last. A tier with `time_factor` f is fed
`window // f` steps, each the mean of f consecutive fine steps, groups aligned at the newest step.
A tier with `channel_budget` k is fed only the k channels chosen by the runtime (top by running attention).
A tier with `every_n_ticks` n > 1 runs on every n-th periodic tick only (decisions held in between);
fast-channel events still trigger it. A tier with `offered: false` (it failed the event-response test at
export, `event_check`) is in the bundle but not on the runtime's ladder (`Manifest.ladder`).

Channels of kind `calendar` are not sensors: both sides compute them in the home's time zone (`timezone`)
with the formulas of `edge_agent.calendar_features`.

This module is pure pydantic: no onnxruntime, no torch, so both sides and the tests can import it.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from edge_agent.kinds import FAST_KINDS, ChannelKind

__all__ = ["FAST_KINDS", "ChannelKind"]  # re-exported: the kinds table lives in edge_agent.kinds

MANIFEST_FORMAT = 1
MANIFEST_NAME = "manifest.json"

DeviceKind = Literal["binary", "level", "setpoint"]
Precision = Literal["fp32", "int8"]
TierName = Literal["full", "int8", "coarse", "focused", "sparse"]
TIER_ORDER: tuple[str, ...] = ("full", "int8", "coarse", "focused", "sparse")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ChannelSpec(_Strict):
    name: str = Field(
        description="Channel name, e.g. 'kitchen.motion'; the runtime's topic mapping targets it"
    )
    unit: str = Field(default="", description="Physical unit, e.g. '°C', 'lux', 'ppm', '' for 0/1 events")
    kind: ChannelKind = Field(
        default="generic", description="Physical kind: sets validation bounds and fast/slow"
    )
    mean: float = Field(description="Training mean used to normalize raw readings")
    std: float = Field(gt=0, description="Training standard deviation used to normalize raw readings")


class DeviceSpec(_Strict):
    name: str = Field(description="Device name, e.g. 'kitchen.light'")
    kind: DeviceKind = Field(description="binary (on/off), level (0..levels-1, e.g. fan), setpoint (value)")
    unit: str = Field(default="", description="Unit of a setpoint device, e.g. '°C'")
    threshold: float = Field(
        default=0.5, description="binary: probability above which the decision is ON (chosen on validation)"
    )
    levels: int = Field(default=2, ge=2, description="level: number of levels (0..levels-1)")
    min_value: float | None = Field(default=None, description="setpoint: lowest value the model may output")
    max_value: float | None = Field(default=None, description="setpoint: highest value the model may output")


class EventCheck(_Strict):
    """A tier's event response in the closed loop on the simulated home (training.tierevents): at every
    event-triggered decision, the tier's target per device vs the full tier's on the same window."""

    decisions: int = Field(ge=0, description="Event-triggered (decision, device) pairs checked")
    relevant: int = Field(
        default=0, ge=0, description="Of them, where the event changed the full tier's or this tier's answer"
    )
    full_commands: int = Field(ge=0, description="Of the relevant ones, where the full tier sends a command")
    missed: int = Field(ge=0, description="The full tier commands, this tier does not follow (or differs)")
    wrong: int = Field(
        ge=0, description="This tier commands where the full tier does not (e.g. ON when motion stops)"
    )
    agreement: float = Field(ge=0, le=1, description="Fraction of all the pairs where the targets agree")
    agreement_relevant: float = Field(
        default=1.0, ge=0, le=1, description="Fraction of the relevant pairs where the targets agree"
    )
    passed: bool = Field(description="Met the event test (agreement and missed/wrong limits at export)")


class Quantization(_Strict):
    """What of a tier's file is really int8 (training.quantize): a tier is never a float graph called int8."""

    method: str = Field(
        description="How the file was made from its fp32 export: 'dynamic' (int8 weights, each MatMul's "
        "input quantized per call), 'dynamic-large' (only the large MatMuls), 'none' (fp32 kept)"
    )
    quantized_nodes: int = Field(ge=0, description="Nodes of the fp32 graph that run in int8 in this file")
    quantizable_nodes: int = Field(ge=0, description="MatMul/Gemm nodes of the fp32 graph with a weight")
    total_nodes: int = Field(ge=1, description="Nodes of the fp32 graph (before onnxruntime's fusions)")
    latency_ratio_vs_fp32: float | None = Field(
        default=None,
        description="Median per-call time ratio to the fp32 file, interleaved in the same run at quantization",
    )
    agreement_vs_fp32: float | None = Field(
        default=None, ge=0, le=1, description="Decision agreement with the fp32 file on validation windows"
    )
    rejected: dict[str, str] = Field(
        default_factory=dict, description="Other methods tried and why they were not chosen"
    )


class TierSpec(_Strict):
    name: TierName = Field(
        description="Tier name on the ladder, best first: full, int8, coarse, focused, sparse"
    )
    file: str = Field(description="ONNX file name, relative to the bundle directory")
    sha256: str = Field(description="Hex sha256 of the ONNX file; the runtime refuses a mismatch")
    precision: Precision = Field(description="Weights precision of this file")
    time_factor: int = Field(default=1, ge=1, description="Fine steps merged per input step (coarse tiers)")
    channel_budget: int | None = Field(
        default=None, ge=1, description="Feed only this many channels (top by running attention); None = all"
    )
    every_n_ticks: int = Field(default=1, ge=1, description="Run on every n-th periodic tick only")
    latency_us_p50: float | None = Field(default=None, description="Measured at export, 1 thread, batch 1")
    latency_us_p99: float | None = Field(default=None, description="Measured at export, 1 thread, batch 1")
    event_check: EventCheck | None = Field(
        default=None, description="Event response at export (closed loop); None = not tested (offered)"
    )
    offered: bool = Field(
        default=True,
        description="False: the tier failed the event test (or its int8 did not pay) and the runtime's "
        "ladder skips it",
    )
    quantization: Quantization | None = Field(
        default=None, description="What of the file is int8 and how it was chosen; None = not recorded"
    )

    @property
    def unpaid_int8(self) -> bool:
        """The int8 tier where no int8 variant paid: an fp32 copy of `full`, never on the ladder."""
        return self.name == "int8" and self.quantization is not None and self.quantization.method == "none"

    @model_validator(mode="after")
    def _honest_precision(self) -> TierSpec:
        q = self.quantization
        if q is not None and (self.precision == "int8") != (q.quantized_nodes > 0):
            raise ValueError(
                f"tier {self.name!r}: precision {self.precision} but {q.quantized_nodes} int8 nodes "
                f"(method {q.method!r}); precision must say int8 exactly when nodes are quantized"
            )
        return self


class SplitPart(_Strict):
    source: str = Field(description="Dataset the part was read from (a resolved path or a built-in name)")
    first: str | None = Field(default=None, description="First row of the part, ISO 8601 UTC")
    last: str | None = Field(default=None, description="Last row of the part, ISO 8601 UTC")
    rows: int = Field(default=0, ge=0, description="Grid rows in the part")


class SplitRecord(_Strict):
    rule: str = Field(
        description="How the parts were cut, e.g. 'files', 'dates 2024-06-30,2024-09-30' (first day of "
        "validation, first day of test), 'fractions 0.7,0.85', 'holdout 2 days'"
    )
    parts: dict[str, SplitPart] = Field(description="train, val and the test parts (test, test2)")


class Manifest(_Strict):
    format: int = Field(default=MANIFEST_FORMAT, description="Manifest format version")
    version: str = Field(description="Model version, unique per training run (e.g. '20261125T101500-uci')")
    created: str = Field(description="Creation time, ISO 8601 UTC")
    dataset: str = Field(default="", description="Name of the dataset it was trained on")
    step_seconds: float = Field(
        ge=0.1, le=86400.0, description="Seconds per time step of the window (0.1 s .. 1 day)"
    )
    window: int = Field(ge=1, description="Number of fine time steps in the input window")
    channels: list[ChannelSpec] = Field(min_length=1)
    devices: list[DeviceSpec] = Field(min_length=1)
    tiers: list[TierSpec] = Field(min_length=1, description="Ordered best first")
    timezone: str | None = Field(
        default=None,
        description="IANA time zone the calendar inputs were computed in (the home's); None = unknown (old bundle)",
    )
    training_span: tuple[str, str] | None = Field(default=None, description="First/last training timestamp")
    metrics: dict[str, float] = Field(default_factory=dict, description="Holdout metrics, flat name -> value")
    split: SplitRecord | None = Field(
        default=None, description="The train/val/test split used (None: old bundle)"
    )
    threshold_rule: str | None = Field(
        default=None,
        description="Rule the binary thresholds were chosen by on validation (f1, cost:ON/OFF...)",
    )

    def ladder(self) -> list[str]:
        """The tiers the runtime may switch between, best first: the offered ones (the first tier, the
        reference the others are tested against, always); never an int8 tier whose int8 did not pay."""
        return [t.name for i, t in enumerate(self.tiers) if (t.offered and not t.unpaid_int8) or i == 0]

    def channel_index(self) -> dict[str, int]:
        return {c.name: i for i, c in enumerate(self.channels)}

    def tier(self, name: str) -> TierSpec:
        for t in self.tiers:
            if t.name == name:
                return t
        raise KeyError(name)


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def read_manifest(bundle_dir: Path) -> Manifest:
    """Parse `bundle_dir/manifest.json` (raises FileNotFoundError / pydantic.ValidationError / ValueError)."""
    text = (Path(bundle_dir) / MANIFEST_NAME).read_text(encoding="utf-8")
    return Manifest.model_validate(json.loads(text))


def write_manifest(bundle_dir: Path, manifest: Manifest) -> Path:
    path = Path(bundle_dir) / MANIFEST_NAME
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(manifest.model_dump_json(indent=2), encoding="utf-8")
    tmp.replace(path)
    return path

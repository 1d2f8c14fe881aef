"""Inference: load a model bundle (manifest + one ONNX file per tier), verify it, and run onnxruntime.

Loading checks the manifest, then every tier's file and sha256 (`verify_bundle`, the one verifier, shared
with training's evaluation: a mismatch is refused with a message naming the file and the fix), then opens one
session per distinct file (`open_session` with `session_options`, also shared with training:
CPUExecutionProvider only, sequential, `threads` intra-op threads) and warms each up once. `run` normalizes
raw readings with the manifest's mean/std (`edge_agent.features.normalize`: masked or missing -> 0) and
returns device outputs, confidence and attention; the run goes through buffers bound once per input shape
(`edge_agent.ortbind`).
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnxruntime as ort
from pydantic import ValidationError

from edge_agent.features import event_rows, normalize
from edge_agent.manifest import MANIFEST_NAME, Manifest, TierSpec, read_manifest, sha256_file
from edge_agent.ortbind import BoundRunner

logger = logging.getLogger(__name__)

INPUTS = ("x", "mask", "channel_ids")
OUTPUTS = ("devices", "confidence", "attention")
MAX_SCALES = 64  # channel sets whose mean/std rows are kept (the focused tier's set changes slowly)


class BundleError(Exception):
    """The bundle cannot be used; the message names the file and the fix."""


@dataclass(frozen=True, slots=True)
class ModelOutput:
    devices: np.ndarray  # [D] float32: probability / expected level / setpoint per device
    confidence: np.ndarray  # [D] float32, 0..1
    attention: np.ndarray  # [D, C_fed] float32, rows sum to 1 over live fed channels


class Bundle:
    """A verified bundle with open sessions, ready to run any of its tiers."""

    def __init__(self, path: Path, manifest: Manifest, sessions: dict[str, ort.InferenceSession]) -> None:
        self.path = path
        self.manifest = manifest
        self._sessions = sessions  # tier name -> session
        runners: dict[int, BoundRunner] = {}  # one per distinct session (tiers may share a file)
        n_dev = len(manifest.devices)
        self._runners = {
            t: runners.setdefault(id(sess), BoundRunner(sess, n_dev, OUTPUTS)) for t, sess in sessions.items()
        }
        self._scale: dict[bytes, tuple[np.ndarray, np.ndarray]] = {}  # channel ids -> (mean, std) [C_fed]
        self.mean = np.array([c.mean for c in manifest.channels], dtype=np.float32)  # [C]
        self.std = np.array([c.std for c in manifest.channels], dtype=np.float32)  # [C]
        self.event = event_rows([c.kind for c in manifest.channels])  # [C] bool: pooled by max
        self.tiers = [t.name for t in manifest.tiers]  # every tier in the bundle (evaluation runs any)
        self.ladder = manifest.ladder()  # the ones the governor may serve: offered (passed the event test)

    @property
    def version(self) -> str:
        return self.manifest.version

    def tier(self, name: str) -> TierSpec:
        return self.manifest.tier(name)

    @classmethod
    def load(cls, path: str | Path, threads: int = 1) -> Bundle:
        """Verify (`verify_bundle`) and open a bundle directory (raises BundleError)."""
        path = Path(path)
        manifest = verify_bundle(path)
        by_file: dict[str, ort.InferenceSession] = {}
        sessions: dict[str, ort.InferenceSession] = {}
        for tier in manifest.tiers:
            if tier.sha256 not in by_file:
                by_file[tier.sha256] = open_session(path / tier.file, threads)
            sessions[tier.name] = by_file[tier.sha256]
        bundle = cls(path, manifest, sessions)
        bundle._warm_up()
        logger.info(
            "bundle %s loaded from %s: %d channels, %d devices, tiers %s",
            manifest.version,
            path,
            len(manifest.channels),
            len(manifest.devices),
            bundle.tiers,
        )
        return bundle

    def _warm_up(self) -> None:
        c = len(self.manifest.channels)
        for t in self.manifest.tiers:
            steps = max(1, self.manifest.window // t.time_factor)
            fed = min(c, t.channel_budget or c)
            try:
                self.run(
                    t.name,
                    np.zeros((fed, steps), np.float32),
                    np.ones(fed, np.float32),
                    np.arange(fed, dtype=np.int64),
                )
            except (
                Exception
            ) as e:  # onnxruntime's error classes are untyped; any failure makes the tier unusable
                raise BundleError(
                    f"{self.path / t.file}: tier {t.name!r} does not run with the contract's inputs ({e}); "
                    "rebuild the bundle"
                ) from None

    def run(self, tier: str, x_raw: np.ndarray, mask: np.ndarray, channel_ids: np.ndarray) -> ModelOutput:
        """Run one tier on raw readings x_raw [C_fed, T] with mask [C_fed] and channel_ids [C_fed]."""
        ids = np.asarray(channel_ids, dtype=np.int64)  # [C_fed]
        m = np.asarray(mask, dtype=np.float32)  # [C_fed]
        key = ids.tobytes()
        scale = self._scale.get(key)
        if scale is None:
            if len(self._scale) >= MAX_SCALES:
                self._scale.clear()
            scale = self._scale[key] = (self.mean[ids], self.std[ids])
        mean, std = scale

        def fill(out: np.ndarray) -> None:  # normalized straight into the bound input [C_fed, T]
            normalize(x_raw, m, mean, std, out=out)

        # [1, D], [1, D], [1, D, C_fed]
        devices, confidence, attention = self._runners[tier].run_filled(x_raw.shape, fill, m, ids)
        return ModelOutput(devices[0], confidence[0], attention[0])


def verify_bundle(path: str | Path) -> Manifest:
    """The manifest of the bundle directory `path` once it and every tier file's sha256 check out.

    The one verifier of both sides (the daemon's `Bundle.load`, training's `evaluate`); raises BundleError
    whose message names the file and the fix. Opens no session.
    """
    path = Path(path)
    fix = "point at a model bundle directory (manifest.json + one ONNX file per tier)"
    if not path.exists():
        raise BundleError(f"{path}: no such bundle directory; {fix}")
    mpath = path / MANIFEST_NAME
    if not mpath.is_file():
        raise BundleError(f"{mpath}: missing, so {path} is not a model bundle; {fix}")
    try:
        manifest = read_manifest(path)
    except ValidationError as e:
        first = e.errors()[0]
        key = ".".join(str(p) for p in first["loc"])
        raise BundleError(f"{mpath}: invalid manifest at {key}: {first['msg']}; rebuild the bundle") from None
    except ValueError as e:
        raise BundleError(f"{mpath}: not valid JSON ({e}); rebuild or re-copy the bundle") from None
    for tier in manifest.tiers:
        f = path / tier.file
        if not f.is_file():
            raise BundleError(f"{f}: tier {tier.name!r} file is missing; re-copy or rebuild the bundle")
        digest = sha256_file(f)
        if digest != tier.sha256:
            raise BundleError(
                f"{f}: sha256 mismatch for tier {tier.name!r} (manifest {tier.sha256[:12]}..., file "
                f"{digest[:12]}...): the file is corrupt or was changed; re-copy or rebuild the bundle"
            )
    return manifest


def session_options(threads: int = 1) -> ort.SessionOptions:
    """The daemon's onnxruntime options: `threads` intra-op threads, sequential, all graph optimizations,
    no spinning (no busy-wait on a shared hub), warnings off. Training and the benches use the same."""
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    so.add_session_config_entry("session.intra_op.allow_spinning", "0")
    so.log_severity_level = 3
    return so


def open_session(f: str | Path, threads: int = 1) -> ort.InferenceSession:
    """A CPU session on `f` with `session_options(threads)`, checked against the contract's input/output names
    (BundleError naming the file otherwise)."""
    f = Path(f)
    try:
        sess = ort.InferenceSession(
            os.fspath(f), sess_options=session_options(threads), providers=["CPUExecutionProvider"]
        )
    except Exception as e:  # onnxruntime raises its own untyped errors for any bad model file
        raise BundleError(
            f"{f}: onnxruntime cannot load it ({str(e).splitlines()[0][:200]}); rebuild the bundle"
        ) from None
    names_in = {i.name for i in sess.get_inputs()}
    names_out = {o.name for o in sess.get_outputs()}
    if not set(INPUTS) <= names_in or not set(OUTPUTS) <= names_out:
        raise BundleError(
            f"{f}: inputs {sorted(names_in)} / outputs {sorted(names_out)} do not match the bundle contract "
            f"({list(INPUTS)} -> {list(OUTPUTS)}); rebuild the bundle"
        )
    return sess

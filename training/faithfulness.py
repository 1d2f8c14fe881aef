"""Is the published attention a true explanation? Single-channel deletion agreement and deletion curves.

For each window and device: the channel with the top attention vs the channel whose masking (mask = 0, the
in-distribution way the contract removes a channel) moves that device's output most (`faithfulness_top1`).
Deletion curve: mask channels cumulatively in attention order vs in a random order and record the mean
output change (AOPC = area over the curve); attention order should destroy the output faster.
Outputs are compared on one scale per device: probability (binary), levels / (L - 1), setpoint / range.
Every figure is also given per device (head): `faithfulness_top1_devices`, `..._informative_devices`,
`aopc_ratio_devices`, and the worst head `faithfulness_top1_min`, so a head that spreads its attention is not
hidden by the average.
"""

from __future__ import annotations

import numpy as np
import onnxruntime as ort

from edge_agent.manifest import DeviceSpec
from training.ortrun import run_batched


def _scale(devices: list[DeviceSpec]) -> np.ndarray:
    out = []
    for d in devices:
        if d.kind == "level":
            out.append(float(d.levels - 1))
        elif d.kind == "setpoint" and d.min_value is not None and d.max_value is not None:
            out.append(max(d.max_value - d.min_value, 1e-6))
        else:
            out.append(1.0)
    return np.asarray(out, dtype=np.float32)


def _masked_by_order(mask: np.ndarray, order: np.ndarray, j: int) -> np.ndarray:
    m = mask.copy()
    np.put_along_axis(m, order[:, :j], 0.0, axis=1)
    return m


def faithfulness(
    sess: ort.InferenceSession,
    x: np.ndarray,
    mask: np.ndarray,
    ids: np.ndarray,
    devices: list[DeviceSpec],
    seed: int = 0,
) -> dict[str, object]:
    """Faithfulness figures of one session on normalized windows x [N, C, T], mask [N, C], ids [N, C]."""
    rng = np.random.default_rng(seed)
    base, _, att = run_batched(sess, x, mask, ids)  # [N, D], [N, D, C]
    n, c = mask.shape
    d = len(devices)
    scale = _scale(devices)
    live = mask > 0  # [N, C]
    delta = np.full((n, d, c), -np.inf, dtype=np.float32)
    for ch in range(c):
        m = mask.copy()
        m[:, ch] = 0.0
        out = run_batched(sess, x, m, ids)[0]
        delta[:, :, ch] = np.where(live[:, ch, None], np.abs(out - base) / scale, -np.inf)
    valid = live.sum(1) >= 2  # [N]: a choice between channels exists
    top_att = att.argmax(-1)  # [N, D]
    top_del = delta.argmax(-1)  # [N, D]
    hit = (top_att == top_del)[valid]  # [M, D]
    informative = (delta.max(-1) > 1e-3)[valid]  # some deletion moves the output
    res: dict[str, object] = {
        "faithfulness_top1": float(hit.mean()) if hit.size else float("nan"),
        "faithfulness_top1_informative": float(hit[informative].mean())
        if informative.any()
        else float("nan"),
        "faithfulness_windows": int(valid.sum()),
        "faithfulness_top1_devices": {
            dv.name: float(hit[:, k].mean()) if hit.size else float("nan") for k, dv in enumerate(devices)
        },
        "faithfulness_top1_informative_devices": {
            dv.name: float(hit[informative[:, k], k].mean()) if informative[:, k].any() else float("nan")
            for k, dv in enumerate(devices)
        },
    }
    per_head = list(res["faithfulness_top1_devices"].values())  # type: ignore[attr-defined]
    res["faithfulness_top1_min"] = float(min(per_head)) if hit.size else float("nan")
    # deletion curves: j = 1 .. C-1 channels removed; only windows with more than j live channels count
    att_curve, rnd_curve = [], []
    att_dev: list[list[float]] = [[] for _ in range(d)]  # per device: mean change, attention order
    rnd_dev: list[list[float]] = [[] for _ in range(d)]  # per device: mean change, random order
    noise = rng.random((n, c))
    rnd_order = np.argsort(np.where(live, noise, 2.0), axis=1)  # live channels first, random among them
    n_live = live.sum(1)
    for j in range(1, c):
        rows = n_live > j
        if not rows.any():
            break
        out_r = run_batched(sess, x[rows], _masked_by_order(mask[rows], rnd_order[rows], j), ids[rows])[0]
        change_r = np.abs(out_r - base[rows]) / scale  # [R, D]
        rnd_curve.append(float(change_r.mean()))
        per_dev = []
        for k in range(d):
            order = np.argsort(np.where(live[rows], -att[rows, k], np.inf), axis=1)
            out_a = run_batched(sess, x[rows], _masked_by_order(mask[rows], order, j), ids[rows])[0]
            per_dev.append(np.abs(out_a[:, k] - base[rows, k]) / scale[k])
            att_dev[k].append(float(per_dev[-1].mean()))
            rnd_dev[k].append(float(change_r[:, k].mean()))
        att_curve.append(float(np.mean(per_dev)))
    aopc_a = float(np.mean(att_curve)) if att_curve else float("nan")
    aopc_r = float(np.mean(rnd_curve)) if rnd_curve else float("nan")
    res["deletion_curve"] = {
        "attention": att_curve,
        "random": rnd_curve,
        "aopc_attention": aopc_a,
        "aopc_random": aopc_r,
        "aopc_ratio": aopc_a / aopc_r if rnd_curve and aopc_r > 0 else float("nan"),
        "aopc_ratio_devices": {
            dv.name: float(np.mean(att_dev[k]) / np.mean(rnd_dev[k]))
            if rnd_dev[k] and np.mean(rnd_dev[k]) > 0
            else float("nan")
            for k, dv in enumerate(devices)
        },
    }
    return res

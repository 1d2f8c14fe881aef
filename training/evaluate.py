"""`python -m training evaluate BUNDLE ...`: every tier through onnxruntime, as the runtime runs it, vs baselines.

Per tier and test split: accuracy (mean over devices), per-device accuracy / balanced accuracy / F1 /
average precision / majority rate (+ MAE for setpoints), agreement with the full tier; per tier latency
p50/p99 (1 thread, batch 1) and torch eager latency of the same model in the same run; the classical
baselines on the same windows; faithfulness of the attention; data counts. Windows are normalized, masked
and pooled with the runtime's own functions (`edge_agent.features`), and a tier with a channel budget
(focused, sparse) is fed the channels the daemon would feed it: the runtime's `AttentionTracker`
(`edge_agent.focus.runtime_tracker`: running mean of the max over devices, fast channels always in) fed the
full tier's attention on the training windows in time order, then `edge_agent.tiering.select_channels`.
A tier with `every_n_ticks` n > 1 (sparse) runs on every n-th window and holds its decision in between.
Decisions follow the daemon's rule (`edge_agent.policy.decide_values`); the bundle is checked by the
daemon's verifier (`edge_agent.inference.verify_bundle`).
`--drop-channels X` masks X in every tier (a dead sensor) and fits the baselines without X.

What is fitted and scored is `training.evaldata`: the baselines are fitted on the training part of the
bundle's own split (thresholds on its validation part), and the scored part is the manifest's test part, or
a whole file (`--test-dataset F`, `--dataset F --whole`). Thresholds: the manifest's (the model) and its
rule (every baseline); `--threshold-rule R` re-chooses them by R for the model and every baseline on the
validation part. The report states the split and the rule.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
from pathlib import Path
from typing import Any

import numpy as np

from edge_agent.features import event_rows, normalize, pool_time
from edge_agent.focus import AttentionTracker, runtime_tracker
from edge_agent.inference import verify_bundle
from edge_agent.manifest import Manifest, TierSpec
from edge_agent.tiering import select_channels
from training.baselines import BASELINES, fit_baselines
from training.data import DataError, WindowSampler, drop_channels
from training.decisions import agree, decide
from training.evaldata import EvalData, resolve
from training.faithfulness import faithfulness
from training.metrics import device_metrics
from training.ortrun import make_session, ort_latency, run_batched
from training.sensorlog import SensorLog
from training.thresholds import DEFAULT_RULE, choose_threshold, parse_rule, sample_ends

logger = logging.getLogger(__name__)

CHUNK = 4096  # windows per evaluation chunk (bounded memory on long test spans)
# The tracker is fed the LAST training windows in time order: with the runtime's alpha (0.02) a window k
# updates back weighs 0.98^k, below 1e-40 at k = 5000, so this equals feeding every training window.
FOCUS_WINDOWS = 5000
METRIC_KEYS = ("accuracy", "balanced_accuracy", "f1", "average_precision", "majority_rate")


def open_bundle(path: Path) -> Manifest:
    """The bundle's manifest, checked by the runtime's verifier (BundleError, one line, otherwise)."""
    return verify_bundle(path)


def _align(man: Manifest, log: SensorLog) -> tuple[np.ndarray, np.ndarray]:
    """(column of each manifest channel in the log [C], column of each manifest device in the log [D])."""
    chans = [c.name for c in log.channels]
    devs = [d.name for d in log.devices]
    for c in man.channels:
        if c.name not in chans:
            raise DataError(
                f"bundle channel {c.name!r} is not in dataset {log.name} (channels: {', '.join(chans)}); "
                "evaluate on the data the bundle was trained on"
            )
    for d in man.devices:
        if d.name not in devs:
            raise DataError(
                f"bundle device {d.name!r} is not in dataset {log.name}; evaluate on its training data"
            )
    return (
        np.array([chans.index(c.name) for c in man.channels]),
        np.array([devs.index(d.name) for d in man.devices]),
    )


class Windows:
    """Normalized windows of one split in manifest channel order, chunk by chunk."""

    def __init__(self, man: Manifest, log: SensorLog, live: np.ndarray) -> None:
        self.man, self.log = man, log
        self.cols, self.dcols = _align(man, log)
        self.live = live  # float32 [C]: 0 for channels masked by --drop-channels
        self.sampler = WindowSampler(log, man.window)
        self.ends = self.sampler.ends
        self.mean = np.array([c.mean for c in man.channels], np.float32)
        self.std = np.array([c.std for c in man.channels], np.float32)

    def get(self, ends: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(x [B, C, T] normalized, mask [B, C], ids [B, C], labels [B, D]) in manifest order."""
        x, mask, labels = self.sampler.batch(ends)
        x, mask = x[:, self.cols], mask[:, self.cols] * self.live
        ids = np.broadcast_to(np.arange(len(self.cols), dtype=np.int64), mask.shape).copy()
        return normalize(x, mask, self.mean, self.std), mask, ids, labels[:, self.dcols]

    def chunks(self, ends: np.ndarray | None = None):  # type: ignore[no-untyped-def]
        e = self.ends if ends is None else ends
        for i in range(0, e.size, CHUNK):
            yield self.get(e[i : i + CHUNK])


def _tier_input(
    x: np.ndarray, mask: np.ndarray, ids: np.ndarray, tf: int, subset: np.ndarray | None, event: np.ndarray
):
    """The daemon's input of a tier: the channel subset, pooled per kind (`event` [C] over all channels)."""
    if subset is not None:
        x, mask, ids, event = x[:, subset], mask[:, subset], ids[:, subset], event[subset]
    return pool_time(x, tf, event), mask, ids


def focus_tracker(man: Manifest, bundle: Path, win: Windows) -> AttentionTracker:
    """The daemon's attention tracker after the full tier's attention on the training windows, in time order."""
    tracker = runtime_tracker(man)
    sess = make_session(bundle / man.tier("full").file)
    for x, mask, ids, _ in win.chunks(win.ends[-FOCUS_WINDOWS:]):
        att = run_batched(sess, x, mask, ids)[2]  # [B, D, C]
        for a, i in zip(att, ids, strict=True):
            tracker.update(a, i)
    return tracker


def tier_channels(man: Manifest, tracker: AttentionTracker) -> dict[str, np.ndarray | None]:
    """Per tier, the channel ids the daemon feeds it (`select_channels`, no event); None = all channels."""
    c = len(man.channels)
    return {
        t.name: select_channels(t, c, tracker, ()) if t.channel_budget and t.channel_budget < c else None
        for t in man.tiers
    }


def focus_channels(man: Manifest, bundle: Path, win: Windows, tier: str = "focused") -> np.ndarray:
    """Channel ids [k] the daemon would feed `tier` after the training windows (see `focus_tracker`)."""
    return select_channels(man.tier(tier), len(man.channels), focus_tracker(man, bundle, win), ())


def _key(t: TierSpec, sub: np.ndarray | None) -> tuple[str, int, tuple[int, ...] | None]:
    return t.file, t.time_factor, None if sub is None else tuple(int(i) for i in sub)


def run_tiers(
    man: Manifest, bundle: Path, win: Windows, chans: dict[str, np.ndarray | None]
) -> dict[str, Any]:
    """Outputs of every tier over the split: {'out': {tier: [N, D]}, 'labels': [N, D], 'attention': full [N, D, C]}.

    Tiers that share file, pooling and channel set are run once; a tier with every_n_ticks n > 1 keeps the
    output of every n-th window and holds it in between."""
    keys = {t.name: _key(t, chans[t.name]) for t in man.tiers}
    todo: dict[Any, TierSpec] = {}  # one run per distinct setup (focused and sparse share one)
    for t in man.tiers:
        todo.setdefault(keys[t.name], t)
    sessions = {k: make_session(bundle / t.file) for k, t in todo.items()}
    outs: dict[Any, list[np.ndarray]] = {k: [] for k in todo}
    labels, att = [], []
    ev = event_rows([c.kind for c in man.channels])  # [C]
    for x, mask, ids, y in win.chunks():
        labels.append(y)
        for k, t in todo.items():
            o, _, a = run_batched(sessions[k], *_tier_input(x, mask, ids, t.time_factor, chans[t.name], ev))
            outs[k].append(o)
            if k == keys["full"]:
                att.append(a)
    res = {}
    for t in man.tiers:
        o = np.concatenate(outs[keys[t.name]])
        n = t.every_n_ticks
        res[t.name] = o[(np.arange(len(o)) // n) * n] if n > 1 else o
    return {"out": res, "labels": np.concatenate(labels), "attention": np.concatenate(att)}


def split_metrics(
    man: Manifest, out: np.ndarray, y: np.ndarray, ref_dec: np.ndarray | None
) -> dict[str, Any]:
    dec = decide(out, man.devices)
    per = {}
    for k, d in enumerate(man.devices):
        scores = out[:, k] if d.kind == "binary" else None
        per[d.name] = device_metrics(d.kind, y[:, k], dec[:, k], scores=scores, levels=d.levels)
    res: dict[str, Any] = {
        "accuracy": float(np.nanmean([m["accuracy"] for m in per.values()])),
        "devices": per,
    }
    if ref_dec is not None:
        res["agreement_vs_full"] = float(agree(dec, ref_dec, man.devices).mean())
    return res


def rethreshold(
    man: Manifest, bundle: Path, val: Windows, rule: str, n: int | None = None
) -> tuple[Manifest, dict[str, float]]:
    """The manifest with each binary device's threshold re-chosen by `rule` on the full tier's outputs over
    the validation windows (all, or `n` evenly spaced); (manifest, {device: validation score})."""
    ends = sample_ends(val.ends, n)
    sess = make_session(bundle / man.tier("full").file)
    outs, labs = [], []
    for x, mask, ids, y in val.chunks(ends):
        outs.append(run_batched(sess, x, mask, ids)[0])
        labs.append(y)
    out, y = np.concatenate(outs), np.concatenate(labs)
    devs, scores = [], {}
    for k, d in enumerate(man.devices):
        if d.kind == "binary":
            known = ~np.isnan(y[:, k])
            thr, sc = choose_threshold(out[known, k], y[known, k], rule)
            d = d.model_copy(update={"threshold": thr})
            scores[d.name] = sc
        devs.append(d)
    return man.model_copy(update={"devices": devs, "threshold_rule": parse_rule(rule).name}), scores


def evaluate_bundle(
    bundle: Path,
    data: EvalData,
    eval_drop: list[str],
    *,
    latency_runs: int = 1000,
    faith_windows: int = 1000,
    threshold_rule: str | None = None,
    threshold_windows: int | None = None,
    baselines: tuple[str, ...] = BASELINES,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """(report dict, extras for plotting). See the module docstring for what is measured."""
    man = open_bundle(bundle)
    names = [c.name for c in man.channels]
    for c in eval_drop:
        if c not in names:
            raise DataError(f"--drop-channels: {c!r} is not a channel of the bundle ({', '.join(names)})")
    live = np.array([0.0 if n in eval_drop else 1.0 for n in names], np.float32)
    thr_note = "manifest"
    if threshold_rule:
        man, _ = rethreshold(
            man, bundle, Windows(man, data.fit["val"], np.ones_like(live)), threshold_rule, threshold_windows
        )
        thr_note = "re-chosen on the validation part"
    rule = parse_rule(threshold_rule or man.threshold_rule or DEFAULT_RULE).name
    parts = {**data.fit, **data.scored}
    splits = list(data.scored)
    chans = tier_channels(man, focus_tracker(man, bundle, Windows(man, parts["train"], live)))
    focus = chans.get("focused")
    report: dict[str, Any] = {
        "bundle": str(bundle),
        "version": man.version,
        "dataset": data.dataset,
        "split": data.split,
        "thresholds": {
            "rule": rule,
            "model": thr_note if man.threshold_rule or threshold_rule else "manifest (rule not recorded)",
            "baselines": f"chosen by {rule} on the validation part",
            "per_device": {d.name: d.threshold for d in man.devices if d.kind == "binary"},
        },
        "drop_channels": eval_drop,
        "focused_channels": [names[i] for i in (range(len(names)) if focus is None else focus)],
        "tiers": {t.name: {} for t in man.tiers},
        "baselines": {},
        "data": {},
    }
    extras: dict[str, Any] = {"manifest": man}
    wins = {s: Windows(man, parts[s], live) for s in splits}
    for s in splits:
        r = run_tiers(man, bundle, wins[s], chans)
        ref = decide(r["out"]["full"], man.devices)
        for t in man.tiers:
            report["tiers"][t.name][s] = split_metrics(man, r["out"][t.name], r["labels"], ref)
        if s == splits[0]:
            extras.update(sample=r, ends=wins[s].ends, log=parts[s])
    for name, log in parts.items():
        report["data"][name] = {
            "rows": int(log.stats.get("rows", len(log))),
            "masked_rows": int(log.stats.get("masked_rows", 0)),
            "windows": int(WindowSampler(log, man.window).ends.size),
        }
    report["baselines"], report["thresholds"]["baseline_values"] = _baselines(
        man, parts, wins, splits, eval_drop, rule, baselines
    )
    _latency(man, bundle, wins[splits[0]], chans, report, latency_runs)
    fw = _faith(man, bundle, wins, splits, faith_windows)
    report.update(fw)
    report["onnx_max_abs_error"] = max(
        man.metrics.get("onnx_max_abs_error", 0.0), _parity(bundle, wins[splits[0]])
    )
    from training.tierevents import simhome_report  # every tier's event response (simulated-home bundles)

    report["event_response"] = simhome_report(bundle, man)
    return report, extras


def _baselines(
    man: Manifest,
    parts: dict[str, SensorLog],
    wins: dict[str, Windows],
    splits: list[str],
    eval_drop: list[str],
    rule: str,
    names: tuple[str, ...] = BASELINES,
) -> tuple[dict[str, Any], dict[str, dict[str, float]]]:
    """Baselines fitted on the training part (thresholds by `rule` on the validation part), scored on `splits`."""
    logs = {k: drop_channels(v, eval_drop) for k, v in parts.items()}
    models = fit_baselines(logs["train"], logs["val"], man.window, names, threshold_rule=rule)
    out: dict[str, Any] = {}
    for name, b in models.items():
        out[name] = {}
        for s in splits:
            ends = wins[s].ends
            scores = b.scores(logs[s], ends)
            dec = b.decide(scores)
            y = logs[s].labels[ends]
            per = {}
            for d in man.devices:
                j = [dv.name for dv in logs[s].devices].index(d.name)
                sc = scores[d.name] if d.kind != "setpoint" else None
                per[d.name] = device_metrics(d.kind, y[:, j], dec[d.name], scores=sc, levels=d.levels)
            out[name][s] = {
                "accuracy": float(np.nanmean([m["accuracy"] for m in per.values()])),
                "devices": per,
            }
    return out, {name: dict(b.thresholds) for name, b in models.items()}


def _pool(win: Windows, n: int = 64) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    ends = win.ends[np.linspace(0, win.ends.size - 1, min(n, win.ends.size)).astype(np.int64)]
    x, mask, ids, _ = win.get(ends)
    return x, mask, ids


def _latency(
    man: Manifest,
    bundle: Path,
    win: Windows,
    chans: dict[str, np.ndarray | None],
    report: dict[str, Any],
    n: int,
) -> None:
    from training.bundle import load_models
    from training.export import torch_latency

    x, mask, ids = _pool(win)
    for t in man.tiers:
        xt, mt, it = _tier_input(
            x, mask, ids, t.time_factor, chans[t.name], event_rows([c.kind for c in man.channels])
        )
        lat = ort_latency(make_session(bundle / t.file), xt, mt, it, n=n)
        report["tiers"][t.name]["latency_us"] = {"p50": lat["p50"], "p99": lat["p99"]}
    full, _, _ = load_models(bundle)
    lat = torch_latency(full, x, mask, ids, n=n)
    report["torch_eager_latency_us"] = {"p50": lat["p50"], "p99": lat["p99"]}
    tp50 = lat["p50"]
    report["speedup_vs_torch_p50"] = {
        t.name: tp50 / report["tiers"][t.name]["latency_us"]["p50"] for t in man.tiers
    }


def _parity(bundle: Path, win: Windows) -> float:
    """Max abs difference torch (model.pt) vs full.onnx on real test windows."""
    import torch

    from training.bundle import load_models

    full, _, _ = load_models(bundle)
    x, mask, ids = _pool(win, 256)
    with torch.inference_mode():
        ref = full(torch.from_numpy(x), torch.from_numpy(mask), torch.from_numpy(ids))
    got = run_batched(make_session(bundle / "full.onnx"), x, mask, ids)
    return max(float(np.abs(r.numpy() - g).max()) for r, g in zip(ref, got, strict=True))


def _faith(
    man: Manifest, bundle: Path, wins: dict[str, Windows], splits: list[str], n: int
) -> dict[str, Any]:
    per = max(1, n // len(splits))
    xs, ms, ids = [], [], []
    for s in splits:
        x, m, i = _pool(wins[s], per)
        xs.append(x), ms.append(m), ids.append(i)
    sess = make_session(bundle / man.tier("full").file)
    return faithfulness(sess, np.concatenate(xs), np.concatenate(ms), np.concatenate(ids), man.devices)


def jsonable(obj: Any) -> Any:
    """The report with NaN/inf as None and numpy scalars as Python numbers (JSON as written)."""
    if isinstance(obj, dict):
        return {k: jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [jsonable(v) for v in obj]
    if isinstance(obj, float | np.floating):
        return None if not math.isfinite(float(obj)) else float(obj)
    if isinstance(obj, np.integer):
        return int(obj)
    return obj


def evaluate_report(
    bundle: Path, args: argparse.Namespace, eval_drop: list[str], calendar: list[str] | None
) -> tuple[dict[str, Any], dict[str, Any]]:
    """(report, extras) of one bundle as the `evaluate` command's arguments say (DataError on bad ones)."""
    man = open_bundle(bundle)
    if args.threshold_windows is not None and args.threshold_windows < 1:
        raise DataError(
            f"--threshold-windows {args.threshold_windows}: must be positive (or leave it out: all)"
        )
    names = tuple(
        b.strip() for b in str(getattr(args, "baselines", ",".join(BASELINES))).split(",") if b.strip()
    )
    bad = [b for b in names if b not in BASELINES]
    if bad:
        raise DataError(f"--baselines: unknown {', '.join(bad)}; known: {', '.join(BASELINES)}")
    data = resolve(man, bundle, args, calendar)
    return evaluate_bundle(
        bundle,
        data,
        eval_drop,
        latency_runs=args.latency_runs,
        faith_windows=args.faithfulness_windows,
        threshold_rule=args.threshold_rule,
        threshold_windows=args.threshold_windows,
        baselines=names,
    )


def evaluate_cli(args: argparse.Namespace, eval_drop: list[str], calendar: list[str] | None) -> int:
    from training.report import markdown, plot

    report, extras = evaluate_report(Path(args.bundle), args, eval_drop, calendar)
    report = jsonable(report)
    if args.json_out:
        Path(args.json_out).write_text(json.dumps(report, indent=2), encoding="utf-8")
    if args.markdown:
        Path(args.markdown).write_text(markdown(report), encoding="utf-8")
    if args.plot:
        plot(report, extras, Path(args.plot))
    print(summary_line(report))
    return 0


def summary_line(report: dict[str, Any]) -> str:
    parts = []
    for tier, r in report["tiers"].items():
        accs = "/".join(f"{v['accuracy'] * 100:.2f}" for k, v in r.items() if k != "latency_us")
        parts.append(f"{tier} {accs}% {r['latency_us']['p50']:.0f}us")
    base = []
    for name in [n for n in ("lda", "gbdt_window") if n in report["baselines"]]:
        b = report["baselines"][name]
        base.append(f"{name} " + "/".join(f"{v['accuracy'] * 100:.2f}" for v in b.values()) + "%")
    rule = report.get("thresholds", {}).get("rule", "?")
    return (
        f"{report['version']}: "
        + "; ".join(parts)
        + f"; {'; '.join(base)}; thresholds {rule}; torch {report['torch_eager_latency_us']['p50']:.0f}us; "
        f"faithfulness_top1 {report['faithfulness_top1']}"
    )

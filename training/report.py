"""The evaluation report as Markdown tables and a PNG (accuracy vs latency per tier; attention over a day).

One `markdown` for a single bundle's report and for the report over seeds (training.seeds), whose figures are
`{mean, std, min, max, n}`: each cell then reads "mean ± std".
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np


def _fmt(v: Any, fmt: str, scale: float = 1.0) -> str:
    """A figure, or its statistics over seeds (training.seeds: mean ± sample std), or – when absent."""
    if v is None:
        return "–"
    if isinstance(v, dict) and "mean" in v and "std" in v:
        if v["mean"] is None:
            return "–"
        return f"{fmt.format(v['mean'] * scale)} ± {fmt.format(v['std'] * scale)}"
    if isinstance(v, list):  # a value that differs between seeds (e.g. a stop reason): every seed's
        return " / ".join(_fmt(x, fmt, scale) for x in v)
    if isinstance(v, str):
        return v
    return fmt.format(v * scale)


def _pct(v: Any) -> str:
    return _fmt(v, "{:.2f}", 100.0)


def _num(v: Any, fmt: str = "{:.3f}") -> str:
    return _fmt(v, fmt)


def _splits(report: dict[str, Any]) -> list[str]:
    first = next(iter(report["tiers"].values()))
    return [k for k in first if k != "latency_us"]


def _event_lines(ev: dict[str, Any] | None) -> list[str]:
    """Every tier's event test in closed loop on the simulated home (training.tierevents), if it was run."""
    if not ev:
        return []
    lines = [
        "## Event response (closed loop on the simulated home, vs the full tier on the same window)",
        "",
        "| tier | event decisions | event-relevant | full's commands | missed | wrong | agree % (relevant) "
        "| agree % (all) | passed |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for tier, r in ev.items():
        lines.append(
            f"| {tier} | {_num(r['decisions'], '{:.0f}')} | {_num(r['relevant'], '{:.0f}')} | "
            f"{_num(r['full_commands'], '{:.0f}')} | {_num(r['missed'], '{:.0f}')} | "
            f"{_num(r['wrong'], '{:.0f}')} | {_pct(r['agreement_relevant'])} | {_pct(r['agreement'])} | "
            f"{_passed(r['passed'])} |"
        )
    return lines + [""]


def _names(v: list[Any]) -> str:
    """Channel names; per seed (`seed i: ...; ...`) when they differ between seeds."""
    if v and all(isinstance(x, list) for x in v):
        return "; ".join(f"seed {i}: {', '.join(x)}" for i, x in enumerate(v))
    return ", ".join(str(x) for x in v)


def _passed(v: Any) -> str:
    if isinstance(v, list):
        return f"{sum(bool(x) for x in v)} of {len(v)} seeds"
    return "yes" if v else "no (not offered)"


def _title(report: dict[str, Any]) -> list[str]:
    if "seeds" not in report:
        return [f"# Evaluation of `{report['version']}` on {report['dataset']}", ""]
    seeds = ", ".join(str(s) for s in report["seeds"])
    return [
        f"# Evaluation over seeds {seeds} on {report['dataset']}",
        "",
        f"Every figure is the mean ± {report.get('spread', 'spread')} ({len(report['seeds'])} bundles, "
        "one per seed, trained and evaluated alike).",
        "",
    ]


def seed_lines(report: dict[str, Any]) -> list[str]:
    """Per seed: its version and the headline accuracies (tiers and baselines per split); the training time."""
    per = report.get("per_seed")
    if not per:
        return []
    cols = [k for k in next(iter(per.values())) if k not in ("version", "faithfulness_top1_min")]
    lines = [
        "## Per seed (accuracy %, mean over devices)",
        "",
        "| seed | version | " + " | ".join(cols) + " | worst head top-1 |",
        "|" + "---|" * (3 + len(cols)),
    ]
    for s, h in per.items():
        lines.append(
            f"| {s} | {h.get('version')} | "
            + " | ".join(_pct(h.get(c)) for c in cols)
            + f" | {_num(h.get('faithfulness_top1_min'))} |"
        )
    tr = report.get("training") or {}
    if tr:
        lines += [
            "",
            f"Training: {_num(tr.get('train_seconds'), '{:.1f}')} s per seed, "
            f"{_num(tr.get('epochs_run'), '{:.1f}')} epochs (best {_num(tr.get('best_epoch_full'), '{:.1f}')}), "
            f"{_num(tr.get('steps_run'), '{:.0f}')} steps; stop: "
            + ", ".join(f"seed {k} {v}" for k, v in (tr.get("stop_reason") or {}).items())
            + ".",
        ]
    return lines + [""]


def faith_lines(report: dict[str, Any]) -> list[str]:
    """Faithfulness per head (device): top-1, top-1 where a deletion moves the output, AOPC ratio; worst head."""
    top = report.get("faithfulness_top1_devices") or {}
    if not top:
        return []
    inf = report.get("faithfulness_top1_informative_devices") or {}
    aopc = (report.get("deletion_curve") or {}).get("aopc_ratio_devices") or {}
    lines = [
        "### Per head",
        "",
        "| device (head) | top-1 | top-1 (informative windows) | AOPC ratio (attention / random) |",
        "|---|---|---|---|",
    ]
    for dev, v in top.items():
        lines.append(f"| {dev} | {_num(v)} | {_num(inf.get(dev))} | {_num(aopc.get(dev), '{:.2f}')} |")
    return lines + ["", f"Worst head top-1: **{_num(report.get('faithfulness_top1_min'))}**.", ""]


def markdown(report: dict[str, Any]) -> str:
    """Report tables: tiers, per-device metrics (with threshold and rule), baselines, faithfulness per head,
    data; for a report over seeds (training.seeds) every figure as mean ± std and a per-seed table."""
    splits = _splits(report)
    lines = _title(report)
    lines += split_lines(report)
    lines += seed_lines(report)
    if report.get("drop_channels"):
        lines += [f"Channels masked (dead sensor): {_names(report['drop_channels'])}.", ""]
    lines += [
        f"Focused tier channels (top by training attention): {_names(report['focused_channels'])}.",
        "",
    ]
    head = (
        "| tier | "
        + " | ".join(f"{s} acc % | {s} agree % " for s in splits)
        + "| p50 µs | p99 µs | × torch |"
    )
    lines += ["## Tiers", "", head, "|" + "---|" * (4 + 2 * len(splits))]
    for tier, r in report["tiers"].items():
        cells = " | ".join(
            f"{_pct(r[s]['accuracy'])} | {_pct(r[s].get('agreement_vs_full'))}" for s in splits
        )
        sp = report.get("speedup_vs_torch_p50", {}).get(tier)
        lines.append(
            f"| {tier} | {cells} | {_num(r['latency_us']['p50'], '{:.0f}')} | "
            f"{_num(r['latency_us']['p99'], '{:.0f}')} | {_num(sp, '{:.1f}')} |"
        )
    te = report["torch_eager_latency_us"]
    lines += [
        "| torch eager (full) | "
        + " | ".join("– | –" for _ in splits)
        + f" | {_num(te['p50'], '{:.0f}')} | {_num(te['p99'], '{:.0f}')} | 1.0 |",
        "",
    ]
    lines += _event_lines(report.get("event_response"))
    lines += [
        "## Baselines (same windows)",
        "",
        "| baseline | " + " | ".join(f"{s} acc %" for s in splits) + " |",
        "|" + "---|" * (1 + len(splits)),
    ]
    for name, r in report["baselines"].items():
        lines.append(f"| {name} | " + " | ".join(_pct(r[s]["accuracy"]) for s in splits) + " |")
    lines += [
        "",
        "## Per device",
        "",
        "| model | split | device | accuracy % | balanced acc % | F1 | AP | threshold | rule | majority % | MAE |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    thr = report.get("thresholds", {})
    rule = thr.get("rule", "?")
    thr_of = {"tier " + t: thr.get("per_device", {}) for t in report["tiers"]}
    thr_of.update(thr.get("baseline_values", {}))
    rows = [("tier " + t, r) for t, r in report["tiers"].items() if t in ("full", "int8", "coarse")]
    rows += [(n, r) for n, r in report["baselines"].items()]
    for model, r in rows:
        for s in splits:
            for dev, m in r[s]["devices"].items():
                lines.append(
                    f"| {model} | {s} | {dev} | {_pct(m.get('accuracy'))} | {_pct(m.get('balanced_accuracy'))} | "
                    f"{_num(m.get('f1'))} | {_num(m.get('average_precision'))} | "
                    f"{_num(thr_of.get(model, {}).get(dev), '{:.2f}')} | "
                    f"{rule if thr_of.get(model, {}).get(dev) is not None else '–'} | "
                    f"{_pct(m.get('majority_rate'))} | {_num(m.get('mae'))} |"
                )
    dc = report["deletion_curve"]
    lines += [
        "",
        "## Faithfulness of the attention",
        "",
        f"- top-1 agreement (top-attention channel = channel whose masking moves the output most): "
        f"**{_num(report['faithfulness_top1'])}** over {_num(report['faithfulness_windows'], '{:.0f}')} windows "
        f"(on windows where some deletion moves the output: {_num(report['faithfulness_top1_informative'])})",
        "- per device: "
        + ", ".join(f"{k} {_num(v)}" for k, v in report["faithfulness_top1_devices"].items()),
        f"- deletion AOPC: attention order {_num(dc['aopc_attention'])} vs random order "
        f"{_num(dc['aopc_random'])} (ratio {_num(dc['aopc_ratio'], '{:.2f}')})",
        f"- ONNX vs torch max abs error: {_num(report['onnx_max_abs_error'], '{:.2e}')}",
        "",
        *faith_lines(report),
        "## Data",
        "",
        "| split | rows | masked rows | windows |",
        "|---|---|---|---|",
    ]
    for s, d in report["data"].items():
        lines.append(
            f"| {s} | {_num(d['rows'], '{:.0f}')} | {_num(d['masked_rows'], '{:.0f}')} | "
            f"{_num(d['windows'], '{:.0f}')} |"
        )
    return "\n".join(lines) + "\n"


def plot(report: dict[str, Any], extras: dict[str, Any], path: Path) -> Path:
    """PNG: accuracy vs p50 latency per tier (and torch eager); full-tier attention over a sample day."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    man = extras["manifest"]
    fig, (ax1, ax2) = plt.subplots(2, 1, figsize=(10, 9))
    for s in _splits(report):
        xs = [r["latency_us"]["p50"] for r in report["tiers"].values()]
        ys = [
            r[s]["accuracy"] * 100 if r[s]["accuracy"] is not None else np.nan
            for r in report["tiers"].values()
        ]
        ax1.plot(xs, ys, "o-", label=f"tiers, {s}")
        for name, x, y in zip(report["tiers"], xs, ys, strict=True):
            ax1.annotate(name, (x, y), textcoords="offset points", xytext=(4, 4), fontsize=8)
    ax1.axvline(report["torch_eager_latency_us"]["p50"], color="grey", ls="--", label="torch eager p50")
    ax1.set_xscale("log")
    ax1.set_xlabel("p50 latency, µs (1 thread, batch 1)")
    ax1.set_ylabel("accuracy % (mean over devices)")
    ax1.legend(fontsize=8)
    ax1.set_title("accuracy vs latency per tier")

    sample = extras["sample"]
    att = sample["attention"][:, 0, :]  # [N, C] first device
    steps = int(round(86400 / man.step_seconds))
    att = att[:steps]
    order = np.argsort(-att.mean(0))
    top = order[:6]
    layers = [att[:, i] for i in top] + [att[:, order[6:]].sum(1)]
    labels = [man.channels[i].name for i in top] + ["other"]
    t = np.arange(len(att)) * man.step_seconds / 3600
    ax2.stackplot(t, layers, labels=labels, alpha=0.8)
    prob = sample["out"]["full"][: len(att), 0]
    y = sample["labels"][: len(att), 0]
    d0 = man.devices[0]
    scale = 1.0 if d0.kind == "binary" else max(np.nanmax(np.abs(prob)), 1e-6)
    ax2.plot(t, prob / scale, color="black", lw=1, label=f"{d0.name} output")
    ax2.plot(t, y / scale, color="red", lw=1, ls=":", label=f"{d0.name} label")
    ax2.set_xlabel("hours from the first test window")
    ax2.set_ylabel("attention (stacked)")
    ax2.set_ylim(0, 1.05)
    ax2.legend(fontsize=7, loc="upper right", ncol=2)
    ax2.set_title(f"attention of {d0.name} over a sample day (full tier)")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def split_lines(report: dict[str, Any]) -> list[str]:
    """The split and threshold rule, stated before any figure: what was fitted on, what was scored, how."""
    sp, thr = report.get("split"), report.get("thresholds")
    lines: list[str] = []
    if sp:
        lines += ["## Split", "", f"- rule (manifest): {sp['rule']}", f"- scored: {sp['scored']}"]
        for title, key in (("fitted on (baselines; thresholds)", "fit"), ("scored", "parts")):
            for name, p in sp.get(key, {}).items():
                whole = " (whole file)" if p.get("whole_file") else ""
                lines.append(
                    f"- {title}: {name} {p['first']} .. {p['last']}, {_num(p['rows'], '{:.0f}')} rows"
                    f"{', ' + p['source'] if p.get('source') else ''}{whole}"
                )
        lines.append("")
    if thr:
        lines += [
            f"Thresholds: rule **{thr['rule']}**; model: {thr['model']}; baselines: {thr['baselines']}.",
            "",
        ]
    return lines

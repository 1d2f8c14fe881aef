"""The explanation as a picture a person can look at: one PNG from an `edge_agent.explain.Explanation`.

Top: the device's reported state over time (a step line), the model's raw output, the agent's turning
decisions (filled: sent; hollow: shadow / suggest, not sent) and a person's overrides. Middle: a strip with
the mode and the tier of the decisions. Bottom: the recorded attention per channel over time (stacked area,
the mean recorded weight per time bin; the legend carries each channel's share as `explain` defines it).
The PNG carries the summary and the exact shares as text chunks (`Description`, `edge-agent:explain`).

matplotlib is an optional extra (`plots`) and imported here only, lazily, with the Agg canvas (no pyplot,
no display, no global state). Without it `render` raises `PlotUnavailable` naming the extra to install.
Kept cheap for a small hub: at most `MAX_BINS` time bins and `MAX_LINE_POINTS` points per line.
"""

from __future__ import annotations

import datetime as dt
import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from edge_agent.explain import TURNING_REASON, Explanation

PLOTS_EXTRA = "plots"
INSTALL_HINT = f"pip install 'edge-agent[{PLOTS_EXTRA}]'"
MAX_BINS = 240  # time bins of the attention area and the mode/tier strip
MAX_LINE_POINTS = 4000  # the raw output line is strided down to this many points
TOP_CHANNELS = 6  # channels drawn on their own; the rest are one "other channels" band
FIG_INCHES = (11.0, 7.0)
DPI = 100
METADATA_KEY = "edge-agent:explain"
_STRIP_COLORS = ["#4c72b0", "#55a868", "#c44e52", "#8172b2", "#ccb974", "#64b5cd", "#8c8c8c", "#dd8452"]


class PlotUnavailable(Exception):
    """matplotlib is not installed: one line naming the extra."""


class PlotError(Exception):
    """The picture could not be written (path): one line with the fix."""


def _matplotlib() -> tuple[Any, Any, Any]:
    """(Figure, FigureCanvasAgg, matplotlib.dates), or PlotUnavailable."""
    try:
        import matplotlib.dates as mdates
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        raise PlotUnavailable(
            f"the explanation picture needs matplotlib, which is not installed; install it with {INSTALL_HINT}"
        ) from None
    return Figure, FigureCanvasAgg, mdates


def available() -> bool:
    try:
        _matplotlib()
    except PlotUnavailable:
        return False
    return True


def bins(exp: Explanation) -> np.ndarray:
    """float64 [B + 1] bin edges over the span (B <= MAX_BINS, at least one)."""
    n = int(min(MAX_BINS, max(1, exp.dec_ts.size)))
    hi = exp.until if exp.until > exp.since else exp.since + 1.0
    return np.linspace(exp.since, hi, n + 1)


def binned_attention(exp: Explanation, edges: np.ndarray) -> tuple[list[str], np.ndarray]:
    """(labels, weights [L, B]): the mean recorded weight per bin of the top channels (+ the rest as one)."""
    b = edges.size - 1
    k = len(exp.channels)
    idx = np.clip(np.searchsorted(edges, exp.dec_ts, side="right") - 1, 0, b - 1)  # [N]
    count = np.bincount(idx, minlength=b).astype(np.float64)  # [B]
    sums = np.zeros((k, b))
    for j in range(k):
        sums[j] = np.bincount(idx, weights=exp.attention[:, j], minlength=b)
    mean = np.divide(sums, count, out=np.zeros_like(sums), where=count > 0)  # [K, B]
    mean = mean[:, _carried(count > 0)]  # a bin with no decision keeps the last one's weights
    rank = sorted(  # the channels that drove the turning decisions are drawn even if rare overall
        range(k),
        key=lambda j: (
            -max(exp.shares_turning.get(exp.channels[j], 0.0), exp.shares_all.get(exp.channels[j], 0.0))
        ),
    )
    top, rest = rank[:TOP_CHANNELS], rank[TOP_CHANNELS:]
    labels = [exp.channels[j] for j in top]
    rows = list(mean[top])
    if rest:
        labels = [*labels, f"{len(rest)} other channels"]
        rows.append(mean[rest].sum(axis=0))
    return labels, np.array(rows).reshape(len(labels), b)


def _carried(hit: np.ndarray) -> np.ndarray:
    """int [B]: for each bin, the index of the last bin at or before it with a decision (0 before any)."""
    pos = np.where(hit, np.arange(hit.size), 0)
    return np.maximum.accumulate(pos) if pos.size else pos


def _majority(values: list[str], idx: np.ndarray, b: int) -> list[str | None]:
    """The most frequent value per bin; a bin with no decision keeps the previous one's (None before any)."""
    out: list[str | None] = [None] * b
    seen: list[dict[str, int]] = [{} for _ in range(b)]
    for v, i in zip(values, idx, strict=True):
        seen[i][v] = seen[i].get(v, 0) + 1
    for i, s in enumerate(seen):
        if s:
            out[i] = max(s.items(), key=lambda kv: kv[1])[0]
        elif i:
            out[i] = out[i - 1]
    return out


def render(exp: Explanation, out: Path) -> Path:
    """Write the PNG to `out` (atomically: a temporary file renamed); returns the path."""
    Figure, FigureCanvasAgg, mdates = _matplotlib()
    from edge_agent.calendar_features import load_zone

    try:
        zone: dt.tzinfo = load_zone(exp.timezone)
    except ValueError:
        zone = dt.UTC
    day0 = float(mdates.date2num(dt.datetime(1970, 1, 1, tzinfo=dt.UTC)))

    def num(ts: np.ndarray) -> np.ndarray:
        return day0 + np.asarray(ts, dtype=np.float64) / 86400.0

    fig = Figure(figsize=FIG_INCHES, dpi=DPI)
    FigureCanvasAgg(fig)
    gs = fig.add_gridspec(3, 1, height_ratios=[3.0, 0.55, 2.6], hspace=0.12)
    ax_s = fig.add_subplot(gs[0])
    ax_m = fig.add_subplot(gs[1], sharex=ax_s)
    ax_a = fig.add_subplot(gs[2], sharex=ax_s)
    fig.subplots_adjust(left=0.07, right=0.72, top=0.9, bottom=0.08)
    lines = exp.summary_lines()
    fig.suptitle(lines[0], fontsize=11, x=0.07, ha="left")
    _state_panel(ax_s, exp, num)
    edges = bins(exp)
    _strip_panel(ax_m, exp, edges, num)
    _attention_panel(ax_a, exp, edges, num)
    loc = mdates.AutoDateLocator(tz=zone)
    ax_a.xaxis.set_major_locator(loc)
    ax_a.xaxis.set_major_formatter(mdates.ConciseDateFormatter(loc, tz=zone))
    ax_a.set_xlim(num(np.array([exp.since, max(exp.until, exp.since + 1.0)])))
    for ax in (ax_s, ax_m):
        ax.tick_params(labelbottom=False)
    fig.text(0.07, 0.01, f"times in {exp.timezone}", fontsize=8, color="#555555")
    meta = {
        "Title": f"edge-agent explain {exp.device}",
        "Software": "edge-agent explain",
        "Description": "\n".join(lines),
        METADATA_KEY: json.dumps(exp.metadata(), sort_keys=True),
    }
    tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    try:
        fig.savefig(tmp, format="png", dpi=DPI, metadata=meta)
        os.replace(tmp, out)
    except OSError as e:
        tmp.unlink(missing_ok=True)
        raise PlotError(
            f"--out {out}: cannot write the picture ({e.strerror or e}); give a writable path"
        ) from None
    return out


def _state_panel(ax: Any, exp: Explanation, num: Any) -> None:
    if exp.state_ts.size:
        x = np.r_[exp.state_ts, max(exp.until, float(exp.state_ts[-1]))]
        y = np.r_[exp.state_value, exp.state_value[-1]]
        ax.step(num(x), y, where="post", color="#222222", lw=1.8, label="state (reported)")
    if exp.dec_ts.size:
        stride = max(1, exp.dec_ts.size // MAX_LINE_POINTS)
        ax.plot(
            num(exp.dec_ts[::stride]),
            exp.dec_output[::stride],
            color="#4c72b0",
            lw=0.7,
            alpha=0.6,
            label="model output",
        )
        change = np.array([r == TURNING_REASON for r in exp.dec_reason], dtype=bool)
        up = change & (exp.dec_target >= 0.5) if exp.kind == "binary" else change
        marks = [(up, "^", "switch on" if exp.kind == "binary" else "change", "#55a868")]
        if exp.kind == "binary":
            marks.append((change & ~up, "v", "switch off", "#8172b2"))
        for sel, marker, verb, color in marks:
            for how, pick in (("sent", sel & exp.dec_sent), ("not sent", sel & ~exp.dec_sent)):
                if pick.any():
                    ax.scatter(
                        num(exp.dec_ts[pick]),
                        exp.dec_target[pick],
                        marker=marker,
                        s=46,
                        facecolors=color if how == "sent" else "none",
                        edgecolors=color,
                        zorder=3,
                        label=f"agent: {verb} ({how})",
                    )
    if exp.over_ts.size:
        ax.scatter(
            num(exp.over_ts),
            exp.over_value,
            marker="X",
            s=70,
            color="#c44e52",
            zorder=4,
            label="override by a person",
        )
    if exp.kind == "binary":
        ax.set_yticks([0.0, 1.0], ["off", "on"])
        ax.set_ylim(-0.12, 1.12)
    ax.set_ylabel(exp.device)
    ax.grid(True, axis="x", alpha=0.25)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, frameon=False)


def _strip_panel(ax: Any, exp: Explanation, edges: np.ndarray, num: Any) -> None:
    """Two rows of colour cells (mode, tier: the most frequent per bin; blank = no decision in the bin)."""
    from matplotlib.colors import ListedColormap

    b = edges.size - 1
    idx = np.clip(np.searchsorted(edges, exp.dec_ts, side="right") - 1, 0, b - 1)
    rows = [_majority(exp.dec_mode, idx, b), _majority(exp.dec_tier, idx, b)]
    cats = sorted({v for r in rows for v in r if v is not None})
    colors = [_STRIP_COLORS[i % len(_STRIP_COLORS)] for i in range(len(cats))]
    code = np.array([[np.nan if v is None else cats.index(v) for v in r] for r in rows])  # [2, B]
    x = num(edges)
    if cats:
        cmap = ListedColormap(colors)
        ax.pcolormesh(x, [0.0, 0.5, 1.0], code[::-1], cmap=cmap, vmin=-0.5, vmax=len(cats) - 0.5)
    ax.set_yticks([0.75, 0.25], ["mode", "tier"])
    ax.set_ylim(0, 1)
    for c, col in zip(cats, colors, strict=True):
        ax.plot([], [], lw=6, color=col, label=c)
    if cats:
        ax.legend(loc="center left", bbox_to_anchor=(1.01, 0.5), fontsize=7, frameon=False, ncol=2)


def _attention_panel(ax: Any, exp: Explanation, edges: np.ndarray, num: Any) -> None:
    labels, w = binned_attention(exp, edges)  # [L, B]
    if not labels:
        ax.text(
            0.5, 0.5, "no attention recorded in the span", ha="center", va="center", transform=ax.transAxes
        )
        ax.set_yticks([])
        return
    named = []
    turning = "on" if exp.kind == "binary" else "changes"
    for lab in labels:
        on, every = exp.shares_turning.get(lab), exp.shares_all.get(lab)
        if on is None and every is None:
            named.append(lab)
            continue
        parts = ([f"{turning} {on:.0%}"] if on is not None else []) + [f"all {(every or 0):.0%}"]
        named.append(f"{lab}: {', '.join(parts)}")
    x = num(edges)
    ys = np.concatenate([w, w[:, -1:]], axis=1)  # [L, B + 1]: step='post' needs the last edge
    ax.stackplot(x, ys, labels=named, step="post", colors=_STRIP_COLORS[: len(labels)], alpha=0.85)
    ax.set_ylim(0, max(1.0, float(w.sum(axis=0).max()) * 1.05))
    ax.set_ylabel("attention (recorded)")
    ax.grid(True, axis="x", alpha=0.25)
    ax.legend(
        loc="upper left",
        bbox_to_anchor=(1.01, 1.0),
        fontsize=8,
        frameon=False,
        title=f"share of the attention:\n{'switching on' if turning == 'on' else 'changes'} / all decisions",
        title_fontsize=8,
        alignment="left",
    )

"""The demo's last word: why one light did what it did, from the log the demo's agent just wrote.

`explain_lights(url, timezone, lights, out)` explains every light over the whole run (`edge_agent.explain`),
keeps the one the agent switched on most (then the one with most decisions), and returns the lines to print:
its summary and either the PNG written to `out` (`edge_agent.explain_plot`) or, when matplotlib is not
installed (the demo's runtime install has no plotting), how to get the picture.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from edge_agent.explain import ExplainError, Explanation, explain
from edge_agent.explain_plot import INSTALL_HINT, PlotError, PlotUnavailable, render


def explain_lights(url: str, timezone: str, lights: Sequence[str], out: Path) -> list[str]:
    found: list[Explanation] = []
    errors: list[str] = []
    for name in lights:
        try:
            found.append(explain(url, name, configured=lights, timezone=timezone))
        except ExplainError as e:
            errors.append(str(e))
    if not found:
        return [f"no explanation: {errors[0] if errors else 'no light in the config'}"]
    best = max(found, key=lambda e: (int(e.turning.sum()), e.dec_ts.size))
    lines = ["why: " + best.summary_lines()[0], *best.summary_lines()[1:]]
    try:
        path = render(best, out)
    except PlotUnavailable:
        lines.append(
            f"for the picture of it (state, decisions, overrides, attention over time): {INSTALL_HINT}, then "
            f"run the demo again, or `edge-agent explain --config FILE --device {best.device} --out x.png`"
        )
    except PlotError as e:
        lines.append(f"no picture: {e}")
    else:
        lines.append(f"explanation picture: {path}")
    return lines

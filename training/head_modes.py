"""The output-head modes of level and setpoint devices and their defaults (torch-free: the CLI offers them).

What each mode means and how it is decoded: `training.heads`. The defaults are measured (issue 20,
bench/bench_heads.py): setpoint `classes` took the simulated home's heating MAE from 0.143 °C (regression) to
0.057-0.060 °C over two seeds with the lights unchanged, and its agreement within half a setpoint step from
5-26 % to ~99 % on held-out days, which the retrain's gate scores (issue 16).
"""

from __future__ import annotations

LEVEL_MODES = ("softmax", "ordinal")
SETPOINT_MODES = ("classes", "regression")
DEFAULT_LEVEL_HEAD = "softmax"
DEFAULT_SETPOINT_HEAD = "classes"

"""Process priority: niceness and affinity applied in a real subprocess; refusals warn and never crash."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys

import pytest
from pydantic import ValidationError

from edge_agent.procprio import ProcessPrioritySettings, apply_process_priority

CHILD = """
import json, logging, os, sys
logging.basicConfig(level=logging.WARNING, stream=sys.stderr, format="%(levelname)s %(message)s")
from edge_agent.procprio import apply_process_priority
nice, aff = json.loads(sys.argv[1])
out = apply_process_priority(nice, aff)
out["os_nice"] = os.getpriority(os.PRIO_PROCESS, 0)
out["os_affinity"] = sorted(os.sched_getaffinity(0))
print(json.dumps(out))
"""


def run_child(nice, affinity) -> tuple[dict, str]:
    p = subprocess.run(
        [sys.executable, "-c", CHILD, json.dumps([nice, affinity])],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert p.returncode == 0, p.stderr
    return json.loads(p.stdout), p.stderr


def test_sets_niceness_and_affinity_in_a_subprocess():
    cpu = sorted(os.sched_getaffinity(0))[0]
    out, err = run_child(7, [cpu])
    assert out["nice"] == 7 and out["os_nice"] == 7
    assert out["cpu_affinity"] == [cpu] and out["os_affinity"] == [cpu]
    assert out["current_nice"] == 7
    assert "WARNING" not in err


def test_nothing_requested_changes_nothing():
    out, err = run_child(None, None)
    assert out["nice"] is None and out["cpu_affinity"] is None
    assert out["os_nice"] == os.getpriority(os.PRIO_PROCESS, 0)
    assert err == ""


def test_bad_affinity_is_one_warning_and_no_crash():
    before = sorted(os.sched_getaffinity(0))
    out, err = run_child(5, [4096])
    assert out["cpu_affinity"] is None and out["os_affinity"] == before
    assert out["nice"] == 5  # the other setting still applied
    lines = [ln for ln in err.splitlines() if ln.startswith("WARNING")]
    assert len(lines) == 1 and "4096" in lines[0]


def test_refused_niceness_is_one_warning(caplog):
    # lowering the niceness needs CAP_SYS_NICE; root has it, but an out-of-range value is refused for everyone
    bad = 42 if os.geteuid() == 0 else -5
    before = os.getpriority(os.PRIO_PROCESS, 0)
    with caplog.at_level(logging.WARNING, logger="edge_agent.procprio"):
        out = apply_process_priority(bad, None)
    assert out["nice"] is None and os.getpriority(os.PRIO_PROCESS, 0) == before
    assert len(caplog.records) == 1


@pytest.mark.parametrize("aff", [[], ["0"], [True], "0"])
def test_malformed_affinity_warns(aff, caplog):
    before = sorted(os.sched_getaffinity(0))
    with caplog.at_level(logging.WARNING, logger="edge_agent.procprio"):
        out = apply_process_priority(None, aff)
    assert out["cpu_affinity"] is None and sorted(os.sched_getaffinity(0)) == before
    assert len(caplog.records) == 1


def test_settings_model():
    s = ProcessPrioritySettings()
    assert s.nice is None and s.cpu_affinity is None and s.inference_threads == 1
    with pytest.raises(ValidationError):
        ProcessPrioritySettings(nice=30)
    with pytest.raises(ValidationError):
        ProcessPrioritySettings(threads=2)
    for name, field in ProcessPrioritySettings.model_fields.items():
        assert field.description, name

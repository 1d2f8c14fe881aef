"""deploy/install.sh staged into a temporary root (`--root`): files in place with the right content and modes,
a re-run upgrades in place and keeps a person's config and the state, --uninstall keeps state and config,
--purge removes them. No systemctl and no system user in a staged root (the script says so)."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "deploy" / "install.sh"

pytestmark = pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")


def _run(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    # --pip-no-deps: lay out the package without fetching onnxruntime & co. again (the test checks the layout)
    return subprocess.run(
        ["bash", str(SCRIPT), "--root", str(root), "--python", sys.executable, "--pip-no-deps", *args],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


def _mode(p: Path) -> int:
    return stat.S_IMODE(p.stat().st_mode)


@pytest.mark.integration
def test_install_upgrade_uninstall_purge(tmp_path: Path, bundle_path: Path) -> None:
    root = tmp_path / "root"
    r = _run(root)
    assert r.returncode == 0, r.stdout + r.stderr
    unit = root / "etc/systemd/system/edge-agent.service"
    dropin = root / "etc/systemd/system/mosquitto.service.d/edge-agent.conf"
    config = root / "etc/edge-agent/config.yaml"
    password = root / "etc/edge-agent/mqtt-password"
    state = root / "var/lib/edge-agent"
    venv = root / "opt/edge-agent/venv"
    assert unit.read_text() == (REPO / "systemd/edge-agent.service").read_text()
    assert dropin.read_text() == (REPO / "systemd/mosquitto.service.d/edge-agent.conf").read_text()
    assert config.read_text() == (REPO / "deploy/example-config.yaml").read_text()
    assert password.read_text() == "" and _mode(password) == 0o600
    assert _mode(state) == 0o750
    assert "not started: staged under --root" in r.stdout
    # the venv holds a copy of the package (not an editable link to the clone)
    where = subprocess.run(
        [str(venv / "bin/python"), "-c", "import edge_agent.service_notify as m; print(m.__file__)"],
        capture_output=True,
        text=True,
        check=True,
        cwd=tmp_path,
        env={"PATH": os.environ["PATH"]},
    ).stdout.strip()
    assert where.startswith(str(venv)), where
    assert (venv / "bin/edge-agent").exists()

    # a person edits the config; the agent has state: a second run (with a bundle) keeps both
    config.write_text(config.read_text() + "\n# my home\nagent_id: my-hub\n")
    mine = config.read_text()
    (state / "edge-agent.db").write_bytes(b"SQLite format 3\0state")
    password.write_text("s3cret\n")
    r2 = _run(root, "--bundle", str(bundle_path))
    assert r2.returncode == 0, r2.stdout + r2.stderr
    assert config.read_text() == mine and "kept the existing" in r2.stdout
    assert (state / "edge-agent.db").read_bytes() == b"SQLite format 3\0state"
    assert password.read_text() == "s3cret\n"
    assert (state / "bundle/manifest.json").read_bytes() == (bundle_path / "manifest.json").read_bytes()
    assert unit.exists() and (venv / "bin/edge-agent").exists()

    r3 = _run(root, "--uninstall")
    assert r3.returncode == 0, r3.stdout + r3.stderr
    assert not unit.exists() and not dropin.exists() and not dropin.parent.exists()
    assert not (root / "opt/edge-agent").exists()
    assert config.read_text() == mine and (state / "edge-agent.db").exists() and password.exists()

    r4 = _run(root, "--uninstall", "--purge")
    assert r4.returncode == 0, r4.stdout + r4.stderr
    assert not state.exists() and not config.parent.exists()


def test_bad_options_one_line(tmp_path: Path) -> None:
    """Bad input: one line naming the option and the fix, non-zero exit, nothing installed."""
    r = _run(tmp_path / "root", "--frobnicate")
    assert r.returncode != 0 and r.stderr.strip().count("\n") == 0 and "--frobnicate" in r.stderr
    r = _run(tmp_path / "root", "--purge")
    assert r.returncode != 0 and "--purge goes with --uninstall" in r.stderr
    r = _run(tmp_path / "root", "--bundle", str(tmp_path / "nope"))
    assert r.returncode != 0 and "no manifest.json" in r.stderr
    assert not (tmp_path / "root").exists()  # refused before anything was laid down

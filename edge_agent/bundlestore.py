"""The bundle store: `<store>/<version>/` bundle directories and a `current` symlink to the one in service.

`install` copies a bundle into a temporary directory inside the store (every file hashed on both sides),
verifies it the runtime's way (`verify_bundle`: manifest + sha256 of each tier, then `Bundle.load`: a test
inference on every tier), fsyncs, renames it to `<version>/` and switches `current` atomically (a symlink
made under a temporary name, then `os.replace`). A half-written, corrupt or unrunnable bundle is never made
current; a write error (disk full) removes the temporary directory and says so in one line. Temporary
directories a crash left behind are ignored by every reader and removed by the next change to the store.
`store.json` keeps, per version, where it came from (train/import), its parent (the version in service when it
was installed) and its outcome; each bundle keeps its own metrics and data span in its manifest.

`BundleWatcher` is the running daemon's side: `check()` (every few seconds, off the decider thread) returns a
freshly loaded Bundle when `current` points at another version than the one in service, and refuses a
version that fails to load by name, once.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import json
import logging
import os
import re
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edge_agent.config import ConfigError
from edge_agent.inference import Bundle, BundleError, verify_bundle
from edge_agent.manifest import Manifest, read_manifest

logger = logging.getLogger(__name__)

CURRENT = "current"
HISTORY = "store.json"
LOCK = ".lock"
INCOMING = ".incoming-"  # temporary directory of an install in progress (or left by a crash)
LINK_TMP = ".current-"  # temporary name of the next `current` symlink
PREFERRED_METRICS = ("holdout_agreement", "test_agreement", "holdout_", "test_", "val_")


class StoreError(Exception):
    """The store refused an operation; the message is one line naming what, where and the fix."""


def safe_name(version: str) -> str:
    """The directory name of a model version: letters, digits, '_', '.', '-' (others become '-')."""
    name = re.sub(r"[^A-Za-z0-9_.-]+", "-", version).strip(".-")
    return name or "bundle"


def device_metrics(manifest: Manifest) -> dict[str, dict[str, float]]:
    """Per device, the manifest's metrics named `<metric>.<device>` (e.g. 'val_balanced_accuracy.living.light')."""
    devices = sorted((d.name for d in manifest.devices), key=len, reverse=True)
    out: dict[str, dict[str, float]] = {}
    for key, value in manifest.metrics.items():
        for dev in devices:
            if key.endswith("." + dev) and len(key) > len(dev) + 1:
                out.setdefault(dev, {})[key[: -len(dev) - 1]] = value
                break
    return out


def headline_metric(metrics: dict[str, float]) -> tuple[str, float] | None:
    """The one metric to show for a device: held-out agreement first, else test, else validation."""
    for prefix in PREFERRED_METRICS:
        for k in sorted(metrics):
            if k.startswith(prefix):
                return k, metrics[k]
    return None


@dataclass
class VersionInfo:
    name: str  # directory name under the store
    version: str  # the manifest's version
    created: str
    current: bool
    metrics: dict[str, dict[str, float]] = field(default_factory=dict)  # device -> metric -> value
    source: str = ""
    parent: str | None = None
    outcome: str = ""
    installed_at: float | None = None
    problem: str | None = None  # set when the directory is not a readable bundle

    def summary(self) -> str:
        """'living.light val_balanced_accuracy 0.953, ...' (one metric per device)."""
        parts = []
        for dev, m in sorted(self.metrics.items()):
            h = headline_metric(m)
            if h is not None:
                parts.append(f"{dev} {h[0]} {h[1]:.3f}")
        return ", ".join(parts) or "no metrics"


class BundleStore:
    """The store at `root` (AgentConfig.bundle_store). Every change holds an exclusive lock on `root/.lock`."""

    def __init__(self, root: str | Path, *, threads: int = 1) -> None:
        self.root = Path(root)
        self.threads = threads

    # ---- reading ---------------------------------------------------------------------------------------
    def current_name(self) -> str | None:
        """The version directory `current` points at (None: no current, or it points at nothing usable)."""
        try:
            target = os.readlink(self.root / CURRENT)
        except OSError:
            return None
        name = Path(target).name
        return name if (self.root / name).is_dir() else None

    def current_dir(self) -> Path | None:
        name = self.current_name()
        return None if name is None else self.root / name

    def versions(self) -> list[VersionInfo]:
        """Every version in the store, oldest install first (temporary directories ignored)."""
        if not self.root.is_dir():
            return []
        history = self._history()
        current = self.current_name()
        out = []
        for d in self.root.iterdir():
            if d.name.startswith(".") or d.name == CURRENT or not d.is_dir() or d.is_symlink():
                continue
            h = history.get(d.name, {})
            info = VersionInfo(
                name=d.name,
                version=d.name,
                created="",
                current=d.name == current,
                source=h.get("source", ""),
                parent=h.get("parent"),
                outcome=h.get("outcome", ""),
                installed_at=h.get("installed_at"),
            )
            try:
                m = read_manifest(d)
                info.version, info.created, info.metrics = m.version, m.created, device_metrics(m)
            except (OSError, ValueError) as e:
                info.problem = f"not a readable bundle ({e.__class__.__name__})"
            if info.installed_at is None:
                info.installed_at = d.stat().st_mtime
            out.append(info)
        return sorted(out, key=lambda v: (v.installed_at or 0.0, v.name))

    # ---- changing --------------------------------------------------------------------------------------
    def install(
        self,
        src: str | Path,
        *,
        source: str = "import",
        make_current: bool = True,
        outcome: str | None = None,
        note: dict[str, Any] | None = None,
    ) -> VersionInfo:
        """Copy the bundle directory `src` into the store, verify it, and (by default) make it current.
        `outcome` replaces the recorded outcome of a version installed but not made current; `note` is kept
        with the version in store.json (e.g. the retrain's verdict)."""
        src = Path(src)
        try:
            manifest = verify_bundle(src)
        except BundleError as e:
            raise StoreError(
                f"not installed, {self.current_name() or 'no model'} stays in service: {e}"
            ) from None
        name = safe_name(manifest.version)
        with self._locked():
            self.clean_incoming()
            dest = self.root / name
            if dest.exists():
                raise StoreError(
                    f"version {manifest.version!r} is already in the store ({dest}); "
                    f"`edge-agent model rollback {name}` serves it again"
                )
            parent = self.current_name()
            tmp = Path(tempfile.mkdtemp(prefix=INCOMING, dir=self.root))
            try:
                self._copy_verified(src, tmp)
                verify_bundle(tmp)
                Bundle.load(tmp, threads=self.threads)  # the test inference: every tier warmed up once
                _fsync_dir(tmp)
                os.rename(tmp, dest)
                _fsync_dir(self.root)
            except BundleError as e:
                shutil.rmtree(tmp, ignore_errors=True)
                raise StoreError(f"not installed, {parent or 'no model'} stays in service: {e}") from None
            except OSError as e:
                shutil.rmtree(tmp, ignore_errors=True)
                raise StoreError(
                    f"cannot write the bundle into {self.root} ({_os_reason(e)}); the temporary directory was "
                    f"removed and {parent or 'no model'} stays in service; free disk space and retry"
                ) from None
            history = self._history()
            history[name] = {
                "version": manifest.version,
                "source": source,
                "parent": parent,
                "installed_at": time.time(),
                "outcome": outcome or "installed",
                **(note or {}),
            }
            if make_current:
                self._point_current(name)
                if parent is not None and parent in history:
                    history[parent]["outcome"] = f"replaced by {name}"
                history[name]["outcome"] = "in service"
            self._save_history(history)
        logger.info("bundle store: installed %s from %s (%s)", name, src, source)
        return self._info(name)

    def rollback(self, name: str) -> VersionInfo:
        """Serve version `name` again (verified and test-run first); the one in service stays otherwise."""
        with self._locked():
            self.clean_incoming()
            d = self.root / name
            if name.startswith(".") or name == CURRENT or not d.is_dir():
                have = [v.name for v in self.versions()]
                raise StoreError(f"no version {name!r} in {self.root}; the store has {have or 'none'}")
            old = self.current_name()
            try:
                Bundle.load(d, threads=self.threads)
            except BundleError as e:
                raise StoreError(
                    f"version {name!r} refused, {old or 'no model'} stays in service: {e}"
                ) from None
            self._point_current(name)
            history = self._history()
            if old is not None and old != name:
                history.setdefault(old, {})["outcome"] = f"rolled back to {name}"
            history.setdefault(name, {})["outcome"] = f"in service (rollback from {old})"
            self._save_history(history)
        logger.info("bundle store: current %s -> %s (rollback)", old, name)
        return self._info(name)

    def prune(self, keep: int) -> list[str]:
        """Remove all but the `keep` most recently installed versions; never the current one."""
        with self._locked():
            self.clean_incoming()
            current = self.current_name()
            versions = self.versions()
            kept = {v.name for v in versions[-keep:]} if keep > 0 else set()
            removed = []
            for v in versions:
                if v.name in kept or v.name == current:
                    continue
                shutil.rmtree(self.root / v.name, ignore_errors=True)
                removed.append(v.name)
            if removed:
                history = self._history()
                for n in removed:
                    history.pop(n, None)
                self._save_history(history)
        if removed:
            logger.info("bundle store: pruned %s (keeping %d)", removed, keep)
        return removed

    def clean_incoming(self) -> list[str]:
        """Remove temporary directories and symlinks a crashed install left behind (call with the lock held)."""
        removed: list[str] = []
        if not self.root.is_dir():
            return removed
        for p in self.root.iterdir():
            if p.name.startswith(INCOMING) and p.is_dir() and not p.is_symlink():
                shutil.rmtree(p, ignore_errors=True)
            elif p.name.startswith(LINK_TMP) and p.is_symlink():
                p.unlink(missing_ok=True)
            else:
                continue
            removed.append(p.name)
            logger.info("bundle store: removed %s (left by an interrupted install)", p)
        return removed

    # ---- internals -------------------------------------------------------------------------------------
    def _info(self, name: str) -> VersionInfo:
        for v in self.versions():
            if v.name == name:
                return v
        raise StoreError(f"version {name!r} vanished from {self.root} while installing; retry")

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.root / LOCK, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as e:
            raise StoreError(
                f"cannot open the bundle store {self.root} ({_os_reason(e)}); fix state_dir or its permissions"
            ) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    def _copy_verified(self, src: Path, dst: Path) -> None:
        """Copy every regular file of `src` to `dst`, fsync each, and compare the sha256 of both sides."""
        for f in sorted(src.rglob("*")):
            rel = f.relative_to(src)
            if f.is_dir():
                (dst / rel).mkdir(parents=True, exist_ok=True)
                continue
            if not f.is_file():
                continue
            (dst / rel).parent.mkdir(parents=True, exist_ok=True)
            h_in, h_out = hashlib.sha256(), hashlib.sha256()
            with open(f, "rb") as fi, open(dst / rel, "wb") as fo:
                while block := fi.read(1 << 20):
                    h_in.update(block)
                    fo.write(block)
                fo.flush()
                os.fsync(fo.fileno())
            with open(dst / rel, "rb") as fc:
                while block := fc.read(1 << 20):
                    h_out.update(block)
            if h_in.digest() != h_out.digest():
                raise BundleError(f"{dst / rel}: the copy differs from {f}; check the disk and retry")

    def _point_current(self, name: str) -> None:
        link = self.root / f"{LINK_TMP}{os.getpid()}"
        link.unlink(missing_ok=True)
        os.symlink(name, link)  # relative: the store can be moved with its state_dir
        os.replace(link, self.root / CURRENT)
        _fsync_dir(self.root)

    def _history(self) -> dict[str, Any]:
        try:
            data = json.loads((self.root / HISTORY).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}

    def _save_history(self, history: dict[str, Any]) -> None:
        tmp = self.root / f"{HISTORY}.tmp"
        tmp.write_text(json.dumps(history, indent=2, sort_keys=True), encoding="utf-8")
        os.replace(tmp, self.root / HISTORY)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _os_reason(e: OSError) -> str:
    if e.errno in (errno.ENOSPC, errno.EDQUOT):
        return "disk full"
    if e.errno == errno.EFBIG:
        return "file size limit reached"
    return e.strerror or e.__class__.__name__


class BundleWatcher:
    """The daemon's view of the store: `check()` -> a newly loaded Bundle when `current` moved, else None.

    `serving` is the model version in service (None: no model, observe). `accept(bundle)` may refuse a bundle
    that loads but does not fit the config (raises ConfigError/BundleError). A refused version is logged once
    by name and not tried again; the one in service stays.
    """

    def __init__(
        self,
        root: str | Path,
        *,
        serving: str | None,
        threads: int = 1,
        accept: Callable[[Bundle], None] | None = None,
    ) -> None:
        self.store = BundleStore(root, threads=threads)
        self.serving = safe_name(serving) if serving is not None else None
        self.accept = accept
        self.refused: set[str] = set()

    def check(self) -> Bundle | None:
        name = self.store.current_name()
        if name is None or name == self.serving or name in self.refused:
            return None
        try:
            bundle = Bundle.load(self.store.root / name, threads=self.store.threads)
            if self.accept is not None:
                self.accept(bundle)
        except (BundleError, ConfigError, OSError) as e:
            self.refused.add(name)
            logger.warning(
                "bundle %s refused: %s; %s stays in service", name, e, self.serving or "no model (observe)"
            )
            return None
        logger.info("bundle store: current is now %s (was %s); swapping it in", name, self.serving)
        self.serving = name
        return bundle

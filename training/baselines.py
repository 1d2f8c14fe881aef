"""Classical baselines fit on a train SensorLog and evaluated at the same window ends as the attention model.

API (the evaluation calls exactly this):

    models = fit_baselines(train, val, window, names=BASELINES, stale_steps=1, seed=0,
                           max_train_windows=MAX_TRAIN_WINDOWS, threshold_rule="f1", threads=1)
    for name, b in models.items():          # names: majority, lda, threshold_rule, gbdt_window
        ends = WindowSampler(log, window).ends
        decided = b.predict(log, ends)     # {device: float array [M]}: binary 0/1, level index, setpoint value
        scores = b.scores(log, ends)       # {device: [M] P(on) | [M, levels] class probs | [M] setpoint value}
        b.thresholds                       # {binary device: decision threshold on P(on)}

Per device, windows whose label is unknown (NaN) are left out of fitting. The baselines:

* majority: the most common training class (binary/level); the training median (setpoint).
* lda: sklearn LinearDiscriminantAnalysis on the current readings (binary/level), LinearRegression (setpoint);
  a masked (stale) reading is replaced by its training mean. Decision = posterior >= threshold (0.5 without
  val, the published protocol; with val chosen by the threshold rule, like every baseline but majority).
* threshold_rule: for a binary device, the single channel, direction and cut on the current reading with the
  best training balanced accuracy (e.g. "Light > 365 lux"); a masked reading gives the training majority.
  Score = sigmoid of the margin in training standard deviations. Non-binary devices: as majority.
* gbdt_window: HistGradientBoostingClassifier/Regressor on `training.features.window_features` over the same
  window (last, mean, std, min, max, slope per channel + hour of day + weekday; NaN-aware), class_weight
  "balanced", early stopping on an internal 10 % split. At most `max_train_windows` training windows (random
  subset, seeded) when the history is longer.

Thresholds: with `val`, every baseline but majority chooses each binary device's threshold on the `val`
windows by `threshold_rule` (f1, accuracy, balanced, cost:ON/OFF) with `training.thresholds.choose_threshold`,
the function and rule the attention model's thresholds use; 0.5 without val. Fit only on `train`: the
evaluation passes the bundle's own training split, never what it scores.
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from collections.abc import Sequence

import numpy as np
from sklearn.discriminant_analysis import LinearDiscriminantAnalysis
from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor
from sklearn.linear_model import LinearRegression
from threadpoolctl import threadpool_limits

from training.data import WindowSampler
from training.features import current_features, window_features
from training.sensorlog import DeviceInfo, SensorLog
from training.thresholds import DEFAULT_RULE, choose_threshold

logger = logging.getLogger(__name__)

BASELINES: tuple[str, ...] = ("majority", "lda", "threshold_rule", "gbdt_window")
MAX_TRAIN_WINDOWS = 100_000  # ~25 s per binary device on 2 busy cores (1 thread)


class Baseline(ABC):
    """A fitted baseline: per-device scores on features of a log's windows, and the decided values."""

    name = "baseline"

    threads = 1  # OpenMP threads for sklearn; more than 1 on a busy 2-core hub spins (30 s vs 1.4 s measured)

    def __init__(self, train: SensorLog, window: int, stale_steps: int) -> None:
        self.window = window
        self.stale_steps = stale_steps
        self.channels = [c.name for c in train.channels]
        self.devices: list[DeviceInfo] = list(train.devices)
        self.thresholds: dict[str, float] = {d.name: 0.5 for d in self.devices if d.kind == "binary"}

    # subclasses: features of a sampler's windows, and per-device raw scores from them
    def _features(self, sampler: WindowSampler, ends: np.ndarray) -> np.ndarray:
        return current_features(sampler, ends)

    @abstractmethod
    def _fit_device(self, k: int, dev: DeviceInfo, f: np.ndarray, y: np.ndarray) -> None: ...

    @abstractmethod
    def _score_device(self, k: int, dev: DeviceInfo, f: np.ndarray) -> np.ndarray: ...

    def fit(self, train: SensorLog, rng: np.random.Generator, max_windows: int) -> Baseline:
        sampler = WindowSampler(train, self.window, stale_steps=self.stale_steps)
        ends = sampler.ends
        if ends.size > max_windows:
            ends = np.sort(rng.choice(ends, size=max_windows, replace=False))
            logger.info("%s: fitting on %d of %d training windows", self.name, ends.size, sampler.ends.size)
        if ends.size == 0:
            raise ValueError(f"{train.name}: no training window of {self.window} steps with a known label")
        f = self._features(sampler, ends)
        y_all = train.labels[ends]  # [M, D]
        for k, dev in enumerate(self.devices):
            known = ~np.isnan(y_all[:, k])
            if not known.any():
                raise ValueError(f"{train.name}: device {dev.name!r} has no known label in training windows")
            with threadpool_limits(self.threads):
                self._fit_device(k, dev, f[known], y_all[known, k])
        return self

    def _check(self, log: SensorLog) -> None:
        names = [c.name for c in log.channels]
        if names != self.channels:
            raise ValueError(
                f"{self.name}: {log.name} has channels {names}, the baseline was fit on {self.channels}"
            )

    def scores(self, log: SensorLog, ends: np.ndarray) -> dict[str, np.ndarray]:
        """Per device: binary P(on) [M]; level class probabilities [M, levels]; setpoint value [M]."""
        self._check(log)
        sampler = WindowSampler(log, self.window, stale_steps=self.stale_steps)
        f = self._features(sampler, np.asarray(ends, dtype=np.int64))
        with threadpool_limits(self.threads):
            return {dev.name: self._score_device(k, dev, f) for k, dev in enumerate(self.devices)}

    def predict(self, log: SensorLog, ends: np.ndarray) -> dict[str, np.ndarray]:
        """Per device, float [M]: binary 0/1 (score >= threshold), level index, setpoint value."""
        return self.decide(self.scores(log, ends))

    def decide(self, scores: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        out = {}
        for dev in self.devices:
            s = scores[dev.name]
            if dev.kind == "binary":
                out[dev.name] = (s >= self.thresholds[dev.name]).astype(np.float32)
            elif dev.kind == "level":
                out[dev.name] = np.argmax(s, axis=1).astype(np.float32)
            else:
                out[dev.name] = s.astype(np.float32)
        return out

    def tune_thresholds(self, val: SensorLog, rule: str) -> None:
        """Choose each binary device's threshold on the validation windows by `rule` (training.thresholds)."""
        ends = WindowSampler(val, self.window, stale_steps=self.stale_steps).ends
        if ends.size == 0:
            logger.warning("%s: no validation window in %s; thresholds stay 0.5", self.name, val.name)
            return
        scores = self.scores(val, ends)
        for k, dev in enumerate(self.devices):
            if dev.kind == "binary":
                known = ~np.isnan(val.labels[ends, k])
                thr, value = choose_threshold(scores[dev.name][known], val.labels[ends, k][known], rule)
                self.thresholds[dev.name] = thr
                logger.info(
                    "%s %s: threshold %.3f (validation %s %.3f)", self.name, dev.name, thr, rule, value
                )


def _class_probs(model, f: np.ndarray, levels: int) -> np.ndarray:
    """float32 [M, levels] from an sklearn classifier whose classes_ may be a subset of 0..levels-1."""
    p = model.predict_proba(f)
    out = np.zeros((f.shape[0], levels), dtype=np.float32)
    out[:, model.classes_.astype(np.int64)] = p
    return out


def _n_classes(dev: DeviceInfo) -> int:
    return 2 if dev.kind == "binary" else dev.levels


class _Constant:
    """The majority class (binary/level) or the median (setpoint) of one device's training labels."""

    def __init__(self, dev: DeviceInfo, y: np.ndarray) -> None:
        self.dev = dev
        if dev.kind == "setpoint":
            self.value = float(np.median(y))
        else:
            counts = np.bincount(np.rint(y).astype(np.int64), minlength=_n_classes(dev))
            self.probs = np.zeros(_n_classes(dev), np.float32)
            self.probs[int(np.argmax(counts))] = 1.0  # the decision is the majority class

    def score(self, m: int) -> np.ndarray:
        if self.dev.kind == "setpoint":
            return np.full(m, self.value, np.float32)
        if self.dev.kind == "binary":  # P(on) = the majority decision (AP of a constant = positive rate)
            return np.full(m, self.probs[1], np.float32)
        return np.tile(self.probs, (m, 1))


class Majority(Baseline):
    name = "majority"

    def __init__(self, train, window, stale_steps):
        super().__init__(train, window, stale_steps)
        self._const: dict[int, _Constant] = {}

    def _features(self, sampler: WindowSampler, ends: np.ndarray) -> np.ndarray:
        return np.zeros((ends.size, 0), dtype=np.float32)

    def _fit_device(self, k, dev, f, y):
        self._const[k] = _Constant(dev, y)

    def _score_device(self, k, dev, f):
        return self._const[k].score(f.shape[0])

    def tune_thresholds(self, val, rule):
        return None  # a constant score: the majority class is the decision


class Lda(Baseline):
    name = "lda"

    def fit(self, train, rng, max_windows):
        self._mean = np.nan_to_num(np.nanmean(train.values, axis=0), nan=0.0).astype(np.float32)  # [C]
        self._models: dict[int, object] = {}  # LDA / LinearRegression / _Constant per device
        return super().fit(train, rng, max_windows)

    def _impute(self, f: np.ndarray) -> np.ndarray:
        return np.where(np.isnan(f), self._mean[None, :], f)

    def _fit_device(self, k, dev, f, y):
        f = self._impute(f)
        if dev.kind == "setpoint":
            self._models[k] = LinearRegression().fit(f, y)
        elif np.unique(y).size < 2:
            self._models[k] = _Constant(dev, y)
        else:
            self._models[k] = LinearDiscriminantAnalysis().fit(f, np.rint(y).astype(np.int64))

    def _score_device(self, k, dev, f):
        model = self._models[k]
        if isinstance(model, _Constant):
            return model.score(f.shape[0])
        f = self._impute(f)
        if dev.kind == "setpoint":
            return model.predict(f).astype(np.float32)
        probs = _class_probs(model, f, _n_classes(dev))
        return probs[:, 1] if dev.kind == "binary" else probs


class ThresholdRule(Majority):
    name = "threshold_rule"

    def __init__(self, train, window, stale_steps):
        super().__init__(train, window, stale_steps)
        self._rules: dict[int, tuple[int, float, float, float, float]] = {}

    def _features(self, sampler, ends):
        return current_features(sampler, ends)

    def _fit_device(self, k, dev, f, y):
        super()._fit_device(k, dev, f, y)  # the fallback (and the decision for non-binary devices)
        if dev.kind != "binary" or np.unique(y).size < 2:
            return
        yb = y > 0.5
        best = (-1.0, 0, 1.0, 0.0)
        for c in range(f.shape[1]):
            ok = ~np.isnan(f[:, c])
            if ok.sum() < 2:
                continue
            for sign in (1.0, -1.0):
                v, t = sign * f[ok, c], yb[ok]
                order = np.argsort(-v, kind="stable")
                vs, ts = v[order], t[order]
                tp, fp = np.cumsum(ts), np.cumsum(~ts)
                pos, neg = tp[-1], fp[-1]
                if pos == 0 or neg == 0:
                    continue
                last = np.r_[vs[1:] != vs[:-1], True]
                bal = 0.5 * (tp / pos + (neg - fp) / neg)
                bal[~last] = -1.0
                i = int(np.argmax(bal))
                cut = vs[i] if i == vs.size - 1 else 0.5 * (vs[i] + vs[i + 1])
                if bal[i] > best[0]:
                    best = (float(bal[i]), c, sign, float(cut))
        if best[0] < 0:
            return
        _, c, sign, cut = best
        scale = float(np.nanstd(f[:, c])) or 1.0
        self._rules[k] = (c, sign, cut, scale, best[0])
        logger.info(
            "threshold_rule %s: %s %s %.4g (train balanced accuracy %.3f)",
            dev.name,
            self.channels[c],
            ">" if sign > 0 else "<",
            sign * cut,
            best[0],
        )

    def _score_device(self, k, dev, f):
        if k not in self._rules:
            return super()._score_device(k, dev, f)
        c, sign, cut, scale, _ = self._rules[k]
        margin = (sign * f[:, c] - cut) / scale
        p = 1.0 / (1.0 + np.exp(-np.clip(margin, -50, 50)))  # > 0.5 exactly when the rule says ON
        fallback = super()._score_device(k, dev, f)
        return np.where(
            np.isnan(f[:, c]), fallback, np.where(margin > 0, np.maximum(p, 0.5 + 1e-6), p)
        ).astype(np.float32)

    def tune_thresholds(self, val, rule):
        Baseline.tune_thresholds(self, val, rule)

    def rule(self, device: str) -> str:
        """Human-readable rule of a binary device, e.g. "Light > 365.2"."""
        k = [d.name for d in self.devices].index(device)
        if k not in self._rules:
            return "majority"
        c, sign, cut, _, _ = self._rules[k]
        return f"{self.channels[c]} {'>' if sign > 0 else '<'} {sign * cut:.4g}"


class GbdtWindow(Baseline):
    name = "gbdt_window"

    def __init__(self, train, window, stale_steps, seed: int = 0):
        super().__init__(train, window, stale_steps)
        self.seed = seed
        self._models: dict[int, object] = {}

    def _features(self, sampler, ends):
        return window_features(sampler, ends)

    def _fit_device(self, k, dev, f, y):
        common = dict(
            max_iter=200,
            learning_rate=0.1,
            early_stopping=True,
            validation_fraction=0.1,
            n_iter_no_change=15,
            random_state=self.seed,
        )
        if dev.kind == "setpoint":
            self._models[k] = HistGradientBoostingRegressor(**common).fit(f, y)
        elif np.unique(y).size < 2:
            self._models[k] = _Constant(dev, y)
        else:
            self._models[k] = HistGradientBoostingClassifier(class_weight="balanced", **common).fit(
                f, np.rint(y).astype(np.int64)
            )

    def _score_device(self, k, dev, f):
        model = self._models[k]
        if isinstance(model, _Constant):
            return model.score(f.shape[0])
        if dev.kind == "setpoint":
            return model.predict(f).astype(np.float32)
        probs = _class_probs(model, f, _n_classes(dev))
        return probs[:, 1] if dev.kind == "binary" else probs


def fit_baselines(
    train: SensorLog,
    val: SensorLog | None,
    window: int,
    names: Sequence[str] = BASELINES,
    *,
    stale_steps: int = 1,
    seed: int = 0,
    max_train_windows: int = MAX_TRAIN_WINDOWS,
    threshold_rule: str = DEFAULT_RULE,
    threads: int = 1,
) -> dict[str, Baseline]:
    """Fit the named baselines on `train` (thresholds on `val` where the baseline tunes them)."""
    kinds = {"majority": Majority, "lda": Lda, "threshold_rule": ThresholdRule, "gbdt_window": GbdtWindow}
    out: dict[str, Baseline] = {}
    for name in names:
        if name not in kinds:
            raise ValueError(f"unknown baseline {name!r}; known: {', '.join(BASELINES)}")
        cls = kinds[name]
        b = cls(train, window, stale_steps, seed) if cls is GbdtWindow else cls(train, window, stale_steps)
        b.threads = threads
        b.fit(train, np.random.default_rng(seed), max_train_windows)
        if val is not None:
            b.tune_thresholds(val, threshold_rule)
        out[name] = b
    return out

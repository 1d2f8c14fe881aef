"""The training loop: lazy windows -> the full model and its coarse (time x4) sibling, trained side by side.

Windows come from `WindowSampler` one batch at a time (never all [N, C, T] at once). Each step feeds the
same normalized batch to the full model and, pooled in time, to the coarse model (the `coarse`/`focused`/
`sparse` tiers); both get random channel dropout (>= 1 live) so masked channels and top-k subsets stay
valid. AdamW, early stopping on validation loss (best state kept per model), a wall-clock budget, rare-label
handling (balanced sampling + tempered class weights), oversampled transitions (windows whose label differs
from the device's `<device>.state` input: a person's change follows), and per-device thresholds chosen on
validation.
"""

from __future__ import annotations

import logging
import math
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from edge_agent import features
from edge_agent.kinds import state_channel
from edge_agent.manifest import ChannelSpec, DeviceSpec
from training.budgetmask import BudgetShape
from training.bundle import default_budget
from training.data import WindowSampler, channel_moments, normalize
from training.deadline import PROBE_STEPS, LoopDeadline
from training.decisions import SETPOINT_AGREE
from training.head_modes import DEFAULT_LEVEL_HEAD, DEFAULT_SETPOINT_HEAD
from training.losses import DeviceLoss, build_heads
from training.model import CatVsn, DeviceHead, ModelConfig, n_params, pool_time
from training.progress import TrainProgress
from training.sensorlog import SensorLog
from training.thresholds import DEFAULT_RULE, ThresholdRule, choose_threshold, parse_rule, sample_ends

logger = logging.getLogger(__name__)

RARE = 0.2  # a binary device on less often than this is oversampled to about this rate per epoch
MAX_BOOST = 20.0  # cap on the oversampling factor of one rare positive window
MAX_TRANSITION_BOOST = 50.0  # cap on the oversampling factor of one transition window


@dataclass
class TrainConfig:
    window: int = 64  # fine steps per window (64 min at 1-min steps)
    time_factor: int = 4  # coarse tier: 4 fine steps merged
    patch: int = 8  # fine model patch; the coarse model uses patch // time_factor (min 1)
    d: int = 32
    coarse_d: int = 24  # the cheapest tiers use a narrower model
    coarse_heads: int = (
        1  # one head: no per-head reshapes/transposes, ~10 fewer ONNX nodes at the latency floor
    )
    batch: int = 128
    lr: float = 3e-3
    weight_decay: float = 1e-4
    epochs: int = 15
    patience: int = 4  # epochs without validation improvement before stopping
    max_windows_per_epoch: int = 200_000  # long histories: an epoch is a random sample of this many windows
    max_val_windows: int = 20_000  # validation windows for the per-epoch loss (evenly strided)
    steps: int | None = (
        None  # optimizer steps in all (the schedule's length); None = epochs x steps per epoch
    )
    budget_seconds: float | None = None  # wall-clock SAFETY stop of the loop (stop_reason "wall_clock")
    # epoch seconds the loop must end by (training.deadline: the training job's start + budget - the reserve
    # for export/quantization/evaluation); the loop shrinks its steps to end before it (stop_reason "deadline")
    deadline: float | None = None
    channel_dropout: float = 0.3
    # kinds whose window level (newest value, mean) the model does not see, only their shape and spread: CO2 and
    # humidity baselines drift with ventilation and weather (UCI test2: empty-room CO2 up to 1500 ppm), and a
    # model that reads their level fails on a later week (measured: no-Light UCI test2 65 % -> 77 %)
    level_free_kinds: tuple[str, ...] = ("co2", "humidity", "humidity_ratio")
    keep_all_frac: float = 0.3  # fraction of samples trained with every live channel
    attn_entropy: float = (
        0.02  # readout-attention entropy penalty: peaked attention, faithful top-1 (UCI 0.89->0.97)
    )
    ema: float = (
        0.99  # validate and keep an exponential moving average of the weights (decay per step; 0 = off)
    )
    threshold_rule: str = (
        DEFAULT_RULE  # binary threshold on validation: f1 | accuracy | balanced | cost:ON/OFF
    )
    threshold_windows: int | None = None  # validation windows thresholds are chosen on; None = all of them
    # windows whose label differs from the device's `<device>.state` input at the window end (a person's change
    # follows: few, but what the model must learn) are oversampled to about this share of an epoch
    transition_frac: float = 0.3
    seed: int = 0
    threads: int = 2
    progress: bool = True
    half_life_days: float | None = None  # recency: a window this many days older is drawn half as often
    init_from: str | None = None  # a model.pt to warm-start from (the champion's; same channels and devices)
    # output heads and token inputs (training.heads, issue 20)
    # softmax (expected level) | ordinal (cumulative logits -> median level)
    level_head: str = DEFAULT_LEVEL_HEAD
    setpoint_head: str = DEFAULT_SETPOINT_HEAD  # classes (CE over the label values) | regression (Huber)
    level_balance: float = 0.5  # level/setpoint-class weights ~ (N / count) ** this (1 = fully balanced)
    dynamics: bool = False  # per-token lagged differences + short-window summary (ModelConfig.dynamics)
    # steps distilling the coarse model (coarse/focused/sparse tiers) from the full one after training
    # (training.distill); None = DISTILL_SHARE of the training steps run, 0 = off
    distill_steps: int | None = None
    # share of the full model's training rows masked like a budgeted tier's input (training.budgetmask: fast
    # + calendar + a triggering channel's room + random others), so `focused`/`sparse` (the full model on a
    # channel budget) answer events as the full model does on every channel. 0 = off (random dropout only):
    # not yet measured on a rebuilt demo bundle (issue 21), so it does not change the reference model unasked
    budget_mask_frac: float = 0.0


@dataclass
class TrainResult:
    full: CatVsn
    coarse: CatVsn
    channels: list[ChannelSpec]
    devices: list[DeviceSpec]
    metrics: dict[str, float]
    history: list[dict[str, float]] = field(default_factory=list)
    val_pool: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None  # normalized val windows (x, mask, ids)
    stop_reason: str = "epochs"  # epochs | steps | early_stop | wall_clock (the safety stop) | deadline
    loop_end: float = 0.0  # time.monotonic() when the training loop ended (the post-train part starts)


def device_heads(log: SensorLog, cfg: TrainConfig | None = None) -> list[DeviceHead]:
    """Output heads from the log's devices in the head modes of `cfg` (training.losses.build_heads)."""
    cfg = cfg or TrainConfig()
    return build_heads(log, cfg.level_head, cfg.setpoint_head)


def channel_dropout(mask: torch.Tensor, p: float, keep_all_frac: float, gen: torch.Generator) -> torch.Tensor:
    """Drop each live channel with prob p (not for a keep_all_frac of samples); keep >= 1 live per row."""
    b, c = mask.shape
    drop = (torch.rand(b, c, generator=gen) < p) & (torch.rand(b, 1, generator=gen) >= keep_all_frac)
    new = mask * (~drop).to(mask.dtype)
    empty = (new.sum(1) == 0) & (mask.sum(1) > 0)
    if empty.any():
        pick = (mask[empty] * torch.rand(int(empty.sum()), c, generator=gen)).argmax(1)  # a random live one
        new[empty.nonzero().squeeze(1), pick] = 1.0
    return new


def entropy(att: torch.Tensor) -> torch.Tensor:
    """Mean entropy of the readout attention rows [B, D, C] (masked entries are 0 and contribute 0)."""
    return -(att * torch.log(att.clamp_min(1e-9))).sum(-1).mean()


def transitions(sampler: WindowSampler, log: SensorLog, heads: list[DeviceHead]) -> np.ndarray:
    """bool [M] per window end: some device's label differs from its `<device>.state` input at the end."""
    names = {c.name: i for i, c in enumerate(log.channels)}
    out = np.zeros(sampler.ends.size, dtype=bool)
    for k, h in enumerate(heads):
        c = names.get(state_channel(h.name))
        if c is None:
            continue
        y, s = sampler.labels[sampler.ends, k], sampler.values[sampler.ends, c]
        known = ~np.isnan(y) & ~np.isnan(s)
        diff = np.abs(y - s) > (SETPOINT_AGREE if h.kind == "setpoint" else 0.5)
        out |= known & diff
    return out


def epoch_sample(
    sampler: WindowSampler,
    heads: list[DeviceHead],
    n: int,
    rng: np.random.Generator,
    moves: np.ndarray | None = None,
    transition_frac: float = 0.0,
    recency: np.ndarray | None = None,
) -> np.ndarray:
    """Window ends for one epoch: all (shuffled) or n drawn, rare binary positives oversampled to ~RARE and
    transition windows (`moves` bool [M], see `transitions`) to ~transition_frac of the epoch; `recency`
    (float [M] in (0, 1], see `recency_weights`) scales every window's chance at the end."""
    ends = sampler.ends
    weight = np.ones(ends.size)
    for k, h in enumerate(heads):
        if h.kind != "binary":
            continue
        y = sampler.labels[ends, k]
        rate = float(np.nanmean(y)) if np.isfinite(y).any() else 0.0
        if 0 < rate < RARE:
            weight += (y == 1) * (min(MAX_BOOST, RARE / rate) - 1.0)
    if moves is not None and 0 < transition_frac < 1 and moves.any() and not moves.all():
        a, b = float(weight[moves].sum()), float(weight[~moves].sum())
        if a / (a + b) < transition_frac:
            weight[moves] *= min(MAX_TRANSITION_BOOST, transition_frac * b / ((1 - transition_frac) * a))
    if recency is not None:
        weight = weight * recency
    if ends.size <= n and np.all(weight == 1):
        return rng.permutation(ends)
    return rng.choice(ends, size=min(n, max(ends.size, 1)) if ends.size <= n else n, p=weight / weight.sum())


def recency_weights(log: SensorLog, ends: np.ndarray, half_life_days: float | None) -> np.ndarray | None:
    """float [M]: 0.5 ** (age / half-life) of each window end, age counted from the log's last row (None: off).
    A change of habit wins over old history: last week's preference outweighs last month's."""
    if half_life_days is None or half_life_days <= 0 or ends.size == 0:
        return None
    age_days = (len(log) - 1 - ends).astype(np.float64) * log.step_seconds / 86400.0
    return np.power(0.5, age_days / half_life_days)


def strided(ends: np.ndarray, n: int) -> np.ndarray:
    return ends if ends.size <= n else ends[np.linspace(0, ends.size - 1, n).astype(np.int64)]


def windows(
    sampler: WindowSampler, ends: np.ndarray, mean: np.ndarray, std: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Normalized (x [B, C, T], mask [B, C], ids [B, C], labels [B, D]) at these window ends."""
    x, mask, labels = sampler.batch(ends)
    ids = np.broadcast_to(np.arange(x.shape[1], dtype=np.int64), mask.shape)
    return normalize(x, mask, mean, std), mask, np.ascontiguousarray(ids), labels


def _ema(model: CatVsn, decay: float) -> torch.optim.swa_utils.AveragedModel | None:
    if decay <= 0:
        return None
    return torch.optim.swa_utils.AveragedModel(
        model, multi_avg_fn=torch.optim.swa_utils.get_ema_multi_avg_fn(decay), use_buffers=True
    )


@torch.inference_mode()
def predict_raw(
    model: CatVsn, x: np.ndarray, mask: np.ndarray, ids: np.ndarray, batch: int = 1024
) -> np.ndarray:
    """Raw head outputs [N, O] of `model` (eval) over normalized windows, in chunks."""
    model.eval()
    outs = [
        model.raw(
            torch.from_numpy(x[i : i + batch]),
            torch.from_numpy(mask[i : i + batch]),
            torch.from_numpy(ids[i : i + batch]),
        )[0]
        for i in range(0, len(x), batch)
    ]
    return torch.cat(outs).numpy() if outs else np.zeros((0, sum(h.n_out for h in model.cfg.devices)))


def warm_start(path: str | None, full: CatVsn, coarse: CatVsn) -> bool:
    """Load both models' weights from `path` (a bundle's model.pt) when their configs are identical."""
    if path is None:
        return False
    blob = torch.load(path, map_location="cpu", weights_only=False)
    pairs = (("full", full), ("coarse", coarse))
    if any(blob.get(k, {}).get("config") != m.cfg.to_dict() for k, m in pairs):
        logger.info("warm start: %s has another model shape; cold start", path)
        return False
    for k, m in pairs:
        m.load_state_dict(blob[k]["state"])
    logger.info("warm start from %s", path)
    return True


def train(
    train_log: SensorLog,
    val_log: SensorLog,
    cfg: TrainConfig,
    on_epoch: Callable[[int, CatVsn, CatVsn], None] | None = None,
) -> TrainResult:
    """Train the full and coarse models on `train_log`, early-stopped and thresholded on `val_log`.

    `on_epoch(epoch, full, coarse)` is called after each epoch's validation (diagnostics; models in eval mode).
    """
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    gen = torch.Generator().manual_seed(cfg.seed)
    torch.set_num_threads(cfg.threads)
    mean, std = channel_moments(train_log)
    heads = device_heads(train_log, cfg)
    kinds = [c.kind for c in train_log.channels]
    tr = WindowSampler(train_log, cfg.window)
    va = WindowSampler(val_log, cfg.window)
    if len(tr) == 0 or len(va) == 0:
        raise ValueError(
            f"no labelled windows of {cfg.window} steps in the train ({len(tr)}) or validation "
            f"({len(va)}) span; use a shorter --window or a longer history"
        )
    free = list(cfg.level_free_kinds)
    full = CatVsn(
        ModelConfig(
            kinds,
            heads,
            window=cfg.window,
            patch=cfg.patch,
            d=cfg.d,
            level_free_kinds=free,
            dynamics=cfg.dynamics,
        )
    )
    cw = cfg.window // cfg.time_factor
    coarse = CatVsn(
        ModelConfig(
            kinds,
            heads,
            window=cw,
            patch=max(1, cfg.patch // cfg.time_factor),
            d=cfg.coarse_d,
            heads=cfg.coarse_heads,
            time_factor=cfg.time_factor,
            level_free_kinds=free,
            dynamics=cfg.dynamics,
        )
    )
    warm_start(cfg.init_from, full, coarse)
    params = list(full.parameters()) + list(coarse.parameters())
    ema = {n: _ema(m, cfg.ema) for n, m in (("full", full), ("coarse", coarse))}
    opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    loss_fn = DeviceLoss(heads, train_log.labels[tr.ends], cfg.level_balance)
    moves = transitions(tr, train_log, heads)  # bool [M]
    recency = recency_weights(train_log, tr.ends, cfg.half_life_days)  # float [M] or None
    vx, vmask, vids, vlab = windows(va, strided(va.ends, cfg.max_val_windows), mean, std)
    ev = features.event_rows(kinds)  # [C]: event channels pool by max
    shape = BudgetShape([c.name for c in train_log.channels], kinds, default_budget(len(kinds)))
    vxc = features.pool_time(vx, cfg.time_factor, ev)  # the runtime's pooling (numpy)

    per_epoch = min(len(tr), cfg.max_windows_per_epoch)
    steps_per_epoch = math.ceil(per_epoch / cfg.batch)
    total_steps, n_epochs = step_budget(cfg, steps_per_epoch)
    sched = one_cycle(opt, cfg.lr, total_steps)
    planned = total_steps
    plan = LoopDeadline(cfg.deadline)
    val_seconds: float | None = None
    best: dict[str, Any] = {"full": (math.inf, None, -1), "coarse": (math.inf, None, -1)}
    history: list[dict[str, float]] = []
    t0 = time.monotonic()
    t_first = t0  # after the first step (set there): the first plan's pace leaves its one-off costs out
    seen = 0
    step = 0
    stop_reason = "steps" if cfg.steps else "epochs"
    logger.info(
        "training %s params full, %s coarse; %s train / %s val windows",
        n_params(full),
        n_params(coarse),
        len(tr),
        len(vx),
    )
    with TrainProgress(total_steps, cfg.budget_seconds, enabled=cfg.progress) as prog:
        for epoch in range(n_epochs):
            full.train()
            coarse.train()
            ends = epoch_sample(tr, heads, per_epoch, rng, moves, cfg.transition_frac, recency)
            run_loss, n_b = 0.0, 0
            for i in range(0, ends.size, cfg.batch):
                if step >= total_steps:
                    break
                x, mask, ids, labels = (
                    torch.from_numpy(a) for a in windows(tr, ends[i : i + cfg.batch], mean, std)
                )
                m_full = channel_dropout(mask, cfg.channel_dropout, cfg.keep_all_frac, gen)
                m_full = shape.apply(
                    mask, m_full, cfg.budget_mask_frac, gen
                )  # [B, C] some rows budget-shaped
                m_coarse = channel_dropout(mask, cfg.channel_dropout, cfg.keep_all_frac, gen)
                out_f, att_f, _ = full.raw(x, m_full, ids)
                out_c, att_c, _ = coarse.raw(pool_time(x, cfg.time_factor, ev), m_coarse, ids)
                loss = loss_fn(out_f, labels) + loss_fn(out_c, labels)
                if cfg.attn_entropy > 0:
                    loss = loss + cfg.attn_entropy * (entropy(att_f) + entropy(att_c))
                opt.zero_grad(set_to_none=True)
                loss.backward()
                torch.nn.utils.clip_grad_norm_(params, 1.0)
                opt.step()
                sched.step()
                step += 1
                for name, m in (("full", full), ("coarse", coarse)):
                    if ema[name] is not None:
                        ema[name].update_parameters(m)
                seen += len(x)
                run_loss += float(loss.detach())
                n_b += 1
                prog.step(loss=run_loss / n_b, windows=seen, epoch=epoch + 1)
                if step == 1:  # the first step pays one-off costs: the pace is timed after it
                    t_first = time.monotonic()
                if step == PROBE_STEPS and cfg.deadline is not None:  # the first plan, at the measured pace
                    pace = (time.monotonic() - t_first) / (step - 1)
                    new = plan.fit(step, total_steps, pace, steps_per_epoch, None, len(vx), cfg.batch)
                    if new < total_steps:
                        total_steps, sched = new, one_cycle(opt, cfg.lr, new, done=step)
                        logger.info("deadline: %d steps fit (%.3fs/step), planned %d", new, pace, planned)
                if cfg.deadline is not None and plan.passed():
                    stop_reason = "deadline"
                    logger.warning("deadline reached after %d of %d steps", step, total_steps)
                    break
                if cfg.budget_seconds is not None and time.monotonic() - t0 > cfg.budget_seconds:
                    stop_reason = "wall_clock"  # the safety stop, not the budget: said so in the report
                    logger.warning(
                        "wall-clock safety stop after %.0fs: %d of %d steps run",
                        cfg.budget_seconds,
                        step,
                        total_steps,
                    )
                    break
            t_val = time.monotonic()
            evm = {
                n: (ema[n].module if ema[n] is not None else m)
                for n, m in (("full", full), ("coarse", coarse))
            }
            vl = {
                name: float(
                    loss_fn(
                        torch.from_numpy(predict_raw(evm[name], xx, vmask, vids)),
                        torch.from_numpy(vlab),
                        seen_only=True,
                    )
                )
                for name, xx in (("full", vx), ("coarse", vxc))
            }
            val_seconds = time.monotonic() - t_val
            history.append(
                {
                    "epoch": epoch + 1,
                    "train_loss": run_loss / max(n_b, 1),
                    "val_loss_full": vl["full"],
                    "val_loss_coarse": vl["coarse"],
                }
            )
            logger.info(
                "epoch %s train %.4f val full %.4f coarse %.4f",
                epoch + 1,
                run_loss / max(n_b, 1),
                vl["full"],
                vl["coarse"],
            )
            prog.epoch_line(epoch + 1, n_epochs, run_loss / max(n_b, 1), vl["full"], vl["coarse"])
            if on_epoch is not None:
                on_epoch(epoch + 1, evm["full"].eval(), evm["coarse"].eval())
            for name, m in evm.items():
                if vl[name] < best[name][0]:
                    best[name] = (vl[name], {k: v.clone() for k, v in m.state_dict().items()}, epoch)
            # re-plan with this epoch's measured pace (before the stop test: a plan cut short may grow back)
            if cfg.deadline is not None and step > 0 and stop_reason not in ("wall_clock", "deadline"):
                pace = (t_val - t0 - epoch * val_seconds) / step  # loop time less earlier validations
                new = plan.fit(
                    step,
                    total_steps,
                    max(pace, 1e-6),
                    steps_per_epoch,
                    val_seconds,
                    len(vx),
                    cfg.batch,
                    cap=planned,  # a plan cut on a slow early pace grows back when the pace allows
                )
                if new != total_steps:
                    total_steps, sched = new, one_cycle(opt, cfg.lr, new, done=step)
                    logger.info("deadline: re-planned to %d steps (planned %d)", new, planned)
            if stop_reason in ("wall_clock", "deadline") or step >= total_steps:
                if step >= total_steps and total_steps < planned:
                    stop_reason = "deadline"  # the plan was shortened to end before the deadline
                break
            # early stopping on the served tier (full); the coarse model keeps its own best epoch so far
            if epoch - best["full"][2] >= cfg.patience:
                stop_reason = "early_stop"
                break
    loop_end = time.monotonic()
    wall = loop_end - t0
    for name, m in (("full", full), ("coarse", coarse)):
        if best[name][1] is not None:
            m.load_state_dict(best[name][1])
        m.eval()

    rule = parse_rule(cfg.threshold_rule)
    tends = sample_ends(va.ends, cfg.threshold_windows)
    devices, thr_metrics = _device_specs(
        full, heads, [d.unit for d in train_log.devices], va, tends, mean, std, rule
    )
    metrics = {
        "train_seconds": wall,
        "train_windows_per_second": seen / max(wall, 1e-9),
        "train_windows_seen": float(seen),
        "epochs_run": float(len(history)),
        "best_epoch_full": float(best["full"][2] + 1),
        "best_epoch_coarse": float(best["coarse"][2] + 1),
        "steps_run": float(step),
        "steps_planned": float(total_steps),
        "steps_planned_first": float(planned),  # before the deadline shortened the plan
        "deadline_replans": float(plan.replans),
        "deadline_slack_seconds": plan.left() if cfg.deadline is not None else -1.0,  # left at the loop's end
        "threshold_windows": float(tends.size),
        "val_loss_full": float(best["full"][0]),
        "val_loss_coarse": float(best["coarse"][0]),
        "params_full": float(n_params(full)),
        "params_coarse": float(n_params(coarse)),
        "budget_stopped": float(stop_reason == "wall_clock"),
        "train_transition_windows": float(moves.sum()),
        **thr_metrics,
    }
    channels = [
        ChannelSpec(name=c.name, unit=c.unit, kind=c.kind, mean=float(mu), std=float(sd))
        for c, mu, sd in zip(train_log.channels, mean, std, strict=True)
    ]
    logger.info(
        "trained in %.1fs (%s), %.0f windows/s", wall, stop_reason, metrics["train_windows_per_second"]
    )
    return TrainResult(
        full, coarse, channels, devices, metrics, history, (vx, vmask, vids), stop_reason, loop_end
    )


def one_cycle(opt: torch.optim.Optimizer, lr: float, total: int, done: int = 0) -> Any:
    """The one-cycle schedule over `total` steps, advanced past `done` already run (a re-planned run)."""
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=max(total, 1), pct_start=0.1)
    with warnings.catch_warnings():  # fast-forwarding without optimizer steps is the point here
        warnings.simplefilter("ignore")
        for _ in range(min(done, max(total, 1) - 1)):
            sched.step()
    return sched


def step_budget(cfg: TrainConfig, steps_per_epoch: int) -> tuple[int, int]:
    """(total optimizer steps, epochs to run them in): `steps` if given, else epochs x steps per epoch."""
    if cfg.steps:
        return int(cfg.steps), math.ceil(cfg.steps / max(steps_per_epoch, 1))
    return cfg.epochs * steps_per_epoch, cfg.epochs


def _device_specs(
    model: CatVsn,
    heads: list[DeviceHead],
    units: list[str],
    va: WindowSampler,
    ends: np.ndarray,
    mean: np.ndarray,
    std: np.ndarray,
    rule: ThresholdRule,
) -> tuple[list[DeviceSpec], dict[str, float]]:
    """DeviceSpecs for the manifest, binary thresholds chosen by `rule` on the validation windows `ends`."""
    outs, labs = [], []
    with torch.inference_mode():
        for i in range(0, ends.size, 2048):  # chunks: a year of validation is ~500k windows
            x, mask, ids, y = windows(va, ends[i : i + 2048], mean, std)
            outs.append(model(torch.from_numpy(x), torch.from_numpy(mask), torch.from_numpy(ids))[0].numpy())
            labs.append(y)
    dev = np.concatenate(outs)  # [N, D]
    labels = np.concatenate(labs)  # [N, D]
    specs, metrics = [], {}
    for k, h in enumerate(heads):
        if h.kind == "binary":
            y = labels[:, k]
            known = ~np.isnan(y)
            thr, score = choose_threshold(dev[known, k], y[known], rule)
            metrics[f"val_{rule.key}.{h.name}"] = score
            specs.append(DeviceSpec(name=h.name, kind="binary", threshold=thr))
        elif h.kind == "level":
            specs.append(DeviceSpec(name=h.name, kind="level", levels=h.levels))
        else:
            specs.append(
                DeviceSpec(
                    name=h.name, kind="setpoint", unit=units[k], min_value=h.min_value, max_value=h.max_value
                )
            )
    return specs, metrics

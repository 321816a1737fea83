"""``train(cfg, run_dir)``: one run of any method, from a config to a run directory.

A method supplies its networks and its loss (``Method.forward(views)``); this module builds
everything else from the config — the device, the data and its views
(:mod:`probssl.data.views`), the optimiser and the per-step learning-rate schedule
(:mod:`probssl.train.optim`), the run directory, resume, DDP — and hands them to the
:class:`~probssl.train.loop.Trainer`, whose checkpoints, NaN guard, metrics log, TensorBoard,
progress bar and Ctrl-C stop are callbacks (:mod:`probssl.train.callbacks`).

Data stays on the training device as uint8 for the whole run; each step gathers a batch by
index and augments it into J views there, so no host-to-device copy happens per step.
The data order of epoch e is a permutation drawn from a generator seeded by (seed, e), and
every RNG state is checkpointed with the step reached inside the epoch, so a resumed run
continues exactly where it stopped — at an epoch end, a periodic mid-epoch checkpoint
(``checkpoint_every``) or the step where Ctrl-C arrived (docs/RELIABILITY.md).
"""

from __future__ import annotations

import json
import math
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel as DDP

from probssl.config import TrainConfig
from probssl.data.views import make_view_source, next_frame_items
from probssl.errors import UserError, exception_line
from probssl.methods import Method, build_method
from probssl.runs import checkpoint as ckpt
from probssl.runs.format import (
    CONFIG_FILE,
    METRICS_FILE,
    ResolvedRun,
    check_checkpoint_matches_config,
    read_metrics,
    read_run_config,
    resolve,
    write_run_files,
)
from probssl.train.callbacks import (
    Checkpointing,
    MetricsLog,
    NaNGuard,
    OnlineKNN,
    ProgressBar,
    StopOnSignal,
    TensorBoard,
    set_rng_state,
)
from probssl.train.distributed import DistInfo, barrier, init_distributed, shutdown
from probssl.train.loop import Callback, Trainer, steps_per_epoch
from probssl.train.optim import build_optimizer, build_schedule
from probssl.train.trackers import Trackers, parse_loggers
from probssl.userio import atomic_write, memory_bytes, warn

# Keys that may differ between the original run and a resumed one.
RESUMABLE_CHANGES = {"epochs", "device", "download", "data_dir", "amp", "tensorboard", "logger",
                     "checkpoint_every", "keep_checkpoints", "compile"}


def check_device(name: str) -> str:
    """``name`` if it is auto, cpu, cuda or cuda:N and usable on this machine; otherwise
    one user error naming what is wrong (checked before any work starts)."""
    name = str(name).strip()
    if name in ("auto", "cpu"):
        return name
    if name == "cuda" or (name.startswith("cuda:") and name[5:].isdigit()):
        if not torch.cuda.is_available():
            raise UserError(f"device {name!r} requested but CUDA is not available on this "
                            "machine (use --device cpu or auto)")
        if name != "cuda" and int(name[5:]) >= torch.cuda.device_count():
            raise UserError(f"device {name!r}: this machine has {torch.cuda.device_count()} "
                            "CUDA device(s)")
        return name
    raise UserError(f"device must be auto, cpu, cuda or cuda:N; got {name!r}")


def resolve_device(name: str, dist_info: DistInfo | None = None) -> torch.device:
    """The torch device for ``name`` (``auto``, ``cpu``, ``cuda`` or ``cuda:N``): ``auto`` is CUDA
    when available; plain ``cuda`` under DDP is this rank's ``cuda:LOCAL_RANK``; CUDA asked for
    but not available is a :class:`UserError`."""
    name = check_device(name)
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise UserError(f"device {name!r} requested but CUDA is not available")
        if name == "cuda" and dist_info is not None and dist_info.enabled:
            name = f"cuda:{dist_info.local_rank}"
    return torch.device(name)


def seed_everything(seed: int) -> None:
    """Seed Python's, NumPy's (``seed`` mod 2³²) and torch's (CPU and CUDA) generators."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


@dataclass
class TrainResult:
    run_dir: Path
    epochs_done: int
    history: list[dict[str, Any]]
    method: Method


def _check_resume_compatible(saved: TrainConfig, new: TrainConfig, run_dir: Path) -> None:
    a, b = saved.to_dict(), new.to_dict()
    new_params, saved_params = b.pop("params"), a.pop("params")
    diffs = [k for k in a if k not in RESUMABLE_CHANGES and a[k] != b[k]
             and not (k == "augmentation" and b[k] is None)]
    diffs += [f"params.{k}" for k, v in new_params.items() if saved_params.get(k) != v]
    if diffs:
        raise UserError(f"cannot resume {run_dir}: it was run with different settings "
                        f"({', '.join(sorted(diffs))}); use a new --out")


def prepare_run_dir(cfg: TrainConfig, run_dir: Path, resume: bool) -> TrainConfig:
    """Validate the out directory; on resume, merge the saved config with allowed changes."""
    has_run = (run_dir / CONFIG_FILE).is_file()
    if resume:
        if not has_run:
            raise UserError(f"--resume: {run_dir} holds no run to resume")
        saved = read_run_config(run_dir)
        _check_resume_compatible(saved, cfg, run_dir)
        for key in RESUMABLE_CHANGES:
            setattr(saved, key, getattr(cfg, key))
        return saved
    if has_run or ckpt.list_checkpoints(run_dir):
        raise UserError(f"{run_dir} already holds a run; pass --resume to continue it or "
                        "choose another --out")
    if run_dir.exists() and not run_dir.is_dir():
        raise UserError(f"--out {run_dir} exists and is not a directory")
    return cfg


def train(cfg: TrainConfig, run_dir: str | Path, *, resume: bool = False,
          progress: bool = True, verbose: bool = True) -> TrainResult:
    """Train ``cfg.method`` on ``cfg.dataset``, writing everything to ``run_dir``."""
    run_dir = Path(run_dir)
    device_kind = "cuda" if (cfg.device.startswith("cuda") or
                             (cfg.device == "auto" and torch.cuda.is_available())) else "cpu"
    dist_info = init_distributed(device_kind)
    try:
        cfg = prepare_run_dir(cfg, run_dir, resume)
        barrier(dist_info)  # every rank has checked the directory before rank 0 writes to it
        result = _train(cfg, run_dir, resume, progress, verbose, dist_info)
    except BaseException:
        shutdown(dist_info, drain=False)
        raise
    # every rank got here: drain the gloo workers, then destroy the group (distributed.py)
    shutdown(dist_info)
    return result


def _min_batch(method: Method) -> int:
    """Images a step needs: 2 for methods with batch statistics (batch norm anywhere, or a
    method that declares it, e.g. VICReg's variance), else 1."""
    bn = any(isinstance(m, torch.nn.modules.batchnorm._BatchNorm) for m in method.modules())
    return max(2 if bn else 1, int(getattr(method, "min_batch_size", 1)))


def _available_memory() -> int:
    """Bytes this process may still allocate (MemAvailable), or physical memory."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return memory_bytes()


def estimate_memory(cfg: TrainConfig, resolved: ResolvedRun) -> dict[str, int]:
    """Bytes a training step needs, by cause, estimated before anything is allocated: the
    network (built on the meta device: no memory) with its gradients and Adam's two moments,
    and one step's views (the augmentation holds about three copies)."""
    data = resolved.data
    try:
        with torch.device("meta"):
            net = build_method(cfg.method, resolved.method, data.image_shape)
        n_params = sum(p.numel() for p in net.parameters())
    except (RuntimeError, NotImplementedError):  # an initialiser that reads values
        n_params = 0  # (e.g. RPM's dynamics prior): the views estimate still applies
    pixels = math.prod(data.image_shape)
    n_views = int(getattr(resolved.method, "n_views", 1))
    return {"network": n_params * 4 * 4,
            "views": cfg.batch_size * n_views * pixels * 4 * 3}


def check_memory(cfg: TrainConfig, resolved: ResolvedRun, device: torch.device) -> None:
    """Refuse, with one line naming the setting, a run whose step cannot fit in memory."""
    need = estimate_memory(cfg, resolved)
    if device.type == "cuda":
        have = torch.cuda.get_device_properties(device).total_memory
        where = f"{device} has"
    else:
        have = _available_memory()
        where = "this machine has"
    if sum(need.values()) <= have:
        return
    gib = 2**30
    if need["network"] >= need["views"]:
        p = resolved.method
        sizes = ", ".join(f"{k}={getattr(p, k)}" for k in ("latent_dim", "hidden_dim", "width")
                          if hasattr(p, k))
        raise UserError(f"the {cfg.method} network ({sizes}) needs about "
                        f"{need['network'] / gib:.3g} GiB for weights, gradients and Adam; "
                        f"{where} {have / gib:.3g} GiB available")
    raise UserError(f"one step's views (batch_size {cfg.batch_size} x n_views "
                    f"{getattr(resolved.method, 'n_views', 1)} images of "
                    f"{'x'.join(map(str, resolved.data.image_shape))}) need about "
                    f"{need['views'] / gib:.3g} GiB; {where} {have / gib:.3g} GiB available "
                    "— lower batch_size or n_views")


def _truncate_metrics(run_dir: Path, epochs: int) -> None:
    """Keep the metric rows of the first ``epochs`` epochs only (atomically)."""
    if not (run_dir / METRICS_FILE).exists():
        return
    rows = [r for r in read_metrics(run_dir) if int(r.get("epoch", 0)) <= epochs]
    text = "".join(json.dumps(r) + "\n" for r in rows)
    if text.encode() != (run_dir / METRICS_FILE).read_bytes():
        atomic_write(run_dir / METRICS_FILE, lambda fh: fh.write(text.encode()))


def _build_method(cfg: TrainConfig, resolved: ResolvedRun, device: torch.device,
                  dist_info: DistInfo) -> tuple[Method, int]:
    """The seeded method on ``device`` and the number of items an epoch draws from; the
    batch size checked against both."""
    data = resolved.data
    check_memory(cfg, resolved, device)  # before the network and the views are allocated
    seed_everything(cfg.seed)
    method = build_method(cfg.method, resolved.method, data.image_shape).to(device)
    # With next-frame views an "item" is a start frame t with t + J - 1 still in the sequence.
    n_items = (next_frame_items(len(data.x_train), method.n_views)
               if cfg.views == "next-frame" else len(data.x_train))
    if n_items < 1:
        raise UserError(f"next-frame views need more than {method.n_views - 1} frames")
    if method.trainable and cfg.batch_size < _min_batch(method):
        raise UserError(f"batch_size {cfg.batch_size}: {cfg.method} needs at least "
                        f"{_min_batch(method)} images per step (batch statistics)")
    if method.trainable and cfg.batch_size > n_items // dist_info.world_size:
        raise UserError(f"batch_size {cfg.batch_size} is larger than the "
                        f"{n_items // dist_info.world_size} training images per process")
    return method, n_items


def build_optimization(method: torch.nn.Module, cfg: TrainConfig, device: torch.device,
                       steps_per_epoch: int
                       ) -> tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.LambdaLR]:
    """The optimiser and the per-step learning-rate schedule the config names
    (:mod:`probssl.train.optim`). The default (adam, constant, no warmup) is the trainer's
    historical fused Adam at a constant rate, bit for bit."""
    # fused Adam: one kernel for all parameters (8x faster than the per-tensor loop on CPU
    # for the MLP preset, measured by `probssl bench throughput`)
    opt = build_optimizer(method, name=cfg.optimizer, lr=cfg.lr, weight_decay=cfg.weight_decay,
                          momentum=cfg.momentum, eps=cfg.adam_eps,
                          fused=device.type in ("cpu", "cuda"))
    sched = build_schedule(opt, name=cfg.schedule,
                           total_steps=max(cfg.epochs * steps_per_epoch, 1),
                           warmup_steps=cfg.warmup_epochs * steps_per_epoch,
                           final_lr_ratio=cfg.final_lr_ratio)
    return opt, sched


@dataclass
class _Start:
    """Where a run starts: epochs done, steps done inside the next, its running sums, and
    the history so far."""

    epoch: int = 0
    step: int = 0
    history: list[dict[str, Any]] = field(default_factory=list)
    partial: dict[str, Any] | None = None


def _load_schedule(sched: torch.optim.lr_scheduler.LambdaLR | None, state: dict[str, Any],
                   steps_done: int) -> None:
    """The schedule's saved state; a checkpoint from before schedules were saved (constant
    rate) continues at the rate it ran with, counted from the steps it has done."""
    if sched is None:
        return
    if state.get("schedule") is not None:
        # its settings come back too: a resumed schedule keeps its length (see _train)
        sched.load_state_dict(state["schedule"])
        return
    sched.last_epoch = steps_done
    sched._last_lr = [g["lr"] for g in sched.optimizer.param_groups]


def _resume_state(run_dir: Path, resolved: ResolvedRun, method: Method,
                  opt: torch.optim.Optimizer | None,
                  sched: torch.optim.lr_scheduler.LambdaLR | None, aug_gen: torch.Generator,
                  steps_per_epoch: int, dist_info: DistInfo) -> _Start:
    """Load the newest checkpoint that loads into the method, the optimiser, the schedule
    and the RNGs; where to continue."""
    cfg = resolved.train
    found = ckpt.load_latest_with_path(run_dir)
    if found is None:
        return _Start()
    path, state = found
    check_checkpoint_matches_config(resolved, state, path, run_dir / CONFIG_FILE)
    try:
        method.load_state_dict(state["model"])
        if opt is not None and state.get("optimizer") is not None:
            opt.load_state_dict(state["optimizer"])  # then the schedule (it reads the lr)
            _load_schedule(sched, state, int(state["epoch"]) * steps_per_epoch
                           + int(state.get("step") or 0))
    except (RuntimeError, ValueError, KeyError) as exc:
        raise UserError(f"checkpoint {path} does not match {run_dir / CONFIG_FILE} "
                        f"({exception_line(exc)})") from None
    rng = state.get("rng") or []
    if len(rng) == dist_info.world_size:
        set_rng_state(rng[dist_info.rank], aug_gen)
    else:  # resumed on a different number of processes: fresh, distinct streams
        seed_everything(cfg.seed + 1_000 * dist_info.rank + int(state["epoch"]))
        aug_gen.manual_seed(cfg.seed * 7919 + dist_info.rank + int(state["epoch"]))
    epoch, step, partial, history = ckpt.resume_position(state, dist_info.rank,
                                                         dist_info.world_size)
    return _Start(epoch, step, history, partial)


def sync_batchnorm(method: nn.Module) -> int:
    """Replace every batch norm inside ``method`` by a SyncBatchNorm (same parameters and
    running statistics, so the optimiser and checkpoints are unchanged); returns how many.

    Why: under DDP each rank normalises by its own batch's statistics, so a head with batch
    norm (VICReg's expander, MoCo's projector, ResNet encoders) sees B / world_size images
    where the paper's single-device run sees B. With ``sync_bn`` the statistics are over the
    whole global batch again. MoCo's *shuffling BN* is not implemented (see
    :mod:`probssl.methods.moco`)."""
    count = 0
    for name, child in list(method.named_children()):
        if isinstance(child, nn.modules.batchnorm._BatchNorm):
            setattr(method, name, nn.SyncBatchNorm.convert_sync_batchnorm(child))
            count += 1
        else:
            count += sync_batchnorm(child)
    return count


def _wrap(method: Method, cfg: TrainConfig, resolved: ResolvedRun, device: torch.device,
          dist_info: DistInfo) -> torch.nn.Module:
    """What the forward runs through: the method, in NHWC on CUDA for ResNets, wrapped in
    DDP across processes and compiled when asked."""
    if device.type == "cuda" and resolved.method.arch == "resnet":
        method.to(memory_format=torch.channels_last)  # NHWC convolutions on tensor cores
    model: torch.nn.Module = method
    if dist_info.enabled and cfg.sync_bn:
        sync_batchnorm(method)
    if dist_info.enabled:
        model = DDP(method, device_ids=[device.index] if device.type == "cuda" else None)
    if cfg.compile:
        import torch._inductor.config as inductor_config  # lazy: loads the compiler stack

        # random ops draw from the same generator as eager mode, so seeds and resumes
        # reproduce the same noise compiled or not
        inductor_config.fallback_random = True
        model = torch.compile(model)
    return model


def run_callbacks(run_dir: Path, cfg: TrainConfig, resolved: ResolvedRun,
                  aug_gen: torch.Generator, progress: bool, verbose: bool,
                  dist_info: DistInfo, *, rng: Callable[[], dict[str, Any]] | None = None,
                  stacked: bool = False) -> list[Callback]:
    """A training run's callbacks, in the order their hooks must run (callbacks.py).
    ``stacked``: a cell of a stacked model (train/parallel.py), whose process-wide
    progress bar and Ctrl-C stop belong to the stacked loop; ``rng``: the cell's RNG states
    for its checkpoints."""
    data = resolved.data
    loggers = parse_loggers(cfg.logger)
    loop = [] if stacked else [ProgressBar(progress and dist_info.is_main)]
    stop = [] if stacked else [StopOnSignal(run_dir)]
    return [NaNGuard(run_dir), *loop,
            OnlineKNN(cfg.eval_every, data.x_train, data.y_train, resolved.augment,
                      cfg.eval_val_size, cfg.eval_ref_size, dist_info),
            MetricsLog(run_dir / METRICS_FILE, verbose, dist_info),
            TensorBoard(run_dir, cfg.tensorboard and "tensorboard" in loggers
                        and dist_info.is_main),
            Trackers(run_dir, loggers, resolved.config_dict(), dist_info.is_main),
            *stop,
            Checkpointing(run_dir, cfg.keep_checkpoints, cfg.checkpoint_every,
                          resolved.config_dict(), aug_gen, rng)]


@dataclass
class PreparedRun:
    """A run built but not yet started: nothing is written to ``run_dir`` before
    :func:`open_run` (so the stacked trainer can still decline a cell). ``done`` is the result
    of a resumed run that has nothing left to train."""

    cfg: TrainConfig
    run_dir: Path
    resume: bool
    resolved: ResolvedRun
    device: torch.device
    dist_info: DistInfo
    method: Method
    n_items: int
    aug_gen: torch.Generator
    steps_per_epoch: int
    opt: torch.optim.Optimizer | None
    sched: torch.optim.lr_scheduler.LambdaLR | None
    start: _Start
    done: TrainResult | None = None


def prepare_run(cfg: TrainConfig, run_dir: Path, resume: bool, dist_info: DistInfo
                ) -> PreparedRun:
    """The seeded method, its optimiser, schedule and augmentation stream, each restored from
    the newest checkpoint when ``resume`` (``cfg`` already checked by
    :func:`prepare_run_dir`); the global RNGs end in the state the first step draws from."""
    device = resolve_device(cfg.device, dist_info)
    if cfg.sync_bn and device.type != "cuda":
        raise UserError("--sync-bn needs CUDA: torch's SyncBatchNorm does not run on "
                        f"{device.type}")
    resolved: ResolvedRun = resolve(cfg)
    method, n_items = _build_method(cfg, resolved, device, dist_info)
    aug_gen = torch.Generator(device=device).manual_seed(cfg.seed * 7919 + dist_info.rank)
    spe = steps_per_epoch(n_items, cfg.batch_size, dist_info)
    opt, sched = build_optimization(method, cfg, device, spe) if method.trainable else \
        (None, None)
    start = _resume_state(run_dir, resolved, method, opt, sched, aug_gen, spe, dist_info) \
        if resume else _Start()
    prep = PreparedRun(cfg, run_dir, resume, resolved, device, dist_info, method, n_items,
                       aug_gen, spe, opt, sched, start)
    if resume and start.step == 0 and start.epoch >= cfg.epochs:
        # nothing to train: never rewrite a finished run's files (config, meta, metrics)
        if start.epoch > cfg.epochs:
            raise UserError(f"--resume --epochs {cfg.epochs}: {run_dir} has already trained "
                            f"{start.epoch} epochs; pass --epochs > {start.epoch} to continue")
        prep.done = TrainResult(run_dir, start.epoch, start.history, method)
    return prep


def open_run(prep: PreparedRun, progress: bool, verbose: bool, *,
             x_all: torch.Tensor | None = None,
             rng: Callable[[], dict[str, Any]] | None = None,
             stacked: bool = False) -> Trainer:
    """Write the run directory's files and return the run's :class:`Trainer`, its initial
    checkpoint written when the run starts from scratch. ``x_all``: the training images
    already on the device (shared by stacked cells); ``rng``/``stacked``: see
    :func:`run_callbacks`."""
    cfg, run_dir, dist_info, sched = prep.cfg, prep.run_dir, prep.dist_info, prep.sched
    spe, start, method, device = prep.steps_per_epoch, prep.start, prep.method, prep.device
    if dist_info.is_main and sched is not None and sched.lr_lambdas[0].name != "constant" \
            and sched.lr_lambdas[0].total_steps != max(cfg.epochs * spe, 1):
        warn(f"the learning-rate schedule keeps its original length "
             f"({sched.lr_lambdas[0].total_steps} steps), not the "
             f"{max(cfg.epochs * spe, 1)} steps of --epochs {cfg.epochs}")
    if dist_info.is_main:
        write_run_files(run_dir, prep.resolved, {"device": str(device),
                                                 "world_size": dist_info.world_size})
        if not prep.resume:
            (run_dir / METRICS_FILE).unlink(missing_ok=True)
        else:  # resumed from an older checkpoint (fallback): drop rows it does not cover
            _truncate_metrics(run_dir, start.epoch)
    barrier(dist_info)

    x_all = prep.resolved.data.x_train.to(device) if x_all is None else x_all
    views = make_view_source(cfg.views, x_all, method.n_views, prep.resolved.augment,
                             prep.aug_gen)
    callbacks = run_callbacks(run_dir, cfg, prep.resolved, prep.aug_gen, progress, verbose,
                              dist_info, rng=rng, stacked=stacked)
    trainer = Trainer(method, prep.opt, views, prep.n_items, batch_size=cfg.batch_size,
                      epochs=cfg.epochs, seed=cfg.seed, device=device, schedule=sched,
                      dist_info=dist_info, amp=cfg.amp and device.type == "cuda",
                      callbacks=callbacks, history=start.history)
    if not ckpt.list_checkpoints(run_dir) and (
            not method.trainable or (start.epoch == 0 and start.step == 0)):
        trainer.save_checkpoint(0)  # the initial weights: a baseline and a fallback
    return trainer


def _train(cfg: TrainConfig, run_dir: Path, resume: bool, progress: bool, verbose: bool,
           dist_info: DistInfo) -> TrainResult:
    prep = prepare_run(cfg, run_dir, resume, dist_info)
    if prep.done is not None:
        return prep.done
    trainer = open_run(prep, progress, verbose)
    if not prep.method.trainable:
        return TrainResult(run_dir, 0, trainer.history, prep.method)
    trainer.model = _wrap(prep.method, cfg, prep.resolved, prep.device, dist_info)
    trainer.fit(prep.start.epoch, prep.start.step, prep.start.partial)
    barrier(dist_info)
    return TrainResult(run_dir, cfg.epochs, trainer.history, prep.method)

"""The one training loop every method uses.

A method supplies its networks and its loss (``Method.forward(views)``); the trainer owns
epochs, Adam, batching, the seed, the device, mixed precision, progress, the metrics log,
checkpoints, resume, the NaN guard and DDP.

Data stays on the training device as uint8 for the whole run; each step gathers a batch by
index and augments it into J views there, so no host-to-device copy happens per step.
The data order of epoch e is a permutation drawn from a generator seeded by (seed, e), and
every RNG state is checkpointed with the step reached inside the epoch, so a resumed run
continues exactly where it stopped — at an epoch end, a periodic mid-epoch checkpoint
(``checkpoint_every``) or the step where Ctrl-C arrived (docs/RELIABILITY.md).
"""

from __future__ import annotations

import contextlib
import json
import math
import random
import signal
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.nn.parallel import DistributedDataParallel as DDP
from tqdm.auto import tqdm

from probssl.config import TrainConfig
from probssl.data import augment, preprocess
from probssl.errors import (
    CheckpointWriteFailed,
    TrainingDiverged,
    TrainingInterrupted,
    UserError,
)
from probssl.methods import Method, build_method
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
from probssl.train import checkpoint as ckpt
from probssl.train.distributed import (
    DistInfo,
    all_reduce_mean,
    any_true,
    barrier,
    gather_objects,
    init_distributed,
    shutdown,
)
from probssl.userio import atomic_write

# Keys that may differ between the original run and a resumed one.
RESUMABLE_CHANGES = {"epochs", "device", "download", "data_dir", "amp", "tensorboard",
                     "checkpoint_every", "keep_checkpoints", "compile"}


def _diverged(run_dir: Path, epoch: int, step: int, loss: torch.Tensor) -> None:
    last = ckpt.list_checkpoints(run_dir)
    kept = f"checkpoint of epoch {last[-1][0]} ({last[-1][1].name})" if last else \
        "no checkpoint"
    raise TrainingDiverged(
        f"loss became {float(loss)} at epoch {epoch + 1}, step {step + 1}; stopped, the last "
        f"good {kept} is kept in {run_dir}")


class _StopRequest:
    """Ctrl-C / SIGTERM asks the loop to checkpoint at the next step and stop; a second
    Ctrl-C interrupts at once. Only installed in the main thread."""

    def __init__(self) -> None:
        self.requested = False

    def _handle(self, signum, frame) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True
        print(f"\nprobssl: {signal.Signals(signum).name} received: writing a checkpoint "
              "at the next step (Ctrl-C again to stop at once)", file=sys.stderr)

    @contextlib.contextmanager
    def installed(self):
        if threading.current_thread() is not threading.main_thread():
            yield self
            return
        old = {s: signal.signal(s, self._handle) for s in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield self
        finally:
            for s, h in old.items():
                signal.signal(s, h)


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
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def _rng_state(aug_gen: torch.Generator) -> dict[str, Any]:
    state = {"python": random.getstate(), "numpy": np.random.get_state(),
             "torch": torch.get_rng_state(), "augment": aug_gen.get_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict[str, Any], aug_gen: torch.Generator) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    aug_gen.set_state(state["augment"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def epoch_order(n: int, seed: int, epoch: int, dist_info: DistInfo) -> torch.Tensor:
    """This rank's data order for ``epoch``: a seeded permutation, sharded like
    DistributedSampler (every rank gets ``n // world_size`` images)."""
    g = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
    perm = torch.randperm(n, generator=g)
    per_rank = n // dist_info.world_size
    return perm[dist_info.rank * per_rank:(dist_info.rank + 1) * per_rank]


@dataclass
class TrainResult:
    run_dir: Path
    epochs_done: int
    history: list[dict[str, Any]]
    method: Method


class _TensorBoard:
    def __init__(self, run_dir: Path, enabled: bool):
        self.writer = None
        if enabled:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError:  # tensorboard not installed: optional
                return
            self.writer = SummaryWriter(str(run_dir / "tensorboard"))

    def log(self, row: dict[str, Any]) -> None:
        if self.writer is None:
            return
        for k, v in row.items():
            if k != "epoch" and isinstance(v, (int, float)):
                self.writer.add_scalar(k, v, row["epoch"])
        self.writer.flush()


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


def _n_batches(n: int, batch_size: int) -> int:
    """Steps per epoch: ceil(n / batch_size), except that a last batch of a single image is
    merged into the one before (batch statistics — VICReg's variance, batch norm — need two
    images; e.g. 1,438 digits with batch 479 would leave one)."""
    n_batches = math.ceil(n / batch_size)
    return n_batches - 1 if n_batches > 1 and n % batch_size == 1 else n_batches


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
    from probssl.userio import memory_bytes

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


def _train(cfg: TrainConfig, run_dir: Path, resume: bool, progress: bool, verbose: bool,
           dist_info: DistInfo) -> TrainResult:
    device = resolve_device(cfg.device, dist_info)
    resolved: ResolvedRun = resolve(cfg)
    data = resolved.data
    check_memory(cfg, resolved, device)  # before the network and the views are allocated
    seed_everything(cfg.seed)
    method = build_method(cfg.method, resolved.method, data.image_shape).to(device)
    # With next-frame views an "item" is a start frame t with t + J - 1 still in the sequence.
    n_train = len(data.x_train) - (method.n_views - 1 if cfg.views == "next-frame" else 0)
    if n_train < 1:
        raise UserError(f"next-frame views need more than {method.n_views - 1} frames")
    if method.trainable and cfg.batch_size < _min_batch(method):
        raise UserError(f"batch_size {cfg.batch_size}: {cfg.method} needs at least "
                        f"{_min_batch(method)} images per step (batch statistics)")
    if method.trainable and cfg.batch_size > n_train // dist_info.world_size:
        raise UserError(f"batch_size {cfg.batch_size} is larger than the "
                        f"{n_train // dist_info.world_size} training images per process")
    aug_gen = torch.Generator(device=device).manual_seed(cfg.seed * 7919 + dist_info.rank)
    params = [p for p in method.parameters() if p.requires_grad]
    # fused Adam: one kernel for all parameters (8x faster than the per-tensor loop on CPU
    # for the MLP preset, measured by `probssl bench throughput`)
    opt = torch.optim.Adam(params, lr=cfg.lr, eps=cfg.adam_eps, weight_decay=cfg.weight_decay,
                           fused=device.type in ("cpu", "cuda")) if method.trainable else None
    start_epoch, start_step, history, partial = 0, 0, [], None
    if resume:
        found = ckpt.load_latest_with_path(run_dir)
        state = None if found is None else found[1]
        if found is not None:
            check_checkpoint_matches_config(resolved, state, found[0], run_dir / CONFIG_FILE)
            try:
                method.load_state_dict(state["model"])
                if opt is not None and state.get("optimizer") is not None:
                    opt.load_state_dict(state["optimizer"])
            except (RuntimeError, ValueError, KeyError) as exc:
                raise UserError(f"checkpoint {found[0]} does not match "
                                f"{run_dir / CONFIG_FILE} ({str(exc).splitlines()[0][:200]})"
                                ) from None
            rng = state.get("rng") or []
            if len(rng) == dist_info.world_size:
                _set_rng_state(rng[dist_info.rank], aug_gen)
            else:  # resumed on a different number of processes: fresh, distinct streams
                seed_everything(cfg.seed + 1_000 * dist_info.rank + int(state["epoch"]))
                aug_gen.manual_seed(cfg.seed * 7919 + dist_info.rank + int(state["epoch"]))
            start_epoch = int(state["epoch"])
            history = state.get("history", [])
            if state.get("step") and len(rng) == dist_info.world_size:
                # a mid-epoch checkpoint: continue at the same position of the same order
                start_step = int(state["step"])
                partial = (state.get("partial") or [None] * dist_info.world_size)[
                    dist_info.rank]
    if resume and start_step == 0 and start_epoch >= cfg.epochs:
        # nothing to train: never rewrite a finished run's files (config, meta, metrics)
        if start_epoch > cfg.epochs:
            raise UserError(f"--resume --epochs {cfg.epochs}: {run_dir} has already trained "
                            f"{start_epoch} epochs; pass --epochs > {start_epoch} to continue")
        return TrainResult(run_dir, start_epoch, history, method)
    if dist_info.is_main:
        write_run_files(run_dir, resolved, {"device": str(device),
                                            "world_size": dist_info.world_size})
        if not resume:
            (run_dir / METRICS_FILE).unlink(missing_ok=True)
        else:  # resumed from an older checkpoint (fallback): drop rows it does not cover
            _truncate_metrics(run_dir, start_epoch)
    barrier(dist_info)

    def save(epoch: int, step: int = 0, partial_state: dict | None = None) -> None:
        # Every rank's RNG states are kept (collective call), so each rank resumes its own
        # augmentation and sampling streams.
        rng = gather_objects(_rng_state(aug_gen), dist_info)
        partials = gather_objects(partial_state, dist_info) if step else None  # per rank
        if dist_info.is_main:
            state = {"model": method.state_dict(),
                     "optimizer": opt.state_dict() if opt is not None else None,
                     "epoch": epoch, "step": step, "partial": partials, "rng": rng,
                     "history": history, "config": resolved.config_dict()}
            failure = None
            try:
                ckpt.save_checkpoint(state, run_dir, epoch, cfg.keep_checkpoints, step)
            except OSError as exc:
                last = ckpt.list_checkpoints(run_dir)
                kept = last[-1][1].name if last else "none"
                failure = (f"could not write a checkpoint in {run_dir} "
                           f"({exc.strerror or exc}); the previous checkpoint ({kept}) is "
                           "intact — free space and --resume")
        else:
            failure = None
        # Every rank learns rank 0's outcome, so all stop together with the same line
        # instead of waiting in the next collective until torchrun kills them.
        failure = gather_objects(failure, dist_info)[0]
        if failure is not None:
            raise CheckpointWriteFailed(failure)

    if not method.trainable:
        if not ckpt.list_checkpoints(run_dir):
            save(0)
        return TrainResult(run_dir, 0, history, method)
    if start_epoch == 0 and start_step == 0 and not ckpt.list_checkpoints(run_dir):
        save(0)  # the initial weights: a baseline and a fallback

    if device.type == "cuda" and resolved.method.arch == "resnet":
        method.to(memory_format=torch.channels_last)  # NHWC convolutions on tensor cores
    model: torch.nn.Module | None = method
    if dist_info.enabled:
        model = DDP(method, device_ids=[device.index] if device.type == "cuda" else None)
    if cfg.compile:
        import torch._inductor.config as inductor_config

        # random ops draw from the same generator as eager mode, so seeds and resumes
        # reproduce the same noise compiled or not
        inductor_config.fallback_random = True
        model = torch.compile(model)
    x_all = data.x_train.to(device)
    use_amp = cfg.amp and device.type == "cuda"
    tb = _TensorBoard(run_dir, cfg.tensorboard and dist_info.is_main)
    show = progress and dist_info.is_main
    # The host reads the loss (a device sync) only every `sync_every` steps on GPUs; on CPU
    # there is nothing to overlap, so every step (the NaN guard then stops at once).
    sync_every = 1 if device.type == "cpu" else 16
    stop = _StopRequest()
    try:
        with stop.installed():
            for epoch in range(start_epoch, cfg.epochs):
                method.train()
                order = epoch_order(n_train, cfg.seed, epoch, dist_info).to(device)
                n_batches = _n_batches(len(order), cfg.batch_size)
                first = start_step if epoch == start_epoch else 0
                sums: dict[str, torch.Tensor] = {}
                n_views_seen, elapsed = 0, 0.0
                if first and partial:
                    sums = {k: torch.tensor(v, dtype=torch.float64, device=device)
                            for k, v in partial["sums"].items()}
                    n_views_seen, elapsed = partial["n_views_seen"], partial["seconds"]
                bad_step = torch.full((), -1, dtype=torch.int64, device=device)
                t0 = time.perf_counter()
                bar = tqdm(range(first, n_batches), desc=f"epoch {epoch + 1}/{cfg.epochs}",
                           leave=False, disable=(not show) or None, unit="step",
                           initial=first, total=n_batches)
                for step in bar:
                    # the last batch takes the remainder (a lone image joins the one before)
                    end = len(order) if step == n_batches - 1 else (step + 1) * cfg.batch_size
                    idx = order[step * cfg.batch_size:end]
                    if cfg.views == "next-frame":
                        frames = idx.unsqueeze(1) + torch.arange(method.n_views, device=device)
                        views = preprocess(x_all[frames.flatten()], resolved.augment).unflatten(
                            0, frames.shape)
                    else:
                        views = augment(x_all[idx], method.n_views, resolved.augment, aug_gen)
                    with torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_amp):
                        loss, metrics = model(views)
                    loss_d = loss.detach()
                    bad_step = torch.where((bad_step < 0) & ~torch.isfinite(loss_d),
                                           torch.tensor(step, device=device), bad_step)
                    done = step + 1
                    at_sync = done % sync_every == 0 or done == n_batches
                    if at_sync and any_true(bad_step >= 0, dist_info):
                        _diverged(run_dir, epoch, int(bad_step), loss_d)
                    opt.zero_grad(set_to_none=True)
                    loss.backward()
                    opt.step()
                    method.after_step()
                    n_views_seen += views.shape[0] * views.shape[1]
                    for k, v in (("loss", loss_d), *metrics.items()):
                        v = v.detach().double() if torch.is_tensor(v) else torch.tensor(
                            float(v), dtype=torch.float64, device=device)
                        sums[k] = sums[k] + v if k in sums else v
                    if show and at_sync:
                        rate = n_views_seen / max(elapsed + time.perf_counter() - t0, 1e-9)
                        bar.set_postfix(loss=f"{float(loss_d):.4g}", views_s=f"{rate:.0f}")
                    periodic = cfg.checkpoint_every and done % cfg.checkpoint_every == 0
                    interrupted = at_sync and any_true(
                        torch.tensor(stop.requested, device=device), dist_info)
                    if done < n_batches and (periodic or interrupted):
                        if sync_every > 1 and any_true(bad_step >= 0, dist_info):
                            _diverged(run_dir, epoch, int(bad_step), loss_d)
                        part = {"sums": {k: float(v) for k, v in sums.items()},
                                "n_views_seen": n_views_seen,
                                "seconds": elapsed + time.perf_counter() - t0}
                        save(epoch, done, part)
                        if interrupted:
                            bar.close()
                            raise TrainingInterrupted(
                                f"checkpoint written at epoch {epoch + 1}, step {done} of "
                                f"{n_batches} in {run_dir}; continue exactly with --resume")
                bar.close()
                seconds = elapsed + time.perf_counter() - t0
                row_metrics = all_reduce_mean({k: float(v) / n_batches for k, v in sums.items()},
                                              dist_info, device)
                row = {"epoch": epoch + 1, **row_metrics, "seconds": round(seconds, 4),
                       "views_per_s": round(n_views_seen * dist_info.world_size / seconds, 1)}
                history.append(row)
                if dist_info.is_main:
                    with open(run_dir / METRICS_FILE, "a") as fh:
                        fh.write(json.dumps(row) + "\n")
                    tb.log(row)
                    if verbose:
                        shown = " ".join(f"{k} {v:.4g}" for k, v in row_metrics.items())
                        msg = (f"epoch {epoch + 1}/{cfg.epochs} {shown} ({seconds:.1f} s, "
                               f"{row['views_per_s']:.0f} views/s)")
                        tqdm.write(msg, file=sys.stderr)
                save(epoch + 1)
                if any_true(torch.tensor(stop.requested, device=device), dist_info):
                    raise TrainingInterrupted(f"stopped after epoch {epoch + 1} (checkpoint "
                                              f"written in {run_dir}); continue with --resume")
    finally:
        # the DDP wrapper must not outlive the loop, not even in a traceback's frame:
        # its reducer holds the last gloo works (see distributed.py)
        model = None
    barrier(dist_info)
    return TrainResult(run_dir, cfg.epochs, history, method)

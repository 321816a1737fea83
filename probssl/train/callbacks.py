"""What a training run does around the loop, one :class:`~probssl.train.loop.Callback` each:
the NaN guard, the progress bar, online evaluation (k-NN accuracy on a validation split of
the training set during training), the
metrics log (metrics.jsonl and the epoch line), the TensorBoard log, the Ctrl-C / SIGTERM stop
and the checkpoints.

:func:`run_callbacks` lists them in the order their hooks must run: at a step's end the stop
check (which checkpoints and stops) comes before the periodic checkpoint, so one step is
never written twice; at an epoch's end the online evaluation adds its number to the row,
the row is logged, then the stop check (which
checkpoints and stops), then the epoch's checkpoint. Every hook that talks to the other
ranks (``any_true``, ``gather_objects``) runs on every rank in the same order.
"""

from __future__ import annotations

import contextlib
import json
import random
import signal
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from probssl.errors import CheckpointWriteFailed, TrainingDiverged, TrainingInterrupted
from probssl.runs import checkpoint as ckpt
from probssl.train.distributed import DistInfo, any_true, gather_objects
from probssl.train.loop import Callback, StepOutput, Trainer


def _numpy_state() -> dict[str, Any]:
    """numpy's global RNG state as tensors and numbers only, so that a checkpoint loads with
    ``torch.load(weights_only=True)`` (no numpy object to unpickle)."""
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    return {"kind": str(kind), "keys": torch.from_numpy(keys.astype(np.int64)),
            "pos": int(pos), "has_gauss": int(has_gauss), "gauss": float(gauss)}


def _set_numpy_state(state: Any) -> None:
    if isinstance(state, dict):
        np.random.set_state((state["kind"], state["keys"].numpy().astype(np.uint32),
                             state["pos"], state["has_gauss"], state["gauss"]))
    else:  # a checkpoint written before 2026-12-03 holds numpy's own tuple
        np.random.set_state(state)


def rng_state(aug_gen: torch.Generator) -> dict[str, Any]:
    """Every random stream a resumed run needs: Python's, NumPy's, torch's (CPU, and every CUDA
    device's when there is one) and the augmentation generator ``aug_gen``'s."""
    state = {"python": random.getstate(), "numpy": _numpy_state(),
             "torch": torch.get_rng_state(), "augment": aug_gen.get_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any], aug_gen: torch.Generator) -> None:
    """Restore the streams of :func:`rng_state` (the CUDA ones only when both the state and this
    machine have them)."""
    random.setstate(state["python"])
    _set_numpy_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    aug_gen.set_state(state["augment"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def diverged(run_dir: Path, epoch: int, step: int, loss: torch.Tensor) -> TrainingDiverged:
    """The :class:`TrainingDiverged` error for a non-finite ``loss`` at 0-based ``epoch`` and
    ``step`` (reported 1-based), naming the last checkpoint kept in ``run_dir``."""
    last = ckpt.list_checkpoints(run_dir)
    kept = f"checkpoint of epoch {last[-1][0]} ({last[-1][1].name})" if last else \
        "no checkpoint"
    return TrainingDiverged(
        f"loss became {float(loss)} at epoch {epoch + 1}, step {step + 1}; stopped, the last "
        f"good {kept} is kept in {run_dir}", epoch=epoch + 1, step=step + 1)


class NaNGuard(Callback):
    """Stops the run when a loss is not finite, before that step's update (on CPU) or at the
    next host sync (every ``sync_every`` steps on GPUs), and before any mid-epoch checkpoint
    could record the damage; the last good checkpoint is kept."""

    def __init__(self, run_dir: Path) -> None:
        self.run_dir = run_dir
        self.bad_step: torch.Tensor | None = None
        self.last_loss: torch.Tensor | None = None

    def on_epoch_start(self, trainer: Trainer) -> None:
        self.bad_step = torch.full((), -1, dtype=torch.int64, device=trainer.device)

    def _check(self, trainer: Trainer) -> None:
        if any_true(self.bad_step >= 0, trainer.dist_info):
            raise diverged(self.run_dir, trainer.state.epoch, int(self.bad_step),
                           self.last_loss)

    def on_loss(self, trainer: Trainer, loss: torch.Tensor) -> None:
        st = trainer.state
        self.last_loss = loss
        self.bad_step = torch.where((self.bad_step < 0) & ~torch.isfinite(loss),
                                    torch.tensor(st.step, device=trainer.device),
                                    self.bad_step)
        if st.at_sync:
            self._check(trainer)

    def on_checkpoint(self, trainer: Trainer, epoch: int, step: int) -> None:
        if step and trainer.sync_every > 1:  # a mid-epoch checkpoint between host syncs
            self._check(trainer)


class ProgressBar(Callback):
    """A tqdm bar per epoch (loss and views/s at each host sync), on the main rank."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self.bar: Any = None

    def on_epoch_start(self, trainer: Trainer) -> None:
        st = trainer.state
        self.bar = tqdm(total=st.n_batches, initial=st.step,
                        desc=f"epoch {st.epoch + 1}/{trainer.epochs}", leave=False,
                        disable=(not self.enabled) or None, unit="step")

    def on_step_end(self, trainer: Trainer, out: StepOutput) -> None:
        self.bar.update(1)
        st = trainer.state
        if self.enabled and st.at_sync:
            rate = st.n_views_seen / max(st.seconds(), 1e-9)
            self.bar.set_postfix(loss=f"{float(out.loss):.4g}", views_s=f"{rate:.0f}")

    def _close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None

    def on_epoch_end(self, trainer: Trainer, row: dict[str, Any]) -> None:
        self._close()

    def on_train_end(self, trainer: Trainer) -> None:
        self._close()


VALIDATION_SEED = 0  # the same validation split for every run of a dataset, whatever its seed


def validation_split(n: int, n_val: int, n_ref: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(validation indices, reference indices) into a training set of ``n`` images: a fixed
    permutation (generator seeded by :data:`VALIDATION_SEED`, so no run's random streams are
    touched) whose first ``min(n_val, n // 5)`` images are the queries and the next up to
    ``n_ref`` the k-NN reference; disjoint."""
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(VALIDATION_SEED))
    n_val = max(1, min(n_val, n // 5))
    return perm[:n_val], perm[n_val:n_val + n_ref]


class OnlineKNN(Callback):
    """Online evaluation: k-NN accuracy of the current encoder during training, as the
    ``knn_val`` column of the metrics (metrics.jsonl, TensorBoard).

    Every ``every`` epochs and after the last one, the encoder (``method.encoder.embed``, in
    eval mode, no gradients) embeds a fixed validation split carved from the *training* set
    (:func:`validation_split`; never the test split, because these curves decide budgets and
    learning rates) and a disjoint reference set of training images, through the
    deterministic part of the augmentation pipeline only, as the final evaluation does. The
    best accuracy over k = 1..15 (Euclidean, :func:`probssl.evaluate.knn.knn_accuracy`) goes
    into the epoch's row before it is logged and checkpointed.

    The validation images stay in the self-supervised training set (their labels are never
    used in training), so turning the evaluation on changes nothing the run learns: it draws
    no random numbers and the weights are bit-identical with it or without it. Main rank
    only (no collectives). The best k is chosen on the validation images themselves, so the
    number is slightly optimistic; use it to compare epochs and runs, the final evaluation to
    report.
    """

    def __init__(self, every: int, x_train: torch.Tensor, y_train: torch.Tensor | None,
                 augment_cfg: Any, n_val: int, n_ref: int, dist_info: DistInfo) -> None:
        self.every = every
        self.enabled = every > 0 and dist_info.is_main and y_train is not None \
            and len(x_train) >= 2
        if self.enabled:
            val, ref = validation_split(len(x_train), n_val, n_ref)
            self.x_val, self.y_val = x_train[val], y_train[val]
            self.x_ref, self.y_ref = x_train[ref], y_train[ref]
        self.augment_cfg = augment_cfg

    def on_epoch_end(self, trainer: Trainer, row: dict[str, Any]) -> None:
        epoch = row["epoch"]
        if not self.enabled or (epoch % self.every and epoch != trainer.epochs):
            return
        # lazy: probssl.evaluate pulls in scikit-learn (~0.8 s), which a run without online
        # evaluation never needs
        from probssl.evaluate.embed import compute_embeddings
        from probssl.evaluate.knn import knn_accuracy

        method = trainer.method
        was_training = method.training
        method.eval()
        try:
            z_ref, z_val = (compute_embeddings(method.encoder.embed, x, self.augment_cfg,
                                               device=trainer.device)
                            for x in (self.x_ref, self.x_val))
        finally:
            method.train(was_training)
        best = knn_accuracy(z_ref, self.y_ref, z_val, self.y_val)["best"]
        row["knn_val"] = round(best, 6)


class MetricsLog(Callback):
    """Appends each epoch's row to ``path`` (the run's ``metrics.jsonl``) and, when
    ``verbose``, prints one line (main rank only)."""

    def __init__(self, path: Path, verbose: bool, dist_info: DistInfo) -> None:
        self.path = path
        self.verbose = verbose
        self.is_main = dist_info.is_main

    def on_epoch_end(self, trainer: Trainer, row: dict[str, Any]) -> None:
        if not self.is_main:
            return
        with open(self.path, "a") as fh:
            fh.write(json.dumps(row) + "\n")
        if self.verbose:
            shown = " ".join(f"{k} {v:.4g}" for k, v in row.items()
                             if k not in ("epoch", "seconds", "views_per_s"))
            tqdm.write(f"epoch {row['epoch']}/{trainer.epochs} {shown} ({row['seconds']:.1f} "
                       f"s, {row['views_per_s']:.0f} views/s)", file=sys.stderr)


class TensorBoard(Callback):
    """Each epoch's numbers as TensorBoard scalars (if the tensorboard package is
    installed; optional)."""

    def __init__(self, run_dir: Path, enabled: bool) -> None:
        self.run_dir = run_dir
        self.enabled = enabled
        self.writer = None

    def on_train_start(self, trainer: Trainer) -> None:
        # opened with the loop (a run that trains nothing gets no tensorboard folder)
        if self.enabled and self.writer is None:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError:  # tensorboard not installed: optional
                return
            self.writer = SummaryWriter(str(self.run_dir / "tensorboard"))

    def on_epoch_end(self, trainer: Trainer, row: dict[str, Any]) -> None:
        if self.writer is None:
            return
        for k, v in row.items():
            if k != "epoch" and isinstance(v, (int, float)):
                self.writer.add_scalar(k, v, row["epoch"])
        self.writer.flush()


class StopOnSignal(Callback):
    """Ctrl-C / SIGTERM asks the loop to checkpoint at the next host sync and stop; a second
    Ctrl-C interrupts at once. The handlers are installed for the loop's duration, only in
    the main thread."""

    def __init__(self, run_dir: Path) -> None:
        self.run_dir = run_dir
        self.requested = False
        self._stack: contextlib.ExitStack | None = None

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

    def on_train_start(self, trainer: Trainer) -> None:
        self._stack = contextlib.ExitStack()
        self._stack.enter_context(self.installed())

    def on_train_end(self, trainer: Trainer) -> None:
        if self._stack is not None:
            self._stack.close()
            self._stack = None

    def _stop_everywhere(self, trainer: Trainer) -> bool:
        return any_true(torch.tensor(self.requested, device=trainer.device),
                        trainer.dist_info)

    def on_step_end(self, trainer: Trainer, out: StepOutput) -> None:
        st = trainer.state
        if st.at_sync and self._stop_everywhere(trainer) and st.done < st.n_batches:
            trainer.save_checkpoint(st.epoch, st.done)
            raise TrainingInterrupted(
                f"checkpoint written at epoch {st.epoch + 1}, step {st.done} of "
                f"{st.n_batches} in {self.run_dir}; continue exactly with --resume")

    def on_epoch_end(self, trainer: Trainer, row: dict[str, Any]) -> None:
        if self._stop_everywhere(trainer):
            epoch = trainer.state.epoch
            trainer.save_checkpoint(epoch + 1)
            raise TrainingInterrupted(f"stopped after epoch {epoch + 1} (checkpoint "
                                      f"written in {self.run_dir}); continue with --resume")


class Checkpointing(Callback):
    """Writes a checkpoint at every epoch end, every ``every`` steps inside an epoch (0:
    never) and whenever another callback asks (:meth:`Trainer.save_checkpoint`).

    A checkpoint holds the weights, the optimiser's and the schedule's states, the position
    (epoch, step), the epoch's running sums, the history, the resolved config and every
    rank's RNG states (collective call), so each rank resumes its own augmentation and
    sampling streams. ``rng``, when given, returns those states instead of
    :func:`rng_state` (a stacked cell's streams are its own, not the process's:
    :mod:`probssl.train.parallel`)."""

    def __init__(self, run_dir: Path, keep: int, every: int, config: dict[str, Any],
                 aug_gen: torch.Generator,
                 rng: Callable[[], dict[str, Any]] | None = None) -> None:
        self.run_dir = run_dir
        self.keep = keep
        self.every = every
        self.config = config
        self.aug_gen = aug_gen
        self.rng = rng or (lambda: rng_state(self.aug_gen))

    def on_step_end(self, trainer: Trainer, out: StepOutput) -> None:
        st = trainer.state
        if self.every and st.done % self.every == 0 and st.done < st.n_batches:
            trainer.save_checkpoint(st.epoch, st.done)

    def on_epoch_end(self, trainer: Trainer, row: dict[str, Any]) -> None:
        trainer.save_checkpoint(trainer.state.epoch + 1)

    def on_checkpoint(self, trainer: Trainer, epoch: int, step: int) -> None:
        self.write(trainer, epoch, step, trainer.state.partial() if step else None)

    def write(self, trainer: Trainer, epoch: int, step: int = 0,
              partial: dict | None = None) -> None:
        info = trainer.dist_info
        rng = gather_objects(self.rng(), info)
        partials = gather_objects(partial, info) if step else None  # per rank
        failure = None
        if info.is_main:
            opt, sched = trainer.optimizer, trainer.schedule
            state = {"model": trainer.method.state_dict(),
                     "optimizer": opt.state_dict() if opt is not None else None,
                     "schedule": sched.state_dict() if sched is not None else None,
                     "epoch": epoch, "step": step, "partial": partials, "rng": rng,
                     "history": trainer.history, "config": self.config}
            try:
                ckpt.save_checkpoint(state, self.run_dir, epoch, self.keep, step)
            except OSError as exc:
                last = ckpt.list_checkpoints(self.run_dir)
                kept = last[-1][1].name if last else "none"
                failure = (f"could not write a checkpoint in {self.run_dir} "
                           f"({exc.strerror or exc}); the previous checkpoint ({kept}) is "
                           "intact — free space and --resume")
        # Every rank learns rank 0's outcome, so all stop together with the same line
        # instead of waiting in the next collective until torchrun kills them.
        failure = gather_objects(failure, info)[0]
        if failure is not None:
            raise CheckpointWriteFailed(failure)

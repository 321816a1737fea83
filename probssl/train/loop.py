"""One optimisation step (:func:`train_step`) and the epoch loop around it (:class:`Trainer`).

The loop itself only draws each epoch's data order, makes the views, runs the step and sums
the step metrics into the epoch's row. Everything else a run does — checkpoints, the NaN
guard, the metrics log, TensorBoard, the progress bar, the Ctrl-C stop — is a
:class:`Callback` (:mod:`probssl.train.callbacks`), so the benchmark can run the same loop
with none of them.

The data order of epoch e is a permutation drawn from a generator seeded by (seed, e), and
the epoch's running sums can be restored (``partial``), so a loop started at (epoch, step)
with the RNG states of a checkpoint continues exactly where the checkpointed run stopped.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from probssl.train.distributed import DistInfo, all_reduce_mean


@dataclass
class StepOutput:
    loss: torch.Tensor  # detached, on the device (reading it is a host sync)
    metrics: dict[str, Any]


def train_step(method: torch.nn.Module, views: Any,
               optimizer: torch.optim.Optimizer, *, model: torch.nn.Module | None = None,
               schedule: torch.optim.lr_scheduler.LRScheduler | None = None,
               amp: bool = False,
               before_backward: Callable[[torch.Tensor], None] | None = None) -> StepOutput:
    """One optimisation step on one batch of views (B, J, ...; whatever ``method`` takes,
    a tensor when ``amp``): forward (through ``model``,
    e.g. the DDP or compiled wrapper of ``method``, when given), loss, backward, optimiser
    step, learning-rate schedule step, then ``method.after_step()`` (e.g. MoCo's key
    encoder update). ``before_backward(loss)`` runs between the forward and the backward
    (the NaN guard). ``amp``: bfloat16 autocast of the forward."""
    cast = torch.autocast(views.device.type, dtype=torch.bfloat16) if amp else \
        contextlib.nullcontext()
    with cast:
        loss, metrics = (model if model is not None else method)(views)
    loss_d = loss.detach()
    if before_backward is not None:
        before_backward(loss_d)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    if schedule is not None:
        schedule.step()
    method.after_step()
    return StepOutput(loss_d, metrics)


def epoch_order(n: int, seed: int, epoch: int, dist_info: DistInfo) -> torch.Tensor:
    """This rank's data order for ``epoch``: a seeded permutation, sharded like
    DistributedSampler (every rank gets ``n // world_size`` images)."""
    g = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
    perm = torch.randperm(n, generator=g)
    per_rank = n // dist_info.world_size
    return perm[dist_info.rank * per_rank:(dist_info.rank + 1) * per_rank]


def n_batches(n: int, batch_size: int) -> int:
    """Steps per epoch: ceil(n / batch_size), except that a last batch of a single image is
    merged into the one before (batch statistics — VICReg's variance, batch norm — need two
    images; e.g. 1,438 digits with batch 479 would leave one)."""
    n_b = math.ceil(n / batch_size)
    return n_b - 1 if n_b > 1 and n % batch_size == 1 else n_b


def steps_per_epoch(n_items: int, batch_size: int, dist_info: DistInfo) -> int:
    """Optimiser steps of one epoch on each rank."""
    return n_batches(n_items // dist_info.world_size, batch_size)


class Callback:
    """Hooks the :class:`Trainer` calls; every one is optional.

    Order: ``on_train_start``; per epoch ``on_epoch_start``, per step ``on_loss`` (after the
    forward, before the backward) and ``on_step_end``, then ``on_epoch_end(row)``;
    ``on_train_end`` always runs last, also when the loop raises (a ``finally``).
    ``on_checkpoint(epoch, step)`` runs whenever a callback asks the trainer for a checkpoint
    (:meth:`Trainer.save_checkpoint`). Callbacks run in list order.
    """

    def on_train_start(self, trainer: Trainer) -> None: ...

    def on_epoch_start(self, trainer: Trainer) -> None: ...

    def on_loss(self, trainer: Trainer, loss: torch.Tensor) -> None: ...

    def on_step_end(self, trainer: Trainer, out: StepOutput) -> None: ...

    def on_epoch_end(self, trainer: Trainer, row: dict[str, Any]) -> None: ...

    def on_checkpoint(self, trainer: Trainer, epoch: int, step: int) -> None: ...

    def on_train_end(self, trainer: Trainer) -> None: ...


@dataclass
class EpochState:
    """Where the loop is: the epoch (0-based), the step about to run or just run, the sums
    of the step metrics so far and the time and views counted so far (a resumed epoch
    starts from the checkpoint's)."""

    epoch: int
    n_batches: int
    step: int = 0
    sums: dict[str, torch.Tensor] = field(default_factory=dict)
    n_views_seen: int = 0
    elapsed: float = 0.0  # seconds before this process's t0 (from a mid-epoch checkpoint)
    t0: float = 0.0
    at_sync: bool = False

    @property
    def done(self) -> int:
        """Steps of this epoch completed once the current step ends."""
        return self.step + 1

    def seconds(self) -> float:
        return self.elapsed + time.perf_counter() - self.t0

    def partial(self) -> dict[str, Any]:
        """The epoch's running state for a mid-epoch checkpoint (plain floats)."""
        return {"sums": {k: float(v) if v.ndim == 0 else v.tolist()
                         for k, v in self.sums.items()},
                "n_views_seen": self.n_views_seen, "seconds": self.seconds()}


class Trainer:
    """Runs epochs of :func:`train_step` over a view source; callbacks do the rest.

    ``views(indices)`` makes one step's views and ``n_items`` is what an epoch permutes (see
    :class:`probssl.data.views.ViewSource`). ``order(epoch)``, when given, replaces the
    default data order :func:`epoch_order` (it must be a function of the epoch alone, so a
    resumed run draws the same order). ``count_views(views)``: how many views a step's batch
    holds (default B × J of a (B, J, ...) batch). ``sync_every``: the host reads the loss (a
    device sync) only every that many steps — on CPU there is nothing to overlap, so 1 (the
    NaN guard then stops at once), 16 on GPUs.
    """

    def __init__(self, method: torch.nn.Module, optimizer: torch.optim.Optimizer,
                 views: Callable[[torch.Tensor], torch.Tensor], n_items: int, *,
                 batch_size: int, epochs: int, seed: int, device: torch.device,
                 schedule: torch.optim.lr_scheduler.LRScheduler | None = None,
                 dist_info: DistInfo | None = None, amp: bool = False,
                 sync_every: int | None = None, callbacks: Sequence[Callback] = (),
                 history: list[dict[str, Any]] | None = None,
                 order: Callable[[int], torch.Tensor] | None = None,
                 count_views: Callable[[torch.Tensor], int] | None = None) -> None:
        self.method = method
        self.model: torch.nn.Module | None = method  # what the forward runs through
        self.optimizer = optimizer
        self.schedule = schedule
        self.views = views
        self.n_items = n_items
        self.batch_size = batch_size
        self.epochs = epochs
        self.seed = seed
        self.device = device
        self.dist_info = dist_info or DistInfo()
        self.amp = amp
        self.sync_every = sync_every or (1 if device.type == "cpu" else 16)
        self.callbacks = list(callbacks)
        self.history = history if history is not None else []
        self.state: EpochState | None = None
        self.order = order or (lambda epoch: epoch_order(self.n_items, self.seed, epoch,
                                                         self.dist_info))
        # views a step saw: B x J of a (B, J, ...) batch, unless told otherwise
        self.count_views = count_views or (lambda v: v.shape[0] * v.shape[1])

    def _call(self, hook: str, *args: Any) -> None:
        for cb in self.callbacks:
            getattr(cb, hook)(self, *args)

    def save_checkpoint(self, epoch: int, step: int = 0) -> None:
        """Ask the callbacks for a checkpoint of the state after ``epoch`` epochs and
        ``step`` steps of the next (a no-op without a checkpointing callback)."""
        self._call("on_checkpoint", epoch, step)

    def fit(self, start_epoch: int = 0, start_step: int = 0,
            partial: dict[str, Any] | None = None) -> list[dict[str, Any]]:
        """Epochs ``start_epoch`` .. ``epochs - 1``, the first from step ``start_step`` with
        the running sums ``partial`` of a mid-epoch checkpoint; returns the history."""
        try:
            self._call("on_train_start")
            for epoch in range(start_epoch, self.epochs):
                first = start_step if epoch == start_epoch else 0
                self.run_epoch(epoch, first, partial if first else None)
        finally:
            try:
                self._call("on_train_end")
            finally:
                # the DDP wrapper must not outlive the loop, not even in a traceback's
                # frame: its reducer holds the last gloo works (see distributed.py)
                self.model = None
        return self.history

    def run_epoch(self, epoch: int, first: int = 0,
                  partial: dict[str, Any] | None = None) -> dict[str, Any]:
        """One epoch (from step ``first``); returns its row, also appended to the history."""
        self.method.train()
        # (n,), or (K, n) when K stacked cells each draw their own order (train/parallel.py)
        order = self.order(epoch).to(self.device)
        n = order.shape[-1]
        st = self.state = EpochState(epoch, n_batches(n, self.batch_size), first)
        if first and partial:
            st.sums = {k: torch.tensor(v, dtype=torch.float64, device=self.device)
                       for k, v in partial["sums"].items()}
            st.n_views_seen, st.elapsed = partial["n_views_seen"], partial["seconds"]
        st.t0 = time.perf_counter()
        self._call("on_epoch_start")
        for step in range(first, st.n_batches):
            st.step = step
            st.at_sync = st.done % self.sync_every == 0 or st.done == st.n_batches
            # the last batch takes the remainder (a lone image joins the one before)
            end = n if step == st.n_batches - 1 else (step + 1) * self.batch_size
            views = self.views(order[..., step * self.batch_size:end])
            out = train_step(self.method, views, self.optimizer, model=self.model,
                             schedule=self.schedule, amp=self.amp,
                             before_backward=lambda loss: self._call("on_loss", loss))
            st.n_views_seen += self.count_views(views)
            for k, v in (("loss", out.loss), *out.metrics.items()):
                v = v.detach().double() if torch.is_tensor(v) else torch.tensor(
                    float(v), dtype=torch.float64, device=self.device)
                st.sums[k] = st.sums[k] + v if k in st.sums else v
            self._call("on_step_end", out)
        seconds = st.seconds()
        # a stacked model's metrics are one value per cell: a list in the row
        row_metrics = all_reduce_mean({k: float(v) / st.n_batches if v.ndim == 0 else
                                       (v / st.n_batches).tolist() for k, v in st.sums.items()},
                                      self.dist_info, self.device)
        row = {"epoch": epoch + 1, **row_metrics, "seconds": round(seconds, 4),
               "views_per_s": round(st.n_views_seen * self.dist_info.world_size / seconds, 1)}
        self.history.append(row)
        self._call("on_epoch_end", row)
        return row

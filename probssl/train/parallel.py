"""Seeds trained side by side: K runs that differ only by seed, as one batched model.

``probssl bench --parallel K`` hands K cells of the same configuration to
:func:`train_parallel`. Their parameters (and batch-norm buffers) are stacked along a leading
dimension (``torch.func.stack_module_state``) and one ``vmap``-ed forward runs all K: each
matrix multiply becomes one batched multiply, so a GPU does K times the work per kernel launch,
where the paper's small MLPs otherwise spend most of a step launching kernels.

Each cell still is its own run, exactly as if trained alone (tested against sequential runs):

* its own seed: the weights are initialised by each cell's own seeded build, then stacked;
  each cell's parameters stay live views of its slice, so evaluation, checkpoints and online
  k-NN read the cell's own module;
* its own data order (:func:`~probssl.train.loop.epoch_order` of its seed) and its own
  augmentation stream (its ``aug_gen``);
* its own noise: the only random draw inside a step, the reparameterisation ε
  (:func:`probssl.objectives.vae.reparameterise`), is drawn *outside* the ``vmap`` from each
  cell's own generator — started from the global state its sequential run would draw from —
  in the shapes its run draws (recorded once per batch shape), and handed in
  (:func:`~probssl.objectives.vae.noise_from`). Any other random op in a forward makes
  ``vmap`` refuse, and the cell is declined (:class:`CannotStack`) before anything is written;
* its own optimiser state: the loss is the sum of the cells' losses, so each slice of a
  stacked parameter gets exactly its cell's gradient, and Adam, AdamW and SGD are elementwise,
  so the stacked update is each cell's own update. LARS (a norm per tensor) is declined;
* its own batch-norm statistics: ``vmap`` computes them per cell and updates each cell's slice
  of the stacked running statistics;
* its own callbacks, through the one trainer: the NaN guard (a diverged cell stops writing —
  its last good checkpoint is kept — while the others go on; its slice is still computed, and
  cannot reach the others, whose gradients do not depend on it), the metrics log, online
  k-NN, trackers and checkpoints in its own run directory, in the sequential format, with its
  own RNG states, so a stacked run resumes stacked or alone, exactly.

Departures from a run trained alone: the step's floating-point reductions are batched
(weights agree within float tolerance, not bit for bit), and a cell's ``seconds`` in
``metrics.jsonl`` is its share of the stacked epoch's wall time (wall / K; the row says
``stacked_cells``). Not stackable, so declined: methods with their own update after the step
(MoCo's momentum encoder and queue), ``.item()`` calls inside the forward (RPM), DDP (one
process trains the stack), non-trainable methods, cells at different resume positions.
"""

from __future__ import annotations

import os
import random
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.func import functional_call, stack_module_state, vmap

from probssl.config import TrainConfig
from probssl.errors import TrainingDiverged
from probssl.methods import Method, get_method_spec
from probssl.objectives.vae import noise_from
from probssl.train.callbacks import ProgressBar, StopOnSignal, _numpy_state
from probssl.train.distributed import DistInfo
from probssl.train.loop import Callback, StepOutput, Trainer, epoch_order
from probssl.train.optim import LARS
from probssl.train.trainer import (
    PreparedRun,
    TrainResult,
    prepare_run,
    prepare_run_dir,
)
from probssl.train.trainer import open_run as _open_run

CELL_LOSS = "cell_loss"  # the per-cell losses among a stacked step's metrics


class CannotStack(Exception):
    """These cells cannot be trained as one stacked model (the reason is the message); train
    them one by one. Raised before anything is written to their run directories."""


class StackedCells(nn.Module):
    """K methods of one architecture as one module: ``forward(views)`` takes (K, B, J, ...)
    views and returns the sum of the K losses and each metric as a (K,) tensor (the losses
    under ``cell_loss``). ``generators[k]`` draws cell k's reparameterisation noise."""

    def __init__(self, cells: list[Method], generators: list[torch.Generator]) -> None:
        super().__init__()
        self._cells = list(cells)  # a plain list: not submodules (no double state_dict)
        self.generators = generators
        params, buffers = stack_module_state(cells)
        self.params: dict[str, torch.Tensor] = params
        self.buffers_: dict[str, torch.Tensor] = buffers
        # every cell's tensors become views of its slice: the cell module stays the cell
        for k, cell in enumerate(cells):
            for name, p in cell.named_parameters():
                p.data = params[name].detach()[k]
            for name, _ in cell.named_buffers():
                owner, _, leaf = name.rpartition(".")
                cell.get_submodule(owner)._buffers[leaf] = buffers[name][k]
        self._noise_shapes: dict[tuple, list[tuple[torch.Size, torch.dtype]]] = {}
        self.last_losses: torch.Tensor | None = None

    @property
    def cells(self) -> list[Method]:
        return self._cells

    @property
    def n_views(self) -> int:
        return self._cells[0].n_views

    def train(self, mode: bool = True) -> StackedCells:
        super().train(mode)
        for cell in self._cells:
            cell.train(mode)
        return self

    def after_step(self) -> None:
        """Nothing: a method with its own update after the step is declined."""

    def _noise_plan(self, views: torch.Tensor) -> list[tuple[torch.Size, torch.dtype]]:
        """The (shape, dtype) of every ε one cell's forward draws on views of this shape,
        recorded once by a forward of cell 0 on a copy of its state (no side effects)."""
        key = (tuple(views.shape), views.dtype, torch.is_autocast_enabled())
        if key not in self._noise_shapes:
            drawn: list[tuple[torch.Size, torch.dtype]] = []

            def record(mean: torch.Tensor) -> torch.Tensor:
                drawn.append((mean.shape, mean.dtype))
                return torch.zeros_like(mean)

            params = {n: p.detach()[0] for n, p in self.params.items()}
            buffers = {n: b[0].clone() for n, b in self.buffers_.items()}
            with torch.no_grad(), noise_from(record):
                functional_call(self._cells[0], (params, buffers), (views[0],))
            self._noise_shapes[key] = drawn
        return self._noise_shapes[key]

    def forward(self, views: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        plan = self._noise_plan(views)
        # each cell's ε in its own run's order, from its own stream (module docstring)
        noise = [torch.stack([torch.randn(shape, generator=g, dtype=dtype, device=views.device)
                              for g in self.generators]) for shape, dtype in plan]
        template = self._cells[0]

        def one(params, buffers, v, *eps):
            supplied = iter(eps)

            def take(mean: torch.Tensor) -> torch.Tensor:
                e = next(supplied)
                if e.shape != mean.shape:
                    raise CannotStack("the forward draws noise of a shape that depends on "
                                      "more than the batch shape")
                return e

            with noise_from(take):
                return functional_call(template, (params, buffers), (v,))

        losses, metrics = vmap(one, randomness="error")(self.params, self.buffers_, views,
                                                         *noise)
        self.last_losses = losses.detach()
        return losses.sum(), {CELL_LOSS: losses.detach(),
                              **{k: v.detach() for k, v in metrics.items()}}


def _stacked_optimizer(stack: StackedCells, cell_opts: list[torch.optim.Optimizer],
                       cell_scheds: list[Any]) -> tuple[torch.optim.Optimizer, Any]:
    """One optimiser of the cells' class and settings over the stacked parameters, its state
    the cells' states stacked (a resumed cell's included), and the cells' schedule."""
    opt0 = cell_opts[0]
    if isinstance(opt0, LARS):
        raise CannotStack("LARS scales each parameter tensor by its norm, which would mix the "
                          "stacked cells")
    name_of = {id(p): n for n, p in stack.cells[0].named_parameters()}
    groups = [{**{k: v for k, v in g.items() if k != "params"},
               "params": [stack.params[name_of[id(p)]] for p in g["params"]]}
              for g in opt0.param_groups]
    opt = type(opt0)(groups, **opt0.defaults)
    per_cell = [dict(c.named_parameters()) for c in stack.cells]
    for name, big in stack.params.items():
        states = [o.state.get(pc[name], {}) for o, pc in zip(cell_opts, per_cell, strict=True)]
        if not states[0]:
            continue
        opt.state[big] = {key: torch.stack([s[key] for s in states])
                          if torch.is_tensor(v) and v.shape == big.shape[1:] else v
                          for key, v in states[0].items()}
    sched = None
    if cell_scheds[0] is not None:
        s0 = cell_scheds[0]
        sched = type(s0)(opt, s0.lr_lambdas)
        sched.load_state_dict(s0.state_dict())
        for g, g0 in zip(opt.param_groups, opt0.param_groups, strict=True):
            g["lr"] = g0["lr"]  # the constructor's step reset it; the cell's rate continues
    return opt, sched


def _link_optimizer_state(opt: torch.optim.Optimizer, stack: StackedCells,
                          cell_opts: list[torch.optim.Optimizer]) -> None:
    """Make each cell's optimiser state views of its slice of the stacked state, so that its
    ``state_dict()`` (its checkpoint) is what its own run would hold. The stacked optimisers
    update their state in place, so the views stay current."""
    for k, (cell, copt) in enumerate(zip(stack.cells, cell_opts, strict=True)):
        _sync_hyperparameters(opt, copt)
        for name, p in cell.named_parameters():
            big = stack.params[name]
            if big in opt.state:
                copt.state[p] = {key: v[k] if torch.is_tensor(v) and v.shape[1:] ==
                                 big.shape[1:] and v.ndim == big.ndim else v
                                 for key, v in opt.state[big].items()}


def _sync_hyperparameters(opt: torch.optim.Optimizer, cell_opt: torch.optim.Optimizer) -> None:
    """The stacked optimiser's current settings (the schedule's learning rate) into a cell's
    optimiser, whose ``state_dict()`` is the cell's checkpoint."""
    for g, cg in zip(opt.param_groups, cell_opt.param_groups, strict=True):
        cg.update({k: v for k, v in g.items() if k != "params"})


class CellState:
    """What a cell's callbacks see as the loop's :class:`~probssl.train.loop.EpochState`:
    the stacked loop's position, with this cell's running sums and its share (1/K) of the
    views and the time."""

    def __init__(self, outer: Any, k: int, n_cells: int) -> None:
        self.outer, self.k, self.n_cells = outer, k, n_cells

    def __getattr__(self, name: str) -> Any:  # epoch, n_batches, step, at_sync, done
        return getattr(self.outer, name)

    @property
    def sums(self) -> dict[str, torch.Tensor]:
        return {("loss" if key == CELL_LOSS else key): v[self.k]
                for key, v in self.outer.sums.items() if v.ndim == 1}

    @property
    def n_views_seen(self) -> int:
        return self.outer.n_views_seen // self.n_cells

    def seconds(self) -> float:
        return self.outer.seconds() / self.n_cells

    def partial(self) -> dict[str, Any]:
        return {"sums": {k: float(v) for k, v in self.sums.items()},
                "n_views_seen": self.n_views_seen, "seconds": self.seconds()}


class Cells(Callback):
    """The stacked loop's callback that runs every cell's own callbacks with the cell's own
    trainer (its method, optimiser, history, run directory) and its slice of each number. A
    cell whose NaN guard stops it is dropped from then on (``errors``)."""

    def __init__(self, trainers: list[Trainer], stack: StackedCells,
                 optimizer: torch.optim.Optimizer) -> None:
        self.trainers = trainers
        self.stack = stack
        self.optimizer = optimizer
        self.linked = False
        self.errors: dict[int, BaseException] = {}

    def _each(self, hook: str, *args: Any, per_cell=None) -> None:
        for k, t in enumerate(self.trainers):
            if k in self.errors:
                continue
            try:
                t._call(hook, *(per_cell(k) if per_cell else args))
            except TrainingDiverged as exc:
                self.errors[k] = exc

    def on_train_start(self, trainer: Trainer) -> None:
        self._each("on_train_start")

    def on_epoch_start(self, trainer: Trainer) -> None:
        for k, t in enumerate(self.trainers):
            t.state = CellState(trainer.state, k, len(self.trainers))  # type: ignore[assignment]
        self._each("on_epoch_start")

    def on_loss(self, trainer: Trainer, loss: torch.Tensor) -> None:
        losses = self.stack.last_losses
        self._each("on_loss", per_cell=lambda k: (losses[k],))

    def on_step_end(self, trainer: Trainer, out: StepOutput) -> None:
        if not self.linked:  # the optimiser's state exists after the first step
            _link_optimizer_state(self.optimizer, self.stack,
                                  [t.optimizer for t in self.trainers])
            self.linked = True
        else:  # the schedule moved the learning rate
            for t in self.trainers:
                _sync_hyperparameters(self.optimizer, t.optimizer)

        def cell_out(k: int) -> tuple[StepOutput]:
            return (StepOutput(out.metrics[CELL_LOSS][k],
                               {n: v[k] for n, v in out.metrics.items() if n != CELL_LOSS}),)

        self._each("on_step_end", per_cell=cell_out)

    def on_epoch_end(self, trainer: Trainer, row: dict[str, Any]) -> None:
        n = len(self.trainers)

        def cell_row(k: int) -> tuple[dict[str, Any]]:
            r: dict[str, Any] = {"epoch": row["epoch"], "loss": row[CELL_LOSS][k]}
            r.update({key: v[k] for key, v in row.items()
                      if isinstance(v, list) and key != CELL_LOSS})
            r.update(seconds=round(row["seconds"] / n, 4), views_per_s=row["views_per_s"],
                     stacked_cells=n)
            self.trainers[k].history.append(r)
            return (r,)

        self._each("on_epoch_end", per_cell=cell_row)
        if len(self.errors) == n:  # every cell diverged: nothing left to train
            raise next(iter(self.errors.values()))

    def on_checkpoint(self, trainer: Trainer, epoch: int, step: int) -> None:
        for k, t in enumerate(self.trainers):
            if k not in self.errors:
                t.save_checkpoint(epoch, step)

    def on_train_end(self, trainer: Trainer) -> None:
        for t in self.trainers:
            t._call("on_train_end")


def _capture_streams(device: torch.device) -> dict[str, Any]:
    """The global RNG states a cell's run would continue from: a private generator on the
    device (for its noise) and Python's, NumPy's and torch's CPU states (checkpointed)."""
    gen = torch.Generator(device=device)
    gen.set_state(torch.cuda.get_rng_state(device) if device.type == "cuda"
                  else torch.get_rng_state())
    return {"gen": gen, "python": random.getstate(), "numpy": _numpy_state(),
            "torch": torch.get_rng_state()}


def _cell_rng(streams: dict[str, Any], aug_gen: torch.Generator,
              device: torch.device) -> dict[str, Any]:
    """The RNG states a cell's checkpoint holds (callbacks.rng_state's format)."""
    state = {"python": streams["python"], "numpy": streams["numpy"],
             "torch": streams["gen"].get_state() if device.type == "cpu" else streams["torch"],
             "augment": aug_gen.get_state()}
    if torch.cuda.is_available():
        cuda = torch.cuda.get_rng_state_all()
        if device.type == "cuda":
            cuda[device.index or 0] = streams["gen"].get_state()
        state["cuda"] = cuda
    return state


def _check_stackable(cfgs: list[TrainConfig]) -> None:
    if len(cfgs) < 2:
        raise CannotStack("stacking needs at least two cells")
    first = {**cfgs[0].to_dict(), "seed": None}
    for cfg in cfgs[1:]:
        if {**cfg.to_dict(), "seed": None} != first:
            raise CannotStack("the cells differ by more than their seed")
    if len({c.seed for c in cfgs}) != len(cfgs):
        raise CannotStack("two cells have the same seed")
    if cfgs[0].compile:
        raise CannotStack("--compile is not combined with stacking")


def _probe(stack: StackedCells, prep: PreparedRun) -> None:
    """One stacked forward on a two-image batch, on copies of the state: declines a method
    whose forward ``vmap`` cannot batch (``.item()``, random ops of its own, ...)."""
    x = prep.resolved.data.x_train[:2].to(prep.device)
    from probssl.data.views import make_view_source

    source = make_view_source(prep.cfg.views, x, stack.n_views, prep.resolved.augment,
                              torch.Generator(device=prep.device).manual_seed(0))
    idx = torch.arange(min(2, source.n_items), device=prep.device)
    views = torch.stack([source(idx)] * len(stack.cells))
    saved = {n: b.clone() for n, b in stack.buffers_.items()}
    gens = [g.get_state() for g in stack.generators]
    try:
        with torch.no_grad():
            stack(views)
    except CannotStack:
        raise
    except Exception as exc:  # whatever vmap or the method raised: not stackable
        raise CannotStack(f"its forward cannot be batched by vmap ({str(exc).splitlines()[0]})"
                          ) from None
    finally:
        for n, b in stack.buffers_.items():
            b.copy_(saved[n])
        for g, s in zip(stack.generators, gens, strict=True):
            g.set_state(s)
        stack._noise_shapes.clear()


def train_parallel(cfgs: list[TrainConfig], run_dirs: list, resume: list[bool], *,
                   progress: bool = False, verbose: bool = False) -> list[TrainResult]:
    """Train the cells ``cfgs`` (one configuration, K seeds) as one stacked model, each in its
    run directory (``resume[k]``: continue that cell's run); module docstring. Raises
    :class:`CannotStack` before writing anything when they cannot be stacked. Returns each
    cell's result; a cell whose loss diverged is in ``TrainResult.epochs_done`` short of
    ``cfg.epochs`` (its run directory keeps its last good checkpoint)."""
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        raise CannotStack("under torchrun each process trains one run")
    _check_stackable(cfgs)
    spec = get_method_spec(cfgs[0].method)
    if not spec.trainable:
        raise CannotStack(f"{cfgs[0].method} is not trained")
    if getattr(spec.build, "after_step", Method.after_step) is not Method.after_step:
        raise CannotStack(f"{cfgs[0].method} updates its own state after each step")
    dist_info = DistInfo()
    run_dirs = [Path(d) for d in run_dirs]
    preps, streams = [], []
    for cfg, run_dir, res in zip(cfgs, run_dirs, resume, strict=True):
        cfg = prepare_run_dir(cfg, run_dir, res)
        prep = prepare_run(cfg, run_dir, res, dist_info)
        if prep.done is not None:
            raise CannotStack(f"{run_dir.name} has nothing left to train")
        preps.append(prep)
        streams.append(_capture_streams(prep.device))
    positions = {(p.start.epoch, p.start.step) for p in preps}
    if len(positions) > 1:
        raise CannotStack("the cells' checkpoints are at different positions")
    stack = StackedCells([p.method for p in preps], [s["gen"] for s in streams])
    _probe(stack, preps[0])
    opt, sched = _stacked_optimizer(stack, [p.opt for p in preps], [p.sched for p in preps])

    # from here on the cells are committed: their run directories are written
    x_all = preps[0].resolved.data.x_train.to(preps[0].device)
    cell_trainers = [
        _open_run(p, False, verbose, x_all=x_all, stacked=True,
                  rng=lambda p=p, s=s: _cell_rng(s, p.aug_gen, p.device))
        for p, s in zip(preps, streams, strict=True)]
    for t in cell_trainers:
        t.schedule = sched  # one schedule steps the stacked optimiser for every cell
    _link_optimizer_state(opt, stack, [p.opt for p in preps])  # a resumed state, linked now
    cells = Cells(cell_trainers, stack, opt)
    start = preps[0].start
    partial = None
    if start.step:  # resumed mid-epoch: the cells' running sums, stacked
        parts = [p.start.partial for p in preps]
        partial = {"sums": {"loss": sum(x["sums"]["loss"] for x in parts),
                            CELL_LOSS: [x["sums"]["loss"] for x in parts],
                            **{k: [x["sums"][k] for x in parts]
                               for k in parts[0]["sums"] if k != "loss"}},
                   "n_views_seen": sum(x["n_views_seen"] for x in parts),
                   "seconds": sum(x["seconds"] for x in parts)}

    def views(idx: torch.Tensor) -> torch.Tensor:  # (K, b) indices -> (K, b, J, ...) views
        return torch.stack([t.views(i) for t, i in zip(cell_trainers, idx, strict=True)])

    def order(epoch: int) -> torch.Tensor:
        return torch.stack([epoch_order(p.n_items, p.cfg.seed, epoch, dist_info)
                            for p in preps])

    cfg0 = preps[0].cfg
    outer = Trainer(stack, opt, views, preps[0].n_items, batch_size=cfg0.batch_size,
                    epochs=cfg0.epochs, seed=cfg0.seed, device=preps[0].device,
                    schedule=sched, dist_info=dist_info,
                    amp=cfg0.amp and preps[0].device.type == "cuda",
                    callbacks=[ProgressBar(progress), cells, StopOnSignal(run_dirs[0].parent)],
                    order=order, count_views=lambda v: v.shape[0] * v.shape[1] * v.shape[2])
    outer.fit(start.epoch, start.step, partial)
    return [TrainResult(p.run_dir, cfg0.epochs if k not in cells.errors
                        else len(t.history), t.history, p.method)
            for k, (p, t) in enumerate(zip(preps, cell_trainers, strict=True))]

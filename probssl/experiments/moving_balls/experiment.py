"""The RPM paper's moving-balls experiment (arXiv:2107.02495v3 Sec. 5, App. D, Fig. 1).

Per seed: one video (the seed also sets the encoders' initial weights and the batch order, so
the methods of one seed are matched), encoders trained on the first ``train_fraction`` of the
frames, and two readouts fitted on those frames and scored on the held-out rest of the video
(:mod:`.readout`): per detector (one affine map per detector and one detector→ball
assignment — the readout the paper's claim is about) and full (one affine map from all
coordinates).

* ``rbf``: InfoNCE with the Gaussian critic f = exp(−|u − u'|²/2θ²), θ learned (Eq. 27);
* ``bilinear``: InfoNCE with f = exp(uᵀWu'), W learned (Eq. 8);
* ``supervised``: the same encoder regressed on the true centres (reference);
* ``random``: the untrained encoder (batch-norm statistics from one pass over the training
  frames) — the control that says how much of the readout's success the training earned.

A batch is 30 random pairs (frame t, frame t+1); the 60 frames go through the encoder together
(one batch-norm batch); for pair i the target t+1 is the positive and the other pairs' targets
are the negatives. SGD, lr 0.005, 30 epochs. The critics see u = the encoder's pixel
coordinates as they are (``coordinates="raw"``, the default): the paper's literal reading —
its encoder outputs pixel coordinates and nothing is centred, and Eq. 26's argument ("this
prior will encourage z' to be very large") depends on where the origin is. ``centred``
(u = z − size/2, this experiment's default until 2026-12-03) and ``unit`` (the frame mapped to
[−1, 1]) are named options; an RBF critic is unchanged by centring, a bilinear one is not.
θ starts at 1 in the units of u.

Deviations from the paper that remain (each a setting, stated in docs/RESULTS.md beside the
results): the balls are drawn one per colour channel by default (``balls="coloured"``; the
paper's text does not say how its balls differ, its earlier version speaks of "the coral
ball"; ``balls="identical"`` draws them alike in one channel); negatives are the other
pairs of the batch (the paper does not say where its negatives come from).

The supervised loss and the full readout match each frame's decoded centres to the true ones
with the best of the K! assignments (a frame-wise encoder cannot know which ball is "ball 0");
the full readout is fitted by alternating that matching with least squares. Metric: mean
Euclidean distance (px) between decoded and true centres.

Training runs on the one trainer (:class:`probssl.train.loop.Trainer` with the NaN guard and
checkpoint callbacks, in ``runs/METHOD-seedS/``), so an interrupted run continues exactly
where it stopped, also inside an epoch (``--checkpoint-every N``).
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

from probssl.critics import build_critic
from probssl.data.moving_balls import BALLS, moving_balls, palette
from probssl.data.views import pair_indices
from probssl.errors import TrainingDiverged, UserError
from probssl.experiments.moving_balls.figure import LABELS, draw_figure, loss_curves
from probssl.experiments.moving_balls.readout import (
    COORDINATES,
    critic_coordinates,
    decode,
    detector_distances,
    embed,
    fit_detector_readout,
    fit_readout,
    matched_distances,
    permutations,
)
from probssl.experiments.moving_balls.windows import BallWindows, make_windows, windowed_forward
from probssl.experiments.report import mean_se
from probssl.nn.centre_of_mass import BallEncoder
from probssl.objectives.infonce import infonce_log_ratio
from probssl.runs import checkpoint as ckpt
from probssl.runs.format import write_json_atomic
from probssl.train.callbacks import Checkpointing, NaNGuard, set_rng_state
from probssl.train.loop import Callback, Trainer
from probssl.userio import warn

METHODS = ("rbf", "bilinear", "supervised", "random")  # the default set: the paper's Fig. 1
# every method: also "ring", InfoNCE with a critic that knows the motion (critics/ring.py)
ALL_METHODS = ("rbf", "bilinear", "ring", "supervised", "random")
NEGATIVES = ("batch", "bank", "hard")
OPTIMIZERS = ("sgd", "adam")


@dataclass(frozen=True)
class BallsExperimentConfig:
    frames: int = 900
    size: int = 256
    n_balls: int = 3
    diameter: float = 32.0
    epochs: int = 30
    batch_pairs: int = 30
    lr: float = 0.005
    train_fraction: float = 0.8
    methods: tuple[str, ...] = METHODS
    seeds: tuple[int, ...] = (0, 1, 2, 3, 4)
    device: str = "cpu"
    # what the critics and the supervised loss see of the pixel coordinates z: "raw" (the
    # paper's literal reading: nothing centred), "centred" (z − size/2) or "unit" (the frame
    # mapped to [−1, 1]); readout.critic_coordinates
    coordinates: str = "raw"
    # how the balls look (probssl.data.moving_balls.palette): "coloured" (ball k in channel
    # k), "identical" (all alike in one channel), "grey" (one channel, levels 0.4 / 0.7 / 1.0)
    # or "mixed" (distinct colours mixing channels)
    balls: str = "coloured"
    length_scale: float = 1.0  # the RBF critic's initial θ, in units of u
    # negatives of the critic methods: "batch" (the other pairs of the batch, the default),
    # "bank" (also a memory bank of every training frame's recent encoding) or "hard" (also
    # frames t+2 … t+5); see _PairObjective
    negatives: str = "batch"
    # "sgd" (the paper's App. D: plain SGD at ``lr``) or "adam" (ours: for the grey balls,
    # where 30 SGD epochs leave even the supervised encoder untrained)
    optimizer: str = "sgd"
    # also checkpoint every N steps inside an epoch (0: at epoch ends only); not in the run
    # key: it changes no number
    checkpoint_every: int = 0

    def __post_init__(self) -> None:
        bad = [m for m in self.methods if m not in ALL_METHODS]
        if bad:
            raise UserError(f"moving balls: unknown method {bad[0]!r}; choose from "
                            f"{', '.join(ALL_METHODS)}")
        if not self.methods:
            raise UserError("moving balls: no methods given")
        if self.epochs < 1 or self.batch_pairs < 2 or not self.lr > 0:
            raise UserError("moving balls: epochs >= 1, batch pairs >= 2 and lr > 0 required")
        if not 0 < self.train_fraction < 1:
            raise UserError("moving balls: train fraction must be in (0, 1)")
        n_train = int(self.frames * self.train_fraction)
        if n_train - 1 < self.batch_pairs or self.frames - n_train < 2:
            raise UserError(f"moving balls: {self.frames} frames leave too few training pairs "
                            f"for batches of {self.batch_pairs} (or too few held-out frames)")
        if self.balls not in BALLS:
            raise UserError(f"moving balls: balls must be one of {', '.join(BALLS)}, not "
                            f"{self.balls!r}")
        if self.coordinates not in COORDINATES:
            raise UserError(f"moving balls: coordinates must be one of {', '.join(COORDINATES)}"
                            f"; got {self.coordinates!r}")
        if not self.length_scale > 0:
            raise UserError("moving balls: the length scale must be positive")
        if not self.seeds:
            raise UserError("moving balls: no seeds given")
        if self.negatives not in NEGATIVES:
            raise UserError(f"moving balls: negatives must be one of {', '.join(NEGATIVES)}; "
                            f"got {self.negatives!r}")
        if self.checkpoint_every < 0:
            raise UserError("moving balls: checkpoint_every must be >= 0")
        if self.optimizer not in OPTIMIZERS:
            raise UserError(f"moving balls: optimizer must be one of {', '.join(OPTIMIZERS)}; "
                            f"got {self.optimizer!r}")

    @property
    def in_channels(self) -> int:
        return palette(self.balls, self.n_balls).shape[1]

    @property
    def n_train(self) -> int:
        return int(self.frames * self.train_fraction)

    def run_key(self) -> dict[str, Any]:
        """Everything that changes one (method, seed) run's result."""
        d = asdict(self)
        for k in ("methods", "seeds", "device", "checkpoint_every"):
            d.pop(k)
        return d


PAPER = BallsExperimentConfig()
# Small frames, few epochs: the same code path in a few seconds, for tests. Too small to
# learn anything (even the supervised encoder stays ~10 px off per detector): not a result.
QUICK = BallsExperimentConfig(frames=160, size=64, diameter=8.0, epochs=4, batch_pairs=20,
                              seeds=(0, 1))
# The demo's size: the paper's frames, balls and optimiser on a third of its video (300
# frames) for half its epochs (15), 3 seeds; ~1-2 min on 2 CPU cores. At this size the
# supervised encoder learns its detectors (0.1 px) and the paper-size pattern of RESULTS.md
# shows on every seed (see ``findings``).
DEMO = replace(PAPER, frames=300, epochs=15, seeds=(0, 1, 2))


def findings(summary: dict[str, Any], collapse_px: float = 10.0) -> list[str]:
    """What a table shows, in sentences computed from its numbers (the demo's text): whether
    each critic learned per-ball detectors (per-detector readout near the supervised
    encoder's), whether the full readout tells a trained encoder from an untrained one, and
    on how many seeds the full readout of a critic is worse than ``collapse_px`` (a
    collapsed encoder)."""
    out = []

    def worst(m: str, key: str) -> float:
        return max(x for x in summary[m][key] if x is not None)

    def best(m: str, key: str) -> float:
        return min(x for x in summary[m][key] if x is not None)

    critics = [m for m in ("rbf", "bilinear", "ring") if m in summary
               and summary[m]["detector_mean_px"] == summary[m]["detector_mean_px"]]
    if "supervised" in summary and critics:
        sup = worst("supervised", "detector_per_seed")
        lowest = min(best(m, "detector_per_seed") for m in critics)
        verdict = ("no critic learned one detector per ball on any seed" if lowest > 5 * sup
                   else "some critic came close to per-ball detectors on some seed")
        out.append(f"Per-detector readout: the supervised encoder's detectors follow their "
                   f"balls within {sup:.2f} px on every seed; the InfoNCE critics' best seed "
                   f"is {lowest:.1f} px off: {verdict}.")
    if "random" in summary and critics:
        rnd = summary["random"]["mean_px"]
        out.append(f"Full readout: the untrained encoder already scores {rnd:.2f} px, so a "
                   "small full-readout error is no evidence of learned detectors.")
    for m in critics:
        n = sum(x is not None and x > collapse_px for x in summary[m]["per_seed"])
        if n:
            out.append(f"The {m} critic's full readout is worse than {collapse_px:g} px on "
                       f"{n} of {len(summary[m]['per_seed'])} seeds: its encoder collapsed "
                       "(every detector near one point), as the paper's Fig. 1C shows for "
                       "the linear critic.")
    return out


def supervised_loss(z: torch.Tensor, centres: torch.Tensor, size: int,
                    coordinates: str = "raw") -> torch.Tensor:
    """Mean squared distance (in the critics' ``coordinates``: pixels, or frame halves for
    "unit") under the best ball assignment per frame."""
    k = centres.shape[1]
    u = critic_coordinates(z.view(len(z), k, 2), size, coordinates)
    c = critic_coordinates(centres.to(z.dtype), size, coordinates)
    perms = permutations(k).to(z.device)
    sq = (u[:, None] - c[:, perms]).pow(2).sum(-1).mean(-1)  # (N, P)
    return sq.min(dim=1).values.mean()


def critic_loss(critic: torch.nn.Module, z_base: torch.Tensor, z_target: torch.Tensor,
                size: int, coordinates: str = "raw", *, shared: torch.Tensor | None = None,
                shared_mask: torch.Tensor | None = None, own: torch.Tensor | None = None,
                own_mask: torch.Tensor | None = None) -> torch.Tensor:
    """−(InfoNCE log-ratio): cross-entropy of picking pair i's own target among its negatives
    (:func:`probssl.objectives.infonce.infonce_log_ratio`; I_N without its + log N).

    Negatives of row i: the other pairs' targets, always; ``shared`` (M, d) — more negatives
    for every row (a memory bank), with ``shared_mask`` (B, M) True where an entry must not
    count for a row (a stale copy of its own target); ``own`` (B, H, d) — negatives of row i
    only (hard negatives: frames t+2 … t+H+1), with ``own_mask`` (B, H) likewise."""
    u = critic_coordinates(z_base, size, coordinates)
    columns = [critic(u, critic_coordinates(z_target, size, coordinates))]
    if shared is not None:
        s = critic(u, critic_coordinates(shared, size, coordinates))
        columns.append(s if shared_mask is None else s.masked_fill(shared_mask, -math.inf))
    if own is not None:
        b, h, d = own.shape
        s = critic(u, critic_coordinates(own.reshape(b * h, d), size, coordinates))
        rows = torch.arange(b, device=s.device)
        s = s.view(b, b, h)[rows, rows]  # row i against its own H negatives
        columns.append(s if own_mask is None else s.masked_fill(own_mask, -math.inf))
    return -infonce_log_ratio(torch.cat(columns, dim=1)).mean()


HARD_NEGATIVES = 4  # frames t+2 … t+5


class _PairObjective(torch.nn.Module):
    """One moving-balls step's loss as a method of the one trainer
    (:class:`probssl.train.loop.Trainer`): a batch is (B, 2) frame indices, pair i = (t_i,
    t_i + 1); the 2B frames go through the encoder together (bases, then targets).

    Negatives (``cfg.negatives``): ``batch`` — the other pairs' targets; ``bank`` — also a
    memory bank (a FIFO queue, as MoCo's) of the detached encodings of the most recent
    ``n_train − 1`` targets, i.e. of every training frame, at most one epoch stale (a stale
    copy of row i's own target is masked out); ``hard`` — also frames t+2 … t+5 of each pair,
    encoded in the same forward (so they join the batch-norm batch; frames past the training
    set are masked out). The bank is a buffer of this module, so checkpoints carry it and
    resume stays exact."""

    def __init__(self, method: str, enc: BallEncoder, critic: torch.nn.Module | None,
                 cfg: BallsExperimentConfig, win: BallWindows, centres: torch.Tensor) -> None:
        super().__init__()
        self.kind, self.enc, self.critic = method, enc, critic
        self.cfg, self.win, self.centres = cfg, win, centres
        if cfg.negatives == "bank" and critic is not None:
            n = cfg.n_train - 1
            self.register_buffer("bank", torch.zeros(n, 2 * cfg.n_balls, device=centres.device))
            self.register_buffer("bank_frame", torch.full((n,), -1, dtype=torch.long,
                                                          device=centres.device))
            self.register_buffer("bank_next", torch.zeros((), dtype=torch.long))

    def forward(self, pairs: torch.Tensor) -> tuple[torch.Tensor, dict]:
        cfg, base = self.cfg, pairs[:, 0]
        idx = pair_indices(base)
        b = len(base)
        hard = None
        if cfg.negatives == "hard" and self.kind != "supervised":
            hard = base[:, None] + torch.arange(2, 2 + HARD_NEGATIVES, device=base.device)
            valid = hard < cfg.n_train
            idx = torch.cat([idx, hard.clamp(max=cfg.n_train - 1).reshape(-1)])
        z = windowed_forward(self.enc, self.win.index(idx))
        if self.kind == "supervised":
            return supervised_loss(z, self.centres[idx], cfg.size, cfg.coordinates), {}
        z_base, z_target = z[:b], z[b:2 * b]
        if hard is not None:  # a frame past the training set is no negative: masked out
            own = z[2 * b:].view(b, HARD_NEGATIVES, -1)
            return critic_loss(self.critic, z_base, z_target, cfg.size, cfg.coordinates,
                               own=own, own_mask=~valid), {}
        if cfg.negatives == "bank":
            targets = base + 1
            mask = (self.bank_frame[None, :] == targets[:, None]) | (self.bank_frame[None, :] < 0)
            # a copy: the critic's backward may need the bank as it was (a bilinear critic's
            # does), and the queue is updated in place below
            loss = critic_loss(self.critic, z_base, z_target, cfg.size, cfg.coordinates,
                               shared=self.bank.clone(), shared_mask=mask)
            self._enqueue(z_target.detach(), targets)
            return loss, {}
        return critic_loss(self.critic, z_base, z_target, cfg.size, cfg.coordinates), {}

    @torch.no_grad()
    def _enqueue(self, z: torch.Tensor, frames: torch.Tensor) -> None:
        n = len(self.bank)
        slots = (self.bank_next + torch.arange(len(z), device=z.device)) % n
        self.bank[slots] = z.to(self.bank.dtype)
        self.bank_frame[slots] = frames
        self.bank_next.copy_((self.bank_next + len(z)) % n)

    def after_step(self) -> None:
        pass


class _PairOrder:
    """Epoch e's order of the training pairs: the (e+1)-th permutation drawn from a generator
    seeded by the run's seed — the order of the experiment's first version, so its numbers
    are unchanged — computed from the epoch alone, so a resumed run draws the same order. A
    last batch of a single pair (it has no negatives) is left out, as before."""

    def __init__(self, n_pairs: int, batch_pairs: int, seed: int) -> None:
        self.n, self.seed = n_pairs, seed
        self.keep = n_pairs - 1 if n_pairs % batch_pairs == 1 else n_pairs
        self._gen, self._next = torch.Generator().manual_seed(seed), 0

    def __call__(self, epoch: int) -> torch.Tensor:
        if epoch != self._next:  # resumed (or asked out of turn): replay from the start
            self._gen, self._next = torch.Generator().manual_seed(self.seed), 0
        while self._next < epoch:
            torch.randperm(self.n, generator=self._gen)
            self._next += 1
        self._next += 1
        return torch.randperm(self.n, generator=self._gen)[:self.keep]


class _StepBar(Callback):
    """The experiment's one progress bar across all runs: one tick per step."""

    def __init__(self, bar: tqdm, method: str, seed: int) -> None:
        self.bar, self.method, self.seed = bar, method, seed

    def on_step_end(self, trainer: Trainer, out: Any) -> None:
        self.bar.update(1)

    def on_epoch_end(self, trainer: Trainer, row: dict[str, Any]) -> None:
        self.bar.set_postfix(method=self.method, seed=self.seed, epoch=row["epoch"],
                             loss=f"{row['loss']:.3f}")


@dataclass
class BallsRun:
    method: str
    seed: int
    encoder: BallEncoder
    critic: torch.nn.Module | None
    losses: list[float] = field(default_factory=list)


def _resume(run_dir: Path, objective: torch.nn.Module, opt: torch.optim.Optimizer,
            gen: torch.Generator, key: dict[str, Any]) -> tuple[int, int, dict | None, list]:
    """(epoch, step, partial sums, history) of the newest checkpoint in ``run_dir``, with the
    weights, optimiser and RNG states loaded; (0, 0, None, []) when there is none. Checkpoints
    of other settings (another run key) are removed: they belong to no run of this one."""
    found = ckpt.load_latest_with_path(run_dir)
    if found is None:
        return 0, 0, None, []
    path, state = found
    if ckpt.as_json(with_defaults(state.get("config"))) != ckpt.as_json(key):
        warn(f"{run_dir}: its checkpoints are of other settings; training this run afresh")
        for _, old in ckpt.list_checkpoints(run_dir):
            old.unlink(missing_ok=True)
            old.with_name(old.name + ".sha256").unlink(missing_ok=True)
        return 0, 0, None, []
    objective.load_state_dict(state["model"])
    opt.load_state_dict(state["optimizer"])
    set_rng_state(state["rng"][0], gen)
    return ckpt.resume_position(state)


def train_encoder(method: str, seed: int, cfg: BallsExperimentConfig, win: BallWindows,
                  centres: torch.Tensor, bar: tqdm | None = None, run_dir: Path | None = None,
                  callbacks: Sequence[Callback] = ()) -> BallsRun:
    """Train one encoder on the first ``cfg.n_train`` frames (windows on ``cfg.device``) with
    the one trainer (:class:`probssl.train.loop.Trainer`, SGD, ``cfg.batch_pairs`` pairs per
    step). With ``run_dir``: the NaN guard, a checkpoint at every epoch end and every
    ``cfg.checkpoint_every`` steps, and exact resume from the newest checkpoint there (a run
    killed mid-epoch continues at the same step with the same weights). ``callbacks`` run
    after those (e.g. online evaluation)."""
    dev = torch.device(cfg.device)
    torch.manual_seed(seed)  # same initial encoder for every method of a seed
    enc = BallEncoder(cfg.in_channels, n_balls=cfg.n_balls).to(dev)
    critic = None
    params = list(enc.parameters())
    if method == "rbf":
        critic = build_critic("rbf", 2 * cfg.n_balls, length_scale=cfg.length_scale).to(dev)
    elif method == "bilinear":
        critic = build_critic("bilinear", 2 * cfg.n_balls).to(dev)
    elif method == "ring":  # one ball's step per frame, in the critics' coordinates
        step = cfg.diameter / (cfg.size / 2) if cfg.coordinates == "unit" else cfg.diameter
        critic = build_critic("ring", 2 * cfg.n_balls, radius=step,
                              width=cfg.length_scale).to(dev)
    if critic is not None:
        params += list(critic.parameters())
    opt = (torch.optim.SGD(params, lr=cfg.lr) if cfg.optimizer == "sgd"
           else torch.optim.Adam(params, lr=cfg.lr))
    n_pairs = cfg.n_train - 1
    centres = centres.to(dev)
    run = BallsRun(method, seed, enc, critic)
    if method == "random":  # untrained weights; batch-norm statistics from one pass
        with torch.no_grad():
            for start in range(0, cfg.n_train, 2 * cfg.batch_pairs):
                idx = torch.arange(start, min(start + 2 * cfg.batch_pairs, cfg.n_train))
                windowed_forward(enc, win.index(idx.to(dev)))
        if bar is not None:
            bar.update(cfg.epochs * math.ceil(n_pairs / cfg.batch_pairs))
        return run
    objective = _PairObjective(method, enc, critic, cfg, win, centres)
    gen = torch.Generator()  # the checkpoints' RNG record; the order has its own generator
    key = cfg.run_key()
    first: tuple[int, int, dict | None, list] = (0, 0, None, [])
    cbs: list[Callback] = []
    if run_dir is not None:
        first = _resume(run_dir, objective, opt, gen, key)
        cbs.append(NaNGuard(run_dir))
    if bar is not None:
        bar.update(first[0] * math.ceil(n_pairs / cfg.batch_pairs) + first[1])
        cbs.append(_StepBar(bar, method, seed))
    cbs += list(callbacks)
    if run_dir is not None:
        cbs.append(Checkpointing(run_dir, 2, cfg.checkpoint_every, key, gen))
    trainer = Trainer(objective, opt, lambda base: torch.stack([base, base + 1], 1), n_pairs,
                      batch_size=cfg.batch_pairs, epochs=cfg.epochs, seed=seed, device=dev,
                      callbacks=cbs, history=first[3],
                      order=_PairOrder(n_pairs, cfg.batch_pairs, seed))
    trainer.fit(first[0], first[1], first[2])
    run.losses = [row["loss"] for row in trainer.history]
    bad = [i for i, loss in enumerate(run.losses) if not math.isfinite(loss)]
    if bad:  # without a run directory there is no NaN guard: say where it went wrong
        raise FloatingPointError(f"moving balls: {method} seed {seed} diverged at epoch "
                                 f"{bad[0] + 1}")
    return run


def score_run(run: BallsRun, cfg: BallsExperimentConfig, win: BallWindows,
              centres: torch.Tensor) -> dict[str, Any]:
    """The record of one trained run: both readouts (module docstring) fitted on the first
    ``cfg.n_train`` frames and their mean distance to the true centres (px) on the held-out
    and on the training frames, the detector→ball assignment, the losses and the critic's
    learned parameters."""
    z = embed(run.encoder, win)
    n_tr, k = cfg.n_train, cfg.n_balls
    a = fit_readout(z[:n_tr], centres[:n_tr])
    d_test, _ = matched_distances(decode(a, z[n_tr:], k), centres[n_tr:].double())
    d_train, _ = matched_distances(decode(a, z[:n_tr], k), centres[:n_tr].double())
    maps, assignment = fit_detector_readout(z[:n_tr], centres[:n_tr])
    det_test = detector_distances(maps, assignment, z[n_tr:], centres[n_tr:])
    det_train = detector_distances(maps, assignment, z[:n_tr], centres[:n_tr])
    out = {"method": run.method, "seed": run.seed,
           "test_distance_px": float(d_test.mean()), "train_distance_px": float(d_train.mean()),
           "test_detector_px": float(det_test.mean()),
           "train_detector_px": float(det_train.mean()),
           "detector_assignment": assignment.tolist(),
           "final_loss": run.losses[-1] if run.losses else None, "losses": run.losses}
    if run.critic is not None:
        out["critic"] = run.critic.log_params()
    return out


def run_experiment(cfg: BallsExperimentConfig, out: Path, progress: bool = True,
                   command: str = "", machine: str = "") -> dict[str, Any]:
    """Train, score and draw every (method, seed); writes ``table.md``, ``metrics.json``,
    ``fig1.png``, ``curves.png`` (training loss per epoch) and ``runs/`` under ``out``.
    Resumable: a finished run (``runs/METHOD-seedS.json`` of the same settings) is not
    retrained, and an unfinished
    one continues exactly from its newest checkpoint in ``runs/METHOD-seedS/``. A run whose
    loss becomes NaN/inf is recorded as diverged (epoch, step, the NaN guard's message), left
    out of the means and named in table.md, and the grid goes on."""
    out = Path(out)
    runs_dir = out / "runs"
    runs_dir.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    key = cfg.run_key()
    todo, results, fig_inputs = [], {}, {}
    for seed in cfg.seeds:
        for method in cfg.methods:
            path = runs_dir / f"{method}-seed{seed}.json"
            cached = _load_cached(path, key)
            if cached is None:
                todo.append((seed, method))
            else:
                results[(method, seed)] = cached
    steps = math.ceil((cfg.n_train - 1) / cfg.batch_pairs) * cfg.epochs
    bar = tqdm(total=steps * len(todo), disable=not progress, unit="step",
               desc="moving balls", dynamic_ncols=True)
    video_cache: dict[int, tuple[Any, BallWindows]] = {}

    def video(seed: int):
        if seed not in video_cache:
            v = moving_balls(cfg.frames, cfg.size, cfg.n_balls, cfg.diameter, seed=seed,
                             balls=cfg.balls)
            video_cache.clear()  # one video in memory at a time
            video_cache[seed] = (v, make_windows(v.frames, v.centres, cfg.diameter))
        return video_cache[seed]

    for seed, method in todo:
        v, win = video(seed)
        win_dev = win.to(cfg.device)
        t_run = time.perf_counter()
        try:
            run = train_encoder(method, seed, cfg, win_dev, v.centres.float(), bar,
                                run_dir=runs_dir / f"{method}-seed{seed}")
        except TrainingDiverged as exc:
            # a diverged run is a result of this setting (e.g. bilinear + bank), not a reason
            # to lose the grid: recorded as diverged, left out of the means, said in the table
            res = diverged_result(method, seed, exc, time.perf_counter() - t_run)
            warn(f"moving balls: {method} seed {seed} diverged at epoch {exc.epoch}; "
                 "recorded as diverged, continuing")
            write_json_atomic(runs_dir / f"{method}-seed{seed}.json",
                              {"key": key, "result": res})
            results[(method, seed)] = res
            continue
        res = score_run(run, cfg, win_dev, v.centres)
        res["wall_s"] = time.perf_counter() - t_run
        state = {"encoder": run.encoder.state_dict(),
                 "critic": None if run.critic is None else run.critic.state_dict()}
        torch.save(state, runs_dir / f"{method}-seed{seed}.pt")
        write_json_atomic(runs_dir / f"{method}-seed{seed}.json", {"key": key, "result": res})
        results[(method, seed)] = res
    bar.close()
    # figure inputs: the first seed's video and trained encoders (reloaded from runs/); a
    # method whose first-seed run diverged has no encoder to draw there
    seed0 = cfg.seeds[0]
    v, win = video(seed0)
    for method in cfg.methods:
        if results[(method, seed0)].get("diverged"):
            continue
        state = torch.load(runs_dir / f"{method}-seed{seed0}.pt", weights_only=True)
        enc = BallEncoder(cfg.in_channels, n_balls=cfg.n_balls)
        enc.load_state_dict(state["encoder"])
        fig_inputs[method] = (enc, state["critic"])
    summary = _summarise(cfg, results)
    wall = time.perf_counter() - t0
    metrics = {"config": asdict(cfg), "summary": summary,
               "runs": [results[(m, s)] for s in cfg.seeds for m in cfg.methods],
               "command": command, "machine": machine, "wall_s": wall,
               "trained_now": len(todo)}
    write_json_atomic(out / "metrics.json", _json_safe(metrics))
    (out / "table.md").write_text(_table(cfg, summary, command, machine, wall, len(todo)))
    draw_figure(cfg, v, win, fig_inputs, summary, out / "fig1.png")
    loss_curves(cfg, results, out / "curves.png")
    return metrics


def _json_safe(obj: Any) -> Any:
    """NaN (an s.e. of one seed, the mean of a method whose every seed diverged) as null, so
    metrics.json is standard JSON that any tool reads."""
    if isinstance(obj, float) and obj != obj:
        return None
    if isinstance(obj, dict):
        return {k: _json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_json_safe(v) for v in obj]
    return obj


def diverged_result(method: str, seed: int, exc: TrainingDiverged, wall_s: float
                    ) -> dict[str, Any]:
    """The record of a run whose loss became NaN/inf: no distances (None), where it
    diverged, and the NaN guard's message (it names the last good checkpoint)."""
    return {"method": method, "seed": seed, "diverged": True, "diverged_epoch": exc.epoch,
            "diverged_step": exc.step, "message": str(exc), "test_distance_px": None,
            "train_distance_px": None, "test_detector_px": None, "train_detector_px": None,
            "final_loss": None, "losses": [], "wall_s": wall_s}


def with_defaults(saved_key: Any) -> Any:
    """A run key saved before a setting existed, completed with that setting's default (the
    value that reproduces what the run did), so the run is still found and not retrained."""
    if not isinstance(saved_key, dict):
        return saved_key
    defaults = BallsExperimentConfig().run_key()
    return {**{k: v for k, v in defaults.items() if k not in saved_key}, **saved_key}


def _load_cached(path: Path, key: dict) -> dict | None:
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text())
        result = data["result"] if with_defaults(data.get("key")) == key else None
    except (OSError, json.JSONDecodeError, KeyError, TypeError, AttributeError):
        return None  # a damaged record is re-run, never trusted
    if result is None or not isinstance(result, dict):
        return None
    if not result.get("diverged") and not path.with_suffix(".pt").is_file():
        return None  # a finished run's weights are lost: train it again
    return result


def _mean_se_finite(values: list[float | None]) -> tuple[float, float]:
    """Mean ± s.e. over the runs that did not diverge (NaN when all did)."""
    kept = [x for x in values if x is not None]
    return mean_se(kept) if kept else (float("nan"), float("nan"))


def _summarise(cfg: BallsExperimentConfig, results: dict) -> dict[str, Any]:
    summary = {}
    for m in cfg.methods:
        vals = [results[(m, s)]["test_distance_px"] for s in cfg.seeds]
        mean, se = _mean_se_finite(vals)
        det = [results[(m, s)]["test_detector_px"] for s in cfg.seeds]
        det_mean, det_se = _mean_se_finite(det)
        diverged = [s for s in cfg.seeds if results[(m, s)].get("diverged")]
        summary[m] = {"mean_px": mean, "se_px": se, "per_seed": vals,
                      "detector_mean_px": det_mean, "detector_se_px": det_se,
                      "detector_per_seed": det, "diverged_seeds": diverged,
                      "diverged_epochs": [results[(m, s)]["diverged_epoch"] for s in diverged]}
    return summary


def _table(cfg, summary, command, machine, wall, trained) -> str:
    def pm(mean: float, se: float) -> str:
        if mean != mean:
            return "all diverged"
        return f"{mean:.2f}" + ("" if se != se else f" ± {se:.2f}")

    def seeds(values: list[float | None], s: dict) -> str:
        epochs = iter(s["diverged_epochs"])
        return ", ".join(f"{x:.1f}" if x is not None else f"NaN at ep. {next(epochs)}"
                         for x in values)

    lines = ["# Moving balls (arXiv:2107.02495v3 Fig. 1C)", "",
             "Held-out frames, mean distance to the true centre (px). Per-detector readout: one "
             "affine map per detector and one detector→ball assignment (the paper's claim: "
             "each feature map follows one ball). Full readout: one affine map from all "
             "coordinates, ball assignment re-chosen per frame (what the code contains).", "",
             "| method | per-detector readout | per seed | full readout | per seed |",
             "|---|---|---|---|---|"]
    for m, s in summary.items():
        det = seeds(s["detector_per_seed"], s)
        per = seeds(s["per_seed"], s)
        lines.append(f"| {LABELS[m]} | {pm(s['detector_mean_px'], s['detector_se_px'])} | {det} "
                     f"| {pm(s['mean_px'], s['se_px'])} | {per} |")
    n_div = sum(len(s["diverged_seeds"]) for s in summary.values())
    if n_div:
        lines += ["", f"{n_div} run(s) diverged (loss NaN/inf; the NaN guard stopped them, "
                  "their last good checkpoint is kept under runs/): means and s.e. are over "
                  "the other seeds."]
    lines += ["", f"Protocol: {cfg.frames} frames of {cfg.size}x{cfg.size}, {cfg.n_balls} balls of "
              f"{cfg.diameter:g} px moving {cfg.diameter:g} px per frame; encoders trained on the "
              f"first {cfg.n_train} frames ({cfg.epochs} epochs, "
              f"{'SGD' if cfg.optimizer == 'sgd' else 'Adam'} lr {cfg.lr:g}, "
              f"{cfg.batch_pairs} pairs per batch; critics see {cfg.coordinates} coordinates); "
              "both readouts fitted on those frames; distance measured on the last "
              f"{cfg.frames - cfg.n_train} frames; mean ± s.e. over seeds "
              f"{', '.join(map(str, cfg.seeds))} (a seed sets video, initial weights and batch "
              "order).",
              f"Command: `{command}`", f"Machine: {machine}",
              f"Wall time: {wall:.0f} s ({trained} runs trained in this invocation)", ""]
    return "\n".join(lines)


def config_from_args(quick: bool, seeds: tuple[int, ...] | None, **overrides: Any
                     ) -> BallsExperimentConfig:
    """:data:`QUICK` (``quick``) or :data:`PAPER` with ``seeds`` and every override that is not
    None (an option left unset keeps the base value)."""
    base = QUICK if quick else PAPER
    changes = {k: v for k, v in overrides.items() if v is not None}
    if seeds is not None:
        changes["seeds"] = seeds
    return replace(base, **changes)

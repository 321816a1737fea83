"""What stacking seeds buys (``bench --parallel K``), and what CUDA graphs buy one run.

For a method at the paper's shapes this times, in rounds alternating with each other
(:func:`probssl.experiments.throughput.interleaved`, so every ratio comes from one run):

* ``one``: the trainer's step (:func:`probssl.train.loop.train_step`) of one seed;
* ``stacked``: the same step of K seeds as one stacked model
  (:class:`probssl.train.parallel.StackedCells`, the model ``bench --parallel K`` trains);
* ``graphed`` (CUDA only): the one-seed step with its forward compiled by
  ``torch.compile(mode="reduce-overhead")`` (CUDA graphs: the step's kernels replayed without
  a launch each), the other answer to launch overhead for a single small-MLP run.

``speedup_stacked`` = K × t(one) / t(stacked): seeds trained per second, stacked against one
at a time. ``speedup_graphed`` = t(one) / t(graphed). On a CPU the step is compute-bound and
stacking can only save Python and dispatch overhead; the GPU is where it is meant to pay.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from probssl.data.augment import get_preset
from probssl.data.views import make_view_source
from probssl.methods import build_method, make_method_config
from probssl.train.loop import train_step
from probssl.train.optim import build_optimizer


def stacked_throughput(name: str, n_views: int, k: int = 3, *, batch: int = 128,
                       dataset: str = "mnist", device: torch.device | None = None,
                       min_seconds: float = 3.0, rounds: int = 5,
                       graphs: bool | None = None) -> dict[str, Any]:
    """One seed's step against K seeds' stacked step (and, with ``graphs`` — default: on
    CUDA — the one-seed step under CUDA graphs) for ``name`` with J = ``n_views`` on
    synthetic images shaped like ``dataset``'s, its paper architecture; module docstring."""
    from probssl.data import DATASETS
    from probssl.experiments.throughput import interleaved
    from probssl.train.parallel import StackedCells, _stacked_optimizer

    device = device or torch.device("cpu")
    graphs = device.type == "cuda" if graphs is None else graphs
    amp = device.type == "cuda"
    info = DATASETS[dataset]
    shape = tuple(info.image_shape)
    cfg = make_method_config(name, {"n_views": n_views}, arch=info.architecture,
                             latent_dim=info.latent_dim)
    fused = device.type in ("cpu", "cuda")
    methods, opts, gens = [], [], []
    for seed in range(k + 1):  # cells 0..k-1 are stacked; the last one is timed alone
        torch.manual_seed(seed)
        methods.append(build_method(name, cfg, shape).to(device))
        opts.append(build_optimizer(methods[-1], name="adam", lr=1e-4, fused=fused))
        gens.append(torch.Generator(device=device).manual_seed(seed))
    one, one_opt = methods.pop(), opts.pop()
    gens.pop()
    stack = StackedCells(methods, gens)
    stack_opt, _ = _stacked_optimizer(stack, opts, [None] * k)
    gen = torch.Generator(device=device).manual_seed(0)
    images = torch.randint(0, 256, (batch, *shape), dtype=torch.uint8, generator=gen,
                           device=device)
    source = make_view_source("augment", images, n_views, get_preset(info.augmentation), gen)
    views = source(torch.arange(batch, device=device))
    views_k = torch.stack([views] * k)

    fns: dict[str, Callable[[], Any]] = {
        "one": lambda: train_step(one, views, one_opt, amp=amp),
        "stacked": lambda: train_step(stack, views_k, stack_opt, amp=amp)}
    row: dict[str, Any] = {"method": name, "J": n_views, "batch": batch, "k": k,
                           "dataset": dataset, "device": str(device)}
    if graphs:
        try:
            graphed = torch.compile(one, mode="reduce-overhead")
            for _ in range(3):  # compile and record the graphs before timing
                train_step(one, views, one_opt, model=graphed, amp=amp)
            fns["graphed"] = lambda: train_step(one, views, one_opt, model=graphed, amp=amp)
        except Exception as exc:  # reported, not fatal: the rest of the benchmark stands
            row["graphed_error"] = str(exc).splitlines()[0][:200] if str(exc) else \
                type(exc).__name__
    t = interleaved(fns, min_seconds, device=device, rounds=rounds)
    row.update(step_ms_one=1e3 * t["one"], step_ms_stacked=1e3 * t["stacked"],
               speedup_stacked=k * t["one"] / t["stacked"])
    if "graphed" in t:
        row.update(step_ms_graphed=1e3 * t["graphed"], speedup_graphed=t["one"] / t["graphed"])
    return row


def format_stacked(rows: list[dict[str, Any]]) -> list[str]:
    """Markdown lines for :func:`stacked_throughput` rows."""
    if not rows:
        return []
    lines = ["", "Seeds side by side (`bench --parallel K`) and CUDA graphs, timed in alternating "
             "rounds: speedup = seeds per second against one seed at a time.", "",
             "| method | data | J | K | step ms, one seed | step ms, K stacked | speedup "
             "stacked | step ms, CUDA graphs | speedup graphs |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        graphed = (f"{r['step_ms_graphed']:.2f} | {r['speedup_graphed']:.2f}x"
                   if "step_ms_graphed" in r else
                   f"failed: {r['graphed_error']} | —" if "graphed_error" in r else "— | —")
        lines.append(f"| {r['method']} | {r['dataset']} | {r['J']} | {r['k']} | "
                     f"{r['step_ms_one']:.2f} | {r['step_ms_stacked']:.2f} | "
                     f"{r['speedup_stacked']:.2f}x | {graphed} |")
    return lines

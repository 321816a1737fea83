"""``probssl bench throughput``: measured ratios against measured limits, in one process run.

Absolute times on shared machines are noisy; ratios taken side by side are not (as much). So
every figure here is paired with its reference, measured in the same run:

* **roofline**: the machine's dense fp32 matmul rate (sgemm) at sizes like the MLP preset's
  layers; the best of them is the peak used for model FLOP utilisation (MFU).
* **training** (simvae, vae, simclr, vicreg; MLP preset, MNIST-sized images, 128 images × J
  views): the trainer's step alone (``train_step`` on pre-augmented views) and end to end
  (a ``Trainer`` epoch without callbacks: batched augmentation included), in views/s and
  as MFU = model FLOPs per step (counted by
  ``torch.utils.flop_counter`` on a real forward + backward) / step time / peak.
* **augmentation**: views/s of the batched pipeline and of the same ops applied image by
  image in a Python loop (how PIL/torchvision pipelines in DataLoader workers work).
* **evaluation**: kNN over 60,000 × 10,000 embeddings of dimension 64, and the linear and
  MLP probes' 200 epochs on cached 60,000 × 64 embeddings.

Inputs are synthetic tensors of the right shapes (speed does not depend on pixel values), so
the benchmark needs no dataset.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.profiler import ProfilerActivity, profile
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils.flop_counter import FlopCounterMode

from probssl.data.augment import get_preset
from probssl.data.views import augmented_views, make_view_source
from probssl.evaluate.knn import knn_accuracy
from probssl.evaluate.probe import train_probe
from probssl.methods import build_method, make_method_config
from probssl.train.loop import Trainer, train_step
from probssl.train.optim import build_optimizer

METHODS = {"simvae": 10, "vae": 1, "simclr": 2, "vicreg": 2}  # method -> J
IMAGE_SHAPE = (1, 28, 28)


def timeit(fn: Callable[[], Any], min_seconds: float, min_calls: int = 3,
           warmup: int = 2) -> float:
    """Seconds per call: ``warmup`` untimed calls, then calls until ``min_seconds`` passed;
    the median over 3 such rounds (robust to a neighbour's burst on a shared machine)."""
    for _ in range(warmup):
        fn()
    rounds = []
    for _ in range(3):
        calls, t0 = 0, time.perf_counter()
        while calls < min_calls or time.perf_counter() - t0 < min_seconds / 3:
            fn()
            calls += 1
        rounds.append((time.perf_counter() - t0) / calls)
    return sorted(rounds)[1]


def sgemm_peak(min_seconds: float) -> dict:
    """GFLOP/s of fp32 matmuls shaped like the MLP preset's layers (M = 128 × J rows)."""
    sizes = [(1280, 784, 1024), (1280, 1024, 1024), (2560, 1024, 1024), (2048, 2048, 2048)]
    rates = {}
    for m, k, n in sizes:
        a, b = torch.randn(m, k), torch.randn(k, n)
        out = torch.empty(m, n)
        s = timeit(lambda a=a, b=b, out=out: torch.mm(a, b, out=out), min_seconds / len(sizes))
        rates[f"{m}x{k}x{n}"] = 2 * m * k * n / s / 1e9
    return {"gflops_by_shape": rates, "peak_gflops": max(rates.values()),
            "threads": torch.get_num_threads()}


class _MatmulShapes(TorchDispatchMode):
    """Records (m, k, n) of every matrix product a function runs (forward and backward)."""

    def __init__(self) -> None:
        super().__init__()
        self.shapes: list[tuple[int, int, int]] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if func is torch.ops.aten.mm.default:
            a, b = args[0], args[1]
            self.shapes.append((a.shape[0], a.shape[1], b.shape[1]))
        elif func is torch.ops.aten.addmm.default:
            a, b = args[1], args[2]
            self.shapes.append((a.shape[0], a.shape[1], b.shape[1]))
        return func(*args, **(kwargs or {}))


def matmul_bound_seconds(fn: Callable[[], Any], min_seconds: float) -> float:
    """Time the model's own matrix products would take alone: every (m, k, n) it runs,
    timed as a plain sgemm. Step time / this = overhead beyond the matmuls."""
    with _MatmulShapes() as rec:
        fn()
    total = 0.0
    counts: dict[tuple[int, int, int], int] = {}
    for sh in rec.shapes:
        counts[sh] = counts.get(sh, 0) + 1
    for (m, k, n), c in counts.items():
        a, b, out = torch.randn(m, k), torch.randn(k, n), torch.empty(m, n)
        total += c * timeit(lambda a=a, b=b, out=out: torch.mm(a, b, out=out),
                            min_seconds / max(len(counts), 1), min_calls=5)
    return total


def profile_top_ops(fn: Callable[[], Any], rows: int = 8) -> str:
    """torch.profiler's top operators by self CPU time over 5 calls of ``fn``."""

    fn()
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(5):
            fn()
    return prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=rows,
                                     max_name_column_width=40)


def count_flops(fn: Callable[[], Any]) -> int:
    """FLOPs of one call of ``fn`` as counted by ``torch.utils.flop_counter.FlopCounterMode``
    (forward and backward when ``fn`` runs both)."""
    with FlopCounterMode(display=False) as counter:
        fn()
    return int(counter.get_total_flops())


@dataclass
class MethodThroughput:
    method: str
    n_views: int
    batch: int
    step_seconds: float
    end_to_end_seconds: float
    flops_per_step: int
    peak_gflops: float
    extra: dict = field(default_factory=dict)

    @property
    def views(self) -> int:
        return self.batch * self.n_views

    def row(self) -> dict:
        step_rate = self.flops_per_step / self.step_seconds / 1e9
        e2e_rate = self.flops_per_step / self.end_to_end_seconds / 1e9
        return {"method": self.method, "J": self.n_views, "batch": self.batch,
                "views_per_s": self.views / self.end_to_end_seconds,
                "views_per_s_step": self.views / self.step_seconds,
                "gflop_per_step": self.flops_per_step / 1e9,
                "gflops_step": step_rate, "gflops_end_to_end": e2e_rate,
                "mfu_step": step_rate / self.peak_gflops,
                "mfu_end_to_end": e2e_rate / self.peak_gflops,
                # the step against its own matmuls timed alone at the same shapes
                "matmul_fraction_step": self.extra["matmul_seconds"] / self.step_seconds,
                **({"profile": self.extra["profile"]} if "profile" in self.extra else {})}


def method_throughput(name: str, n_views: int, peak: float, batch: int = 128,
                      min_seconds: float = 3.0, seed: int = 0, profile: bool = False,
                      steps_per_epoch: int = 4) -> MethodThroughput:
    """The trainer's own step (:func:`probssl.train.loop.train_step`) on pre-made views, and
    end to end the trainer's own epoch (:class:`probssl.train.loop.Trainer`: data order,
    batched augmentation, step, metric sums) with no callbacks (no logging, checkpoints or
    progress bar), over ``steps_per_epoch`` batches of synthetic images."""
    torch.manual_seed(seed)
    cfg = make_method_config(name, {"n_views": n_views}, arch="mlp", latent_dim=10)
    method = build_method(name, cfg, IMAGE_SHAPE)
    opt = build_optimizer(method, name="adam", lr=1e-4, fused=True)
    aug_cfg = get_preset("mnist")
    gen = torch.Generator().manual_seed(seed)
    images = torch.randint(0, 256, (batch * steps_per_epoch, *IMAGE_SHAPE), dtype=torch.uint8,
                           generator=gen)
    source = make_view_source("augment", images, n_views, aug_cfg, gen)
    views = source(torch.arange(batch))
    trainer = Trainer(method, opt, source, source.n_items, batch_size=batch, epochs=1,
                      seed=seed, device=torch.device("cpu"))

    def step() -> None:
        train_step(method, views, opt)

    def epoch() -> None:
        trainer.history.clear()
        trainer.run_epoch(0)

    def forward_backward() -> None:
        loss, _ = method(views)
        loss.backward()

    flops = count_flops(forward_backward)
    mm_s = matmul_bound_seconds(forward_backward, min_seconds)
    opt.zero_grad(set_to_none=True)
    step_s = timeit(step, min_seconds)
    e2e_s = timeit(epoch, min_seconds, warmup=1) / steps_per_epoch
    extra = {"matmul_seconds": mm_s}
    if profile:
        extra["profile"] = profile_top_ops(step)
    return MethodThroughput(name, n_views, batch, step_s, e2e_s, flops, peak, extra)


def per_sample_augment(images: torch.Tensor, n_views: int, cfg, gen) -> torch.Tensor:
    """The in-run reference: the same ops, one image and one view at a time."""
    out = [augmented_views(images[i:i + 1], 1, cfg, gen) for i in range(len(images))
           for _ in range(n_views)]
    return torch.cat(out)


def augmentation_throughput(preset: str, shape: tuple[int, int, int], batch: int = 128,
                            n_views: int = 10, min_seconds: float = 2.0) -> dict:
    """Views per second of the batched pipeline (``preset`` on ``batch`` synthetic uint8 images of
    ``shape``, ``n_views`` views each) and of the same ops image by image
    (:func:`per_sample_augment`), and their ratio."""
    cfg = get_preset(preset)
    gen = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (batch, *shape), dtype=torch.uint8, generator=gen)
    batched = timeit(lambda: augmented_views(images, n_views, cfg, gen), min_seconds)
    small = images[:16]  # the loop is slow; its rate per view does not depend on the batch
    looped = timeit(lambda: per_sample_augment(small, n_views, cfg, gen), min_seconds,
                    min_calls=1, warmup=1)
    batched_rate = batch * n_views / batched
    looped_rate = len(small) * n_views / looped
    return {"preset": preset, "image_shape": list(shape), "batch": batch, "J": n_views,
            "views_per_s_batched": batched_rate, "views_per_s_per_sample": looped_rate,
            "augmentation_speedup": batched_rate / looped_rate}


def evaluation_throughput(quick: bool) -> dict:
    """Seconds of kNN (k = 1..15) over 60,000 × 10,000 synthetic 64-d embeddings, and of the
    linear and MLP probes' 200 epochs (``quick``: 10 epochs timed, scaled to 200)."""
    g = torch.Generator().manual_seed(0)
    n_train, n_test, d = 60_000, 10_000, 64
    centres = torch.randn(10, d, generator=g) * 2
    y_tr = torch.randint(0, 10, (n_train,), generator=g)
    y_te = torch.randint(0, 10, (n_test,), generator=g)
    z_tr = centres[y_tr] + torch.randn(n_train, d, generator=g)
    z_te = centres[y_te] + torch.randn(n_test, d, generator=g)
    t0 = time.perf_counter()
    knn = knn_accuracy(z_tr, y_tr, z_te, y_te, range(1, 16))
    knn_s = time.perf_counter() - t0
    epochs = 10 if quick else 200
    out = {"knn_seconds": knn_s, "knn_shape": [n_train, n_test, d], "knn_best": knn["best"],
           "probe_epochs_run": epochs}
    for name, hidden in (("linear", None), ("mlp", d)):
        t0 = time.perf_counter()
        train_probe(z_tr, y_tr, z_te, y_te, hidden=hidden, epochs=epochs)
        s = time.perf_counter() - t0
        # quick mode runs 10 epochs and scales to 200 (epochs cost the same)
        out[f"{name}_probe_seconds_200_epochs"] = s * 200 / epochs
    return out


def _run_child(cmd: list[str], env: dict | None = None) -> float:
    """Run a command (it must succeed); its peak RSS in MiB.

    The peak is the child's own ``VmHWM`` (high-water resident set of its address space),
    polled from /proc: ``ru_maxrss`` from wait4 would also count this (large) benchmark
    process, whose resident set a forked child inherits until it execs.
    """

    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    status, peak_kib = Path(f"/proc/{proc.pid}/status"), 0
    while proc.poll() is None:
        try:
            for line in status.read_text().splitlines():
                if line.startswith("VmHWM:"):
                    peak_kib = max(peak_kib, int(line.split()[1]))
        except (OSError, ValueError):
            pass  # exited between poll() and the read
        time.sleep(0.05)
    err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed: {err[-2000:]}")
    return peak_kib / 1024


def _synthetic_npz(path, n: int, shape: tuple[int, ...], seed: int = 0) -> None:

    rng = np.random.default_rng(seed)
    np.savez(path, x=rng.integers(0, 256, (n, *shape), dtype=np.uint8),
             y=rng.integers(0, 10, n))


def memory_and_scaling(log: Callable[[str], None]) -> dict:
    """Peak RSS of one SimVAE epoch on MNIST- and CIFAR-sized data (synthetic .npz files of
    the real sizes), and 2-process gloo DDP against 1 process on the same total batch."""

    out: dict = {}
    py = sys.executable
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        mnist, cifar = tmp / "mnist-sized.npz", tmp / "cifar-sized.npz"
        _synthetic_npz(mnist, 10_000, (28, 28))
        _synthetic_npz(cifar, 50_000, (32, 32, 3))
        base = [py, "-m", "probssl", "train", "--method", "simvae", "--epochs", "1",
                "--device", "cpu", "--no-progress", "--lr", "1e-4"]
        for name, data, j in (("mnist_sized_10k", mnist, 10), ("cifar_sized_50k", cifar, 2)):
            t0 = time.perf_counter()
            # the MLP preset for both (a ResNet epoch on 50,000 images takes ~30 min on 2
            # CPU cores); RSS here is the data, the model and the step's views
            rss = _run_child([*base, "--dataset", f"npz:{data}", "--set", f"n_views={j}",
                                 "--set", "arch=mlp", "--out", str(tmp / name)])
            out[f"peak_rss_mib_{name}"] = rss
            out[f"epoch_seconds_{name}"] = time.perf_counter() - t0
            out[f"J_{name}"] = j
            log(f"[throughput] SimVAE epoch on {name} (J={j}): peak RSS {rss:.0f} MiB")
        # DDP: same global batch (256 images x J=2 views of simclr) on 1 and on 2 processes
        common = ["--method", "simclr", "--dataset", f"npz:{mnist}", "--epochs", "1",
                  "--device", "cpu", "--no-progress"]
        env1 = dict(os.environ)
        _run_child([py, "-m", "probssl", "train", *common, "--batch-size", "256",
                    "--out", str(tmp / "ddp1")], env1)
        env2 = dict(os.environ, OMP_NUM_THREADS=str(max(1, torch.get_num_threads() // 2)))
        _run_child([py, "-m", "torch.distributed.run", "--standalone", "--nnodes=1",
                    "--nproc_per_node=2", "-m", "probssl", "train", *common,
                    "--batch-size", "128", "--out", str(tmp / "ddp2")], env2)
        rate = {k: json.loads((tmp / k / "metrics.jsonl").read_text().splitlines()[-1])
                ["views_per_s"] for k in ("ddp1", "ddp2")}
        out.update(ddp_views_per_s_1proc=rate["ddp1"], ddp_views_per_s_2proc=rate["ddp2"],
                   ddp_scaling_efficiency=rate["ddp2"] / (2 * rate["ddp1"]),
                   ddp_speedup=rate["ddp2"] / rate["ddp1"])
        log(f"[throughput] DDP gloo 2 processes vs 1: {out['ddp_speedup']:.2f}x")
    return out


def run_throughput(quick: bool = False, methods: dict[str, int] | None = None,
                   log: Callable[[str], None] = print) -> dict:
    """The benchmark of the module docstring: the sgemm roofline, each method's step and
    end-to-end throughput and MFU (``methods``: name -> J, default :data:`METHODS`),
    augmentation and evaluation; unless ``quick`` also operator profiles, peak memory and DDP
    scaling (in subprocesses). Returns the dict :func:`format_table` lays out."""
    secs = 1.0 if quick else 4.0
    log(f"[throughput] torch {torch.__version__}, {torch.get_num_threads()} threads")
    peak = sgemm_peak(secs)
    log(f"[throughput] sgemm peak {peak['peak_gflops']:.1f} GFLOP/s")
    rows = []
    for name, j in (methods or METHODS).items():
        r = method_throughput(name, j, peak["peak_gflops"], min_seconds=secs,
                              profile=not quick and name in ("simvae", "vae")).row()
        log(f"[throughput] {name}: {r['views_per_s']:.0f} views/s end to end, MFU step "
            f"{100 * r['mfu_step']:.0f} %, end to end {100 * r['mfu_end_to_end']:.0f} %")
        rows.append(r)
    aug = [augmentation_throughput("mnist", (1, 28, 28), min_seconds=secs),
           augmentation_throughput("cifar10", (3, 32, 32), min_seconds=secs)]
    for a in aug:
        log(f"[throughput] augmentation {a['preset']}: {a['augmentation_speedup']:.0f}x the "
            "per-sample loop")
    ev = evaluation_throughput(quick)
    log(f"[throughput] kNN 60k x 10k d=64: {ev['knn_seconds']:.2f} s")
    result = {"quick": quick, "roofline": peak, "methods": rows, "augmentation": aug,
              "evaluation": ev}
    if not quick:
        result["system"] = memory_and_scaling(log)
    return result


def format_table(result: dict) -> str:
    """The markdown tables of a :func:`run_throughput` result."""
    peak = result["roofline"]["peak_gflops"]
    lines = [f"Roofline: sgemm fp32 peak {peak:.1f} GFLOP/s "
             f"({result['roofline']['threads']} threads; per shape: "
             + ", ".join(f"{k} {v:.1f}" for k, v in result["roofline"]["gflops_by_shape"].items())
             + ")", "",
             "| method | J | views/s (end to end) | views/s (step) | GFLOP/step | MFU step | "
             "MFU end to end | step vs its own matmuls |", "|---|---|---|---|---|---|---|---|"]
    for r in result["methods"]:
        lines.append(f"| {r['method']} | {r['J']} | {r['views_per_s']:.0f} | "
                     f"{r['views_per_s_step']:.0f} | {r['gflop_per_step']:.2f} | "
                     f"{100 * r['mfu_step']:.0f} % | {100 * r['mfu_end_to_end']:.0f} % | "
                     f"{100 * r['matmul_fraction_step']:.0f} % |")
    lines += ["", "| augmentation | views/s batched | views/s per-sample loop | speedup |",
              "|---|---|---|---|"]
    for a in result["augmentation"]:
        lines.append(f"| {a['preset']} {'x'.join(map(str, a['image_shape']))} | "
                     f"{a['views_per_s_batched']:.0f} | {a['views_per_s_per_sample']:.0f} | "
                     f"{a['augmentation_speedup']:.1f}x |")
    ev = result["evaluation"]
    lines += ["", f"kNN (k = 1..15) over {ev['knn_shape'][0]:,} x {ev['knn_shape'][1]:,} "
              f"embeddings, d = {ev['knn_shape'][2]}: {ev['knn_seconds']:.2f} s",
              f"Linear probe, 200 epochs on 60,000 x 64: "
              f"{ev['linear_probe_seconds_200_epochs']:.1f} s; MLP probe: "
              f"{ev['mlp_probe_seconds_200_epochs']:.1f} s"
              + (f" (measured over {ev['probe_epochs_run']} epochs, scaled to 200)"
                 if ev["probe_epochs_run"] != 200 else "")]
    if "system" in result:
        sy = result["system"]
        lines += ["", f"Peak RSS of one SimVAE epoch: {sy['peak_rss_mib_mnist_sized_10k']:.0f} "
                  f"MiB on 10,000 MNIST-sized images (J = 10), "
                  f"{sy['peak_rss_mib_cifar_sized_50k']:.0f} MiB on 50,000 CIFAR-sized "
                  f"images (J = 2); MLP preset, whole process, torch included.",
                  f"DDP (gloo, CPU) simclr, global batch 256: 1 process "
                  f"{sy['ddp_views_per_s_1proc']:.0f} views/s, 2 processes "
                  f"{sy['ddp_views_per_s_2proc']:.0f} views/s: speed-up "
                  f"{sy['ddp_speedup']:.2f}x, scaling efficiency "
                  f"{100 * sy['ddp_scaling_efficiency']:.0f} % (the 2 processes share the "
                  "same cores the single process uses)"]
    for r in result["methods"]:
        if "profile" in r:
            lines += ["", f"Top operators of one {r['method']} training step (torch.profiler, "
                      "self CPU time, 5 steps):", "", "```", r["profile"].rstrip(), "```"]
    return "\n".join(lines)


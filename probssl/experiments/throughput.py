"""``probssl bench throughput [--device cpu|cuda|auto]``: measured ratios against measured
limits, in one process run, on any device.

Absolute times on shared machines are noisy; ratios taken side by side are not (as much). So
every figure here is paired with its reference, timed in rounds alternating with it
(:func:`interleaved`), and a utilisation above 1 is reported as an invalid measurement:

* **roofline at the model's own shapes**: every matmul and convolution one training step
  runs (forward and backward, :class:`DenseOps`), each distinct one timed alone on the
  device with its inputs hot in cache; Σ count × time is the step's dense work at the best
  rate the device reaches at each shape, in the dtypes the step used (fp32 on CPU; bf16
  under the trainer's autocast on CUDA, where the same shapes are also timed in fp32 and
  TF32). MFU = model FLOPs per step (counted by ``torch.utils.flop_counter``) / step time /
  that roofline's rate. The device's best sgemm rate (fp32; on CUDA also TF32 and bf16) is
  reported beside it for context.
* **training** (simvae, vae, simclr, vicreg at their J; per dataset the paper's architecture:
  MLP on MNIST-sized, ResNet on CIFAR10- and CelebA-sized images; 128 images × J views): the
  trainer's step alone (``train_step`` on pre-augmented views) and end to end (a ``Trainer``
  epoch without callbacks: batched augmentation on the device included), in views/s and MFU,
  with peak device memory on CUDA and the projected wall time of one paper epoch and of the
  paper's protocol (its epochs × 3 seeds, one run at a time) on MNIST (60k), CIFAR10 (50k)
  and CelebA (162k).
* **augmentation**: views/s of the batched pipeline on the device and of the same ops applied
  image by image in a Python loop (how PIL/torchvision pipelines in DataLoader workers work).
* **evaluation**: kNN over 60,000 × 10,000 embeddings of dimension 64 on the device, and the
  linear and MLP probes' 200 epochs on cached 60,000 × 64 embeddings.

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


# the paper's datasets for the projections (training images); shapes, architectures and
# latent sizes come from probssl's dataset registry, J/batch/epochs from the paper preset
PAPER_DATASETS = {"mnist": 60_000, "cifar10": 50_000, "celeba": 162_770}
PAPER_SEEDS = 3


def bench_device(name: str) -> torch.device:
    """``auto`` (CUDA when there is one), ``cpu``, ``cuda`` or ``cuda:N``, checked: asking
    for CUDA on a machine without it is one user error."""
    from probssl.train.trainer import check_device  # lazy: the trainer imports much

    name = check_device(name)
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    return torch.device(name)


def _sync(device: torch.device | None) -> None:
    if device is not None and device.type == "cuda":
        torch.cuda.synchronize(device)


def interleaved(fns: dict[str, Callable[[], Any]], min_seconds: float, min_calls: int = 3,
                warmup: int = 2, device: torch.device | None = None, rounds: int = 5,
                seconds: dict[str, float] | None = None) -> dict[str, float]:
    """Seconds per call of each function, timed in alternating rounds (round r of every
    function before round r + 1 of any), the median round of each. A reference and what is
    measured against it then see the same machine state, so a neighbour's burst cannot skew
    their ratio the way timings minutes apart can. On CUDA every round ends with a
    synchronisation, so queued kernels are counted. ``seconds``: a function's own total
    time budget instead of ``min_seconds``."""
    for fn in fns.values():
        for _ in range(warmup):
            fn()
    _sync(device)
    per: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(rounds):
        for name, fn in fns.items():
            calls, t0 = 0, time.perf_counter()
            budget = (seconds or {}).get(name, min_seconds) / rounds
            while calls < min_calls or time.perf_counter() - t0 < budget:
                fn()
                calls += 1
                if device is not None and device.type == "cuda" and calls >= min_calls:
                    _sync(device)  # the clock means something only once the queue drained
            _sync(device)
            per[name].append((time.perf_counter() - t0) / calls)
    return {k: sorted(v)[len(v) // 2] for k, v in per.items()}


# ``--quick`` on a method: 3 alternating rounds (default 5; each function still at least 3
# calls a round, so the roofline's ops run with their inputs in cache) and an end-to-end
# epoch of 2 batches (default 4). On a GPU the time budget, not the call counts, sets how
# long a function is timed; on a CPU, where one epoch of a method takes a second or more,
# the call counts do. The per-sample augmentation loop runs over 4 images (default 16): its
# rate per view does not depend on how many.
QUICK_ROUNDS = 3
QUICK_STEPS_PER_EPOCH = 2
QUICK_LOOP_IMAGES = 4


def timeit(fn: Callable[[], Any], min_seconds: float, min_calls: int = 3,
           warmup: int = 2, device: torch.device | None = None) -> float:
    """Seconds per call: ``warmup`` untimed calls, then calls until ``min_seconds`` passed;
    the median over 3 such rounds (robust to a neighbour's burst on a shared machine)."""
    return interleaved({"fn": fn}, min_seconds, min_calls, warmup, device, rounds=3)["fn"]


def sgemm_peak(min_seconds: float, device: torch.device | None = None) -> dict:
    """GFLOP/s of fp32 matmuls shaped like the MLP preset's layers (M = 128 × J rows) on
    ``device``; on CUDA also with TF32 and in bfloat16 (the dtypes a GPU step can use)."""
    device = device or torch.device("cpu")
    sizes = [(1280, 784, 1024), (1280, 1024, 1024), (2560, 1024, 1024), (2048, 2048, 2048)]
    modes = {"fp32": (torch.float32, False)}
    if device.type == "cuda":
        modes.update(tf32=(torch.float32, True), bf16=(torch.bfloat16, False))
    out: dict = {"threads": torch.get_num_threads(), "device": str(device)}
    for mode, (dtype, tf32) in modes.items():
        rates = {}
        with _tf32(device, tf32):
            for m, k, n in sizes:
                a = torch.randn(m, k, device=device, dtype=dtype)
                b = torch.randn(k, n, device=device, dtype=dtype)
                c = torch.empty(m, n, device=device, dtype=dtype)
                s = timeit(lambda a=a, b=b, c=c: torch.mm(a, b, out=c),
                           min_seconds / len(sizes) / len(modes), device=device)
                rates[f"{m}x{k}x{n}"] = 2 * m * k * n / s / 1e9
        key = "" if mode == "fp32" else f"_{mode}"
        out[f"gflops_by_shape{key}"] = rates
        out[f"peak_gflops{key}"] = max(rates.values())
    return out


class _tf32:
    """TF32 matmuls and convolutions on or off for a block (CUDA only; restored after)."""

    def __init__(self, device: torch.device, on: bool) -> None:
        self.cuda, self.on = device.type == "cuda", on

    def __enter__(self):
        if self.cuda:
            self.old = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
            torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = self.on
        return self

    def __exit__(self, *exc) -> None:
        if self.cuda:
            torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = self.old


@dataclass(frozen=True)
class _TensorSpec:
    shape: tuple[int, ...]
    stride: tuple[int, ...]
    dtype: torch.dtype
    device: torch.device


# the dense ops the roofline replays: matrix products and convolutions, forward and backward
_DENSE_OPS = {"mm", "addmm", "bmm", "convolution", "convolution_backward",
              "cudnn_convolution", "mkldnn_convolution"}


class DenseOps(TorchDispatchMode):
    """Records every matmul and convolution a function runs with its arguments' shapes,
    strides and dtypes; :meth:`distinct` runs exactly those ops alone on
    fresh tensors — the roofline at the model's own shapes (what the step would cost with no
    overhead at all)."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[tuple[Any, Any, Any]] = []

    @staticmethod
    def _spec(a):
        if isinstance(a, torch.Tensor):
            return _TensorSpec(tuple(a.shape), a.stride(), a.dtype, a.device)
        if isinstance(a, (list, tuple)):
            return type(a)(DenseOps._spec(x) for x in a)
        if isinstance(a, dict):
            return {k: DenseOps._spec(v) for k, v in a.items()}
        return a

    @staticmethod
    def _make(spec, dtype):
        if isinstance(spec, _TensorSpec):
            dt = dtype if (dtype is not None and spec.dtype.is_floating_point) else spec.dtype
            # one storage as large as the strides reach (an expanded tensor's stride 0 shares
            # elements), filled, then viewed with the recorded strides
            size = 1 + sum((n - 1) * st for n, st in zip(spec.shape, spec.stride, strict=True)
                           if n > 0) if all(spec.shape) else 0
            base = torch.empty(size, dtype=dt, device=spec.device)
            base = base.normal_() if dt.is_floating_point else base.zero_()
            return base.as_strided(spec.shape, spec.stride)
        if isinstance(spec, (list, tuple)):
            return type(spec)(DenseOps._make(x, dtype) for x in spec)
        if isinstance(spec, dict):
            return {k: DenseOps._make(v, dtype) for k, v in spec.items()}
        return spec

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if func.overloadpacket.__name__ in _DENSE_OPS:
            self.calls.append((func, self._spec(args), self._spec(kwargs or {})))
        return func(*args, **(kwargs or {}))

    def distinct(self, dtype: torch.dtype | None = None) -> list[tuple[Callable[[], Any], int]]:
        """Each distinct recorded op (same function, shapes, strides and dtypes) as a function
        running it once on its own fresh tensors, with how many times the step ran it. Timed
        one by one with their inputs hot in cache, Σ count × time is the step's dense work
        at the device's best rate for each shape: a roofline the step cannot beat."""
        groups: dict[str, list] = {}
        for f, a, k in self.calls:
            key = f"{f}|{a}|{k}"
            if key in groups:
                groups[key][3] += 1
            else:
                groups[key] = [f, a, k, 1]
        out = []
        for f, a, k, count in groups.values():
            args, kwargs = self._make(a, dtype), self._make(k, dtype)
            out.append(((lambda f=f, args=args, kwargs=kwargs: f(*args, **kwargs)), count))
        return out


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


def utilisation(value: float) -> float | None:
    """A utilisation, or None when it is above 1: the reference was timed slower than the
    work it bounds, so the measurement is invalid (never a result)."""
    return value if value <= 1.0 else None


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
        mfu_step, mfu_e2e = step_rate / self.peak_gflops, e2e_rate / self.peak_gflops
        row = {"method": self.method, "J": self.n_views, "batch": self.batch,
               "views_per_s": self.views / self.end_to_end_seconds,
               "views_per_s_step": self.views / self.step_seconds,
               "step_ms": 1e3 * self.step_seconds,
               "end_to_end_ms": 1e3 * self.end_to_end_seconds,
               "gflop_per_step": self.flops_per_step / 1e9,
               "gflops_step": step_rate, "gflops_end_to_end": e2e_rate,
               "peak_gflops": self.peak_gflops,
               "mfu_step": utilisation(mfu_step), "mfu_end_to_end": utilisation(mfu_e2e),
               **self.extra}
        invalid = [k for k in ("mfu_step", "mfu_end_to_end") if row[k] is None]
        if invalid:
            row["invalid"] = (f"{', '.join(invalid)} above 1: the reference was timed slower "
                              "than the step it bounds (a noisy machine); not a result")
        return row


def method_throughput(name: str, n_views: int, peak: float | None = None, batch: int = 128,
                      min_seconds: float = 3.0, seed: int = 0, profile: bool = False,
                      steps_per_epoch: int | None = None, device: torch.device | None = None,
                      dataset: str = "mnist", amp: bool | None = None,
                      quick: bool = False) -> MethodThroughput:
    """The trainer's own step (:func:`probssl.train.loop.train_step`) on pre-made views, and
    end to end the trainer's own epoch (:class:`probssl.train.loop.Trainer`: data order,
    batched augmentation on ``device``, step, metric sums) with no callbacks (no logging,
    checkpoints or progress bar), over ``steps_per_epoch`` batches (default 4;
    :data:`QUICK_STEPS_PER_EPOCH` when ``quick``) of synthetic images shaped like
    ``dataset``'s, with its paper architecture.

    The roofline is the model's own matmuls and convolutions, each timed alone
    (:class:`DenseOps`), timed in rounds alternating with the step and the epoch
    (:func:`interleaved`); ``peak`` (GFLOP/s) replaces it when given. ``amp``: bfloat16
    autocast (default: on CUDA, as the trainer). ``quick``: :data:`QUICK_ROUNDS` rounds."""
    from probssl.data import DATASETS

    device = device or torch.device("cpu")
    amp = device.type == "cuda" if amp is None else amp
    if steps_per_epoch is None:
        steps_per_epoch = QUICK_STEPS_PER_EPOCH if quick else 4
    info = DATASETS[dataset]
    shape = tuple(info.image_shape)
    torch.manual_seed(seed)
    cfg = make_method_config(name, {"n_views": n_views}, arch=info.architecture,
                             latent_dim=info.latent_dim)
    method = build_method(name, cfg, shape).to(device)
    opt = build_optimizer(method, name="adam", lr=1e-4,
                          fused=device.type in ("cpu", "cuda"))
    aug_cfg = get_preset(info.augmentation)
    gen = torch.Generator(device=device).manual_seed(seed)
    images = torch.randint(0, 256, (batch * steps_per_epoch, *shape), dtype=torch.uint8,
                           generator=gen, device=device)
    source = make_view_source("augment", images, n_views, aug_cfg, gen)
    views = source(torch.arange(batch, device=device))
    trainer = Trainer(method, opt, source, source.n_items, batch_size=batch, epochs=1,
                      seed=seed, device=device, amp=amp)

    def step() -> None:
        train_step(method, views, opt, amp=amp)

    def epoch() -> None:
        trainer.history.clear()
        trainer.run_epoch(0)

    def forward_backward() -> None:
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
            loss, _ = method(views)
        loss.backward()

    flops = count_flops(forward_backward)
    with DenseOps() as dense:
        forward_backward()
    opt.zero_grad(set_to_none=True)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    fns: dict[str, Callable[[], Any]] = {"step": step, "epoch": epoch}
    budget: dict[str, float] = {}
    counts: dict[str, list[tuple[str, int]]] = {}
    if peak is None:
        # the dtypes the step ran in (bf16 under autocast); on CUDA the same shapes in fp32,
        # without and with TF32
        modes = [("roofline", None, None)]
        if device.type == "cuda":
            modes += [("roofline_fp32", torch.float32, False), ("roofline_tf32", torch.float32,
                                                                 True)]
        for key, dtype, tf32 in modes:
            ops = dense.distinct(dtype)
            counts[key] = []
            for i, (op, count) in enumerate(ops):
                op_name = f"{key}/{i}"
                if tf32 is None:
                    fns[op_name] = op
                else:
                    def fn(op=op, tf32=tf32) -> None:
                        with _tf32(device, tf32):
                            op()
                    fns[op_name] = fn
                budget[op_name] = 0.25 * min_seconds / len(ops)  # an op alone is quick to time
                counts[key].append((op_name, count))
    t = interleaved(fns, min_seconds, device=device, seconds=budget,
                    rounds=QUICK_ROUNDS if quick else 5)
    for key, ops in counts.items():
        t[key] = sum(count * t[op_name] for op_name, count in ops)
    extra: dict[str, Any] = {"device": str(device), "dataset": dataset,
                             "arch": info.architecture, "image_shape": list(shape),
                             "amp": amp, "roofline": "given" if peak is not None else
                             "the model's own matmuls and convolutions, each timed alone"}
    if peak is None:
        peak = flops / t["roofline"] / 1e9
        for mode in ("fp32", "tf32"):
            if f"roofline_{mode}" in t:
                extra[f"roofline_gflops_{mode}"] = flops / t[f"roofline_{mode}"] / 1e9
    if device.type == "cuda":
        extra["peak_memory_mib"] = torch.cuda.max_memory_allocated(device) / 2**20
    if profile:
        extra["profile"] = profile_top_ops(step)
    return MethodThroughput(name, n_views, batch, t["step"], t["epoch"] / steps_per_epoch,
                            flops, peak, extra)


def projections(row: dict, dataset: str) -> dict:
    """Projected wall time of one paper epoch and of the paper's protocol (its epochs × 3
    seeds) on the benchmarked device, from the measured end-to-end step of ``row``."""
    from probssl.config import preset_values

    train, _ = preset_values("paper", row["method"], dataset)
    steps = -(-PAPER_DATASETS[dataset] // train["batch_size"])
    epoch_s = steps * row["end_to_end_ms"] / 1e3
    return {"paper_epochs": train["epochs"], "paper_epoch_seconds": epoch_s,
            "paper_protocol_hours": epoch_s * train["epochs"] * PAPER_SEEDS / 3600,
            "paper_train_images": PAPER_DATASETS[dataset]}



def per_sample_augment(images: torch.Tensor, n_views: int, cfg, gen) -> torch.Tensor:
    """The in-run reference: the same ops, one image and one view at a time."""
    out = [augmented_views(images[i:i + 1], 1, cfg, gen) for i in range(len(images))
           for _ in range(n_views)]
    return torch.cat(out)


def augmentation_throughput(preset: str, shape: tuple[int, int, int], batch: int = 128,
                            n_views: int = 10, min_seconds: float = 2.0,
                            device: torch.device | None = None, loop_images: int = 16) -> dict:
    """Views per second of the batched pipeline (``preset`` on ``batch`` synthetic uint8 images of
    ``shape``, ``n_views`` views each, on ``device``) and of the same ops image by image
    (:func:`per_sample_augment`, over the first ``loop_images`` images), and their ratio."""
    device = device or torch.device("cpu")
    cfg = get_preset(preset)
    gen = torch.Generator(device=device).manual_seed(0)
    images = torch.randint(0, 256, (batch, *shape), dtype=torch.uint8, generator=gen,
                           device=device)
    # the loop is slow; its rate per view does not depend on the batch
    small = images[:loop_images]
    t = interleaved({"batched": lambda: augmented_views(images, n_views, cfg, gen),
                     "looped": lambda: per_sample_augment(small, n_views, cfg, gen)},
                    min_seconds, min_calls=1, warmup=1, device=device, rounds=3)
    batched, looped = t["batched"], t["looped"]
    batched_rate = batch * n_views / batched
    looped_rate = len(small) * n_views / looped
    return {"preset": preset, "image_shape": list(shape), "batch": batch, "J": n_views,
            "views_per_s_batched": batched_rate, "views_per_s_per_sample": looped_rate,
            "augmentation_speedup": batched_rate / looped_rate, "device": str(device)}


def evaluation_throughput(quick: bool, device: torch.device | None = None) -> dict:
    """Seconds of kNN (k = 1..15) over 60,000 × 10,000 synthetic 64-d embeddings, and of the
    linear and MLP probes' 200 epochs (``quick``: 4 epochs timed, scaled to 200), on
    ``device``."""
    device = device or torch.device("cpu")
    g = torch.Generator().manual_seed(0)
    n_train, n_test, d = 60_000, 10_000, 64
    centres = torch.randn(10, d, generator=g) * 2
    y_tr = torch.randint(0, 10, (n_train,), generator=g)
    y_te = torch.randint(0, 10, (n_test,), generator=g)
    z_tr = centres[y_tr] + torch.randn(n_train, d, generator=g)
    z_te = centres[y_te] + torch.randn(n_test, d, generator=g)
    on_device = [t.to(device) for t in (z_tr, y_tr, z_te, y_te)]
    _sync(device)
    t0 = time.perf_counter()
    knn = knn_accuracy(*on_device, range(1, 16))
    _sync(device)
    knn_s = time.perf_counter() - t0
    epochs = 4 if quick else 200
    out = {"knn_seconds": knn_s, "knn_shape": [n_train, n_test, d], "knn_best": knn["best"],
           "probe_epochs_run": epochs, "device": str(device)}
    for name, hidden in (("linear", None), ("mlp", d)):
        # untimed: the first probe's one-off costs (lazy imports of the fused optimiser, first
        # kernels) are no part of 200 epochs, and quick mode would scale them by 50
        train_probe(z_tr[:256], y_tr[:256], z_te[:256], y_te[:256], hidden=hidden, epochs=1,
                    device=device)
        _sync(device)
        t0 = time.perf_counter()
        # the probe takes host arrays and trains on ``device`` (its copy is timed too)
        train_probe(z_tr, y_tr, z_te, y_te, hidden=hidden, epochs=epochs, device=device)
        _sync(device)
        s = time.perf_counter() - t0
        # quick mode runs 4 epochs and scales to 200 (epochs cost the same; the probe's
        # fixed cost, standardising and scoring, is milliseconds)
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
                   log: Callable[[str], None] = print, device: str | torch.device = "cpu",
                   datasets: list[str] | None = None) -> dict:
    """The benchmark of the module docstring on ``device``: the sgemm reference, each
    (method, dataset)'s step and end-to-end throughput and MFU against the roofline at its
    own shapes (``methods``: name -> J, default :data:`METHODS`; ``datasets``: of
    :data:`PAPER_DATASETS`, default MNIST on CPU and all three on CUDA) with the projected
    wall time of the paper's protocol, augmentation and evaluation; unless ``quick`` also
    operator profiles, peak memory and DDP scaling (CPU, in subprocesses). Returns the dict
    :func:`format_table` lays out."""
    device = bench_device(str(device)) if not isinstance(device, torch.device) else device
    datasets = datasets or (["mnist"] if device.type == "cpu" else list(PAPER_DATASETS))
    secs = 1.0 if quick else 4.0
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    log(f"[throughput] torch {torch.__version__}, {device} ({name}), "
        f"{torch.get_num_threads()} threads")
    peak = sgemm_peak(secs, device)
    log(f"[throughput] sgemm fp32 peak {peak['peak_gflops']:.1f} GFLOP/s"
        + (f", bf16 {peak['peak_gflops_bf16']:.1f}" if "peak_gflops_bf16" in peak else ""))
    rows = []
    for dataset in datasets:
        for method, j in (methods or METHODS).items():
            r = method_throughput(method, j, min_seconds=secs, device=device, dataset=dataset,
                                  profile=not quick and device.type == "cpu"
                                  and method in ("simvae", "vae"), quick=quick).row()
            r.update(projections(r, dataset))
            r["mfu_vs_sgemm_peak"] = r["gflops_end_to_end"] / peak.get(
                "peak_gflops_bf16" if r["amp"] else "peak_gflops", peak["peak_gflops"])
            shown = ("INVALID (" + r["invalid"] + ")") if "invalid" in r else (
                f"MFU step {100 * r['mfu_step']:.0f} %, end to end "
                f"{100 * r['mfu_end_to_end']:.0f} %")
            log(f"[throughput] {method} on {dataset}-sized data: {r['views_per_s']:.0f} "
                f"views/s end to end, {shown}; paper protocol "
                f"{r['paper_protocol_hours']:.1f} h")
            rows.append(r)
    # seeds side by side (bench --parallel 3) and, on CUDA, CUDA graphs for one seed
    from probssl.experiments.stacked_throughput import stacked_throughput

    stacked = []
    chosen = dict(list((methods or METHODS).items())[:1] if quick else (methods or METHODS))
    for method, j in chosen.items():
        st = stacked_throughput(method, j, 3, device=device, min_seconds=secs,
                                rounds=QUICK_ROUNDS if quick else 5,
                                batch=32 if quick and device.type == "cpu" else 128)
        log(f"[throughput] {method}: 3 seeds stacked {st['speedup_stacked']:.2f}x one at a "
            "time" + (f", CUDA graphs {st['speedup_graphed']:.2f}x"
                      if "speedup_graphed" in st else ""))
        stacked.append(st)
    loop = QUICK_LOOP_IMAGES if quick else 16
    aug = [augmentation_throughput("mnist", (1, 28, 28), min_seconds=secs, device=device,
                                   loop_images=loop),
           augmentation_throughput("cifar10", (3, 32, 32), min_seconds=secs, device=device,
                                   loop_images=loop)]
    for a in aug:
        log(f"[throughput] augmentation {a['preset']}: {a['augmentation_speedup']:.0f}x the "
            "per-sample loop")
    ev = evaluation_throughput(quick, device)
    log(f"[throughput] kNN 60k x 10k d=64: {ev['knn_seconds']:.2f} s")
    result = {"quick": quick, "device": str(device), "device_name": name, "roofline": peak,
              "methods": rows, "stacked": stacked, "augmentation": aug, "evaluation": ev}
    if not quick and device.type == "cpu":
        result["system"] = memory_and_scaling(log)
    return result


def _pct(v: float | None) -> str:
    return "invalid" if v is None else f"{100 * v:.0f} %"


def _hours(h: float) -> str:
    return f"{h * 60:.0f} min" if h < 1 else f"{h:.1f} h"


def format_table(result: dict) -> str:
    """The markdown tables of a :func:`run_throughput` result."""
    roof = result["roofline"]
    peak = roof["peak_gflops"]
    lines = [f"Device: {result.get('device', 'cpu')} ({result.get('device_name', 'CPU')}). "
             f"Reference: sgemm fp32 peak {peak:.1f} GFLOP/s "
             + "".join(f", {m} {roof[f'peak_gflops_{m}']:.1f}" for m in ("tf32", "bf16")
                       if f"peak_gflops_{m}" in roof)
             + f"({roof['threads']} CPU threads; fp32 per shape: "
             + ", ".join(f"{k} {v:.1f}" for k, v in roof["gflops_by_shape"].items()) + ")",
             "", "MFU = model FLOPs per step (forward + backward, counted) / time, against the "
             "roofline at the model's own shapes: its matmuls and convolutions, each timed "
             "alone on the device with its inputs in cache, in rounds alternating with the "
             "step (a utilisation above 1 is reported as invalid, never as a result).", "",
             "| method | data | arch | J | views/s (end to end) | step ms | GFLOP/step | "
             "roofline GFLOP/s | MFU step | MFU end to end | vs sgemm peak | peak MiB | "
             "paper epoch | paper protocol (epochs × 3 seeds) |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in result["methods"]:
        mem = f"{r['peak_memory_mib']:.0f}" if "peak_memory_mib" in r else "—"
        lines.append(f"| {r['method']} | {r.get('dataset', 'mnist')} | {r.get('arch', 'mlp')} | "
                     f"{r['J']} | {r['views_per_s']:.0f} | {r['step_ms']:.1f} | "
                     f"{r['gflop_per_step']:.2f} | {r['peak_gflops']:.0f} | "
                     f"{_pct(r['mfu_step'])} | {_pct(r['mfu_end_to_end'])} | "
                     f"{100 * r['mfu_vs_sgemm_peak']:.0f} % | {mem} | "
                     f"{r['paper_epoch_seconds']:.0f} s | "
                     f"{_hours(r['paper_protocol_hours'])} ({r['paper_epochs']}) |")
    by_data: dict[str, list[dict]] = {}
    for r in result["methods"]:
        by_data.setdefault(r.get("dataset", "mnist"), []).append(r)
    lines.append("")
    for d, rs in by_data.items():
        total = sum(r["paper_protocol_hours"] for r in rs)
        lines.append(f"Projected paper column on {d} ({rs[0]['paper_train_images']:,} training "
                     f"images; {', '.join(r['method'] for r in rs)} × {PAPER_SEEDS} seeds, "
                     f"one run at a time): {_hours(total)}.")
    invalid = [r for r in result["methods"] if "invalid" in r]
    if invalid:
        lines += [""] + [f"INVALID measurement for {r['method']} on {r['dataset']}: "
                         f"{r['invalid']}." for r in invalid]
    from probssl.experiments.stacked_throughput import format_stacked

    lines += format_stacked(result.get("stacked", []))
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


"""PyTorch DDP set-up for runs launched by ``torchrun`` (no home-made distribution).

Tearing a process group down safely (torch 2.13, gloo)
-----------------------------------------------------
A DDP gradient all-reduce is issued from inside ``loss.backward()``, where torch stashes a
Python object (the ``contextvars`` context, ``torch.autograd.graph._engine_run_backward``) in
the thread-local state that gloo's ``AsyncWork`` captures. Whichever thread drops the last
reference to that work must take the GIL to release the Python object. When it is a gloo
worker thread (``pt_gloo_runloop``) and the main thread has already started interpreter
finalisation, CPython 3.11 ends the worker with ``pthread_exit``; the forced unwind meets the
``noexcept`` run loop and libstdc++ calls ``std::terminate``: "terminate called without an
active exception", SIGABRT, after all results were saved (seen in gdb: ``runLoop ->
~AsyncAllreduceWork -> ~ThreadLocalState -> SafePyObject decref -> take_gil ->
PyThread_exit_thread``). ``destroy_process_group`` does not prevent it: after DDP has used a
gloo group its worker threads outlive the call (the group's destructor never runs).

:func:`shutdown` therefore (1) drops the DDP wrapper (its reducer holds the last works) and
collects reference cycles while the interpreter is fully alive, (2) waits in a barrier —
the main thread releases the GIL while it waits, so the worker threads finish releasing every
earlier work — and only then (3) destroys the group. :func:`exit_process` is the last line of
defence for our own entry points under torchrun: it flushes and leaves with ``os._exit``, so
interpreter finalisation (the only time the abort can happen) never runs.
"""

from __future__ import annotations

import gc
import os
import sys
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def init_distributed(device_kind: str) -> DistInfo:
    """Join the process group torchrun set up (env:// rendezvous); single process otherwise.

    Backend: NCCL when training on CUDA, gloo on CPU.
    """
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistInfo()
    if not dist.is_initialized():
        backend = "nccl" if device_kind == "cuda" else "gloo"
        dist.init_process_group(backend=backend)
    return DistInfo(dist.get_rank(), dist.get_world_size(),
                    int(os.environ.get("LOCAL_RANK", "0")))


def all_reduce_mean(values: dict[str, float], info: DistInfo,
                    device: torch.device) -> dict[str, float]:
    """Each value averaged over the ranks (one float64 all-reduce); ``values`` itself when not
    distributed or empty."""
    if not info.enabled or not values:
        return values
    keys = sorted(values)
    t = torch.tensor([values[k] for k in keys], dtype=torch.float64, device=device)
    dist.all_reduce(t)
    t /= info.world_size
    return dict(zip(keys, t.tolist(), strict=True))


def any_true(flag: torch.Tensor, info: DistInfo) -> bool:
    """True on every rank if ``flag`` is true on any rank (so all ranks stop together)."""
    if not info.enabled:
        return bool(flag)
    t = flag.to(torch.float32).reshape(1)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item() > 0)


def gather_objects(obj: Any, info: DistInfo) -> list[Any]:
    """[obj of rank 0, obj of rank 1, ...] on every rank; [obj] in a single process."""
    if not info.enabled:
        return [obj]
    out: list[Any] = [None] * info.world_size
    dist.all_gather_object(out, obj)
    return out


def barrier(info: DistInfo) -> None:
    """Wait until every rank gets here (nothing to do outside DDP)."""
    if info.enabled:
        dist.barrier()


def shutdown(info: DistInfo | None = None, drain: bool = True) -> None:
    """Tear the process group down so the process can exit cleanly (module docstring).

    Callers drop their own references to DDP wrappers first; this function collects what
    is left, drains the gloo worker threads with a barrier (``drain``: only when every rank
    reaches this point together — after an error on one rank a barrier would wait for peers
    that are elsewhere), then destroys the group. Safe to call twice.
    """
    if not dist.is_available() or not dist.is_initialized():
        return
    if info is not None and not info.enabled:
        return
    gc.collect()  # a DDP wrapper caught in a reference cycle releases its reducer now
    if drain:
        dist.barrier()  # GIL released while waiting: workers finish destroying old works
        gc.collect()
    dist.destroy_process_group()


def joined_process_group() -> bool:
    """True if this process was launched by torchrun with more than one process."""
    try:
        return int(os.environ.get("WORLD_SIZE", "1")) > 1
    except ValueError:
        return False


def exit_process(code: int) -> None:
    """Flush stdio and leave without interpreter finalisation (module docstring): under
    torchrun a finished job can then never abort at exit. Files are already closed and
    fsynced by the code that wrote them."""
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except Exception:  # a closed pipe: nothing more can be said anyway
            pass
    os._exit(code)


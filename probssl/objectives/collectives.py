"""Collectives for losses that need the whole (multi-process) batch."""

from __future__ import annotations

import torch
import torch.distributed as dist


def gather_with_grad(t: torch.Tensor) -> tuple[torch.Tensor, int]:
    """Concatenate ``t`` (N, ...) from every rank along dim 0, keeping gradients, and return
    it with this rank's offset into it. Single process: (t, 0).

    Uses the autograd-aware ``torch.distributed.nn.functional.all_gather``: the backward pass
    sums every rank's gradient for this rank's slice, so a loss computed on the local rows
    against the global batch, averaged by DDP, has exactly the gradient of the same loss on the
    concatenated batch in one process (plain ``dist.all_gather`` would drop the cross-rank
    terms; libraries that rescale by world size instead got 1/world_size gradient bugs).

        >>> z, offset = gather_with_grad(torch.ones(4, 3))  # one process
        >>> z.shape, offset
        (torch.Size([4, 3]), 0)
    """
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return t, 0
    from torch.distributed.nn.functional import all_gather  # lazy: only under DDP

    sizes = [torch.zeros(1, dtype=torch.long, device=t.device)
             for _ in range(dist.get_world_size())]
    dist.all_gather(sizes, torch.tensor([len(t)], device=t.device))
    if len({int(s) for s in sizes}) != 1:
        raise RuntimeError("gather_with_grad needs the same batch size on every rank; got "
                           f"{[int(s) for s in sizes]}")
    parts = all_gather(t.contiguous())
    return _ContiguousGrad.apply(torch.cat(parts)), dist.get_rank() * len(t)


class _ContiguousGrad(torch.autograd.Function):
    """Identity whose backward makes the gradient contiguous: all_gather's backward hands
    slices of it to all_to_all, and gloo silently garbles non-contiguous tensors there (seen
    with an einsum-based covariance term; caught by tests/objectives/test_ddp_losses.py)."""

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        return grad.contiguous()

"""Optimisers and learning-rate schedules, chosen by name from the configuration.

Why each choice exists:

* ``adam`` — Adam (Kingma & Ba, arXiv:1412.6980), what the paper's VAEs and SimVAE are trained
  with. With ``weight_decay == 0`` it is built exactly as the trainer always built it (one
  group, the model's trainable parameters in order), so existing runs stay bit-identical.
* ``adamw`` — Adam with decoupled weight decay (Loshchilov & Hutter, arXiv:1711.05101), for
  when weight decay is wanted with an adaptive optimiser; biases and normalisation parameters
  are not decayed.
* ``sgd`` — SGD with momentum (no Nesterov), the optimiser of MoCo (He et al.,
  arXiv:1911.05722) and of linear probes in the SSL literature.
* ``lars`` — LARS (You et al., arXiv:1708.03888), SGD-momentum with a per-layer trust ratio,
  for SimCLR (arXiv:2002.05709) and VICReg (arXiv:2105.04906) at large batch sizes, where plain
  SGD diverges unless the learning rate is tiny. Biases and normalisation parameters are
  neither decayed nor adapted (the SimCLR / BYOL / VICReg / solo-learn convention).

Schedules (stepped once per optimiser step, not per epoch):

* ``constant`` — the base learning rate throughout, optionally after a linear warmup.
* ``warmup-cosine`` — linear warmup then cosine decay to ``final_lr_ratio`` times the base rate
  (Goyal et al., arXiv:1706.02677 for the warmup; Loshchilov & Hutter, arXiv:1608.03983 for the
  cosine), the schedule of SimCLR, BYOL and VICReg.

This module depends only on torch and :mod:`probssl.errors`, so the trainer, the config and the
methods can all import it without cycles.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import torch
from torch import nn

from probssl.errors import UserError

OPTIMIZERS = ("adam", "adamw", "sgd", "lars")
SCHEDULES = ("constant", "warmup-cosine")

# Layers whose parameters (scale and shift) are never weight-decayed: decaying them shrinks
# the normalised activations towards zero, which the next layer must then undo.
_NORM_TYPES: tuple[type[nn.Module], ...] = (
    nn.modules.batchnorm._BatchNorm,
    nn.modules.instancenorm._InstanceNorm,
    nn.LayerNorm,
    nn.GroupNorm,
    nn.LocalResponseNorm,
) + ((nn.RMSNorm,) if hasattr(nn, "RMSNorm") else ())


def _number(name: str, value: Any) -> float:
    """``value`` as a float, or one UserError line naming the setting (bools and NaN refused)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise UserError(f"{name} must be a finite number, got {value!r}")
    return float(value)


def _integer(name: str, value: Any) -> int:
    """``value`` as an int, or one UserError line naming the setting (bools refused)."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise UserError(f"{name} must be an integer, got {value!r}")
    return value


def param_groups(module: nn.Module, weight_decay: float,
                 exclude_bias_and_norm: bool = True) -> list[dict[str, Any]]:
    """Split ``module``'s trainable parameters into a decayed and a non-decayed group.

    Biases, every parameter of a normalisation layer (BatchNorm*, InstanceNorm*, LayerNorm,
    GroupNorm, RMSNorm) and any parameter with at most one dimension (a learned temperature or
    scale, a 1-D gain) get ``weight_decay = 0``: decaying them does not regularise the function
    (they do not multiply inputs) and hurts SSL training, which is why SimCLR, BYOL, VICReg and
    solo-learn all exclude them. Order within each group follows ``module.parameters()``;
    shared parameters appear once; frozen parameters (``requires_grad=False``) are left out;
    an empty group is dropped. With ``exclude_bias_and_norm=False`` everything trainable is one
    group with ``weight_decay``.
    """
    weight_decay = _number("weight_decay", weight_decay)
    if not exclude_bias_and_norm:
        trainable = [p for p in module.parameters() if p.requires_grad]
        return [{"params": trainable, "weight_decay": weight_decay}] if trainable else []
    decay, keep = _split(module)
    groups = []
    if decay:
        groups.append({"params": decay, "weight_decay": weight_decay})
    if keep:
        groups.append({"params": keep, "weight_decay": 0.0})
    return groups


def _split(module: nn.Module) -> tuple[list[nn.Parameter], list[nn.Parameter]]:
    """(to decay, not to decay): the trainable parameters in ``module.parameters()`` order."""
    no_decay: set[int] = set()
    for sub in module.modules():
        for name, p in sub.named_parameters(recurse=False):
            if isinstance(sub, _NORM_TYPES) or name.endswith("bias") or p.ndim <= 1:
                no_decay.add(id(p))
    trainable = [p for p in module.parameters() if p.requires_grad]
    return ([p for p in trainable if id(p) not in no_decay],
            [p for p in trainable if id(p) in no_decay])


class LARS(torch.optim.Optimizer):
    """Layer-wise Adaptive Rate Scaling (You, Gitman & Ginsburg 2017, arXiv:1708.03888).

    Why: at the batch sizes SimCLR and VICReg use, one global learning rate is too large for
    some layers and too small for others; LARS rescales each parameter tensor's step by how
    large the weights are relative to their gradient, so every layer moves by a similar
    relative amount. Per parameter tensor ``w`` with gradient ``g`` and each step::

        d     = g + weight_decay * w
        ratio = trust_coefficient * ||w|| / (||g|| + weight_decay * ||w|| + eps)
                (1 when ||w|| == 0 or ||g|| == 0: a zero-initialised or unused tensor
                 still moves, as in the SimCLR / solo-learn implementations)
        d     = ratio * d
        buf   = d                      on the first step
        buf   = momentum * buf + d     afterwards (no dampening, no Nesterov)
        w     = w - lr * buf

    For a group with ``lars_exclude=True`` (biases and normalisation parameters; see
    :func:`param_groups`) the ratio is skipped: that group is exactly ``torch.optim.SGD`` with
    the same momentum and weight decay. The momentum buffer is stored as
    ``state[p]["momentum_buffer"]`` like SGD's, so checkpoints look alike.
    """

    def __init__(self, params: Iterable[Any], lr: float, momentum: float = 0.9,
                 weight_decay: float = 0.0, trust_coefficient: float = 0.001,
                 eps: float = 1e-8) -> None:
        if _number("lr", lr) <= 0:
            raise UserError(f"lr must be > 0, got {lr!r}")
        if not 0 <= _number("momentum", momentum) < 1:
            raise UserError(f"momentum must be in [0, 1), got {momentum!r}")
        if _number("weight_decay", weight_decay) < 0:
            raise UserError(f"weight_decay must be >= 0, got {weight_decay!r}")
        if _number("trust_coefficient", trust_coefficient) <= 0:
            raise UserError(f"trust_coefficient must be > 0, got {trust_coefficient!r}")
        if _number("eps", eps) < 0:
            raise UserError(f"eps must be >= 0, got {eps!r}")
        defaults = dict(lr=float(lr), momentum=float(momentum), weight_decay=float(weight_decay),
                        trust_coefficient=float(trust_coefficient), eps=float(eps),
                        lars_exclude=False)
        super().__init__(params, defaults)

    @torch.no_grad()
    def step(self, closure: Callable[[], Any] | None = None) -> Any:  # type: ignore[override]
        """One LARS update of every parameter that has a gradient; returns the closure's loss."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            lr, momentum, wd = group["lr"], group["momentum"], group["weight_decay"]
            eta, eps, exclude = group["trust_coefficient"], group["eps"], group["lars_exclude"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                g = p.grad
                if g.is_sparse:
                    raise RuntimeError("LARS does not support sparse gradients")
                d = g.add(p, alpha=wd) if wd != 0 else g
                if not exclude:
                    # Norms and the ratio stay on the device (no .item()): no host sync.
                    w_norm = torch.linalg.vector_norm(p)
                    g_norm = torch.linalg.vector_norm(g)
                    ratio = torch.where((w_norm > 0) & (g_norm > 0),
                                        eta * w_norm / (g_norm + wd * w_norm + eps),
                                        torch.ones_like(w_norm))
                    d = d * ratio
                if momentum != 0:
                    state = self.state[p]
                    buf = state.get("momentum_buffer")
                    if buf is None:
                        buf = state["momentum_buffer"] = d.detach().clone()
                    else:
                        buf.mul_(momentum).add_(d)
                    d = buf
                p.add_(d, alpha=-lr)
        return loss


def build_optimizer(module: nn.Module, *, name: str, lr: float, weight_decay: float = 0.0,
                    momentum: float = 0.9, betas: Sequence[float] = (0.9, 0.999),
                    eps: float = 1e-8, fused: bool | None = None,
                    decay_bias_and_norm: bool | None = None) -> torch.optim.Optimizer:
    """The optimiser ``name`` (one of :data:`OPTIMIZERS`) over ``module``'s trainable parameters.

    ``momentum`` is used by sgd and lars; ``betas``/``eps`` by adam and adamw; ``fused`` only by
    adam and adamw (None lets torch choose its implementation).

    ``decay_bias_and_norm`` says whether biases and normalisation parameters are weight-decayed
    too. None (the default) keeps each optimiser's convention: True for adam — one group with
    torch's coupled L2 decay on everything, exactly what the trainer has always built, so old
    configs reproduce — and False for adamw, sgd and lars (the SSL convention, see
    :func:`param_groups`). With ``weight_decay == 0`` adam is always the single plain list, so
    that its results stay bit-identical to the trainer's historical ``torch.optim.Adam``.
    For lars, the non-decayed group is also excluded from the trust-ratio adaptation.
    """
    if name not in OPTIMIZERS:
        raise UserError(f"optimizer {name!r} is not one of: {', '.join(OPTIMIZERS)}")
    lr = _number("lr", lr)
    if lr <= 0:
        raise UserError(f"lr must be > 0, got {lr!r}")
    weight_decay = _number("weight_decay", weight_decay)
    if weight_decay < 0:
        raise UserError(f"weight_decay must be >= 0, got {weight_decay!r}")
    if not 0 <= _number("momentum", momentum) < 1:
        raise UserError(f"momentum must be in [0, 1), got {momentum!r}")
    if (isinstance(betas, (str, bytes)) or not isinstance(betas, Sequence) or len(betas) != 2
            or not all(0 <= _number("betas", b) < 1 for b in betas)):
        raise UserError(f"betas must be two numbers in [0, 1), got {betas!r}")
    betas_t = (float(betas[0]), float(betas[1]))
    if _number("eps", eps) <= 0:
        raise UserError(f"eps must be > 0, got {eps!r}")
    if fused is not None and not isinstance(fused, bool):
        raise UserError(f"fused must be true, false or unset, got {fused!r}")

    if decay_bias_and_norm is None:
        decay_bias_and_norm = name == "adam"
    params_list = [p for p in module.parameters() if p.requires_grad]
    if not params_list:
        raise UserError(f"optimizer {name!r}: the model has no trainable parameters")

    if name == "adam":
        if weight_decay == 0:
            # The trainer's historical call (betas default to torch's own (0.9, 0.999)): one
            # plain list in module order, so results stay bit-identical.
            return torch.optim.Adam(params_list, lr=lr, betas=betas_t, eps=eps, weight_decay=0.0,
                                    fused=fused)
        if decay_bias_and_norm:
            return torch.optim.Adam(params_list, lr=lr, betas=betas_t, eps=eps,
                                    weight_decay=weight_decay, fused=fused)
        return torch.optim.Adam(param_groups(module, weight_decay), lr=lr, betas=betas_t,
                                eps=eps, weight_decay=weight_decay, fused=fused)
    if name == "lars":
        if decay_bias_and_norm:
            groups = [{"params": params_list, "weight_decay": weight_decay}]
        else:
            # Biases and norms: neither decayed nor adapted (plain SGD-momentum).
            decay, keep = _split(module)
            groups = [{"params": ps, "weight_decay": wd, "lars_exclude": excl}
                      for ps, wd, excl in ((decay, weight_decay, False), (keep, 0.0, True))
                      if ps]
        return LARS(groups, lr=lr, momentum=momentum, weight_decay=weight_decay)
    groups = param_groups(module, weight_decay, exclude_bias_and_norm=not decay_bias_and_norm)
    if name == "adamw":
        return torch.optim.AdamW(groups, lr=lr, betas=betas_t, eps=eps,
                                 weight_decay=weight_decay, fused=fused)
    return torch.optim.SGD(groups, lr=lr, momentum=momentum, weight_decay=weight_decay,
                           nesterov=False)


class _LrFactor:
    """The multiplicative learning-rate factor at a step, for ``LambdaLR``.

    A module-level class rather than a lambda for two reasons: it pickles, and LambdaLR saves
    a callable object's ``__dict__`` in its ``state_dict`` — so a resumed schedule is exactly
    the saved one (its settings come back with the checkpoint; a changed setting must be caught
    by the caller's config check, not by this class).
    """

    def __init__(self, name: str, total_steps: int, warmup_steps: int,
                 final_lr_ratio: float) -> None:
        self.name = name
        self.total_steps = total_steps
        self.warmup_steps = warmup_steps
        self.final_lr_ratio = final_lr_ratio

    def __call__(self, step: int) -> float:
        """Factor for the optimiser step numbered ``step`` (0 = the first)."""
        step = max(int(step), 0)
        if step < self.warmup_steps:
            # (s + 1) / W: the first step already moves (lr/W), the last warmup step is at 1.
            return (step + 1) / self.warmup_steps
        if self.name == "constant":
            return 1.0
        span = self.total_steps - self.warmup_steps
        # all-warmup (span 0): already at the end of the decay once the warmup is over
        progress = 1.0 if span == 0 else min((step - self.warmup_steps) / span, 1.0)
        r = self.final_lr_ratio
        return r + (1.0 - r) * 0.5 * (1.0 + math.cos(math.pi * progress))


def build_schedule(optimizer: torch.optim.Optimizer, *, name: str, total_steps: int,
                   warmup_steps: int = 0,
                   final_lr_ratio: float = 0.0) -> torch.optim.lr_scheduler.LambdaLR:
    """The learning-rate schedule ``name`` (one of :data:`SCHEDULES`), stepped once per
    optimiser step.

    The factor at step ``s`` (``s`` = scheduler steps taken so far, 0 for the first optimiser
    step) is, with ``W = warmup_steps``, ``T = total_steps``, ``r = final_lr_ratio``:

    * ``s < W``: ``(s + 1) / W`` (linear warmup; never exactly 0, so no step is wasted);
    * constant, ``s >= W``: ``1``;
    * warmup-cosine, ``s >= W``: ``r + (1 - r) * (1 + cos(pi * min((s - W) / (T - W), 1))) / 2``
      — 1 at ``s = W``, ``r`` at ``s = T`` and after (the ``min`` is 1 when ``T == W``), so
      the last optimiser step (``s = T - 1``) runs slightly above ``r`` rather than wasting a
      step at ``r = 0``.

    Every group's learning rate is its base (``initial_lr``) rate times the factor. For an exact
    resume, build the optimiser and this schedule, then load the optimiser's and the schedule's
    ``state_dict`` (in that order).
    """
    if name not in SCHEDULES:
        raise UserError(f"lr schedule {name!r} is not one of: {', '.join(SCHEDULES)}")
    total_steps = _integer("total_steps", total_steps)
    if total_steps < 1:
        raise UserError(f"total_steps must be >= 1, got {total_steps}")
    warmup_steps = _integer("warmup_steps", warmup_steps)
    if not 0 <= warmup_steps <= total_steps:
        raise UserError(f"warmup_steps must be in [0, total_steps={total_steps}], "
                        f"got {warmup_steps}")
    final_lr_ratio = _number("final_lr_ratio", final_lr_ratio)
    if not 0 <= final_lr_ratio <= 1:
        raise UserError(f"final_lr_ratio must be in [0, 1], got {final_lr_ratio!r}")
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, _LrFactor(name, total_steps, warmup_steps, final_lr_ratio))

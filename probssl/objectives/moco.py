r"""The MoCo v2 contrastive loss (He et al. 2020; Chen et al. 2020b).

Queries q (N, D) from the online encoder, keys k (N, D) from the momentum encoder (no
gradient), and a queue (K, D) of earlier keys as negatives; all normalised:

.. math::
    \ell_n = -\log \frac{e^{q_n·k_n/τ}}{e^{q_n·k_n/τ} + \sum_{m} e^{q_n·\mathrm{queue}_m/τ}}
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def moco_infonce(q: torch.Tensor, k: torch.Tensor, queue: torch.Tensor,
                 temperature: float = 0.2) -> torch.Tensor:
    """MoCo's loss, He et al. 2020 (arXiv:1911.05722) Eq. 1: the cross-entropy of picking each
    query's key among [key, queue] with logits q·k/τ, everything L2-normalised and no gradient
    through the keys. q, k (N, D), queue (K, D) -> scalar, the mean over the N queries."""
    q = F.normalize(q.float(), dim=-1)
    k = F.normalize(k.float(), dim=-1).detach()
    pos = (q * k).sum(-1, keepdim=True)
    neg = q @ F.normalize(queue.float(), dim=-1).T
    logits = torch.cat([pos, neg], dim=1) / temperature
    return F.cross_entropy(logits, torch.zeros(len(q), dtype=torch.long, device=q.device))


@torch.no_grad()
def momentum_update(online: torch.nn.Module, target: torch.nn.Module, momentum: float) -> None:
    """target <- m·target + (1 − m)·online, parameter by parameter (buffers copied): MoCo's
    momentum update, He et al. 2020 (arXiv:1911.05722) Eq. 2.

        >>> online, target = torch.nn.Linear(2, 2), torch.nn.Linear(2, 2)
        >>> momentum_update(online, target, momentum=0.0)
        >>> torch.equal(target.weight, online.weight)
        True
    """
    for p_t, p_o in zip(target.parameters(), online.parameters(), strict=True):
        p_t.mul_(momentum).add_(p_o.detach(), alpha=1 - momentum)
    for b_t, b_o in zip(target.buffers(), online.buffers(), strict=True):
        b_t.copy_(b_o)

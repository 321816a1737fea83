r"""NT-Xent, the SimCLR loss (Chen et al. 2020), for J >= 2 views per image.

With every view's code normalised, s_ab = cos(z_a, z_b) / τ over all N·J views of the
(global) batch, each anchor a has the other J − 1 views of its image as positives and every
view of every other image as a negative:

.. math::
    \ell_a = -\frac{1}{J-1}\sum_{p \in P(a)} \log \frac{e^{s_{ap}}}{\sum_{k \ne a} e^{s_{ak}}}

averaged over the anchors (J = 2: the usual NT-Xent). The denominator includes the positives,
as in SimCLR. Under DDP the anchors are this rank's views and the candidates every rank's, via
:func:`probssl.objectives.collectives.gather_with_grad`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from probssl.objectives.collectives import gather_with_grad


def nt_xent(z: torch.Tensor, temperature: float = 0.7) -> torch.Tensor:
    """NT-Xent of the module docstring (Chen et al. 2020, arXiv:2002.05709 Eq. 1, for J ≥ 2
    views): z (B, J, D) codes of this rank's images -> scalar loss (mean over local anchors).

        >>> nt_xent(torch.randn(8, 2, 16), temperature=0.5).shape
        torch.Size([])
    """
    b, j, _ = z.shape
    if j < 2:
        raise ValueError("NT-Xent needs at least two views per image")
    local = F.normalize(z.float(), dim=-1)
    every, offset = gather_with_grad(local)  # (B_global, J, D)
    anchors = local.flatten(0, 1)  # (B*J, D), image-major
    cands = every.flatten(0, 1)
    logits = anchors @ cands.T / temperature  # (B*J, B_global*J)
    rows = torch.arange(b * j, device=z.device)
    self_col = offset * j + rows
    logits = logits.masked_fill(F.one_hot(self_col, cands.shape[0]).bool(), float("-inf"))
    log_prob = logits - torch.logsumexp(logits, dim=1, keepdim=True)
    image_of_col = torch.arange(cands.shape[0], device=z.device) // j
    image_of_row = offset + rows // j
    positive = (image_of_col[None, :] == image_of_row[:, None])
    positive[rows, self_col] = False
    return -(log_prob.masked_fill(~positive, 0).sum(1) / (j - 1)).mean()

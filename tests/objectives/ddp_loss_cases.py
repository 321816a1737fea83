"""Shared between the DDP worker and the single-process reference."""

import torch

from probssl.objectives.nt_xent import nt_xent
from probssl.objectives.vicreg import vicreg_loss

CASES = {
    "nt_xent": lambda z: nt_xent(z, 0.7),
    "vicreg": lambda z: vicreg_loss(z)[0],
}


def make_case() -> tuple[torch.nn.Linear, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    net = torch.nn.Linear(6, 4, bias=False)
    with torch.no_grad():
        net.weight.copy_(torch.randn(4, 6, generator=g))
    x = torch.randn(8, 2, 6, generator=g)  # 8 images x 2 views; 4 images per rank
    return net, x

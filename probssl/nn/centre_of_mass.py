"""The moving-balls encoder of the RPM paper (arXiv:2107.02495v3 App. D, Fig. 2).

conv 3x3 -> 6 maps, batch-norm, ReLU; conv 3x3 -> K maps, batch-norm, sigmoid; then the
centre of mass of each map: the map normalised to sum 1, and the weighted mean of the pixel
coordinates. Output z = (x_1, y_1, ..., x_K, y_K) in pixels (pixel i's centre is at i + 0.5).
"""

from __future__ import annotations

import torch
from torch import nn


class CentreOfMass(nn.Module):
    """(B, K, H, W) non-negative maps -> (B, 2K) centres of mass (x, y) per map."""

    def __init__(self, eps: float = 1e-8):
        super().__init__()
        self.eps = eps

    def forward(self, maps: torch.Tensor) -> torch.Tensor:
        b, k, h, w = maps.shape
        p = maps / (maps.sum(dim=(2, 3), keepdim=True) + self.eps)
        xs = torch.arange(w, device=maps.device, dtype=maps.dtype) + 0.5
        ys = torch.arange(h, device=maps.device, dtype=maps.dtype) + 0.5
        x = (p.sum(dim=2) * xs).sum(-1)  # marginal over rows, then mean column coordinate
        y = (p.sum(dim=3) * ys).sum(-1)
        return torch.stack([x, y], dim=-1).reshape(b, 2 * k)


class BallEncoder(nn.Module):
    """The moving-balls encoder of arXiv:2107.02495v3 App. D, Fig. 2 (module docstring): frames
    (B, ``in_channels``, H, W) -> (B, 2·``n_balls``) centres of mass (x_1, y_1, ...) in pixels."""
    def __init__(self, in_channels: int = 1, n_balls: int = 3, hidden: int = 6):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, hidden, 3, padding=1), nn.BatchNorm2d(hidden), nn.ReLU(),
            nn.Conv2d(hidden, n_balls, 3, padding=1), nn.BatchNorm2d(n_balls), nn.Sigmoid())
        self.com = CentreOfMass()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.com(self.features(x))

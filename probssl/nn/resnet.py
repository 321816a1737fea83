"""ResNet18-style conv encoder/decoder of the SimVAE paper (Table 4), for 32x32 and 64x64.

This file depends on nothing but torch, so it can be copied beside an exported encoder.

Encoder: conv 4x4/16 + BN + ReLU (+ 3x3 max-pool /2 for 64x64 input), four residual stages
(32, 64/2, 128/2, 256/2) to 256x4x4, fc 4096 -> out_dim. Decoder mirrors it: fc to 256x4x4,
up-sampling residual stages (128, 64, 32[, 16 for 64x64]) and a 5x5 conv to the channels.
Other input sizes are accepted: the encoder average-pools to 4x4 before its fc layer and the
decoder resizes its output to the requested size.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn


class BasicBlock(nn.Module):
    """Two 3x3 convs with batch-norm and an identity (or 1x1 conv) shortcut."""

    def __init__(self, cin: int, cout: int, stride: int = 1, upsample: bool = False):
        super().__init__()
        self.upsample = upsample
        self.conv1 = nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.shortcut = nn.Sequential()
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, stride=stride, bias=False),
                                          nn.BatchNorm2d(cout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.upsample:
            x = F.interpolate(x, scale_factor=2.0, mode="nearest")
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class ResNetEncoder(nn.Module):
    """The ResNet18-style encoder of arXiv:2402.01399 Table 4 (module docstring): images
    (N, C, H, W) of ``in_shape`` -> (N, ``out_dim``)."""
    def __init__(self, in_shape: Sequence[int], out_dim: int,
                 widths: Sequence[int] = (32, 64, 128, 256)):
        super().__init__()
        c, h, w = in_shape
        self.in_shape = tuple(in_shape)
        stem: list[nn.Module] = [nn.ZeroPad2d((1, 2, 1, 2)),  # "same" padding for a 4x4 kernel
                                 nn.Conv2d(c, 16, 4, stride=1, bias=False),
                                 nn.BatchNorm2d(16), nn.ReLU()]
        if min(h, w) >= 64:
            stem.append(nn.MaxPool2d(3, stride=2, padding=1))
        self.stem = nn.Sequential(*stem)
        blocks, cin = [], 16
        for i, cout in enumerate(widths):
            blocks.append(BasicBlock(cin, cout, stride=1 if i == 0 else 2))
            cin = cout
        self.stages = nn.Sequential(*blocks)
        self.pool = nn.AdaptiveAvgPool2d(4)
        self.fc = nn.Linear(cin * 16, out_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stages(self.stem(x))
        if x.shape[-2:] != (4, 4):
            x = self.pool(x)
        return self.fc(torch.flatten(x, 1))


class ResNetDecoder(nn.Module):
    """The decoder mirroring :class:`ResNetEncoder` (module docstring): codes (N, ``latent_dim``)
    -> logits (N, C, H, W) of ``out_shape``, resized when (H, W) is neither 32×32 nor 64×64."""
    def __init__(self, latent_dim: int, out_shape: Sequence[int],
                 widths: Sequence[int] = (128, 64, 32, 16)):
        super().__init__()
        c, h, w = out_shape
        self.out_shape = tuple(out_shape)
        self.fc = nn.Linear(latent_dim, 256 * 4 * 4)
        n_up = 4 if min(h, w) >= 64 else 3
        blocks, cin = [], 256
        for cout in widths[:n_up]:
            blocks.append(BasicBlock(cin, cout, upsample=True))
            cin = cout
        self.stages = nn.Sequential(*blocks)
        self.out = nn.Conv2d(cin, c, 5, padding=2)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        x = self.fc(z).view(-1, 256, 4, 4)
        x = self.out(self.stages(F.relu(x)))
        if x.shape[-2:] != self.out_shape[1:]:
            x = F.interpolate(x, size=self.out_shape[1:], mode="bilinear", align_corners=False)
        return x

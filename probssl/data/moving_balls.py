"""The moving-balls video of the RPM paper (arXiv:2107.02495v3 Sec. 5, App. D, Fig. 1).

One continuous video: ``n_balls`` balls of diameter ``diameter`` px on a ``size`` x ``size``
frame. Between frames every ball moves exactly ``step`` px (default one diameter); its heading
is the previous heading plus uniform noise in [−2°, +2°]. If the move would leave the frame or
overlap another ball, the noise range is doubled and the heading re-drawn until the move is
valid. Balls move one after another within a frame, each checked against the others' current
positions, so no two balls ever overlap (centre distance >= diameter).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from probssl.errors import UserError


@dataclass
class BallsVideo:
    frames: torch.Tensor  # uint8 (T, C, size, size), ball pixels 255 (C = 1 or n_balls)
    centres: torch.Tensor  # float64 (T, n_balls, 2), (x, y) in pixels, origin top-left corner


def _valid(pos: np.ndarray, k: int, new: np.ndarray, radius: float, size: int,
           diameter: float) -> bool:
    if not (radius <= new[0] <= size - radius and radius <= new[1] <= size - radius):
        return False
    others = np.delete(pos, k, axis=0)
    return bool(np.all(np.hypot(*(others - new).T) >= diameter)) if len(others) else True


def simulate_centres(n_frames: int = 900, size: int = 256, n_balls: int = 3,
                     diameter: float = 32.0, step: float | None = None, seed: int = 0,
                     noise_deg: float = 2.0, max_draws: int = 10_000) -> np.ndarray:
    """Ball centres (T, n_balls, 2) following the paper's motion rule."""
    step = diameter if step is None else step
    radius = diameter / 2
    if n_frames < 1 or n_balls < 1 or not diameter > 0 or not step > 0:
        raise UserError("moving balls: frames, balls, diameter and step must be positive")
    if size < 2 * diameter + step:
        raise UserError(f"moving balls: a {size}px frame is too small for balls of "
                        f"{diameter}px moving {step}px per frame")
    rng = np.random.default_rng(seed)
    pos = np.zeros((n_balls, 2))
    for k in range(n_balls):  # non-overlapping start positions
        for _ in range(max_draws):
            cand = rng.uniform(radius, size - radius, size=2)
            if np.all(np.hypot(*(pos[:k] - cand).T) >= diameter):
                pos[k] = cand
                break
        else:
            raise UserError(f"moving balls: cannot place {n_balls} balls of {diameter}px "
                            f"in a {size}px frame")
    heading = rng.uniform(0, 2 * math.pi, size=n_balls)
    out = np.empty((n_frames, n_balls, 2))
    out[0] = pos
    for t in range(1, n_frames):
        for k in range(n_balls):
            width = math.radians(noise_deg)
            for _ in range(max_draws):
                h = heading[k] + rng.uniform(-width, width)
                new = pos[k] + step * np.array([math.cos(h), math.sin(h)])
                if _valid(pos, k, new, radius, size, diameter):
                    pos[k], heading[k] = new, h
                    break
                width = min(2 * width, math.pi)  # doubled until it covers every direction
            else:
                raise RuntimeError(f"ball {k} found no valid move at frame {t}")
        out[t] = pos
    return out


BALLS = ("identical", "coloured", "grey", "mixed")
# distinct colours that mix channels (RGB in [0, 1]); the earlier version of the RPM paper
# speaks of "the coral ball" (arXiv:2107.02495v1, Fig. 1 caption)
MIXED_COLOURS = ((1.0, 0.5, 0.31), (0.0, 0.55, 0.55), (0.6, 0.4, 1.0), (1.0, 0.84, 0.0),
                 (0.5, 1.0, 0.5), (0.9, 0.9, 0.9))


def palette(balls: str, n_balls: int) -> torch.Tensor:
    """(K, C) colour of each ball, values in [0, 1]:

    * ``identical``: one channel, every ball 1 (white) — indistinguishable;
    * ``coloured``: one channel per ball (three balls: red, green, blue);
    * ``grey``: one channel, grey levels evenly from 0.4 to 1 (three balls: 0.4, 0.7, 1.0) —
      distinguishable, but a detector must learn the level (no channel gives it away);
    * ``mixed``: three channels, distinct colours that each mix channels
      (:data:`MIXED_COLOURS`: coral, teal, violet, ...)."""
    if balls == "identical":
        return torch.ones(n_balls, 1)
    if balls == "coloured":
        return torch.eye(n_balls)
    if balls == "grey":
        return torch.linspace(0.4, 1.0, n_balls).view(n_balls, 1) if n_balls > 1 else \
            torch.ones(1, 1)
    if balls == "mixed":
        if n_balls > len(MIXED_COLOURS):
            raise UserError(f"balls 'mixed' has {len(MIXED_COLOURS)} colours; got {n_balls} "
                            "balls")
        return torch.tensor(MIXED_COLOURS[:n_balls])
    raise UserError(f"balls must be one of {', '.join(BALLS)}; got {balls!r}")


def render(centres: np.ndarray | torch.Tensor, size: int = 256, diameter: float = 32.0,
           chunk: int = 64, coloured: bool = False, balls: str | None = None) -> torch.Tensor:
    """uint8 frames (T, C, size, size): a pixel whose centre lies within diameter/2 of a ball
    takes that ball's colour (:func:`palette`, × 255; where balls overlap, the brighter value
    per channel); the background is 0.

    ``balls`` names the palette; without it ``coloured`` picks "coloured" (one channel per
    ball, so balls can be told apart) or "identical" (one channel, all white).
    """
    c = torch.as_tensor(centres, dtype=torch.float32)
    colours = palette(balls or ("coloured" if coloured else "identical"), c.shape[1])
    coords = torch.arange(size, dtype=torch.float32) + 0.5
    yy, xx = coords.view(1, 1, size, 1), coords.view(1, 1, 1, size)
    r2 = (diameter / 2) ** 2
    frames = []
    for start in range(0, len(c), chunk):
        cc = c[start:start + chunk]
        d2 = (xx - cc[..., 0, None, None]) ** 2 + (yy - cc[..., 1, None, None]) ** 2
        inside = (d2 <= r2).float()  # (t, n_balls, size, size)
        lit = (inside[:, :, None] * colours[None, :, :, None, None]).amax(dim=1)
        frames.append((lit * 255).round().to(torch.uint8))  # (t, C, size, size)
    return torch.cat(frames)


def moving_balls(n_frames: int = 900, size: int = 256, n_balls: int = 3,
                 diameter: float = 32.0, step: float | None = None, seed: int = 0,
                 coloured: bool = False, balls: str | None = None) -> BallsVideo:
    """The whole video: frames and the true centres (paper defaults); ``balls`` (or
    ``coloured``) as in :func:`render`."""
    centres = simulate_centres(n_frames, size, n_balls, diameter, step, seed)
    return BallsVideo(render(centres, size, diameter, coloured=coloured, balls=balls),
                      torch.from_numpy(centres))

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


def render(centres: np.ndarray | torch.Tensor, size: int = 256, diameter: float = 32.0,
           chunk: int = 64, coloured: bool = False) -> torch.Tensor:
    """uint8 frames (T, C, size, size): pixel centres within diameter/2 of a ball are 255.

    ``coloured=False``: one channel, all balls white (identical). ``coloured=True``: one
    channel per ball (for three balls: red, green, blue), so balls can be told apart.
    """
    c = torch.as_tensor(centres, dtype=torch.float32)
    coords = torch.arange(size, dtype=torch.float32) + 0.5
    yy, xx = coords.view(1, 1, size, 1), coords.view(1, 1, 1, size)
    r2 = (diameter / 2) ** 2
    frames = []
    for start in range(0, len(c), chunk):
        cc = c[start:start + chunk]
        d2 = (xx - cc[..., 0, None, None]) ** 2 + (yy - cc[..., 1, None, None]) ** 2
        inside = d2 <= r2  # (t, n_balls, size, size)
        if not coloured:
            inside = inside.any(dim=1, keepdim=True)
        frames.append(inside.to(torch.uint8) * 255)
    return torch.cat(frames)


def moving_balls(n_frames: int = 900, size: int = 256, n_balls: int = 3,
                 diameter: float = 32.0, step: float | None = None, seed: int = 0,
                 coloured: bool = False) -> BallsVideo:
    """The whole video: frames and the true centres (paper defaults)."""
    centres = simulate_centres(n_frames, size, n_balls, diameter, step, seed)
    return BallsVideo(render(centres, size, diameter, coloured=coloured),
                      torch.from_numpy(centres))

"""What a trained moving-balls encoder says about where the balls are: its embeddings of every
frame (:func:`embed`), a linear readout from them to the K ball centres fitted with the best
ball assignment per frame (:func:`fit_readout`, :func:`decode`) and the matched distances
that score it (:func:`matched_distances`). Used by the experiment and by its figure."""

from __future__ import annotations

import itertools

import torch

from probssl.experiments.moving_balls.windows import BallWindows, windowed_forward
from probssl.nn.centre_of_mass import BallEncoder


def permutations(k: int) -> torch.Tensor:
    return torch.tensor(list(itertools.permutations(range(k))), dtype=torch.long)


def matched_distances(pred: torch.Tensor, true: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Best assignment per frame. pred, true (N, K, 2) -> (distances (N, K), perm (N, K)).

    ``true[n, perm[n, k]]`` is the ball matched to decoded centre k of frame n.
    """
    perms = permutations(pred.shape[1]).to(pred.device)  # (P, K)
    d = (pred[:, None, :, :] - true[:, perms, :]).norm(dim=-1)  # (N, P, K)
    best = d.sum(-1).argmin(dim=1)
    return d[torch.arange(len(d)), best], perms[best]


def fit_readout(z: torch.Tensor, centres: torch.Tensor, max_iter: int = 50) -> torch.Tensor:
    """Linear map A ((D+1), 2K) from [z, 1] to the centres, fitted by least squares with the
    ball assignment per frame re-chosen until it stops changing (float64)."""
    z, centres = z.double(), centres.double()
    n, k = centres.shape[:2]
    design = torch.cat([z, torch.ones(n, 1, dtype=z.dtype)], dim=1)
    if z.shape[1] == 2 * k:  # start from "map k is a ball": match the raw coordinates
        _, perm = matched_distances(z.view(n, k, 2), centres)
    else:
        perm = torch.arange(k).expand(n, k)
    a = None
    for _ in range(max_iter):
        target = centres[torch.arange(n)[:, None], perm].reshape(n, 2 * k)
        a = torch.linalg.lstsq(design, target).solution
        _, new = matched_distances((design @ a).view(n, k, 2), centres)
        if torch.equal(new, perm):
            break
        perm = new
    return a


def decode(a: torch.Tensor, z: torch.Tensor, k: int) -> torch.Tensor:
    z = z.double()
    return (torch.cat([z, torch.ones(len(z), 1, dtype=z.dtype)], 1) @ a).view(len(z), k, 2)


@torch.no_grad()
def embed(enc: BallEncoder, win: BallWindows, chunk: int = 256) -> torch.Tensor:
    enc.eval()
    try:
        return torch.cat([windowed_forward(enc, win.index(torch.arange(i, min(i + chunk,
                                                                              len(win)))))
                          for i in range(0, len(win), chunk)]).cpu()
    finally:
        enc.train()

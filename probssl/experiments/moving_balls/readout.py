"""What a trained moving-balls encoder says about where the balls are: its embeddings of every
frame (:func:`embed`) and two readouts scored on held-out frames.

* The full readout (:func:`fit_readout`, :func:`decode`): one affine map from all 2K
  coordinates to the K centres, with the best ball assignment re-chosen per frame. It can
  mix detectors, so it measures what the code *contains*: an untrained encoder already
  scores < 1 px on coloured balls.
* The per-detector readout (:func:`fit_detector_readout`, :func:`detector_distances`): one
  affine 2→2 map per detector (its x, y to one ball's centre) and one detector→ball
  assignment for all frames, chosen on the training frames. It measures what the paper
  claims ("3 feature maps, which we interpret as the locations of the 3 different balls"):
  whether each detector follows one ball.

Also :func:`critic_coordinates`, the coordinates the critics see. Used by the experiment
and by its figure."""

from __future__ import annotations

import itertools

import torch

from probssl.experiments.moving_balls.windows import BallWindows, windowed_forward
from probssl.nn.centre_of_mass import BallEncoder


def permutations(k: int) -> torch.Tensor:
    """The k! permutations of range(k), lexicographic, as a (k!, k) long tensor."""
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
    """The full readout ``a`` ((D+1), 2K) of :func:`fit_readout` applied to codes ``z`` (N, D):
    decoded centres (N, K, 2), float64."""
    z = z.double()
    return (torch.cat([z, torch.ones(len(z), 1, dtype=z.dtype)], 1) @ a).view(len(z), k, 2)


@torch.no_grad()
def embed(enc: BallEncoder, win: BallWindows, chunk: int = 256) -> torch.Tensor:
    """The encoder's codes of every frame of ``win``, (N, 2K) pixel coordinates on the CPU,
    computed in eval mode (running batch-norm statistics) ``chunk`` frames at a time; the
    encoder is left in the mode it was in."""
    was_training = enc.training
    enc.eval()
    try:
        return torch.cat([windowed_forward(enc, win.index(torch.arange(i, min(i + chunk,
                                                                              len(win)))))
                          for i in range(0, len(win), chunk)]).cpu()
    finally:
        enc.train(was_training)


COORDINATES = ("raw", "centred", "unit")


def critic_coordinates(z: torch.Tensor, size: int, coordinates: str) -> torch.Tensor:
    """What the critics (and the supervised loss) see of the encoder's pixel coordinates z:
    ``raw`` — z itself, the paper's literal reading (its encoder outputs pixel coordinates
    and nothing is centred; Eq. 26's argument depends on where the origin is); ``centred`` —
    z − size/2, pixels from the frame centre; ``unit`` — (z − size/2)/(size/2), the frame
    mapped to [−1, 1]. An RBF critic is unchanged by centring; a bilinear one is not."""
    if coordinates == "raw":
        return z
    if coordinates == "centred":
        return z - size / 2
    if coordinates == "unit":
        return (z - size / 2) / (size / 2)
    raise ValueError(f"coordinates must be one of {', '.join(COORDINATES)}; got {coordinates!r}")


def fit_detector_readout(z: torch.Tensor, centres: torch.Tensor
                         ) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-detector readout fitted on the given (training) frames: for every detector d
    (columns 2d, 2d+1 of z) and ball b, the least-squares affine map [z_d, 1] -> centre of
    b; then the detector→ball assignment (a permutation, the same for every frame) with the
    least total squared error. Returns (maps (K, 3, 2) of the chosen pairs, assignment (K,):
    detector d reads ball assignment[d]). float64."""
    z, centres = z.double(), centres.double()
    n, k = centres.shape[:2]
    ones = torch.ones(n, 1, dtype=z.dtype)
    maps = torch.empty(k, k, 3, 2, dtype=z.dtype)
    err = torch.empty(k, k, dtype=z.dtype)
    for d in range(k):
        design = torch.cat([z[:, 2 * d:2 * d + 2], ones], dim=1)
        for b in range(k):
            maps[d, b] = torch.linalg.lstsq(design, centres[:, b]).solution
            err[d, b] = (design @ maps[d, b] - centres[:, b]).pow(2).sum()
    perms = permutations(k)
    best = perms[err[torch.arange(k), perms].sum(dim=1).argmin()]
    return maps[torch.arange(k), best], best


def detector_distances(maps: torch.Tensor, assignment: torch.Tensor, z: torch.Tensor,
                       centres: torch.Tensor) -> torch.Tensor:
    """(N, K) distances between each detector's decoded position and the centre of the ball
    it was assigned on the training frames."""
    z, centres = z.double(), centres.double()
    n, k = centres.shape[:2]
    ones = torch.ones(n, 1, dtype=z.dtype)
    pred = torch.stack([torch.cat([z[:, 2 * d:2 * d + 2], ones], 1) @ maps[d]
                        for d in range(k)], dim=1)
    return (pred - centres[:, assignment]).norm(dim=-1)

"""Where a training step's views come from: the one place that turns data indices into views.

Three kinds, each a function of (data, indices) so the trainer, the benchmark and the
experiments make their views the same way:

* **augmented** (``views="augment"``): J random augmentations of each image
  (:func:`probssl.data.augment.augment`), drawn from a seeded ``torch.Generator`` on the
  data's device — (B, C, H, W) -> (B, J, C, H', W');
* **next frame** (``views="next-frame"``): the data is an ordered sequence and the views of
  start frame t are frames t, t+1, ..., t+J-1, only preprocessed (no randomness);
* **pairs**: the (frame t, frame t+1) pairs of a video for a contrastive step where one
  batch of frames holds the bases then the targets (the moving-balls experiment):
  :func:`pair_indices`.

:func:`make_view_source` binds a kind to the training data, giving the trainer one callable
``indices -> views`` and the number of items an epoch draws from.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from probssl.data.augment import AugmentConfig, augment, preprocess
from probssl.errors import UserError

VIEW_KINDS = ("augment", "next-frame")


def augmented_views(images: torch.Tensor, n_views: int, cfg: AugmentConfig,
                    generator: torch.Generator | None = None) -> torch.Tensor:
    """J augmentations of every image: (B, C, H, W) -> (B, J, C, H', W'), float in [0, 1]."""
    return augment(images, n_views, cfg, generator)


def next_frame_views(frames: torch.Tensor, start: torch.Tensor, n_views: int,
                     cfg: AugmentConfig) -> torch.Tensor:
    """Frames t..t+J-1 for every start frame t in ``start`` (B,): (B, J, C, H', W')."""
    idx = start.unsqueeze(1) + torch.arange(n_views, device=start.device)
    return preprocess(frames[idx.flatten()], cfg).unflatten(0, idx.shape)


def next_frame_items(n_frames: int, n_views: int) -> int:
    """Start frames t with t + J - 1 still in a sequence of ``n_frames``."""
    return n_frames - (n_views - 1)


def pair_indices(base: torch.Tensor) -> torch.Tensor:
    """Frame indices of the pairs (t, t+1) for t in ``base`` (B,): the B bases, then their
    B targets, so one batch of 2B frames goes through the encoder together."""
    return torch.cat([base, base + 1])


@dataclass
class ViewSource:
    """A training set bound to a view kind: ``source(indices)`` is one step's views."""

    make: Callable[[torch.Tensor], torch.Tensor]
    n_items: int  # items an epoch permutes (images, or start frames)
    generator: torch.Generator | None = None  # the augmentation stream (checkpointed)

    def __call__(self, indices: torch.Tensor) -> torch.Tensor:
        return self.make(indices)


def make_view_source(kind: str, data: torch.Tensor, n_views: int, cfg: AugmentConfig,
                     generator: torch.Generator | None = None) -> ViewSource:
    """Bind ``data`` (N, C, H, W, already on the training device) to the view ``kind``."""
    if kind == "augment":
        return ViewSource(lambda idx: augmented_views(data[idx], n_views, cfg, generator),
                          len(data), generator)
    if kind == "next-frame":
        n_items = next_frame_items(len(data), n_views)
        if n_items < 1:
            raise UserError(f"next-frame views need more than {n_views - 1} frames")
        return ViewSource(lambda idx: next_frame_views(data, idx, n_views, cfg), n_items,
                          generator)
    raise UserError(f"views must be one of {', '.join(VIEW_KINDS)}; got {kind!r}")

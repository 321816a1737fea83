"""``moco``: MoCo v2 (He et al. 2020; Chen et al. 2020b): a momentum key encoder and a queue of
earlier keys as negatives, :func:`probssl.objectives.moco.moco_infonce`. View 0 of each image
is the query, view 1 the key. The key encoder follows the online one after every optimiser
step (:meth:`after_step`); under DDP the keys of every rank enter the queue.

The loss acts on an MLP head with batch norm (as in MoCo v2/v3; dropped at evaluation). It
is on by default because without it our MLP encoders (no batch norm) escape the stale queue
by rotating every code together: at initialisation all codes share one direction (batch
cosine 0.996), the online encoder turns away from the queue's direction, and the
representation ends at or below the random encoder (mnist-test, 20 epochs: kNN 48.8 ± 6.4 %
vs 46.3 % random; docs/RESULTS.md). Batch norm centres each batch, which removes that escape.
``projection_dim = 0`` gives the head-less variant.

Departure: MoCo's *shuffling BN* (He et al. 2020, Sec. 3.3) is not implemented. MoCo shuffles
the key batch across GPUs before the key encoder's batch norm, so a query and its positive key
are never normalised by statistics of the same sub-batch; the paper reports that without it
the model "cheats" the pretext task through the batch statistics and learns worse
representations. Here the query batch and the key batch hold the same images in the same
order (one device, or each DDP rank, with or without ``--sync-bn``), so our MoCo numbers are
those of MoCo without shuffling BN: if they err, they err low."""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import nn

from probssl.errors import UserError
from probssl.methods.base import Method, MethodConfig, register_method
from probssl.nn import build_encoder
from probssl.objectives.collectives import gather_with_grad
from probssl.objectives.moco import moco_infonce, momentum_update


@dataclass
class MoCoConfig(MethodConfig):
    # fields added after runs were saved: the value that reproduces those runs
    LEGACY: ClassVar[dict[str, Any]] = {"projection_dim": 0}
    n_views: int = 2
    temperature: float = 0.2
    momentum: float = 0.99
    queue_size: int = 4096
    projection_dim: int = 128  # MLP head with batch norm; 0 = the loss on the code itself

    def validate(self) -> None:
        if self.n_views != 2:
            raise UserError(f"moco uses a query and a key view: n_views must be 2; "
                            f"got {self.n_views}")
        if not self.temperature > 0:
            raise UserError(f"temperature must be > 0; got {self.temperature}")
        if not 0 <= self.momentum < 1:
            raise UserError(f"momentum must be in [0, 1); got {self.momentum}")
        if self.queue_size < 1:
            raise UserError(f"queue_size must be >= 1; got {self.queue_size}")
        if self.projection_dim < 0:
            raise UserError(f"projection_dim must be >= 0; got {self.projection_dim}")


# paper: 600 epochs; lr not stated: 1e-3 is our choice
@register_method("moco", config=MoCoConfig,
                 description="MoCo v2: momentum encoder + queue (arXiv:2003.04297)",
                 presets={"paper": ({"lr": 1e-3, "epochs": 600}, {})})
class MoCo(Method):
    """``moco`` (module docstring): queries from view 0, keys from view 1 through a momentum copy
    of the encoder and head, earlier keys in a queue as negatives; the loss is the InfoNCE of
    He et al. 2020 (arXiv:1911.05722) Eq. 1, :func:`probssl.objectives.moco.moco_infonce`, and
    the momentum update their Eq. 2 (:meth:`after_step`)."""
    def __init__(self, config: MoCoConfig, image_shape: tuple[int, int, int]):
        super().__init__(config)
        self.encoder = build_encoder(config.arch, image_shape, config.latent_dim,
                                     "deterministic")
        d, out = config.latent_dim, config.projection_dim or config.latent_dim
        self.head = nn.Sequential(nn.Linear(d, 256), nn.BatchNorm1d(256), nn.ReLU(),
                                  nn.Linear(256, out)) if config.projection_dim else nn.Identity()
        self.key_encoder = copy.deepcopy(self.encoder)
        self.key_head = copy.deepcopy(self.head)
        for p in [*self.key_encoder.parameters(), *self.key_head.parameters()]:
            p.requires_grad_(False)
        g = torch.Generator().manual_seed(0)
        self.register_buffer("queue", torch.nn.functional.normalize(
            torch.randn(config.queue_size, out, generator=g), dim=1))
        self.register_buffer("queue_ptr", torch.zeros((), dtype=torch.long))

    def forward(self, views: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        cfg: MoCoConfig = self.config  # type: ignore[assignment]
        q = self.head(self.encoder(views[:, 0])[0])
        with torch.no_grad():
            k = self.key_head(self.key_encoder(views[:, 1])[0])
        loss = moco_infonce(q, k, self.queue.clone(), cfg.temperature)
        if self.training:
            self._enqueue(torch.nn.functional.normalize(k.float(), dim=1))
        return loss, {}

    @torch.no_grad()
    def _enqueue(self, keys: torch.Tensor) -> None:
        keys, _ = gather_with_grad(keys)
        n, size = len(keys), self.queue.shape[0]
        ptr = int(self.queue_ptr)
        idx = (ptr + torch.arange(n, device=keys.device)) % size
        self.queue[idx[-size:]] = keys[-size:].to(self.queue.dtype)
        self.queue_ptr.fill_((ptr + n) % size)

    def after_step(self) -> None:
        m = self.config.momentum  # type: ignore[attr-defined]
        momentum_update(self.encoder, self.key_encoder, m)
        momentum_update(self.head, self.key_head, m)

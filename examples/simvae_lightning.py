"""SimVAE on your own images inside PyTorch Lightning, with probssl's loss.

    pip install 'probssl[lightning]'
    python examples/simvae_lightning.py images.npz --epochs 20   # x: (N, C, H, W) uint8

Same steps as examples/simvae_plain_loop.py and `probssl train --method simvae` for the same
seed (tests/test_examples.py checks it): the batch order comes from its own per-epoch seed
and the DataLoader gets its own generator, so Lightning draws nothing from the global RNG
that the reparameterisation noise uses.
"""

import argparse

import lightning as L
import numpy as np
import torch

from probssl.data.augment import get_preset
from probssl.data.views import augmented_views
from probssl.losses import SimVAELoss
from probssl.nn import build_decoder, build_encoder
from probssl.objectives.vae import reparameterise


class EpochOrder(torch.utils.data.Sampler):
    """probssl's batch order: a permutation seeded by (seed, epoch)."""

    def __init__(self, n: int, seed: int) -> None:
        self.n, self.seed, self.epoch = n, seed, 0

    def __iter__(self):
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
        self.epoch += 1
        return iter(torch.randperm(self.n, generator=g).tolist())

    def __len__(self) -> int:
        return self.n


class SimVAE(L.LightningModule):
    def __init__(self, images: torch.Tensor, n_views: int = 10, lr: float = 1e-3,
                 latent_dim: int = 10, augmentation: str = "generic-gray", seed: int = 0):
        super().__init__()
        torch.manual_seed(seed)  # the initial weights, then the reparameterisation noise
        shape = tuple(images.shape[1:])
        self.encoder = build_encoder("mlp", shape, latent_dim, "gaussian")
        self.decoder = build_decoder("mlp", latent_dim, shape)
        self.criterion = SimVAELoss(prior_var=0.15, likelihood="gaussian", likelihood_var=0.02)
        self.images, self.n_views, self.lr = images, n_views, lr
        self.augment = get_preset(augmentation)
        self.views_rng = torch.Generator().manual_seed(seed * 7919)

    def training_step(self, idx: torch.Tensor, batch_idx: int) -> torch.Tensor:
        x = augmented_views(self.images[idx], self.n_views, self.augment, self.views_rng)
        b, j = x.shape[:2]
        mean, logvar = self.encoder(x.flatten(0, 1))
        z = reparameterise(mean, logvar)
        loss = self.criterion(x, self.decoder(z).view_as(x),
                              *(t.view(b, j, -1) for t in (mean, logvar, z)))
        self.log("loss", loss, on_step=False, on_epoch=True, prog_bar=True)
        return loss

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=self.lr, fused=True)


def loader(images: torch.Tensor, batch_size: int, seed: int) -> torch.utils.data.DataLoader:
    return torch.utils.data.DataLoader(range(len(images)), batch_size=batch_size,
                                       sampler=EpochOrder(len(images), seed),
                                       generator=torch.Generator())  # not the global RNG


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("npz", help="a .npz file with x: (N, C, H, W) uint8 images")
    p.add_argument("--epochs", type=int, default=10)
    args = p.parse_args()
    images = torch.from_numpy(np.load(args.npz)["x"])
    model = SimVAE(images)
    L.Trainer(max_epochs=args.epochs, logger=False, enable_checkpointing=False
              ).fit(model, loader(images, 128, seed=0))
    torch.save(model.encoder.state_dict(), "simvae_encoder.pt")

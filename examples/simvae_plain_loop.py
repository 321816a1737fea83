"""SimVAE on your own images, in a plain PyTorch loop with probssl's loss.

    python examples/simvae_plain_loop.py images.npz --epochs 20   # x: (N, C, H, W) uint8

With the same seed and settings it takes the same steps as `probssl train --method simvae`
(same initial weights, batch order, augmentations and noise): tests/test_examples.py checks it.
"""

import argparse

import numpy as np
import torch

from probssl.data.augment import get_preset
from probssl.data.views import augmented_views
from probssl.losses import SimVAELoss
from probssl.nn import build_decoder, build_encoder
from probssl.objectives.vae import reparameterise


def train_simvae(images: torch.Tensor, *, epochs: int = 10, n_views: int = 10,
                 batch_size: int = 128, lr: float = 1e-3, latent_dim: int = 10,
                 augmentation: str = "generic-gray", seed: int = 0, log=print):
    """images: (N, C, H, W) uint8. Returns the encoder and the loss of every step."""
    torch.manual_seed(seed)  # the initial weights, then the reparameterisation noise
    shape = tuple(images.shape[1:])
    encoder = build_encoder("mlp", shape, latent_dim, "gaussian")  # (mean, logvar) of q(z|x)
    decoder = build_decoder("mlp", latent_dim, shape)
    optimiser = torch.optim.Adam([*encoder.parameters(), *decoder.parameters()], lr=lr,
                                 fused=True)  # one kernel for all parameters, as probssl does
    criterion = SimVAELoss(prior_var=0.15, likelihood="gaussian", likelihood_var=0.02)
    views_rng = torch.Generator().manual_seed(seed * 7919)  # the augmentations' own stream
    losses = []
    for epoch in range(epochs):
        order = torch.randperm(len(images),
                               generator=torch.Generator().manual_seed(seed * 1_000_003 + epoch))
        for start in range(0, len(images), batch_size):
            x = augmented_views(images[order[start:start + batch_size]], n_views,
                                get_preset(augmentation), views_rng)  # (B, J, C, H, W)
            b, j = x.shape[:2]
            mean, logvar = encoder(x.flatten(0, 1))
            z = reparameterise(mean, logvar)
            loss = criterion(x, decoder(z).view_as(x),
                             *(t.view(b, j, -1) for t in (mean, logvar, z)))
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            optimiser.step()
            losses.append(loss.item())
        log(f"epoch {epoch + 1}: loss {np.mean(losses[-(start // batch_size + 1):]):.2f}")
    return encoder, losses


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("npz", help="a .npz file with x: (N, C, H, W) uint8 images")
    p.add_argument("--epochs", type=int, default=10)
    args = p.parse_args()
    encoder, _ = train_simvae(torch.from_numpy(np.load(args.npz)["x"]), epochs=args.epochs)
    torch.save(encoder.state_dict(), "simvae_encoder.pt")

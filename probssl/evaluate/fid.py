r"""Fréchet distance between two feature distributions (the "F" of FID; Heusel et al. 2017).

.. math::
    d^2 = |μ_1 − μ_2|^2 + \mathrm{tr}\big(Σ_1 + Σ_2 − 2 (Σ_1^{1/2} Σ_2 Σ_1^{1/2})^{1/2}\big)

computed in float64 through symmetric eigen-decompositions (no complex sqrtm round-off). The
number is an FID only with Inception-v3 pool features; with any other extractor (e.g.
:func:`classifier_features`) it is a Fréchet distance in that feature space, not comparable to
published FIDs — every table must say which.

Feature extractors (:func:`load_feature_extractor`), chosen with ``--fid-features``:

* ``classifier`` (default, offline): an MLP classifier trained by probssl on the dataset's
  training images (:func:`classifier_features`); its features are labelled "not Inception".
* ``inception:PATH``: a TorchScript Inception-v3 file, called as ``model(x, return_features=
  True)`` on uint8-valued (N, 3, H, W) images, the convention of the NVlabs/clean-fid
  ``pt_inception-2015-12-05`` detector (it resizes to 299 itself). Grey images are repeated to
  3 channels. Only this gives numbers comparable with published FIDs.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from probssl.data.augment import preprocess
from probssl.errors import UserError
from probssl.evaluate.generate import generated_samples


def _sqrt_psd(a: np.ndarray) -> np.ndarray:
    w, v = np.linalg.eigh((a + a.T) / 2)
    return (v * np.sqrt(np.clip(w, 0, None))) @ v.T


def frechet_distance(mu1, cov1, mu2, cov2) -> float:
    """Squared Fréchet distance d² of the module docstring between N(mu1, cov1) and N(mu2, cov2),
    in float64 (the FID's convention: d², not d)."""
    mu1, mu2 = np.asarray(mu1, np.float64), np.asarray(mu2, np.float64)
    cov1, cov2 = np.atleast_2d(np.asarray(cov1, np.float64)), np.atleast_2d(
        np.asarray(cov2, np.float64))
    s1 = _sqrt_psd(cov1)
    cross = _sqrt_psd(s1 @ cov2 @ s1)
    return float(((mu1 - mu2) ** 2).sum() + np.trace(cov1) + np.trace(cov2)
                 - 2 * np.trace(cross))


def frechet_distance_of_features(f1, f2) -> float:
    """Fréchet distance between Gaussians fitted to two (N, D) feature arrays."""
    f1, f2 = np.asarray(f1, np.float64), np.asarray(f2, np.float64)
    return frechet_distance(f1.mean(0), np.cov(f1, rowvar=False), f2.mean(0),
                            np.cov(f2, rowvar=False))


def classifier_features(x_train: torch.Tensor, y_train: torch.Tensor, epochs: int = 10,
                        hidden: int = 256, seed: int = 0, lr: float = 1e-3,
                        batch_size: int = 128) -> nn.Module:
    """An offline feature extractor: an MLP classifier trained on (x_train, y_train) (float
    images in [0, 1]); returns the network up to its last hidden layer (width ``hidden``).
    Distances in its feature space are NOT comparable with Inception FIDs."""
    torch.manual_seed(seed)
    d = x_train[0].numel()
    n_classes = int(y_train.max()) + 1
    body = nn.Sequential(nn.Flatten(), nn.Linear(d, 512), nn.ReLU(), nn.Linear(512, hidden),
                         nn.ReLU())
    head = nn.Linear(hidden, n_classes)
    opt = torch.optim.Adam([*body.parameters(), *head.parameters()], lr=lr)
    g = torch.Generator().manual_seed(seed)
    for _ in range(epochs):
        perm = torch.randperm(len(x_train), generator=g)
        for i in range(0, len(perm), batch_size):
            idx = perm[i:i + batch_size]
            loss = nn.functional.cross_entropy(head(body(x_train[idx])), y_train[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    return body.eval()


@dataclass
class FeatureExtractor:
    """images (N, C, H, W) float in [0, 1] -> (N, D) features, with a name for tables."""

    fn: Callable[[torch.Tensor], torch.Tensor]
    name: str
    inception: bool  # True only for Inception-v3 pool features (a real FID)

    @torch.no_grad()
    def __call__(self, images: torch.Tensor, batch_size: int = 500) -> np.ndarray:
        out = [self.fn(images[i:i + batch_size]).float().flatten(1).cpu()
               for i in range(0, len(images), batch_size)]
        return torch.cat(out).double().numpy()


_CLASSIFIERS: dict[tuple, FeatureExtractor] = {}


def classifier_extractor(x_train: torch.Tensor, y_train: torch.Tensor, key: tuple = (),
                         seed: int = 0) -> FeatureExtractor:
    """The offline extractor, trained once per (key, seed) in this process."""
    cache_key = (*key, len(x_train), seed)
    if cache_key not in _CLASSIFIERS:
        body = classifier_features(x_train, y_train, seed=seed)
        _CLASSIFIERS[cache_key] = FeatureExtractor(
            body, "probssl MLP classifier features (not Inception: not comparable to "
                  "published FIDs)", inception=False)
    return _CLASSIFIERS[cache_key]


def torchscript_extractor(path: str | Path) -> FeatureExtractor:
    """The ``inception:PATH`` extractor: a TorchScript Inception-v3 file called with
    ``return_features=True`` on images in [0, 1] scaled to uint8 values (grey images repeated
    to 3 channels). A missing or unloadable file is a :class:`UserError`."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"--fid-features inception:{path}: no such file (a TorchScript "
                        "Inception-v3, e.g. pt_inception-2015-12-05-6726825d.pth)")
    try:
        model = torch.jit.load(str(path), map_location="cpu").eval()
    except Exception as exc:  # not TorchScript, truncated, ...
        raise UserError(f"{path}: not a loadable TorchScript model ({type(exc).__name__})"
                        ) from None

    def fn(x: torch.Tensor) -> torch.Tensor:
        if x.shape[1] == 1:
            x = x.repeat(1, 3, 1, 1)
        return model((x * 255).round().clamp(0, 255).to(torch.uint8), return_features=True)

    return FeatureExtractor(fn, f"Inception-v3 ({path.name})", inception=True)


def load_feature_extractor(spec: str, x_train: torch.Tensor | None = None,
                           y_train: torch.Tensor | None = None, key: tuple = (),
                           seed: int = 0) -> FeatureExtractor:
    """``classifier`` (needs labelled float training images) or ``inception:PATH``."""
    if spec == "classifier":
        if x_train is None or y_train is None:
            raise UserError("the classifier FID extractor needs a labelled dataset")
        return classifier_extractor(x_train, y_train, key, seed)
    if spec.startswith("inception:"):
        return torchscript_extractor(spec.split(":", 1)[1])
    raise UserError(f"--fid-features {spec!r}: use 'classifier', 'inception:PATH' or 'none'")


def fid_of_run(loaded, extractor: FeatureExtractor, n_samples: int = 5000,
               seed: int = 0) -> dict:
    """Fréchet distance between ``n_samples`` generated images (z from a Gaussian fitted to
    the training means, decoded) and as many test images, in ``extractor``'s features."""

    x_test, _ = loaded.resolved.data.split("test")
    n = min(n_samples, len(x_test))
    if n < 2:
        raise UserError("FID needs at least 2 test images")
    real = preprocess(x_test[:n], loaded.resolved.augment)
    return fid_record(extractor, real, generated_samples(loaded, n, seed))


def fid_record(extractor: FeatureExtractor, real: torch.Tensor, fake: torch.Tensor) -> dict:
    """The Fréchet distance of ``real`` and ``fake`` images (floats in [0, 1]) in
    ``extractor``'s features, with what it was measured in and on how many images."""
    value = frechet_distance_of_features(extractor(real), extractor(fake))
    return {"value": value, "features": extractor.name, "inception": extractor.inception,
            "n": len(real)}

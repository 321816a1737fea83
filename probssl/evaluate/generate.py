"""What a representation keeps, shown as images: reconstructions, class-conditional samples,
and decoders trained on frozen encoders (arXiv:2402.01399 Fig. 2-3; SPEC §2).

Works from a loaded run: generative methods bring their own decoder; for any other encoder
:func:`train_decoder` fits one on the frozen encoder means (MSE, Adam 1e-4, early stopping on
a validation split) and saves it as ``RUN/decoder.pt``.
"""

from __future__ import annotations

import io
import math
import os
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from probssl.data.augment import preprocess
from probssl.errors import UserError, exception_line
from probssl.evaluate.embed import compute_embeddings, run_embeddings
from probssl.nn import build_decoder
from probssl.userio import read_bytes

DECODER_FILE = "decoder.pt"


def frozen_decoder(loaded) -> tuple[torch.nn.Module, str]:
    """The run's decoder (z -> logits) and where it came from: ``"model"`` (a generative
    method's own) or ``"trained on the frozen encoder"`` (``RUN/decoder.pt``)."""
    dec = loaded.method.image_decoder()
    if dec is not None:
        return dec.eval(), "model"
    path = Path(loaded.run_dir) / DECODER_FILE
    if not path.exists():
        raise UserError(f"{loaded.run_dir}: {loaded.resolved.train.method} has no decoder; "
                        f"fit one first with `probssl train-decoder {loaded.run_dir}`")
    state = read_decoder_file(path)
    if state["epoch"] != loaded.epoch:
        raise UserError(f"{path} was fitted to the checkpoint of epoch {state['epoch']}, "
                        f"the run is now at epoch {loaded.epoch}; run train-decoder again")
    dec = _new_decoder(loaded)
    try:
        dec.load_state_dict(state["decoder"])
    except (RuntimeError, TypeError, AttributeError, KeyError, ValueError) as exc:
        raise UserError(f"decoder {path} does not match the run's encoder "
                        f"({exception_line(exc)}); run "
                        "train-decoder again") from None
    return dec.eval(), "trained on the frozen encoder"


def read_decoder_file(path: Path) -> dict:
    """``RUN/decoder.pt`` as written by :func:`train_decoder`; damage (unreadable, truncated,
    not a tensor archive, wrong structure) is one :class:`UserError` naming it."""
    data = read_bytes(path, "decoder")
    try:
        state = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except Exception as exc:  # truncated zip, not a torch file, disallowed pickle, ...
        raise UserError(f"decoder {path} is damaged ({exception_line(exc, 120, with_type=True)})"
                        "; run train-decoder again") from None
    epoch = state.get("epoch") if isinstance(state, dict) else None
    if not isinstance(state, dict) or not isinstance(state.get("decoder"), dict) or \
            isinstance(epoch, bool) or not isinstance(epoch, int):
        raise UserError(f"decoder {path} is not a probssl decoder file (expected "
                        "'decoder' weights and an integer 'epoch'); run train-decoder again")
    return state


def _new_decoder(loaded) -> torch.nn.Module:
    m = loaded.resolved.method
    return build_decoder(m.arch, m.latent_dim, loaded.resolved.data.image_shape)


def _images(loaded, split: str) -> torch.Tensor:
    x, _ = loaded.resolved.data.split(split)
    return x


@torch.no_grad()
def reconstruct(loaded, x_uint8: torch.Tensor, batch_size: int = 512) -> torch.Tensor:
    """Decoded encoder means of images (uint8 NCHW) -> float images in [0, 1]."""
    dec, _ = frozen_decoder(loaded)
    x = preprocess(x_uint8, loaded.resolved.augment)
    out = []
    for i in range(0, len(x), batch_size):
        z = loaded.method.encoder.embed(x[i:i + batch_size])
        out.append(torch.sigmoid(dec(z).float()))
    return torch.cat(out)


@torch.no_grad()
def reconstruction_mse(loaded, split: str = "test") -> float:
    """Mean squared error per pixel between test images and their reconstructions."""
    x = _images(loaded, split)
    target = preprocess(x, loaded.resolved.augment)
    return float(F.mse_loss(reconstruct(loaded, x), target))


@torch.no_grad()
def class_conditional_samples(loaded, per_class: int = 8, seed: int = 0
                              ) -> tuple[torch.Tensor, list[int]]:
    """Fit a full-covariance Gaussian to the training means of each label, sample
    ``per_class`` codes from each and decode: ((n_classes * per_class, C, H, W), labels)."""

    dec, _ = frozen_decoder(loaded)  # first: a missing or damaged decoder fails fast
    z, y = run_embeddings(loaded, "train")
    if y is None:
        raise UserError("class-conditional samples need a labelled dataset")
    gen = torch.Generator().manual_seed(seed)
    codes, labels = [], []
    for c in np.unique(y):
        zc = torch.as_tensor(z[y == c], dtype=torch.float64)
        if len(zc) < 2:
            continue
        mean = zc.mean(0)
        cov = torch.cov(zc.T) + 1e-6 * torch.eye(zc.shape[1], dtype=torch.float64)
        chol = torch.linalg.cholesky(cov)
        eps = torch.randn(per_class, zc.shape[1], generator=gen, dtype=torch.float64)
        codes.append(mean + eps @ chol.T)
        labels += [int(c)] * per_class
    out = torch.sigmoid(dec(torch.cat(codes).float()).float())
    return out, labels


@torch.no_grad()
def generated_samples(loaded, n: int, seed: int = 0, batch_size: int = 512) -> torch.Tensor:
    """``n`` decoded samples, z drawn from a full-covariance Gaussian fitted to all training
    means. The same rule for every method (a VAE's N(0, I) prior, SimVAE's hierarchical one
    and a discriminative encoder with a post-hoc decoder alike), so FIDs compare the
    representations rather than each model's prior mismatch."""

    dec, _ = frozen_decoder(loaded)  # first: a missing or damaged decoder fails fast
    z, _ = run_embeddings(loaded, "train")
    return decoded_gaussian_samples(dec, z, n, seed, batch_size)


@torch.no_grad()
def decoded_gaussian_samples(decoder: torch.nn.Module, z_train: np.ndarray, n: int,
                             seed: int = 0, batch_size: int = 512) -> torch.Tensor:
    """``n`` images decoded from codes drawn from a full-covariance Gaussian fitted to the
    training codes ``z_train`` (the FID samples of :func:`generated_samples`)."""
    z = torch.as_tensor(z_train, dtype=torch.float64)
    cov = torch.cov(z.T) + 1e-6 * torch.eye(z.shape[1], dtype=torch.float64)
    eps = torch.randn(n, z.shape[1], generator=torch.Generator().manual_seed(seed),
                      dtype=torch.float64)
    codes = (z.mean(0) + eps @ torch.linalg.cholesky(cov).T).float()
    return torch.cat([torch.sigmoid(decoder(codes[i:i + batch_size]).float())
                      for i in range(0, n, batch_size)])


def fit_decoder(decoder: torch.nn.Module, z: torch.Tensor, x: torch.Tensor, epochs: int = 200,
                lr: float = 1e-4, batch_size: int = 128, patience: int = 10,
                val_fraction: float = 0.1, seed: int = 0, progress: bool = True
                ) -> tuple[dict, dict]:
    """Fit ``decoder`` (z -> logits) to frozen codes ``z`` (N, d) and float images ``x`` in
    [0, 1]: MSE of the sigmoid, Adam, the ``val_fraction`` held out for early stopping after
    ``patience`` epochs without progress. Returns (best weights, info). Any encoder's codes
    work: a run's means (:func:`train_decoder`) or an external encoder's."""
    if epochs < 1 or not lr > 0 or batch_size < 1 or patience < 1:
        raise UserError("train-decoder: epochs, batch size and patience >= 1, lr > 0")
    n_val = max(1, int(len(x) * val_fraction))
    perm = torch.randperm(len(x), generator=torch.Generator().manual_seed(seed))
    tr, va = perm[n_val:], perm[:n_val]
    opt = torch.optim.Adam(decoder.parameters(), lr=lr)
    gen = torch.Generator().manual_seed(seed + 1)
    best, best_state, bad, history = math.inf, None, 0, []
    bar = tqdm(range(epochs), desc="train-decoder", disable=not progress or None)
    for _ in bar:
        decoder.train()
        order = tr[torch.randperm(len(tr), generator=gen)]
        for i in range(0, len(order), batch_size):
            idx = order[i:i + batch_size]
            loss = F.mse_loss(torch.sigmoid(decoder(z[idx])), x[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        decoder.eval()
        with torch.no_grad():
            val = float(F.mse_loss(torch.sigmoid(decoder(z[va])), x[va]))
        history.append(val)
        bar.set_postfix(val_mse=f"{val:.4f}")
        if val < best - 1e-6:
            best, bad = val, 0
            best_state = {k: v.clone() for k, v in decoder.state_dict().items()}
        else:
            bad += 1
            if bad >= patience:
                break
    bar.close()
    decoder.load_state_dict(best_state)
    return best_state, {"val_mse": best, "epochs_run": len(history), "lr": lr,
                        "batch_size": batch_size, "patience": patience}


def save_decoder_file(path: Path, state: dict, info: dict) -> None:
    """``{"decoder": weights, **info}`` written atomically (a tensor archive, no pickle of
    code: read back with ``weights_only=True``)."""
    tmp = path.with_name(f".decoder.tmp-{os.getpid()}.pt")
    try:
        torch.save({"decoder": state, **info}, tmp)
        tmp.replace(path)
    except OSError as exc:
        raise UserError(f"cannot write {path}: {exc.strerror or exc}") from None
    finally:
        tmp.unlink(missing_ok=True)


def train_decoder(loaded, epochs: int = 200, lr: float = 1e-4, batch_size: int = 128,
                  patience: int = 10, val_fraction: float = 0.1, seed: int = 0,
                  progress: bool = True) -> dict:
    """Fit a decoder to the run's frozen encoder means (:func:`fit_decoder` on preprocessed
    training images); saves ``RUN/decoder.pt``."""
    path = Path(loaded.run_dir) / DECODER_FILE
    if path.is_dir():  # before the work: it could not be replaced afterwards
        raise UserError(f"cannot write {path}: it is a directory")
    data, aug = loaded.resolved.data, loaded.resolved.augment
    x = preprocess(data.x_train, aug)
    z = torch.from_numpy(compute_embeddings(loaded.method.encoder.embed, data.x_train, aug,
                                            1024, "cpu")).float()
    torch.manual_seed(seed)
    state, fit = fit_decoder(_new_decoder(loaded), z, x, epochs, lr, batch_size, patience,
                             val_fraction, seed, progress)
    info = {"epoch": loaded.epoch, **fit}
    save_decoder_file(path, state, info)
    return info

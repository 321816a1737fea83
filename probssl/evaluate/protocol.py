"""The evaluation protocol of a run on frozen means: kNN (k = 1..15), linear and MLP probes,
GMM clustering (accuracy, NMI, ARI)."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from probssl.data.augment import augment, preprocess
from probssl.errors import UserError
from probssl.evaluate.attributes import attribute_scores
from probssl.evaluate.clustering import gmm_clustering
from probssl.evaluate.embed import run_embeddings
from probssl.evaluate.factors import factor_scores
from probssl.evaluate.fid import fid_of_run, load_feature_extractor
from probssl.evaluate.generate import DECODER_FILE, reconstruction_mse
from probssl.evaluate.knn import METRICS, knn_accuracy, knn_accuracy_val_k
from probssl.evaluate.likelihood import run_likelihood
from probssl.evaluate.probe import train_probe
from probssl.evaluate.rankme import rankme
from probssl.runs.format import LoadedRun
from probssl.runs.result import RunResult
from probssl.schema import check_types


@dataclass
class EvalConfig:
    k_max: int = 15
    knn_metric: str = "euclidean"
    probe_epochs: int = 200
    probe_lr: float = 3e-4
    probe_batch_size: int = 128
    mlp_probe: bool = True  # also an MLP probe with one hidden ReLU layer of width d
    gmm_n_init: int = 20  # GMM restarts (paper 200, authors' code 20); 0 skips clustering
    # FID features: "classifier" (offline, not Inception), "inception:PATH" or "none"
    fid_features: str = "classifier"
    fid_samples: int = 5000
    seed: int = 0

    def __post_init__(self) -> None:
        check_types(self, "evaluate")
        if self.k_max < 1:
            raise UserError(f"k_max must be >= 1; got {self.k_max}")
        if self.knn_metric not in METRICS:
            raise UserError(f"knn metric must be one of {', '.join(METRICS)}; "
                            f"got {self.knn_metric!r}")
        if self.probe_epochs < 1 or self.probe_batch_size < 1 or not self.probe_lr > 0:
            raise UserError("probe epochs, batch size and lr must be positive")
        if self.gmm_n_init < 0:
            raise UserError(f"gmm n_init must be >= 0; got {self.gmm_n_init}")
        if self.fid_features not in ("classifier", "none") and not \
                self.fid_features.startswith("inception:"):
            raise UserError(f"fid features must be 'classifier', 'inception:PATH' or 'none'; "
                            f"got {self.fid_features!r}")
        if self.fid_samples < 2:
            raise UserError(f"fid samples must be >= 2; got {self.fid_samples}")

    def footer(self) -> str:
        return (f"Protocol: frozen encoder means, no augmentation; kNN {self.knn_metric} "
                f"distance, k = 1..{self.k_max}, 'best k' chosen on the test set as in the "
                f"SimVAE paper (k chosen on a 10 % validation split of train also reported); "
                f"linear{' and MLP (one hidden ReLU layer of width d)' if self.mlp_probe else ''}"
                f" probe Adam lr {self.probe_lr}, {self.probe_epochs} epochs, batch "
                f"{self.probe_batch_size}, standardised features"
                + (f"; GMM full covariance, one component per class, n_init {self.gmm_n_init}, "
                   "fitted on train, scored on test (Hungarian-matched accuracy, NMI, ARI)."
                   if self.gmm_n_init else ".")
                + ("" if self.fid_features == "none" else
                   f" FID: {self.fid_samples} decoded samples (z from a Gaussian fitted to the "
                   f"training means) vs as many test images, features: "
                   + ("an MLP classifier trained by probssl — NOT comparable to published "
                      "(Inception) FIDs." if self.fid_features == "classifier"
                      else f"Inception-v3 ({self.fid_features.split(':', 1)[1]}).")))


def evaluate_embeddings(z_train, y_train, z_test, y_test, cfg: EvalConfig) -> dict:
    """The protocol on frozen embeddings: kNN for k = 1..``cfg.k_max`` (best k on test, and k
    chosen on a validation part of the training set), a linear probe, an MLP probe
    (``cfg.mlp_probe``), GMM clustering (``cfg.gmm_n_init`` > 0) and RankMe of ``z_train``;
    one dict with the sizes, the protocol and the seconds taken. Missing labels are a
    :class:`UserError`."""
    if y_train is None or y_test is None:
        raise UserError("this dataset has no labels, so kNN and probe accuracy cannot be "
                        "computed (use `probssl embed` to export the embeddings instead)")
    t0 = time.perf_counter()
    ks = range(1, cfg.k_max + 1)
    knn = knn_accuracy(z_train, y_train, z_test, y_test, ks, cfg.knn_metric)
    knn_val = knn_accuracy_val_k(z_train, y_train, z_test, y_test, ks, cfg.knn_metric,
                                 seed=cfg.seed)
    probe = train_probe(z_train, y_train, z_test, y_test, epochs=cfg.probe_epochs,
                        lr=cfg.probe_lr, batch_size=cfg.probe_batch_size, seed=cfg.seed)
    extra = {}
    if cfg.mlp_probe:
        d = int(np.asarray(z_train).shape[1])
        extra["mlp_probe"] = train_probe(z_train, y_train, z_test, y_test, hidden=d,
                                         epochs=cfg.probe_epochs, lr=cfg.probe_lr,
                                         batch_size=cfg.probe_batch_size, seed=cfg.seed)
    if cfg.gmm_n_init:
        n_classes = int(max(np.max(y_train), np.max(y_test))) + 1
        extra["gmm"] = gmm_clustering(z_train, z_test, y_test, n_classes, cfg.gmm_n_init,
                                      seed=cfg.seed)
    # label-free: RankMe of the training embeddings (Garrido et al. 2023), beside the
    # supervised protocol, so the two can be compared run by run
    extra["rankme"] = {"rank": rankme(z_train), "on": "train"}
    return {"knn": knn, "knn_val_k": knn_val, "linear_probe": probe, **extra,
            "n_train": int(len(z_train)), "n_test": int(len(z_test)),
            "dim": int(np.asarray(z_train).shape[1]), "protocol": asdict(cfg),
            "seconds": round(time.perf_counter() - t0, 2)}


def evaluate_run_result(loaded: LoadedRun, cfg: EvalConfig, device: str = "cpu"
                        ) -> RunResult:
    """The protocol on a loaded run, as one record (its nested form is ``eval.json``)."""
    z_tr, y_tr = run_embeddings(loaded, "train", device=device)
    z_te, y_te = run_embeddings(loaded, "test", device=device)
    result = evaluate_embeddings(z_tr, y_tr, z_te, y_te, cfg)
    tc = loaded.resolved.train
    if loaded.method.pair_critic() is not None:
        result["pair_retrieval"] = pair_retrieval(loaded, device=device)
    return RunResult.from_json(result, run=str(Path(loaded.run_dir)), method=tc.method,
                               dataset=tc.dataset, seed=tc.seed, epoch=loaded.epoch)


def evaluate_run(loaded: LoadedRun, cfg: EvalConfig, device: str = "cpu") -> dict:
    """:func:`evaluate_run_result` in its nested form (what ``eval.json`` holds)."""
    return evaluate_run_result(loaded, cfg, device).to_json()


def extra_evaluations(loaded: LoadedRun, cfg: EvalConfig) -> dict:
    """What only some runs or datasets allow: the held-out ELBO and importance-weighted
    log-likelihood (``Method.likelihood_model()``), reconstruction MSE and FID (runs with a decoder,
    their own or one from ``probssl train-decoder``), per-factor probes (data recording its
    generative factors, e.g. ``shapes``) and attribute probes (data with attributes, CelebA).
    Each is asked of what the method and the dataset declare: ``Method.image_decoder()``,
    ``ImageDataset.factor_names`` / ``discrete_factors`` / ``attribute_names``."""
    out: dict = {}
    data = loaded.resolved.data
    likelihood = run_likelihood(loaded, cfg.seed)  # density models: ELBO and log p̂_K
    if likelihood is not None:
        out["likelihood"] = likelihood
    has_decoder = (loaded.method.image_decoder() is not None
                   or (Path(loaded.run_dir) / DECODER_FILE).exists())
    if has_decoder:
        out["mse"] = reconstruction_mse(loaded)
        if cfg.fid_features != "none" and data.y_train is not None:
            extractor = load_feature_extractor(
                cfg.fid_features, preprocess(data.x_train, loaded.resolved.augment),
                data.y_train, key=(data.name, loaded.resolved.train.augmentation), seed=cfg.seed)
            out["fid"] = fid_of_run(loaded, extractor, cfg.fid_samples, cfg.seed)
    if has_dataset_extras(data):
        z_tr, _ = run_embeddings(loaded, "train")
        z_te, _ = run_embeddings(loaded, "test")
        out.update(dataset_extras(data, z_tr, z_te, cfg))
    return out


def has_dataset_extras(data) -> bool:
    """Whether ``data`` records generative factors (e.g. ``shapes``) or attributes (CelebA)."""
    return bool(data.factor_names and data.factors) or bool(data.attributes)


def dataset_extras(data, z_train: np.ndarray, z_test: np.ndarray, cfg: EvalConfig) -> dict:
    """What the dataset's ground truth allows on frozen embeddings of its splits: per-factor
    probes (``factors``) and attribute probes (``attributes``). Any encoder's embeddings
    work: a probssl run's or an external one's (``evaluate --encoder``)."""
    out: dict = {}
    if data.factor_names and data.factors:
        discrete = tuple(n for n in data.factor_names if n in data.discrete_factors)
        out["factors"] = factor_scores(z_train, data.factors["train"].numpy(), z_test,
                                       data.factors["test"].numpy(), data.factor_names,
                                       discrete, epochs=cfg.probe_epochs, seed=cfg.seed)
    if data.attributes:
        out["attributes"] = attribute_scores(
            z_train, data.attributes["train"].numpy(), z_test, data.attributes["test"].numpy(),
            list(data.attribute_names), epochs=cfg.probe_epochs, lr=cfg.probe_lr,
            batch_size=cfg.probe_batch_size, seed=cfg.seed)
    return out


@torch.no_grad()
def pair_retrieval(loaded, split: str = "test", batch_size: int = 128, seed: int = 0,
                   device: str = "cpu") -> dict:
    """Held-out pair retrieval for critic-based methods (arXiv:2107.02495v3 App. A.1, Eq. 34).

    Two augmentations of each held-out image form a pair; within batches of ``batch_size``
    pairs, x_i's predicted partner is argmax_j P(j | i) ∝ f(z_i, z'_j). Returns top-1 accuracy
    (chance = 1 / batch_size).
    """
    method = loaded.method
    x, _ = loaded.resolved.data.split(split)
    gen = torch.Generator(device=device).manual_seed(seed)
    hits, total = 0, 0
    for start in range(0, len(x) - batch_size + 1, batch_size):
        views = augment(x[start:start + batch_size].to(device), 2, loaded.resolved.augment, gen)
        z = method.encoder.embed(views[:, 0])
        zp = method.encoder_prime.embed(views[:, 1])
        scores = method.pair_critic()(z, zp)
        hits += int((scores.argmax(1) == torch.arange(len(z), device=device)).sum())
        total += len(z)
    return {"top1": hits / max(total, 1), "pairs": total, "batch_size": batch_size,
            "chance": 1 / batch_size}

"""Named settings: ``--preset paper | reference-code | quick`` (or ``TrainConfig(preset=...)``).

A preset fills TrainConfig fields and method params; a config file and flags override it
(defaults < preset < config file < flags, :func:`probssl.config.resolve`). The resolved
values are written to the run's config.json, so a run never depends on a preset's later
edits.

Each method declares its own presets beside its code (``register_method(...,
presets={...})``); this module holds what every method shares and the order in which layers
combine. A preset is a chain of layers, each a (TrainConfig values, params) pair applied in
turn — the shared layer of that name first, then the method's:

* ``paper``: the SimVAE paper (arXiv:2402.01399 §5, App. A.7; SPEC §2): batch 128 and, on
  the datasets of its Table 2, that table's augmentation with its *vertical* flip
  (:data:`probssl.data.augment.PAPER_AUGMENTATION`; the dataset defaults flip
  horizontally). The VAE
  family adds Adam lr 8e-5, 400 epochs, a Gaussian likelihood σ_x² = 0.02
  (:data:`GENERATIVE_PAPER`); each discriminative method its epochs and lr.
* ``reference-code``: ``paper``, then the authors' released SimVAE code (SPEC §4) where a
  method declares it (SimVAE, CR-VAE).
* ``quick``: ``paper``, then the smallest budget at which **every** method's encoder beats
  the untrained (``random``) encoder on digits, for demos and first looks: 30 epochs,
  batch 64, Adam lr 1e-3 for every method (VICReg's paper lr 1e-4 does not beat random
  within 40 epochs), SimVAE J = 4. Measured with an independent kNN (scikit-learn 5-NN,
  5-fold CV on the test embeddings), 3 seeds (docs/RESULTS.md, "The quick preset"): at
  3 epochs (its old value) VAE, β-VAE, CR-VAE, SimVAE and VICReg were *worse* than random
  (36-47 % vs 67.6 %); β-VAE and VICReg first beat it on every seed at 30 epochs. ``shapes``
  needs its own budget (see RESULTS.md); ``quick`` is not a paper setting.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from probssl.data.augment import PAPER_AUGMENTATION
from probssl.errors import UserError

PRESETS = ("paper", "reference-code", "quick")
# the layers each preset applies, in order
CHAINS = {"paper": ("paper",), "reference-code": ("paper", "reference-code"),
          "quick": ("paper", "quick")}
QUICK_EPOCHS = 30  # the smallest budget at which every method beats the untrained encoder
MNIST_FAMILY = ("mnist", "fashion-mnist", "mnist-test", "digits")

# what every method shares, per layer
def _paper(dataset: str) -> tuple[dict[str, Any], dict[str, Any]]:
    train: dict[str, Any] = {"batch_size": 128}
    if dataset in PAPER_AUGMENTATION:
        train["augmentation"] = PAPER_AUGMENTATION[dataset]
    return train, {}


SHARED: dict[str, Any] = {
    "paper": _paper,
    "reference-code": ({}, {}),
    "quick": ({"epochs": QUICK_EPOCHS, "batch_size": 64, "lr": 1e-3}, {}),
}

# the paper's VAE family (vae, beta-vae, cr-vae, simvae): Adam 8e-5, 400 epochs, σ_x² = 0.02
GENERATIVE_PAPER: tuple[dict[str, Any], dict[str, Any]] = (
    {"lr": 8e-5, "epochs": 400}, {"likelihood": "gaussian", "likelihood_var": 0.02})


# A layer: (TrainConfig values, method params), or a function of the dataset name returning
# them (e.g. a likelihood that depends on the data).
PresetLayer = tuple[dict[str, Any], dict[str, Any]] | Callable[[str], tuple[dict[str, Any],
                                                                           dict[str, Any]]]


def _layer(layer: PresetLayer, dataset: str) -> tuple[dict[str, Any], dict[str, Any]]:
    train, params = layer(dataset) if callable(layer) else layer
    return dict(train), dict(params)


def combine(preset: str, method_layers: dict[str, PresetLayer], dataset: str
            ) -> tuple[dict[str, Any], dict[str, Any]]:
    """(TrainConfig values, method params) of ``preset`` for a method declaring
    ``method_layers`` (its ``presets``), on ``dataset``: for each layer of the preset's
    chain, the shared values, then the method's. (By method name:
    :func:`probssl.config.preset_values`.)"""
    if preset not in PRESETS:
        raise UserError(f"unknown preset {preset!r}; choose from {', '.join(PRESETS)}")
    train: dict[str, Any] = {}
    params: dict[str, Any] = {}
    for name in CHAINS[preset]:
        for layer in (SHARED[name], method_layers.get(name, ({}, {}))):
            t, p = _layer(layer, dataset)
            train.update(t)
            params.update(p)
    return train, params

"""Attribute probes for data with many binary labels (CelebA; arXiv:2402.01399 Fig. 4-5,
App. A.7.1).

* :data:`CELEBA_ATTRIBUTES`: the 20 attributes we report. The paper plots 20 attributes
  (Fig. 5) without naming them in its text; this list is our choice — every attribute that
  describes hair, face shape, expression or accessories, excluding ``Male`` (the content
  label) — and it is stored with every result so tables say what they cover.
* :func:`hair_colour_labels`: the paper's 5-class hair colour (bald, black, blond, brown,
  gray) from the one-hot hair attributes; images with none or several of them set are
  ambiguous and dropped, as in the paper.

Each attribute gets its own probe (MLP with one hidden ReLU layer of width d by default, the
paper's "MP"), fitted on the training split's frozen means and scored on the test split.
"""

from __future__ import annotations

import numpy as np

from probssl.errors import UserError
from probssl.evaluate.probe import train_probe

CELEBA_ATTRIBUTES = (
    "Attractive", "Bangs", "Big_Lips", "Big_Nose", "Black_Hair", "Blond_Hair", "Brown_Hair",
    "Bushy_Eyebrows", "Eyeglasses", "Gray_Hair", "Heavy_Makeup", "High_Cheekbones",
    "Mouth_Slightly_Open", "Mustache", "No_Beard", "Pale_Skin", "Smiling", "Straight_Hair",
    "Wavy_Hair", "Wearing_Hat",
)
HAIR_COLOURS = ("Bald", "Black_Hair", "Blond_Hair", "Brown_Hair", "Gray_Hair")


def _columns(names: list[str], wanted) -> list[int]:
    missing = [a for a in wanted if a not in names]
    if missing:
        raise UserError(f"attributes not in the dataset: {', '.join(missing)}")
    return [names.index(a) for a in wanted]


def hair_colour_labels(attrs, names: list[str]) -> np.ndarray:
    """(N,) class index into :data:`HAIR_COLOURS`, or -1 where the hair colour is ambiguous
    (no hair attribute set, or more than one)."""
    a = np.asarray(attrs)[:, _columns(names, HAIR_COLOURS)]
    labels = a.argmax(1).astype(np.int64)
    labels[a.sum(1) != 1] = -1
    return labels


def attribute_scores(z_train, a_train, z_test, a_test, names: list[str],
                     attributes=CELEBA_ATTRIBUTES, *, mlp: bool = True, epochs: int = 200,
                     lr: float = 3e-4, batch_size: int = 128, seed: int = 0) -> dict:
    """Test accuracy of one probe per attribute, plus the 5-class hair colour probe.

    Returns ``{"attributes": {name: accuracy}, "majority": {name: accuracy of always
    predicting the training split's majority value}, "hair_colour": accuracy, "hair_colour_n":
    (train, test) images kept, "probe": "mlp" | "linear"}``.
    """
    z_train, z_test = np.asarray(z_train), np.asarray(z_test)
    a_train, a_test = np.asarray(a_train), np.asarray(a_test)
    hidden = int(z_train.shape[1]) if mlp else None
    kw = dict(hidden=hidden, epochs=epochs, lr=lr, batch_size=batch_size, seed=seed)
    acc, majority = {}, {}
    for name, col in zip(attributes, _columns(names, attributes), strict=True):
        r = train_probe(z_train, a_train[:, col], z_test, a_test[:, col], **kw)
        acc[name] = r["test_accuracy"]
        most = int(np.bincount(a_train[:, col], minlength=2).argmax())
        majority[name] = float((a_test[:, col] == most).mean())
    out = {"attributes": acc, "majority": majority, "probe": "mlp" if mlp else "linear"}
    h_tr, h_te = hair_colour_labels(a_train, names), hair_colour_labels(a_test, names)
    keep_tr, keep_te = h_tr >= 0, h_te >= 0
    if keep_tr.sum() and keep_te.sum():
        r = train_probe(z_train[keep_tr], h_tr[keep_tr], z_test[keep_te], h_te[keep_te], **kw)
        out["hair_colour"] = r["test_accuracy"]
        out["hair_colour_n"] = [int(keep_tr.sum()), int(keep_te.sum())]
    return out

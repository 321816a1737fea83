"""One evaluated run as one typed record, with its two file forms.

* nested (:meth:`RunResult.to_json` / :meth:`RunResult.from_json`): the evaluators' outputs
  under their names, as ``RUN/eval.json`` holds them — ``{"knn": {"best": ...,
  "per_k": ...}, "linear_probe": {"test_accuracy": ...}, ..., "method", "dataset", "seed",
  "epoch", "protocol", "run", "n_train", "n_test", "dim", "seconds"}``;
* flat (:meth:`RunResult.flat`): one number per table column, as a bench cell's
  ``RUN/result.json`` holds it and the tables read it — ``{"knn_best": ..., "knn_val_k":
  ..., "linear_probe": ..., "gmm_accuracy": ..., "nmi": ..., ...}``.

:data:`FLAT_METRICS` is the one place that says which nested number each flat key is.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from probssl.errors import UserError
from probssl.userio import Check, read_json_as

# flat key -> (evaluator, its field): the numbers every labelled evaluation has (the optional
# evaluators are left out when they did not run)
FLAT_METRICS: dict[str, tuple[str, str]] = {
    "knn_best": ("knn", "best"),
    "knn_val_k": ("knn_val_k", "accuracy"),
    "linear_probe": ("linear_probe", "test_accuracy"),
    "mlp_probe": ("mlp_probe", "test_accuracy"),
    "gmm_accuracy": ("gmm", "accuracy"),
    "nmi": ("gmm", "nmi"),
    "ari": ("gmm", "ari"),
    "rankme": ("rankme", "rank"),
}
IDENTITY = ("method", "dataset", "seed", "epoch", "protocol", "run")
INFO = ("n_train", "n_test", "dim", "seconds")  # about the evaluation, not a metric
CELL = ("cell", "sweep", "epochs", "train_seconds")  # a bench cell's config summary

# What a reused eval.json must hold (the keys the bench engine reads from it).
EVAL_SCHEMA = {"epoch": int, "protocol": dict, "knn": {"best": float},
               "knn_val_k": {"accuracy": float}, "linear_probe": {"test_accuracy": float},
               "mlp_probe?": {"test_accuracy": float},
               "gmm?": {"accuracy": float, "nmi": float, "ari": float},
               "rankme?": {"rank": float}}

_SCALAR = (str, int, float, bool)
# What a result.json (the flat view of a bench cell) must hold to be trusted (by a resumed
# bench and by report).
RESULT_SCHEMA = {
    "cell": str, "method": str, "dataset": str, "seed": int, "epochs": int, "protocol": dict,
    "sweep": (None, Check(list, lambda v: len(v) == 2 and isinstance(v[0], str)
                          and isinstance(v[1], _SCALAR), "[key, value]")),
    "knn_best": float, "knn_val_k": float, "linear_probe": float, "mlp_probe?": float,
    "gmm_accuracy?": float, "nmi?": float, "ari?": float, "rankme?": float, "mse?": float,
    "fid?": float, "heldout_elbo?": float, "iwae_ll?": float,
    "fid_features?": str, "content?": float, "train_seconds?": float,
    "factors?": {str: {"metric": str, "value": float}},
    "attributes?": Check({"attributes": {str: float}, "majority": {str: float},
                          "probe": str, "hair_colour?": float},
                         lambda a: bool(a["attributes"]) and set(a["attributes"])
                         <= set(a["majority"]),
                         "attribute accuracies with a majority baseline for each"),
}


@dataclass
class RunResult:
    """One evaluated run: which run, under which protocol, and each evaluator's output.

    ``metrics`` maps an evaluator to what it returned: ``knn``, ``knn_val_k``,
    ``linear_probe`` always; ``mlp_probe``, ``gmm``, ``pair_retrieval``, ``mse`` (a float),
    ``fid``, ``factors``, ``attributes`` when they ran. ``cell``/``sweep``/``epochs``/
    ``train_seconds`` summarise a bench cell's config (``None`` for a plain evaluation)."""

    method: str
    dataset: str
    seed: int
    epoch: int  # the evaluated checkpoint's epoch
    protocol: dict[str, Any]  # the EvalConfig, as a dict
    metrics: dict[str, Any]
    run: str | None = None
    info: dict[str, Any] = field(default_factory=dict)  # n_train, n_test, dim, seconds
    cell: str | None = None
    sweep: tuple[str, Any] | None = None
    epochs: int | None = None  # the training epochs the run was configured for
    train_seconds: float | None = None

    # -- nested: eval.json ---------------------------------------------------------------

    def to_json(self) -> dict[str, Any]:
        """The nested form (``eval.json``): evaluators' outputs at the top level beside the
        identity; fields that are ``None`` are left out."""
        out: dict[str, Any] = {**self.metrics, **self.info, "protocol": self.protocol,
                               "method": self.method, "dataset": self.dataset,
                               "seed": self.seed, "epoch": self.epoch}
        if self.run is not None:
            out["run"] = self.run
        for key in CELL:
            value = getattr(self, key)
            if value is not None:
                out[key] = list(value) if key == "sweep" else value
        return out

    @classmethod
    def from_json(cls, obj: dict[str, Any], **defaults: Any) -> RunResult:
        """The record of a nested dict (as :meth:`to_json` writes it); identity fields it
        lacks are taken from ``defaults`` (e.g. the loaded run's method, dataset, seed)."""
        obj = dict(obj)
        ident = {k: obj.pop(k, defaults.get(k)) for k in IDENTITY}
        missing = [k for k in IDENTITY if ident[k] is None and k != "run"]
        if missing:
            raise UserError(f"evaluation result lacks {', '.join(missing)}")
        info = {k: obj.pop(k) for k in INFO if k in obj}
        cell = {k: obj.pop(k, None) for k in CELL}
        if cell["sweep"] is not None:
            cell["sweep"] = tuple(cell["sweep"])
        return cls(metrics=obj, info=info, **ident, **cell)

    # -- flat: result.json and the tables -------------------------------------------------

    def flat_metrics(self) -> dict[str, Any]:
        """One number (or small table) per column: :data:`FLAT_METRICS` of the evaluators
        that ran, and ``mse``, ``fid``/``fid_features``, ``factors`` with ``content`` (the
        linear probe's accuracy, read as content accuracy), ``attributes`` when present."""
        m = self.metrics
        out: dict[str, Any] = {key: m[ev][name] for key, (ev, name) in FLAT_METRICS.items()
                               if ev in m}
        if "mse" in m:
            out["mse"] = m["mse"]
        if "fid" in m:
            out["fid"], out["fid_features"] = m["fid"]["value"], m["fid"]["features"]
        if "factors" in m:
            out["factors"], out["content"] = m["factors"], out["linear_probe"]
        if "attributes" in m:
            out["attributes"] = m["attributes"]
        if "likelihood" in m:  # nats per test image
            out["heldout_elbo"], out["iwae_ll"] = m["likelihood"]["elbo"], m["likelihood"]["iwae"]
        return out

    def flat(self) -> dict[str, Any]:
        """The flat view the bench tables use (a cell's ``result.json``): identity, the
        cell's config summary when it is one, and :meth:`flat_metrics`."""
        out: dict[str, Any] = {"method": self.method, "dataset": self.dataset,
                               "seed": self.seed, "protocol": self.protocol}
        if self.cell is not None:
            out.update(cell=self.cell, sweep=None if self.sweep is None else list(self.sweep),
                       epochs=self.epochs)
        out.update(self.flat_metrics())
        if self.train_seconds is not None:
            out["train_seconds"] = self.train_seconds
        return out


def read_eval(path: Path, **defaults: Any) -> RunResult:
    """``RUN/eval.json`` checked against :data:`EVAL_SCHEMA` (one error naming it)."""
    return RunResult.from_json(read_json_as(path, "evaluation", EVAL_SCHEMA), **defaults)


def read_result(path: Path) -> dict[str, Any]:
    """A cell's ``result.json`` (the flat view), checked against :data:`RESULT_SCHEMA` (one
    error naming it)."""
    return read_json_as(path, "bench result", RESULT_SCHEMA)

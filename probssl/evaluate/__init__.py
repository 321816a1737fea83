"""Evaluators on frozen encoder means. Each takes embeddings (or an encoder callable),
never a specific model class."""

from probssl.evaluate.embed import compute_embeddings, run_embeddings
from probssl.evaluate.knn import knn_accuracy, knn_accuracy_val_k, knn_predict
from probssl.evaluate.probe import train_probe
from probssl.evaluate.protocol import EvalConfig, evaluate_embeddings, evaluate_run

__all__ = ["EvalConfig", "compute_embeddings", "evaluate_embeddings", "evaluate_run",
           "knn_accuracy", "knn_accuracy_val_k", "knn_predict", "run_embeddings",
           "train_probe"]

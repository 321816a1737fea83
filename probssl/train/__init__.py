"""The trainer: loop, checkpoints, resume, logging, DDP."""

from probssl.train.trainer import TrainResult, train

__all__ = ["TrainResult", "train"]

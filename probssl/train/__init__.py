"""The trainer: a run from its config (:func:`train`), the loop (:class:`Trainer`,
:func:`train_step`) and its callbacks, checkpoints, resume, logging, DDP."""

from probssl.train.loop import Callback, Trainer, train_step
from probssl.train.trainer import TrainResult, train

__all__ = ["Callback", "TrainResult", "Trainer", "train", "train_step"]

"""What online evaluation (``--eval-every``) costs, against a training epoch, on mnist-test.

    OMP_NUM_THREADS=1 python scripts/online_eval_cost.py

Trains one epoch of each method (its row's ``seconds`` is training only), then times the
OnlineKNN callback (1,000 validation images against 5,000 reference images, the defaults) on
the trained encoder, best of 3. Both numbers come from the same process, one after the other.
"""

from __future__ import annotations

import tempfile
import time
from types import SimpleNamespace

import torch

from probssl.config import TrainConfig
from probssl.runs import load_run
from probssl.train import train
from probssl.train.callbacks import OnlineKNN
from probssl.train.distributed import DistInfo

torch.set_num_threads(1)
with tempfile.TemporaryDirectory() as tmp:
    for method, params in (("simvae", {"n_views": 4}), ("vae", {}), ("simclr", {})):
        cfg = TrainConfig(method=method, dataset="mnist-test", epochs=1, seed=0, device="cpu",
                          tensorboard=False, params=params)
        epoch_s = train(cfg, f"{tmp}/{method}", progress=False,
                        verbose=False).history[-1]["seconds"]
        loaded = load_run(f"{tmp}/{method}")
        data = loaded.resolved.data
        callback = OnlineKNN(1, data.x_train, data.y_train, loaded.resolved.augment, 1000, 5000,
                             DistInfo())
        # what the callback reads of the trainer
        trainer = SimpleNamespace(method=loaded.method, device=torch.device("cpu"), epochs=1)
        times = []
        for _ in range(3):
            row = {"epoch": 1}
            start = time.perf_counter()
            callback.on_epoch_end(trainer, row)
            times.append(time.perf_counter() - start)
        print(f"{method}: epoch {epoch_s:.2f} s (training only), one online evaluation "
              f"{min(times):.3f} s = {100 * min(times) / epoch_s:.1f} % of an epoch")

"""Run under torchrun: trains through probssl's trainer, then saves this rank's weights."""

import sys
from pathlib import Path

import torch
import torch.distributed as dist

from probssl.config import TrainConfig
from probssl.train import train

out = Path(sys.argv[1])
cfg = TrainConfig(method="vae", dataset="digits", epochs=2, batch_size=64, seed=3,
                  device="cpu")
result = train(cfg, out, progress=False, verbose=False)
rank = int(__import__("os").environ["RANK"])
assert not dist.is_initialized()  # the trainer tears its process group down
torch.save(result.method.state_dict(), out / f"rank{rank}.pt")

"""Run under torchrun: trains through probssl's trainer, then saves this rank's weights.

usage: ddp_worker.py OUT EPOCHS [resume]
"""

import os
import sys
from pathlib import Path

import torch
import torch.distributed as dist

from probssl.config import TrainConfig
from probssl.train import train

out, epochs = Path(sys.argv[1]), int(sys.argv[2])
resume = len(sys.argv) > 3 and sys.argv[3] == "resume"
cfg = TrainConfig(method="vae", dataset="digits", epochs=epochs, batch_size=64, seed=3,
                  device="cpu")
result = train(cfg, out, resume=resume, progress=False, verbose=False)
assert not dist.is_initialized()  # the trainer tears its process group down
torch.save(result.method.state_dict(), out / f"rank{os.environ['RANK']}.pt")

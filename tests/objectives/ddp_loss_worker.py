"""Run under torchrun with 2 processes: a contrastive loss on each rank's half of a batch,
through DDP; rank 0 saves the averaged gradient and the per-rank losses.

usage: ddp_loss_worker.py LOSS OUT   (LOSS: nt_xent or vicreg)
"""

import sys
from pathlib import Path

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel as DDP

from probssl.train.distributed import shutdown
from tests.objectives.ddp_loss_cases import CASES, make_case

name, out = sys.argv[1], Path(sys.argv[2])
dist.init_process_group("gloo")
rank, world = dist.get_rank(), dist.get_world_size()
net, x = make_case()
local = x.chunk(world)[rank]
model = DDP(net)
loss = CASES[name](model(local.flatten(0, 1)).view(*local.shape[:2], -1))
loss.backward()
losses = [torch.zeros(()) for _ in range(world)]
dist.all_gather(losses, loss.detach())
if rank == 0:
    torch.save({"grad": net.weight.grad.clone(), "losses": torch.stack(losses)}, out)
del model, loss  # DDP must not outlive the group (probssl/train/distributed.py)
shutdown()

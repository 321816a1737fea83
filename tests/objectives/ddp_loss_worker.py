"""Run under torchrun with 2 processes: for each named loss, a contrastive loss on each rank's
half of a batch, through DDP (a fresh network and DDP wrapper per loss); rank 0 saves, per loss,
the averaged gradient and the per-rank losses.

usage: ddp_loss_worker.py LOSS[,LOSS...] OUT   (LOSS: nt_xent or vicreg)
"""

import sys
from pathlib import Path

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel as DDP

from probssl.train.distributed import shutdown
from tests.objectives.ddp_loss_cases import CASES, make_case

names, out = sys.argv[1].split(","), Path(sys.argv[2])
dist.init_process_group("gloo")
rank, world = dist.get_rank(), dist.get_world_size()
results = {}
for name in names:
    net, x = make_case()
    local = x.chunk(world)[rank]
    model = DDP(net)
    loss = CASES[name](model(local.flatten(0, 1)).view(*local.shape[:2], -1))
    loss.backward()
    losses = [torch.zeros(()) for _ in range(world)]
    dist.all_gather(losses, loss.detach())
    results[name] = {"grad": net.weight.grad.clone(), "losses": torch.stack(losses)}
    del model, loss  # DDP must not outlive the group (probssl/train/distributed.py)
if rank == 0:
    torch.save(results, out)
shutdown()

"""One rank of a 2-process gloo job that trains a small network through DDP (backward's
gradient all-reduce is its last collective, as in any user's training loop) and then simply
exits, as a user's script does. With probssl's teardown the process must leave with status 0
every time.

usage: ddp_exit_worker.py fixed|old
  fixed: drop the DDP wrapper, then probssl.train.distributed.shutdown()
  old:   dist.destroy_process_group() only — the teardown before the fix, which aborts
         about one run in three ("terminate called without an active exception")
"""

import sys

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel as DDP

from probssl.train.distributed import shutdown

dist.init_process_group("gloo")
torch.manual_seed(0)
model = DDP(nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 4)))
opt = torch.optim.Adam(model.parameters(), lr=1e-3)
for _ in range(3):
    opt.zero_grad()
    model(torch.randn(16, 8)).pow(2).mean().backward()
    opt.step()
# the job's last collective is backward's gradient all-reduce (e.g. a gradient-norm report
# after the last step), then teardown: the pattern that aborted about one exit in three
opt.zero_grad()
model(torch.randn(16, 8)).pow(2).mean().backward()
if sys.argv[1] == "old":
    dist.destroy_process_group()
else:
    del model, opt
    shutdown()

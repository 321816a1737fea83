"""Contrastive losses under DDP with 2 real gloo processes equal one process on the whole batch
(loss and gradient) — the check the popular SSL libraries lacked."""

import subprocess
import sys

import pytest
import torch

from tests.conftest import ROOT, subprocess_env
from tests.objectives.ddp_loss_cases import CASES, make_case


@pytest.fixture(scope="module")
def ddp_results(tmp_path_factory):
    """One 2-process torchrun job computes every loss of CASES (each with its own network and
    DDP wrapper); what rank 0 saved, per loss."""
    out = tmp_path_factory.mktemp("ddp") / "ddp.pt"
    proc = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2",
         "--standalone", "--nnodes=1", "-m", "tests.objectives.ddp_loss_worker",
         ",".join(sorted(CASES)), str(out)],
        cwd=ROOT, env=subprocess_env(), capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return torch.load(out)


@pytest.mark.parametrize("name", sorted(CASES))
def test_two_process_loss_and_gradient_equal_single_process(name, ddp_results):
    got = ddp_results[name]
    net, x = make_case()
    loss = CASES[name](net(x.flatten(0, 1)).view(*x.shape[:2], -1))
    loss.backward()
    torch.testing.assert_close(got["grad"], net.weight.grad, rtol=1e-5, atol=1e-6)
    if name == "nt_xent":  # per-rank means over local anchors average to the global mean
        torch.testing.assert_close(got["losses"].mean(), loss.detach(), rtol=1e-5, atol=1e-6)
    else:  # batch statistics: every rank computes the global loss
        torch.testing.assert_close(got["losses"], loss.detach().expand(2), rtol=1e-5, atol=1e-6)

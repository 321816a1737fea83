"""--sync-bn: batch norm over every rank's batch under DDP (CUDA only in torch)."""

import torch

from probssl.cli import main
from probssl.methods import build_method, make_method_config
from probssl.train.trainer import sync_batchnorm


def test_sync_bn_converts_every_batch_norm_and_keeps_the_parameters():
    cfg = make_method_config("vicreg", {}, arch="resnet", latent_dim=8)
    method = build_method("vicreg", cfg, (3, 32, 32))
    params, keys = list(method.parameters()), list(method.state_dict())
    n_bn = sum(isinstance(m, torch.nn.modules.batchnorm._BatchNorm) for m in method.modules())
    assert sync_batchnorm(method) == n_bn > 1
    assert all(isinstance(m, torch.nn.SyncBatchNorm) for m in method.modules()
               if isinstance(m, torch.nn.modules.batchnorm._BatchNorm))
    # the optimiser's parameters and the checkpoint's keys are unchanged
    assert all(a is b for a, b in zip(params, method.parameters(), strict=True))
    assert list(method.state_dict()) == keys


def test_sync_bn_on_cpu_is_one_line_before_anything_is_written(tmp_path, capsys):
    code = main(["train", "--method", "vicreg", "--dataset", "digits", "--epochs", "1",
                 "--device", "cpu", "--sync-bn", "--no-progress", "--out", str(tmp_path / "r")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "--sync-bn needs CUDA" in err[0]
    assert not (tmp_path / "r").exists()

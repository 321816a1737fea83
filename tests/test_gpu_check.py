"""scripts/gpu_check.sh: its CPU dry path runs here (the GPU path runs where a GPU is lent;
docs/PERFORMANCE.md), and the tests it runs on a GPU (marked ``cuda``) skip without one."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch

from probssl.config import TrainConfig
from probssl.train import train
from tests.conftest import ROOT


def test_gpu_check_dry_path_on_cpu_reports_epoch_times(tmp_path):
    # the smallest sizes the script accepts; its torchrun step is skipped here (probssl
    # training under torchrun is tested by tests/train/test_trainer.py's DDP test), which also
    # checks that GPU_CHECK_SKIP is honoured
    env = dict(os.environ, PYTHON=sys.executable, GPU_CHECK_IMAGES="256", GPU_CHECK_EPOCHS="1",
               GPU_CHECK_SKIP="tests,throughput,torchrun", OMP_NUM_THREADS="1")
    proc = subprocess.run(["bash", str(ROOT / "scripts" / "gpu_check.sh"), str(tmp_path / "o"),
                           "cpu"], env=env, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    summary = (tmp_path / "o" / "summary.md").read_text()
    assert summary in proc.stdout
    assert "simvae --preset paper, 256 images, J=10: epoch 1 took" in summary
    assert "torchrun" not in summary and "FAILED" not in summary
    rows = [json.loads(x) for x in (tmp_path / "o" / "simvae-paper.jsonl").read_text()
            .splitlines()]
    assert rows[0]["epoch"] == 1 and rows[0]["seconds"] > 0
    bad = subprocess.run(["bash", str(ROOT / "scripts" / "gpu_check.sh"), str(tmp_path / "b"),
                          "tpu"], env=env, capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and "DEVICE must be cuda or cpu" in bad.stderr


cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


@pytest.mark.cuda
@cuda
def test_training_on_cuda_learns_and_resumes(tmp_path):
    cfg = dict(method="simvae", dataset="digits", batch_size=128, seed=0, device="cuda",
               params={"n_views": 4})
    train(TrainConfig(epochs=2, **cfg), tmp_path / "a", progress=False, verbose=False)
    train(TrainConfig(epochs=1, **cfg), tmp_path / "b", progress=False, verbose=False)
    train(TrainConfig(epochs=2, **cfg), tmp_path / "b", resume=True, progress=False,
          verbose=False)
    rows = [json.loads(x) for x in (tmp_path / "a" / "metrics.jsonl").read_text().splitlines()]
    assert rows[1]["loss"] < rows[0]["loss"]
    resumed = [json.loads(x) for x in (tmp_path / "b" / "metrics.jsonl").read_text()
               .splitlines()]
    assert resumed[1]["loss"] == pytest.approx(rows[1]["loss"], rel=1e-4)


@pytest.mark.cuda
@cuda
def test_throughput_on_cuda_is_a_valid_measurement():
    from probssl.experiments.throughput import method_throughput

    row = method_throughput("simvae", 10, min_seconds=0.5, device=torch.device("cuda")).row()
    assert row["device"].startswith("cuda") and row["amp"] and row["peak_memory_mib"] > 0
    assert "invalid" not in row, row["invalid"]
    assert 0 < row["mfu_step"] <= 1 and row["roofline_gflops_tf32"] > 0

"""Training survives SIGKILL, Ctrl-C and a full disk (issue [7/7 reliability]).

The real command runs as a subprocess; it is killed in the middle of an epoch, resumed with
``--resume``, and its final weights must equal, bit for bit, those of a run that was never
interrupted (same seed, CPU, same thread count).
"""

from __future__ import annotations

import errno
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from probssl.cli import main
from probssl.runs import checkpoint as ckpt
from probssl.runs.checkpoint import list_checkpoints, load_checkpoint_file, load_latest
from tests.conftest import ROOT, subprocess_env

# digits: 1,438 training images / batch 32 = 45 steps per epoch; a checkpoint every 8
ARGS = ["--method", "simvae", "--set", "n_views=2", "--dataset", "digits", "--epochs", "3",
        "--batch-size", "32", "--seed", "3", "--device", "cpu", "--checkpoint-every", "8",
        "--no-progress"]


def _cmd(out: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "probssl", "train", *ARGS, "--out", str(out), *extra]


def _final_weights(run: Path) -> dict[str, torch.Tensor]:
    last = list_checkpoints(run)[-1][1]
    state = load_checkpoint_file(last)
    assert state["epoch"] == 3 and not state["step"]
    return state["model"]


def _assert_same(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> dict[str, torch.Tensor]:
    out = tmp_path_factory.mktemp("ref") / "run"
    subprocess.run(_cmd(out), check=True, env=subprocess_env(), cwd=ROOT, timeout=600,
                   capture_output=True)
    return _final_weights(out)


def _start_and_wait_for_mid_epoch_checkpoint(out: Path) -> subprocess.Popen:
    proc = subprocess.Popen(_cmd(out), env=subprocess_env(), cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        names = [p.name for _, p in list_checkpoints(out)]
        if any(n.startswith("epoch-0001-step-") for n in names):  # inside epoch 2
            return proc
        if proc.poll() is not None:
            pytest.fail(f"training ended before it could be interrupted: {proc.stderr.read()}")
        time.sleep(0.02)
    proc.kill()
    pytest.fail("no mid-epoch checkpoint appeared")


def test_sigkill_mid_epoch_then_resume_is_bit_identical(tmp_path, reference):
    out = tmp_path / "run"
    proc = _start_and_wait_for_mid_epoch_checkpoint(out)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL  # it was still running when killed
    newest = load_latest(out)
    assert newest["epoch"] >= 1 and newest["step"] > 0  # at most 8 steps lost, not an epoch
    resumed = subprocess.run(_cmd(out, "--resume"), env=subprocess_env(), cwd=ROOT,
                             timeout=600, capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr
    _assert_same(_final_weights(out), reference)
    rows = [line for line in (out / "metrics.jsonl").read_text().splitlines() if line]
    assert len(rows) == 3  # one row per epoch, the interrupted epoch counted once


def test_sigint_writes_a_checkpoint_and_exits_cleanly(tmp_path, reference):
    out = tmp_path / "run"
    proc = _start_and_wait_for_mid_epoch_checkpoint(out)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "Traceback" not in err and "continue exactly with --resume" in err
    resumed = subprocess.run(_cmd(out, "--resume"), env=subprocess_env(), cwd=ROOT,
                             timeout=600, capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr
    _assert_same(_final_weights(out), reference)


def test_full_disk_keeps_the_previous_checkpoint(tmp_path, monkeypatch, capsys):
    real_write = ckpt._write_synced

    def full_disk(path: Path, data: bytes) -> None:
        if path.name.startswith(".epoch-0002"):  # the disk fills while epoch 2 is saved
            with open(path, "wb") as fh:
                fh.write(data[: len(data) // 2])
            raise OSError(errno.ENOSPC, "No space left on device")
        real_write(path, data)

    monkeypatch.setattr(ckpt, "_write_synced", full_disk)
    code = main(["train", "--method", "vae", "--dataset", "digits", "--epochs", "3",
                 "--device", "cpu", "--no-progress", "--out", str(tmp_path / "r")])
    err = capsys.readouterr().err
    last = err.strip().splitlines()[-1]  # (above it: the per-epoch progress lines)
    assert code == 4 and "Traceback" not in err and "No space left on device" in last
    assert last.startswith("probssl: error:") and "epoch-0001.pt" in last and "intact" in last
    folder = tmp_path / "r" / "checkpoints"
    assert not list(folder.glob(".*"))  # no partial temp file left behind
    assert [p.name for _, p in list_checkpoints(tmp_path / "r")] == ["epoch-0000.pt",
                                                                     "epoch-0001.pt"]
    assert load_latest(tmp_path / "r")["epoch"] == 1  # and it still loads
    # with space again, --resume finishes the run
    monkeypatch.setattr(ckpt, "_write_synced", real_write)
    assert main(["train", "--method", "vae", "--dataset", "digits", "--epochs", "3",
                 "--device", "cpu", "--no-progress", "--out", str(tmp_path / "r"),
                 "--resume"]) == 0


def test_a_flipped_byte_is_caught_by_the_digest(tmp_path, capsys):
    assert main(["train", "--method", "vae", "--dataset", "digits", "--epochs", "2",
                 "--device", "cpu", "--no-progress", "--out", str(tmp_path / "r")]) == 0
    latest = list_checkpoints(tmp_path / "r")[-1][1]
    data = bytearray(latest.read_bytes())
    data[len(data) // 2] ^= 0x01  # inside the tensor data: torch.load alone would not notice
    latest.write_bytes(bytes(data))
    state = load_latest(tmp_path / "r")
    assert state["epoch"] == 1
    assert "epoch-0002.pt: sha256" in capsys.readouterr().err

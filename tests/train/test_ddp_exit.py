"""A DDP job must never exit non-zero after it finished: torch 2.13's gloo workers can abort
the process during interpreter finalisation (probssl/train/distributed.py explains why and
how probssl's teardown prevents it)."""

from __future__ import annotations

import os

from tests.ddp_launch import launch_two_ranks

# The old teardown failed about one launch in three (the measurement; the rate varies
# with thread scheduling, docs/RELIABILITY.md). The suite makes 5 launches (a regression
# slips through with probability (2/3)**5 = 13 %, each launch costs ~5 s of the suite's
# 10-minute budget); PROBSSL_DDP_LAUNCHES=50 makes the stress run that trusted the fix.
LAUNCHES = int(os.environ.get("PROBSSL_DDP_LAUNCHES", "5"))


def test_ddp_training_loop_exits_cleanly_every_time():
    for i in range(LAUNCHES):
        ranks = launch_two_ranks(["tests/train/ddp_exit_worker.py", "fixed"])
        for rank, proc in enumerate(ranks):
            assert proc.returncode == 0, (f"launch {i + 1}/{LAUNCHES}, rank {rank} exited "
                                          f"with {proc.returncode}: {proc.stderr[-2000:]}")
            assert "terminate called" not in proc.stderr


def test_failed_checkpoint_write_stops_every_rank_with_the_same_line(tmp_path):
    # before: rank 0 raised alone and rank 1 waited in the next collective until killed
    ranks = launch_two_ranks(["tests/train/ddp_ckpt_fail_worker.py", str(tmp_path / "r")],
                             timeout=90)
    lines = []
    for proc in ranks:
        assert proc.returncode == 4, proc.stderr[-2000:]
        assert "Traceback" not in proc.stderr
        err = [ln for ln in proc.stderr.splitlines() if ln.startswith("probssl")]
        assert len(err) == 1 and "could not write a checkpoint" in err[0], proc.stderr
        lines.append(err[0])
    assert lines[0] == lines[1]
    assert (tmp_path / "r" / "checkpoints").is_dir()  # the initial checkpoint is kept

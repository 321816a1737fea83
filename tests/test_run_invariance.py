"""No saved run is ever damaged: a run's training files (config, meta, metrics, checkpoints
and their sidecars) change only under `train --resume` on that run; commands that derive
things from a run may add their own files (atomically, no temporary left behind); a failing
command changes nothing at all."""

from __future__ import annotations

import hashlib
from pathlib import Path

from probssl.cli import main

TRAINING = ("config.json", "meta.json", "metrics.jsonl")


def _snapshot(run: Path) -> dict[str, bytes]:
    return {str(p.relative_to(run)): hashlib.sha256(p.read_bytes()).digest()
            for p in sorted(run.rglob("*")) if p.is_file()}


def _training_files(snap: dict[str, bytes]) -> dict[str, bytes]:
    return {k: v for k, v in snap.items() if k in TRAINING or k.startswith("checkpoints/")}


def test_a_run_changes_only_under_train_resume(tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["train", "--method", "vae", "--dataset", "digits", "--epochs", "2",
                 "--out", str(run), "--no-progress"]) == 0
    (tmp_path / "afile").write_text("x\n")
    t, r = str(tmp_path), str(run)

    derive = [  # succeed; may add their own files to the run
        ["evaluate", r, "--probe-epochs", "2", "--gmm-n-init", "1", "--fid-features", "none"],
        ["embed", r, "--out", f"{t}/emb.npz"],
        ["embed", r, "--split", "train", "--out", f"{t}/emb-train"],
        ["export", r, "--out", f"{t}/enc.pt"],
        ["train-decoder", r, "--epochs", "2", "--no-progress"],
        ["sample", r, "--per-class", "2"],
        ["figure", "reconstructions", r, "--n", "2", "--out", f"{t}/recon.png"],
        ["train", "--out", r, "--resume", "--epochs", "2", "--no-progress"],  # nothing to do
    ]
    fail = [  # refused: change nothing
        ["export", r, "--out", f"{r}/config.json"],
        ["export", r, "--out", f"{r}/enc.py"],
        ["embed", r, "--out", f"{r}/meta.json"],
        ["embed", r, "--out", f"{r}/checkpoints/x.npz"],
        ["sample", r, "--out", f"{r}/metrics.jsonl"],
        ["figure", "reconstructions", r, "--out", f"{r}/config.json"],
        ["train", "--out", r, "--epochs", "3", "--no-progress"],  # without --resume
        ["train", "--out", r, "--resume", "--epochs", "0", "--no-progress"],
        ["train", "--out", r, "--resume", "--epochs", "1", "--no-progress"],
        ["train", "--out", r, "--resume", "--epochs", "3", "--lr", "0.1", "--no-progress"],
        ["train", "--out", r, "--resume", "--epochs", "3", "--method", "simclr"],
        ["train", "--out", "", "--epochs", "1"],
        ["train", "--out", f"{t}/afile", "--epochs", "1"],
        ["evaluate", r, "--device", "tpu"],
        ["evaluate", r, "--k-max", "0"],
        ["train-decoder", r, "--lr", "nan"],
    ]
    start = _snapshot(run)
    for argv in derive:
        before = _snapshot(run)
        assert main(argv) == 0, (argv, capsys.readouterr().err)
        after = _snapshot(run)
        assert _training_files(after) == _training_files(start), argv
        assert set(before) <= set(after), argv  # derived files are added, never removed
        assert not [k for k in after if k.endswith(".tmp") or "/." in "/" + k], argv
    for argv in fail:
        before = _snapshot(run)
        capsys.readouterr()
        code = main(argv)
        err = capsys.readouterr().err.strip().splitlines()
        assert code == 2 and len(err) == 1, (argv, code, err)
        assert _snapshot(run) == before, argv
    # the positive control: `train --resume` with more epochs does change the training files
    assert main(["train", "--out", r, "--resume", "--epochs", "3", "--no-progress"]) == 0
    assert _training_files(_snapshot(run)) != _training_files(start)
    assert not (Path.cwd() / "config.json").exists()  # `--out ''` never trained here

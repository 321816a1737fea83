"""Checkpoints load with torch.load(weights_only=True): a run directory from someone else
never executes code when read, and checkpoints written before the change still resume."""

from __future__ import annotations

import io
import os

import numpy as np
import pytest
import torch

from probssl.config import TrainConfig
from probssl.errors import IntegrityError
from probssl.runs.checkpoint import list_checkpoints, load_checkpoint_file
from probssl.train.trainer import train


class _Payload:
    """Pickles to a call of os.getpid (harmless stand-in for os.system)."""

    def __reduce__(self):
        return (os.getpid, ())


def _cfg(**kw):
    base = dict(method="vae", dataset="digits", epochs=2, batch_size=256, seed=0, device="cpu")
    return TrainConfig(**{**base, **kw})


def test_a_checkpoint_that_would_call_code_is_refused_not_run(tmp_path):
    path = tmp_path / "epoch-0001.pt"
    buf = io.BytesIO()
    torch.save({"model": {}, "epoch": 1, "config": {"x": _Payload()}}, buf)
    path.write_bytes(buf.getvalue())
    with pytest.raises(IntegrityError, match=r"unreadable checkpoint \(UnpicklingError"):
        load_checkpoint_file(path)


def test_new_checkpoints_hold_no_numpy_objects_and_a_legacy_one_still_resumes(tmp_path):
    run = tmp_path / "r"
    train(_cfg(epochs=1), run, progress=False, verbose=False)
    path = list_checkpoints(run)[-1][1]
    state = load_checkpoint_file(path)
    numpy_state = state["rng"][0]["numpy"]
    assert isinstance(numpy_state, dict) and isinstance(numpy_state["keys"], torch.Tensor)
    # rewrite it as a checkpoint of the old format (numpy's own tuple) and resume from it:
    # the result equals resuming from the new format
    legacy = dict(state)
    legacy["rng"] = [dict(state["rng"][0], numpy=(
        numpy_state["kind"], numpy_state["keys"].numpy().astype(np.uint32),
        numpy_state["pos"], numpy_state["has_gauss"], numpy_state["gauss"]))]
    old = tmp_path / "old"
    new = tmp_path / "new"
    for dst, st in ((old, legacy), (new, state)):
        dst.mkdir()
        for name in ("config.json", "meta.json", "metrics.jsonl"):
            (dst / name).write_bytes((run / name).read_bytes())
        (dst / "checkpoints").mkdir()
        buf = io.BytesIO()
        torch.save(st, buf)
        (dst / "checkpoints" / path.name).write_bytes(buf.getvalue())
        train(_cfg(), dst, progress=False, verbose=False, resume=True)
    a = load_checkpoint_file(list_checkpoints(old)[-1][1])["model"]
    b = load_checkpoint_file(list_checkpoints(new)[-1][1])["model"]
    assert all(torch.equal(a[k], b[k]) for k in a)

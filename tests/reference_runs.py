"""Short training runs whose final weights and metrics must not change under refactoring.

``python -m tests.reference_runs --write`` records them in ``tests/reference_runs.json``;
``tests/test_reference_runs.py`` re-trains and compares. Re-record only when a change of
numbers is intended (and say so in the commit).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import sys
import tempfile
from pathlib import Path

import torch

REFERENCE_FILE = Path(__file__).with_name("reference_runs.json")

# (method, params, extra TrainConfig fields): every method family, the two view kinds,
# a non-default critic and prior, and a mid-epoch checkpoint
CASES: dict[str, tuple[str, dict, dict]] = {
    "vae": ("vae", {}, {}),
    "simvae": ("simvae", {"n_views": 3}, {}),
    "cr-vae": ("cr-vae", {}, {}),
    "simclr": ("simclr", {}, {"checkpoint_every": 3}),
    "moco": ("moco", {"queue_size": 64}, {}),
    "vicreg": ("vicreg", {}, {}),
    "rpm-rbf": ("rpm", {"critic": "rbf", "prior": "gaussian-dynamics"}, {}),
    "rpm-next-frame": ("rpm", {}, {"views": "next-frame"}),
}


def run_case(name: str, out: Path) -> dict:
    from probssl.config import TrainConfig
    from probssl.train.trainer import train

    method, params, extra = CASES[name]
    cfg = TrainConfig(method=method, dataset="digits", epochs=2, batch_size=200, lr=1e-3,
                      seed=3, device="cpu", tensorboard=False, params=dict(params), **extra)
    res = train(cfg, out / name, progress=False, verbose=False)
    state = res.method.state_dict()
    digest = hashlib.sha256()
    total = 0.0
    for key in sorted(state):
        t = state[key].detach().cpu().contiguous()
        digest.update(key.encode())
        digest.update(t.numpy().tobytes())
        if t.is_floating_point():
            total += float(t.double().abs().sum())
    losses = [row["loss"] for row in res.history]
    return {"sha256": digest.hexdigest(), "abs_sum": total, "losses": losses}


def run_all() -> dict:
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        return {name: run_case(name, Path(tmp)) for name in CASES}


def compare(a: dict, b: dict, rtol: float = 1e-5, atol: float = 1e-7) -> list[str]:
    """Differences between two recordings, one line each (weights by their absolute sum,
    losses per epoch, both to ``rtol``; losses also to ``atol``)."""
    out = []
    for name in a:
        if name not in b:
            out.append(f"{name}: missing")
            continue
        x, y = a[name], b[name]
        if not math.isclose(x["abs_sum"], y["abs_sum"], rel_tol=rtol):
            out.append(f"{name}: weights |w| sum {x['abs_sum']} vs {y['abs_sum']}")
        if len(x["losses"]) != len(y["losses"]) or not all(
                math.isclose(p, q, rel_tol=rtol, abs_tol=atol)
                for p, q in zip(x["losses"], y["losses"], strict=False)):
            out.append(f"{name}: losses {x['losses']} vs {y['losses']}")
    return out


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--write", action="store_true", help=f"record into {REFERENCE_FILE}")
    p.add_argument("--out", help="write the recording here instead")
    args = p.parse_args()
    rec = run_all()
    text = json.dumps(rec, indent=1, sort_keys=True) + "\n"
    if args.write or args.out:
        Path(args.out or REFERENCE_FILE).write_text(text)
    if REFERENCE_FILE.exists() and not args.write:
        diffs = compare(json.loads(REFERENCE_FILE.read_text()), rec)
        print("\n".join(diffs) if diffs else "identical to the reference")
        return 1 if diffs else 0
    return 0


if __name__ == "__main__":
    sys.exit(main())

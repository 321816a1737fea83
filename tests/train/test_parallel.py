"""Seeds trained side by side (probssl.train.parallel) equal the same seeds trained alone.

Exactly equal they cannot be: the stacked step multiplies in batches, and a 1-ulp difference
in a pre-activation that sits at a ReLU's kink flips that unit's gradient, after which Adam's
normalised steps carry the difference on. So the weights are compared by relative norm, with
a bound far below what any wrong stream would give (another seed's run is ~1.4 away); the
losses, RNG streams, optimiser settings and schedule must agree to float precision, and a
stacked run resumed from any checkpoint must be bit-exact.
"""

import json
import shutil

import numpy as np
import pytest
import torch

from probssl.cli import main
from probssl.config import TrainConfig
from probssl.runs import checkpoint as ckpt
from probssl.train import train
from probssl.train.parallel import CannotStack, train_parallel

SEEDS = (0, 1)
EPOCHS = 3
PARAMS = {"simvae": {"n_views": 4}, "vicreg": {"n_views": 2}}  # vicreg: batch norm


@pytest.fixture(scope="module")
def small_npz(tmp_path_factory):
    from sklearn.datasets import load_digits

    d = load_digits()
    path = tmp_path_factory.mktemp("data") / "digits128.npz"
    np.savez(path, x=(d.images[:128, None] * 15).astype(np.uint8), y=d.target[:128])
    return path


def _cfg(method, seed, npz, **kw):
    """64 images a step, 2 steps an epoch."""
    return TrainConfig(method=method, dataset=f"npz:{npz}", epochs=EPOCHS, batch_size=64,
                       seed=seed, device="cpu", params=dict(PARAMS[method]), **kw)


# a checkpoint after every step too (a training setting that changes nothing it learns)
EVERY_STEP = {"checkpoint_every": 1, "keep_checkpoints": 100}


def _last(run_dir):
    return ckpt.load_latest_with_path(run_dir)[1]


def _copy_run_until(src, dst, name):
    """A copy of the run ``src`` without its checkpoints newer than ``name``, as if the run had
    stopped there."""
    order = [p.name for _, p in ckpt.list_checkpoints(src)]
    newer = set(order[order.index(name) + 1:])

    def ignore(folder, names):
        return [n for n in names if n in newer or n.removesuffix(".sha256") in newer]

    shutil.copytree(src, dst, ignore=ignore)
    return dst


def _rel(a, b):
    """The largest relative difference (Frobenius) over the floating tensors of two state
    dicts."""
    return max(float((a[k].double() - b[k].double()).norm() / (a[k].double().norm() + 1e-12))
               for k in a if a[k].is_floating_point())


@pytest.fixture(scope="module", params=sorted(PARAMS))
def trained(request, small_npz, tmp_path_factory):
    """Each seed trained alone, and the same seeds trained stacked."""
    method = request.param
    root = tmp_path_factory.mktemp(method)
    for s in SEEDS:
        train(_cfg(method, s, small_npz), root / f"alone{s}", progress=False, verbose=False)
    results = train_parallel([_cfg(method, s, small_npz, **EVERY_STEP) for s in SEEDS],
                             [root / f"stacked{s}" for s in SEEDS], [False] * len(SEEDS))
    assert [r.epochs_done for r in results] == [EPOCHS] * len(SEEDS)
    return method, root


def test_stacked_seeds_equal_each_seed_trained_alone(trained):
    method, root = trained
    others = []
    for s in SEEDS:
        alone, stacked = _last(root / f"alone{s}"), _last(root / f"stacked{s}")
        assert (alone["epoch"], alone["step"]) == (stacked["epoch"], stacked["step"]) == \
            (EPOCHS, 0)
        # the weights and batch-norm statistics (module docstring: why a tolerance)
        assert _rel(alone["model"], stacked["model"]) < 2e-2, s
        others.append(_rel(alone["model"], _last(root / f"alone{1 - s}")["model"]))
        # every epoch's losses and metrics
        for ra, rs in zip(alone["history"], stacked["history"], strict=True):
            assert rs["stacked_cells"] == len(SEEDS)
            assert set(ra) == set(rs) - {"stacked_cells"}
            assert rs["loss"] == pytest.approx(ra["loss"], rel=2e-3)
            for key in set(ra) - {"epoch", "seconds", "views_per_s"}:  # the loss's terms
                assert rs[key] == pytest.approx(ra[key], rel=1e-2, abs=1e-4), (s, key)
        # the streams a resumed run continues from, and the optimiser's settings and state
        for key in ("torch", "augment"):
            assert torch.equal(alone["rng"][0][key], stacked["rng"][0][key])
        assert alone["rng"][0]["python"] == stacked["rng"][0]["python"]
        assert alone["schedule"] == stacked["schedule"]
        oa, os_ = alone["optimizer"], stacked["optimizer"]
        assert oa["param_groups"] == os_["param_groups"]
        assert oa["state"].keys() == os_["state"].keys()
        for i, sa in oa["state"].items():
            assert torch.equal(sa["step"], os_["state"][i]["step"])
            assert (sa["exp_avg"] - os_["state"][i]["exp_avg"]).norm() <= \
                0.05 * sa["exp_avg"].norm() + 1e-6
    assert min(others) > 0.5  # a wrong seed's stream is nowhere near the tolerance
    # the run directories are ordinary runs: metrics rows per epoch, the method's config
    rows = [json.loads(x) for x in (root / "stacked1" / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows] == list(range(1, EPOCHS + 1))
    config = json.loads((root / "stacked1" / "config.json").read_text())
    assert config["train"]["seed"] == 1 and config["train"]["method"] == method


@pytest.mark.parametrize("trained", ["simvae"], indirect=True)
def test_stacked_resume_is_exact_and_a_stacked_cell_resumes_alone(trained, small_npz,
                                                                  tmp_path):
    method, root = trained
    # stacked, resumed from a mid-epoch checkpoint (epoch 2, step 1 of 2): bit-exact
    dirs = []
    for s in SEEDS:
        d = _copy_run_until(root / f"stacked{s}", tmp_path / f"stacked{s}",
                            ckpt.checkpoint_name(1, 1))
        assert (_last(d)["epoch"], _last(d)["step"]) == (1, 1)
        dirs.append(d)
    train_parallel([_cfg(method, s, small_npz, **EVERY_STEP) for s in SEEDS], dirs,
                   [True] * len(SEEDS))
    for s, d in zip(SEEDS, dirs, strict=True):
        want, got = _last(root / f"stacked{s}"), _last(d)
        for k in want["model"]:
            assert torch.equal(want["model"][k], got["model"][k]), (s, k)
        assert [r["loss"] for r in got["history"]] == [r["loss"] for r in want["history"]]
    # one cell of a stacked run continues alone from its epoch-2 checkpoint: the format is
    # the sequential one, and it lands where its stacked run did (within the tolerance)
    d = _copy_run_until(root / "stacked1", tmp_path / "alone-from-stacked",
                        ckpt.checkpoint_name(2))
    train(_cfg(method, 1, small_npz), d, resume=True, progress=False, verbose=False)
    assert _rel(_last(root / "stacked1")["model"], _last(d)["model"]) < 2e-2


@pytest.mark.parametrize("trained", ["simvae"], indirect=True)
def test_a_diverged_cell_stops_alone_and_the_others_go_on(trained, small_npz, tmp_path,
                                                          monkeypatch):
    import probssl.train.trainer as trainer_module

    _, root = trained
    build = trainer_module.build_method

    def poisoned(name, config, shape):  # seed 1's network starts with a NaN weight
        method = build(name, config, shape)
        if torch.initial_seed() == 1:
            with torch.no_grad():
                next(method.parameters()).view(-1)[0] = float("nan")
        return method

    monkeypatch.setattr(trainer_module, "build_method", poisoned)
    dirs = [tmp_path / f"c{s}" for s in SEEDS]
    results = train_parallel([_cfg("simvae", s, small_npz) for s in SEEDS], dirs,
                             [False] * len(SEEDS))
    assert [r.epochs_done for r in results] == [EPOCHS, 0]
    # the diverged cell keeps its last good checkpoint (the initial one) and logged nothing
    assert [e for e, _ in ckpt.list_checkpoints(dirs[1])] == [0]
    assert not (dirs[1] / "metrics.jsonl").exists() or \
        not (dirs[1] / "metrics.jsonl").read_text()
    # the other trained exactly as it does beside a healthy cell
    healthy, here = _last(root / "stacked0"), _last(dirs[0])
    for k in healthy["model"]:
        assert torch.allclose(healthy["model"][k], here["model"][k], rtol=0, atol=1e-6), k
    assert [r["loss"] for r in here["history"]] == \
        pytest.approx([r["loss"] for r in healthy["history"]], rel=1e-6)


@pytest.mark.parametrize("method,params,why", [
    ("moco", {}, "updates its own state after each step"),
    ("rpm", {}, "cannot be batched by vmap"),
])
def test_unstackable_methods_are_declined_before_anything_is_written(
        method, params, why, small_npz, tmp_path):
    cfgs = [TrainConfig(method=method, dataset=f"npz:{small_npz}", epochs=1, batch_size=64,
                        seed=s, device="cpu", params=params) for s in (0, 1)]
    dirs = [tmp_path / "a", tmp_path / "b"]
    with pytest.raises(CannotStack, match=why):
        train_parallel(cfgs, dirs, [False, False])
    assert not any(d.exists() for d in dirs)
    with pytest.raises(CannotStack, match="more than their seed"):
        train_parallel([_cfg("simvae", 0, small_npz), _cfg("simvae", 1, small_npz, lr=1e-2)],
                       dirs, [False, False])


def test_bench_parallel_trains_seeds_side_by_side(small_npz, tmp_path, capsys):
    out = tmp_path / "grid"
    args = ["bench", "--methods", "simvae,moco", "--datasets", f"npz:{small_npz}",
            "--seeds", "0,1,2", "--epochs", "1", "--batch-size", "64", "--set",
            "n_views=2", "--parallel", "2", "--device", "cpu", "--probe-epochs", "1",
            "--gmm-n-init", "0", "--no-mlp-probe", "--fid-features", "none",
            "--no-progress", "--out", str(out)]
    assert main(args) == 0
    said = capsys.readouterr().out
    assert "simvae__" in said and "seed0, simvae__" in said and "side by side" in said
    assert "trained one by one (moco updates its own state after each step)" in said

    def stacked(cell):
        rows = (out / "runs" / cell / "metrics.jsonl").read_text().splitlines()
        return json.loads(rows[-1]).get("stacked_cells")

    ds = f"npz_{str(small_npz).replace('/', '_')}"
    assert [stacked(f"simvae__{ds}__seed{s}") for s in (0, 1, 2)] == [2, 2, None]
    assert stacked(f"moco__{ds}__seed0") is None
    assert all((out / "runs" / c / "result.json").is_file()
               for c in json.loads((out / "grid.json").read_text())["cells"])

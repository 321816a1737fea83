import os
from pathlib import Path

import pytest
import torch

torch.set_num_threads(2)

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def _seeded_global_generator():
    """Every test starts from the same state of torch's global generator, whatever ran before
    it (torch seeds a fresh process at random): a test that draws from it (an initialiser, a
    classifier's weights) must not pass or fail by chance or by its place in the suite (the
    density-ratio fit failed after the stacked-training tests once)."""
    torch.manual_seed(0)


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory, monkeypatch):
    """Every test gets its own empty dataset cache, never the user's."""
    monkeypatch.setenv("PROBSSL_DATA", str(tmp_path_factory.mktemp("cache")))


def mnist_t10k_dir() -> Path | None:
    from probssl.data.idx import default_t10k_dir

    d = default_t10k_dir()
    return d if (d / "t10k-images-idx3-ubyte.gz").is_file() else None


@pytest.fixture
def t10k_dir():
    d = mnist_t10k_dir()
    if d is None:
        pytest.skip("the real MNIST test set (../shared/data/mnist-t10k or "
                    "$PROBSSL_MNIST_T10K) is not on this machine")
    return d


def subprocess_env() -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    env["OMP_NUM_THREADS"] = "1"
    return env


@pytest.fixture
def temp_method():
    """``temp_method(name, config_cls, cls)`` registers a method for one test only."""
    from probssl.methods import METHODS, register_method

    added = []

    def add(name, config_cls, cls):
        register_method(name, config=config_cls, description="a test method")(cls)
        added.append(name)

    yield add
    for name in added:
        METHODS.unregister(name)


@pytest.fixture(scope="session")
def vae_digits_run(tmp_path_factory) -> Path:
    """One short VAE run on digits, trained once per session, for tests that only read it
    (export formats, evaluating its encoder from outside)."""
    from probssl.config import TrainConfig
    from probssl.train.trainer import train

    out = tmp_path_factory.mktemp("shared") / "vae"
    train(TrainConfig(method="vae", dataset="digits", epochs=1, batch_size=256, seed=0,
                      device="cpu"), out, progress=False, verbose=False)
    return out


@pytest.fixture(scope="session")
def trained_vae_digits(tmp_path_factory) -> Path:
    """A VAE trained long enough on digits to beat a random encoder and to decode digits
    (30 epochs of batch 64), trained once per session, for tests that only read it."""
    from probssl.config import TrainConfig
    from probssl.train.trainer import train

    out = tmp_path_factory.mktemp("shared") / "vae30"
    train(TrainConfig(method="vae", dataset="digits", epochs=30, batch_size=64, seed=0,
                      device="cpu"), out, progress=False, verbose=False)
    return out


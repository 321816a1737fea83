"""Decoders on frozen encoders, reconstructions, class-conditional samples, the figure."""

import torch

from probssl.cli import main
from probssl.config import TrainConfig
from probssl.data.augment import preprocess
from probssl.evaluate.generate import (
    class_conditional_samples,
    reconstruction_mse,
    train_decoder,
)
from probssl.runs.format import load_run
from probssl.train import train


def _train(tmp_path, method, epochs=3):
    cfg = TrainConfig(method=method, dataset="digits", epochs=epochs, batch_size=64,
                      device="cpu", params={"n_views": 2} if method == "simvae" else {})
    train(cfg, tmp_path / method, progress=False, verbose=False)
    return tmp_path / method


def test_decoder_on_a_frozen_discriminative_encoder_beats_the_mean_image(tmp_path, capsys):
    run = _train(tmp_path, "simclr")
    # before a decoder exists the figure refuses, in one line
    assert main(["figure", "reconstructions", str(run), "--out", str(tmp_path / "f.png")]) == 2
    assert "train-decoder" in capsys.readouterr().err
    loaded = load_run(run)
    info = train_decoder(loaded, epochs=30, lr=1e-3, progress=False)
    assert (run / "decoder.pt").is_file() and info["epoch"] == 3
    data = loaded.resolved.data
    test = preprocess(data.x_test, loaded.resolved.augment)
    mean_image = preprocess(data.x_train, loaded.resolved.augment).mean(0, keepdim=True)
    baseline = float(((test - mean_image) ** 2).mean())
    assert reconstruction_mse(loaded) < 0.8 * baseline


def test_samples_and_reconstruction_figure(tmp_path):
    sim = _train(tmp_path, "simvae")
    images, labels = class_conditional_samples(load_run(sim), per_class=3)
    assert images.shape == (30, 1, 8, 8) and sorted(set(labels)) == list(range(10))
    assert torch.all((images >= 0) & (images <= 1))
    assert main(["sample", str(sim), "--per-class", "3", "--out", str(tmp_path / "s.png")]) == 0
    vae = _train(tmp_path, "vae")
    out = tmp_path / "fig" / "recon.png"
    assert main(["figure", "reconstructions", str(sim), str(vae), "--out", str(out),
                 "--n", "5"]) == 0
    assert out.stat().st_size > 0

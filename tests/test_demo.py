"""The showcase writes one report with every part, offline."""

from dataclasses import replace

import pytest

from probssl.data import DATASETS, register_dataset
from probssl.data.shapes import load_shapes
from probssl.demo import run_demo
from probssl.experiments.moving_balls import QUICK, findings


@pytest.fixture
def tiny_shapes():
    """The shapes data (every factor, the shapes augmentation) with 400 / 100 images, for this
    test only: the content/style part needs the factors, not shapes-small's 2,000 / 500."""
    register_dataset("shapes-tiny", image_shape=(3, 32, 32), num_classes=4,
                     augmentation="shapes", how_to_get="generated (a test)")(
        lambda d, cache: load_shapes(400, 100, name="shapes-tiny"))
    yield "shapes-tiny"
    DATASETS.unregister("shapes-tiny")


def test_demo_writes_one_report_with_all_parts(tmp_path, tiny_shapes):
    # the smallest demo that still has every part (FID is tested in tests/evaluate): one epoch
    # everywhere, 100 moving-balls frames, one probe and one decoder epoch, one GMM restart
    report = run_demo(tmp_path / "demo", epochs=1, seeds=1, progress=False,
                      log=lambda *_: None, probe_epochs=1, decoder_epochs=1, fid_features="none",
                      balls=replace(QUICK, frames=100, epochs=1, seeds=(0,)), shapes=tiny_shapes,
                      gmm_n_init=1)
    text = report.read_text()
    for part in ("Moving balls", "What it shows, computed from the table below",
                 "SimVAE vs SimCLR vs VAE", "Content and style", "Reconstructions", "Wall time"):
        assert part in text, part
    for png in ("moving-balls/fig1.png", "reconstructions.png"):
        assert (report.parent / png).stat().st_size > 0
    assert "| simvae |" in text and "| simclr |" in text
    assert "shapes-tiny" in text  # the content/style part ran on the data it was given


def _summary(**per_method):
    out = {}
    for m, (det, full) in per_method.items():
        out[m] = {"detector_per_seed": det, "per_seed": full,
                  "detector_mean_px": sum(det) / len(det), "mean_px": sum(full) / len(full)}
    return out


def test_moving_balls_findings_are_computed_from_the_numbers():
    paper_like = _summary(supervised=([0.1, 0.2, 0.1], [0.1, 0.2, 0.1]),
                          rbf=([67.4, 69.6, 77.2], [0.3, 0.3, 0.4]),
                          bilinear=([54.2, 58.5, 65.7], [37.5, 3.0, 73.4]),
                          random=([52.3, 29.4, 71.2], [0.5, 0.3, 0.5]))
    text = " ".join(findings(paper_like))
    assert "within 0.20 px on every seed" in text and "best seed is 54.2 px off" in text
    assert "no critic learned one detector per ball" in text
    assert "untrained encoder already scores 0.43 px" in text
    assert "bilinear critic's full readout is worse than 10 px on 2 of 3 seeds" in text
    assert "rbf critic's full readout" not in text
    learned = _summary(supervised=([0.1, 0.2], [0.1, 0.2]), rbf=([0.3, 40.0], [0.3, 0.3]))
    assert "some critic came close" in " ".join(findings(learned))

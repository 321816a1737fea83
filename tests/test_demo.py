"""The showcase writes one report with every part, offline."""

from probssl.demo import run_demo


def test_demo_writes_one_report_with_all_parts(tmp_path):
    # the smallest demo that still has every part (FID is tested in tests/evaluate)
    report = run_demo(tmp_path / "demo", epochs=1, seeds=1, progress=False,
                      log=lambda *_: None, probe_epochs=3, decoder_epochs=5, fid_features="none")
    text = report.read_text()
    for part in ("Moving balls", "SimVAE vs SimCLR vs VAE", "Content and style",
                 "Reconstructions", "Wall time"):
        assert part in text, part
    for png in ("moving-balls/fig1.png", "reconstructions.png"):
        assert (report.parent / png).stat().st_size > 0
    assert "| simvae |" in text and "| simclr |" in text

"""`probssl export --format`: every format rebuilds the run's encoder exactly, loads without
unpickling code, and bad output paths are one line."""

from __future__ import annotations

import pytest
import torch

from probssl.cli import main
from probssl.export import encoder_source
from probssl.runs.format import load_run


@pytest.fixture
def run(vae_digits_run):
    return vae_digits_run


def _reference(run):
    loaded = load_run(run)
    x = torch.rand(5, *loaded.resolved.data.image_shape)
    with torch.no_grad():
        return x, loaded.method.encoder.net.eval()(x), loaded.method.encoder.latent_dim


def _rebuild(src_dir, module_file):
    namespace: dict = {}
    exec(compile((src_dir / module_file).read_text(), module_file, "exec"), namespace)  # noqa: S102
    return namespace["build_encoder"]().eval()


def test_state_dict_and_safetensors_rebuild_the_encoder(run, tmp_path, capsys):
    x, want, _ = _reference(run)
    for fmt, name in (("state_dict", "enc.pt"), ("safetensors", "enc.safetensors")):
        assert main(["export", str(run), "--format", fmt, "--out", str(tmp_path / name)]) == 0
        net = _rebuild(tmp_path, "enc.py")
        if fmt == "safetensors":
            from safetensors.torch import load_file
            state = load_file(str(tmp_path / name))
            assert "load_file('enc.safetensors')" in (tmp_path / "enc.py").read_text()
        else:
            state = torch.load(tmp_path / name, weights_only=True)
        net.load_state_dict(state)
        with torch.no_grad():
            assert torch.equal(net(x), want), fmt
        (tmp_path / "enc.py").unlink()
    assert "weights_only=True" in capsys.readouterr().out


def test_torch_export_program_runs_any_batch_size_without_the_source(run, tmp_path):
    x, want, n = _reference(run)
    assert main(["export", str(run), "--format", "torch-export", "--out",
                 str(tmp_path / "enc.pt2")]) == 0
    assert not (tmp_path / "enc.py").exists()
    net = torch.export.load(tmp_path / "enc.pt2").module()
    with torch.no_grad():
        assert torch.allclose(net(x), want, atol=1e-6)
        assert net(torch.cat([x, x]))[:, :n].shape == (10, n)


def test_export_bad_paths_and_formats_are_one_line(run, tmp_path, capsys):
    assert main(["export", str(run), "--format", "safetensors", "--out",
                 str(tmp_path / "enc.py")]) == 2
    assert "use e.g. --out" in capsys.readouterr().err
    assert main(["export", str(run), "--format", "onnx", "--out", str(tmp_path / "e.pt")]) == 2
    assert "invalid choice: 'onnx'" in capsys.readouterr().err


def test_generated_source_names_the_weights_it_loads():
    src = encoder_source("mlp", (1, 8, 8), 4, 2, weights="w.safetensors")
    assert "from safetensors.torch import load_file" in src and "load_file('w.safetensors')" in src
    assert "torch.load('encoder.pt', weights_only=True)" in encoder_source("mlp", (1, 8, 8), 4, 2)

"""Networks: shapes, heads, and the pure-PyTorch export round trip."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch

from probssl.export import encoder_source
from probssl.nn import build_decoder, build_encoder


@pytest.mark.parametrize("arch,shape,latent", [("mlp", (1, 28, 28), 10),
                                               ("resnet", (3, 32, 32), 64),
                                               ("resnet", (3, 64, 64), 64),
                                               ("mlp", (1, 8, 8), 4)])
def test_encoder_decoder_shapes(arch, shape, latent):
    enc = build_encoder(arch, shape, latent, "gaussian")
    dec = build_decoder(arch, latent, shape)
    mean, logvar = enc(torch.rand(3, *shape))
    assert mean.shape == (3, latent) and logvar.shape == (3, latent)
    assert dec(mean).shape == (3, *shape)
    det = build_encoder(arch, shape, latent, "deterministic")
    z, none = det(torch.rand(3, *shape))
    assert z.shape == (3, latent) and none is None


def test_mlp_widths_follow_paper_table_3():
    enc = build_encoder("mlp", (1, 28, 28), 10, "deterministic")
    widths = [m.out_features for m in enc.net if isinstance(m, torch.nn.Linear)]
    assert widths == [500, 500, 2000, 10]
    dec = build_decoder("mlp", 10, (1, 28, 28))
    assert [m.out_features for m in dec if isinstance(m, torch.nn.Linear)] == [2000, 500, 500, 784]


def test_embed_is_the_posterior_mean():
    enc = build_encoder("mlp", (1, 8, 8), 3, "gaussian").eval()
    x = torch.rand(4, 1, 8, 8)
    assert torch.equal(enc.embed(x), enc(x)[0])


@pytest.mark.parametrize("arch,shape", [("mlp", (1, 28, 28)), ("resnet", (3, 32, 32))])
def test_exported_source_rebuilds_encoder_without_probssl(tmp_path, arch, shape):
    enc = build_encoder(arch, shape, 8, "gaussian").eval()
    torch.save(enc.net.state_dict(), tmp_path / "encoder.pt")
    (tmp_path / "encoder.py").write_text(encoder_source(arch, shape, enc.out_dim, 8))
    x = torch.rand(2, *shape)
    torch.save(x, tmp_path / "x.pt")
    script = (
        "import sys, torch; sys.modules['probssl'] = None\n"  # probssl must not be needed
        "sys.path.insert(0, '.'); from encoder import build_encoder\n"
        "net = build_encoder(); net.load_state_dict(torch.load('encoder.pt')); net.eval()\n"
        "torch.save(net(torch.load('x.pt'))[:, :8], 'z.pt')\n"
    )
    subprocess.run([sys.executable, "-c", script], cwd=tmp_path, check=True)
    assert torch.allclose(torch.load(tmp_path / "z.pt"), enc.embed(x), atol=1e-6)

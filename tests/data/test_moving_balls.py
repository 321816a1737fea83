"""The moving-balls generator and the centre-of-mass encoder."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from probssl.data.moving_balls import moving_balls, palette, render, simulate_centres
from probssl.errors import UserError
from probssl.nn.centre_of_mass import BallEncoder, CentreOfMass


@pytest.fixture(scope="module")
def paper_centres():
    return simulate_centres(seed=0)  # the paper's settings: 900 frames, 256 px, 3 balls of 32


def test_balls_stay_inside_and_never_overlap(paper_centres):
    c = paper_centres
    assert c.shape == (900, 3, 2)
    assert (c >= 16 - 1e-9).all() and (c <= 256 - 16 + 1e-9).all()
    for a in range(3):
        for b in range(a + 1, 3):
            assert (np.hypot(*(c[:, a] - c[:, b]).transpose(1, 0)) >= 32 - 1e-9).all()


def test_every_step_is_one_diameter(paper_centres):
    steps = np.hypot(*np.diff(paper_centres, axis=0).transpose(2, 0, 1))
    assert np.allclose(steps, 32.0)


def test_heading_changes_are_small_except_at_collisions(paper_centres):
    d = np.diff(paper_centres, axis=0)
    ang = np.arctan2(d[..., 1], d[..., 0])
    turn = np.degrees(np.abs((np.diff(ang, axis=0) + np.pi) % (2 * np.pi) - np.pi))
    assert np.mean(turn <= 2.0 + 1e-6) > 0.5  # most steps use the ±2° noise
    assert turn.max() > 2.0  # collisions force larger turns


def test_same_seed_same_video():
    a, b = moving_balls(n_frames=20, seed=3), moving_balls(n_frames=20, seed=3)
    assert torch.equal(a.frames, b.frames) and torch.equal(a.centres, b.centres)
    assert not torch.equal(a.centres, moving_balls(n_frames=20, seed=4).centres)


def test_render_draws_discs_at_the_centres():
    v = moving_balls(n_frames=5, seed=1)
    assert v.frames.shape == (5, 1, 256, 256) and v.frames.dtype == torch.uint8
    area = (v.frames > 0).sum(dim=(1, 2, 3)).float()
    assert torch.allclose(area, torch.full_like(area, 3 * np.pi * 16 ** 2), rtol=0.03)
    com = CentreOfMass()(render(v.centres[:, :1]).float())
    # a rasterised disc of radius 16 px: its centre of mass is within a pixel fraction
    assert torch.allclose(com.double(), v.centres[:, 0], atol=0.25)


def test_too_small_frame_is_a_user_error():
    with pytest.raises(UserError, match="too small"):
        simulate_centres(size=60)


def test_centre_of_mass_of_a_single_bright_pixel():
    maps = torch.zeros(2, 3, 10, 12)
    maps[0, 0, 4, 7] = 1.0  # row 4, column 7
    maps[0, 1, 0, 0] = 5.0
    maps[0, 2] = 1.0  # uniform map: the image centre
    maps[1, :, 9, 11] = 0.3
    z = CentreOfMass()(maps)
    assert torch.allclose(z[0], torch.tensor([7.5, 4.5, 0.5, 0.5, 6.0, 5.0]))
    assert torch.allclose(z[1], torch.tensor([11.5, 9.5] * 3))


def test_ball_encoder_outputs_six_coordinates():
    enc = BallEncoder()
    z = enc(torch.rand(4, 1, 32, 32))
    assert z.shape == (4, 6) and (z >= 0).all() and (z <= 32).all()


@pytest.mark.parametrize("balls,channels", [("identical", 1), ("coloured", 3), ("grey", 1),
                                            ("mixed", 3)])
def test_each_palette_draws_each_ball_in_its_own_colour(balls, channels):
    centres = torch.tensor([[[40.0, 40.0], [128.0, 128.0], [200.0, 60.0]]])
    frames = render(centres, balls=balls)
    assert frames.shape == (1, channels, 256, 256)
    colours = palette(balls, 3)
    for k in range(3):  # a ball's centre pixel shows its palette colour, × 255
        x, y = centres[0, k].long().tolist()
        expected = (colours[k] * 255).round().to(torch.uint8)
        assert torch.equal(frames[0, :, y, x], expected), (balls, k)
    assert frames[0, :, 5, 250].sum() == 0  # background
    # the two original palettes are bit-identical to the binary rendering they replaced
    if balls in ("identical", "coloured"):
        d2 = ((torch.arange(256) + 0.5).view(1, 1, 256, 1) - centres[0, :, 1, None, None]) ** 2 \
            + ((torch.arange(256) + 0.5).view(1, 1, 1, 256) - centres[0, :, 0, None, None]) ** 2
        inside = d2 <= 16 ** 2
        binary = inside.any(dim=1, keepdim=True) if balls == "identical" else inside
        assert torch.equal(frames, binary.to(torch.uint8) * 255)
    if balls == "grey":
        assert sorted(set(frames.flatten().tolist())) == [0, 102, 178, 255]  # 0.4, 0.7, 1.0


def test_unknown_palette_is_a_user_error():
    with pytest.raises(UserError, match="balls must be one of"):
        palette("plaid", 3)

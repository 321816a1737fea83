"""The windowed (sparse) moving-balls encoder must equal the dense network exactly."""

import copy

import pytest
import torch

from probssl.data.moving_balls import moving_balls, render
from probssl.experiments.moving_balls.windows import make_windows, windowed_forward
from probssl.nn.centre_of_mass import BallEncoder


def _perturbed_encoder(in_channels: int, seed: int = 0) -> BallEncoder:
    torch.manual_seed(seed)
    enc = BallEncoder(in_channels)
    with torch.no_grad():  # move batch-norm affine params off their defaults too
        for p in enc.parameters():
            p.add_(0.3 * torch.randn_like(p))
    return enc


def _video_with_edge_cases(balls: str):
    v = moving_balls(n_frames=40, size=96, diameter=16.0, seed=5, balls=balls)
    centres = v.centres.clone()
    centres[0] = torch.tensor([[8.0, 8.0], [88.0, 50.0], [40.0, 88.0]])  # touching walls
    centres[1] = torch.tensor([[30.0, 30.0], [46.0, 30.0], [70.0, 70.0]])  # touching balls
    centres[2] = torch.tensor([[8.0, 88.0], [88.0, 8.0], [88.0, 88.0]])  # in corners
    return render(centres, 96, 16.0, balls=balls), centres


@pytest.mark.parametrize("balls", ["identical", "coloured", "grey", "mixed"])
def test_windowed_forward_equals_dense_network(balls):
    frames, centres = _video_with_edge_cases(balls)
    win = make_windows(frames, centres, 16.0)
    dense = _perturbed_encoder(frames.shape[1])
    sparse = copy.deepcopy(dense)
    x = frames.float() / 255
    z_dense = dense(x)
    z_sparse = windowed_forward(sparse, win)
    torch.testing.assert_close(z_sparse, z_dense, atol=2e-4, rtol=0)
    # gradients of an arbitrary loss, and the batch-norm running statistics
    (z_dense.pow(2).sum() / 1e3).backward()
    (z_sparse.pow(2).sum() / 1e3).backward()
    for (name, a), (_, b) in zip(dense.named_parameters(), sparse.named_parameters(), strict=True):
        if name in ("features.0.bias", "features.3.bias"):
            # a conv bias right before train-mode batch norm cancels: its gradient is zero
            # (up to rounding in the dense sum over every pixel)
            scale = dict(dense.named_parameters())[name.replace("bias", "weight")].grad.abs().max()
            for g in (a.grad, b.grad):
                assert g is None or g.abs().max() < 0.05 * scale
            continue
        torch.testing.assert_close(b.grad, a.grad, atol=1e-3 * a.grad.abs().max(), rtol=1e-3)
    for (name, a), (_, b) in zip(dense.named_buffers(), sparse.named_buffers(), strict=True):
        torch.testing.assert_close(b.float(), a.float(), atol=1e-6, rtol=1e-5, msg=name)
    dense.eval(), sparse.eval()
    torch.testing.assert_close(windowed_forward(sparse, win), dense(x), atol=2e-4, rtol=0)


def test_windows_that_miss_a_ball_are_refused():
    frames, centres = _video_with_edge_cases("identical")
    wrong = centres.clone()
    wrong[:, 0] = torch.tensor([48.0, 48.0])
    with pytest.raises(ValueError, match="outside every window"):
        make_windows(frames, wrong, 16.0)


def test_every_frame_pixel_is_counted_once():
    frames, centres = _video_with_edge_cases("coloured")
    win = make_windows(frames, centres, 16.0)
    per_frame = win.own.sum(dim=(1, 2, 3, 4)) + win.background[..., 0].sum(-1)
    assert torch.equal(per_frame, torch.full((len(frames),), 96.0 * 96))

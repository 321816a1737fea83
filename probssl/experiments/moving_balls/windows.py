"""Exact, sparse evaluation of :class:`BallEncoder` on moving-balls frames.

Why: the paper's encoder runs two tiny 3x3 convolutions over 256x256 frames, which is
memory-bound on a CPU (about 0.75 s for a forward+backward of 60 frames on 2 cores, i.e.
~9 min per 30-epoch run). But a frame is black except for a few balls, so almost every pixel
sees an all-zero 5x5 neighbourhood and the network gives it one and the same value. This module
computes the network only in a window around each ball and accounts for the rest in closed form,
giving the *same numbers* as the dense network (train-mode batch norm included; tested against
:class:`BallEncoder` to float rounding, gradients and running statistics too).

Bookkeeping (all data-only, precomputed once per video by :func:`make_windows`):

* every ball gets an output window of ``out`` x ``out`` pixels covering the ball dilated by 2 px
  (the receptive field of two 3x3 convs); its input crop is 2 px larger on every side;
* ``own`` marks, per window pixel, "inside the frame and not already in an earlier window", so
  every frame pixel is counted once;
* every pixel outside all windows has an all-zero neighbourhood, so its value depends only on
  whether it lies on the frame's border (the second conv's zero padding); there are 9 such
  types (interior, 4 edges, 4 corners), and per frame we keep their counts and coordinate sums.

Batch-norm statistics and centres of mass are sums over all pixels, so they become
(window sums) + (type value x type count). Let d1 = conv1(x) without bias: d1 = 0 on every
background pixel, so BN1's statistics are sums over windows only (and conv1's bias cancels in
train mode, exactly as in the dense network).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from probssl.nn.centre_of_mass import BallEncoder


@dataclass
class BallWindows:
    crops: torch.Tensor  # (T, K, C, out+4, out+4) float input crops, zero outside the frame
    inside: torch.Tensor  # (T, K, 1, out+2, out+2) 1 where a hidden-layer pixel is in the frame
    own: torch.Tensor  # (T, K, 1, out, out) 1 where the output pixel is counted by this window
    origin: torch.Tensor  # (T, K, 2) (x0, y0) pixel index of the output window's corner
    background: torch.Tensor  # (T, 9, 3) per pixel type: count, sum of x, sum of y (not owned)
    size: tuple[int, int]  # (H, W) of the frames

    def __len__(self) -> int:
        return len(self.crops)

    def index(self, idx: torch.Tensor) -> BallWindows:
        return BallWindows(self.crops[idx], self.inside[idx], self.own[idx], self.origin[idx],
                           self.background[idx], self.size)

    def to(self, device: torch.device | str) -> BallWindows:
        return BallWindows(self.crops.to(device), self.inside.to(device), self.own.to(device),
                           self.origin.to(device), self.background.to(device), self.size)


def _pixel_type(h: int, w: int) -> torch.Tensor:
    """(H, W) type index 3r + c: r/c = 0 first row/col, 2 last, 1 otherwise."""
    r = torch.ones(h, dtype=torch.long)
    r[0], r[-1] = 0, 2
    c = torch.ones(w, dtype=torch.long)
    c[0], c[-1] = 0, 2
    return 3 * r[:, None] + c[None, :]


def make_windows(frames: torch.Tensor, centres: torch.Tensor, diameter: float,
                 chunk: int = 128) -> BallWindows:
    """Precompute the windows of a video; frames uint8 (T, C, H, W), centres (T, K, 2) px.

    Raises ValueError if some non-zero pixel (dilated by the receptive field) is not covered by
    a window — then the sparse evaluation would not be exact.
    """
    t_len, n_ch, h, w = frames.shape
    k = centres.shape[1]
    # ball pixels span at most diameter + 1 px; + 2 px receptive field on each side, + slack
    out = int(diameter) + 8
    half = out // 2
    origin = (torch.floor(centres).long() - half)  # (T, K, 2) output window corner (x0, y0)
    pad = half + out + 4  # enough zero padding for any window position
    types = _pixel_type(h, w)
    xs = torch.arange(w, dtype=torch.float64) + 0.5
    ys = torch.arange(h, dtype=torch.float64) + 0.5
    crops, inside, own, background = [], [], [], []
    for start in range(0, t_len, chunk):
        f = frames[start:start + chunk].float() / 255.0  # (n, C, H, W)
        o = origin[start:start + chunk]
        n = len(f)
        fp = F.pad(f, (pad, pad, pad, pad))
        owned = torch.zeros(n, h, w, dtype=torch.bool)
        c_list, i_list, o_list = [], [], []
        for j in range(k):  # K is the number of balls (3): a loop over windows, not images
            x0, y0 = o[:, j, 0], o[:, j, 1]
            # input crop rows y0-2 .. y0+out+1 (out+4), in padded coordinates + pad
            ry = (y0[:, None] - 2 + pad) + torch.arange(out + 4)[None, :]
            rx = (x0[:, None] - 2 + pad) + torch.arange(out + 4)[None, :]
            crop = fp[torch.arange(n)[:, None, None, None], torch.arange(n_ch)[None, :, None, None],
                      ry[:, None, :, None], rx[:, None, None, :]]
            c_list.append(crop)
            hy = (y0[:, None] - 1) + torch.arange(out + 2)[None, :]
            hx = (x0[:, None] - 1) + torch.arange(out + 2)[None, :]
            i_list.append(((hy >= 0) & (hy < h))[:, :, None] & ((hx >= 0) & (hx < w))[:, None, :])
            oy = y0[:, None] + torch.arange(out)[None, :]
            ox = x0[:, None] + torch.arange(out)[None, :]
            in_frame = ((oy >= 0) & (oy < h))[:, :, None] & ((ox >= 0) & (ox < w))[:, None, :]
            cy, cx = oy.clamp(0, h - 1), ox.clamp(0, w - 1)
            taken = owned[torch.arange(n)[:, None, None], cy[:, :, None], cx[:, None, :]]
            mine = in_frame & ~taken
            o_list.append(mine)
            # mark this window's in-frame pixels as owned
            b_idx = torch.arange(n)[:, None, None].expand_as(mine)
            owned[b_idx[mine], cy[:, :, None].expand_as(mine)[mine],
                  cx[:, None, :].expand_as(mine)[mine]] = True
        # coverage: every pixel whose 5x5 neighbourhood holds a ball pixel must be owned
        reach = F.max_pool2d(f.amax(1, keepdim=True), 5, stride=1, padding=2)[:, 0] > 0
        if bool((reach & ~owned).any()):
            raise ValueError("a ball pixel lies outside every window; the centres do not "
                             "match the frames")
        free = (~owned).double()
        onehot = F.one_hot(types, 9).double()  # (H, W, 9)
        cnt = torch.einsum("nhw,hwt->nt", free, onehot)
        sx = torch.einsum("nhw,hwt,w->nt", free, onehot, xs)
        sy = torch.einsum("nhw,hwt,h->nt", free, onehot, ys)
        background.append(torch.stack([cnt, sx, sy], dim=-1))
        crops.append(torch.stack(c_list, 1))
        inside.append(torch.stack(i_list, 1)[:, :, None].float())
        own.append(torch.stack(o_list, 1)[:, :, None].float())
    return BallWindows(torch.cat(crops), torch.cat(inside), torch.cat(own), origin,
                       torch.cat(background).float(), (h, w))


def _bn_update(bn: torch.nn.BatchNorm2d, mean: torch.Tensor, var: torch.Tensor, n: int) -> None:
    """Running statistics exactly as nn.BatchNorm2d updates them (unbiased running var)."""
    if bn.momentum is None:
        raise ValueError("cumulative-average batch norm (momentum=None) is not supported")
    m = bn.momentum
    with torch.no_grad():
        bn.running_mean.mul_(1 - m).add_(m * mean.detach())
        bn.running_var.mul_(1 - m).add_(m * var.detach() * n / max(n - 1, 1))
        bn.num_batches_tracked += 1


def windowed_forward(enc: BallEncoder, win: BallWindows) -> torch.Tensor:
    """z = enc(frames) computed from the windows; (B, 2K) centres in pixels."""
    conv1, bn1, _, conv2, bn2, _ = enc.features
    b, k = win.crops.shape[:2]
    h, w = win.size
    n_pix = b * h * w
    out = win.own.shape[-1]
    dtype = conv1.weight.dtype
    x = win.crops.reshape(b * k, win.crops.shape[2], out + 4, out + 4).to(dtype)
    own = win.own.reshape(b * k, 1, out, out).to(dtype)
    own1 = F.pad(own, (1, 1, 1, 1))  # ownership on the hidden grid (zero on its 1-px rim)
    d1 = F.conv2d(x, conv1.weight)  # (BK, C1, out+2, out+2), conv1's bias not added
    train = enc.training
    if train:
        s1 = (d1 * own1).sum(dim=(0, 2, 3))
        q1 = (d1.pow(2) * own1).sum(dim=(0, 2, 3))
        mean_d1 = s1 / n_pix
        var1 = (q1 / n_pix - mean_d1.pow(2)).clamp_min(0)
        bias1 = conv1.bias if conv1.bias is not None else torch.zeros_like(mean_d1)
        _bn_update(bn1, bias1 + mean_d1, var1, n_pix)
    else:
        mean_d1 = bn1.running_mean - (conv1.bias if conv1.bias is not None else 0)
        var1 = bn1.running_var
    scale1 = bn1.weight * torch.rsqrt(var1 + bn1.eps)
    shift1 = bn1.bias - mean_d1 * scale1
    hid = F.relu(d1 * scale1[:, None, None] + shift1[:, None, None])
    hid = hid * win.inside.reshape(b * k, 1, out + 2, out + 2).to(dtype)
    c1 = F.relu(shift1)  # every background pixel's hidden value (d1 = 0 there)
    a2 = F.conv2d(hid, conv2.weight, conv2.bias)  # (BK, K2, out, out)
    tmpl = F.conv2d(c1.view(1, -1, 1, 1).expand(1, -1, 3, 3), conv2.weight, conv2.bias,
                    padding=1).reshape(a2.shape[1], 9)  # (K2, type) background values
    bg = win.background.to(dtype)  # (B, 9, 3)
    if train:
        ref = tmpl[:, 4].detach()  # centre the sums on the interior value: better rounding
        e2 = (a2 - ref[:, None, None]) * own
        et = tmpl - ref[:, None]
        cnt = bg[..., 0].sum(0)  # (9,)
        s2 = e2.sum(dim=(0, 2, 3)) + et @ cnt
        q2 = (e2 * (a2 - ref[:, None, None])).sum(dim=(0, 2, 3)) + et.pow(2) @ cnt
        mean_e2 = s2 / n_pix
        var2 = (q2 / n_pix - mean_e2.pow(2)).clamp_min(0)
        mean2 = ref + mean_e2
        _bn_update(bn2, mean2, var2, n_pix)
    else:
        mean2, var2 = bn2.running_mean, bn2.running_var
    scale2 = bn2.weight * torch.rsqrt(var2 + bn2.eps)
    shift2 = bn2.bias - mean2 * scale2
    s = torch.sigmoid(a2 * scale2[:, None, None] + shift2[:, None, None]) * own
    st = torch.sigmoid(tmpl * scale2[:, None] + shift2[:, None])  # (K2, 9)
    kk = s.shape[1]
    s = s.reshape(b, k, kk, out, out)
    col = s.sum(3)  # (B, K, K2, out) mass per window column
    row = s.sum(4)
    pos = torch.arange(out, device=s.device, dtype=dtype) + 0.5
    ox = win.origin[..., 0].to(dtype)[:, :, None]  # (B, K, 1)
    oy = win.origin[..., 1].to(dtype)[:, :, None]
    mass_w = col.sum(-1)  # (B, K, K2)
    mass = mass_w.sum(1) + bg[..., 0] @ st.T  # (B, K2)
    mx = ((col * pos).sum(-1) + ox * mass_w).sum(1) + bg[..., 1] @ st.T
    my = ((row * pos).sum(-1) + oy * mass_w).sum(1) + bg[..., 2] @ st.T
    return torch.stack([mx / mass, my / mass], dim=-1).reshape(b, 2 * kk)

"""Optimisers and schedules chosen by name: weight-decay groups, Adam bit-identical to the
trainer's historical call, LARS against the formula, schedules against the closed form, exact
resume from state_dicts, and one-line refusals of bad settings."""

from __future__ import annotations

import copy
import math

import pytest
import torch
from torch import nn

from probssl.errors import UserError
from probssl.train.optim import (
    LARS,
    OPTIMIZERS,
    SCHEDULES,
    build_optimizer,
    build_schedule,
    param_groups,
)


def _net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.Flatten(),
        nn.Linear(4 * 4 * 4, 8), nn.LayerNorm(8), nn.Linear(8, 3, bias=False))


def _loss(net: nn.Module, seed: int = 1) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(5, 1, 6, 6, generator=g)
    return net(x).pow(2).mean()


def test_param_groups_split_biases_and_norms_from_weights():
    net = _net()
    conv, bn, lin1, ln, lin2 = net[0], net[1], net[4], net[5], net[6]
    net.register_parameter("log_temp", nn.Parameter(torch.zeros(())))  # 0-D: not decayed
    frozen = nn.Linear(2, 2)
    frozen.requires_grad_(False)
    net.add_module("frozen", frozen)
    groups = param_groups(net, 0.05)
    assert [g["weight_decay"] for g in groups] == [0.05, 0.0]
    decay = {id(p) for p in groups[0]["params"]}
    keep = {id(p) for p in groups[1]["params"]}
    assert decay == {id(conv.weight), id(lin1.weight), id(lin2.weight)}
    assert keep == {id(conv.bias), id(bn.weight), id(bn.bias), id(lin1.bias), id(ln.weight),
                    id(ln.bias), id(net.log_temp)}
    # order follows module.parameters(); frozen parameters are left out
    trainable = [p for p in net.parameters() if p.requires_grad]
    assert [id(p) for p in groups[0]["params"]] == [id(p) for p in trainable if id(p) in decay]
    assert [id(p) for p in groups[1]["params"]] == [id(p) for p in trainable if id(p) in keep]
    one = param_groups(net, 0.05, exclude_bias_and_norm=False)
    assert len(one) == 1 and one[0]["weight_decay"] == 0.05
    assert [id(p) for p in one[0]["params"]] == [id(p) for p in trainable]


def test_param_groups_drop_empty_groups():
    groups = param_groups(nn.Linear(3, 2, bias=False), 0.1)
    assert len(groups) == 1 and groups[0]["weight_decay"] == 0.1
    groups = param_groups(nn.LayerNorm(4), 0.1)
    assert len(groups) == 1 and groups[0]["weight_decay"] == 0.0


@pytest.mark.parametrize("fused", [None, False, True])
def test_adam_without_weight_decay_is_the_trainers_adam(fused):
    a, b = _net(), _net()
    opt = build_optimizer(a, name="adam", lr=1e-3, eps=1e-7, fused=fused)
    ref = torch.optim.Adam([p for p in b.parameters() if p.requires_grad], lr=1e-3, eps=1e-7,
                           weight_decay=0.0, fused=fused)
    assert type(opt) is torch.optim.Adam
    assert opt.state_dict()["param_groups"] == ref.state_dict()["param_groups"]
    for _ in range(3):
        for net, o in ((a, opt), (b, ref)):
            o.zero_grad()
            _loss(net).backward()
            o.step()
    for pa, pb in zip(a.parameters(), b.parameters(), strict=True):
        assert torch.equal(pa, pb)
    sa, sb = opt.state_dict(), ref.state_dict()
    assert sa["param_groups"] == sb["param_groups"]
    assert sa["state"].keys() == sb["state"].keys()
    for k in sa["state"]:
        for name in sb["state"][k]:
            assert torch.equal(sa["state"][k][name], sb["state"][k][name])


def test_adam_passes_betas():
    opt = build_optimizer(_net(), name="adam", lr=1e-3, betas=(0.5, 0.9))
    assert opt.param_groups[0]["betas"] == (0.5, 0.9)


def test_adam_weight_decay_keeps_one_group_unless_asked():
    net = _net()
    opt = build_optimizer(net, name="adam", lr=1e-3, weight_decay=0.01)
    assert len(opt.param_groups) == 1 and opt.param_groups[0]["weight_decay"] == 0.01
    opt = build_optimizer(net, name="adam", lr=1e-3, weight_decay=0.01,
                          decay_bias_and_norm=False)
    assert [g["weight_decay"] for g in opt.param_groups] == [0.01, 0.0]


@pytest.mark.parametrize("name,cls", [("adamw", torch.optim.AdamW), ("sgd", torch.optim.SGD),
                                      ("lars", LARS)])
def test_other_optimizers_exclude_biases_and_norms(name, cls):
    opt = build_optimizer(_net(), name=name, lr=0.1, weight_decay=1e-4)
    assert type(opt) is cls
    assert [g["weight_decay"] for g in opt.param_groups] == [1e-4, 0.0]
    if name == "sgd":
        assert all(g["momentum"] == 0.9 and not g["nesterov"] for g in opt.param_groups)
    if name == "lars":
        assert [g["lars_exclude"] for g in opt.param_groups] == [False, True]
    opt = build_optimizer(_net(), name=name, lr=0.1, weight_decay=1e-4, decay_bias_and_norm=True)
    assert len(opt.param_groups) == 1 and opt.param_groups[0]["weight_decay"] == 1e-4
    if name == "lars":
        assert opt.param_groups[0]["lars_exclude"] is False


def _lars_reference(w, g, buf, *, lr, momentum, wd, eta, eps, adapt):
    """One LARS step from the formula (arXiv:1708.03888), with plain tensor operations."""
    d = g + wd * w
    if adapt:
        w_norm = math.sqrt(float((w * w).sum()))
        g_norm = math.sqrt(float((g * g).sum()))
        if w_norm > 0 and g_norm > 0:
            d = d * (eta * w_norm / (g_norm + wd * w_norm + eps))
    buf = d.clone() if buf is None else momentum * buf + d
    return w - lr * buf, buf


def test_lars_matches_the_formula_and_excluded_group_is_sgd():
    torch.manual_seed(3)
    w0 = torch.randn(4, 3, dtype=torch.float64)
    b0 = torch.randn(4, dtype=torch.float64)
    grads = [(torch.randn(4, 3, dtype=torch.float64), torch.randn(4, dtype=torch.float64))
             for _ in range(3)]
    w, b = nn.Parameter(w0.clone()), nn.Parameter(b0.clone())
    lr, m, wd, eta, eps = 0.3, 0.9, 0.01, 0.001, 1e-8
    opt = LARS([{"params": [w], "weight_decay": wd},
                {"params": [b], "weight_decay": 0.0, "lars_exclude": True}],
               lr=lr, momentum=m, weight_decay=wd, trust_coefficient=eta, eps=eps)
    sb = nn.Parameter(b0.clone())
    sgd = torch.optim.SGD([sb], lr=lr, momentum=m, weight_decay=0.0)
    rw, rb, bw, bb = w0.clone(), b0.clone(), None, None
    for gw, gb in grads:
        w.grad, b.grad, sb.grad = gw.clone(), gb.clone(), gb.clone()
        opt.step()
        sgd.step()
        rw, bw = _lars_reference(rw, gw, bw, lr=lr, momentum=m, wd=wd, eta=eta, eps=eps,
                                 adapt=True)
        rb, bb = _lars_reference(rb, gb, bb, lr=lr, momentum=m, wd=0.0, eta=eta, eps=eps,
                                 adapt=False)
        torch.testing.assert_close(w.detach(), rw, rtol=1e-12, atol=1e-14)
        torch.testing.assert_close(b.detach(), rb, rtol=1e-12, atol=1e-14)
        assert torch.equal(b.detach(), sb.detach())  # excluded group: exactly torch SGD
    # the adapted step is tiny relative to the plain one (eta * ||w|| / ||g||)
    assert (w.detach() - w0).norm() < 0.1 * (b.detach() - b0).norm()


def test_lars_zero_weight_is_not_frozen():
    w = nn.Parameter(torch.zeros(3))
    opt = LARS([w], lr=0.1, momentum=0.0)
    w.grad = torch.ones(3)
    opt.step()
    assert torch.equal(w.detach(), torch.full((3,), -0.1))


def _factor(s, *, name, T, W, r):
    if s < W:
        return (s + 1) / W
    if name == "constant":
        return 1.0
    p = 1.0 if T == W else min((s - W) / (T - W), 1.0)
    return r + (1 - r) * 0.5 * (1 + math.cos(math.pi * p))


@pytest.mark.parametrize("name,T,W,r", [("warmup-cosine", 100, 10, 0.0),
                                        ("warmup-cosine", 50, 0, 0.1),
                                        ("warmup-cosine", 20, 20, 0.0),
                                        ("constant", 30, 5, 0.0),
                                        ("constant", 30, 0, 0.0)])
def test_schedule_values_match_the_closed_form(name, T, W, r):
    base = 0.4
    opt = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=base)
    sched = build_schedule(opt, name=name, total_steps=T, warmup_steps=W, final_lr_ratio=r)
    lrs = []
    for _ in range(T + 5):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    for s in {0, max(W - 1, 0), W, (W + T) // 2, T - 1, T, T + 4}:
        assert lrs[s] == pytest.approx(base * _factor(s, name=name, T=T, W=W, r=r), rel=1e-12)
    if W > 0:
        assert lrs[0] == pytest.approx(base / W) and lrs[W - 1] == pytest.approx(base)
    if name == "warmup-cosine" and W < T:
        assert lrs[W] == pytest.approx(base)
        mid = W + (T - W) // 2 if (T - W) % 2 == 0 else None
        if mid is not None:
            assert lrs[mid] == pytest.approx(base * (1 + r) / 2)
    assert lrs[T] == pytest.approx(base * (r if name == "warmup-cosine" else 1.0))
    assert lrs[T + 4] == lrs[T]  # clamped after the end


def test_schedule_and_optimizer_resume_exactly_from_state_dicts():
    def build():
        net = _net()
        opt = build_optimizer(net, name="lars", lr=0.5, weight_decay=1e-4)
        sched = build_schedule(opt, name="warmup-cosine", total_steps=40, warmup_steps=8,
                               final_lr_ratio=0.01)
        return net, opt, sched

    def run(net, opt, sched, steps, start):
        lrs = []
        for i in range(steps):
            opt.zero_grad()
            _loss(net, seed=start + i).backward()
            opt.step()
            sched.step()
            lrs.append([g["lr"] for g in opt.param_groups])
        return lrs

    net, opt, sched = build()
    full = run(net, opt, sched, 25, 0)
    net_a, opt_a, sched_a = build()
    run(net_a, opt_a, sched_a, 12, 0)
    saved = copy.deepcopy({"model": net_a.state_dict(), "opt": opt_a.state_dict(),
                           "sched": sched_a.state_dict()})
    net_b, opt_b, sched_b = build()  # fresh objects, then load in that order
    net_b.load_state_dict(saved["model"])
    opt_b.load_state_dict(saved["opt"])
    sched_b.load_state_dict(saved["sched"])
    assert [g["lr"] for g in opt_b.param_groups] == full[11]
    assert run(net_b, opt_b, sched_b, 13, 12) == full[12:]
    for p, q in zip(net.parameters(), net_b.parameters(), strict=True):
        assert torch.equal(p, q)


def test_schedule_state_dict_pickles(tmp_path):
    opt = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=1.0)
    sched = build_schedule(opt, name="warmup-cosine", total_steps=10, warmup_steps=2)
    for _ in range(3):
        opt.step()
        sched.step()
    torch.save({"sched": sched.state_dict(), "sched_obj": sched}, tmp_path / "s.pt")
    state = torch.load(tmp_path / "s.pt", weights_only=False)
    assert state["sched"]["last_epoch"] == 3
    assert torch.load(tmp_path / "s.pt", weights_only=False)["sched_obj"].get_last_lr() \
        == sched.get_last_lr()
    torch.save(sched.state_dict(), tmp_path / "w.pt")  # plain values: weights_only loads it
    assert torch.load(tmp_path / "w.pt", weights_only=True)["last_epoch"] == 3


def test_names_are_listed():
    assert OPTIMIZERS == ("adam", "adamw", "sgd", "lars")
    assert SCHEDULES == ("constant", "warmup-cosine")


@pytest.mark.parametrize("kw,match", [
    (dict(name="rmsprop"), "optimizer 'rmsprop' is not one of: adam, adamw, sgd, lars"),
    (dict(name="adam", lr=0.0), "lr"),
    (dict(name="adam", lr=float("nan")), "lr"),
    (dict(name="sgd", weight_decay=-1.0), "weight_decay"),
    (dict(name="sgd", momentum=1.0), "momentum"),
    (dict(name="adamw", betas=(0.9, 1.5)), "betas"),
    (dict(name="adamw", betas=(0.9,)), "betas"),
    (dict(name="adam", eps=0.0), "eps"),
    (dict(name="adam", lr="0.1"), "lr"),
])
def test_bad_optimizer_settings_are_one_line_user_errors(kw, match):
    kw = {"lr": 1e-3, **kw}
    with pytest.raises(UserError, match=match) as exc:
        build_optimizer(_net(), **kw)
    assert "\n" not in str(exc.value)


def test_model_without_trainable_parameters_is_refused():
    net = nn.Linear(2, 2).requires_grad_(False)
    with pytest.raises(UserError, match="no trainable parameters"):
        build_optimizer(net, name="adam", lr=1e-3)


@pytest.mark.parametrize("kw,match", [
    (dict(name="cosine"), "lr schedule 'cosine' is not one of: constant, warmup-cosine"),
    (dict(total_steps=0), "total_steps"),
    (dict(total_steps=2.5), "total_steps"),
    (dict(warmup_steps=-1), "warmup_steps"),
    (dict(warmup_steps=11), "warmup_steps"),
    (dict(final_lr_ratio=1.5), "final_lr_ratio"),
    (dict(final_lr_ratio=-0.1), "final_lr_ratio"),
])
def test_bad_schedule_settings_are_one_line_user_errors(kw, match):
    opt = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=1.0)
    kw = {"name": "warmup-cosine", "total_steps": 10, **kw}
    with pytest.raises(UserError, match=match) as exc:
        build_schedule(opt, **kw)
    assert "\n" not in str(exc.value)


def test_lars_refuses_bad_settings():
    with pytest.raises(UserError, match="trust_coefficient"):
        LARS([nn.Parameter(torch.zeros(1))], lr=0.1, trust_coefficient=0.0)

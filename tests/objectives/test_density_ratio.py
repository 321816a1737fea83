"""The unstructured RPM: KL(R(z)||P(z)) from a classifier, estimated and optimised."""

from __future__ import annotations

import math

import torch

from probssl.objectives.density_ratio import fit_log_density_ratio, unstructured_elbo


def _kl_to_standard(mean: torch.Tensor, scale: torch.Tensor) -> float:
    var = scale ** 2
    return float(0.5 * (var + mean ** 2 - 1 - torch.log(var)).sum())


def test_optimising_the_classifier_elbo_pulls_r_onto_the_prior():
    g = torch.Generator().manual_seed(0)
    scale = torch.tensor([2.0, 0.5], requires_grad=True)
    shift = torch.tensor([1.0, -1.0], requires_grad=True)
    opt = torch.optim.Adam([scale, shift], lr=0.05)
    start = _kl_to_standard(shift.detach(), scale.detach())
    for round_ in range(12):
        x = torch.randn(4000, 2, generator=g)
        prior = torch.randn(4000, 2, generator=g)
        log_ratio = fit_log_density_ratio(prior, x * scale + shift, steps=200)
        if round_ == 0:  # the estimate matches the closed form before any optimisation
            est = -float(unstructured_elbo(log_ratio, x * scale.detach() + shift.detach()))
            assert math.isclose(est, start, rel_tol=0.1)
        for _ in range(10):
            loss = -unstructured_elbo(log_ratio, x * scale + shift)  # = KL estimate
            opt.zero_grad()
            loss.backward()
            opt.step()
    end = _kl_to_standard(shift.detach(), scale.detach())
    assert end < start / 4, (start, end)

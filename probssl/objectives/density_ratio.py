r"""The unstructured model (one x, one z) of the earlier versions of arXiv:2107.02495 —
"unstructured SSVAEs" / "CSSVAEs", Sec. 3.1 of ssvae and of infonce-is-a-vae in
../shared/papers; v3 has no such section (its Sec. 3.1 is background on VI):

    E[L] = const − KL(R(z) || P(z)),

where R(z) is the aggregate of the encoded data and P(z) the prior. Neither density is needed:
the ratio log P(z)/R(z) is estimated by a classifier between prior samples and encoded data
(the density-ratio trick). With logistic regression on quadratic features, the classifier is
exact for Gaussian R and P (their log ratio is quadratic), and the estimate is differentiable
in the codes, so −KL can also be optimised through an encoder.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import nn


def quadratic_features(z: torch.Tensor) -> torch.Tensor:
    """[z, z_i z_j for i <= j]: the features in which Gaussian log ratios are linear.

        >>> quadratic_features(torch.tensor([[1.0, 2.0]]))
        tensor([[1., 2., 1., 2., 4.]])
    """
    i, j = torch.triu_indices(z.shape[1], z.shape[1])
    return torch.cat([z, z[:, i] * z[:, j]], dim=1)


def fit_log_density_ratio(p_samples: torch.Tensor, r_samples: torch.Tensor, *,
                          steps: int = 500, lr: float = 0.05,
                          weight_decay: float = 0.0) -> Callable[[torch.Tensor], torch.Tensor]:
    """Logistic regression "prior sample vs encoded datum"; returns z -> log P(z)/R(z), the
    ratio in the unstructured model's ELBO (infonce-is-a-vae Eq. 13; ssvae Eq. 8), estimated
    with a classifier as both papers propose.

    The classifier's logit estimates log P(z)/R(z) + log(n_P / n_R); the class-prior term is
    removed so unequal sample sizes do not bias the ratio.
    """
    fp, fr = quadratic_features(p_samples.detach()), quadratic_features(r_samples.detach())
    feats = torch.cat([fp, fr])
    mean, std = feats.mean(0), feats.std(0).clamp_min(1e-8)
    labels = torch.cat([torch.ones(len(fp)), torch.zeros(len(fr))]).to(feats)
    clf = nn.Linear(feats.shape[1], 1).to(feats)
    opt = torch.optim.Adam(clf.parameters(), lr=lr, weight_decay=weight_decay)
    loss_fn = nn.BCEWithLogitsLoss()
    x = (feats - mean) / std
    for _ in range(steps):
        opt.zero_grad()
        loss_fn(clf(x).squeeze(1), labels).backward()
        opt.step()
    prior_odds = math.log(len(fp) / len(fr))
    clf.requires_grad_(False)

    def log_ratio(z: torch.Tensor) -> torch.Tensor:
        return clf((quadratic_features(z) - mean) / std).squeeze(1) - prior_odds

    return log_ratio


def unstructured_elbo(log_ratio: Callable[[torch.Tensor], torch.Tensor],
                      codes: torch.Tensor) -> torch.Tensor:
    """E_R[log P(z)/R(z)] = −KL(R(z) || P(z)): the unstructured model's expected ELBO minus its
    const (infonce-is-a-vae Eq. 14; ssvae Eq. 9), averaged over ``codes`` (N, d) ~ R(z)."""
    return log_ratio(codes).mean()

"""How much of each known generative factor a frozen representation keeps (content/style).

For every factor of a dataset that records them (e.g. ``shapes``): a probe from the frozen
means to the factor, fitted on train, scored on test — R² for continuous factors, accuracy
for discrete ones. ``hidden=None`` is a linear probe (least squares with a small ridge for the
continuous ones); ``hidden=d`` an MLP with one hidden ReLU layer (Adam, like the class probes).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from probssl.evaluate.probe import train_probe


def r2_score(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """Coefficient of determination 1 − SS_res / SS_tot of ``y_pred`` against ``y_true``; NaN
    when ``y_true`` is constant."""
    ss_res = float(((y_true - y_pred) ** 2).sum())
    ss_tot = float(((y_true - y_true.mean()) ** 2).sum())
    return 1.0 - ss_res / ss_tot if ss_tot > 0 else float("nan")


def regression_probe(z_train, t_train, z_test, t_test, *, hidden: int | None = None,
                     epochs: int = 200, lr: float = 3e-4, batch_size: int = 128,
                     seed: int = 0, ridge: float = 1e-3) -> float:
    """Test R² of a probe predicting the scalar target t from z (features standardised)."""
    ztr = torch.as_tensor(np.asarray(z_train), dtype=torch.float64)
    zte = torch.as_tensor(np.asarray(z_test), dtype=torch.float64)
    mean, std = ztr.mean(0), ztr.std(0).clamp_min(1e-6)
    ztr, zte = (ztr - mean) / std, (zte - mean) / std
    ttr = torch.as_tensor(np.asarray(t_train), dtype=torch.float64)
    t_mean, t_std = ttr.mean(), ttr.std().clamp_min(1e-12)
    ttr = (ttr - t_mean) / t_std
    if hidden is None:
        a = torch.cat([ztr, torch.ones(len(ztr), 1, dtype=ztr.dtype)], 1)
        reg = ridge * torch.eye(a.shape[1], dtype=a.dtype)
        w = torch.linalg.solve(a.T @ a + reg, a.T @ ttr)
        pred = torch.cat([zte, torch.ones(len(zte), 1, dtype=zte.dtype)], 1) @ w
    else:
        torch.manual_seed(seed)
        net = nn.Sequential(nn.Linear(ztr.shape[1], hidden), nn.ReLU(), nn.Linear(hidden, 1))
        ztr32, ttr32 = ztr.float(), ttr.float()
        opt = torch.optim.Adam(net.parameters(), lr=lr)
        g = torch.Generator().manual_seed(seed)
        for _ in range(epochs):
            perm = torch.randperm(len(ztr32), generator=g)
            for i in range(0, len(perm), batch_size):
                idx = perm[i:i + batch_size]
                loss = (net(ztr32[idx])[:, 0] - ttr32[idx]).pow(2).mean()
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
        with torch.no_grad():
            pred = net(zte.float())[:, 0].double()
    pred = pred * t_std + t_mean
    return r2_score(np.asarray(t_test, dtype=np.float64), pred.numpy())


def factor_scores(z_train, f_train, z_test, f_test, names: list[str],
                  discrete: tuple[str, ...] = (), *, hidden: int | None = None,
                  epochs: int = 200, seed: int = 0) -> dict[str, dict]:
    """Per factor: {"metric": "r2" | "accuracy", "value": ...}."""
    f_train, f_test = np.asarray(f_train), np.asarray(f_test)
    out = {}
    for i, name in enumerate(names):
        if name in discrete:
            r = train_probe(z_train, f_train[:, i].astype(np.int64), z_test,
                            f_test[:, i].astype(np.int64), hidden=hidden, epochs=epochs,
                            seed=seed)
            out[name] = {"metric": "accuracy", "value": r["test_accuracy"]}
        else:
            out[name] = {"metric": "r2", "value": regression_probe(
                z_train, f_train[:, i], z_test, f_test[:, i], hidden=hidden, epochs=epochs,
                seed=seed)}
    return out

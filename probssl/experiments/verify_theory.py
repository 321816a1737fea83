"""`probssl verify-theory`: every RPM identity checked numerically on problems with closed forms.

Problem: jointly Gaussian (x, x') in R^d, unit variances, per-dimension correlation ρ, so
MI(x; x') = −(d/2) log(1 − ρ²). Encoders are identities (deterministic) or add Gaussian noise
of variance ε (stochastic recognition), so R(z, z') is Gaussian with per-dimension variance
1 + ε and covariance ρ, and every term of the ELBO has a closed form.

Each check returns a row: identity, equation, relation, expected, measured, se (standard error
of the Monte-Carlo estimate), tolerance (derived from se: 3 se, or a float-rounding bound for
algebraic identities), pass.
"""

from __future__ import annotations

import math
import time
import zlib
from collections.abc import Callable
from dataclasses import asdict, dataclass

import torch

from probssl.critics import CRITICS, BilinearCritic, build_critic
from probssl.objectives.density_ratio import fit_log_density_ratio, unstructured_elbo
from probssl.objectives.infonce import batch_marginal_infonce, infonce_bound
from probssl.objectives.rpm import diag_gaussian_log_prob, rpm_elbo
from probssl.priors import GaussianDynamicsPrior, InfoNCEPrior, PriorContext


@dataclass
class Row:
    identity: str
    equation: str
    relation: str
    expected: float
    measured: float
    se: float
    tolerance: float
    passed: bool

    def to_json(self) -> dict:
        d = asdict(self)
        d["pass"] = bool(d.pop("passed"))
        return d


def gaussian_mi(d: int, rho: float) -> float:
    """MI(x; x') = −(d/2) log(1 − ρ²) in nats (arXiv:2107.02495v3 Eq. 5 in closed form) of d
    independent unit-variance Gaussian pairs with correlation ``rho``."""
    return -0.5 * d * math.log(1 - rho ** 2)


def sample_pairs(n: int, d: int, rho: float, gen: torch.Generator, eps: float = 0.0):
    """(z, z') = (x, x') + sqrt(ε) noise with corr(x, x') = ρ per dimension."""
    x = torch.randn(n, d, generator=gen, dtype=torch.float64)
    xp = rho * x + math.sqrt(1 - rho ** 2) * torch.randn(n, d, generator=gen,
                                                          dtype=torch.float64)
    if eps > 0:
        x = x + math.sqrt(eps) * torch.randn(n, d, generator=gen, dtype=torch.float64)
        xp = xp + math.sqrt(eps) * torch.randn(n, d, generator=gen, dtype=torch.float64)
    return x, xp


def bivariate_log_prob(z, zp, var_z, var_zp, cov):
    """Sum over dims of log N((z_k, z'_k); 0, [[var_z, cov], [cov, var_zp]])."""
    det = var_z * var_zp - cov ** 2
    q = (var_zp * z ** 2 - 2 * cov * z * zp + var_z * zp ** 2) / det
    return (-0.5 * q - 0.5 * math.log(det) - math.log(2 * math.pi)).sum(-1)


def optimal_log_ratio(z, zp, rho):
    """log p(z'|z)/p(z') for the unit-variance Gaussian problem: the optimal critic."""
    cond = diag_gaussian_log_prob(zp, rho * z, math.log(1 - rho ** 2))
    return cond - diag_gaussian_log_prob(zp, torch.zeros_like(zp), 0.0)


def _mean_se(values: torch.Tensor) -> tuple[float, float]:
    v = values.double()
    return float(v.mean()), float(v.std() / math.sqrt(len(v))) if len(v) > 1 else 0.0


def _batches_in(critic_fn: Callable, n_batches: int, b: int, d: int, rho: float, gen):
    vals = []
    for _ in range(n_batches):
        z, zp = sample_pairs(b, d, rho, gen)
        vals.append(infonce_bound(critic_fn(z, zp)))
    return torch.stack(vals)


def _generator(seed: int, name: str) -> torch.Generator:
    """A generator of its own for each check (and each critic of a check), seeded from the
    run's seed and the name: adding a check or registering a critic does not move the
    Monte-Carlo samples of any other row."""
    return torch.Generator().manual_seed(seed * 1_000_003 + zlib.crc32(name.encode()))


def check_bound_log_n(gen, scale: float) -> list[Row]:
    """arXiv:2107.02495v3 Eq. 6-7: I_N ≤ log N on every batch (B = 64, N = 63) for every
    registered critic at its initial weights; one row per critic."""
    rows, b, d, rho = [], 64, 3, 0.9
    for name in CRITICS:
        own = _generator(gen.initial_seed(), name)
        with torch.random.fork_rng(devices=[]):  # the critic's initial weights: seeded too
            torch.manual_seed(own.initial_seed())
            critic = build_critic(name, d).double()
        with torch.no_grad():
            vals = _batches_in(critic, max(4, int(20 * scale)), b, d, rho, own)
        bound = math.log(b - 1)
        rows.append(Row(f"I_N <= log N ({name} critic, every batch)", "Eq. 6-7", "<=", bound,
                        float(vals.max()), 0.0, 1e-9, bool(vals.max() <= bound + 1e-9)))
    return rows


def check_optimal_critic(gen, scale: float) -> list[Row]:
    """Eq. 6-7: with the optimal critic log p(z'|z)/p(z'), I_N ≤ min(MI, log N) for
    N = 1, 7, 31, 127, 511, and I_N rises with N."""
    d, rho = 2, 0.8
    mi = gaussian_mi(d, rho)
    rows, prev = [], None
    for b in (2, 8, 32, 128, 512):
        n_batches = max(8, int(scale * 4096 // b * 4))
        vals = _batches_in(lambda z, zp: optimal_log_ratio(z.unsqueeze(1), zp.unsqueeze(0), rho),
                           n_batches, b, d, rho, gen)
        m, se = _mean_se(vals)
        bound = min(mi, math.log(b - 1))
        rows.append(Row(f"I_N <= min(MI, log N), optimal critic, N={b - 1}", "Eq. 6-7", "<=",
                        bound, m, se, 3 * se, m <= bound + 3 * se))
        if prev is not None:
            pm, pse = prev
            tol = 3 * math.hypot(se, pse)
            rows.append(Row(f"I_N rises with N: N={b - 1} vs previous", "Eq. 7", ">=", pm, m,
                            math.hypot(se, pse), tol, m >= pm - tol))
        prev = (m, se)
    return rows


def check_restricted_critic(gen, scale: float) -> list[Row]:
    """Eq. 7-8: the best bilinear critic here (W = ρI) has I_N ≤ its closed-form I_∞ = dρ²/2 at
    N = 2047, strictly below the MI: the slack of a restricted critic."""
    d, rho, b = 4, 0.9, 2048
    mi = gaussian_mi(d, rho)
    critic = BilinearCritic(d, init_scale=rho).double()  # the best bilinear critic here
    i_inf = 0.5 * d * rho ** 2  # closed form: w d ρ − w² d / 2 at w = ρ
    with torch.no_grad():
        vals = _batches_in(critic, max(8, int(8 * scale)), b, d, rho, gen)
    m, se = _mean_se(vals)
    return [
        Row(f"bilinear I_N <= closed-form I_inf = d rho^2/2 (N={b - 1})", "Eq. 7-8", "<=",
            i_inf, m, se, 3 * se, m <= i_inf + 3 * se),
        Row(f"bilinear I_N stays below MI even at N={b - 1}", "Eq. 7", "<", mi, m, se, 3 * se,
            m < mi - 3 * se),
    ]


def check_optimal_prior(gen, scale: float) -> list[Row]:
    """Eq. 19-20: under the optimal prior P* = R(z, z') the RPM ELBO (stochastic recognition,
    ε = 0.2) equals the closed-form MI_R."""
    d, rho, eps = 3, 0.7, 0.2
    s = 1 + eps
    n = int(200_000 * scale)
    z, zp = sample_pairs(n, d, rho, gen, eps)
    log_p = bivariate_log_prob(z, zp, s, s, rho)  # P* = R(z, z')
    log_rz = diag_gaussian_log_prob(z, 0.0, math.log(s))
    log_rzp = diag_gaussian_log_prob(zp, 0.0, math.log(s))
    terms = log_p - log_rz - log_rzp
    m, se = _mean_se(terms)
    assert abs(float(rpm_elbo(log_p, log_rz, log_rzp)) - m) < 1e-9
    mi_r = -0.5 * d * math.log(1 - (rho / s) ** 2)
    return [Row("ELBO under P* = R(z,z') equals MI_R (+ const)", "Eq. 19-20", "==", mi_r, m,
                se, 3 * se, abs(m - mi_r) <= 3 * se)]


def check_infonce_prior(gen, scale: float) -> list[Row]:
    """Eq. 21-25: under the InfoNCE prior the ELBO equals I_B on the same batch (an algebraic
    identity), I_B ≤ log B, and I_B matches the bilinear critic's closed-form
    I_∞ = wdρ − w²d/2 while I_∞ ≪ log B."""
    d, rho, w, b = 2, 0.8, 0.5, 4096
    critic = BilinearCritic(d, init_scale=w).double()
    identity_gap, batch_vals, max_i_b = 0.0, [], -math.inf
    with torch.no_grad():
        # at least 10 batches whatever the scale: the s.e. of a mean needs a few samples
        for _ in range(max(10, int(10 * scale))):
            z, zp = sample_pairs(b, d, rho, gen)
            scores = critic(z, zp)
            log_rz = diag_gaussian_log_prob(z, 0.0, 0.0)
            log_rzp = diag_gaussian_log_prob(zp, 0.0, 0.0)
            ctx = PriorContext(log_rz, log_rzp, scores)
            elbo = rpm_elbo(InfoNCEPrior(d).log_prob(z, zp, ctx), log_rz, log_rzp)
            i_b = batch_marginal_infonce(scores)
            identity_gap = max(identity_gap, abs(float(elbo - i_b)))
            max_i_b = max(max_i_b, float(i_b))
            batch_vals.append(i_b)
    m, se = _mean_se(torch.stack(batch_vals))
    closed = w * d * rho - 0.5 * w ** 2 * d
    return [
        Row("ELBO under the InfoNCE prior == I_B (batch-marginal InfoNCE, same batch)",
            "Eq. 21-24", "==", 0.0, identity_gap, 0.0, 1e-9, identity_gap <= 1e-9),
        Row(f"I_B <= log B (largest over the batches, B={b})", "Eq. 24", "<=", math.log(b),
            max_i_b, 0.0, 1e-9, max_i_b <= math.log(b) + 1e-9),
        Row(f"I_B == closed-form I_inf while I_inf << log B (bilinear w=0.5, B={b})",
            "Eq. 24-25", "==", closed, m, se, 3 * se, abs(m - closed) <= 3 * se),
    ]


def _gaussian_kl_2x2(p_cov, q_cov) -> float:
    """KL(N(0, P) || N(0, Q)) for 2x2 covariances."""
    p, q = torch.tensor(p_cov, dtype=torch.float64), torch.tensor(q_cov, dtype=torch.float64)
    qi = torch.linalg.inv(q)
    return float(0.5 * (torch.trace(qi @ p) - 2 + torch.logdet(q) - torch.logdet(p)))


def check_mi_minus_kl(gen, scale: float) -> list[Row]:
    """Eq. 17-18: under a Gaussian-dynamics prior the RPM ELBO equals MI − KL(R(z, z') ‖ P_θ),
    both in closed form."""
    d, rho = 3, 0.7
    a, noise_var, v0 = 0.5, 0.6, 1.3
    prior = GaussianDynamicsPrior(d).double()
    with torch.no_grad():
        prior.A.copy_(a * torch.eye(d))
        prior.log_noise_var.fill_(math.log(noise_var))
        prior.log_var0.fill_(math.log(v0))
    n = int(200_000 * scale)
    z, zp = sample_pairs(n, d, rho, gen)
    with torch.no_grad():
        log_p = prior.log_prob(z, zp)
    log_rz = diag_gaussian_log_prob(z, 0.0, 0.0)
    log_rzp = diag_gaussian_log_prob(zp, 0.0, 0.0)
    m, se = _mean_se(log_p - log_rz - log_rzp)
    kl = d * _gaussian_kl_2x2([[1, rho], [rho, 1]],
                              [[v0, a * v0], [a * v0, a * a * v0 + noise_var]])
    expected = gaussian_mi(d, rho) - kl
    return [Row("ELBO == MI - KL(R(z,z') ‖ P) for a Gaussian-dynamics prior", "Eq. 17-18",
                "==", expected, m, se, 3 * se, abs(m - expected) <= 3 * se)]


def check_jensen_gap(gen, scale: float) -> list[Row]:
    """log P(x, x') − ELBO = log E[w] − E[log w], w = P(z,z') / (R(z) R(z')), under
    recognition N(x, ε I): shrinks to 0 as ε → 0 (App. C)."""
    d, rho, k = 2, 0.7, int(20_000 * scale) + 200
    prior = GaussianDynamicsPrior(d).double()
    with torch.no_grad():
        prior.A.copy_(0.6 * torch.eye(d))
        prior.log_noise_var.fill_(math.log(0.5))
    x, xp = sample_pairs(16, d, rho, gen)
    rows, prev = [], None
    for eps in (1.0, 0.1, 0.01, 0.001):
        gaps = []
        for i in range(len(x)):
            z = x[i] + math.sqrt(eps) * torch.randn(k, d, generator=gen, dtype=torch.float64)
            zp = xp[i] + math.sqrt(eps) * torch.randn(k, d, generator=gen, dtype=torch.float64)
            with torch.no_grad():
                log_w = (prior.log_prob(z, zp) - diag_gaussian_log_prob(z, 0.0, math.log(1 + eps))
                         - diag_gaussian_log_prob(zp, 0.0, math.log(1 + eps)))
            gaps.append(torch.logsumexp(log_w, 0) - math.log(k) - log_w.mean())
        m, se = _mean_se(torch.stack(gaps))
        if prev is None:
            rows.append(Row(f"Jensen gap at eps={eps:g} (reference)", "App. C", ">=", 0.0, m,
                            se, 3 * se, m >= -3 * se))
        else:
            pm, pse = prev
            tol = 3 * math.hypot(se, pse)
            rows.append(Row(f"Jensen gap shrinks: eps={eps:g} < previous eps", "App. C", "<",
                            pm, m, math.hypot(se, pse), tol, m < pm - tol))
        prev = (m, se)
    return rows


def check_learned_posterior(gen, scale: float) -> list[Row]:
    """Eq. 12 with a learned Q_ψ(z, z' | x, x') (Walker et al. 2023), started at Q = R_φ R_φ
    (Eq. 14-15) and trained by gradient ascent: on held-out pairs the bound can only rise."""
    d, rho, eps = 2, 0.7, 0.3
    prior = GaussianDynamicsPrior(d).double()
    with torch.no_grad():
        prior.A.copy_(0.6 * torch.eye(d))
        prior.log_noise_var.fill_(math.log(0.5))
    prior.requires_grad_(False)
    # Q_ψ: Gaussian with mean M [x; x'] + c and a learned diagonal variance; M = I, c = 0,
    # variance ε is exactly the recognition model, so the family contains Q = R.
    M = torch.eye(2 * d, dtype=torch.float64, requires_grad=True)
    c = torch.zeros(2 * d, dtype=torch.float64, requires_grad=True)
    log_s = torch.full((2 * d,), math.log(eps), dtype=torch.float64, requires_grad=True)

    def elbo_terms(x, xp, noise, learned: bool):
        xx = torch.cat([x, xp], 1)
        if learned:
            mean, logv = xx @ M.T + c, log_s
        else:
            mean, logv = xx, torch.full((2 * d,), math.log(eps), dtype=torch.float64)
        zz = mean + torch.exp(0.5 * logv) * noise
        z, zp = zz[:, :d], zz[:, d:]
        log_r = (diag_gaussian_log_prob(z, 0.0, math.log(1 + eps))
                 + diag_gaussian_log_prob(zp, 0.0, math.log(1 + eps)))
        log_recog = (diag_gaussian_log_prob(z, x, math.log(eps))
                     + diag_gaussian_log_prob(zp, xp, math.log(eps)))
        log_q = diag_gaussian_log_prob(zz, mean, logv)
        return prior.log_prob(z, zp) - log_r + log_recog - log_q

    opt = torch.optim.Adam([M, c, log_s], lr=0.02)
    for _ in range(max(100, int(400 * scale))):
        x, xp = sample_pairs(256, d, rho, gen)
        noise = torch.randn(256, 2 * d, generator=gen, dtype=torch.float64)
        loss = -elbo_terms(x, xp, noise, True).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    n = int(50_000 * scale) + 1000
    x, xp = sample_pairs(n, d, rho, gen)
    noise = torch.randn(n, 2 * d, generator=gen, dtype=torch.float64)
    with torch.no_grad():
        gain = elbo_terms(x, xp, noise, True) - elbo_terms(x, xp, noise, False)
    m, se = _mean_se(gain)
    return [Row("learned Q_psi raises the Eq. 12 bound over Q = R (held-out gain)",
                "Eq. 12 vs 15", ">=", 0.0, m, se, 3 * se, m >= -3 * se)]


def check_density_ratio(gen, scale: float) -> list[Row]:
    """Unstructured model: −E_R[log P/R] from a classifier equals KL(R || P) (ssvae and
    infonce-is-a-vae Sec. 3.1; not in v3)."""

    d, mu, var = 3, 0.5, 0.6
    n = int(20_000 * scale) + 2000
    kl = 0.5 * d * (var + mu ** 2 - 1 - math.log(var))  # KL(N(mu, var I) || N(0, I))

    def r_samples(k):
        return mu + math.sqrt(var) * torch.randn(k, d, generator=gen, dtype=torch.float64)

    def p_samples(k):
        return torch.randn(k, d, generator=gen, dtype=torch.float64)

    fits = [fit_log_density_ratio(p_samples(n), r_samples(n)) for _ in range(2)]
    held_out = r_samples(n)
    estimates = [-float(unstructured_elbo(f, held_out)) for f in fits]
    _, se = _mean_se(-fits[0](held_out))
    # tolerance: the held-out mean's s.e. and the spread between two independent fits
    spread = abs(estimates[0] - estimates[1]) / 2
    tol = 3 * math.hypot(se, spread)
    m = sum(estimates) / 2
    return [Row("classifier estimate of KL(R(z)‖P(z)) (unstructured RPM)", "ssvae Sec. 3.1",
                "==", kl, m, math.hypot(se, spread), tol, abs(m - kl) <= tol)]


CHECKS = [check_bound_log_n, check_optimal_critic, check_restricted_critic,
          check_optimal_prior, check_infonce_prior, check_mi_minus_kl, check_jensen_gap,
          check_learned_posterior, check_density_ratio]


def verify_theory(seed: int = 0, scale: float = 1.0) -> list[Row]:
    """Run every check; ``scale`` < 1 shrinks the Monte-Carlo sample sizes (for tests)."""
    rows: list[Row] = []
    for check in CHECKS:
        # torch's global generator too (a module's initial weights, e.g. the density-ratio
        # classifier's), seeded from the seed and the check's name: no row depends on what
        # ran before it (the global state outside is left as it was)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(_generator(seed, check.__name__ + "/global").initial_seed())
            rows.extend(check(_generator(seed, check.__name__), scale))
    return rows


def format_table(rows: list[Row]) -> str:
    """The rows as a markdown table: identity, equation, relation, expected, measured, s.e.,
    tolerance, pass."""
    lines = ["| identity | equation | relation | expected | measured | s.e. | tolerance | pass |",
             "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r.identity} | {r.equation} | {r.relation} | {r.expected:.4f} | "
                     f"{r.measured:.4f} | {r.se:.4f} | {r.tolerance:.2g} | "
                     f"{'pass' if r.passed else 'FAIL'} |")
    return "\n".join(lines)


def run(seed: int = 0, scale: float = 1.0) -> tuple[list[Row], float]:
    """:func:`verify_theory`, timed: (rows, seconds)."""
    t0 = time.perf_counter()
    rows = verify_theory(seed, scale)
    return rows, time.perf_counter() - t0

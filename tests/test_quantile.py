"""Property tests of `qrpo_nb.quantile` against brute-force Python loops (ties, NaN, self exclusion)."""
import math

import numpy as np
import pytest
import torch

from qrpo_nb.quantile import discrete_log_partition, log_partition, quantile_reward


def brute_quantile(r, ref, self_index=None, u=None):
    "R̂_q by explicit loops: share of present references <= r (ties weighted by u when given)."
    out = np.empty(len(r))
    for b in range(len(r)):
        vals = [x for j, x in enumerate(ref[b]) if not math.isnan(x) and not (self_index is not None and j == self_index[b])]
        below = sum(x < r[b] for x in vals)
        equal = sum(x == r[b] for x in vals)
        out[b] = (below + (1.0 if u is None else u[b]) * equal) / len(vals)
    return out


@pytest.mark.parametrize("seed", range(5))
def test_quantile_matches_loops(seed):
    rng = np.random.default_rng(seed)
    B, n = 64, int(rng.integers(1, 12))
    ref = rng.integers(0, 5, (B, n)).astype(float)             # many ties
    ref[rng.random((B, n)) < 0.2] = np.nan
    ref[:, 0] = rng.integers(0, 5, B)                           # at least one present reference per row
    r = rng.integers(-1, 6, B).astype(float)
    si = np.where(rng.random(B) < 0.5, rng.integers(1, n + 1, B) - 1, -1) if n > 1 else None
    if si is not None:
        si[si == 0] = -1                                        # keep column 0 present
    np.testing.assert_allclose(quantile_reward(r, ref, self_index=si), brute_quantile(r, ref, si), rtol=0, atol=1e-15)
    t = quantile_reward(torch.tensor(r, dtype=torch.float32), torch.tensor(ref, dtype=torch.float32),
                        self_index=None if si is None else torch.tensor(si))
    np.testing.assert_allclose(t.numpy(), brute_quantile(r, ref, si), atol=1e-6)


def test_random_tie_break_uses_one_uniform_per_sample():
    rng = np.random.default_rng(7)
    ref = rng.integers(0, 3, (200, 6)).astype(float)
    r = rng.integers(0, 3, 200).astype(float)
    q = quantile_reward(r, ref, tie_break="random", generator=11)
    u = np.random.default_rng(11).random((200, 1))[:, 0]       # the same draws the function makes
    np.testing.assert_allclose(q, brute_quantile(r, ref, u=u), atol=1e-15)


@pytest.mark.parametrize("transform", ["identity", "log", "square", "sqrt"])
def test_discrete_partition_matches_loops(transform):
    rng = np.random.default_rng(3)
    ref = rng.integers(0, 4, (5, 9)).astype(float)
    ref[1, 3:] = np.nan
    beta = 0.3
    f = {"identity": lambda t: t, "log": math.log, "square": lambda t: t * t, "sqrt": math.sqrt}[transform]
    got = discrete_log_partition(ref, beta, transform)
    for b in range(5):
        vals = [x for x in ref[b] if not math.isnan(x)]
        values, counts = np.unique(vals, return_counts=True)
        p = counts / len(vals)
        cdf = np.cumsum(p)
        z = sum(pk * math.exp(f(Fk) / beta) for pk, Fk in zip(p, cdf))
        assert abs(got[b] - math.log(z)) < 1e-12


def test_log_partition_monotone_and_finite_over_range():
    bs = np.geomspace(1e-6, 1e3, 200)
    for name in ["identity", "log", "square", "sqrt", "normal_icdf"]:
        v = log_partition(name, bs)
        assert np.all(np.isfinite(v))
        # Z_f(β) = E[e^{f(U)/β}] and β log Z_f(β) is increasing in 1/β (a log-mean-exp): decreasing in β
        assert np.all(np.diff(bs * v) <= 1e-9), name


def test_chunked_rows_match_direct_comparison():
    "Inputs large enough to be processed in several row chunks give the direct (B, k, n) comparison's answer."
    rng = np.random.default_rng(5)
    B, k, n = 7, 16, 131072                                     # 2^22 // (k n) = 2 rows per chunk
    r, ref = rng.integers(0, 50, (B, k)).astype(float), rng.integers(0, 50, (B, n)).astype(float)
    expected = (ref[:, None, :] <= r[:, :, None]).mean(-1)
    np.testing.assert_array_equal(quantile_reward(r, ref), expected)


@pytest.mark.parametrize("tie_break", ["none", "random"])
def test_many_samples_per_row_match_loops(tie_break):
    "More than 16 samples per row take the sort + binary-search path: same answer as the loops, NaN and ties included."
    rng = np.random.default_rng(9)
    B, k, n = 6, 40, 13
    ref = rng.integers(0, 6, (B, n)).astype(float)
    ref[rng.random((B, n)) < 0.3] = np.nan
    ref[:, 0] = 2.
    ref[2, 1] = np.inf
    r = rng.integers(-1, 7, (B, k)).astype(float)
    r[0, 0], r[1, 0] = np.inf, -np.inf
    got = quantile_reward(r, ref, tie_break=tie_break, generator=4)
    u = np.random.default_rng(4).random((B, k)) if tie_break == "random" else np.ones((B, k))
    for j in range(k):
        np.testing.assert_allclose(got[:, j], brute_quantile(r[:, j], ref, u=u[:, j]), atol=1e-15)


# --- the authors' clamping convention and scaled-normal-icdf (issue 12, item 8) ---------------------------------

from scipy import integrate, special
from qrpo_nb.quantile import apply_transform, mean_reference_std, reference_scale, reference_std


@pytest.mark.parametrize("n", [2, 3, 4, 5, 10])
def test_paper_clamp_is_the_authors_interval(n):
    "clamp='paper' keeps R̂_q in [1/n, (n-1)/n] before Φ⁻¹ and >= 1/n before log (their QRPOTrainer.qrpo_loss)."
    q = np.arange(n + 1) / n                                    # every value R̂_q takes with n references
    lo, hi = 1 / n, (n - 1) / n
    expect_icdf = [special.ndtri(min(max(x, lo), hi)) for x in q]
    expect_log = [math.log(max(x, lo)) for x in q]
    np.testing.assert_allclose(apply_transform(q, "normal_icdf", n=n, clamp="paper"), expect_icdf, atol=1e-12)
    np.testing.assert_allclose(apply_transform(q, "log", n=n, clamp="paper"), expect_log, atol=1e-12)
    assert np.isfinite(apply_transform(q, "normal_icdf", n=n, clamp="paper")).all()


def test_paper_clamp_hand_values_and_small_n():
    z = 0.4307272992954576                                      # Φ⁻¹(2/3), tables
    np.testing.assert_allclose(apply_transform(np.array([0., 1.]), "normal_icdf", n=3, clamp="paper"), [-z, z], atol=1e-12)
    np.testing.assert_allclose(apply_transform(np.array([0., 1.]), "normal_icdf", n=2, clamp="paper"), [0., 0.], atol=1e-15)
    assert list(apply_transform(np.array([0., 1.]), "log", n=1, clamp="paper")) == [0., 0.]
    with pytest.raises(ValueError, match="needs n >= 2"):
        apply_transform(np.array([0., 1.]), "normal_icdf", n=1, clamp="paper")
    with np.errstate(divide="ignore"):
        raw = apply_transform(np.array([0., 1.]), "normal_icdf", clamp="none")
    assert np.isneginf(raw[0]) and np.isposinf(raw[1])


@pytest.mark.parametrize("s,beta", [(0.3, 0.1), (1.0, 0.5), (2.5, 2.0)])
def test_scaled_normal_icdf_log_partition_against_quadrature(s, beta):
    "log Z of s·Φ⁻¹(t) is s²/(2β²): scipy quadrature in the normal-score variable (its own integrand, not ours)."
    val, _ = integrate.quad(lambda z: math.exp(-z * z / 2 + s * z / beta - s * s / (2 * beta * beta)) / math.sqrt(2 * math.pi),
                            -np.inf, np.inf, epsabs=0, epsrel=1e-12)
    expect = s * s / (2 * beta * beta) + math.log(val)          # integrand shifted by its exact log Z: val ≈ 1
    assert abs(log_partition("scaled_normal_icdf", beta, sigma=s) - expect) < 1e-9
    assert abs(log_partition("scaled-normal-icdf", beta, sigma=s, method="quad") - expect) < 1e-7


def test_reference_scale_is_std_over_mean_std():
    rng = np.random.default_rng(0)
    ref = rng.normal(size=(50, 5)) * rng.uniform(0.5, 2, (50, 1))
    sd = np.array([np.std(row, ddof=1) for row in ref])
    np.testing.assert_allclose(reference_std(ref), sd, rtol=1e-12)
    np.testing.assert_allclose(reference_scale(ref), sd / sd.mean(), rtol=1e-12)


def test_mean_reference_std_is_the_authors_training_statistic():
    "train_ref_rewards[:, :n].std(axis=1, ddof=1).mean(0), as in their train_qrpo.py, on a ragged dataset column."
    rng = np.random.default_rng(1)
    col = [list(rng.normal(size=int(rng.integers(5, 9)))) for _ in range(40)]
    want = np.array([r[:4] for r in col]).std(axis=1, ddof=1).mean(0)
    assert abs(mean_reference_std(col, n=4) - want) < 1e-12

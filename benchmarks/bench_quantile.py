"""Benchmark of `qrpo_nb.quantile`: `quantile_reward` (chunked broadcast comparison) against a sort + binary-search
alternative, and the closed-form log-partition against quadrature. Prints figures and ratios measured in one run."""
import time

import numpy as np
import torch

from qrpo_nb.quantile import log_partition, quantile_reward


def sorted_quantile(r, ref):
    "Sort each row (missing last as +inf) and count by binary search: O(B (n + k) log n)."
    valid = ~torch.isnan(ref)
    srt = torch.sort(torch.where(valid, ref, torch.full((), float("inf"))), dim=1).values
    le = torch.minimum(torch.searchsorted(srt, r.contiguous(), right=True), valid.sum(1, keepdim=True))
    return le.to(r.dtype) / valid.sum(1, keepdim=True).to(r.dtype)


def best_of(fn, repeat=5):
    ts = []
    for _ in range(repeat):
        t = time.perf_counter(); fn(); ts.append(time.perf_counter() - t)
    return min(ts)


if __name__ == "__main__":
    torch.manual_seed(0)
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()} (CPU timings; best of 5)")
    print(f"{'B':>6} {'k':>4} {'n':>5} {'ours ms':>10} {'sort ms':>10} {'sort/ours':>10}")
    for B, k, n in [(4096, 1, 1), (4096, 1, 20), (4096, 2, 50), (1024, 20, 1000), (256, 50, 5000)]:
        r, ref = torch.randn(B, k), torch.randn(B, n)
        ref[torch.rand(B, n) < 0.1] = float("nan")
        ref[:, 0] = 0.
        assert torch.allclose(quantile_reward(r, ref), sorted_quantile(r, ref))
        to = best_of(lambda: quantile_reward(r, ref))
        ts = best_of(lambda: sorted_quantile(r, ref))
        print(f"{B:>6} {k:>4} {n:>5} {to * 1e3:>10.2f} {ts * 1e3:>10.2f} {ts / to:>10.2f}")
    print(f"\n{'transform':>12} {'exact us/call':>14} {'quad ms/call':>13} {'quad/exact':>11}")
    for name in ["identity", "log", "square", "sqrt", "normal_icdf"]:
        te = best_of(lambda: [log_partition(name, b) for b in (0.01, 0.1, 1.0)]) / 3
        tq = best_of(lambda: [log_partition(name, b, method="quad") for b in (0.01, 0.1, 1.0)], repeat=2) / 3
        print(f"{name:>12} {te * 1e6:>14.1f} {tq * 1e3:>13.2f} {tq / te:>11.0f}")
    bs = np.geomspace(1e-6, 1e3, 10000)
    tv = best_of(lambda: log_partition("identity", bs))
    print(f"\nvectorised exact log Z over 10,000 betas: {tv * 1e3:.2f} ms ({tv / 1e4 * 1e9:.0f} ns per beta)")

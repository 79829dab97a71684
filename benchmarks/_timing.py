"""What the benchmark scripts share: the best wall time of a call over repeats (CUDA synchronised on a GPU)."""
import time

import torch


def timed(fn, repeats):
    "Best wall time of `fn()` over `repeats` calls, and the last call's output."
    best, out = float("inf"), None
    for _ in range(repeats):
        if torch.cuda.is_available(): torch.cuda.synchronize()
        t0 = time.perf_counter(); out = fn()
        if torch.cuda.is_available(): torch.cuda.synchronize()
        best = min(best, time.perf_counter() - t0)
    return best, out

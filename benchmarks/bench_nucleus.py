"""The top-p step at a 128k vocabulary on CPU: the full sort, `topk` with the full-sort fallback (before), and
`nucleus_logprobs` now (topk, then the histogram path for the rows topk cannot cover), side by side in one run.

Flat rows are what the random (no-SFT) policies of the paper presets give: their nucleus holds most of the 128k
tokens, so topk cannot cover it and every such row paid the full sort. Each line: CPU seconds (user+sys) of the
same calls for each path, the ratios, and whether the kept sets and log-probs are bit-identical to the full sort's
(where a tie crosses the nucleus' edge, which tied tokens are kept is unspecified: the kept count is compared).

    python benchmarks/bench_nucleus.py [--batch 64] [--repeats 5] [--threads 1]
"""
import argparse, math, os, sys, time
from pathlib import Path
from unittest import mock

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import torch

import qrpo_nb.generation as G


def full_sort(scores, temperature, top_p):
    "The reference: sort all V, keep while the mass before a token is below top_p."
    logp = torch.log_softmax(scores.float() / temperature, dim=-1)
    s, order = logp.sort(dim=-1, descending=True)
    drop = torch.zeros_like(logp, dtype=torch.bool).scatter(-1, order, (s.exp().cumsum(-1) - s.exp()) >= top_p)
    return torch.log_softmax(logp.masked_fill(drop, -math.inf), dim=-1)


def topk_then_sort(scores, temperature, top_p):
    "`nucleus_logprobs` without its histogram path: what every flat row paid before."
    none = lambda logp, top_p: (torch.zeros_like(logp, dtype=torch.bool), torch.zeros(logp.shape[0], dtype=torch.bool))
    with mock.patch.object(G, "_nucleus_hist", none): return G.nucleus_logprobs(scores, temperature, top_p)


def cpu_s(fn, repeats):
    c0, w0 = sum(os.times()[:2]), time.perf_counter()
    for _ in range(repeats): out = fn()
    return sum(os.times()[:2]) - c0, time.perf_counter() - w0, out


def same(a, b):
    if torch.equal(a, b): return "yes"
    return f"ties at the edge: same kept count {torch.equal(a.isfinite().sum(-1), b.isfinite().sum(-1))}"


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch", type=int, default=64, help="rows per call (the evaluate stage's batch_size in paper-mini)")
    ap.add_argument("--repeats", type=int, default=5); ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    g = torch.Generator().manual_seed(0)
    V = 128256
    print(f"V = {V:,}, batch {args.batch}, {args.repeats} calls each, torch threads {torch.get_num_threads()}, "
          f"load average {os.getloadavg()[0]:.1f}; CPU s (user+sys)\n")
    print(f"{'logits':10s} {'T / top-p':10s} {'full sort':>10s} {'before':>8s} {'now':>8s} {'sort/now':>9s} {'before/now':>11s}  identical to the full sort")
    for kind, scale in (("flat", 0.05), ("flat-ish", 0.5), ("peaky", 6.0), ("bf16", 4.0)):
        x = torch.randn(args.batch, V, generator=g) * scale
        if kind == "bf16": x = x.bfloat16().float()
        for t, tp in ((0.6, 0.9), (0.7, 0.9)):
            (ca, _, a), (cb, _, b), (cc, _, c) = [cpu_s(lambda f=f: f(x, t, tp), args.repeats)
                                                  for f in (full_sort, topk_then_sort, G.nucleus_logprobs)]
            print(f"{kind:10s} {t:4.1f} / {tp:3.1f} {ca:10.2f} {cb:8.2f} {cc:8.2f} {ca / max(cc, 1e-9):8.1f}x "
                  f"{cb / max(cc, 1e-9):10.1f}x  {same(c, a)}")


if __name__ == "__main__":
    main()

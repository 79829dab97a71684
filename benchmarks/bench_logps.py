"""Per-token log-probs at Llama-3's 128,256-token vocabulary: the unsliced float32 computation against the sliced one.

Issue 12 (paper-mini's system time): on CPU glibc maps every allocation over 32 MB afresh and unmaps it on free, so
each full-size `(positions x vocabulary)` float32 temporary is paid again in minor page faults. The package now
computes the log-probs on slices of ~2M logits (`qrpo_nb.trainer.token_logps`, an in-place backward under autograd, in
`SequenceLogps`; `qrpo_nb.evaluation.position_logps` in `completion_logps`), bit for bit the unsliced result.
Each cell runs in its own subprocess (so its page faults and peak memory are its own) and reports, over `--reps`
repetitions after one warm-up: CPU seconds (user, sys), minor page faults (`resource.getrusage`) and the peak RSS
of the calls (the warm-up on this shape included; a first call on a tiny shape before) above the RSS before them (VmHWM, reset through `/proc/self/clear_refs`). Two kinds of cell:

- `train N` (three ways: unsliced, sliced with a checkpoint per slice as first landed, the package's in-place
  backward `_SliceLogps`): `N` completion positions, bf16 logits from a float32 head under autograd, log-probs, backward (the
  trainer's `SequenceLogps` after the decoder);
- `eval BxL`: a `(B, L, V)` bf16 logits tensor, log-probs of `ids[:, 1:]` with no gradient (`completion_logps`).

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_logps.py
    OMP_NUM_THREADS=1 MALLOC_MMAP_THRESHOLD_=4294967296 .venv/bin/python benchmarks/bench_logps.py   # glibc never mmaps
"""
from __future__ import annotations
import argparse, json, os, resource, subprocess, sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
V = 128256
TRAIN = (64, 256, 1024)
EVAL = ((4, 64), (8, 256))


def _status_kb(key) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(key + ":"): return int(line.split()[1])
    return 0


def _reset_peak() -> int:
    "Reset the peak RSS (VmHWM) to the current RSS (Linux `clear_refs` 5); the RSS now, in kB."
    Path("/proc/self/clear_refs").write_text("5")
    return _status_kb("VmRSS")


def _old_train(logits, targets):  # the package's computation before slicing
    x = logits.float()
    return x.gather(-1, targets[:, None]).squeeze(-1) - __import__("torch").logsumexp(x, -1)


def _ckpt_train(logits, targets):  # the sliced computation as first landed: each slice checkpointed (forward run twice)
    import torch
    from torch.utils.checkpoint import checkpoint
    from qrpo_nb.trainer import chunk_sizes
    sizes = chunk_sizes(*logits.shape)
    if sizes is None: return _old_train(logits, targets)
    return torch.cat([checkpoint(_old_train, x, t, use_reentrant=False, preserve_rng_state=False)
                      for x, t in zip(logits.split(sizes), targets.split(sizes))])


def _old_eval(logits, ids):
    import torch
    return torch.log_softmax(logits.float()[:, :-1], -1).gather(-1, ids[:, 1:, None])[..., 0]


def _inputs(kind, size, seed=0):
    import torch
    g = torch.Generator().manual_seed(seed)
    if kind == "train":
        h = torch.randn(size, 64, generator=g)
        W = (torch.randn(V, 64, generator=g) / 8).requires_grad_()
        return h, W, torch.randint(0, V, (size,), generator=g), torch.randn(size, generator=g)
    B, L = size
    x = torch.empty(B, L, V, dtype=torch.bfloat16)
    for b in range(B): x[b] = torch.randn(L, V, generator=g) * 3   # built a row at a time: no full float32 transient
    return x, torch.randint(0, V, (B, L), generator=g)


def _step(kind, impl, inp):
    import torch
    from qrpo_nb.trainer import token_logps
    from qrpo_nb.evaluation import position_logps
    if kind == "train":
        h, W, t, w = inp
        W.grad = None
        lp = {"old": _old_train, "ckpt": _ckpt_train, "new": token_logps}[impl]((h @ W.T).to(torch.bfloat16), t)
        (lp * w).sum().backward()
        return lp.detach(), W.grad
    with torch.no_grad():
        return (_old_eval if impl == "old" else position_logps)(*inp), None


def cell(kind, impl, size, reps) -> dict:
    "In this process: one warm-up, then `reps` timed calls."
    import torch
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    _step(kind, impl, _inputs(kind, 8 if kind == "train" else (1, 8)))  # libraries' first-call set-up, outside the peak
    inp = _inputs(kind, size)
    rss0 = _reset_peak()
    _step(kind, impl, inp)
    r0 = resource.getrusage(resource.RUSAGE_SELF)
    for _ in range(reps): _step(kind, impl, inp)
    r1 = resource.getrusage(resource.RUSAGE_SELF)
    return dict(user=(r1.ru_utime - r0.ru_utime) / reps, sys=(r1.ru_stime - r0.ru_stime) / reps,
                minflt=(r1.ru_minflt - r0.ru_minflt) / reps, peak_mb=(_status_kb("VmHWM") - rss0) / 1024)


def _identical(kind, size) -> bool:
    "Old and new give the same log-probs and gradient (torch.equal)."
    import torch
    inp = _inputs(kind, size, seed=1)
    a, b = _step(kind, "old", inp), _step(kind, "new", inp)
    return torch.equal(a[0], b[0]) and (a[1] is None or torch.equal(a[1], b[1]))


IMPLS = ("old", "ckpt", "new")   # unsliced; sliced with a checkpoint per slice (train only); the package now


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--cell", nargs=3, metavar=("KIND", "IMPL", "SIZE"), help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.cell:
        kind, impl, size = a.cell
        size = int(size) if kind == "train" else tuple(map(int, size.split("x")))
        print(json.dumps(cell(kind, impl, size, a.reps))); return
    sys.path.insert(0, str(ROOT))
    cases = [("train", str(n)) for n in TRAIN] + [("eval", f"{b}x{l}") for b, l in EVAL]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    print(f"V = {V:,}, per call (mean of {a.reps} after a warm-up), each cell its own process; "
          f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', '-')}, MALLOC_MMAP_THRESHOLD_={os.environ.get('MALLOC_MMAP_THRESHOLD_', '-')}")
    print(f"{'cell':<12} {'identical':>9} | " + " | ".join(f"{i + ' user':>9} {'sys':>6} {'minflt':>9} {'peak MB':>8}" for i in IMPLS))
    for kind, size in cases:
        res = {}
        for impl in (IMPLS if kind == "train" else ("old", "new")):
            out = subprocess.run([sys.executable, __file__, "--reps", str(a.reps), "--cell", kind, impl, size],
                                 env=env, capture_output=True, text=True, check=True).stdout
            res[impl] = json.loads(out.strip().splitlines()[-1])
        sz = int(size) if kind == "train" else tuple(map(int, size.split("x")))
        same = _identical(kind, sz if kind == "train" else (sz[0], min(sz[1], 64)))
        cols = " | ".join(f"{r['user']:9.3f} {r['sys']:6.3f} {r['minflt']:9.0f} {r['peak_mb']:8.0f}" if r else f"{'-':>9} {'':>6} {'':>9} {'':>8}"
                          for r in (res.get(i) for i in IMPLS))
        print(f"{kind + ' ' + size:<12} {str(same):>9} | {cols}", flush=True)


if __name__ == "__main__":
    main()

"""Does this machine compute what an AVX2-only machine would? Weight hashes of a short real training under pins.

Issue 17: the committed results must be what a fresh `make reproduce` gives on an AVX2-only machine. Three libraries
pick their kernels by the CPU they find: ATen's own vectorised kernels (`ATEN_CPU_CAPABILITY`: avx512 / avx2 /
default), MKL's BLAS (`MKL_CBWR`: the code path, `,STRICT` also fixes the result for any thread count) and oneDNN
(`ONEDNN_MAX_CPU_ISA`). `torch.__config__.show()` here: BLAS_INFO=mkl (MKL 2024.2), oneDNN v3.12, OpenMP, CPU
capability AVX512. Each cell below is one subprocess with those variables set before torch is imported; it runs the
code task's tiny model (the cpu preset's model config, fan-in init) through `--sft-steps` SFT steps of the preset's
SFT (`qrpo_nb.trainer.train`, loss "sft", batch 16, lr 3e-3 constant), then `--qrpo-steps` QRPO steps (beta 0.1,
n_ref 4, batch 8, lr 2e-4) on pairs built from the task's completions, and reports a hash of the final weights; the
table gives, for each cell, the hash and max |delta| of its weights against the reference cell (the first listed),
after SFT and after QRPO.

An AVX2-only machine is stood for by the cell with every dispatcher capped at AVX2 (`ATEN_CPU_CAPABILITY=avx2`,
`MKL_CBWR=AVX2`, `ONEDNN_MAX_CPU_ISA=AVX2`): on such a machine those caps change nothing, so whatever reproduces
that cell here reproduces the AVX2 machine (up to what the caps do not reach: a CPU's own FMA and libm results are
IEEE-exact for the ops used, and MKL's CNR mode promises the same results on any CPU that supports the code path).

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_determinism.py                      # the default grid
    .venv/bin/python benchmarks/bench_determinism.py --grid full                            # every combination (36)
    .venv/bin/python benchmarks/bench_determinism.py --cell 'OMP_NUM_THREADS=2 ATEN_CPU_CAPABILITY=avx2'
"""
from __future__ import annotations
import argparse, hashlib, itertools, json, os, resource, subprocess, sys, tempfile, time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PIN_VARS = ("OMP_NUM_THREADS", "ATEN_CPU_CAPABILITY", "MKL_CBWR", "ONEDNN_MAX_CPU_ISA")
AVX2_ALL = dict(ATEN_CPU_CAPABILITY="avx2", MKL_CBWR="AVX2,STRICT", ONEDNN_MAX_CPU_ISA="AVX2")


def run_cell(sft_steps=40, qrpo_steps=6, seed=0, out=None) -> dict:
    "In this process (pins already in the environment): SFT then QRPO; the weights' hashes, saved to `out` if given."
    import numpy as np, torch, datasets
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    from qrpo_nb.data import CodeTask
    from qrpo_nb.models import tiny_llama
    from qrpo_nb.trainer import TrainConfig, train
    t = CodeTask(n_sft=max(16 * sft_steps, 64), n_train=64, n_eval=8, seed=0, reward_backend="grammar", p_wrong=0.5, near_miss="last-swap")
    tok = t.tokenizer()
    mc = dict(hidden_size=128, intermediate_size=256, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=4,
              initializer_range="fan_in")   # presets/cpu.yaml, code part
    policy = tiny_llama(**{**t.model_config(), **mc}, seed=seed)
    sft = t.sft_data()
    rng = np.random.default_rng(seed)
    rows = []   # pairs from the task's own completions: chosen = a row's target, rejected = another row's target
    for i in range(64):
        j = (i + 1 + int(rng.integers(0, len(sft) - 1))) % len(sft)
        rows.append(dict(prompt_id=f"p{i}", prompt=sft[i]["prompt"], chosen=sft[i]["completion"], rejected=sft[j]["completion"],
                         chosen_reward=1.0, rejected_reward=0.0, ref_rewards=rng.uniform(0, 1, 4).round(2).tolist(),
                         chosen_ref_index=-1, rejected_ref_index=-1))
    pairs = datasets.Dataset.from_list(rows)

    def digest(m):
        h, flat = hashlib.sha256(), {}
        for k, v in sorted(m.state_dict().items()):
            a = v.detach().float().contiguous().numpy(); h.update(k.encode()); h.update(a.tobytes()); flat[k] = a
        return h.hexdigest()[:16], flat

    t0, c0 = time.time(), time.process_time()
    with tempfile.TemporaryDirectory() as d:
        common = dict(n_checkpoints=0, seed=seed, progress=False, save_state=False)
        train(TrainConfig(loss="sft", beta=1.0, lr=3e-3, batch_size=16, micro_batch_size=16, epochs=8, warmup_ratio=0.02,
                          lr_schedule="constant", max_grad_norm=10.0, output_dir=f"{d}/sft", max_steps=sft_steps, **common),
              policy, tok, sft)
        h_sft, w_sft = digest(policy)
        train(TrainConfig(loss="qrpo", beta=0.1, lr=2e-4, batch_size=8, micro_batch_size=8, epochs=1, n_ref=4,
                          warmup_ratio=0.1, output_dir=f"{d}/qrpo", max_steps=qrpo_steps, **common), policy, tok, pairs)
        h_q, w_q = digest(policy)
    if out:
        np.savez(f"{out}-sft.npz", **w_sft); np.savez(f"{out}-qrpo.npz", **w_q)
    return dict(sft=h_sft, qrpo=h_q, cap=torch.backends.cpu.get_cpu_capability(), threads=torch.get_num_threads(),
                wall_s=round(time.time() - t0, 1), cpu_s=round(time.process_time() - c0, 1))


def cell_env(spec: dict) -> dict:
    "The environment of one cell: the pins given, the others removed (unset means the library's own choice)."
    env = {k: v for k, v in os.environ.items() if k not in PIN_VARS + ("MKL_NUM_THREADS",)}
    env.update({k: str(v) for k, v in spec.items() if v is not None})
    env["MKL_NUM_THREADS"] = env.setdefault("OMP_NUM_THREADS", "1")
    env["OMP_WAIT_POLICY"] = "PASSIVE"   # same arithmetic; a 2-thread cell on a loaded machine does not spin
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    return env


def run_in_subprocess(spec: dict, out: str, sft_steps: int, qrpo_steps: int) -> dict:
    code = (f"import json, sys; sys.path.insert(0, {str(ROOT / 'benchmarks')!r}); from bench_determinism import run_cell; "
            f"print('RESULT', json.dumps(run_cell({sft_steps}, {qrpo_steps}, out={out!r})))")
    r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    p = subprocess.run([sys.executable, "-c", code], env=cell_env(spec), capture_output=True, text=True, cwd=ROOT)
    r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    line = [l for l in p.stdout.splitlines() if l.startswith("RESULT ")]
    if p.returncode or not line: raise RuntimeError(f"cell {spec} failed:\n{p.stderr[-3000:]}")
    res = json.loads(line[-1][7:])
    res["proc_cpu_s"] = round(r1.ru_utime + r1.ru_stime - r0.ru_utime - r0.ru_stime, 1)
    return res


def max_delta(a: str, b: str) -> float:
    import numpy as np
    x, y = np.load(a), np.load(b)
    return float(max(np.abs(x[k].astype(np.float64) - y[k]).max() for k in x.files))


def grid(name: str) -> list[dict]:
    "Cells as {var: value or None}; the first is the reference (every dispatcher capped at AVX2, 1 thread)."
    if name == "full":
        return [dict(OMP_NUM_THREADS=t, ATEN_CPU_CAPABILITY=a, MKL_CBWR=m, ONEDNN_MAX_CPU_ISA=o)
                for a, m, o, t in itertools.product(("avx2", "avx512", None), ("AVX2,STRICT", "AVX2", None), ("AVX2", None), (1, 2))]
    ref = dict(OMP_NUM_THREADS=1, **AVX2_ALL)
    cells = [ref, {**ref, "OMP_NUM_THREADS": 2}]
    for var in ("ATEN_CPU_CAPABILITY", "MKL_CBWR", "ONEDNN_MAX_CPU_ISA"):   # one dispatcher left free at a time
        for t in (1, 2): cells.append({**ref, var: None, "OMP_NUM_THREADS": t})
    cells += [{**ref, "MKL_CBWR": "AVX2"}, {**ref, "MKL_CBWR": "AVX2", "OMP_NUM_THREADS": 2},   # CNR without STRICT
              {**ref, "ATEN_CPU_CAPABILITY": "avx512"}, {**ref, "ATEN_CPU_CAPABILITY": "default"},
              dict(OMP_NUM_THREADS=1), dict(OMP_NUM_THREADS=2)]   # nothing pinned: this machine's own choice
    return cells


def label(spec: dict) -> str:
    return " ".join(f"{k.split('_')[0] if k != 'ONEDNN_MAX_CPU_ISA' else 'ONEDNN'}={'-' if spec.get(k) is None else spec[k]}"
                    for k in PIN_VARS)


def main(cells, sft_steps=40, qrpo_steps=6, repeat_ref=True):
    with tempfile.TemporaryDirectory(prefix="bench_det_") as d:
        rows = []
        todo = list(cells) + ([cells[0]] if repeat_ref else [])   # the reference again: a run-to-run check of the cell itself
        for i, spec in enumerate(todo):
            r = run_in_subprocess(spec, f"{d}/c{i}", sft_steps, qrpo_steps)
            r.update(spec=spec, i=i)
            r["d_sft"] = max_delta(f"{d}/c{i}-sft.npz", f"{d}/c0-sft.npz")
            r["d_qrpo"] = max_delta(f"{d}/c{i}-qrpo.npz", f"{d}/c0-qrpo.npz")
            rows.append(r)
            print(f"{label(spec):70s} cap {r['cap']:7s} sft {r['sft']} (max|d| {r['d_sft']:.1e})  qrpo {r['qrpo']} "
                  f"(max|d| {r['d_qrpo']:.1e})  {'SAME' if r['qrpo'] == rows[0]['qrpo'] else 'differs'}  "
                  f"[{r['cpu_s']} CPU s in-cell, {r['proc_cpu_s']} CPU s process]", flush=True)
    return rows


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--grid", default="default", choices=("default", "full"))
    ap.add_argument("--cell", action="append", default=[], help="'VAR=value ...' (repeatable); the first is the reference")
    ap.add_argument("--sft-steps", type=int, default=40); ap.add_argument("--qrpo-steps", type=int, default=6)
    ap.add_argument("--json", default=None, help="write the rows here")
    a = ap.parse_args()
    cells = [dict(kv.split("=", 1) for kv in c.split()) for c in a.cell] if a.cell else grid(a.grid)
    rows = main(cells, a.sft_steps, a.qrpo_steps)
    if a.json: Path(a.json).write_text(json.dumps(rows, indent=1, default=str))

"""Throughput and peak memory of `qrpo_nb.trainer` (DPO) against TRL's `DPOTrainer`, in one run, same model and data.

Model (pinned): Llama, 6 layers, hidden 256, MLP 768, 4 heads, vocabulary 32k, untied head (5.1M non-embedding
parameters + an 8.2M LM head). Data: word-level tokens (so counts are exact), prompts 16-128 and completions 16-124
tokens, log-uniform (realistic long tails), so that every sequence fits 256 tokens (39-214 at 96 pairs, mean 113);
batch 8 pairs, one epoch, Adam lr 1e-5, cosine with 10% warm-up, beta 0.1, fp32 on both sides.

Runs, each in its own subprocess (so peak memory is its own): TRL default (a reference model copy scored at every step),
TRL with `precompute_ref_log_probs=True`, and this trainer (reference log-probs once, stored as columns). Each is timed
from the raw dataset and an initialised model to the end of training, tokenisation and the reference pass included.
tokens/s counts the non-padding prompt and completion tokens of both sides of every trained pair (prompt counted with
each side); each TRL run counts them from its own tokenised dataset and the script checks that both counts agree.
A sweep of runs sharing one reference pass (the paper runs 9 per setting) pays that pass once: the per-run ratio uses
this trainer's training time plus a ninth of its tokenisation and reference pass. Model FLOPs follow the 6·N·T rule
(training) plus 2·N·T (reference forward), N = non-embedding parameters + LM head, as a share of the fp32 matmul peak
measured by the same process (MFU), both per CPU-second: on a busy machine wall-clock shares swing with the load, on an
idle one the two agree. The 6·N·T rule counts LM-head FLOPs on prompt positions that this trainer skips
(and that TRL's CPU path computes and throws away), so the MFU of this trainer overstates the work it really executes.

TRL configuration: TRL's defaults (DPOConfig of TRL 1.16: gradient checkpointing on, max_length 1024, no padding-free,
sigmoid loss, fused chunked LM head) except: `bf16=False` (TRL defaults to bf16 autocast, also on CPU; this trainer runs
fp32 on CPU, so both run fp32: the comparison is of trainers, not precisions; measured, TRL's bf16 autocast is 10-15%
faster here, see `trl-bf16`), `use_cpu=True`, the same learning rate / cosine schedule / warm-up / beta / seed as this trainer,
no checkpoint saving and no periodic logging (`save_strategy="no"`, `logging_steps=10**6`, `disable_tqdm`; this trainer
also saves nothing: `n_checkpoints=0, save_state=False`). `--kinds` adds diagnostic runs: `trl-nogc`
(`gradient_checkpointing=False`), `trl-bf16` (TRL's own bf16 default) and `trl-compact` (TRL patched so that its fused
LM head scores completion positions only, as it does on Triton devices: not a configuration, a diagnosis).

Why TRL is slow on a CPU (TRL 1.16, profiled): `DPOTrainer` always replaces the LM head by a fused, chunked log-prob
kernel (`trl.kernels.chunked_logprob`). Without Triton (any CPU) it (1) scores every position of the padded batch,
prompt and padding included, through the whole 32k vocabulary (`compact = _use_triton(device)` in
`trl.trainer.utils`), (2) runs the torch fallback on fp32 tiles of up to 4096 tokens x 32768 vocabulary columns
(512 MiB each) with half a dozen full-size temporaries per tile (exp, masks, `zeros_like`, float one-hot), in the
forward, the backward's recomputation and the reference pass, and (3) computes entropy, mean logit and top-1 for
logging. Every temporary is a fresh `mmap` that the kernel zero-fills: ~40% of TRL's CPU time is system time and its
peak RSS is ~4 GiB for a 21M-parameter model. No DPOConfig option turns this off; scoring only completion positions
(`trl-compact`) cuts its CPU time 2.3-2.4x and its peak memory 2x. Turning gradient checkpointing (on by default) off or
bf16 on changes little (+3-4% and +10-15% tokens/s). TRL also pads all 16 sequences of a batch to the longest one (63% of the padded tokens are real here, vs 82%
for this trainer's length-sorted micro-batches of 2 pairs).

    python benchmarks/bench_trainer.py [--pairs 96] [--batch 8] [--micro 2] [--sweep 9] [--repeat 1]
                                       [--kinds trl-default,trl-precompute,qrpo_nb(,trl-nogc,trl-bf16,trl-compact)]

On a shared machine set OMP_NUM_THREADS=1 and use --repeat 2 (the order of the runs rotates between repeats): with
several threads per process, contention makes wall and CPU time swing by several times between runs; the ratios of
each repeat are printed, and CPU-time ratios are the robust ones when the machine is busy.

Measured 2026-11-29 on the 2-core build machine (AMD EPYC, fp32 matmul peak 88-97 GFLOP/s on one thread), TRL 1.16.0,
transformers 5.24, torch 2.13 CPU, OMP_NUM_THREADS=1, --pairs 48 --repeat 2 (10,514 pair tokens, 6 steps), nearly
idle (wall = CPU time): this trainer 736 / 694 tokens/s, TRL default 182 / 184, TRL precompute 178 / 175: 4.03x / 3.77x
the default and 4.13x / 3.98x precompute; peak RSS 1285 / 1335 vs 4165 / 4142 MiB (0.31x / 0.32x; over the 614 MiB
baseline 0.19x / 0.20x); sweep of 9: 11.1 / 11.7 s per run, 5.19x / 4.88x TRL default and 5.31x / 5.14x TRL
precompute per run; MFU 81% / 83% vs TRL 21% / 22%. Four more repeats under load (two invocations, wall 1.1-3.3x CPU time): 3.75-4.00x
and 3.94-4.26x in CPU time. TRL spends 37-40% of its CPU time in the kernel (12-13.6 million page faults per run vs
1.2-1.3 million here). Diagnostics (--pairs 24, nearly idle): TRL default 164 tokens/s, precompute 150, without
gradient checkpointing 170, bf16 182, completion positions only (`trl-compact`) 332 (peak 2024 vs 4166 MiB); this
trainer 727. The issue's "about 1.6k tokens/s for TRL's default" cannot be reproduced here: 1.6k tokens/s x 8 x 13.3M
FLOP per token is 170 GFLOP/s, 1.8x the measured single-core matmul peak.
"""
import argparse, json, os, resource, subprocess, sys, tempfile, threading, time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
MODEL = dict(vocab_size=32000, hidden_size=256, intermediate_size=768, num_hidden_layers=6, num_attention_heads=4,
             num_key_value_heads=4, max_position_embeddings=512, tie_word_embeddings=False)  # pinned
SEED = 0


class PeakRSS:
    "Samples this process's resident memory every 5 ms; `.peak` and `.base` in MiB."
    def __init__(self):
        import psutil
        self.p, self.base, self.peak, self.run = psutil.Process(), 0.0, 0.0, True
    def __enter__(self):
        self.base = self.peak = self.p.memory_info().rss / 2**20
        self.t = threading.Thread(target=self._loop, daemon=True); self.t.start(); return self
    def _loop(self):
        while self.run:
            self.peak = max(self.peak, self.p.memory_info().rss / 2**20); time.sleep(0.005)
    def __exit__(self, *a):
        self.run = False; self.t.join(); self.peak = max(self.peak, self.p.memory_info().rss / 2**20)


def word_tokenizer():
    "A word-level tokenizer with a 32k vocabulary (`w0` ... ), so that token counts are exact."
    from qrpo_nb.fixtures import WORD_TEMPLATE_EOS, word_tokenizer as words
    specials = ("<pad>", "<s>", "</s>", "<unk>", "<|user|>", "<|assistant|>")
    return words([f"w{i}" for i in range(MODEL["vocab_size"] - len(specials))], specials, WORD_TEMPLATE_EOS, special_roles=True)


def data(n_pairs, seed=SEED):
    "Pairs with widely varying lengths: prompts 16-128 words, completions 16-124 words (log-uniform), Zipf words."
    import numpy as np, datasets
    rng = np.random.default_rng(seed)
    V = MODEL["vocab_size"] - 6
    def text(k): return " ".join(f"w{min(int(x), V - 1)}" for x in rng.zipf(1.3, size=int(k)) - 1)
    def L(lo, hi): return int(np.exp(rng.uniform(np.log(lo), np.log(hi))))
    rows = [{"prompt": [{"role": "user", "content": text(L(16, 128))}], "chosen": text(L(16, 124)), "rejected": text(L(16, 124))}
            for _ in range(n_pairs)]
    return datasets.Dataset.from_list(rows)


def model():
    from qrpo_nb.models import tiny_llama
    return tiny_llama(**MODEL, bos_token_id=1, eos_token_id=2, pad_token_id=0, seed=SEED)


def pair_tokens(tok, ds):
    "Non-padding tokens of prompt + completion, both sides, over the dataset (this trainer's encoding)."
    from qrpo_nb.trainer import tokenize_dataset
    t = tokenize_dataset(ds, tok)
    return sum(len(x) for x in t["chosen_input_ids"]) + sum(len(x) for x in t["rejected_input_ids"])


TRL_KINDS = ("trl-default", "trl-precompute", "trl-nogc", "trl-bf16", "trl-compact")


def run_trl(kind, a, tok, ds, m, d):
    "TRL's DPOTrainer with its defaults (see the module docstring for the few settings changed and why)."
    from trl import DPOConfig, DPOTrainer
    if kind == "trl-compact":  # diagnosis only: score completion positions alone, as TRL does on Triton devices
        import trl.trainer.utils as U
        U._use_triton = lambda device: True
    conv = ds.map(lambda r: {"chosen": [{"role": "assistant", "content": r["chosen"]}],
                             "rejected": [{"role": "assistant", "content": r["rejected"]}]})
    kw = dict(output_dir=d, per_device_train_batch_size=a.batch, gradient_accumulation_steps=1, learning_rate=1e-5,
              num_train_epochs=1, beta=0.1, logging_steps=10**6, save_strategy="no", report_to=[], use_cpu=True,
              bf16=(kind == "trl-bf16"), seed=SEED, disable_tqdm=True, precompute_ref_log_probs=(kind == "trl-precompute"),
              lr_scheduler_type="cosine", warmup_steps=0.1)
    if kind == "trl-nogc": kw["gradient_checkpointing"] = False
    cfg = DPOConfig(**kw)
    m.save_pretrained(Path(d) / "init"); tok.save_pretrained(Path(d) / "init")  # TRL builds its reference model from here
    m.config._name_or_path = m.name_or_path = str(Path(d) / "init")
    t0 = time.perf_counter(); c0 = cpu_times()
    tr = DPOTrainer(model=m, args=cfg, train_dataset=conv, processing_class=tok)
    tr.train()
    td = tr.train_dataset  # TRL's own tokenisation: prompt once per side, completion (with its EOS)
    tokens = sum(2 * len(p) + len(c) + len(r) for p, c, r in zip(td["prompt_ids"], td["chosen_ids"], td["rejected_ids"]))
    used = tr.state.global_step * a.batch
    return t0, c0, {"steps": tr.state.global_step, "tokens_all": tokens, "pairs_used": used,
                    "gradient_checkpointing": cfg.gradient_checkpointing, "bf16": cfg.bf16, "max_length": cfg.max_length}


def cpu_times():
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime, ru.ru_stime, ru.ru_minflt


def run_one(kind, a):
    import torch
    torch.manual_seed(SEED)
    tok, ds, m = word_tokenizer(), data(a.pairs), model()
    out = {"kind": kind, "torch_threads": torch.get_num_threads()}
    with tempfile.TemporaryDirectory() as d, PeakRSS() as mem:
        if kind in TRL_KINDS:
            t0, c0, info = run_trl(kind, a, tok, ds, m, d)
            out.update(info)
        else:
            from qrpo_nb.trainer import TrainConfig, train, tokenize_dataset, compute_reference_logps
            t0 = time.perf_counter(); c0 = cpu_times()
            tds = tokenize_dataset(ds, tok)
            t1 = time.perf_counter()
            tds = compute_reference_logps(m, tds, tok, batch_size=16, progress=False)
            t2 = time.perf_counter(); c2 = cpu_times()
            cfg = TrainConfig(loss="dpo", beta=0.1, lr=1e-5, batch_size=a.batch, micro_batch_size=a.micro, n_checkpoints=0,
                              output_dir=str(Path(d) / "run"), progress=False, seed=SEED, mixed_precision="no", save_state=False)
            res = train(cfg, m, tok, tds)
            out.update(steps=res.steps, tokenize_s=t1 - t0, ref_s=t2 - t1, train_s=time.perf_counter() - t2,
                       prep_cpu_s=c2[0] + c2[1] - c0[0] - c0[1],  # tokenisation and reference pass
                       tokens_all=sum(len(x) for x in tds["chosen_input_ids"]) + sum(len(x) for x in tds["rejected_input_ids"]))
        out["wall_s"] = time.perf_counter() - t0
        c1 = cpu_times()
        out.update(user_s=c1[0] - c0[0], sys_s=c1[1] - c0[1], minor_faults=c1[2] - c0[2])
        out["cpu_s"] = out["user_s"] + out["sys_s"]
    out.update(peak_rss_mib=mem.peak, base_rss_mib=mem.base, peak_over_base_mib=mem.peak - mem.base)
    print(json.dumps(out))


def matmul_peak(n=2048, reps=10):
    "fp32 matmul FLOP per second of wall time and per second of this process's CPU time (robust on a busy machine)."
    import torch
    a, b = torch.randn(n, n), torch.randn(n, n)
    a @ b
    t, c = time.perf_counter(), time.process_time()
    for _ in range(reps): a @ b
    f = 2 * n**3 * reps
    return f / (time.perf_counter() - t), f / (time.process_time() - c)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--pairs", type=int, default=96); p.add_argument("--batch", type=int, default=8)
    p.add_argument("--micro", type=int, default=2); p.add_argument("--sweep", type=int, default=9)
    p.add_argument("--repeat", type=int, default=1, help="repeats of all runs, the order rotating between repeats")
    p.add_argument("--kinds", default="trl-default,trl-precompute,qrpo_nb",
                   help="runs: trl-default, trl-precompute, qrpo_nb (required) and diagnostic trl-nogc, trl-bf16, trl-compact")
    p.add_argument("--one", default=None, help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.one: return run_one(a.one, a)
    kinds = a.kinds.split(",")
    for k in ("trl-default", "trl-precompute", "qrpo_nb"):
        if k not in kinds: kinds.append(k)
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false",
           "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    import torch
    tok, ds = word_tokenizer(), data(a.pairs)
    used = (a.pairs // a.batch) * a.batch  # every trainer here drops no pair when the batch divides the data
    T = pair_tokens(tok, ds.select(range(used)))
    m = model(); N = sum(p.numel() for n, p in m.named_parameters() if "embed_tokens" not in n)
    from qrpo_nb.trainer import tokenize_dataset
    lens = [len(x) for s in ("chosen", "rejected") for x in tokenize_dataset(ds, tok)[f"{s}_input_ids"]]
    print(f"model: Llama {MODEL['num_hidden_layers']} layers x {MODEL['hidden_size']}, vocab {MODEL['vocab_size']}, "
          f"{N/1e6:.1f}M non-embedding params (LM head included); {a.pairs} pairs, batch {a.batch} pairs, one epoch; "
          f"{T} pair tokens, sequences {min(lens)}-{max(lens)} tokens (mean {sum(lens) / len(lens):.0f}); "
          f"torch threads {torch.get_num_threads()} (OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS')})", flush=True)
    allres = []
    for rep in range(a.repeat):
        order = kinds[rep % len(kinds):] + kinds[:rep % len(kinds)]
        res = {}
        for kind in order:
            r = subprocess.run([sys.executable, __file__, "--one", kind, "--pairs", str(a.pairs), "--batch", str(a.batch),
                                "--micro", str(a.micro)], env=env, capture_output=True, text=True)
            if r.returncode: sys.exit(f"{kind} failed:\n{r.stderr[-4000:]}")
            res[kind] = json.loads(r.stdout.strip().splitlines()[-1]); print(res[kind], flush=True)
            if res[kind]["steps"] * a.batch != used: sys.exit(f"{kind} trained {res[kind]['steps']} steps, expected {used // a.batch}")
            if res[kind]["tokens_all"] != pair_tokens(tok, ds):
                sys.exit(f"{kind} counts {res[kind]['tokens_all']} tokens, this script {pair_tokens(tok, ds)}: the encodings differ")
        peak = matmul_peak()
        res["sweep_cpu_s"] = report(res, T, N, peak, a, rep)
        allres.append(res)
    if a.repeat > 1:
        q = [r["qrpo_nb"] for r in allres]; d = [r["trl-default"] for r in allres]; pc = [r["trl-precompute"] for r in allres]
        f = lambda xs: ", ".join(f"{x:.2f}" for x in xs)
        print(f"over {a.repeat} repeats: tokens/s ratio vs TRL default {f([d_['wall_s'] / q_['wall_s'] for q_, d_ in zip(q, d)])} (wall), "
              f"{f([d_['cpu_s'] / q_['cpu_s'] for q_, d_ in zip(q, d)])} (CPU); vs TRL precompute "
              f"{f([d_['wall_s'] / q_['wall_s'] for q_, d_ in zip(q, pc)])} (wall), {f([d_['cpu_s'] / q_['cpu_s'] for q_, d_ in zip(q, pc)])} (CPU); "
              f"peak RSS ratio vs TRL default {f([q_['peak_rss_mib'] / d_['peak_rss_mib'] for q_, d_ in zip(q, d)])}; "
              f"sweep per-run ratio (CPU) vs TRL default {f([d_['cpu_s'] / r['sweep_cpu_s'] for r, d_ in zip(allres, d)])}")
    print("note: CPU timings on a shared machine are noisy; run it on an idle machine for figures to quote.")


def report(res, T, N, peak, a, rep):
    print(f"-- repeat {rep + 1}: measured fp32 matmul peak {peak[0]/1e9:.1f} GFLOP/s of wall time, {peak[1]/1e9:.1f} GFLOP per "
          f"CPU-second (1 process, {__import__('torch').get_num_threads()} threads)")
    print(f"{'run':16s} {'steps':>5s} {'wall s':>8s} {'tokens/s':>9s} {'CPU s':>7s} {'sys s':>6s} {'tok/CPU-s':>9s} "
          f"{'peak RSS MiB':>13s} {'peak-base MiB':>14s} {'MFU':>6s}")
    for k, r in res.items():
        if not isinstance(r, dict): continue
        r["tps"], r["tpc"] = T / r["wall_s"], T / r["cpu_s"]
        r["mfu"] = 8 * N * T / r["cpu_s"] / peak[1]  # per CPU-second: equals the wall-clock MFU on an idle machine
        print(f"{k:16s} {r['steps']:5d} {r['wall_s']:8.1f} {r['tps']:9.0f} {r['cpu_s']:7.1f} {r['sys_s']:6.1f} {r['tpc']:9.0f} "
              f"{r['peak_rss_mib']:13.0f} {r['peak_over_base_mib']:14.0f} {r['mfu']:6.1%}")
    q, d, pc = res["qrpo_nb"], res["trl-default"], res["trl-precompute"]
    print(f"qrpo_nb split: tokenize {q['tokenize_s']:.1f} s, reference pass {q['ref_s']:.1f} s, training {q['train_s']:.1f} s")
    print(f"throughput ratio vs TRL default: {q['tps'] / d['tps']:.2f}x wall, {q['tpc'] / d['tpc']:.2f}x CPU time (goal >= 1.3x); "
          f"vs TRL precompute: {q['tps'] / pc['tps']:.2f}x wall, {q['tpc'] / pc['tpc']:.2f}x CPU time (goal >= 1.0x)")
    print(f"peak memory ratio vs TRL default: RSS {q['peak_rss_mib'] / d['peak_rss_mib']:.2f}x, over-baseline "
          f"{q['peak_over_base_mib'] / max(d['peak_over_base_mib'], 1e-9):.2f}x (goal <= 0.85x); vs precompute: RSS "
          f"{q['peak_rss_mib'] / pc['peak_rss_mib']:.2f}x, over-baseline {q['peak_over_base_mib'] / max(pc['peak_over_base_mib'], 1e-9):.2f}x")
    per_run = q["train_s"] + (q["tokenize_s"] + q["ref_s"]) / a.sweep  # wall seconds
    per_cpu = q["cpu_s"] - q["prep_cpu_s"] + q["prep_cpu_s"] / a.sweep  # CPU seconds
    print(f"sweep of {a.sweep} runs sharing one reference pass: {per_run:.1f} s ({per_cpu:.1f} CPU-s) per run; per-run "
          f"speed-up vs TRL default {d['wall_s'] / per_run:.2f}x wall, {d['cpu_s'] / per_cpu:.2f}x CPU time; vs TRL precompute "
          f"{pc['wall_s'] / per_run:.2f}x wall, {pc['cpu_s'] / per_cpu:.2f}x CPU time", flush=True)
    return per_cpu


if __name__ == "__main__":
    main()

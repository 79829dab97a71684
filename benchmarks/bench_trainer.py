"""Throughput and peak memory of `qrpo_nb.trainer` (DPO) against TRL's `DPOTrainer`, in one run, same model and data.

Three single runs, each in its own subprocess (so peak memory is its own): TRL default (a reference model copy scored at
every step), TRL with `precompute_ref_log_probs=True`, and this trainer (reference log-probs once, stored as columns).
Each is timed from the raw dataset and an initialised model to the end of training, tokenisation and the reference
pass included. tokens/s counts the non-padding prompt and completion tokens of both sides of every trained pair.
A sweep of runs sharing one reference pass (the paper runs 9 per setting) pays that pass once: the per-run ratio uses
this trainer's training time plus a ninth of its tokenisation and reference pass. Model FLOPs follow the 6·N·T rule
(training) plus 2·N·T (reference forward), N = non-embedding parameters + LM head, as a share of the measured fp32
matmul peak of this machine (MFU).

    python benchmarks/bench_trainer.py [--pairs 96] [--batch 8] [--micro 2] [--sweep 9]

On a shared machine set OMP_NUM_THREADS=1: with several threads per process, contention makes both wall and CPU time
(spinning threads) swing by several times between runs. Measured 2026-11-22 on the 2-core build machine under load,
OMP_NUM_THREADS=1, --pairs 48: qrpo_nb 821 tokens/s, TRL default 166, TRL precompute 150 (4.9x, 5.5x); peak RSS
1191 vs 4598 / 4577 MiB (0.26x); sweep of 9: 6.2x / 6.9x per run. The MFU column uses the 6·N·T rule, which counts
LM-head FLOPs on prompt positions that this trainer skips, so its share overstates the work it really executes.
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
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast
    specials = ["<pad>", "<s>", "</s>", "<unk>", "<|user|>", "<|assistant|>"]
    vocab = {t: i for i, t in enumerate(specials + [f"w{i}" for i in range(MODEL["vocab_size"] - len(specials))])}
    tk = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tk.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tok = PreTrainedTokenizerFast(tokenizer_object=tk, bos_token="<s>", eos_token="</s>", pad_token="<pad>", unk_token="<unk>",
                                  additional_special_tokens=specials[4:])
    tok.chat_template = ("{{ bos_token }}{% for m in messages %}<|{{ m['role'] }}|> {{ m['content'] }} {% if m['role'] == 'assistant' %}"
                         "{{ eos_token }}{% endif %}{% endfor %}{% if add_generation_prompt %}<|assistant|> {% endif %}")
    return tok


def data(n_pairs, seed=SEED):
    "Pairs with widely varying lengths: prompts 8-128 words, completions 4-128 words (log-uniform), Zipf words."
    import numpy as np, datasets
    rng = np.random.default_rng(seed)
    V = MODEL["vocab_size"] - 6
    def text(k): return " ".join(f"w{min(int(x), V - 1)}" for x in rng.zipf(1.3, size=int(k)) - 1)
    def L(lo, hi): return int(np.exp(rng.uniform(np.log(lo), np.log(hi))))
    rows = [{"prompt": [{"role": "user", "content": text(L(8, 128))}], "chosen": text(L(4, 128)), "rejected": text(L(4, 128))}
            for _ in range(n_pairs)]
    return datasets.Dataset.from_list(rows)


def model():
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM
    torch.manual_seed(SEED)
    return LlamaForCausalLM(LlamaConfig(**MODEL, bos_token_id=1, eos_token_id=2, pad_token_id=0))


def pair_tokens(tok, ds):
    "Non-padding tokens of prompt + completion, both sides, over the dataset (this trainer's encoding)."
    from qrpo_nb.trainer import tokenize_dataset
    t = tokenize_dataset(ds, tok)
    return sum(len(x) for x in t["chosen_input_ids"]) + sum(len(x) for x in t["rejected_input_ids"])


def run_one(kind, a):
    import torch
    torch.manual_seed(SEED)
    tok, ds, m = word_tokenizer(), data(a.pairs), model()
    out = {"kind": kind}
    with tempfile.TemporaryDirectory() as d, PeakRSS() as mem:
        ru = resource.getrusage(resource.RUSAGE_SELF); c0 = ru.ru_utime + ru.ru_stime  # CPU time: robust on a busy machine
        t0 = time.perf_counter()
        if kind.startswith("trl"):
            from trl import DPOConfig, DPOTrainer
            conv = ds.map(lambda r: {"chosen": [{"role": "assistant", "content": r["chosen"]}],
                                     "rejected": [{"role": "assistant", "content": r["rejected"]}]})
            cfg = DPOConfig(output_dir=d, per_device_train_batch_size=a.batch, gradient_accumulation_steps=1, learning_rate=1e-5,
                            num_train_epochs=1, beta=0.1, max_length=1024, logging_steps=10**6, save_strategy="no", report_to=[],
                            use_cpu=True, bf16=False, seed=SEED, dataloader_num_workers=0, disable_tqdm=True,
                            precompute_ref_log_probs=(kind == "trl-precompute"), lr_scheduler_type="cosine", warmup_steps=0.1)
            m.save_pretrained(Path(d) / "init"); tok.save_pretrained(Path(d) / "init")  # TRL builds its reference model from here
            m.config._name_or_path = m.name_or_path = str(Path(d) / "init")
            t0 = time.perf_counter(); ru = resource.getrusage(resource.RUSAGE_SELF); c0 = ru.ru_utime + ru.ru_stime
            tr = DPOTrainer(model=m, args=cfg, train_dataset=conv, processing_class=tok)
            tr.train()
            out["steps"] = tr.state.global_step
        else:
            from qrpo_nb.trainer import TrainConfig, train, tokenize_dataset, compute_reference_logps
            t0 = time.perf_counter(); ru = resource.getrusage(resource.RUSAGE_SELF); c0 = ru.ru_utime + ru.ru_stime
            tds = tokenize_dataset(ds, tok)
            t1 = time.perf_counter()
            tds = compute_reference_logps(m, tds, tok, batch_size=16, progress=False)
            t2 = time.perf_counter()
            cfg = TrainConfig(loss="dpo", beta=0.1, lr=1e-5, batch_size=a.batch, micro_batch_size=a.micro, n_checkpoints=0,
                              output_dir=str(Path(d) / "run"), progress=False, seed=SEED, mixed_precision="no", save_state=False)
            res = train(cfg, m, tok, tds)
            out.update(steps=res.steps, tokenize_s=t1 - t0, ref_s=t2 - t1, train_s=time.perf_counter() - t2)
        out["wall_s"] = time.perf_counter() - t0
        ru = resource.getrusage(resource.RUSAGE_SELF)
        out["cpu_s"] = ru.ru_utime + ru.ru_stime - c0
    out.update(peak_rss_mib=mem.peak, base_rss_mib=mem.base, peak_over_base_mib=mem.peak - mem.base)
    print(json.dumps(out))


def matmul_peak(n=2048, reps=10):
    import torch
    a, b = torch.randn(n, n), torch.randn(n, n)
    a @ b
    t = time.perf_counter()
    for _ in range(reps): a @ b
    return 2 * n**3 * reps / (time.perf_counter() - t)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--pairs", type=int, default=96); p.add_argument("--batch", type=int, default=8)
    p.add_argument("--micro", type=int, default=2); p.add_argument("--sweep", type=int, default=9)
    p.add_argument("--one", default=None, help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.one: return run_one(a.one, a)
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false",
           "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    res = {}
    for kind in ("trl-default", "trl-precompute", "qrpo_nb"):
        r = subprocess.run([sys.executable, __file__, "--one", kind, "--pairs", str(a.pairs), "--batch", str(a.batch),
                            "--micro", str(a.micro)], env=env, capture_output=True, text=True)
        if r.returncode: sys.exit(f"{kind} failed:\n{r.stderr[-4000:]}")
        res[kind] = json.loads(r.stdout.strip().splitlines()[-1]); print(res[kind], flush=True)
    import torch
    from qrpo_nb.trainer import tokenize_dataset
    tok, ds = word_tokenizer(), data(a.pairs)
    used = (a.pairs // a.batch) * a.batch  # every trainer here drops no pair when the batch divides the data
    T = pair_tokens(tok, ds.select(range(used)))
    m = model(); N = sum(p.numel() for n, p in m.named_parameters() if "embed_tokens" not in n)
    peak = matmul_peak()
    print(f"model: Llama {MODEL['num_hidden_layers']} layers x {MODEL['hidden_size']}, vocab {MODEL['vocab_size']}, "
          f"{N/1e6:.1f}M non-embedding params; {a.pairs} pairs, batch {a.batch}, {T} pair tokens "
          f"({T / (2 * a.pairs):.0f} per sequence on average); torch threads {torch.get_num_threads()}")
    print(f"measured fp32 matmul peak: {peak/1e9:.1f} GFLOP/s")
    print(f"{'run':16s} {'steps':>5s} {'wall s':>8s} {'tokens/s':>9s} {'CPU s':>7s} {'tok/CPU-s':>9s} {'peak RSS MiB':>13s} {'peak-base MiB':>14s} {'MFU':>6s}")
    for k, r in res.items():
        r["tps"], r["tpc"] = T / r["wall_s"], T / r["cpu_s"]
        r["mfu"] = 8 * N * T / r["wall_s"] / peak
        print(f"{k:16s} {r['steps']:5d} {r['wall_s']:8.1f} {r['tps']:9.0f} {r['cpu_s']:7.1f} {r['tpc']:9.0f} {r['peak_rss_mib']:13.0f} {r['peak_over_base_mib']:14.0f} {r['mfu']:6.1%}")
    q, d, pc = res["qrpo_nb"], res["trl-default"], res["trl-precompute"]
    print(f"qrpo_nb split: tokenize {q['tokenize_s']:.1f} s, reference pass {q['ref_s']:.1f} s, training {q['train_s']:.1f} s")
    print(f"throughput ratio vs TRL default: {q['tps'] / d['tps']:.2f}x wall, {q['tpc'] / d['tpc']:.2f}x CPU time (goal >= 1.3x); "
          f"vs TRL precompute: {q['tps'] / pc['tps']:.2f}x wall, {q['tpc'] / pc['tpc']:.2f}x CPU time (goal >= 1.0x)")
    print(f"peak memory ratio vs TRL default: RSS {q['peak_rss_mib'] / d['peak_rss_mib']:.2f}x, over-baseline "
          f"{q['peak_over_base_mib'] / max(d['peak_over_base_mib'], 1e-9):.2f}x (goal <= 0.85x); vs precompute: RSS "
          f"{q['peak_rss_mib'] / pc['peak_rss_mib']:.2f}x, over-baseline {q['peak_over_base_mib'] / max(pc['peak_over_base_mib'], 1e-9):.2f}x")
    per_run = q["train_s"] + (q["tokenize_s"] + q["ref_s"]) / a.sweep  # wall seconds
    print(f"sweep of {a.sweep} runs sharing one reference pass: {per_run:.1f} s per run; per-run speed-up vs TRL default "
          f"{d['wall_s'] / per_run:.2f}x, vs TRL precompute {pc['wall_s'] / per_run:.2f}x")
    print("note: CPU timings on a shared machine are noisy; run it on an idle machine for figures to quote.")


if __name__ == "__main__":
    main()

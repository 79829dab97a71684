"""The CPU code task's SFT warm-up: does π_ref leave the copy plateau?

Runs the library's SFT path exactly as `nbs/experiments/02_sft.ipynb` calls it (`qrpo_nb.trainer.train` with
`loss="sft"` on `CodeTask.sft_data()`, the model `tiny_llama(**task.model_config(), **model_config, seed=seed)`),
prints the loss by step, then greedy-decodes held-out problems and prints the exact-match rate (the correct
solution, character for character), the rate of right programs up to the constants, the rate of right constants,
and the grammar pass rate. The model's initial scale is the task's (`CodeTask.initializer_range`, "fan_in");
`--model-config '{"initializer_range": 0.02}'` gives the previous default (Llama's), which stalls on the plateau.
`--max-steps N` stops after N steps of the same 8-epoch constant schedule: the first N steps of the preset's SFT.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_warmup.py --epochs 2 --seed 0
    .venv/bin/python benchmarks/bench_warmup.py --matrix          # seeds x threads x ATEN_CPU_CAPABILITY, one subprocess each
"""
from __future__ import annotations
import argparse, json, os, re, subprocess, sys, time


def cell(seed=0, threads=1, epochs=8.0, lr=3e-3, schedule="constant", warmup_ratio=0.02, batch_size=16, n_sft=5000,
         max_grad_norm=10.0, n_eval=128, model_config=None, task_options=None, every=50, quiet=False, max_steps=None,
         sampled_seeds=()): # also sample the test split at the evaluation stage's T=0.6, top-p 0.9 with these seeds
    "One SFT run + greedy evaluation; returns a dict of the measures."
    import torch
    torch.set_num_threads(threads)
    import tempfile
    from qrpo_nb.data import CodeTask, code_rewards
    from qrpo_nb.models import tiny_llama
    from qrpo_nb.trainer import TrainConfig, train
    opts = dict(p_wrong=0.5, near_miss="last-swap", **(task_options or {}))
    t = CodeTask(n_sft=n_sft, n_train=512, n_eval=256, seed=0, reward_backend="grammar", **opts)
    tok = t.tokenizer()
    mc = dict(hidden_size=128, intermediate_size=256, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=4)
    mc.update(model_config or {})
    policy = tiny_llama(**{**t.model_config(), **mc}, seed=seed)
    t0 = time.time()
    with tempfile.TemporaryDirectory() as d:
        cfg = TrainConfig(loss="sft", beta=1.0, lr=lr, batch_size=batch_size, micro_batch_size=batch_size, epochs=epochs,
                          warmup_ratio=warmup_ratio, lr_schedule=schedule, max_grad_norm=max_grad_norm, n_checkpoints=0,
                          seed=seed, output_dir=d, progress=False, save_state=False, max_steps=max_steps)
        res = train(cfg, policy, tok, t.sft_data())
    t_train = time.time() - t0
    losses = [h["loss"] for h in res.history]
    curve = {h["step"]: round(h["loss"], 4) for h in res.history if h["step"] % every == 0 or h["step"] == res.steps}
    ev = evaluate(policy, tok, t, n_eval)
    if sampled_seeds: ev.update(sampled_pass_rate(policy, tok, t, sampled_seeds))
    out = dict(seed=seed, threads=torch.get_num_threads(), cap=torch.backends.cpu.get_cpu_capability(), steps=res.steps,
               init=policy.config.initializer_range,
               final_loss=round(sum(losses[-50:]) / len(losses[-50:]), 4), train_s=round(t_train, 1), **ev, curve=curve)
    if not quiet:
        for s, l in curve.items(): print(f"step {s:5d} loss {l:.4f}")
        print(json.dumps({k: v for k, v in out.items() if k != "curve"}))
    return out


_CONST = re.compile(r"-?\d+")

def evaluate(policy, tok, t, n_eval=128):
    "Greedy decodes of `n_eval` held-out problems: exact match, right program up to constants, right constants, pass rate."
    import torch
    from qrpo_nb.data import code_rewards
    probs = t._pool("eval")[:n_eval]
    tok.padding_side = "left"
    policy.eval()
    texts = []
    for i in range(0, len(probs), 64):
        chats = [[{"role": "user", "content": p["query"]}] for p in probs[i:i + 64]]
        enc = tok.apply_chat_template(chats, add_generation_prompt=True, return_tensors="pt", padding=True, return_dict=True)
        with torch.no_grad():
            g = policy.generate(**enc, do_sample=False, max_new_tokens=48, pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id)
        texts += tok.batch_decode(g[:, enc["input_ids"].shape[1]:], skip_special_tokens=True)
    exact = sum(x.strip() == p["response"] for x, p in zip(texts, probs)) / len(probs)
    shape = sum(_CONST.sub("K", x.strip()) == _CONST.sub("K", p["response"]) for x, p in zip(texts, probs)) / len(probs)
    consts = sum(_CONST.findall(x) == _CONST.findall(p["response"]) for x, p in zip(texts, probs)) / len(probs)
    rows = [dict(input_output=p["input_output"]) for p in probs]
    pr = sum(code_rewards(rows, texts, backend="grammar")) / len(probs)
    return dict(exact=round(exact, 4), program=round(shape, 4), constants=round(consts, 4), pass_rate=round(pr, 4),
                example=texts[0])


def sampled_pass_rate(policy, tok, t, seeds):
    "Test-split pass rate of one sample per prompt at T=0.6, top-p 0.9 (the evaluation stage's sampling), per seed."
    from qrpo_nb.data import code_rewards
    from qrpo_nb.generation import generate
    rows = [r for r in t.eval_prompts() if r["split"] == "test"]
    rates = []
    for s in seeds:
        texts = [c[0] for c in generate(policy, tok, [r["prompt"] for r in rows], 1, temperature=0.6, top_p=0.9,
                                        max_new_tokens=48, seed=s, prompt_ids=[r["prompt_id"] for r in rows], progress=False, batch_size=64)]
        rates.append(sum(code_rewards(rows, texts, backend="grammar")) / len(rows))
    m = sum(rates) / len(rates)
    return dict(test_pass_sampled=round(m, 4), test_pass_sampled_per_seed=[round(r, 4) for r in rates], n_test=len(rows))


def matrix(seeds=(0, 1, 2), threads=(1, 2), caps=("avx512", "avx2", "default"), **kw):
    "Each cell in its own subprocess with `ATEN_CPU_CAPABILITY` and `OMP_NUM_THREADS` set; returns the rows."
    rows = []
    for cap in caps:
        for th in threads:
            for s in seeds:
                # passive OpenMP waits: the same arithmetic, but a 2-thread cell on a loaded machine no longer spins
                # (measured: 3x the CPU time of a 1-thread cell at load 8, 15 min for one cell)
                env = dict(os.environ, ATEN_CPU_CAPABILITY=cap, OMP_NUM_THREADS=str(th), MKL_NUM_THREADS=str(th), OMP_WAIT_POLICY="PASSIVE")
                code = (f"import json,sys; sys.path.insert(0, {os.path.dirname(os.path.abspath(__file__))!r}); "
                        f"from bench_warmup import cell; print('RESULT', json.dumps(cell(seed={s}, threads={th}, quiet=True, **{kw!r})))")
                p = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
                line = [l for l in p.stdout.splitlines() if l.startswith("RESULT ")]
                if p.returncode or not line: raise RuntimeError(f"cell {cap}/{th}/{s} failed:\n{p.stderr[-3000:]}")
                r = json.loads(line[-1][7:])
                print(f"{r['cap']:8s} threads {r['threads']} seed {s}: steps {r['steps']} loss {r['final_loss']:.4f} exact {r['exact']:.3f} "
                      f"program {r['program']:.3f} constants {r['constants']:.3f} pass {r['pass_rate']:.3f} ({r['train_s']} s)", flush=True)
                rows.append(r)
    return rows


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--seed", type=int, default=0); ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--epochs", type=float, default=8.0); ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--schedule", default="constant"); ap.add_argument("--warmup-ratio", type=float, default=0.02)
    ap.add_argument("--batch-size", type=int, default=16); ap.add_argument("--n-sft", type=int, default=5000)
    ap.add_argument("--max-steps", type=int, default=None); ap.add_argument("--every", type=int, default=50)
    ap.add_argument("--model-config", type=json.loads, default=None); ap.add_argument("--task-options", type=json.loads, default=None)
    ap.add_argument("--matrix", action="store_true"); ap.add_argument("--n-eval", type=int, default=128)
    ap.add_argument("--sampled-seeds", type=int, nargs="*", default=[])
    a = ap.parse_args()
    kw = dict(epochs=a.epochs, lr=a.lr, schedule=a.schedule, warmup_ratio=a.warmup_ratio, batch_size=a.batch_size,
              n_sft=a.n_sft, model_config=a.model_config, task_options=a.task_options, max_steps=a.max_steps)
    if a.matrix: matrix(**kw)
    else: cell(seed=a.seed, threads=a.threads, every=a.every, n_eval=a.n_eval, sampled_seeds=tuple(a.sampled_seeds), **kw)

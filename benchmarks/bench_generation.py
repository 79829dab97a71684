"""Reference-generation throughput: tokens/s of each available backend on the same prompts and model.

Runs, side by side in one process: the transformers backend of `qrpo_nb.generation.generate` (per-row seeded
sampling) at several batch sizes, plain `model.generate(do_sample=True)` on the same batches (what per-row seeding
costs), and vLLM when it is installed (with a CUDA device). Default model: the `cpu_code` task's tiny Llama and its
tokenizer; `--model PATH` takes any causal LM folder (its tokenizer must be beside it).

    python benchmarks/bench_generation.py [--model PATH] [--prompts 8] [--n 4] [--max-new-tokens 32] [--device cpu] [--threads 1]
    python benchmarks/bench_generation.py --nucleus [--threads 1]

`--nucleus`: the top-p step alone, `nucleus_logprobs` (topk when it covers the nucleus) against the full sort it
replaced, side by side in one run, at V = 128,256 (Llama-3) and V = 256, on peaky, bf16 and flat logits: CPU
seconds (user+sys) and wall, and that both give identical log-probs where no tie crosses the nucleus' edge.
"""
import argparse, importlib.util, os, sys, tempfile, time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import torch
sys.path.insert(0, str(Path(__file__).resolve().parent))
from _timing import timed

from qrpo_nb.generation import generate, render_prompt, stop_token_ids


def load(args):
    if args.model:
        from qrpo_nb.models import load_model, load_tokenizer
        return load_model(args.model, device=args.device).eval(), load_tokenizer(args.model), args.model
    from qrpo_nb.data import get_task
    from qrpo_nb.models import tiny_llama
    task = get_task("cpu_code", n_sft=0, n_train=args.prompts, n_eval=0)
    tok = task.tokenizer()
    model = tiny_llama(**task.model_config()).to(args.device).eval()
    return model, tok, None


def prompts_for(args, tok):
    from qrpo_nb.data import get_task
    return [r["prompt"] for r in get_task("cpu_code", n_sft=0, n_train=args.prompts, n_eval=0).train_prompts()]




@torch.no_grad()
def plain_hf(model, tok, prompts, n, max_new_tokens, batch_size):
    """transformers' own sampling on the same left-padded batches (one global random stream): the baseline."""
    from transformers import GenerationConfig
    stops = stop_token_ids(model, tok)
    pad = tok.pad_token_id if tok.pad_token_id is not None else stops[0]
    ids = [render_prompt(tok, p) for p in prompts for _ in range(n)]
    cfg = GenerationConfig(do_sample=True, temperature=1.0, top_p=1.0, top_k=0, max_new_tokens=max_new_tokens,
                           eos_token_id=stops, pad_token_id=pad)
    total = 0
    for b in range(0, len(ids), batch_size):
        batch = ids[b:b + batch_size]; width = max(map(len, batch))
        x = torch.full((len(batch), width), pad); m = torch.zeros_like(x)
        for r, s in enumerate(batch): x[r, width - len(s):] = torch.tensor(s); m[r, width - len(s):] = 1
        out = model.generate(input_ids=x.to(model.device), attention_mask=m.to(model.device), generation_config=cfg)
        for row in out[:, width:].tolist():
            total += next((k for k, t in enumerate(row) if t in stops), len(row))
    return total


from bench_nucleus import full_sort as _full_sort_nucleus  # the full-sort nucleus `nucleus_logprobs` replaced (this folder is on sys.path)


def bench_nucleus(repeats=20, batch=12, temperature=0.6, top_p=0.9):
    from qrpo_nb.generation import nucleus_logprobs
    g = torch.Generator().manual_seed(0)
    print(f"nucleus step: batch {batch}, temperature {temperature}, top-p {top_p}, {repeats} calls each, "
          f"torch threads {torch.get_num_threads()}, load average {os.getloadavg()[0]:.1f}\n")
    print(f"(V = 256: {200 * repeats} calls each)")
    print(f"{'V':>7s} {'logits':8s} {'full sort CPU s':>16s} {'topk CPU s':>11s} {'ratio':>6s} {'wall ratio':>10s} identical")
    for V in (128256, 256):
        for kind, scale in (("peaky", 6.0), ("bf16", 4.0), ("flat", 0.05)):
            x = torch.randn(batch, V, generator=g) * scale
            if kind == "bf16": x = x.bfloat16().float()
            res = []
            for f in (_full_sort_nucleus, nucleus_logprobs):
                c0, w0 = sum(os.times()[:2]), time.perf_counter()
                for _ in range(repeats if V > 10000 else 200 * repeats): out = f(x, temperature, top_p)
                res.append((sum(os.times()[:2]) - c0, time.perf_counter() - w0, out))
            (ca, wa, a), (cb, wb, b) = res
            print(f"{V:7d} {kind:8s} {ca:16.3f} {cb:11.3f} {ca / max(cb, 1e-9):5.1f}x {wa / wb:9.1f}x {'yes' if torch.equal(a, b) else 'ties at the edge: same kept count ' + str(torch.equal(a.isfinite().sum(-1), b.isfinite().sum(-1)))}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=None); ap.add_argument("--device", default="cpu")
    ap.add_argument("--prompts", type=int, default=8); ap.add_argument("--n", type=int, default=4)
    ap.add_argument("--max-new-tokens", type=int, default=32); ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--batch-sizes", default="1,32")
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads (1 suits a tiny model on a busy box)")
    ap.add_argument("--nucleus", action="store_true", help="time the top-p step alone (topk vs full sort)")
    args = ap.parse_args()
    if args.device == "cpu": torch.set_num_threads(args.threads)
    if args.nucleus: return bench_nucleus()
    torch.manual_seed(0)
    model, tok, path = load(args)
    prompts = prompts_for(args, tok)
    rows = len(prompts) * args.n
    print(f"model: {path or 'cpu_code tiny Llama'} ({sum(p.numel() for p in model.parameters()) / 1e6:.2f}M params), "
          f"device {args.device}, torch threads {torch.get_num_threads()}, load average {os.getloadavg()[0]:.1f}")
    print(f"{len(prompts)} prompts x n={args.n} = {rows} completions, up to {args.max_new_tokens} new tokens, "
          f"temperature 1.0, top-p 1.0; best of {args.repeats} runs\n")
    results = []
    for bs in [int(b) for b in args.batch_sizes.split(",")]:
        dt, (_, lengths) = timed(lambda: generate(model, tok, prompts, args.n, max_new_tokens=args.max_new_tokens,
                                                  batch_size=bs, return_lengths=True, progress=False), args.repeats)
        results.append((f"qrpo_nb hf (seeded), batch {bs}", sum(map(sum, lengths)), dt))
        dt, toks = timed(lambda: plain_hf(model, tok, prompts, args.n, args.max_new_tokens, bs), args.repeats)
        results.append((f"transformers do_sample, batch {bs}", toks, dt))
    if importlib.util.find_spec("vllm") is not None and torch.cuda.is_available():
        from vllm import LLM
        with tempfile.TemporaryDirectory() as d:
            if path is None: model.save_pretrained(d); tok.save_pretrained(d)
            llm = LLM(model=path or d, seed=0)
            dt, (_, lengths) = timed(lambda: generate(llm, tok, prompts, args.n, backend="vllm", progress=False,
                                                      max_new_tokens=args.max_new_tokens, return_lengths=True),
                                     args.repeats)
            results.append(("qrpo_nb vllm", sum(map(sum, lengths)), dt))
    else:
        print("vLLM: not installed or no CUDA device here: its row is skipped\n")
    base = results[0][1] / results[0][2]
    print(f"{'backend':38s} {'tokens':>7s} {'seconds':>8s} {'tok/s':>9s} {'vs first':>9s}")
    for name, toks, dt in results:
        print(f"{name:38s} {toks:7d} {dt:8.2f} {toks / dt:9.1f} {toks / dt / base:8.2f}x")
    print("\nseeded/plain ratio per batch size (tokens/s; below 1 = cost of per-row seeding):")
    for i in range(0, 2 * len(args.batch_sizes.split(",")), 2):
        (a, ta, da), (b, tb, db) = results[i], results[i + 1]
        print(f"  {a.split(', ')[1]:10s} {(ta / da) / (tb / db):.2f}")


if __name__ == "__main__":
    main()

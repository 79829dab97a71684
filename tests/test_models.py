"Models: clear errors offline, tiny models for the CPU tasks, and (slow) the SFT warm-up that makes π_ref for cpu_code."
import math, os, random, time
import numpy as np
import pytest
import torch
from qrpo_nb.models import load_model, load_tokenizer, tiny_llama, n_params

def test_missing_hub_name_offline_is_clear():
    if os.environ.get("HF_HUB_OFFLINE") != "1": pytest.skip("only meaningful offline")
    with pytest.raises(OSError, match="HF_HUB_OFFLINE"): load_model("some-org/some-model-that-is-not-cached")
    with pytest.raises(OSError, match="HF_HUB_OFFLINE"): load_tokenizer("some-org/some-model-that-is-not-cached")

def test_tiny_model_for_cpu_task_roundtrip(tmp_path):
    from qrpo_nb.data import get_task, encode_example, pad_batch
    task = get_task("cpu_code", n_sft=4, n_train=0, n_eval=0)
    tok, cfg = task.tokenizer(), task.model_config()
    m = tiny_llama(**cfg)
    assert m.config.eos_token_id == tok.eos_token_id and m.config.pad_token_id == tok.pad_token_id
    assert m.config.vocab_size == len(tok)
    m.save_pretrained(tmp_path / "m"); tok.save_pretrained(tmp_path / "m")
    m2, tok2 = load_model(tmp_path / "m"), load_tokenizer(tmp_path / "m")
    assert tok2.apply_chat_template([{"role": "user", "content": "a"}], tokenize=False) == tok.apply_chat_template([{"role": "user", "content": "a"}], tokenize=False)
    b = pad_batch([encode_example(tok, r["prompt"], r["completion"]) for r in task.sft_data()], tok.pad_token_id)
    with torch.no_grad():
        a1 = m(input_ids=b["input_ids"], attention_mask=b["attention_mask"]).logits
        a2 = m2(input_ids=b["input_ids"], attention_mask=b["attention_mask"]).logits
    torch.testing.assert_close(a1, a2)

def sft_reference_policy(task, epochs=3, lr=3e-3, batch_size=32, seed=0):
    "Plain-torch SFT of the task's tiny Llama on its warm-up data (completion tokens + EOS)."
    from qrpo_nb.data import encode_example, pad_batch
    tok = task.tokenizer(); model = tiny_llama(**task.model_config(), seed=seed)
    enc = [encode_example(tok, r["prompt"], r["completion"]) for r in task.sft_data()]
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.0)
    steps = math.ceil(len(enc) / batch_size) * epochs
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1.0, (s + 1) / (0.1 * steps)) * 0.5 * (1 + math.cos(math.pi * min(s, steps) / steps)))
    rng, step, ntok, t0 = random.Random(seed), 0, 0, time.time()
    model.train()
    while step < steps:
        order = list(range(len(enc))); rng.shuffle(order)
        for i in range(0, len(order), batch_size):
            if step >= steps: break
            b = pad_batch([enc[j] for j in order[i:i + batch_size]], tok.pad_token_id)
            logits = model(input_ids=b["input_ids"], attention_mask=b["attention_mask"]).logits[:, :-1]
            m = b["completion_mask"][:, 1:].float()
            lp = torch.log_softmax(logits.float(), -1).gather(-1, b["input_ids"][:, 1:, None])[..., 0]
            loss = -(lp * m).sum() / m.sum()
            opt.zero_grad(); loss.backward(); opt.step(); sched.step()
            ntok += int(b["attention_mask"].sum()); step += 1
    return model.eval(), tok, ntok / (time.time() - t0)

def sample_rewards(task, model, tok, n=8, seed=0):
    "Rewards of n temperature-1 samples per evaluation prompt: array (prompts, n)."
    from qrpo_nb.data import prompt_ids
    rows = list(task.eval_prompts()); pids = [prompt_ids(tok, r["prompt"]) for r in rows]; L = max(map(len, pids))
    ids = torch.full((len(rows), L), tok.pad_token_id); att = torch.zeros(len(rows), L, dtype=torch.long)
    for i, p in enumerate(pids): ids[i, L - len(p):] = torch.tensor(p); att[i, L - len(p):] = 1
    torch.manual_seed(seed)
    with torch.no_grad():
        out = model.generate(input_ids=ids, attention_mask=att, do_sample=True, temperature=1.0, top_p=1.0, top_k=0,
                             max_new_tokens=task.max_new_tokens, num_return_sequences=n, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)
    texts = tok.batch_decode(out[:, L:], skip_special_tokens=True)
    return np.array(task.reward([rows[i // n] for i in range(len(texts))], texts)).reshape(len(rows), n), rows

def _reference_rewards(task, epochs=3, n=8):
    "A short SFT of the task's π_ref and its rewards on n samples a prompt, on one thread (tiny matmuls: one beats two on shared cores)."
    threads = torch.get_num_threads(); torch.set_num_threads(1)
    try:
        model, tok, tps = sft_reference_policy(task, epochs=epochs)
        R, _ = sample_rewards(task, model, tok, n=n)
    finally: torch.set_num_threads(threads)
    return tps, R

@pytest.mark.slow
def test_cpu_code_reference_policy_spreads():
    "After a short SFT, π_ref's pass rates spread: ties at 0 and 1, partial credit, most prompts with mixed rewards."
    from qrpo_nb.data import get_task
    task = get_task("cpu_code", n_train=256, n_eval=64)   # 5,000 warm-up examples by default
    tps, R = _reference_rewards(task)
    print(f"SFT {tps:.0f} tokens/s; mean pass rate {R.mean():.3f}, zeros {(R == 0).mean():.2f}, ones {(R == 1).mean():.2f}, "
          f"partial {((R > 0) & (R < 1)).mean():.2f}, prompts with mixed rewards {(R.std(1) > 0).mean():.2f}")
    assert 0.08 < R.mean() < 0.8                                   # measured: 0.19
    assert (R == 1).mean() > 0.02 and (R == 0).mean() > 0.1 and ((R > 0) & (R < 1)).mean() > 0.1   # 0.08, 0.48, 0.44
    assert (R.std(1) > 0).mean() > 0.5                             # 52 of 64 prompts

@pytest.mark.slow
def test_smollm2_full_model():
    "The dequantised SmolLM2-135M-Instruct has its published size and answers a factual question."
    pytest.importorskip("gguf")
    from qrpo_nb.models import smollm2
    try: sm, tok = smollm2()
    except ImportError as e: pytest.skip(str(e))
    assert n_params(sm) == 134_515_008 and "dequantised" in sm.config.qrpo_nb_source
    ids = tok.apply_chat_template([{"role": "user", "content": "What is the capital of France?"}], add_generation_prompt=True,
                                  return_tensors="pt", return_dict=True)
    out = sm.generate(**ids, max_new_tokens=12, do_sample=False)
    assert "Paris" in tok.decode(out[0, ids["input_ids"].shape[1]:], skip_special_tokens=True)

@pytest.mark.slow
def test_cpu_chat_reference_policy_spreads():
    "After a short SFT, π_ref's chat rewards are continuous and vary within every prompt."
    from qrpo_nb.data import get_task
    task = get_task("cpu_chat", n_sft=2000, n_train=0, n_eval=64)
    tps, R = _reference_rewards(task)
    print(f"SFT {tps:.0f} tokens/s; mean {R.mean():.3f}, distinct {len(np.unique(R))}, quantiles {np.quantile(R, [.1, .5, .9]).round(3)}, "
          f"mean per-prompt std {R.std(1).mean():.3f}")
    assert len(np.unique(R)) > 100 and (R.std(1) > 0).mean() > 0.9    # measured: 205 values, 64 of 64 prompts
    assert R.std(1).mean() > 0.05 and np.quantile(R, 0.9) - np.quantile(R, 0.1) > 0.2   # 0.16; 0.44 - 0.02

@pytest.mark.parametrize("name,template,arch", [("tiny", "tulu", "LlamaForCausalLM"), ("tiny-mistral", "mistral", "MistralForCausalLM")])
def test_both_policies_train_one_step(tmp_path, name, template, arch):
    "Each config-built policy (sft.model: tiny / tiny-mistral) with its chat template: one SFT step through the trainer lowers the loss of its batch, and its checkpoint loads back by path."
    from qrpo_nb.data import get_task, encode_example, pad_batch
    from qrpo_nb.models import TINY_MODELS
    from qrpo_nb.trainer import TrainConfig, train
    torch.set_num_threads(1)
    task = get_task("cpu-chat", n_sft=8, n_train=0, n_eval=0, chat_template=template)
    tok, data = task.tokenizer(), task.sft_data()
    model = TINY_MODELS[name](**{**task.model_config(), "hidden_size": 64, "intermediate_size": 128, "num_attention_heads": 4}, seed=0)
    assert type(model).__name__ == arch and model.config.vocab_size == len(tok)
    b = pad_batch([encode_example(tok, r["prompt"], r["completion"]) for r in data], tok.pad_token_id)
    def loss(m):   # mean next-token loss over all tokens of the batch (the SFT loss of the paper: all tokens)
        with torch.no_grad():
            lg = m(input_ids=b["input_ids"], attention_mask=b["attention_mask"]).logits[:, :-1]
        t, w = b["input_ids"][:, 1:], b["attention_mask"][:, 1:].float()
        return (torch.nn.functional.cross_entropy(lg.transpose(1, 2), t, reduction="none") * w).sum().item() / w.sum().item()
    before = loss(model)
    cfg = TrainConfig(loss="sft", lr=1e-2, batch_size=8, micro_batch_size=8, epochs=1, warmup_ratio=0.0, lr_schedule="constant",
                      n_checkpoints=1, output_dir=str(tmp_path / "run"), progress=False, save_state=False)
    res = train(cfg, model, tok, data)
    assert res.steps == 1
    back = load_model(res.checkpoints[-1])
    assert type(back).__name__ == arch
    after = loss(back)
    assert math.isfinite(after) and after < before - 0.05, (before, after)

"""The pointwise-reward methods in the trainer (issue 15): RPO in the paper's and the code's form, DRO's value head
(trained, saved, resumed), KTO's reference point from TRL's mismatched pairs, on pairs and on unpaired (x, y, r) data.
Every expected number is computed here from the model's full log-softmax and the data, not by the trainer."""
import json, math
from pathlib import Path
import numpy as np
import pytest, torch

from qrpo_nb.trainer import TrainConfig, train, read_metrics
from qrpo_nb.fixtures import toy_tokenizer, toy_pairs
from qrpo_nb.data import encode_example
from qrpo_nb.models import tiny_llama

torch.set_num_threads(1)
TOK = toy_tokenizer()
N = 12


def model(seed=0):
    return tiny_llama(len(TOK), hidden_size=32, num_hidden_layers=2, pad_token_id=TOK.pad_token_id,
                      bos_token_id=TOK.bos_token_id, eos_token_id=TOK.eos_token_id, seed=seed)


def shared_prompts(ds, k=3):
    "Rows share prompts (k rows each), so that I_x has several completions."
    ids = [f"p{i // k}" for i in range(len(ds))]
    first = {ids[i]: ds[i]["prompt"] for i in range(len(ds))}
    return ds.remove_columns(["prompt_id", "prompt"]).add_column("prompt_id", ids).add_column("prompt", [first[i] for i in ids])


@torch.no_grad()
def seq_logp(m, prompt, completion):
    "Σ log π(y|x) over completion tokens (EOS included) and their count, from the full log-softmax."
    e = encode_example(TOK, prompt, completion)
    ids, mask = torch.tensor([e["input_ids"]]), torch.tensor(e["completion_mask"])
    lp = m(input_ids=ids).logits.log_softmax(-1)[0, :-1].gather(-1, ids[0, 1:, None])[:, 0]
    return float((lp * mask[1:]).sum()), int(mask[1:].sum())


def cfg(tmp_path, name, loss, **kw):
    return TrainConfig(**{**dict(loss=loss, beta=1.0, lr=1e-3, batch_size=N, n_checkpoints=1, warmup_ratio=0.0,
                                 progress=False, output_dir=str(tmp_path / name)), **kw})


@pytest.mark.parametrize("logps", ["sequence", "mean"])
@pytest.mark.parametrize("pairwise", [True, False])
def test_rpo_first_loss_is_the_papers(tmp_path, logps, pairwise):
    "At π_θ = π_ref (ℓ = 0) the loss is ½((r' − V̂)/τ)², V̂ = τ log Σ_{I_x} π_ref(y_j|x) e^{r'_j/τ}, r' z-scored."
    ds = shared_prompts(toy_pairs(N, seed=3, pairwise=pairwise))
    tau = 2.0
    train(cfg(tmp_path, "rpo", "rpo", beta=tau, max_steps=1, loss_options={"value_set": "prompt", "logps": logps}),
          model(), TOK, ds)
    got = read_metrics(tmp_path / "rpo").loss[0]
    m, sides = model(), (["chosen", "rejected"] if pairwise else ["chosen"])
    rows = [(r["prompt_id"], r[f"{s}_reward"], *seq_logp(m, r["prompt"], r[s])) for r in ds for s in sides]
    rw = np.array([x[1] for x in rows]); mu, sd = rw.mean(), rw.std()
    lp = {x: (x[2] if logps == "sequence" else x[2] / x[3]) for x in rows}
    V = {p: tau * np.logaddexp.reduce([lp[x] + (x[1] - mu) / sd / tau for x in rows if x[0] == p]) for p, *_ in rows}
    per = [0.5 * (((x[1] - mu) / sd - V[x[0]]) / tau) ** 2 for x in rows]
    assert got == pytest.approx(np.mean(per), rel=2e-4)


def test_rpo_needs_pool_logprobs_named(tmp_path):
    ds = toy_pairs(N)
    with pytest.raises(ValueError, match="needs the column `ref_logps`"):
        train(cfg(tmp_path, "a", "rpo"), model(), TOK, ds)
    with pytest.raises(ValueError, match="needs the column `ref_avg_logps`"):
        train(cfg(tmp_path, "b", "rpo", loss_options={"logps": "mean"}), model(), TOK, ds)
    bad = ds.add_column("ref_logps", [[-1.0] * 7 for _ in range(N)])
    with pytest.raises(ValueError, match="column `ref_logps`: dataset row 0 has 7 values but `ref_rewards` has 8"):
        train(cfg(tmp_path, "c", "rpo"), model(), TOK, bad)
    pos = ds.add_column("ref_logps", [[-1.0] * 7 + [0.5] for _ in range(N)])
    with pytest.raises(ValueError, match="not a log-probability"):
        train(cfg(tmp_path, "d", "rpo"), model(), TOK, pos)


def test_rpo_pool_logprobs_from_the_data(tmp_path):
    "value_set='pool': V̂ from the data's `ref_logps` (e.g. the pipeline's reference pass over the pool)."
    ds = toy_pairs(N, n_ref=4)
    g = np.random.default_rng(0); pool = (-g.uniform(5, 50, size=(N, 4))).tolist()
    ds = ds.add_column("ref_logps", pool)
    train(cfg(tmp_path, "rpo", "rpo", max_steps=1, loss_options={"standardize": False}), model(), TOK, ds)
    got = read_metrics(tmp_path / "rpo").loss[0]
    per = []
    for r, lp in zip(ds, pool):
        V = np.logaddexp.reduce(np.array(lp) + np.array(r["ref_rewards"]))
        per.append((0.5 * (r["chosen_reward"] - V) ** 2 + 0.5 * (r["rejected_reward"] - V) ** 2) / 2)
    assert got == pytest.approx(np.mean(per), rel=1e-4)


def pool_pairs(n_prompts=4, k=4, seed=0):
    "Pairs from the real pairs builder (`rewards.build_pairs`) over reward-annotated pools, the pools' texts kept."
    import datasets
    from qrpo_nb.rewards import build_pairs
    g = np.random.default_rng(seed)
    word = lambda: "".join(g.choice(list("abcdefgh"), size=int(g.integers(1, 7))))
    pools = datasets.Dataset.from_list([{"prompt_id": f"q{i}", "prompt": [{"role": "user", "content": word() + word()}],
                                         "completions": [word() for _ in range(k)], "rewards": g.normal(size=k).tolist()}
                                        for i in range(n_prompts)])
    return build_pairs("off_policy_random", pools, k=k, pairs_per_prompt=2, ref_completions=True)


@pytest.mark.parametrize("logps", ["sequence", "mean"])
def test_rpo_pool_logprobs_by_the_reference_pass(tmp_path, logps):
    "value_set='pool' on the pairs builder's data: the reference pass scores every pool completion once; step 1's loss by hand."
    ds = pool_pairs()
    assert "ref_logps" not in ds.column_names
    tau, m = 1.0, model()
    train(cfg(tmp_path, "rpo", "rpo", beta=tau, batch_size=len(ds), max_steps=1, n_ref=4, loss_options={"logps": logps}),
          model(), TOK, ds)
    got = read_metrics(tmp_path / "rpo").loss[0]
    rw = np.array(list(ds["chosen_reward"]) + list(ds["rejected_reward"])); mu, sd = rw.mean(), rw.std()
    per = []
    for r in ds:
        lp = [(s if logps == "sequence" else s / c) for s, c in (seq_logp(m, r["prompt"], y) for y in r["ref_completions"])]
        V = tau * np.logaddexp.reduce(np.array(lp) + (np.array(r["ref_rewards"]) - mu) / sd / tau)
        per.append(np.mean([0.5 * (((r[f"{s}_reward"] - mu) / sd - V) / tau) ** 2 for s in ("chosen", "rejected")]))
    assert got == pytest.approx(np.mean(per), rel=2e-4)
    import datasets
    cached = datasets.load_from_disk(str(tmp_path / "rpo" / "data" / "ds"))   # kept with the tokenised data: once per run
    sums = [seq_logp(m, ds[0]["prompt"], y) for y in ds[0]["ref_completions"]]
    assert cached[0]["ref_logps"] == pytest.approx([s for s, _ in sums], abs=1e-4)
    assert cached[0]["ref_avg_logps"] == pytest.approx([s / c for s, c in sums], abs=1e-5)


def test_rpo_pool_resume_is_exact(tmp_path):
    "A run cut after step 2 and resumed (its pool log-probs from the cache) logs the losses of the uncut run."
    ds = pool_pairs(n_prompts=8)
    kw = dict(batch_size=4, micro_batch_size=2, n_checkpoints=1, state_every=1, n_ref=4, epochs=2)
    train(cfg(tmp_path, "full", "rpo", **kw), model(), TOK, ds)
    train(cfg(tmp_path, "cut", "rpo", max_steps=2, **kw), model(), TOK, ds)
    train(cfg(tmp_path, "cut", "rpo", **kw), model(), TOK, ds)
    assert list(read_metrics(tmp_path / "cut").loss) == list(read_metrics(tmp_path / "full").loss)


def test_rpo_pool_texts_checked(tmp_path):
    ds = pool_pairs()
    short = ds.map(lambda r: {"ref_completions": r["ref_completions"][:3]})
    with pytest.raises(ValueError, match="column `ref_completions`: dataset row 0 has 3 completions but `ref_rewards` has 4"):
        train(cfg(tmp_path, "a", "rpo", batch_size=4), model(), TOK, short)


def test_dro_value_head_first_step_and_checkpoints(tmp_path):
    "Adam's first step moves each prompt's V_φ by value_lr · sign(Σ residual): here sign(Σ of its z-scored rewards)."
    ds = shared_prompts(toy_pairs(N, seed=4, pairwise=False))
    res = train(cfg(tmp_path, "dro", "dro", epochs=2, n_checkpoints=2, loss_options={"value_lr": 0.05}), model(), TOK, ds)
    v0 = json.loads((tmp_path / "dro" / "checkpoint-0" / "value_head.json").read_text())
    v1 = json.loads((tmp_path / "dro" / "checkpoint-1" / "value_head.json").read_text())
    assert set(v0) == {f"p{i}" for i in range(N // 3)} and all(v == 0 for v in v0.values())
    r = np.array(ds["chosen_reward"]); z = (r - r.mean()) / r.std()
    for p in v1:
        s = z[[i for i, q in enumerate(ds["prompt_id"]) if q == p]].sum()
        assert v1[p] == pytest.approx(0.05 * np.sign(s), rel=1e-4), p
    h = read_metrics(tmp_path / "dro")
    assert h["dro/value"][0] == 0 and h.loss[0] == pytest.approx(0.5 * np.mean(z ** 2), rel=1e-5)
    assert len(res.checkpoints) == 3


def test_dro_resume_is_exact(tmp_path):
    "Stopped after 2 steps and resumed: the weights and the value head of an uninterrupted run."
    ds = shared_prompts(toy_pairs(24, seed=5), k=4)
    kw = dict(batch_size=4, micro_batch_size=2, n_checkpoints=1, state_every=1, loss_options={"value_lr": 0.05})
    train(cfg(tmp_path, "full", "dro", **kw), model(), TOK, ds)
    train(cfg(tmp_path, "cut", "dro", max_steps=2, **kw), model(), TOK, ds)
    train(cfg(tmp_path, "cut", "dro", **kw), model(), TOK, ds)
    a, b = (json.loads((tmp_path / d / "checkpoint-6" / "value_head.json").read_text()) for d in ("full", "cut"))
    assert a == b and any(v != 0 for v in a.values())
    from safetensors.torch import load_file
    wa, wb = (load_file(str(tmp_path / d / "checkpoint-6" / "model.safetensors")) for d in ("full", "cut"))
    assert all(torch.equal(wa[k], wb[k]) for k in wa)
    assert list(read_metrics(tmp_path / "cut").loss) == list(read_metrics(tmp_path / "full").loss)


def test_kto_reference_point_is_trls(tmp_path):
    "z0 at step 2 = max(0, mean ℓ_θ(x_i, y_{i−1})) under the weights after step 1 (TRL's KL pairs), recomputed here."
    ds = toy_pairs(N, seed=6)
    train(cfg(tmp_path, "kto", "kto", epochs=2, n_checkpoints=2, lr=3e-3), model(), TOK, ds)
    h = read_metrics(tmp_path / "kto")
    assert h.kl[0] == pytest.approx(0.0, abs=1e-6) and h.loss[0] == pytest.approx(0.5, abs=1e-6)
    from transformers import AutoModelForCausalLM
    m1, m0 = AutoModelForCausalLM.from_pretrained(tmp_path / "kto" / "checkpoint-1"), model()
    kl = [seq_logp(m1, ds[i]["prompt"], ds[(i - 1) % N]["chosen"])[0] - seq_logp(m0, ds[i]["prompt"], ds[(i - 1) % N]["chosen"])[0]
          for i in range(N)]
    assert h.kl[1] == pytest.approx(max(0.0, float(np.mean(kl))), abs=2e-4)
    # pairs: chosen desirable, rejected undesirable (TRL's unpairing), z0 = 0 -> the loss is 1 − σ(0) = ½ at step 1
    assert h["kto/desirable_chosen"][0] == 1 and h["kto/desirable_rejected"][0] == 0


@pytest.mark.parametrize("loss,opts,lr", [("rpo", {"value_set": "prompt"}, 1e-2), ("dro", {}, 1e-3), ("kto", {"threshold": 0.0}, 1e-2)])
def test_unpaired_triplets(tmp_path, loss, opts, lr):
    "Unpaired (x, y, r) data (`completion`, `reward`) trains every pointwise method; the loss falls on repeated data."
    ds = toy_pairs(8, seed=7, pairwise=False).rename_columns({"chosen": "completion", "chosen_reward": "reward"})
    ds = ds.remove_columns(["ref_rewards", "chosen_ref_index"])
    train(cfg(tmp_path, loss, loss, batch_size=8, epochs=8, lr=lr, n_checkpoints=0, loss_options=opts), model(), TOK, ds)
    h = read_metrics(tmp_path / loss)
    assert len(h) == 8 and np.isfinite(h.loss).all() and h.loss.iloc[-1] < h.loss.iloc[0]
    assert "logratio/rejected" not in h.columns


@pytest.mark.slow  # 2 processes (gloo) under accelerate launch; the DeepSpeed op is JIT-built on first use
@pytest.mark.parametrize("accel", ["ddp.yaml", "ds-zero1.yaml"])
@pytest.mark.parametrize("loss,opts", [("dro", {"value_lr": 0.05}), ("dro", {"value_head": "model", "value_lr": 1e-2}), ("kto", {}),
                                       ("rpo", {"value_set": "pool"})],
                         ids=["dro-table", "dro-model", "kto", "rpo-pool"])
def test_two_processes_match_one(tmp_path, accel, loss, opts):
    "DDP and ZeRO-1 reach the weights (and DRO's value head) of one process with the same global batch."
    import os, subprocess, sys
    from safetensors.torch import load_file
    from trainer_runs import ENV, ROOT, make_run
    pairs, base = dict(n=32, seed=1, pool_texts=loss == "rpo"), dict(loss=loss, beta=0.5, lr=1e-3, batch_size=8, micro_batch_size=2, epochs=1,
                                           n_checkpoints=1, adam_eps=1e-6, seed=5, loss_options=opts)
    def launch(run, cfg=None, n=1):
        pre = ([sys.executable, "-m", "accelerate.commands.launch", "--config_file", str(ROOT / "configs/accelerate" / cfg),
                "--num_processes", str(n), "--main_process_port", str(29600 + os.getpid() % 1000)] if cfg else [sys.executable])
        p = subprocess.run(pre + ["-m", "qrpo_nb.trainer", str(run)], env=ENV, cwd=ROOT, capture_output=True, text=True, timeout=1200)
        assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-6000:]
    launch(make_run(tmp_path, "one", pairs, base))
    launch(make_run(tmp_path, "two", pairs, {**base, "micro_batch_size": 2 if accel == "ds-zero1.yaml" else 1}), accel, 2)
    a, b = (load_file(str(tmp_path / d / "checkpoint-4" / "model.safetensors")) for d in ("one", "two"))
    w0 = load_file(str(tmp_path / "one" / "checkpoint-0" / "model.safetensors"))
    moved = max((a[k] - w0[k]).abs().max().item() for k in a)
    assert moved > 1e-4 and max((a[k] - b[k]).abs().max().item() for k in a) <= 1e-3 * moved
    if loss == "dro" and opts.get("value_head", "table") == "table":
        va, vb = (json.loads((tmp_path / d / "checkpoint-4" / "value_head.json").read_text()) for d in ("one", "two"))
        assert va.keys() == vb.keys() and max(abs(va[k] - vb[k]) for k in va) < 1e-5 and max(map(abs, va.values())) > 0.01
    la, lb = (read_metrics(tmp_path / d) for d in ("one", "two"))
    assert np.allclose(la.loss, lb.loss, atol=1e-5)
    if loss == "kto": assert np.allclose(la.kl, lb.kl, atol=1e-5)


def test_dro_value_network(tmp_path):
    "value_head='model' (DRO's separate value network): V_φ = 0 at step 1 (zero head), it learns, and resume is exact."
    ds = shared_prompts(toy_pairs(24, seed=8), k=4)
    kw = dict(batch_size=4, micro_batch_size=2, n_checkpoints=1, state_every=1, lr=1e-3,
              loss_options={"value_head": "model", "value_lr": 1e-2})
    train(cfg(tmp_path, "full", "dro", **kw), model(), TOK, ds)
    h = read_metrics(tmp_path / "full")
    assert h["dro/value"][0] == 0 and abs(h["dro/value"].iloc[-1]) > 1e-3
    r = np.array(list(ds["chosen_reward"]) + list(ds["rejected_reward"])); mu, sd = r.mean(), r.std()
    from qrpo_nb.trainer import batch_indices
    idx = batch_indices(0, 24, 4, 0)
    z = lambda a: (np.array(a) - mu) / sd
    first = np.mean([(0.5 * z(ds[int(i)]["chosen_reward"]) ** 2 + 0.5 * z(ds[int(i)]["rejected_reward"]) ** 2) / 2 for i in idx])
    assert h.loss[0] == pytest.approx(first, rel=1e-5)
    train(cfg(tmp_path, "cut", "dro", max_steps=3, **kw), model(), TOK, ds)
    train(cfg(tmp_path, "cut", "dro", **kw), model(), TOK, ds)
    assert list(read_metrics(tmp_path / "cut").loss) == list(h.loss)
    with pytest.raises(ValueError, match="value_head must be one of"):
        train(cfg(tmp_path, "bad", "dro", loss_options={"value_head": "mlp"}), model(), TOK, ds)

"""Issue 16 part 2: `qrpo_nb.trl_compat.QRPOTrainer` (TRL's DPOTrainer with the registry's loss) computes the loss
`qrpo_nb.losses.qrpo_loss` gives on log-ratios computed here from the full log-softmax of policy and reference,
with quantile rewards counted by hand (paper eq. 12); it trains with TRL's argument names and logs TRL's metrics."""
import os
os.environ.setdefault("OMP_NUM_THREADS", "1")
import math
import datasets, numpy as np, pytest, torch
from qrpo_nb.fixtures import toy_tokenizer, toy_pairs
from qrpo_nb.models import tiny_llama
from qrpo_nb.losses import qrpo_loss
from qrpo_nb.trl_compat import QRPOConfig, QRPOTrainer

torch.set_num_threads(1)
TOK = toy_tokenizer()


def tiny(seed):
    return tiny_llama(len(TOK), hidden_size=32, num_hidden_layers=1, num_attention_heads=2, pad_token_id=TOK.pad_token_id,
                      bos_token_id=TOK.bos_token_id, eos_token_id=TOK.eos_token_id, seed=seed)


def args(tmp_path, **kw):
    d = dict(output_dir=str(tmp_path / "trl"), beta=0.5, n_ref=4, per_device_train_batch_size=4, report_to="none", bf16=False,
             use_cpu=True, save_strategy="no", logging_steps=1, max_steps=4, learning_rate=1e-3, warmup_steps=0,
             lr_scheduler_type="constant", disable_tqdm=True)
    return QRPOConfig(**{**d, **kw})


def pairs(n=16, plain=False):
    ds = toy_pairs(n, seed=3, max_len=24, n_ref=6)
    if plain:  # TRL's plain format: prompt text, completion text
        ds = datasets.Dataset.from_list([{**r, "prompt": r["prompt"][0]["content"]} for r in ds])
    return ds


def seq_logps(m, ids, att, cmask):
    "Σ over completion tokens of log softmax(logits)[next token], from the full logits."
    with torch.no_grad(): lp = torch.log_softmax(m(input_ids=ids, attention_mask=att).logits.double(), -1)
    return (lp[:, :-1].gather(-1, ids[:, 1:, None])[..., 0] * cmask[:, 1:]).sum(1).float()


@pytest.mark.parametrize("transform,plain", [("identity", False), ("log", False), ("identity", True)])
def test_loss_equals_qrpo_loss_on_independent_logratios(tmp_path, transform, plain):
    beta, n = 0.5, 4
    tr = QRPOTrainer(tiny(0), ref_model=tiny(1), args=args(tmp_path, transform=transform, beta=beta, n_ref=n),
                     train_dataset=pairs(plain=plain), processing_class=TOK)
    ds = tr.train_dataset
    inp = tr.data_collator([ds[i] for i in range(4)])
    lr = (seq_logps(tiny(0), inp["input_ids"], inp["attention_mask"], inp["completion_mask"])
          - seq_logps(tiny(1), inp["input_ids"], inp["attention_mask"], inp["completion_mask"]))
    w, l = lr.chunk(2)
    assert w.abs().min() > 1e-3 and l.abs().min() > 1e-3  # policy and reference differ: not a zero-log-ratio check
    refs = np.array([ds[i]["ref_rewards"][:n] for i in range(4)])
    def rq(col): return torch.tensor([(refs[i] <= ds[i][col]).mean() for i in range(4)], dtype=torch.float32)
    expected = ((qrpo_loss(w, rq("chosen_reward"), beta, transform) + qrpo_loss(l, rq("rejected_reward"), beta, transform)) / 2).mean()
    tr.model.eval()
    with torch.no_grad(): got = tr.compute_loss(tr.model, {k: v.clone() for k, v in inp.items()})
    assert abs(float(got) - float(expected)) < 1e-5 * max(1.0, abs(float(expected))), (float(got), float(expected))
    chosen_only = qrpo_loss(w, rq("chosen_reward"), beta, transform).mean()
    assert abs(float(got) - float(chosen_only)) > 1e-4  # the rejected side counts


def full_loss(tr):
    "The trainer's loss on all its training pairs at once (eval mode, no gradient)."
    inp = tr.data_collator([tr.train_dataset[i] for i in range(len(tr.train_dataset))])
    tr.model.eval()
    with torch.no_grad(): return float(tr.compute_loss(tr.model, {k: v.to(tr.model.device) for k, v in inp.items()}))


def test_trains_with_trl_names_and_logs_trl_metrics(tmp_path):
    tr = QRPOTrainer(tiny(0), ref_model=tiny(1), args=args(tmp_path, max_steps=8), train_dataset=pairs(), processing_class=TOK)
    before = full_loss(tr)
    tr.model.train(); tr.train()
    after = full_loss(tr)
    logs = [h for h in tr.state.log_history if "loss" in h and "train_runtime" not in h]
    assert len(logs) == 8 and all(math.isfinite(h["loss"]) for h in logs)
    assert after < 0.8 * before, (before, after)  # 2 epochs of 4 batches: the loss on the training pairs falls
    assert {"rewards/chosen", "rewards/rejected", "rewards/margins", "rewards/accuracies", "logps/chosen",
            "logps/rejected", "qrpo/calibration"} <= set(logs[0])


def test_trl_own_loss_types_still_run(tmp_path):
    tr = QRPOTrainer(tiny(0), ref_model=tiny(1), args=args(tmp_path, loss_type="sigmoid", max_steps=1),
                     train_dataset=pairs(8), processing_class=TOK)
    assert tr.qrpo_spec is None
    tr.train()
    assert math.isfinite(tr.state.log_history[0]["loss"])


def test_bad_data_fails_before_tokenising(tmp_path):
    ds = pairs()
    nan = datasets.Dataset.from_list([{**r, "rejected_reward": float("nan")} if i == 11 else r for i, r in enumerate(ds)])
    with pytest.raises(ValueError, match="train_dataset: column `rejected_reward`: dataset row 11"):
        QRPOTrainer(tiny(0), ref_model=tiny(1), args=args(tmp_path), train_dataset=nan, processing_class=TOK)
    with pytest.raises(ValueError, match="n_ref=8 but dataset row 0 has only 6"):
        QRPOTrainer(tiny(0), ref_model=tiny(1), args=args(tmp_path, n_ref=8), train_dataset=ds, processing_class=TOK)
    with pytest.raises(ValueError, match="no `rejected_reward` column"):
        QRPOTrainer(tiny(0), ref_model=tiny(1), args=args(tmp_path), train_dataset=ds.remove_columns("rejected_reward"),
                    processing_class=TOK)


def test_precomputed_reference_logps(tmp_path):
    "precompute_ref_log_probs=True, no ref_model: π_ref is the initial policy, so at step 0 ℓ = 0 and the loss is the targets' square."
    beta, n = 0.5, 4
    tr = QRPOTrainer(tiny(0), args=args(tmp_path, precompute_ref_log_probs=True, max_steps=2), train_dataset=pairs(8),
                     processing_class=TOK)
    tr.model.train(); tr.train()  # TRL adds `ref_chosen_logps` / `ref_rejected_logps` when training starts
    ds = tr.train_dataset
    assert {"ref_chosen_logps", "chosen_reward", "ref_rewards"} <= set(ds.column_names)
    inp = tr.data_collator([ds[i] for i in range(4)])
    lp = seq_logps(tiny(0), inp["input_ids"], inp["attention_mask"], inp["completion_mask"])
    assert torch.allclose(torch.tensor([ds[i]["ref_chosen_logps"] for i in range(4)]), lp[:4], atol=1e-4)
    assert math.isfinite(tr.state.log_history[0]["loss"])

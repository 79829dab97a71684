"""Precision of training (issue 12, item 2): a model loaded in bfloat16 is trained on float32 master weights.

AdamW's first step moves every weight with a non-zero gradient by about `lr` (m/sqrt(v) = ±1). At lr 5e-7 that is far
below bf16's resolution (8 bits of mantissa: ~1e-4 for weights near 0.02), so updating bf16 parameters in place rounds
almost every update away. With float32 master weights every weight moves."""
import os, json
from pathlib import Path
import pytest, torch, yaml

from qrpo_nb.trainer import TrainConfig, train, resolve_precision
from qrpo_nb.fixtures import toy_tokenizer, toy_pairs
from qrpo_nb.models import tiny_llama

ROOT = Path(__file__).resolve().parents[1]
torch.set_num_threads(1)


def bf16_model(tok):
    return tiny_llama(len(tok), hidden_size=32, num_hidden_layers=2, pad_token_id=tok.pad_token_id, bos_token_id=tok.bos_token_id,
                      eos_token_id=tok.eos_token_id, seed=0).to(torch.bfloat16)


def changed_share(before: dict, after: dict) -> float:
    n = sum(v.numel() for v in before.values())
    return sum(int((after[k].float() != before[k].float()).sum()) for k in before) / n


def run(tmp_path, name, **kw):
    tok = toy_tokenizer()
    model = bf16_model(tok)
    before = {k: v.detach().clone() for k, v in model.named_parameters()}
    cfg = TrainConfig(**{**dict(loss="sft", lr=5e-7, batch_size=8, epochs=1, warmup_ratio=0.0, lr_schedule="constant",
                                max_steps=2, n_checkpoints=1, output_dir=str(tmp_path / name), progress=False), **kw})
    res = train(cfg, model, tok, toy_pairs(16, seed=0))  # 16 rows / batch 8 = 2 optimizer steps
    return tok, model, before, res


def test_bf16_model_trains_on_fp32_master_weights(tmp_path):
    tok, model, before, res = run(tmp_path, "bf16")
    assert res.steps == 2
    assert all(p.dtype == torch.float32 for p in model.parameters())  # the master weights
    share = changed_share(before, dict(model.named_parameters()))
    assert share >= 0.99, share  # old code (bf16 parameters updated in place): 0.95% of the weights changed
    # checkpoints are written in the dtype the model was loaded in (bf16); step 0 is the loaded model, bit for bit
    from safetensors.torch import load_file
    w0 = load_file(str(Path(res.output_dir) / "checkpoint-0" / "model.safetensors"))
    assert all(v.dtype == torch.bfloat16 for v in w0.values())
    for k, v in before.items():
        assert torch.equal(w0[k], v), k
    cfgj = json.loads((Path(res.output_dir) / "checkpoint-0" / "config.json").read_text())
    assert cfgj.get("dtype", cfgj.get("torch_dtype")) == "bfloat16"
    # the run used bf16 autocast (what the user asked for by loading bf16), so the reference pass (same module, same
    # autocast) gives log-ratio 0 at step 1 -- checked for the preference path in test_bf16_reference_pass_matches


def test_bf16_master_weights_saved_in_fp32_on_request(tmp_path):
    tok, model, before, res = run(tmp_path, "bf16-f32", save_dtype="float32")
    from safetensors.torch import load_file
    w = load_file(str(Path(res.output_dir) / "checkpoint-2" / "model.safetensors"))
    assert all(v.dtype == torch.float32 for v in w.values())
    assert changed_share(before, w) >= 0.99
    w0 = load_file(str(Path(res.output_dir) / "checkpoint-0" / "model.safetensors"))
    for k, v in before.items(): assert torch.equal(w0[k], v.float()), k


def test_old_behaviour_is_an_option(tmp_path):
    "`master_weights='model'` updates the parameters in the dtype they were loaded in: almost every update is lost."
    tok, model, before, res = run(tmp_path, "bf16-inplace", master_weights="model")
    assert all(p.dtype == torch.bfloat16 for p in model.parameters())
    assert changed_share(before, dict(model.named_parameters())) < 0.2


def test_bf16_reference_pass_matches_training(tmp_path):
    "Reference log-probs come from the same module under the same autocast: log-ratio 0 and DPO loss log 2 at step 1."
    import math
    tok = toy_tokenizer()
    cfg = TrainConfig(loss="dpo", beta=0.1, lr=5e-7, batch_size=8, warmup_ratio=0.0, max_steps=1, n_checkpoints=0,
                      output_dir=str(tmp_path / "dpo"), progress=False, save_state=False)
    h = train(cfg, bf16_model(tok), tok, toy_pairs(16, seed=0)).history
    assert abs(h[0]["logratio/chosen"]) < 1e-5 and abs(h[0]["logratio/rejected"]) < 1e-5
    assert abs(h[0]["loss"] - math.log(2)) < 1e-5


def test_resolve_precision():
    auto = TrainConfig()
    assert resolve_precision(auto, torch.float32, cuda=True, bf16_ok=True) == "bf16"
    assert resolve_precision(auto, torch.float32, cuda=False, bf16_ok=False) == "no"
    assert resolve_precision(auto, torch.bfloat16, cuda=False, bf16_ok=False) == "bf16"  # loaded in bf16: compute in bf16
    assert resolve_precision(TrainConfig(mixed_precision="no"), torch.bfloat16, cuda=True, bf16_ok=True) == "no"


@pytest.mark.parametrize("name", ["ds-zero1.yaml", "ds-zero1-multinode.yaml", "ddp.yaml", "single.yaml"])
def test_accelerate_configs_agree_with_the_trainer(name):
    """The launcher configs say what the trainer picks on a bf16 GPU (`auto` -> bf16). Under DeepSpeed, accelerate turns
    the trainer's bf16 into `bf16.enabled` in the DeepSpeed config: the engine computes in bf16 and its ZeRO optimizer
    keeps float32 master weights."""
    c = yaml.safe_load((ROOT / "configs" / "accelerate" / name).read_text())
    assert c["mixed_precision"] == resolve_precision(TrainConfig(), torch.float32, cuda=True, bf16_ok=True)
    if c["distributed_type"] == "DEEPSPEED":
        from accelerate.utils import DeepSpeedPlugin
        ds = c["deepspeed_config"]
        plugin = DeepSpeedPlugin(zero_stage=ds["zero_stage"], gradient_accumulation_steps=ds["gradient_accumulation_steps"],
                                 gradient_clipping=ds["gradient_clipping"], offload_optimizer_device=ds["offload_optimizer_device"],
                                 offload_param_device=ds["offload_param_device"])
        plugin.set_mixed_precision(c["mixed_precision"])
        assert plugin.deepspeed_config["bf16"]["enabled"] is True and plugin.deepspeed_config["fp16"]["enabled"] is False


def test_shared_reference_pass_of_a_bf16_model_matches_training(tmp_path):
    """A sweep scores the data once with `compute_reference_logps` on the bf16-loaded reference model (the experiment
    template's one-process path); it must score what `train` computes at step 1 (float32 weights, bf16 autocast)."""
    from qrpo_nb.trainer import compute_reference_logps
    tok = toy_tokenizer()
    ref = compute_reference_logps(bf16_model(tok), toy_pairs(16, seed=0), tok, progress=False)
    cfg = TrainConfig(loss="dpo", beta=0.1, lr=5e-7, batch_size=8, warmup_ratio=0.0, max_steps=1, n_checkpoints=0,
                      output_dir=str(tmp_path / "shared"), progress=False, save_state=False)
    h = train(cfg, bf16_model(tok), tok, ref).history
    # the same computation: 0 exactly; a pure-bf16 pass (no autocast) gave mean log-ratios -8e-4 / 1.4e-3 here
    assert abs(h[0]["logratio/chosen"]) < 1e-5 and abs(h[0]["logratio/rejected"]) < 1e-5


def test_reference_logps_of_other_truncation_are_refused(tmp_path):
    "Reference log-probs of full sequences cannot be reused for truncated ones: a clear error, before any training."
    from qrpo_nb.trainer import compute_reference_logps
    tok = toy_tokenizer()
    model = tiny_llama(len(tok), hidden_size=32, num_hidden_layers=2, pad_token_id=tok.pad_token_id, seed=0)
    pairs = toy_pairs(16, seed=0)
    cfg = TrainConfig(loss="dpo", beta=0.1, lr=1e-3, batch_size=8, max_steps=1, n_checkpoints=0, max_length=30,
                      output_dir=str(tmp_path / "t"), progress=False, save_state=False)
    full = compute_reference_logps(model, pairs, tok, max_length=None, progress=False)
    with pytest.raises(ValueError, match="would be truncated at max_length=30"): train(cfg, model, tok, full)
    same = compute_reference_logps(model, pairs, tok, max_length=30, progress=False)
    h = train(cfg, model, tok, same).history
    assert abs(h[0]["logratio/chosen"]) < 1e-5 and abs(h[0]["logratio/rejected"]) < 1e-5


def test_bf16_run_resumes_exactly(tmp_path):
    "The resume state holds the float32 master weights: stopped after step 2 and restarted, a bf16-loaded run ends bit-identical."
    from safetensors.torch import load_file
    tok = toy_tokenizer()
    base = dict(loss="dpo", beta=0.1, lr=1e-3, batch_size=8, n_checkpoints=1, save_dtype="float32", progress=False)
    full = train(TrainConfig(**base, output_dir=str(tmp_path / "full")), bf16_model(tok), tok, toy_pairs(32, seed=0))
    out = str(tmp_path / "resumed")
    train(TrainConfig(**base, output_dir=out, max_steps=2, state_every=1), bf16_model(tok), tok, toy_pairs(32, seed=0))
    res = train(TrainConfig(**base, output_dir=out), bf16_model(tok), tok, toy_pairs(32, seed=0))
    assert full.steps == res.steps == 4
    a = load_file(str(tmp_path / "full" / "checkpoint-4" / "model.safetensors"))
    b = load_file(str(Path(out) / "checkpoint-4" / "model.safetensors"))
    assert all(v.dtype == torch.float32 for v in a.values())
    for k in a: assert torch.equal(a[k], b[k]), k

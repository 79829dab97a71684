"""The loss registry against closed-form gradients, the batch-key contract, bf16 inputs and the committed Table 1."""
import math
from pathlib import Path

import pytest
import numpy as np
import torch

from qrpo_nb.losses import (LOSSES, BATCH_KEYS, LossSpec, method_labels, dpo_loss, qrpo_loss, rebel_loss, rpo_loss,
                            mc_logz_loss, simpo_loss, table1, loss_table)


def contributing_batch_keys() -> list:
    "The batch keys CONTRIBUTING.md's contract lists, in its order (the paragraph from 'Batch keys' to 'Pointwise')."
    import re
    text = (Path(__file__).resolve().parents[1] / "CONTRIBUTING.md").read_text()
    para = text[text.index("Batch keys (per sample"):text.index("Pointwise (non-pair)")]
    return re.findall(r"`([a-z0-9_]+)`", para)


def test_batch_keys_are_the_contract():
    assert list(BATCH_KEYS) == contributing_batch_keys()
    assert all(isinstance(v, str) and v for v in BATCH_KEYS.values())


def test_loss_spec_takes_keywords_and_checks_its_keys():
    base = dict(name="x", display="X", regime="policy fitting", offline=True, pointwise_rewards=False,
                needs_ref_model=True, needs_pairs=True, reward_signal="preference")
    with pytest.raises(TypeError):
        LossSpec("x", "X", "policy fitting", True, False, True, True, "preference")  # positional: refused
    assert LossSpec(**base).label == "X"                                            # label defaults to display
    with pytest.raises(ValueError, match=r"unknown batch key\(s\) \['chosen_logp'\]"):
        LossSpec(**base, requires=("chosen_logp",))
    with pytest.raises(ValueError, match="not among requires"):
        LossSpec(**base, requires=("chosen_logratio",), optional=("rejected_logratio",))


def test_method_labels_are_the_figures_names():
    # the names the figures and result tables print (reporting.METHOD_NAMES at 2e0d60a, written by hand there); the
    # Monte-Carlo baseline of App. G is drawn as "MC-Z regression" while the loss table keeps its formula name
    labels = method_labels()
    assert {k: labels[k] for k in ("qrpo", "dpo", "rebel", "simpo", "rpo", "mc_logz")} == {
        "qrpo": "QRPO", "dpo": "DPO", "rebel": "REBEL", "simpo": "SimPO", "rpo": "RPO", "mc_logz": "MC-Z regression"}
    assert LOSSES["mc_logz"].display == "eq. 6 + Monte-Carlo Ẑ"


def test_registry_metadata_contract():
    for name, spec in LOSSES.items():
        assert set(spec.requires) <= set(BATCH_KEYS), name
        assert set(spec.optional) <= set(spec.requires), name
        assert spec.regime in ("policy fitting", "policy improvement")
        if spec.fn is None:
            assert spec.regime == "policy improvement" and not spec.offline
            continue
        pair_only = {k for k in spec.requires if k.startswith("rejected")} - set(spec.optional)
        assert bool(pair_only) == spec.needs_pairs, name
        assert ("ref_rewards" in spec.requires) == (name in ("qrpo", "rpo", "mc_logz", "kto")), name
        assert spec.pointwise_rewards == (spec.reward_signal in ("absolute", "binary")), name
    for name in ("rpo", "dro", "kto"):  # the pointwise baselines: offline, single completions, not in the paper's Table 1
        s = LOSSES[name]
        assert s.offline and s.pointwise_rewards and s.needs_ref_model and not s.needs_pairs and not s.in_paper, name
    assert (LOSSES["rpo"].default_beta, LOSSES["dro"].default_beta, LOSSES["kto"].default_beta) == (1.0, 1.0, 0.1)


def _batch(B=64, n=8, seed=0):
    g = torch.Generator().manual_seed(seed)
    r = lambda *s: torch.randn(*s, generator=g)
    return {"chosen_logratio": r(B), "rejected_logratio": r(B), "chosen_avg_logp": -r(B).abs(),
            "rejected_avg_logp": -r(B).abs(), "chosen_reward": r(B), "rejected_reward": r(B), "ref_rewards": r(B, n),
            "ref_logps": -10 * r(B, n).abs(), "chosen_ref_index": torch.full((B,), -1), "rejected_ref_index": torch.full((B,), -1)}


@pytest.mark.parametrize("beta", [1e-3, 0.1, 2.0])
def test_gradients_match_closed_forms(beta):
    """d loss / d ℓ derived by hand for each loss, against autograd."""
    b = _batch()
    w = b["chosen_logratio"].clone().requires_grad_(True)
    l = b["rejected_logratio"].clone().requires_grad_(True)
    z = beta * (w - l)
    dpo_loss(w, l, beta).sum().backward()
    torch.testing.assert_close(w.grad, -beta * torch.sigmoid(-z.detach()))
    torch.testing.assert_close(l.grad, beta * torch.sigmoid(-z.detach()))
    w.grad = l.grad = None
    rebel_loss(w, l, b["chosen_reward"], b["rejected_reward"], beta).sum().backward()
    resid = (b["chosen_reward"] - b["rejected_reward"]) / beta - (w - l).detach()
    torch.testing.assert_close(w.grad, -2 * resid, rtol=1e-4, atol=1e-3)
    w.grad = None
    rq = torch.rand(w.shape[0], generator=torch.Generator().manual_seed(1))
    qrpo_loss(w, rq, beta).sum().backward()
    c = 1 + beta * math.log(beta) + beta * math.log(-math.expm1(-1 / beta))   # β log Z_q(β) by hand
    torch.testing.assert_close(w.grad, -2 * beta * (rq - c - beta * w.detach()), rtol=1e-4, atol=1e-5)
    w.grad = None
    rpo_loss(w, b["chosen_reward"], b["ref_rewards"], b["ref_logps"], beta).sum().backward()
    V = beta * torch.logsumexp(b["ref_logps"].double() + b["ref_rewards"].double() / beta, -1)
    target = ((b["chosen_reward"].double() - V) / beta).float()
    torch.testing.assert_close(w.grad, w.detach() - target, rtol=1e-4, atol=1e-3)


def test_bf16_inputs_give_float32_losses():
    b = _batch()
    b16 = {k: (v.bfloat16() if v.is_floating_point() else v) for k, v in b.items()}
    b32 = {k: (v.bfloat16().float() if v.is_floating_point() else v) for k, v in b.items()}
    for name in ("qrpo", "dpo", "rebel", "simpo", "rpo", "mc_logz"):
        l16, m = LOSSES[name].compute(b16, 0.1)
        l32, _ = LOSSES[name].compute(b32, 0.1)
        assert l16.dtype == torch.float32, name
        torch.testing.assert_close(l16, l32)
        assert all(v.ndim == 0 and v.dtype == torch.float32 for v in m.values()), name


def test_qrpo_tie_break_and_discrete_options():
    b = _batch(B=2000, n=4)
    b["chosen_reward"] = (b["chosen_reward"] > 0).float()               # binary rewards: many ties
    b["ref_rewards"] = (b["ref_rewards"] > 0).float()
    pt = {k: v for k, v in b.items() if not k.startswith("rejected")}
    _, plain = LOSSES["qrpo"].compute(pt, 0.1)
    _, rand = LOSSES["qrpo"].compute(pt, 0.1, tie_break="random", generator=torch.Generator().manual_seed(0))
    # plain: fail -> P̂(fail) ≈ 1/2, pass -> 1, so the mean is ≈ 3/4; random tie-break: uniform, mean ≈ 1/2
    assert abs(float(plain["qrpo/quantile_chosen"]) - 0.75) < 0.03
    assert abs(float(rand["qrpo/quantile_chosen"]) - 0.5) < 0.03
    losses, m = LOSSES["qrpo"].compute(pt, 0.1, discrete_logz=True)
    assert torch.isfinite(losses).all()
    with pytest.raises(ValueError, match="choose one"):
        LOSSES["qrpo"].compute(pt, 0.1, discrete_logz=True, approx_logz=True)


def test_committed_table1_is_current():
    md = Path(__file__).resolve().parents[1] / "paper_figures" / "table1.md"
    text = md.read_text()
    assert table1() in text and loss_table() in text


# --- the authors' MAE option and Φ⁻¹ transforms (issue 12, item 8) ----------------------------------------------

def test_qrpo_mae_values_and_gradients_by_hand():
    "|t − βℓ| with t = R̂_q − β log Z_q: value |resid|, gradient −β·sign(resid) in ℓ."
    beta = 0.2
    c = beta * math.log(beta * math.expm1(1 / beta))            # β log Z_q(β), exact
    rq = torch.tensor([1., 0.25, 0.])
    l = torch.tensor([0., 10., -3.], requires_grad=True)
    resid = [1 - c - 0., 0.25 - c - 2., 0. - c + 0.6]
    loss = qrpo_loss(l, rq, beta, loss_type="mae")
    assert torch.allclose(loss, torch.tensor([abs(x) for x in resid]), atol=1e-6)
    loss.sum().backward()
    assert torch.allclose(l.grad, torch.tensor([-beta * math.copysign(1, x) for x in resid]), atol=1e-7)


def test_qrpo_compute_paper_clamp_per_prompt_n():
    "clamp='paper' clamps each prompt by its own count of present references (n = 3 here, not the 4 columns)."
    beta = 0.5
    batch = {"chosen_logratio": torch.zeros(2), "chosen_reward": torch.tensor([5., -5.]),
             "ref_rewards": torch.tensor([[0., 1., 2., float("nan")], [0., 1., 2., 3.]])}
    losses, _ = LOSSES["qrpo"].compute(batch, beta, transform="normal_icdf", clamp="paper")
    z3, z4 = 0.4307272992954576, 0.6744897501960817             # Φ⁻¹(2/3), Φ⁻¹(3/4)
    expect = torch.tensor([(z3 - 1 / (2 * beta)) ** 2, (-z4 - 1 / (2 * beta)) ** 2])
    assert torch.allclose(losses, expect, atol=1e-5)


def test_qrpo_scaled_normal_icdf_target():
    "f_x = s_x Φ⁻¹, s_x = std(refs, ddof 1) / ref_std_mean, target s_x Φ⁻¹(R̂_q) − s_x²/(2β)."
    beta, mean_std = 0.3, 0.8
    ref = torch.tensor([[0., 1., 2., 3.], [0., 2., 4., 6.]])
    batch = {"chosen_logratio": torch.tensor([0.1, -0.2]), "chosen_reward": torch.tensor([1.5, 10.]), "ref_rewards": ref}
    s = torch.tensor([float(np.std([0, 1, 2, 3], ddof=1)), float(np.std([0, 2, 4, 6], ddof=1))]) / mean_std
    icdf = torch.tensor([0., 0.6744897501960817])              # R̂_q = 2/4, and 4/4 clamped to 3/4
    target = s * icdf - s ** 2 / (2 * beta)
    losses, _ = LOSSES["qrpo"].compute(batch, beta, transform="scaled-normal-icdf", clamp="paper", ref_std_mean=mean_std)
    assert torch.allclose(losses, (target - beta * batch["chosen_logratio"]) ** 2, atol=1e-5)

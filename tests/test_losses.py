"""The loss registry against closed-form gradients, the batch-key contract, bf16 inputs and the committed Table 1."""
import math
from pathlib import Path

import pytest
import torch

from qrpo_nb.losses import LOSSES, dpo_loss, qrpo_loss, rebel_loss, rpo_loss, mc_logz_loss, simpo_loss, table1, loss_table

BATCH_KEYS = {"chosen_logratio", "rejected_logratio", "chosen_avg_logp", "rejected_avg_logp", "chosen_reward",
              "rejected_reward", "ref_rewards", "chosen_ref_index", "rejected_ref_index", "ref_logps"}  # CONTRIBUTING.md


def test_registry_metadata_contract():
    for name, spec in LOSSES.items():
        assert set(spec.requires) <= BATCH_KEYS, name
        assert set(spec.optional) <= set(spec.requires), name
        assert spec.regime in ("policy fitting", "policy improvement")
        if spec.fn is None:
            assert spec.regime == "policy improvement" and not spec.offline
            continue
        pair_only = {k for k in spec.requires if k.startswith("rejected")} - set(spec.optional)
        assert bool(pair_only) == spec.needs_pairs, name
        assert ("ref_rewards" in spec.requires) == (name in ("qrpo", "rpo", "mc_logz")), name
        assert spec.pointwise_rewards == (spec.reward_signal == "absolute"), name


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

"""qrpo_nb.bench (issue 15): RPO's Table III in small (win rate against pi_ref, reward as judge, ties half) checked
against closed forms on simulated rewards, and build_extras on hand-made evaluate folders (a second part gets a suffix,
a part without pointwise rivals gives nothing)."""
import math
from pathlib import Path
import numpy as np
import pandas as pd
import pytest

from qrpo_nb import bench
from qrpo_nb.evaluation import select


def details(rewards: np.ndarray, step: int) -> pd.DataFrame:
    "Per-completion rows (prompt, seed) with the given rewards, (P, S)."
    P, S = rewards.shape
    return pd.DataFrame([dict(prompt_index=p, seed=s, reward=float(rewards[p, s]), length=10.0, lc_reward=float(rewards[p, s]),
                              length_norm=0.0, prompt_id=f"t{p}", checkpoint=step, split="test") for p in range(P) for s in range(S)])


def test_win_rate_matches_the_closed_form():
    "Rewards N(d, 1) against N(0, 1): P(win) = Phi(d / sqrt 2); the bootstrap SE is sigma_hat / sqrt(P)."
    g = np.random.default_rng(0); P, S, d = 4000, 3, 0.5
    sc = bench.win_scores(details(g.normal(d, 1, (P, S)), 8), details(g.normal(0, 1, (P, S)), 0))
    want = 0.5 * (1 + math.erf(d / math.sqrt(2) / math.sqrt(2)))
    se = sc.std(ddof=0) / math.sqrt(P)
    assert abs(sc.mean() - want) < 4 * se
    assert bench.bootstrap_se(sc.to_numpy(), n_boot=4000) == pytest.approx(se, rel=0.06)


def test_ties_count_half_and_identical_models_score_half():
    g = np.random.default_rng(1); r = np.round(g.uniform(0, 1, (50, 2)), 1)   # many ties
    a = details(r, 0)
    assert bench.win_scores(a, a).tolist() == [0.5] * 50
    b = details(np.where(r > 0.5, r, 0.0), 8)
    by_hand = np.mean([[1.0 if x > y else 0.5 if x == y else 0.0 for x, y in zip(rb, ra)]
                       for rb, ra in zip(np.where(r > 0.5, r, 0.0), r)], axis=1)
    assert bench.win_scores(b, a).to_numpy() == pytest.approx(by_hand)


def eval_folder(root: Path, methods: dict) -> Path:
    "An evaluate folder: methods {name: per-prompt reward at step 8}; pi_ref earns 0.2 everywhere (4 prompts, 2 seeds)."
    rows = []
    for m, rw in methods.items():
        rid = bench.run_id(dict(method=m, setting="offline", n_ref=6, beta=0.1, lr=1e-3))
        (root / "details" / rid).mkdir(parents=True, exist_ok=True)
        for step, r in ((0, [0.2] * 4), (8, rw)):
            details(np.repeat(np.array(r, float)[:, None], 2, 1), step).to_parquet(root / "details" / rid / f"details-{step}-test-0_1.parquet")
            for sp in ("validation", "test"):
                rows.append(dict(model="tiny", dataset="cpu-chat", method=m, setting="offline", beta=0.1, lr=1e-3, checkpoint=step, split=sp,
                                 n_ref=6, reward_mean=float(np.mean(r)), reward_std=0.0, lc_reward_mean=float(np.mean(r)), lc_reward_std=0.0,
                                 mean_length_mean=10.0, mean_length_std=0.0, n_seeds=2))
    s = pd.DataFrame(rows); s.to_csv(root / "summary.csv", index=False); select(s).to_csv(root / "selected.csv", index=False)
    return root


def test_build_extras_parts(tmp_path):
    a = eval_folder(tmp_path / "a", {"kto": [0.3, 0.3, 0.1, 0.3], "dpo": [0.1] * 4})
    b = eval_folder(tmp_path / "b", {"dpo": [0.3] * 4})                 # no pointwise rival: nothing
    c = eval_folder(tmp_path / "c", {"dro": [0.3, 0.3, 0.3, 0.3]})
    items = bench.build_extras(tmp_path / "figs", a, b, c, n_boot=100)
    names = [it.item for it in items]
    assert names == ["bench_rivals", "bench_winrate", "bench_length", "bench_rivals-2", "bench_winrate-2", "bench_length-2"]
    wr = pd.read_csv(tmp_path / "figs" / "bench_winrate.csv").set_index("method").win_rate
    assert wr.to_dict() == {"kto": 0.75, "dpo": 0.5}      # dpo's step 8 (0.1) loses on validation: selected at step 0
    assert pd.read_csv(tmp_path / "figs" / "bench_winrate-2.csv").win_rate.tolist() == [1.0]
    assert "not produced" in items[2].note                 # no length_points.parquet in a hand-made folder

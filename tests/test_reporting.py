"""End-to-end reporting on a small synthetic results store with planted answers."""
import json
import math

import numpy as np
import pandas as pd
import pytest
from matplotlib.image import imread

from qrpo_nb.evaluation import NO_JUDGE, ResultsStore, select, summarise
from qrpo_nb.reporting import SPEC_ITEMS, build_report, figure6, published_results, table2, table3


def _planted_store(root):
    """Per-seed rows. Chat: QRPO's winner is (offpolicy-random, beta 3e-3, lr 1e-6, step 20); DPO's is step 0.
    Code: pass rates planted so QRPO's test pass rate is (0.30, 0.32, 0.34) -> 32.0 +- 2.0 %."""
    st = ResultsStore(root)
    rows = []
    def add(model, dataset, method, setting, beta, lr, ckpt, val, test, lc_val=None, lc_test=None, spread=0.01):
        for split, mean, lc in (("validation", val, lc_val), ("test", test, lc_test)):
            for seed, e in zip(range(3), (-spread, 0.0, spread)):
                r = dict(model=model, dataset=dataset, method=method, setting=setting, beta=beta, lr=lr,
                         checkpoint=ckpt, split=split, seed=seed, reward=mean + e)
                if lc is not None: r["lc_reward"] = lc + e
                rows.append(r)
    for ck, v in ((0, 0.10), (10, 0.15), (20, 0.17)):
        add("tiny", "toy-chat", "qrpo", "offpolicy-random", 3e-3, 1e-6, ck, v, v + 0.001, v, v)
    add("tiny", "toy-chat", "qrpo", "offline", 3e-3, 1e-6, 20, 0.171, 0.17, 0.10, 0.10)  # best reward, poor LC
    add("tiny", "toy-chat", "qrpo", "offpolicy-best", 1e-3, 1e-6, 10, 0.12, 0.12, 0.30, 0.30)  # outside the 98% CI
    add("tiny", "toy-chat", "dpo", "offline", 0.1, 1e-6, 0, 0.10, 0.11, 0.10, 0.11)
    add("tiny", "toy-chat", "dpo", "offline", 0.1, 1e-6, 20, 0.05, 0.05, 0.05, 0.05)
    add("tiny", "leetcode", "qrpo", "sft-offpolicy-random", 1e-2, 1e-6, 20, 0.35, 0.32, spread=0.02)
    add("tiny", "leetcode", "dpo", "sft-offpolicy-random", 1e-2, 1e-6, 20, 0.25, 0.20, spread=0.02)
    st.append(rows)
    return st


def test_selection_and_tables_from_store(tmp_path):
    summ = summarise(_planted_store(tmp_path / "store").load())
    sel = select(summ[summ.dataset == "toy-chat"]).set_index("method")
    # 98%: offline 0.171 vs random 0.17: diff .001 <= 2*sqrt(2)*.01 -> both kept; best-setting 0.12 dropped (.051 > .0283)
    # 80% on LC: best LC .17 (random); offline .10 is .07 away > .8*sqrt(2)*.01 -> dropped: random wins
    assert sel.loc["qrpo", ["setting", "checkpoint", "beta"]].tolist() == ["offpolicy-random", 20, 3e-3]
    assert sel.loc["qrpo", "shortlist_98"] == ["offline", "offpolicy-random"]
    assert sel.loc["dpo", "checkpoint"] == 0
    assert math.isclose(sel.loc["qrpo", "test_reward_mean"], 0.171) and math.isclose(sel.loc["qrpo", "test_reward_std"], 0.01)
    t2 = table2(select(summ[summ.dataset == "leetcode"])).set_index("Method")
    assert t2.loc["QRPO", "Avg. pass % (this run)"] == "32.0 ± 2.0" and t2.loc["QRPO", "Avg. pass % (paper)"] == "32.7 ± 1.0"
    assert t2.loc["DPO", "Avg. pass % (paper)"] == "30.2 ± 1.4"
    t3 = table3(sel.reset_index(), paper_match={("tiny", "toy-chat"): ("Mistral-7B-Instruct-v0.2", "UltraFeedback")})
    q = t3.set_index("Method").loc["QRPO"]
    assert q["Reward"] == "0.1710 ± 0.0100" and q["Paper reward"] == "0.1469 ± 0.0007" and q["AlpacaEval 2 LC %"] == "not run: no judge configured"


def test_published_results_cover_tables_2_3_and_figure_1():
    pub = published_results()
    assert set(pub.source) == {"table2", "table3"}
    t3 = pub[pub.source == "table3"]
    assert len(t3) == 2 * 2 * 6 * 4 and t3.groupby(["model", "dataset", "method", "metric"]).size().max() == 1
    assert len(pub[pub.source == "table2"]) == 6


def test_build_report_end_to_end(tmp_path):
    summ = summarise(_planted_store(tmp_path / "store").load())
    rng = np.random.default_rng(0)
    x = rng.normal(0, 1, 300)
    pts = pd.DataFrame(dict(method=np.repeat(["dpo", "qrpo"], 150), length_norm=x, implicit_reward=np.r_[10 * x[:150], -2 * x[150:]] + rng.normal(0, 1, 300)))
    log = tmp_path / "metrics.jsonl"
    log.write_text("\n".join(json.dumps({"step": s, "logratio/chosen": 0.1 * s, "logratio/rejected": -s}) for s in range(4))
                   + '\n{"step": 4, "logr')  # a truncated last line (a killed writer) is skipped
    scaling = pd.DataFrame([dict(n_ref=n, beta=b, setting=s, reward_mean=0.1, reward_std=0.01)
                            for b in (0.01, 0.1) for s in ("offline", "off-policy") for n in (1, 3)])
    out = tmp_path / "paper_figures"; out.mkdir()
    (out / "table1.md").write_text("losses table"); (out / "figure5.png").write_bytes(b"png")
    rep = build_report(out, summ, run="runs/test", scale={"model": "tiny", "steps": 20},
                       paper_match={("tiny", "toy-chat"): ("Llama-3.1-Tulu-3-8B-SFT", "Magpie-Air")},
                       preset_tables={"table7": {"evaluation repeats": 3}}, scaling=scaling,
                       length_points={"tiny / toy-chat": pts}, logs={"β = 0.01": log},
                       leetcode=("prompt text", "import math\n\nclass TreeNode:\n    pass\n"))
    text = rep.read_text()
    for name in SPEC_ITEMS.values():
        assert f"| {name} |" in text
    assert NO_JUDGE in text and "Scale of this run: model = tiny, steps = 20." in text
    assert "[table1.md](table1.md)" in text and "[figure5.png](figure5.png)" in text
    for stem in ("figure1", "figure3", "figure4", "figure6", "figure8", "figure9", "figure10", "figure11"):
        img = imread(out / f"{stem}.png")
        assert img.shape[0] > 50 and img.shape[1] > 100 and img[..., :3].std() > 0.01  # a real, non-blank image
        assert (out / f"{stem}.pdf").read_bytes()[:5] == b"%PDF-"
    for stem in ["table2", "table3", "table12", "table16"] + [f"table{i}" for i in range(5, 12)]:
        assert (out / f"{stem}.md").exists() and (out / f"{stem}.tex").read_text().count(r"\begin{tabular}") == 1
    t12 = (out / "table12.md").read_text()
    assert "| QRPO | offpolicy-random* | 0.1700 / 0.1710 | 0.1700 / 0.1700 | 0.003 | 1e-06 | 20 |" in t12
    qrow = next(l for l in (out / "table3.md").read_text().splitlines() if "| QRPO |" in l)
    assert "| 0.1710 ± 0.0100 |" in qrow and "| 50.6 ± 0.1 |" in qrow  # this run beside the paper's Llama/Magpie-Air row
    # pi_ref's row: the mean of the runs' step-0 rows (test reward 0.101 and 0.11, LC 0.10 and 0.11) beside the paper's Initial
    assert ("| tiny | toy-chat | Initial | 0.1050 ± 0.0100 | 0.1055 ± 0.0100 | not run: no judge configured | "
            "0.1518 ± 0.0011 | 0.1519 ± 0.0010 | 18.1 ± 0.4 |") in (out / "table3.md").read_text()
    # the run's one chat (model, dataset) stands for Table 12; Tables 13-15 say why nothing stands for them
    assert "stands for the paper's Table 12 (Llama-3.1-Tulu-3-8B-SFT / Magpie-Air)" in t12
    for n, (m, d) in {13: ("Mistral-7B-Instruct-v0.2", "Magpie-Air"), 14: ("Llama-3.1-Tulu-3-8B-SFT", "UltraFeedback"),
                      15: ("Mistral-7B-Instruct-v0.2", "UltraFeedback")}.items():
        assert f"| Table {n} | — | — | no counterpart at this scale: the paper's Table {n} is {m} / {d};" in text
        assert not (out / f"table{n}.md").exists()
    assert "not produced" not in text
    # each figure's CSV holds the data it plots: Figure 3's points are the scaling rows given
    f3 = pd.read_csv(out / "figure3.csv").sort_values(["beta", "setting", "n_ref"]).reset_index(drop=True)
    want = scaling.sort_values(["beta", "setting", "n_ref"]).reset_index(drop=True)
    assert f3[["setting", "beta", "n_ref", "reward_mean", "reward_std"]].equals(want[["setting", "beta", "n_ref", "reward_mean", "reward_std"]])
    f4 = pd.read_csv(out / "figure4.csv")
    assert sorted(f4.method.unique()) == ["DPO", "QRPO"] and len(f4) == 300
    for m, g in f4.groupby("method"):   # its rho column is Pearson's of its own points
        assert abs(g.rho.iloc[0] - np.corrcoef(g.length_norm, g.implicit_reward)[0, 1]) < 1e-9
    f6 = figure6({"run": log})
    assert list(f6.axes[1].lines[0].get_ydata()) == [0, -1, -2, -3]


def test_tables_12_15_follow_the_paper_position(tmp_path):
    """A chat run mapped to Mistral / UltraFeedback fills Table 15; Tables 12-14 have no counterpart."""
    summ = summarise(_planted_store(tmp_path / "store").load())
    out = tmp_path / "figs"
    text = build_report(out, summ, code_datasets=("leetcode",),
                        paper_match={("tiny", "toy-chat"): ("Mistral-7B-Instruct-v0.2", "UltraFeedback")}).read_text()
    assert sorted(p.name for p in out.glob("table1[2-6].md")) == ["table15.md", "table16.md"]
    assert "| QRPO | offpolicy-random* |" in (out / "table15.md").read_text()
    assert text.count("no counterpart at this scale") == 3 and "(tiny / toy-chat (Table 15))" in text
    row3 = next(l for l in (out / "table3.md").read_text().splitlines() if "| QRPO |" in l)
    assert "| 0.1469 ± 0.0007 |" in row3 and "not run: no judge configured" in row3   # the paper's Mistral / UF reward


def test_four_chat_cells_fill_tables_12_15_in_the_papers_grid(tmp_path):
    """The cpu preset's four chat cells (policy 1/2 x task 1/2, in the parts' order) are Tables 12, 13, 14, 15, whatever
    their names sort to (alphabetically the first policy's second task would come second and take Table 13)."""
    summ = summarise(_planted_store(tmp_path / "store").load())
    chat = summ[summ.dataset == "toy-chat"]
    cells = [("tiny", "toy-chat"), ("tiny-mistral", "toy-chat"), ("tiny", "toy-feedback"), ("tiny-mistral", "toy-feedback")]
    four = pd.concat([chat.assign(model=m, dataset=d) for m, d in cells] + [summ[summ.dataset == "leetcode"]], ignore_index=True)
    out = tmp_path / "figs"
    text = build_report(out, four).read_text()
    assert "no counterpart" not in text
    for n, (m, d) in zip((12, 13, 14, 15), cells):
        assert f"best checkpoint per setting, {m} / {d} (* = selected)" in (out / f"table{n}.md").read_text()
        assert f"| Table {n} | [table{n}.md](table{n}.md)" in text

"""The paper's own path through the real templates, in small: the data stages on the hand-written fixture files in
each real dataset's schema (tests/data), the paper tasks' SFT targets, and the `paper-mini` preset."""
import json, os
from pathlib import Path

import pytest

from qrpo_nb.cli import load_preset, plan, reproduce

REPO = Path(__file__).resolve().parents[1]
DATA = REPO / "tests" / "data"
os.environ.setdefault("HF_HUB_OFFLINE", "1"); os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1"); os.environ.setdefault("OMP_NUM_THREADS", "1")


def _jsonl(path):
    return [json.loads(l) for l in Path(path).read_text().splitlines() if l.strip()]


def test_leetcode_sft_targets_are_the_papers_fenced_responses(tmp_path):
    """Issue 12 item 3: the prepare template built LeetCode's SFT targets from the plain-code column, which the reward
    cannot extract (no fenced block: imitation scores 0). The paper's target is the dataset's `response` (markdown with
    a fenced python block), which `LeetCodeTask.sft_data` gives; the template must use it."""
    import datasets
    pre = {"name": "lc", "common": {"seed": 0, "task": "leetcode"},
           "stages": {"prepare": {"dataset_path": str(DATA / "leetcode"), "tokenizer": "smollm2", "n_sft": 5,
                                  "n_train": 5, "n_eval": 4, "max_length": 2048, "min_tests": 20}}}
    reproduce(pre, ["prepare"], runs_dir=tmp_path / "runs", figures_dir=tmp_path / "figs", log=lambda *a: None)
    out = plan(pre, tmp_path / "runs")[0].out_dir
    sft = datasets.load_from_disk(str(out / "sft"))
    raw = [r for r in _jsonl(DATA / "leetcode" / "train.jsonl") if len(r["input_output"]) >= 20]   # the paper's >= 20 tests
    assert len(sft) == 5
    assert sft["completion"] == [r["response"] for r in raw[:5]]          # read independently from the fixture file
    assert all("```python" in c for c in sft["completion"])
    assert all(c != r["completion"] for c, r in zip(sft["completion"], raw))   # not the unfenced code column
    ev = datasets.load_from_disk(str(out / "eval_prompts"))
    assert sorted(ev["split"]) == ["test", "test", "validation", "validation"]

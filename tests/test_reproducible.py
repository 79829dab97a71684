"""Issue 17: a stage's outputs must not depend on what ran before it in a shared kernel.

`runner: {kernel: shared}` runs many stages in one kernel; the reset between stages (`%reset -f`) clears the
namespace but not the state of imported modules: python's `random`, numpy's and torch's global generators. With two
workers the stage order on each kernel depends on timing, so a stage reading an unseeded global generator would give
run-to-run differences. Independent check: the smoke pipeline run twice, once in a clean shared kernel and once in a
kernel whose global generators are put in another state before every stage (what a different predecessor leaves);
every data file, weight file and evaluation number must be byte-identical."""
import hashlib, json
from pathlib import Path

import pytest

from qrpo_nb.pipeline import STAGE_ORDER, SharedKernel, load_preset, reproduce

# a predecessor that draws from every global generator a stage could read
POLLUTE = """
import random, numpy as np, torch
random.seed(12345); [random.random() for _ in range(17)]
np.random.seed(54321); np.random.rand(23)
torch.manual_seed(999); torch.rand(31)
"""
DATA = (".safetensors", ".arrow", ".parquet")


def _digests(root: Path) -> dict:
    "Relative path -> sha256 of the stage outputs whose bytes carry no run folder path or timing."
    out = {}
    for f in sorted(root.rglob("*")):
        if not f.is_file() or f.suffix not in DATA or f.name.startswith("cache-"): continue
        if "step0" in f.parts: continue   # π_ref's cache names carry the run folder; its numbers are in summary.csv
        out[str(f.relative_to(root))] = hashlib.sha256(f.read_bytes()).hexdigest()
    return out


def _summary(root: Path):
    import pandas as pd
    s = pd.read_csv(next(root.glob("*/evaluate/*/summary.csv")))
    return s[[c for c in s.columns if c.endswith(("_mean", "_std"))] + ["method", "checkpoint", "split"]]


@pytest.mark.slow
def test_stage_outputs_do_not_depend_on_the_kernels_earlier_stages(tmp_path):
    pre = load_preset("smoke")
    stages = [s for s in STAGE_ORDER if s != "report"]
    with SharedKernel() as k:
        reproduce(pre, stages=stages, runs_dir=tmp_path / "a", log=lambda *a: None, kernel=k)
    with SharedKernel() as k:
        k.reset(tmp_path)   # starts it
        for s in stages:    # every stage after a predecessor that moved all global generators
            k.run_code(POLLUTE)
            reproduce(pre, stages=[s], runs_dir=tmp_path / "b", log=lambda *a: None, kernel=k)
    a, b = _digests(tmp_path / "a"), _digests(tmp_path / "b")
    assert a and set(a) == set(b), sorted(set(a) ^ set(b))[:10]
    assert any(p.endswith(".safetensors") for p in a) and any("/train/" in p for p in a)
    differ = [p for p in a if a[p] != b[p]]
    assert not differ, differ[:10]
    sa, sb = _summary(tmp_path / "a"), _summary(tmp_path / "b")
    assert len(sa) and sa.equals(sb), (sa.compare(sb) if sa.shape == sb.shape else (sa.shape, sb.shape))

"""Kill-and-resume: a training process killed with SIGKILL mid-run, started again, ends with exactly the weights of
an uninterrupted run (CPU, same seed). Also: a bad run file fails with a clear message and a non-zero exit."""
import json, os, signal, subprocess, sys, time
from pathlib import Path
import pytest, torch, yaml
from safetensors.torch import load_file

from trainer_runs import ENV, ROOT, make_run as _make_run

PAIRS = dict(n=48, seed=2, max_len=40)
DEFAULTS = dict(loss="qrpo", beta=0.1, lr=1e-3, batch_size=4, micro_batch_size=2, epochs=1, n_checkpoints=3, n_ref=4,
                state_every=1, seed=7)


def make_run(folder: Path, name: str, **train) -> Path:
    return _make_run(folder, name, PAIRS, DEFAULTS, **train)


def cmd(run): return [sys.executable, "-m", "qrpo_nb.trainer", str(run)]


def n_logged(out: Path) -> int:
    f = out / "metrics.jsonl"
    return len(f.read_text().splitlines()) if f.exists() else 0


def test_sigkill_then_resume_gives_identical_weights(tmp_path):
    full = make_run(tmp_path, "full")
    p = subprocess.run(cmd(full), env=ENV, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr[-4000:]
    steps = 12  # 48 pairs / 4
    assert n_logged(tmp_path / "full") == steps

    killed = make_run(tmp_path, "killed")
    for kill_after in (3, 7):  # killed twice, at different points; each time it restarts where its state says
        proc = subprocess.Popen(cmd(killed), env=ENV, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        t0 = time.time()
        while n_logged(tmp_path / "killed") < kill_after and proc.poll() is None and time.time() - t0 < 240:
            time.sleep(0.02)
        assert proc.poll() is None, "the run finished before it could be killed"
        os.kill(proc.pid, signal.SIGKILL); proc.wait()
        assert proc.returncode == -signal.SIGKILL
        assert n_logged(tmp_path / "killed") < steps
    p = subprocess.run(cmd(killed), env=ENV, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr[-4000:]
    assert "resuming from step" in p.stdout

    a, b = load_file(str(tmp_path / "full" / f"checkpoint-{steps}" / "model.safetensors")), \
           load_file(str(tmp_path / "killed" / f"checkpoint-{steps}" / "model.safetensors"))
    assert a.keys() == b.keys()
    for k in a: assert torch.equal(a[k], b[k]), k
    la = [json.loads(l) for l in (tmp_path / "full" / "metrics.jsonl").read_text().splitlines()]
    lb = [json.loads(l) for l in (tmp_path / "killed" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in lb] == list(range(1, steps + 1))
    assert [r["loss"] for r in la] == [r["loss"] for r in lb] and [r["grad_norm"] for r in la] == [r["grad_norm"] for r in lb]
    assert sorted(p.name for p in (tmp_path / "killed").glob("checkpoint-*")) == sorted(f"checkpoint-{s}" for s in (0, 4, 8, 12))

    # a finished run keeps no optimiser state (its last checkpoint holds the weights): one small record, no *.bin
    for run in ("full", "killed"):
        states = sorted((tmp_path / run / "state").iterdir())
        assert [d.name for d in states] == [f"step-{steps}"], states
        assert sorted(f.name for f in states[0].iterdir()) == ["COMPLETE", "FINAL", "trainer_state.json"]
    # started again, the finished run resumes at its end: nothing retrained, rewritten or lost
    ck = tmp_path / "full" / f"checkpoint-{steps}" / "model.safetensors"
    mtime, log = ck.stat().st_mtime, (tmp_path / "full" / "metrics.jsonl").read_text()
    p = subprocess.run(cmd(full), env=ENV, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr[-4000:]
    assert f"resuming from step {steps}" in p.stdout
    assert ck.stat().st_mtime == mtime and (tmp_path / "full" / "metrics.jsonl").read_text() == log


@pytest.mark.parametrize("train,msg", [(dict(beta=0.0), "beta must be > 0"), (dict(loss="nope"), "unknown loss 'nope'"),
                                       (dict(batch_size=6, micro_batch_size=4), "not divisible by micro_batch_size"),
                                       (dict(batch_size=64), "fewer than one batch of 64")])
def test_bad_run_file_fails_clearly(tmp_path, train, msg):
    from qrpo_nb.trainer import main
    run = make_run(tmp_path, "bad", **train)
    with pytest.raises(ValueError, match=msg): main([str(run)])

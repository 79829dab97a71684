"""The trainer under `accelerate launch` with 2 CPU processes (gloo): DDP and DeepSpeed ZeRO-1 reach the weights of a
single-process run with the same global batch (the batch is defined in samples, so the split must not matter)."""
import json, os, subprocess, sys
from pathlib import Path
import pytest, torch, yaml

from trainer_runs import ENV, ROOT, make_run as _make_run

PAIRS = dict(n=32, seed=1)
DEFAULTS = dict(loss="dpo", beta=0.1, lr=1e-3, batch_size=8, micro_batch_size=2, epochs=1, n_checkpoints=1, adam_eps=1e-6,
                seed=5)


def make_run(folder: Path, name: str, **train) -> Path:
    return _make_run(folder, name, PAIRS, DEFAULTS, **train)


def launch(run: Path, accel_config: str | None = None, n: int = 1, timeout: int = 300):
    cmd = ([sys.executable, "-m", "accelerate.commands.launch", "--config_file", str(ROOT / "configs/accelerate" / accel_config),
            "--num_processes", str(n), "--main_process_port", str(29500 + os.getpid() % 1000)] if accel_config
           else [sys.executable]) + ["-m", "qrpo_nb.trainer", str(run)]
    p = subprocess.run(cmd, env=ENV, cwd=ROOT, capture_output=True, text=True, timeout=timeout)
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-6000:]
    return p


def weights(ckpt: Path) -> dict:
    from safetensors.torch import load_file
    return load_file(str(ckpt / "model.safetensors"))


def assert_same_run(a: Path, b: Path, rtol=1e-4):
    wa, wb = weights(a / "checkpoint-4"), weights(b / "checkpoint-4")
    w0 = weights(a / "checkpoint-0")
    assert wa.keys() == wb.keys()
    moved = max((wa[k] - w0[k]).abs().max().item() for k in wa)
    assert moved > 1e-4  # training did something
    diff = max((wa[k] - wb[k]).abs().max().item() for k in wa)
    assert diff <= rtol * moved * 10, (diff, moved)
    la = [json.loads(l) for l in (a / "metrics.jsonl").read_text().splitlines()]
    lb = [json.loads(l) for l in (b / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in la] == [r["step"] for r in lb] == [1, 2, 3, 4]
    for ra, rb in zip(la, lb):  # true loss, gradient norm and token counts of the global batch on any split
        assert ra["tokens"] == rb["tokens"]
        assert abs(ra["loss"] - rb["loss"]) < 1e-5 and abs(ra["grad_norm"] - rb["grad_norm"]) < 1e-4 * max(1, ra["grad_norm"])


@pytest.fixture(scope="module")
def single(tmp_path_factory):
    d = tmp_path_factory.mktemp("dist")
    launch(make_run(d, "single"))
    return d


def test_ddp_two_processes_gloo(single):
    launch(make_run(single, "ddp", micro_batch_size=1), "ddp.yaml", n=2)
    assert_same_run(single / "single", single / "ddp")


@pytest.mark.slow  # DeepSpeed JIT-builds its CPU communication op on first use (minutes on 2 cores)
def test_deepspeed_zero1_two_processes_gloo(single):
    launch(make_run(single, "ds"), "ds-zero1.yaml", n=2, timeout=1200)
    assert_same_run(single / "single", single / "ds")


@pytest.mark.slow
def test_deepspeed_bf16_mode(tmp_path):
    """A bf16-loaded model under DeepSpeed ZeRO-1: the trainer's bf16 becomes DeepSpeed's bf16 mode (float32 master
    weights in its optimizer); the model is not upcast, so step 0 is the loaded bf16 model bit for bit, and the reference
    pass is scored by the engine's bf16 module, so step 1 starts at the reference (log-ratio 0, DPO loss log 2)."""
    from safetensors.torch import load_file
    from transformers import AutoModelForCausalLM
    run = make_run(tmp_path, "dsbf16", lr=5e-7, warmup_ratio=0.0, max_steps=2, save_state=False)
    y = yaml.safe_load(run.read_text()); y["dtype"] = "bfloat16"; run.write_text(yaml.safe_dump(y))
    launch(run, "ds-zero1.yaml", n=2, timeout=1200)
    w0 = weights(tmp_path / "dsbf16" / "checkpoint-0")
    m = AutoModelForCausalLM.from_pretrained(str(tmp_path / "assets" / "model"), dtype=torch.float32)
    ref = {k: v.to(torch.bfloat16) for k, v in m.state_dict().items()}
    assert all(v.dtype == torch.bfloat16 for v in w0.values()) and all(torch.equal(w0[k], ref[k]) for k in w0)
    r = json.loads((tmp_path / "dsbf16" / "metrics.jsonl").read_text().splitlines()[0])
    assert abs(r["logratio/chosen"]) < 1e-4 and abs(r["logratio/rejected"]) < 1e-4 and abs(r["loss"] - 0.6931472) < 1e-5

"""Shared by the trainer's subprocess tests: the environment for child processes and a run file on disk."""
import os
from pathlib import Path
import yaml

ROOT = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false", "OMP_NUM_THREADS": "1",
       "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}


def with_pool_texts(ds, seed: int = 0):
    "A `ref_completions` column (random lower-case texts, one per reference reward), as `build_pairs(..., ref_completions=True)` keeps."
    import numpy as np
    g = np.random.default_rng(seed)
    texts = [["".join(g.choice(list("abcdefghij"), size=int(g.integers(1, 9)))) for _ in r] for r in ds["ref_rewards"]]
    return ds.add_column("ref_completions", texts)


def make_run(folder: Path, name: str, pairs: dict, defaults: dict, **train) -> Path:
    "Tiny model, char tokenizer and toy pairs (`toy_pairs(**pairs)`; `pool_texts=True`: with `ref_completions`) on disk, and a run file."
    from qrpo_nb.trainer import toy_tokenizer, toy_pairs
    from qrpo_nb.models import tiny_llama
    assets = folder / "assets"
    if not assets.exists():
        tok = toy_tokenizer()
        tiny_llama(len(tok), hidden_size=32, num_hidden_layers=2, pad_token_id=tok.pad_token_id, bos_token_id=tok.bos_token_id,
                   eos_token_id=tok.eos_token_id, seed=0).save_pretrained(assets / "model")
        tok.save_pretrained(assets / "model")
        pairs = dict(pairs); pool = pairs.pop("pool_texts", False)
        ds = toy_pairs(**pairs)
        (with_pool_texts(ds) if pool else ds).save_to_disk(str(assets / "data"))
    cfg = {**defaults, "progress": False, "output_dir": str(folder / name), **train}
    run = folder / f"{name}.yaml"
    run.write_text(yaml.safe_dump({"model": str(assets / "model"), "dataset": str(assets / "data"), "train": cfg}))
    return run

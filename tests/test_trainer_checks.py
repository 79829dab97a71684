"""Issue 16 part 3: every input that used to train silently wrong (or fail late, with the wrong words) is refused by
`train` before any compute, with the row, the column or the folder named. Each test fails on the trainer before
the checks (commit a073779)."""
import os
os.environ.setdefault("OMP_NUM_THREADS", "1")
import math, warnings
import datasets, pytest, torch
from qrpo_nb.trainer import TrainConfig, train, toy_pairs, toy_tokenizer
from qrpo_nb.models import tiny_llama
from qrpo_nb.losses import LOSSES

torch.set_num_threads(1)
TOK = toy_tokenizer()


def model(hidden=16, **kw):
    return tiny_llama(len(TOK), hidden_size=hidden, num_hidden_layers=1, num_attention_heads=2,
                      pad_token_id=TOK.pad_token_id, bos_token_id=TOK.bos_token_id, eos_token_id=TOK.eos_token_id, **kw)


def cfg(tmp_path, name="run", **kw):
    d = dict(loss="qrpo", beta=0.1, lr=1e-3, batch_size=8, micro_batch_size=4, n_ref=4, n_checkpoints=0,
             max_steps=1, progress=False, output_dir=str(tmp_path / name))
    return TrainConfig(**{**d, **kw})


def with_row(ds, i, **kv):
    return datasets.Dataset.from_list([{**r, **kv} if j == i else r for j, r in enumerate(ds)])


def refuses(c, ds, match, m=None, exc=ValueError):
    "train raises `exc` matching `match` and has written no checkpoint, state or metrics (nothing was computed)."
    with pytest.raises(exc, match=match) as e:
        train(c, m or model(), TOK, ds, losses=LOSSES)
    out = os.path.join(c.output_dir)
    assert not any(os.path.exists(os.path.join(out, f)) for f in ("metrics.jsonl", "checkpoint-0", "data")), os.listdir(out)
    return str(e.value)


def test_rejected_without_its_reward_is_refused_under_qrpo(tmp_path):
    ds = toy_pairs(16).remove_columns("rejected_reward")
    refuses(cfg(tmp_path), ds, "no `rejected_reward` column")


def test_nan_reward_in_row_20_is_named_before_training(tmp_path):
    ds = with_row(toy_pairs(32), 20, chosen_reward=float("nan"))
    msg = refuses(cfg(tmp_path), ds, "dataset row 20")
    assert "`chosen_reward`" in msg


@pytest.mark.parametrize("kv,match", [(dict(rejected_reward=float("inf")), "`rejected_reward`: dataset row 5"),
                                      (dict(chosen_reward=-float("inf")), "`chosen_reward`: dataset row 5"),
                                      (dict(ref_rewards=[0.1, 0.2, float("inf"), 0.3, 0.0, 0.0, 0.0, 0.0]),
                                       "row 5 has an infinite reference reward")])
def test_infinite_rewards_are_refused(tmp_path, kv, match):
    refuses(cfg(tmp_path), with_row(toy_pairs(16), 5, **kv), match)


def test_n_ref_longer_than_a_row_is_refused(tmp_path):
    ds = with_row(toy_pairs(16), 9, ref_rewards=[0.1, 0.2, 0.3])
    refuses(cfg(tmp_path, n_ref=4), ds, "n_ref=4 but dataset row 9 has only 3 reference rewards")


def test_ragged_reference_pools_warn_and_use_what_each_row_has(tmp_path):
    ds = with_row(toy_pairs(16), 9, ref_rewards=[0.1, 0.2, 0.3])
    with pytest.warns(UserWarning, match="3 to 8 reference rewards and n_ref is None"):
        r = train(cfg(tmp_path, n_ref=None), model(), TOK, ds, losses=LOSSES)
    assert math.isfinite(r.history[0]["loss"])


def test_sequences_longer_than_the_model_positions_are_refused(tmp_path):
    ds = toy_pairs(16, min_len=30, max_len=40)  # > 30 + 30 characters (tokens) per sample
    refuses(cfg(tmp_path, max_length=None), ds, "but the model has 32 positions", m=model(max_position_embeddings=32))


def test_empty_dataset(tmp_path):
    refuses(cfg(tmp_path), toy_pairs(16).select([]), "the dataset is empty")
    with pytest.raises(ValueError, match="the dataset is empty"):
        train(cfg(tmp_path, "b"), model(), TOK, datasets.Dataset.from_list([]), losses=LOSSES)


def test_train_config_numbers_named_with_field_and_value():
    assert TrainConfig(beta="0.1").beta == 0.1 and TrainConfig(lr="1e-3").lr == 1e-3
    assert TrainConfig(lr="1e-3").key() == TrainConfig(lr=1.0e-3).key()  # YAML's string 1e-3 and float 1.0e-3: one run
    with pytest.raises(ValueError, match="batch_size must be an integer, got 'four'"):
        TrainConfig(batch_size="four")
    with pytest.raises(ValueError, match="beta must be a number, got 'x'"):
        TrainConfig(beta="x")


def test_same_output_dir_other_dataset_is_refused(tmp_path):
    c = cfg(tmp_path, max_steps=1)
    train(c, model(), TOK, toy_pairs(16, seed=0), losses=LOSSES)
    with pytest.raises(ValueError, match="another dataset") as e:
        train(c, model(), TOK, toy_pairs(16, seed=1), losses=LOSSES)
    assert "delete" in str(e.value) and str(tmp_path / "run") in str(e.value)
    train(TrainConfig(**{**c.to_dict(), "max_steps": 2}), model(), TOK, toy_pairs(16, seed=0), losses=LOSSES)  # same data resumes


def test_same_output_dir_bigger_model_is_one_line(tmp_path):
    c = cfg(tmp_path)
    train(c, model(16), TOK, toy_pairs(16), losses=LOSSES)
    with pytest.raises(ValueError, match="another model") as e:
        train(c, model(32), TOK, toy_pairs(16), losses=LOSSES)
    assert "\n" not in str(e.value) and str(tmp_path / "run") in str(e.value)


def test_conversational_format_trains_like_plain_text(tmp_path):
    plain = toy_pairs(16)
    conv = datasets.Dataset.from_list([{**r, "chosen": [{"role": "assistant", "content": r["chosen"]}],
                                        "rejected": [{"role": "assistant", "content": r["rejected"]}]} for r in plain])
    a = train(cfg(tmp_path, "plain", max_steps=2), model(), TOK, plain, losses=LOSSES).history
    b = train(cfg(tmp_path, "conv", max_steps=2), model(), TOK, conv, losses=LOSSES).history
    assert [h["loss"] for h in a] == [h["loss"] for h in b]


def test_trl_names_are_the_same_run(tmp_path, monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "1")
    trl = TrainConfig(loss_type="qrpo", learning_rate=1e-3, per_device_train_batch_size=4, gradient_accumulation_steps=2,
                      num_train_epochs=1, lr_scheduler_type="cosine", adam_epsilon=1e-8, n_ref=4, n_checkpoints=0,
                      max_steps=1, progress=False, output_dir=str(tmp_path / "trl"))
    ours = cfg(tmp_path, "ours")
    assert (trl.batch_size, trl.micro_batch_size, trl.lr, trl.loss) == (8, 4, 1e-3, "qrpo") and trl.key() == ours.key()
    a = train(trl, model(), TOK, toy_pairs(16), losses=LOSSES).history
    b = train(ours, model(), TOK, toy_pairs(16), losses=LOSSES).history
    assert a[0]["loss"] == b[0]["loss"]
    monkeypatch.setenv("WORLD_SIZE", "2")  # TRL's global batch counts the processes
    assert TrainConfig(per_device_train_batch_size=4, gradient_accumulation_steps=2).batch_size == 16
    with pytest.raises(ValueError, match="learning_rate=0.001 and lr=0.01 disagree"):
        TrainConfig(learning_rate=1e-3, lr=1e-2)


def test_run_file_numbers_and_names(tmp_path):
    "A YAML run file: PyYAML reads `1e-3` as a string (normalised), `four` is named with its field, a typo is named."
    from qrpo_nb.trainer import load_run_file
    f = tmp_path / "run.yaml"
    f.write_text("model: m\ndataset: d\ntrain: {loss: qrpo, lr: 1e-3, beta: 0.1, batch_size: 8}\n")
    t = load_run_file(f)["train"]
    assert t.lr == 1e-3 and t.key() == TrainConfig(loss="qrpo", lr=1.0e-3, beta=0.1, batch_size=8).key()
    f.write_text("model: m\ndataset: d\ntrain: {loss: qrpo, batch_size: four}\n")
    with pytest.raises(ValueError, match="batch_size must be an integer, got 'four'"):
        load_run_file(f)
    f.write_text("model: m\ndataset: d\ntrain: {loss: qrpo, bta: 0.1}\n")
    with pytest.raises(ValueError, match="unknown field 'bta' \\(did you mean 'beta'\\?\\)"):
        load_run_file(f)


def test_trainer_notebook_doc_processing(tmp_path):
    "nbdev's doc processing runs every cell that imports: none of them may need a name the test run defines (issue 16.4)."
    import subprocess, sys, shutil
    from pathlib import Path
    root = Path(__file__).resolve().parents[1]
    script = tmp_path / "proc.py"
    script.write_text("import os, sys, warnings\nfrom nbdev.process import NBProcessor\n"
                      "from nbdev.processors import populate_language, add_show_docs, exec_show_docs\n"
                      "p = os.path.abspath(sys.argv[1]); os.chdir(os.path.dirname(p))\nwarnings.simplefilter('ignore')\n"
                      "NBProcessor(p, [populate_language, add_show_docs, exec_show_docs]).process()\nprint('ok')\n")
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1", "MPLBACKEND": "Agg"}
    p = subprocess.run([sys.executable, str(script), str(root / "nbs" / "09_trainer.ipynb")], cwd=root, env=env,
                       capture_output=True, text=True, timeout=300)
    assert p.returncode == 0 and p.stdout.strip().endswith("ok"), p.stderr[-3000:]


def test_check_config_takes_duck_typed_configs():
    "09a_trl passes a SimpleNamespace without loss_options: the pointwise checks must not need the attribute."
    from types import SimpleNamespace
    from qrpo_nb.trainer import check_config
    cols = toy_pairs(4).column_names
    for name in ("qrpo", "dpo", "dro", "kto"):
        assert check_config(SimpleNamespace(loss=name, batch_size=1, micro_batch_size=1), cols) is LOSSES[name]


# --- Issue 18: a wrong model's saved state is one typed error, `WeightsMismatch`, on both resume paths --------------
def _forget_model_fingerprint(out):
    "As a state written before fingerprints were kept: only the weights themselves can tell another model."
    import json
    for f in (out / "state").glob("step-*/trainer_state.json"):
        st = json.loads(f.read_text()); st.pop("model_fingerprint"); f.write_text(json.dumps(st))


def test_mid_run_state_of_another_model_is_weights_mismatch(tmp_path):
    from qrpo_nb.trainer import WeightsMismatch
    c = cfg(tmp_path)  # 16 pairs / 8: 2 steps; stopped after 1, the state is accelerate's full state
    train(c, model(16), TOK, toy_pairs(16), losses=LOSSES)
    assert not (tmp_path / "run" / "state" / "step-1" / "FINAL").exists()
    _forget_model_fingerprint(tmp_path / "run")
    with pytest.raises(WeightsMismatch, match="holds the state of another model") as e:
        train(TrainConfig(**{**c.to_dict(), "max_steps": 2}), model(32), TOK, toy_pairs(16), losses=LOSSES)
    assert str(tmp_path / "run") in str(e.value) and isinstance(e.value, ValueError) and "\n" not in str(e.value)


def test_finished_run_of_another_model_is_weights_mismatch(tmp_path):
    from qrpo_nb.trainer import WeightsMismatch
    c = cfg(tmp_path, max_steps=None, n_checkpoints=1)
    train(c, model(16), TOK, toy_pairs(16), losses=LOSSES)
    assert (tmp_path / "run" / "state" / "step-2" / "FINAL").exists()  # the weights are read back from checkpoint-2
    _forget_model_fingerprint(tmp_path / "run")
    with pytest.raises(WeightsMismatch, match="holds the state of another model") as e:
        train(c, model(32), TOK, toy_pairs(16), losses=LOSSES)
    assert str(tmp_path / "run") in str(e.value) and "checkpoint-2 has other shape" in str(e.value)
    train(c, model(16), TOK, toy_pairs(16), losses=LOSSES)  # its own model still resumes at the end


def test_other_errors_while_loading_pass_through(tmp_path, monkeypatch):
    "An unrelated RuntimeError inside loading is not turned into a model mismatch, on either path."
    import accelerate, safetensors.torch
    def boom(*a, **k): raise RuntimeError("disk read failed")
    mid, fin = cfg(tmp_path, "mid"), cfg(tmp_path, "final", max_steps=None, n_checkpoints=1)
    for c in (mid, fin): train(c, model(), TOK, toy_pairs(16), losses=LOSSES)
    monkeypatch.setattr(accelerate.Accelerator, "load_state", boom)
    with pytest.raises(RuntimeError, match="disk read failed") as e:
        train(TrainConfig(**{**mid.to_dict(), "max_steps": 2}), model(), TOK, toy_pairs(16), losses=LOSSES)
    assert not isinstance(e.value, ValueError)
    monkeypatch.setattr(safetensors.torch, "load_file", boom)
    with pytest.raises(RuntimeError, match="disk read failed") as e:
        train(fin, model(), TOK, toy_pairs(16), losses=LOSSES)
    assert not isinstance(e.value, ValueError)


# --- Issue 12: the tokenizer is written once per run, into its final checkpoint --------------------------------------
def test_tokenizer_once_per_run_and_checkpoints_evaluate_as_before(tmp_path):
    from pathlib import Path
    from qrpo_nb.models import load_model, load_tokenizer
    from qrpo_nb.evaluation import ResultsStore, checkpoint_folders, evaluate_run
    c = cfg(tmp_path, max_steps=None, n_checkpoints=2, batch_size=4, micro_batch_size=4)  # 4 steps: checkpoints 0, 2, 4
    res = train(c, model(), TOK, toy_pairs(16), losses=LOSSES)
    ck = checkpoint_folders(c.output_dir)
    assert list(ck) == [0, 2, 4] and [Path(p) for p in res.checkpoints] == list(ck.values())
    tok_files = lambda p: sorted(f.name for f in Path(p).iterdir() if f.name.startswith(("tokenizer", "special_tokens", "chat_template")))
    assert tok_files(ck[0]) == tok_files(ck[2]) == []
    assert tok_files(ck[4]) == ["chat_template.jinja", "tokenizer.json", "tokenizer_config.json"]  # the run's complete model folder
    tok = load_tokenizer(ck[4])
    msgs = [{"role": "user", "content": "abc"}]
    assert tok.apply_chat_template(msgs, tokenize=False) == TOK.apply_chat_template(msgs, tokenize=False)
    assert tok("abcab")["input_ids"] == TOK("abcab")["input_ids"]
    for s, p in ck.items():  # every checkpoint loads by path, with the weights it was saved with
        assert load_model(p).config.vocab_size == len(TOK)
    key = dict(model="tiny", dataset="toy", method="qrpo", setting="offline", beta=0.1, lr=1e-3)
    rows = [{"prompt_id": "p0", "prompt": msgs}, {"prompt_id": "p1", "prompt": [{"role": "user", "content": "ba"}]}]
    new = evaluate_run(ck, {"test": rows}, None, lambda rows, comps: [float(len(x)) for x in comps], key,
                       ResultsStore(tmp_path / "store"), seeds=(0,), progress=False, tokenizer=tok,
                       sampling=dict(temperature=1.0, top_p=1.0), generate_options=dict(max_new_tokens=4, progress=False))
    assert sorted(new.checkpoint) == [0, 2, 4] and new.reward.notna().all()


@pytest.mark.parametrize("kind", ["float32", "autocast-bf16", "bf16-weights"])
def test_sequence_logps_in_slices_is_bit_identical(kind):
    """Issue 12 (page faults): `SequenceLogps` computes the float32 log-softmax in slices of positions
    (`token_logps`, its own backward under autograd); the sums and every parameter's gradient must equal, bit for bit,
    the unsliced computation written out here (the cpu preset's paper_figures stay byte-identical)."""
    import contextlib
    from qrpo_nb.trainer import SequenceLogps, chunk_sizes
    V = 128256  # Llama-3's vocabulary
    m = tiny_llama(V, hidden_size=16, num_hidden_layers=1, num_attention_heads=2, seed=0)
    if kind == "bf16-weights": m = m.to(torch.bfloat16)
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(0, V, (3, 30), generator=g)
    att = torch.ones_like(ids); att[2, 25:] = 0
    lm = torch.zeros_like(ids); lm[:, 6:] = 1; lm[2, 25:] = 0; lm[1, 9] = 0
    w = torch.randn(3, generator=g)
    ctx = (lambda: torch.autocast("cpu", dtype=torch.bfloat16)) if kind == "autocast-bf16" else contextlib.nullcontext
    params = [p for p in m.parameters() if p.requires_grad]

    def plain():  # the unsliced computation
        tgt = lm[:, 1:].bool()
        rows = torch.arange(3)[:, None].expand_as(tgt)[tgt]
        hidden = m.get_decoder()(input_ids=ids, attention_mask=att).last_hidden_state
        logits = m.get_output_embeddings()(hidden[:, :-1][tgt]).float()
        lp = logits.gather(-1, ids[:, 1:][tgt][:, None]).squeeze(-1) - torch.logsumexp(logits, -1)
        return torch.zeros(3).index_add(0, rows, lp)

    with ctx(): new, cnt = SequenceLogps(m)(ids, att, lm)
    g_new = torch.autograd.grad((new * w).sum(), params)
    with ctx(): old = plain()
    g_old = torch.autograd.grad((old * w).sum(), params)
    assert chunk_sizes(int(cnt.sum()), V) is not None          # the sliced path ran
    assert new.dtype == torch.float32 and torch.equal(new, old), (new - old).abs().max()
    assert all(torch.equal(a, b) for a, b in zip(g_new, g_old))
    assert sum(int((a != 0).sum()) for a in g_new) > 0

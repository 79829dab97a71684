"Data: encode_example invariants on real tokenizers, the CPU tasks end to end with the real sandbox, loaders from files."
import json, math, random
import pytest
from datasets import Dataset
from qrpo_nb.data import (encode_example, pad_batch, get_task, load_leetcode, load_raw, eval_split, split_counts,
                          filter_by_length, code_rewards, cpu_tokenizer, PREFERENCE_COLUMNS, CODE_COLUMNS)
from qrpo_nb.models import llama3_tokenizer

def _tokenizers():
    toks = {"llama3-instruct": llama3_tokenizer(), "tulu3": llama3_tokenizer("tulu3"), "cpu": cpu_tokenizer(),
            "cpu-mistral": cpu_tokenizer("mistral")}
    try:
        from qrpo_nb.models import smollm2
        toks["smollm2"] = smollm2(tokenizer_only=True)
    except ImportError: pass
    return toks

TOKS = _tokenizers()

@pytest.mark.parametrize("name", sorted(TOKS))
def test_encode_invariants(name):
    "Random prompts/completions: one BOS at most at the start, exactly one EOS ending the completion, mask = completion + EOS."
    tok, rng = TOKS[name], random.Random(0)
    words = ["alpha", "beta", " gamma", "x = 3", "\n", "ünï", "code:", "```python\nprint(1)\n```", "  "]
    for _ in range(40):
        msgs = [{"role": "user", "content": "".join(rng.choices(words, k=rng.randint(1, 6)))}]
        if rng.random() < 0.3: msgs = [{"role": "system", "content": "Be kind."}] + msgs
        comp = "".join(rng.choices(words, k=rng.randint(0, 6))) + (tok.eos_token if rng.random() < 0.3 else "")
        e = encode_example(tok, msgs, comp)
        ids, mask = e["input_ids"], e["completion_mask"]
        assert len(ids) == len(mask) and ids[-1] == tok.eos_token_id and mask[-1] == 1
        k = mask.index(1)
        assert all(m == 0 for m in mask[:k]) and all(m == 1 for m in mask[k:])      # prompt, then completion
        assert ids[k:].count(tok.eos_token_id) == 1                                  # exactly one EOS in the completion
        if tok.bos_token_id is not None: assert ids[1:].count(tok.bos_token_id) == ids[1:k].count(tok.bos_token_id) and ids[:2] != [tok.bos_token_id] * 2
        body = comp[:-len(tok.eos_token)] if comp.endswith(tok.eos_token) else comp
        assert tok.decode(ids[k:-1]) == body                                        # the completion text round-trips

def test_pad_equals_eos_is_kept():
    tok = TOKS["llama3-instruct"]; assert tok.pad_token_id == tok.eos_token_id
    a, b = encode_example(tok, "Hi", "A"), encode_example(tok, "Hi", "A much longer answer.")
    batch = pad_batch([a, b], tok.pad_token_id)
    na = len(a["input_ids"])
    assert batch["attention_mask"][0, na - 1] == 1 and batch["completion_mask"][0, na - 1] == 1
    assert batch["attention_mask"][0, na:].sum() == 0 and batch["completion_mask"][0, na:].sum() == 0

def test_cpu_code_end_to_end_with_sandbox():
    "Reference solutions score 1 in the real sandbox, near misses less, no code 0; sandbox and fallback agree."
    pytest.importorskip("qrpo_nb.sandbox")
    task = get_task("cpu_code", n_sft=20, n_train=24, n_eval=16)
    pref = task.preference_data()
    assert set(PREFERENCE_COLUMNS) <= set(pref.column_names) and set(CODE_COLUMNS) <= set(pref.column_names)
    rows = list(pref) * 3
    comps = list(pref["chosen"]) + list(pref["rejected"]) + ["I do not know."] * len(pref)
    sb = code_rewards(rows, comps, backend="sandbox")
    fb = code_rewards(rows, comps, backend="grammar")
    n = len(pref)
    assert sb[:n] == [1.0] * n and sb[2 * n:] == [0.0] * n
    assert sum(sb[n:2 * n]) / n < 0.8
    assert sb == pytest.approx(fb)                     # the fallback matches the sandbox on the task's grammar
    ev = task.eval_prompts()
    assert split_counts(ev) == {"test": 8, "validation": 8}

def test_cpu_chat_spread_and_schema():
    task = get_task("cpu_chat", n_sft=50, n_train=40, n_eval=10)
    pref = task.preference_data()
    assert set(PREFERENCE_COLUMNS) <= set(pref.column_names)
    r = task.reward(list(pref), list(pref["chosen"]))
    assert len(set(round(x, 6) for x in r)) > 10
    sft = task.sft_data()
    tok = task.tokenizer()
    lens = [len(encode_example(tok, x["prompt"], x["completion"])["input_ids"]) for x in sft]
    assert max(lens) <= 256

def test_sft_fits_cpu_budget():
    "All cpu_code SFT examples fit the CPU preset's max_length (256) and completions its max_new_tokens (48)."
    task = get_task("cpu_code", n_sft=500, n_train=0, n_eval=0)
    tok = task.tokenizer()
    for x in task.sft_data():
        e = encode_example(tok, x["prompt"], x["completion"], max_length=256)
        assert sum(e["completion_mask"]) <= 48

def test_leetcode_json_string_and_single_file(tmp_path):
    "input_output stored as a JSON string (as some exports do) and a single parquet file both load."
    rows = []
    for i in range(4):
        io = [{"input": f"n = {j}", "output": str(j * i)} for j in range(20 + i)]
        rows.append(dict(task_id=f"t-{i}", question_id=i, difficulty="Easy" if i < 2 else "Hard", tags=["Math"],
                         problem_description="d", starter_code="s", estimated_date="2020-01-01", prompt="import math\n",
                         completion="c", entry_point="Solution().f", test="def check(candidate): pass",
                         input_output=json.dumps(io), query=f"q{i}", response="r"))
    p = tmp_path / "lc.parquet"; Dataset.from_list(rows).to_parquet(p)
    ds = load_leetcode(p, split="test", min_tests=21, prompt_builder="query", verbose=False)
    assert ds["task_id"] == ["t-1", "t-2", "t-3"] and ds["n_tests"] == [21, 22, 23]
    assert ds[0]["tests"][3] == {"input": "n = 3", "output": "3"}
    assert len(load_raw(p, "test")) == 4

def test_filter_by_length_pairs_need_both():
    tok = TOKS["llama3-instruct"]
    ds = Dataset.from_list([dict(prompt=[{"role": "user", "content": "Hi"}], chosen="ok", rejected="no " * 50),
                            dict(prompt=[{"role": "user", "content": "Hi"}], chosen="ok", rejected="no")])
    kept, counts = filter_by_length(ds, tok, max_length=30, verbose=False)
    assert counts["kept"] == 1 and kept[0]["rejected"] == "no"

FIX = __import__("pathlib").Path(__file__).parent / "data"

def _jsonl(p): return [json.loads(l) for l in open(p)]

@pytest.mark.parametrize("split,n", [("train", 24), ("test", 12)])
def test_magpie_fixture(split, n):
    "Magpie-Air fixture through the real loader; expected values read from the file with json alone."
    from qrpo_nb.data import load_magpie_air
    rows, ds = _jsonl(FIX / f"magpie-air/{split}.jsonl"), load_magpie_air(FIX / "magpie-air", split)
    assert len(ds) == n == len(rows)
    assert ds["prompt_id"] == [r["uuid"] for r in rows]
    assert ds["prompt"] == [[{"role": "user", "content": r["instruction"]}] for r in rows]
    assert ds["rejected"] == [r["rejected"][1]["content"] for r in rows]
    assert ds["chosen_reward"] == [max(s["score"] for s in r["rewards_armorm"]) for r in rows]

@pytest.mark.parametrize("split,n", [("train_prefs", 24), ("test_prefs", 12)])
def test_ultrafeedback_fixture_split_names(split, n):
    "Split names such as train_prefs come from the file names (datasets' own inference reads train_prefs as train)."
    from qrpo_nb.data import load_ultrafeedback
    rows, ds = _jsonl(FIX / f"ultrafeedback/{split}.jsonl"), load_ultrafeedback(FIX / "ultrafeedback", split)
    assert len(ds) == n and ds["prompt_id"] == [r["prompt_id"] for r in rows]
    assert ds["chosen"] == [r["chosen"][1]["content"] for r in rows]
    assert ds["score_rejected"] == [r["score_rejected"] for r in rows]

@pytest.mark.parametrize("split", ["train", "test"])
def test_leetcode_fixture_min_tests(split):
    rows = _jsonl(FIX / f"leetcode/{split}.jsonl")
    ds = load_leetcode(FIX / "leetcode", split, verbose=False)
    keep = [r for r in rows if len(r["input_output"]) >= 20]
    assert ds["task_id"] == [r["task_id"] for r in keep] and 0 < len(keep) < len(rows)
    assert ds["n_tests"] == [len(r["input_output"]) for r in keep]

def _all_leetcode_rows():
    return [r for split in ("train", "test") for r in _jsonl(FIX / f"leetcode/{split}.jsonl")]

def test_leetcode_sft_target_scores_full_pass_rate():
    "Every fixture row's SFT target (`response`, fenced) earns 1 from the real sandbox reward; the unfenced `completion` 0."
    pytest.importorskip("qrpo_nb.sandbox")
    from qrpo_nb.data import LeetCodeTask
    task = LeetCodeTask(path=str(FIX / "leetcode"), min_tests=0)
    rows = list(task.train_prompts())
    sft = task.sft_data()
    assert len(rows) == 31 and sft["completion"] == [r["response"] for r in _jsonl(FIX / "leetcode/train.jsonl")]
    assert task.reward(rows, sft["completion"]) == [1.0] * len(rows)
    # the prepare template's old SFT target: the plain-code column, which no extraction finds
    assert task.reward(rows, [r["completion"] for r in _jsonl(FIX / "leetcode/train.jsonl")]) == [0.0] * len(rows)
    test_rows = list(LeetCodeTask(path=str(FIX / "leetcode"), min_tests=0).eval_prompts())
    assert task.reward(test_rows, [r["response"] for r in test_rows]) == [1.0] * len(test_rows)

def _variant(row, kind):
    if kind == "right": return row["response"]
    method = row["entry_point"].split(".")[-1]
    cond = "True" if kind == "wrong" else "len(repr((args, kwargs))) % 2 == 0"
    return (f"```python\n{row['completion']}\n_ref = Solution.{method}\ndef _cut(self, *args, **kwargs):\n"
            f"    if {cond}:\n        return None\n    return _ref(self, *args, **kwargs)\nSolution.{method} = _cut\n```")

def test_leetcode_test_and_input_output_verdicts_agree():
    "On every fixture problem, the `test` assert lines and the `input_output` pairs give the same per-test verdicts."
    pytest.importorskip("qrpo_nb.sandbox")
    from qrpo_nb.leetcode import leetcode_job, get_protocol, default_sandbox
    rows, sb = _all_leetcode_rows(), default_sandbox()
    jobs, keys = [], []
    for r in rows:
        for kind in ("right", "wrong", "partial"):
            for src in ("test", "input_output"):
                jobs.append(leetcode_job(_variant(r, kind), r, source=src)); keys.append((r["task_id"], kind, src))
    res = dict(zip(keys, sb.run_batch(jobs, progress=False, **get_protocol("paper").limits)))
    mixed = 0
    for r in rows:
        for kind in ("right", "wrong", "partial"):
            a, b = res[(r["task_id"], kind, "test")].outcomes, res[(r["task_id"], kind, "input_output")].outcomes
            assert a == b and len(a) == len(r["input_output"]), (r["task_id"], kind, a, b)
        assert set(res[(r["task_id"], "right", "test")].outcomes) == {"passed"}
        wrong = res[(r["task_id"], "wrong", "test")].outcomes       # None is right only where None is expected
        assert [o == "passed" for o in wrong] == [t["output"] == "None" for t in r["input_output"]]
        mixed += len(set(res[(r["task_id"], "partial", "test")].outcomes)) == 2
    assert mixed >= len(rows) * 3 // 4, mixed                # partial credit on most problems

def test_leetcode_paper_protocol():
    "The paper's rule: first closed ```python block (else 0), the `test` asserts, PAPER_PREFIX (queue), 1 s / 1,024 MB."
    from qrpo_nb.leetcode import extract_code, leetcode_job, leetcode_prompt, get_protocol, PAPER_PREFIX
    row = _jsonl(FIX / "leetcode/train.jsonl")[0]
    code = row["completion"]
    assert extract_code(f"```python\n{code}```\n```python\nprint(1)\n```", row["entry_point"]) == code
    assert extract_code(f"```python\n{code}") is None and extract_code(f"```py\n{code}```") is None
    job = leetcode_job(row["response"], row)
    assert job.prefix == PAPER_PREFIX and "import queue\n" in job.prefix and "from queue import PriorityQueue" in job.prefix
    import ast
    assert job.tests == [ast.unparse(ast.parse(l.strip())) for l in row["test"].splitlines() if l.strip().startswith("assert")][:100]
    assert get_protocol("paper").limits == {"timeout_s": 1.0, "memory_mb": 1024, "total_timeout_s": 101.0, "max_limit_hits": None}
    msgs = leetcode_prompt(row)
    assert [m["role"] for m in msgs] == ["user"] and msgs[0]["content"].startswith(row["query"].split("### Format:")[0])
    assert leetcode_job(f"```python\n{code}", row, protocol="ours") is not None   # ours accepts an unclosed block

def _hand_llama3(p, c):
    "Tokens of the Llama-3 conversation written out by hand (the template trims each message)."
    tok = TOKS["llama3-instruct"]
    return len(tok("<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\n" + p.strip() + "<|eot_id|>"
                   "<|start_header_id|>assistant<|end_header_id|>\n\n" + c.strip() + "<|eot_id|>", add_special_tokens=False).input_ids)

def _hand_chatml(tok, p, c):
    "SmolLM2's ChatML conversation written out by hand (its template adds a default system turn)."
    text = ("<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n"
            f"<|im_start|>user\n{p}<|im_end|>\n<|im_start|>assistant\n{c}<|im_end|>\n")
    return len(tok(text, add_special_tokens=False).input_ids)

def test_paper_length_filter_two_tokenizers():
    "The paper's filter (reward-model tokenizer, whole conversation, both completions, every split) drops different rows per tokenizer."
    from qrpo_nb.data import load_magpie_air, paper_length_filter, conversation_length
    splits = {s: load_magpie_air(FIX / "magpie-air", s) for s in ("train", "test")}
    l3, cpu = TOKS["llama3-instruct"], TOKS["cpu"]
    hands = {"llama3": (l3, _hand_llama3),
             "cpu": (cpu, lambda p, c: len(cpu("<|bos|><|user|>\n" + p + "\n<|assistant|>\n" + c + "<|eos|>\n", add_special_tokens=False).input_ids))}
    if "smollm2" in TOKS:
        st = TOKS["smollm2"]
        if conversation_length(st, "Hi", "Yo") == _hand_chatml(st, "Hi", "Yo"): hands["smollm2"] = (st, lambda p, c: _hand_chatml(st, p, c))
    dropped = {}
    for name, (tok, hand) in hands.items():
        kept, report = paper_length_filter(splits, tok, max_length=150, verbose=False)
        for s, ds in splits.items():
            want = [r["prompt_id"] for r in ds
                    if max(hand(r["prompt"][0]["content"], r["chosen"]), hand(r["prompt"][0]["content"], r["rejected"])) <= 150]
            assert kept[s]["prompt_id"] == want, (name, s)
            assert report[s] == dict(total=len(ds), kept=len(want), dropped=len(ds) - len(want), max_length=150)
        dropped[name] = (report["train"]["dropped"], report["test"]["dropped"])
    assert dropped["llama3"] == (2, 2) and dropped["cpu"][0] > 2, dropped     # different tokenizers, different drops

def test_task_length_filter_counts():
    "A paper task with `length_tokenizer` filters every split once; the old behaviour (no filter on eval prompts) kept all."
    from qrpo_nb.data import get_task
    l3 = TOKS["llama3-instruct"]
    t = get_task("ultrafeedback", path=str(FIX / "ultrafeedback"), length_tokenizer=l3, max_length=150)
    assert len(t.eval_prompts()) == t.length_counts["test_prefs"]["kept"] < 12
    assert len(t.train_prompts()) == len(t.sft_data()) == len(t.preference_data()) == t.length_counts["train_prefs"]["kept"] < 24
    assert len(get_task("ultrafeedback", path=str(FIX / "ultrafeedback")).eval_prompts()) == 12

@pytest.mark.slow
def test_leetcode_paper_limits_are_per_test():
    "A solution taking 0.6 s on each of 20 tests passes them all under the paper's 1 s per test; the sandbox's shared default budget (10 s) cuts it."
    pytest.importorskip("qrpo_nb.sandbox")
    from qrpo_nb.leetcode import leetcode_reward
    row = {"task_id": "slow", "entry_point": "Solution().f",
           "test": "def check(candidate):\n" + "".join(f"    assert candidate(n = {i}) == {i}\n" for i in range(20))}
    slow = "```python\nimport time\nclass Solution:\n    def f(self, n):\n        time.sleep(0.6)\n        return n\n```"
    assert leetcode_reward(slow, row) == 1.0
    assert leetcode_reward(slow, row, total_timeout_s=None, max_limit_hits=1) < 1.0

def _transcribed_add_import_prompt(prompt, pre_code):
    "A transcription of the authors' add_import_prompt (their LeetCode preprocessing script), the reference here."
    import re
    prompt = re.sub(r"### Format:\s+", "### Format:\n", prompt, count=1)
    prompt = re.sub(r"```python\s*\n", "```python\n# Additional imports.\n\n# End of additional imports.\n\n", prompt, count=1)
    prompt = re.sub(r"(### Format:\n.*?\n)", r"\1You have to add the missing imports to the starter code to run correctly.\n",
                    prompt, count=1, flags=re.DOTALL)
    return re.sub(r"(### Format:\s+)", rf"\1Your code will run after the following definitions and imports, which may or may not be needed.\n```python\n{pre_code}```\n\n",
                  prompt, count=1, flags=re.DOTALL)

def test_leetcode_paper_prompt_matches_the_authors_transcription():
    from qrpo_nb.leetcode import leetcode_prompt, PAPER_PREFIX
    rows = _all_leetcode_rows()
    for r in rows:
        assert leetcode_prompt(r) == [{"role": "user", "content": _transcribed_add_import_prompt(r["query"], PAPER_PREFIX)}], r["task_id"]
    ds = load_leetcode(FIX / "leetcode", "train", min_tests=0, verbose=False)     # the loader's default prompt is the same
    assert ds["prompt"] == [[{"role": "user", "content": _transcribed_add_import_prompt(r["query"], PAPER_PREFIX)}]
                            for r in _jsonl(FIX / "leetcode/train.jsonl")]


# the second policy's chat template and the second chat task (issue 17: Tables 13-15 at CPU size)
_HAND_TEMPLATES = {  # the two layouts written out by hand (Tulu 3's turns; Mistral-7B-Instruct-v0.2's [INST])
    "tulu": lambda q, a: f"<|bos|><|user|>\n{q}\n<|assistant|>\n{a}<|eos|>",
    "mistral": lambda q, a: f"<|bos|>[INST] {q} [/INST]{a}<|eos|>",
}

@pytest.mark.parametrize("task_name", ["cpu-chat", "cpu-feedback"])
def test_two_chat_templates_render_differently_and_round_trip(task_name):
    "Each SFT example of both chat tasks: ids decode to the hand-written layout of its template; the two templates give other ids."
    rows = list(get_task(task_name, n_sft=40, n_train=0, n_eval=0).sft_data())
    enc = {}
    for name, hand in _HAND_TEMPLATES.items():
        tok = get_task(task_name, chat_template=name).tokenizer()
        enc[name] = [encode_example(tok, r["prompt"], r["completion"], max_length=256) for r in rows]
        for r, e in zip(rows, enc[name]):
            assert tok.decode(e["input_ids"]) == hand(r["prompt"][0]["content"], r["completion"])
            assert tok.decode([i for i, m in zip(e["input_ids"], e["completion_mask"]) if m]) == r["completion"] + "<|eos|>"
            assert sum(e["completion_mask"]) <= 48                                # fits the presets' max_new_tokens
    for a, b in zip(enc["tulu"], enc["mistral"]):
        assert a["input_ids"] != b["input_ids"]
        comp = lambda e: [i for i, m in zip(e["input_ids"], e["completion_mask"]) if m]
        assert comp(a) == comp(b)                                                  # same answer, other prompt tokens
    with pytest.raises(ValueError, match="unknown chat_template"): get_task(task_name, chat_template="chatml").tokenizer()

_FB_ROW = dict(noun="dog", adjective="quiet", n_sentences=3, banned="loud")
@pytest.mark.parametrize("text,expected", [
    ("The dog is quiet. It sleeps. It eats.", 1.0 + 0.3 + 0.2 - 0.4 * (1 - 7 / 8)),          # 3 of 3 sentences; 8 words, 'it' twice
    ("A loud dog barks.", (1 - 2 / 3) + 0.3 - 0.6),                                          # 1 of 3, the banned word
    ("Quiet! Quiet? Quiet.", 1.0 + 0.2 - 0.4 * (1 - 1 / 3)),                                 # three one-word sentences
    ("Cats sleep. Birds sing. Fish swim. Cows eat. Dogs run.", (1 - 2 / 3) + 0.3 * 0 + 0.0),    # 5 for 3 ('dogs' is not 'dog')
    ("one two three four five six seven eight nine ten eleven twelve "
     "thirteen fourteen fifteen sixteen seventeen eighteen nineteen twenty twentyone twentytwo twentythree "
     "twentyfour twentyfive twentysix.", (1 - 2 / 3) - 0.02 * (26 - 24)),                    # one long sentence, 2 words over 8k
    ("", -0.5), ("!!!", -0.5),
])
def test_feedback_reward_hand_values(text, expected):
    from qrpo_nb.data import feedback_reward
    assert feedback_reward(_FB_ROW, text) == pytest.approx(expected, abs=1e-12)

def test_feedback_task_schema_pairs_and_other_ranking():
    "cpu-feedback: the preference schema, chosen >= rejected by its own reward, and another ranking than cpu_chat's."
    from qrpo_nb.data import TASKS, chat_reward, feedback_reward
    assert "cpu-feedback" in TASKS and "cpu_feedback" not in TASKS                  # one spelling
    task = get_task("cpu-feedback", n_sft=60, n_train=50, n_eval=20)
    pref, ev = task.preference_data(), task.eval_prompts()
    assert set(PREFERENCE_COLUMNS) <= set(pref.column_names) and split_counts(ev) == {"test": 10, "validation": 10}
    assert all(a >= b for a, b in zip(pref["chosen_reward"], pref["rejected_reward"]))
    assert task.reward(list(pref), list(pref["chosen"])) == pytest.approx(list(pref["chosen_reward"]))
    assert len(set(round(x, 6) for x in list(pref["chosen_reward"]) + list(pref["rejected_reward"]))) > 10
    # the same two answers to one request, ranked oppositely by the two rewards (length: cpu_chat pays, cpu-feedback charges)
    chat_row, fb_row = dict(topic="park", keywords=["green", "calm", "old"]), dict(noun="park", adjective="green", n_sentences=1, banned="loud")
    short = "The park is green, calm and old."
    long = short + " Children play there. Dogs run on the grass. Birds sing."
    assert chat_reward(chat_row, long) > chat_reward(chat_row, short) and feedback_reward(fb_row, long) < feedback_reward(fb_row, short)

def test_code_rewards_no_silent_fallback_and_one_task_spelling(caplog):
    "Issue 18: no 'auto' backend that silently falls back to the grammar check (an explicit 'grammar' is logged); TASKS spells each task once."
    from qrpo_nb.data import TASKS, CodeTask
    task = get_task("cpu-code", n_sft=0, n_train=2, n_eval=0)
    pref = task.preference_data()
    with pytest.raises(ValueError, match="unknown backend"): code_rewards(list(pref), list(pref["chosen"]), backend="auto")
    with caplog.at_level("WARNING", logger="qrpo_nb.data"):
        assert code_rewards(list(pref), list(pref["chosen"]), backend="grammar") == [1.0, 1.0]
    assert "without the sandbox" in caplog.text
    assert CodeTask().reward_backend == "sandbox"
    assert sorted(TASKS) == ["cpu-chat", "cpu-code", "cpu-feedback", "leetcode", "magpie-air", "ultrafeedback"]
    assert type(get_task("cpu_code", n_sft=1)) is type(get_task("cpu-code", n_sft=1))   # the underscore spelling read in get_task only

"""`qrpo-nb` through its command line, in subprocesses: the smoke preset end to end, kill-and-resume of a stage,
and the sweep (paper counts by hand, SLURM scripts, failed jobs re-run), a two-part preset (code + chat) end to end. Toy templates (written here) check the
orchestration with numbers computable by hand; the smoke test runs the real templates on the real components."""
import json, os, signal, subprocess, sys, time
from pathlib import Path

import nbformat
import pytest
import yaml

from qrpo_nb import fixtures
from qrpo_nb.cli import STAGE_ORDER, STAGES, load_preset, plan

REPO = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
       "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "MPLBACKEND": "Agg",
       "TOKENIZERS_PARALLELISM": "false"}


def cli(*args, timeout=600, env=None):
    return subprocess.run([sys.executable, "-m", "qrpo_nb.cli", *map(str, args)], cwd=REPO, env=env or ENV,
                          capture_output=True, text=True, timeout=timeout)


# A toy stage: result = value + sum of the upstream results + sum over `chunks` of c * value, each chunk written
# atomically and skipped when present (as the library's resumable stages do), `delay` seconds apart.
TOY_BODY = """
import json, os, pathlib, time
out = pathlib.Path(out_dir)
(out / "namespace.json").write_text(json.dumps([k for k in ("up", "total", "f", "c", "g") if k in globals()]))  # a previous stage's names
(out / "kernel.pid").write_text(str(os.getpid()))
if os.environ.get("TOY_FAIL") and runs and runs[0]["beta"] > fail_above:
    raise RuntimeError("planted failure")
up = sum(json.loads((pathlib.Path(d) / "result.json").read_text())["result"] for d in inputs.values())
total = 0
for c in range(chunks):
    f = out / f"chunk-{c}.json"
    if not f.exists():
        time.sleep(delay)
        tmp = out / f"chunk-{c}.tmp"; tmp.write_text(json.dumps(c * value)); os.replace(tmp, f)
        with open(out / "written.log", "a") as g: g.write(f"{c}\\n")
    total += json.loads(f.read_text())
(out / "result.json").write_text(json.dumps({"result": value + up + total}))
"""
# fixtures.toy_templates appends the touching of the files its stage declares (the stage is complete only when they exist)
def toy_templates(folder: Path) -> Path:
    "qrpo_nb.fixtures' toy templates with this file's richer body (chunks, delays, planted failures)."
    return fixtures.toy_templates(folder, parameters='out_dir = "."\ninputs = {}\nvalue = 1\nchunks = 0\ndelay = 0.0\nruns = []\n'
                                  'fail_above = 1.0\nsettings = []', body=TOY_BODY)


def toy_preset(path: Path, **overrides) -> Path:
    stages = {s: {"value": i + 1} for i, s in enumerate(STAGE_ORDER)}
    for k, v in overrides.items(): stages[k].update(v)
    path.write_text(yaml.safe_dump({"name": "toy", "stages": stages}))
    return path


def results(preset: Path, runs: Path) -> dict:
    return {r.stage.name: json.loads((r.out_dir / "result.json").read_text())["result"]
            for r in plan(load_preset(preset), runs, check_params=False)}


def wait_gone(pid: int, timeout=20.0):
    t = time.time()
    while time.time() - t < timeout:
        try: os.kill(pid, 0)
        except ProcessLookupError: return
        time.sleep(0.1)
    raise AssertionError(f"process {pid} still alive")


def test_kill_mid_stage_resumes_to_the_same_outputs(tmp_path):
    tpl = toy_templates(tmp_path / "tpl")
    pre = toy_preset(tmp_path / "toy.yaml", references={"chunks": 6, "delay": 0.4})
    common = ["--preset", pre, "--figures-dir", tmp_path / "figs", "--templates", tpl]
    # what an uninterrupted run gives, by hand (values 1..8; references adds 3 * (0+1+...+5) = 45 from its chunks)
    want = dict(prepare=1, sft=2 + 1, references=3 + 1 + 3 + 45, rewards=4 + 1 + 52, pairs=5 + 1 + 57,
                train=6 + 3 + 63, evaluate=7 + 1 + 3 + 57 + 72, report=8 + 140 + 72)
    # interrupted run: SIGKILL the CLI while `references` is half done
    runs = tmp_path / "b"
    proc = subprocess.Popen([sys.executable, "-m", "qrpo_nb.cli", "reproduce", "--runs-dir", str(runs),
                             *map(str, common)], cwd=REPO, env=ENV, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    ref_dir = next(r.out_dir for r in plan(load_preset(pre), runs, check_params=False) if r.stage.name == "references")
    t0 = time.time()
    while not (ref_dir / "chunk-2.json").exists():
        assert proc.poll() is None and time.time() - t0 < 120, "the run ended before it could be interrupted"
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL); proc.wait()
    wait_gone(int((ref_dir / "kernel.pid").read_text()))   # the orphaned kernel exits when its parent dies
    assert not (ref_dir / "_COMPLETE").exists()
    done_before = len((ref_dir / "written.log").read_text().split())
    assert 3 <= done_before < 6
    # resume: complete stages are skipped, `references` continues where it stopped
    r = cli("reproduce", "--runs-dir", runs, *common)
    assert r.returncode == 0, r.stderr
    assert "[prepare] complete, skipped" in r.stdout and "[sft] complete, skipped" in r.stdout
    assert "[references] resuming" in r.stdout
    assert sorted(map(int, (ref_dir / "written.log").read_text().split())) == list(range(6))  # each chunk once
    assert results(pre, runs) == want
    summary = json.loads((runs / "toy" / "summary.json").read_text())
    assert summary["status"]["prepare"] == "skipped" and summary["status"]["references"] == "ran"
    # --force --stages evaluate re-runs evaluate and what follows it (the report), nothing before
    r = cli("reproduce", "--runs-dir", runs, *common, "--force", "--stages", "evaluate")
    st = json.loads(r.stdout[r.stdout.index("{"):])["status"]
    assert st == {"evaluate": "ran", "report": "ran"}, st
    assert results(pre, runs) == want


def test_sweep_paper_counts_and_slurm(tmp_path):
    r = cli("sweep", "--preset", "paper", "--slurm", "--methods", "qrpo", "--runs-dir", tmp_path)
    assert r.returncode == 0, r.stderr
    # SPEC §5 by hand: 2 models x 2 chat datasets x 6 settings x 3 beta x 3 lr + 1 x 1 x 1 x 3 x 3 (LeetCode)
    assert f"{2 * 2 * 6 * 3 * 3 + 9} jobs" in r.stdout
    sub = (tmp_path / "paper" / "sweep" / "main" / "submit.sh").read_text()
    assert sub.count("sbatch ") == 225
    scripts = sorted((tmp_path / "paper" / "sweep" / "main").glob("*/job.sbatch"))
    assert len(scripts) == 225
    txt = scripts[0].read_text()
    assert "#SBATCH --nodes=2" in txt and "#SBATCH --gpus-per-node=4" in txt
    assert "accelerate launch --config_file" in txt and "ds-zero1.yaml" in txt
    assert "--num_processes $(( SLURM_NNODES * 4 ))" in txt and "-m qrpo_nb.cli run-job" in txt
    assert subprocess.run(["bash", "-n", str(scripts[0])]).returncode == 0
    job = json.loads((scripts[0].parent / "job.json").read_text())
    assert job["stages"] == ["train", "evaluate"] and job["params"]["train"]["runs"][0]["method"] == "qrpo"
    r = cli("sweep", "--preset", "paper", "--grid", "scaling", "--list", "--runs-dir", tmp_path)
    assert "90 jobs" in r.stdout   # Figure 3: 2 settings x 3 beta x 5 n x 3 lr


def test_sweep_failed_jobs_are_listed_and_rerun(tmp_path):
    tpl = toy_templates(tmp_path / "tpl")
    pre = yaml.safe_load(toy_preset(tmp_path / "t.yaml").read_text())
    pre["sweep"] = {"lrs": [1e-6], "data_root": str(tmp_path / "data"), "model_keys": [], "dataset_keys": [],
                    "tasks": {"code": {"models": ["m/Tiny"], "datasets": {"toy": {"n_ref": 2}}, "settings": ["s"]}},
                    "methods": {"qrpo": {"code": [0.01, 0.03]}}}
    pre["stages"]["train"]["fail_above"] = 0.02
    (tmp_path / "t.yaml").write_text(yaml.safe_dump(pre))
    args = ["sweep", "--preset", tmp_path / "t.yaml", "--local", "--runs-dir", tmp_path / "runs", "--templates", tpl]
    r = cli(*args, env={**ENV, "TOY_FAIL": "1"})
    assert r.returncode == 1
    assert "'complete': 1, 'failed': 1" in r.stdout and "qrpo_toy_tiny_s_n2_b0.03_lr1e-06" in r.stdout
    jobs = tmp_path / "runs" / "toy" / "sweep" / "main"
    ok = jobs / "qrpo_toy_tiny_s_n2_b0.01_lr1e-06"
    # `--local` ran the data stages first (values 1..5: prepare 1, sft 3, references 7, rewards 12, pairs 18), once
    # for the two jobs; train = 6 + sft 3 + pairs 18 = 27; evaluate = 7 + prepare 1 + sft 3 + rewards 12 + train 27
    assert json.loads((ok / "evaluate" / "result.json").read_text())["result"] == 7 + 1 + 3 + 12 + 27
    assert len(list((tmp_path / "data" / "tiny-toy" / "pairs").iterdir())) == 1
    assert "planted failure" in (jobs / "qrpo_toy_tiny_s_n2_b0.03_lr1e-06" / "_FAILED").read_text()
    mtime = (ok / "_COMPLETE").stat().st_mtime
    r = cli(*args)        # the cause is gone: the same command re-runs only the failed job
    assert r.returncode == 0, r.stdout + r.stderr
    assert "'complete': 2, 'failed': 0" in r.stdout
    assert (ok / "_COMPLETE").stat().st_mtime == mtime


def two_part_smoke(path: Path) -> Path:
    """The smoke preset as the code part of a two-part preset (its content verbatim), beside a chat part of the same
    size on the CPU chat task: the shape of the cpu preset that `make reproduce` runs."""
    smoke = load_preset("smoke")
    code = {"common": smoke["common"], "stages": {k: v for k, v in smoke["stages"].items() if k != "report"}}
    chat = yaml.safe_load(yaml.safe_dump(code))
    chat["common"]["task"] = "cpu-chat"
    chat["stages"]["pairs"] = {"settings": ["offline", "off-policy-best"], "n_pool": 4}
    chat["stages"]["train"].update(methods={"qrpo": {"chat": [0.03]}, "dpo": {"chat": [0.1]}}, settings=["offline", "off-policy-best"])
    path.write_text(yaml.safe_dump({"name": "smoke2", "stages": {"report": {}}, "runner": {"kernel": "shared", "workers": 2},
                                    "parts": {"code": code, "chat": chat}}, sort_keys=False))
    return path


def test_smoke_two_parts_end_to_end(tmp_path):
    """The real templates on the smoke preset's content as the code part of a two-part preset plus a chat part (the
    cpu preset's shape): each part runs its stages into runs/<preset>/<part>/, one report covers both tasks."""
    pre = two_part_smoke(tmp_path / "smoke2.yaml")
    runs, figs = tmp_path / "runs", tmp_path / "figs"
    r = cli("reproduce", "--preset", pre, "--runs-dir", runs, "--figures-dir", figs)
    pl = {p.label: p for p in plan(load_preset(pre), runs, figs)}
    labels = [f"{p}/{s}" for p in ("code", "chat") for s in STAGE_ORDER[:-1]] + ["report"]
    assert list(pl) == labels
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    # issue 12: every key the planner passes is a parameter of its template: papermill has nothing to warn about
    assert "Passed unknown parameter" not in r.stdout + r.stderr, [l for l in r.stderr.splitlines() if "unknown parameter" in l][:5]
    for lab in labels:   # every executed notebook is kept in its stage folder, under its part
        assert pl[lab].complete and pl[lab].notebook_out.exists(), lab
        assert pl[lab].out_dir.relative_to(runs.resolve() / "smoke2").parts[0] == lab.split("/")[0]
    # the code part is the smoke preset verbatim: the same stage keys as the single-part smoke run
    single = {p.label: p.key for p in plan(load_preset("smoke"), runs)}
    assert all(pl[f"code/{s}"].key == single[s] for s in STAGE_ORDER[:-1])
    summary = json.loads((runs / "smoke2" / "summary.json").read_text())
    assert set(summary["status"]) == set(labels) and set(summary["cpu_seconds"]) == set(labels)
    report = (figs / "REPORT.md").read_text()
    for stem in ("table2", "table16", "table3", "table12"):   # the code task's and the chat task's tables
        assert (figs / f"{stem}.md").exists(), stem
    assert (figs / "figure1.png").exists() and "stands for the paper's Table 12" in (figs / "table12.md").read_text()
    assert "not run: no judge configured" in (figs / "table3.md").read_text()
    assert report.count("no counterpart at this scale") == 3    # Tables 13-15: one chat model x dataset here
    # a second call finds every part's stages complete: nothing runs; --stages selects in every part
    r = cli("reproduce", "--preset", pre, "--runs-dir", runs, "--figures-dir", figs, "--stages", "evaluate")
    st = json.loads(r.stdout[r.stdout.index("{"):])["status"]
    assert st == {"code/evaluate": "skipped", "chat/evaluate": "skipped"}, st


@pytest.mark.slow
def test_smoke_preset_end_to_end(tmp_path):
    """The real templates on the single-part smoke preset (slow: `make test` runs its content as the code part of
    `test_smoke_two_parts_end_to_end`). Every stage must complete."""
    runs, figs = tmp_path / "runs", tmp_path / "figs"
    r = cli("reproduce", "--preset", "smoke", "--runs-dir", runs, "--figures-dir", figs)
    pl = {p.stage.name: p for p in plan(load_preset("smoke"), runs, figs)}
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert any(figs.iterdir()), "the report wrote nothing into the figures folder"
    assert (figs / "REPORT.md").exists() and (figs / "table2.md").exists()   # the code task's Table 2
    for s in STAGE_ORDER:   # every stage completed and its executed notebook is kept in its stage folder
        assert pl[s].complete and pl[s].notebook_out.exists(), s
    # a second call finds the stages complete: nothing runs
    r = cli("reproduce", "--preset", "smoke", "--runs-dir", runs, "--figures-dir", figs, "--stages", "evaluate")
    st = json.loads(r.stdout[r.stdout.index("{"):])["status"]
    assert st == {"evaluate": "skipped"}, st


SIX = ["offline", "off-policy-best", "off-policy-random", "sft-offline", "sft-off-policy-best", "sft-off-policy-random"]


def test_each_setting_reads_its_own_pi_ref(tmp_path):
    """Paper Table 8: the no-SFT settings train from the initial model, their `sft-` twins from the model after SFT on
    chosen, and each reads the reference pools, rewards and pairs of its own π_ref (issue 12, item 1: the jobs of
    `offline` and `sft-offline` used to read the same SFT model and pools)."""
    from qrpo_nb.cli import expand_sweep, write_jobs, sweep_blocks
    paper = load_preset("paper")
    pick = {j["setting"]: j for j in expand_sweep(paper, methods=["dpo"])
            if j["dataset"] == "magpie-air" and "tulu" in j["model"].lower() and j["beta"] == 0.01 and j["lr"] == 1e-7}
    assert sorted(pick) == sorted(SIX)
    dirs = write_jobs(paper, [pick[s] for s in SIX], tmp_path)
    spec = {s: json.loads((d / "job.json").read_text())["params"] for s, d in zip(SIX, dirs)}
    block = {r.label: r for r in plan(sweep_blocks(paper)[("chat", pick["offline"]["model"], "magpie-air")], tmp_path / "x")}
    for base in SIX[:3]:
        a, b = spec[base], spec["sft-" + base]
        for stage, up in (("train", "sft"), ("train", "pairs"), ("evaluate", "sft"), ("evaluate", "rewards")):
            assert a[stage]["inputs"][up] != b[stage]["inputs"][up], (base, stage, up)
        assert a["evaluate"]["inputs"]["prepare"] == b["evaluate"]["inputs"]["prepare"]   # one prepared dataset
        # the no-SFT job's π_ref is the stage that saves the initial model unchanged; the other's trains on chosen
        sft_a = next(r for r in block.values() if r.stage.name == "sft" and r.out_dir.name == Path(a["train"]["inputs"]["sft"]).name)
        sft_b = next(r for r in block.values() if r.stage.name == "sft" and r.out_dir.name == Path(b["train"]["inputs"]["sft"]).name)
        assert (sft_a.params["enabled"], sft_b.params["enabled"]) == (False, True)
        assert sft_a.params["model"] == pick[base]["model"]
    # three settings per π_ref share its data: two SFT folders, two pair folders in all
    assert len({spec[s]["train"]["inputs"]["sft"] for s in SIX}) == 2
    assert len({spec[s]["train"]["inputs"]["pairs"] for s in SIX}) == 2


def test_preset_typo_fails_at_plan_time(tmp_path):
    """A preset key that is not a parameter of its template fails before anything runs, naming the key, the stage
    and the template (papermill alone only warns and runs the default)."""
    smoke = load_preset("smoke")
    smoke["stages"]["references"]["temprature"] = 0.7
    (tmp_path / "typo.yaml").write_text(yaml.safe_dump(smoke))
    r = cli("reproduce", "--preset", tmp_path / "typo.yaml", "--runs-dir", tmp_path / "runs", timeout=120)
    assert r.returncode == 1
    assert "key(s) ['temprature'] of stage 'references' are not parameters of its template" in r.stderr, r.stderr
    assert "03_references.ipynb" in r.stderr
    assert not (tmp_path / "runs").exists()   # nothing ran


def test_stage_without_its_outputs_is_not_complete(tmp_path):
    "A stage is complete only when its marker and every declared output exist; a run that lacks one fails."
    tpl = toy_templates(tmp_path / "tpl")
    nb = nbformat.read(tpl / STAGES["sft"].notebook, as_version=4)
    nb.cells[1].source = TOY_BODY   # result.json only: it forgets its declared outputs
    nbformat.write(nb, tpl / STAGES["sft"].notebook)
    pre = toy_preset(tmp_path / "toy.yaml")
    r = cli("reproduce", "--preset", pre, "--runs-dir", tmp_path / "runs", "--figures-dir", tmp_path / "figs",
            "--templates", tpl, "--stages", "sft", timeout=300)
    assert r.returncode == 1
    assert "stage 'sft' ran but did not write its declared output(s)" in r.stderr and "policy.json" in r.stderr, r.stderr
    run = next(x for x in plan(load_preset(pre), tmp_path / "runs", check_params=False) if x.stage.name == "sft")
    assert not run.complete and (run.out_dir / "_FAILED").exists() and not run.marker.exists()
    prep = next(x for x in plan(load_preset(pre), tmp_path / "runs", check_params=False) if x.stage.name == "prepare")
    assert prep.complete


def _toy_sweep(tmp_path, betas, runner=None):
    pre = yaml.safe_load(toy_preset(tmp_path / "t.yaml").read_text())
    pre["sweep"] = {"lrs": [1e-6], "data_root": str(tmp_path / "data"), "model_keys": [], "dataset_keys": [],
                    "tasks": {"code": {"models": ["m/Tiny"], "datasets": {"toy": {"n_ref": 2}}, "settings": ["s"]}},
                    "methods": {"qrpo": {"code": betas}}}
    pre["stages"]["train"]["fail_above"] = 0.02
    if runner: pre["runner"] = runner
    (tmp_path / "t.yaml").write_text(yaml.safe_dump(pre))
    return tmp_path / "t.yaml"


def test_shared_kernel_isolates_stages_and_survives_a_failure(tmp_path):
    """`runner: {kernel: shared}`: every stage and job of `sweep --local` runs in one kernel process, no name a stage
    defined is visible to the next, and a failing job leaves `_FAILED` while the job after it completes with the
    numbers a fresh kernel gives (by hand, as in test_sweep_failed_jobs_are_listed_and_rerun)."""
    tpl = toy_templates(tmp_path / "tpl")
    pre = _toy_sweep(tmp_path, [0.01, 0.03, 0.015], {"kernel": "shared"})
    r = cli("sweep", "--preset", pre, "--local", "--runs-dir", tmp_path / "runs", "--templates", tpl,
            env={**ENV, "TOY_FAIL": "1"}, timeout=300)
    assert r.returncode == 1 and "'complete': 2, 'failed': 1" in r.stdout, r.stdout + r.stderr
    jobs = tmp_path / "runs" / "toy" / "sweep" / "main"
    bad, after = jobs / "qrpo_toy_tiny_s_n2_b0.03_lr1e-06", jobs / "qrpo_toy_tiny_s_n2_b0.015_lr1e-06"
    assert "planted failure" in (bad / "_FAILED").read_text() and not (bad / "_COMPLETE").exists()
    assert (after / "_COMPLETE").exists()
    assert json.loads((after / "evaluate" / "result.json").read_text())["result"] == 7 + 1 + 3 + 12 + 27
    outs = [d for d in (tmp_path / "data").rglob("kernel.pid")] + [d for d in jobs.rglob("kernel.pid")]
    assert len(outs) == 5 + 3 * 2 - 1   # 5 data stages, 2 stages x 3 jobs, the failed job's evaluate never ran
    assert len({p.read_text() for p in outs}) == 1, "more than one kernel ran the stages"
    assert all(json.loads((p.parent / "namespace.json").read_text()) == [] for p in outs)   # a clean namespace each time
    assert "without encryption" not in r.stderr


def test_terminal_shows_progress_not_kernel_noise(tmp_path):
    """Issue 16 part 5: a fresh kernel per stage printed 'Kernel is running over TCP without encryption' once per
    stage; the log names each stage with its position (stage i of n) and the time so far."""
    tpl = toy_templates(tmp_path / "tpl")
    r = cli("reproduce", "--preset", toy_preset(tmp_path / "toy.yaml"), "--runs-dir", tmp_path / "runs", "--figures-dir",
            tmp_path / "figs", "--templates", tpl, timeout=300)
    assert r.returncode == 0, r.stderr
    assert "without encryption" not in r.stderr + r.stdout and "KeyboardInterrupt" not in r.stderr + r.stdout, r.stderr
    for i, s in enumerate(STAGE_ORDER, 1): assert f"[{s}] running" in r.stdout and f"(stage {i} of 8)" in r.stdout, r.stdout
    assert "s so far)" in r.stdout


def test_unknown_method_fails_at_plan_time(tmp_path):
    "Issue 16 part 3: an unknown method failed when the train stage started, after every upstream stage; now at plan time."
    smoke = load_preset("smoke")
    smoke["stages"]["train"]["methods"]["qrpoo"] = smoke["stages"]["train"]["methods"].pop("qrpo")
    (tmp_path / "m.yaml").write_text(yaml.safe_dump(smoke))
    r = cli("reproduce", "--preset", tmp_path / "m.yaml", "--runs-dir", tmp_path / "runs", timeout=120)
    assert r.returncode == 1
    assert "stages.train.methods: unknown method 'qrpoo' (did you mean 'qrpo'?)" in r.stderr, r.stderr
    assert not (tmp_path / "runs").exists()   # nothing ran
    paper = load_preset("paper"); paper["sweep"]["methods"]["simpoo"] = paper["sweep"]["methods"].pop("simpo")
    (tmp_path / "p.yaml").write_text(yaml.safe_dump(paper))
    r = cli("sweep", "--preset", tmp_path / "p.yaml", "--list", "--runs-dir", tmp_path / "runs", timeout=120)
    assert r.returncode == 1 and "sweep.methods: unknown method 'simpoo'" in r.stderr, r.stderr


def test_yaml_number_spellings_give_one_stage_key(tmp_path):
    """PyYAML reads `1e-3` as a string and `1.0e-3` as a float: before, the same run had two stage keys (and the
    template got a string). Numbers are normalised before hashing; the template gets the float."""
    assert yaml.safe_load("x: 1e-3")["x"] == "1e-3"   # the cause, independent of our code
    keys, params = [], []
    for lr in ("1e-3", "1.0e-3", "0.001", "1E-3"):
        pre = load_preset("smoke")
        pre["stages"]["sft"]["lr"] = yaml.safe_load(f"lr: {lr}")["lr"]   # as PyYAML reads the spelling
        (tmp_path / "n.yaml").write_text(yaml.safe_dump(pre))
        pl = {x.label: x for x in plan(load_preset(tmp_path / "n.yaml"), tmp_path / "runs")}
        keys.append({k: v.key for k, v in pl.items()}); params.append(pl["sft"].params["lr"])
    assert all(k == keys[0] for k in keys) and params == [1e-3] * 4


def test_sweep_list_is_a_dry_run(tmp_path):
    "Issue 16 part 5: `sweep --list` wrote every job folder (900 for the paper's four methods); it writes nothing now."
    r = cli("sweep", "--preset", "paper", "--list", "--runs-dir", tmp_path / "runs", timeout=120)
    assert r.returncode == 0, r.stderr
    assert "900 jobs" in r.stdout and "'pending': 900" in r.stdout
    assert not (tmp_path / "runs").exists()


def test_job_names_keep_fields_apart():
    "Issue 16 part 5: the Tulu SFT model in the sft-offline setting was named '...-8b-sft-sft-offline-...'."
    from qrpo_nb.cli import expand_sweep
    jobs = expand_sweep(load_preset("paper"))
    j = next(j for j in jobs if j["setting"] == "sft-offline" and j["model"].endswith("Tulu-3-8B-SFT"))
    assert "sft-sft" not in j["id"], j["id"]
    assert j["id"] == f"{j['method']}_{j['dataset']}_llama-3.1-tulu-3-8b-sft_sft-offline_n{j['n_ref']}_b{j['beta']:g}_lr{j['lr']:g}"
    assert not any("sft-sft" in x["id"] for x in jobs) and len({x["id"] for x in jobs}) == len(jobs) == 900


def test_cli_notebook_finds_the_repository_from_anywhere(tmp_path):
    """Issue 16 part 4: 12_cli's (now 12_pipeline's) doc processing took the repository root from the working directory (Path.cwd().parent),
    so run from another folder it found no presets. Its path cells, run as a notebook runs them (no __file__) from an
    unrelated folder, find the checkout's presets and templates."""
    nb = nbformat.read(REPO / "nbs" / "12_pipeline.ipynb", as_version=4)
    cells = [c.source for c in nb.cells if c.cell_type == "code" and c.source.startswith("#| export")]
    code = "\n".join(cells[:2]) + "\nprint(presets_dir()); print(templates_dir())"
    r = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=ENV, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == [str(REPO / "presets"), str(REPO / "nbs" / "experiments")]


def test_every_template_names_its_kernel():
    "papermill (and nbconvert --execute) say `No kernel name found` for a notebook without a kernelspec."
    from qrpo_nb.cli import templates_dir
    for st in STAGES.values():
        ks = nbformat.read(templates_dir() / st.notebook, as_version=4).metadata.get("kernelspec") or {}
        assert ks.get("name") == "python3" and ks.get("language") == "python", (st.notebook, ks)


def _keys(preset):
    from qrpo_nb.cli import sweep_as_parts
    pr = sweep_as_parts(preset) if preset.get("reproduce") == "sweep" else preset
    return {r.label: (r.key, sorted(r.params["inputs"])) for r in plan(pr, "/tmp/qrpo-test-plan", "/tmp/qrpo-test-figs")}


@pytest.mark.parametrize("name", ["cpu", "paper", "paper-mini", "smoke"])
def test_optional_stage_leaves_every_other_key_unchanged(name, monkeypatch):
    """Issue 14: the optional `qsharp` stage changes nothing where it is not listed. (1) A shipped preset plans the same
    labels, keys and inputs as a planner that knows no optional stage (OPTIONAL_STAGES emptied, `qsharp` removed from
    STAGES); (2) listing `qsharp` in one part adds that part's qsharp run(s) and changes the report's key only."""
    import qrpo_nb.pipeline as P
    pre = load_preset(name)
    now = _keys(pre)
    assert not any("qsharp" in lab for lab in now)
    with monkeypatch.context() as m:
        m.setattr(P, "OPTIONAL_STAGES", ())
        m.setattr(P, "STAGES", {k: v for k, v in P.STAGES.items() if k != "qsharp"})
        assert _keys(pre) == now
    if pre.get("parts"): pre["parts"][next(iter(pre["parts"]))]["stages"]["qsharp"] = {}
    elif pre.get("reproduce") == "sweep": pre["stages"]["qsharp"] = {}   # every block of the sweep lists it
    else: pre["stages"]["qsharp"] = {}
    more = _keys(pre)
    added = [lab for lab in more if lab not in now]
    assert added and all(lab.split("/")[-1].split("@")[0] == "qsharp" for lab in added), added
    assert {k: v for k, v in more.items() if k in now and k != "report"} == {k: v for k, v in now.items() if k != "report"}
    assert more["report"][0] != now["report"][0] and set(more["report"][1]) == set(now["report"][1]) | set(added)


SEEN_BODY = """
import json, os, pathlib, torch
keys = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "ATEN_CPU_CAPABILITY", "QRPO_PIN_TEST")
pathlib.Path(out_dir, "seen.json").write_text(json.dumps({"env": {k: os.environ.get(k) for k in keys}, "pid": os.getpid(),
    "capability": torch.backends.cpu.get_cpu_capability(), "threads": torch.get_num_threads()}))
"""


@pytest.mark.parametrize("runner", [{}, {"kernel": "shared"}, {"kernel": "shared", "workers": 2}],
                         ids=["fresh", "shared", "shared-2-workers"])
def test_runner_pins_reach_every_kernel(tmp_path, monkeypatch, runner):
    """Issue 17: `runner: {env, threads}` is in each kernel's environment before it imports torch (fresh, shared, or
    one shared kernel per worker): torch's kernel set is the pinned one and its thread count is `threads`; a variable
    the user set wins and is logged; each stage's _COMPLETE and summary.json record the values."""
    import torch
    from qrpo_nb.cli import reproduce
    if torch.backends.cpu.get_cpu_capability() not in ("AVX2", "AVX512"):
        pytest.skip("needs an x86 CPU with AVX2 (ATEN_CPU_CAPABILITY=avx2 is then honoured)")
    for k in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "ATEN_CPU_CAPABILITY", "QRPO_PIN_TEST"): monkeypatch.delenv(k, raising=False)
    monkeypatch.setenv("QRPO_PIN_TEST", "mine")   # the user's own: it wins over runner.env
    tpl = fixtures.toy_templates(tmp_path / "tpl", body=SEEN_BODY)   # every stage writes what its kernel sees
    pre = {"name": "pins", "stages": {"report": {}}, "parts": {p: {"stages": {"prepare": {}}} for p in ("a", "b")},
           "runner": {**runner, "env": {"ATEN_CPU_CAPABILITY": "avx2", "QRPO_PIN_TEST": "x"}, "threads": 1}}
    lines = []
    res = reproduce(pre, ["prepare"], runs_dir=tmp_path / "runs", figures_dir=tmp_path / "figs", templates=tpl, log=lines.append)
    assert res["status"] == {"a/prepare": "ran", "b/prepare": "ran"}
    want = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "ATEN_CPU_CAPABILITY": "avx2", "QRPO_PIN_TEST": "mine"}
    runs = [r for r in plan(pre, tmp_path / "runs", templates=tpl) if r.stage.name == "prepare"]
    seen = [json.loads((r.out_dir / "seen.json").read_text()) for r in runs]
    for s in seen: assert (s["env"], s["capability"], s["threads"]) == (want, "AVX2", 1), s
    assert len({s["pid"] for s in seen}) == (2 if runner.get("kernel") != "shared" or runner.get("workers") else 1)
    for r in runs:   # the run record says which kernel set the stage ran on
        env = json.loads(r.marker.read_text())["env"]
        assert {k: env.get(k) for k in want} == want, env
    log = next(l for l in lines if l.startswith("[runner]"))
    assert "ATEN_CPU_CAPABILITY=avx2 (runner.env)" in log and "OMP_NUM_THREADS=1 (runner.threads)" in log
    assert "MKL_NUM_THREADS=1 (runner.threads)" in log and "QRPO_PIN_TEST=mine (your environment (the preset's runner.env: x))" in log, log
    summary = json.loads((tmp_path / "runs" / "pins" / "summary.json").read_text())
    assert summary["env"]["ATEN_CPU_CAPABILITY"] == {"value": "avx2", "source": "runner.env"}
    assert "ATEN_CPU_CAPABILITY" not in os.environ and "OMP_NUM_THREADS" not in os.environ and os.environ["QRPO_PIN_TEST"] == "mine"   # restored

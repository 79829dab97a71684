"""Issue 16 part 1: the wheel runs the pipeline. A wheel built from this checkout carries the presets, the stage
templates, the accelerate configs and the paper's numbers; installed outside the checkout (offline: `pip install
--no-index --no-deps --target`, the dependencies from this venv's site-packages) it runs the smoke preset from an
unrelated folder, with its runs and figures in that folder, and `sweep --slurm` points at files that exist."""
import os, shutil, subprocess, sys, zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SOURCES = ["setup.py", "settings.ini", "pyproject.toml", "README.md", "qrpo_nb", "presets", "nbs/experiments", "configs"]


def _copy_sources(dst: Path) -> Path:
    "The files a build reads, copied (so the build writes nothing into the checkout)."
    for s in SOURCES:
        src, out = REPO / s, dst / s
        if src.is_dir(): shutil.copytree(src, out, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else: out.parent.mkdir(parents=True, exist_ok=True); shutil.copy2(src, out)
    return dst


@pytest.fixture(scope="module")
def wheel_site(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("wheel")
    src = _copy_sources(tmp / "src")
    r = subprocess.run([sys.executable, "-m", "pip", "wheel", str(src), "--no-deps", "--no-build-isolation", "--no-index",
                        "-w", str(tmp / "dist")], capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    whl = next((tmp / "dist").glob("qrpo_nb-*.whl"))
    site = tmp / "site"
    r = subprocess.run([sys.executable, "-m", "pip", "install", "--no-index", "--no-deps", "--target", str(site), str(whl)],
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    return whl, site


def _env(site: Path) -> dict:
    return {**os.environ, "PYTHONPATH": str(site), "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1",
            "TRANSFORMERS_OFFLINE": "1", "MPLBACKEND": "Agg", "TOKENIZERS_PARALLELISM": "false", "OMP_NUM_THREADS": "1"}


def test_wheel_ships_what_the_pipeline_reads(wheel_site):
    "Before: a wheel held no presets, templates or accelerate configs (setup.py looked for them inside qrpo_nb/)."
    whl, site = wheel_site
    names = set(zipfile.ZipFile(whl).namelist())
    want = [f"qrpo_nb/_data/presets/{p.name}" for p in (REPO / "presets").glob("*.yaml")]
    want += [f"qrpo_nb/_data/experiments/{p.name}" for p in (REPO / "nbs" / "experiments").glob("*.ipynb")]
    want += [f"qrpo_nb/_data/accelerate/{p.name}" for p in (REPO / "configs" / "accelerate").glob("*.yaml")]
    want += ["qrpo_nb/assets/published_results.csv", "qrpo_nb/cli.py", "qrpo_nb/pipeline.py", "qrpo_nb/sweep.py"]
    assert len(want) > 15 and not [w for w in want if w not in names], [w for w in want if w not in names]
    # resolved from the package, never the working directory, and the installed copy is the one imported
    code = ("import qrpo_nb, qrpo_nb.cli as c; print(qrpo_nb.__file__); print(c.in_checkout()); print(c.presets_dir()); "
            "print(c.templates_dir()); print(c.accelerate_dir()); print(c.default_figures_dir())")
    r = subprocess.run([sys.executable, "-c", code], cwd=site.parent, env=_env(site), capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    f, chk, pre, tpl, acc, figs = r.stdout.split()
    assert Path(f).is_relative_to(site) and chk == "False"
    assert Path(pre) == site / "qrpo_nb" / "_data" / "presets" and (Path(pre) / "smoke.yaml").exists()
    assert Path(tpl) == site / "qrpo_nb" / "_data" / "experiments" and (Path(acc) / "ds-zero1.yaml").exists()
    assert Path(figs) == site.parent / "paper_figures"
    r = subprocess.run([sys.executable, "-m", "qrpo_nb.cli", "--help"], cwd=site.parent, env=_env(site), capture_output=True, text=True)
    assert "QRPO_NB_PRESETS" in r.stdout and "QRPO_NB_FIGURES" in r.stdout


def test_wheel_sweep_slurm_points_at_existing_files(wheel_site, tmp_path):
    "Before: the scripts said `cd site-packages` and a --config_file that did not exist."
    _, site = wheel_site
    r = subprocess.run([sys.executable, "-m", "qrpo_nb.cli", "sweep", "--preset", "paper", "--slurm", "--methods", "qrpo"],
                       cwd=tmp_path, env=_env(site), capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    txt = next((tmp_path / "runs" / "paper" / "sweep" / "main").glob("*/job.sbatch")).read_text()
    assert f"cd {tmp_path.resolve()}" in txt
    cfg = txt.split("--config_file ")[1].split()[0]
    assert Path(cfg).exists() and Path(cfg).is_relative_to(site), cfg


def test_wheel_runs_the_smoke_preset_from_another_folder(wheel_site, tmp_path):
    "Before: `reproduce --preset smoke` from a pip install said `available presets: []`."
    _, site = wheel_site
    r = subprocess.run([sys.executable, "-m", "qrpo_nb.cli", "reproduce", "--preset", "smoke"], cwd=tmp_path,
                       env=_env(site), capture_output=True, text=True, timeout=1800)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert (tmp_path / "runs" / "smoke" / "summary.json").exists() and (tmp_path / "paper_figures" / "REPORT.md").exists()
    assert not (site / "paper_figures").exists()

"""Offline documentation and kept notebook outputs, with nothing but nbdev's processors, nbclient and nbconvert.

    python docs/build_docs.py html [NOTEBOOK ...] [--out _docs]   # every notebook under nbs/ when none is named
    python docs/build_docs.py outputs NOTEBOOK [--slow]           # refresh the outputs a notebook keeps
    python docs/build_docs.py metadata NOTEBOOK ...               # kernelspec + skip-execution on slow/gpu cells
    python docs/build_docs.py gallery [--figures paper_figures] [--paper ../shared/paper] [--out _docs]
                                                                  # each regenerated item beside the paper's image

`html` renders each notebook as nbdev's docs would show it (nbdev's own processors: `show_doc` for every export,
exported code hidden, directives removed) but writes a self-contained HTML page with nbconvert instead of calling
Quarto (`nbdev_docs` needs Quarto, which cannot be installed offline, and would `pip install` it into whatever Python
comes first on PATH). The pages show the outputs stored in the notebooks, as nbdev's docs do: the figures of the
theory, lab and reporting notebooks are kept outputs (cells tagged `keep-output`); images are embedded as data URIs.
Each notebook is processed in its own subprocess with its own folder as working directory, as `nbdev_test` runs it.

`outputs` executes a notebook with nbclient (its folder as working directory, `MPLBACKEND=Agg`, hubs offline, one
thread; cells tagged `skip-execution` skipped unless `--slow`), keeps the outputs of the cells tagged `keep-output`
(displays and results only: no stderr, no progress bars) and clears every other cell, then runs `nbdev_clean`.
The figures are shown by `qrpo_nb.theory.show_figure` (PNG without metadata), so a rerun stores the same bytes.

`gallery` writes `gallery.html`: every item of the paper that has an image (Figures 1-11, Tables 1-4) with its one-line
note, our regenerated file from `paper_figures/` (tables: their Markdown rendered) beside the paper's image from
`../shared/paper/`. The images are copied into the built site (`gallery/ours/`, `gallery/paper/`), never into the
repository's committed files. The full `html` build writes it too and links it from `contents.html`.
"""
from __future__ import annotations
import argparse, json, os, re, subprocess, sys, time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
NBS = ROOT / "nbs"
PAPER = ROOT.parent / "shared" / "paper"   # the paper's images (not part of the repository)
KEEP, SKIP = "keep-output", "skip-execution"
ENV = {"HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "MPLBACKEND": "Agg",
       "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false", "PYDEVD_DISABLE_FILE_VALIDATION": "1"}


def notebooks(names=()) -> list[Path]:
    "The named notebooks, or every notebook under nbs/ (experiment templates included), checkpoints excluded."
    if names: return [Path(n).resolve() for n in names]
    return sorted(p for p in NBS.rglob("*.ipynb") if not any(part.startswith((".", "_")) for part in p.relative_to(NBS).parts))


# ---------------------------------------------------------------------------------------------------- html
_directive = re.compile(r"^\s*#\|\s*(.*)$")
_quarto_attrs = re.compile(r"\{target=\"_blank\"[^}]*\}")
# MathJax 2 from the Debian package `libjs-mathjax` when installed (offline), else nbconvert's CDN default.
MATHJAX = Path("/usr/share/javascript/mathjax/MathJax.js")

def _to_html_ready(nb: dict) -> dict:
    "After nbdev's processors: frontmatter -> a title cell, quarto directives -> nbconvert tags, .ipynb links -> .html."
    cells = []
    for c in nb["cells"]:
        src = c.get("source", "")
        src = "".join(src) if isinstance(src, list) else src
        if c["cell_type"] == "raw" and src.startswith("---"):   # nbdev's frontmatter: title and description
            import yaml
            fm = yaml.safe_load(src.strip().strip("-")) or {}
            title = fm.get("title") or ""
            if title or fm.get("description"):
                cells.append({"cell_type": "markdown", "metadata": {}, "source":
                              f"# {title}\n\n> {fm.get('description', '')}".rstrip("> \n")})
            continue
        c = dict(c, metadata=dict(c.get("metadata", {})))
        tags = list(c["metadata"].get("tags", []))
        if c["cell_type"] == "code":
            lines, dirs = [], {}
            for line in src.splitlines():
                m = _directive.match(line)
                if m and not lines:
                    k, _, v = m.group(1).partition(":"); dirs[k.strip()] = v.strip()
                else: lines.append(line)
            src = "\n".join(lines).strip("\n")
            if dirs.get("echo") == "false" or not src: tags.append("remove_input")
            if not src and not c.get("outputs"): continue
            c["outputs"] = [o for o in c.get("outputs", []) if not (o.get("output_type") == "stream" and o.get("name") == "stderr")]
            for o in c["outputs"]:   # show_doc's Quarto link attributes ({target="_blank" ...}) mean nothing to nbconvert
                md = o.get("data", {}).get("text/markdown")
                if md is not None: o["data"]["text/markdown"] = _quarto_attrs.sub("", "".join(md))
        elif c["cell_type"] == "markdown":
            src = re.sub(r"\]\(((?!https?:)[^)\s]+)\.ipynb(#[^)]*)?\)", lambda m: f"]({m.group(1)}.html{m.group(2) or ''})", src)
        c["source"], c["metadata"]["tags"] = src, tags
        cells.append(c)
    nb = dict(nb, cells=cells)
    return nb


def _procs():
    "nbdev's doc processors, except that a test cell mixing imports with other code runs its imports only."
    import ast
    from nbdev.processors import FilterDefaults, exec_show_docs
    class exec_imports_only(exec_show_docs):
        # nbdev runs every cell holding an import (to have the names show_doc needs) and fails when such a cell's
        # other code needs a cell it did not run (nbdev's FAQ: split the imports off); here the imports alone run.
        def __call__(self, cell):
            d = getattr(cell, "directives_", {}) or {}
            if cell.cell_type == "code" and cell.source and not (d.keys() & {"export", "exports", "exporti", "exec_doc"}):
                try: body = ast.parse(cell.source).body
                except SyntaxError: body = []
                imps = [n for n in body if isinstance(n, (ast.Import, ast.ImportFrom))]
                if imps and len(imps) < len(body) and hasattr(self, "k"):
                    print(f"note: cell {getattr(cell, 'idx_', '?')} mixes imports with other code (nbdev_docs would run all "
                          "of it): only its imports run here", file=sys.stderr)
                    self.k.run_cell("\n".join(ast.unparse(n) for n in imps))
                    if self.k.exc: raise Exception(f"Error in the imports of cell {cell.idx_}:\n{cell.source}") from self.k.exc
                    return
            return super().__call__(cell)
    class Procs(FilterDefaults):
        def base_procs(self): return [exec_imports_only if p is exec_show_docs else p for p in super().base_procs()]
    return Procs()


def render_one(src: Path, dst: Path) -> Path:
    "Process `src` with nbdev's doc processors (its folder as cwd) and write it as one self-contained HTML page."
    import nbformat
    from execnb.nbio import read_nb
    from nbconvert import HTMLExporter
    from nbconvert.preprocessors import TagRemovePreprocessor
    os.chdir(src.parent)
    nb = read_nb(src)
    os.environ["IN_TEST"] = "1"          # as nbdev's own doc build: cells that check it behave as under nbdev_test
    _procs()(nb)
    nb = json.loads(json.dumps(nb, default=lambda o: None))   # execnb's AttrDicts, without the processors' attributes
    for c in nb["cells"]:
        for k in [k for k in c if k.endswith("_")]: del c[k]
    nb = nbformat.reads(json.dumps(_to_html_ready(nb)), as_version=4)   # rejoins multi-line strings
    nb.setdefault("metadata", {})["kernelspec"] = nb["metadata"].get("kernelspec") or {"name": "python3", "display_name": "python3", "language": "python"}
    kw = {"mathjax_url": f"file://{MATHJAX}?config=TeX-AMS_CHTML-full,Safe"} if MATHJAX.exists() else {}
    exporter = HTMLExporter(embed_images=True, exclude_input_prompt=True, exclude_output_prompt=True, **kw)
    exporter.register_preprocessor(TagRemovePreprocessor(remove_input_tags={"remove_input"}, enabled=True), enabled=True)
    title = next((c.source[2:].splitlines()[0] for c in nb.cells if c.cell_type == "markdown" and c.source.startswith("# ")), src.stem)
    # index.ipynb is the source of README.md: its image paths are relative to the repository root
    base = ROOT if src == NBS / "index.ipynb" else src.parent
    body, _ = exporter.from_notebook_node(nb, resources={"metadata": {"name": title, "path": str(base)}})
    dst.parent.mkdir(parents=True, exist_ok=True)
    dst.write_text(body, encoding="utf-8")
    return dst


def write_contents(out: Path) -> Path:
    "`contents.html`: one link per rendered page, titled by its notebook's first heading, in the order of nbs/."
    import html as h
    rows = []
    for src in notebooks():
        rel = src.relative_to(NBS).with_suffix(".html")
        if not (out / rel).exists(): continue
        cells = json.loads(src.read_text(encoding="utf-8"))["cells"]
        first = next(("".join(c["source"]) for c in cells if c["cell_type"] == "markdown"), "")
        title = next((l[2:] for l in first.splitlines() if l.startswith("# ")), src.stem)
        rows.append(f'<li><a href="{rel.as_posix()}">{h.escape(rel.with_suffix("").as_posix())}</a>: {h.escape(title)}</li>')
    rows.append('<li><a href="gallery.html">gallery</a>: every regenerated figure and table beside the paper\'s</li>')
    p = out / "contents.html"
    p.write_text("<!DOCTYPE html>\n<html><head><meta charset='utf-8'><title>qrpo_nb: contents</title></head><body>\n"
                 "<h1>qrpo_nb notebooks</h1>\n<ul>\n" + "\n".join(rows) + "\n</ul>\n</body></html>\n", encoding="utf-8")
    return p


def html(names=(), out: str | Path = ROOT / "_docs") -> int:
    "Render the notebooks to `out` (the same layout as nbs/), each in a subprocess; report and count the failures."
    out, failed = Path(out).resolve(), []
    for src in notebooks(names):
        rel = src.relative_to(NBS) if src.is_relative_to(NBS) else Path(src.name)
        dst = out / rel.with_suffix(".html")
        t0 = time.time()
        r = subprocess.run([sys.executable, __file__, "_one", str(src), str(dst)], capture_output=True, text=True,
                           env={**os.environ, **ENV}, cwd=src.parent)
        if r.returncode:
            failed.append(str(rel))
            tail = "\n    ".join((r.stderr or r.stdout).strip().splitlines()[-6:])
            print(f"FAILED {rel} ({time.time() - t0:.1f} s):\n    {tail}", flush=True)
        else:
            print(f"{dst.relative_to(out.parent) if out.parent in dst.parents else dst} ({dst.stat().st_size / 1e3:.0f} kB, {time.time() - t0:.1f} s)", flush=True)
            for line in r.stderr.splitlines():
                if line.startswith("note: "): print(f"    {rel}: {line[6:]}")
    if not names:
        write_contents(out)
        if PAPER.is_dir(): print(gallery(ROOT / "paper_figures", PAPER, out))
    if failed: print(f"{len(failed)} notebook(s) failed doc processing: {', '.join(failed)}")
    return 1 if failed else 0


# ---------------------------------------------------------------------------------------------------- outputs
def refresh_outputs(path: str | Path, slow: bool = False, timeout: int = 600, dest: str | Path | None = None) -> Path:
    "Execute the notebook (its folder as cwd) and keep only its `keep-output` cells' outputs; write `dest` (default: in place) and nbdev_clean it."
    import nbformat
    from nbclient import NotebookClient
    path = Path(path).resolve()
    dest = path if dest is None else Path(dest).resolve()
    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(nb, timeout=timeout, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}},
                            skip_cells_with_tag="no-such-tag" if slow else SKIP)
    client.execute(env={**os.environ, **ENV})   # the kernel's environment; this process's stays as it is
    for c in nb.cells:
        if c.cell_type != "code": continue
        c.execution_count = None
        if KEEP not in c.metadata.get("tags", []): c.outputs = []; continue
        # progress bars are no explanation: with ipywidgets installed tqdm shows a widget whose model id is random
        c.outputs = [o for o in c.outputs if (o.output_type in ("display_data", "execute_result")
                                              and "application/vnd.jupyter.widget-view+json" not in o.get("data", {}))
                     or (o.output_type == "stream" and o.name == "stdout")]
        for o in c.outputs:
            if "execution_count" in o: o.execution_count = None
            if o.output_type != "stream": o.metadata = {}
    nb.metadata.pop("widgets", None)   # the widget state nbclient saves for those progress bars
    nbformat.write(nb, dest)
    subprocess.run([str(Path(sys.executable).parent / "nbdev_clean"), "--fname", str(dest)], check=True, cwd=ROOT)
    return dest


KERNELSPEC = {"display_name": "python3", "language": "python", "name": "python3"}
_flagged = re.compile(r"\s*#\|\s*(slow|gpu)\b")

def fix_metadata(path: str | Path) -> list[int]:
    "Give a notebook a kernelspec (papermill needs its name) and tag its `#| slow` / `#| gpu` cells `skip-execution`."
    path = Path(path)
    nb = json.loads(path.read_text(encoding="utf-8"))
    nb.setdefault("metadata", {}).setdefault("kernelspec", dict(KERNELSPEC))
    tagged = []
    for i, c in enumerate(nb["cells"]):
        if c["cell_type"] == "code" and _flagged.match("".join(c["source"])):
            tags = c.setdefault("metadata", {}).setdefault("tags", [])
            if SKIP not in tags: tags.append(SKIP); tagged.append(i)
    path.write_text(json.dumps(nb, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    subprocess.run([str(Path(sys.executable).parent / "nbdev_clean"), "--fname", str(path)], check=True, cwd=ROOT)
    return tagged


# ---------------------------------------------------------------------------------------------------- gallery
# item -> (the paper's images in ../shared/paper, a one-line note); the order is the paper's
GALLERY = {
    "figure1": (["figure-1.png"], "Best AlpacaEval 2 LC score per method. Ours: the paper's bars beside this run's best test LC reward of the "
                                  "CPU chat task (no AlpacaEval judge offline)."),
    "figure2": (["sketch.png"], "The method's sketch (pre-computation, then training): a diagram, not regenerated; our pipeline is the "
                                "eight stages of `qrpo-nb reproduce`."),
    "table1": (["table-1.png"], "Policy-fitting losses and what each needs: ours from the loss registry (`qrpo_nb.losses`)."),
    "table2": (["table-2.png"], "LeetCode test pass rates. Ours: the CPU code task (sandbox pass rate), mean ± std over evaluation seeds."),
    "figure3": (["figure-3.png"], "Reward vs the number of reference rewards n, offline vs off-policy, one panel per β. Ours: the CPU chat "
                                  "task, n from 1 to 16."),
    "table3": (["table-3.png"], "Chat results (LC reward, reward, AlpacaEval 2). Ours: the CPU chat tasks; AlpacaEval not run offline."),
    "figure4": (["figure-4.png"], "Length bias: implicit reward vs standardised length, ρ per method. Ours: one panel per method, each on "
                                  "its own y-scale (SimPO's implicit reward is ~100× the others')."),
    "figure5": (["figure-5.png"], "The optimal policy's reward distribution, derived analytically (exact, `qrpo_nb.theory`)."),
    "figure6": (["figure-6.png"], "Log-ratios of the validation chosen / rejected samples over training (offline). Ours: the same, and "
                                  "the training batches' curve below."),
    "figure7": ([], "Noise of the regression target, log Ẑ vs R̂_q (App. H): exact, `qrpo_nb.theory`."),
    "figure8": (["figure8-length-bias-llama-magpieair.png", "figure8-length-bias-mistral-magpieair.png",
                 "figure8-length-bias-llama-ultrafeedback.png", "figure8-length-bias-mistral-ultrafeedback.png"],
                "Figure 4 for every model × dataset. Ours: one row per model × task of this run."),
    "table4": (["table-4.png"], "Transformations of the quantile reward and their log-partition functions (exact, `qrpo_nb.theory`)."),
    "figure9": ([], "The LeetCode prompt (the paper's protocol, `qrpo_nb.leetcode`)."),
    "figure10": ([], "The unified initialisation code: imports."),
    "figure11": ([], "The unified initialisation code: helper classes."),
}

def _item_title(item: str) -> str:
    m = re.fullmatch(r"(table|figure)(\d+)", item)
    return f"{m.group(1).title()} {m.group(2)}"

def gallery(figures: str | Path = ROOT / "paper_figures", paper: str | Path = PAPER, out: str | Path = ROOT / "_docs") -> Path:
    "`gallery.html` in `out`: each item's regenerated file beside the paper's image, the images copied under `out/gallery/`."
    import html as h, shutil
    import mistune
    figures, paper, out = Path(figures), Path(paper), Path(out)
    (out / "gallery" / "ours").mkdir(parents=True, exist_ok=True); (out / "gallery" / "paper").mkdir(parents=True, exist_ok=True)
    secs = []
    for item, (imgs, note) in GALLERY.items():
        ours, cells = figures / f"{item}.png", []
        if ours.exists():
            shutil.copyfile(ours, out / "gallery" / "ours" / ours.name)
            csv = figures / f"{item}.csv"
            if csv.exists(): shutil.copyfile(csv, out / "gallery" / "ours" / csv.name)
            link = f' (<a href="gallery/ours/{csv.name}">data</a>)' if csv.exists() else ""
            cells.append(f'<figure class="ours"><img src="gallery/ours/{ours.name}" alt="{item}, this reproduction">'
                         f'<figcaption>this reproduction{link}</figcaption></figure>')
        elif (figures / f"{item}.md").exists():
            body = mistune.html((figures / f"{item}.md").read_text(encoding="utf-8"))
            cells.append(f'<figure class="ours table"><div>{body}</div><figcaption>this reproduction ({item}.md)</figcaption></figure>')
        else:
            cells.append(f'<figure class="ours missing"><p>not regenerated: no {h.escape(item)}.png or .md in {h.escape(str(figures))}</p></figure>')
        found = [paper / n for n in imgs if (paper / n).exists()]
        for p in found:
            shutil.copyfile(p, out / "gallery" / "paper" / p.name)
        if found:
            cells.append('<figure class="paper">' + "".join(f'<img src="gallery/paper/{p.name}" alt="{item}, the paper ({p.name})">' for p in found)
                         + "<figcaption>the paper</figcaption></figure>")
        else:
            cells.append('<figure class="paper missing"><p>no image of the paper\'s ' + _item_title(item) + " in ../shared/paper/</p></figure>")
        secs.append(f'<section id="{item}"><h2>{_item_title(item)}</h2><p>{h.escape(note)}</p><div class="row">{"".join(cells)}</div></section>')
    page = out / "gallery.html"
    page.write_text(
        "<!DOCTYPE html>\n<html><head><meta charset='utf-8'><title>qrpo_nb: gallery</title>\n<style>"
        "body{font-family:sans-serif;max-width:1500px;margin:auto} .row{display:flex;gap:1em;align-items:flex-start}"
        " figure{flex:1;margin:0} img{max-width:100%;display:block;margin-bottom:.5em} .missing{color:#777}"
        " table{border-collapse:collapse;font-size:.8em} td,th{border:1px solid #ccc;padding:2px 4px}</style>\n"
        "<script>window.addEventListener('load',()=>document.querySelectorAll('img').forEach(i=>i.dataset.w=i.naturalWidth))</script>"
        "</head><body>\n<h1>Gallery: the regenerated items beside the paper's</h1>\n"
        f"<p>Left: this reproduction (<code>{h.escape(figures.name)}/</code>, at CPU scale: see REPORT.md for each item's run and "
        "scale); right: the paper's image.</p>\n" + "\n".join(secs) + "\n</body></html>\n", encoding="utf-8")
    return page


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    h = sub.add_parser("html", help="render notebooks to self-contained HTML pages")
    h.add_argument("notebooks", nargs="*"); h.add_argument("--out", default=str(ROOT / "_docs"))
    o = sub.add_parser("outputs", help="execute a notebook and keep the outputs of its keep-output cells")
    o.add_argument("notebooks", nargs="+"); o.add_argument("--slow", action="store_true", help="run skip-execution cells too")
    m = sub.add_parser("metadata", help="add a kernelspec and tag #| slow / #| gpu cells skip-execution")
    m.add_argument("notebooks", nargs="+")
    g = sub.add_parser("gallery", help="each regenerated figure beside the paper's image (gallery.html)")
    g.add_argument("--figures", default=str(ROOT / "paper_figures")); g.add_argument("--paper", default=str(PAPER))
    g.add_argument("--out", default=str(ROOT / "_docs"))
    one = sub.add_parser("_one"); one.add_argument("src"); one.add_argument("dst")
    a = ap.parse_args(argv)
    if a.cmd == "html": return html(a.notebooks, a.out)
    if a.cmd == "gallery": print(gallery(a.figures, a.paper, a.out)); return 0
    if a.cmd == "_one": render_one(Path(a.src).resolve(), Path(a.dst).resolve()); return 0
    if a.cmd == "metadata":
        for n in a.notebooks: print(f"{n}: kernelspec set, skip-execution added to cells {fix_metadata(n)}")
        return 0
    for n in a.notebooks:
        t0 = time.time(); refresh_outputs(n, slow=a.slow); print(f"{n}: outputs refreshed in {time.time() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())

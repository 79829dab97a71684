"""Notebooks readable without running and docs that build offline (issue 16 part 4, issue 18).

- the notebooks keep the outputs that are the explanation (cells tagged `keep-output`), clean and without stderr;
- re-executing the theory notebook stores the same bytes, and running it rewrites no committed file;
- `docs/build_docs.py` renders the theory page, and headless Chromium sees its figures (PNG data of real size).
"""
from __future__ import annotations
import base64, hashlib, io, json, os, re, shutil, subprocess, sys, zlib
from pathlib import Path
import pytest

ROOT = Path(__file__).resolve().parent.parent
NBS = ROOT / "nbs"
sys.path.insert(0, str(ROOT / "docs"))
import build_docs  # noqa: E402

KEPT = {"01_theory.ipynb": 4, "03_lab.ipynb": 5, "11_reporting.ipynb": 5}          # notebooks whose figures are kept, and how many cells keep output
OURS = ["00_quantile.ipynb", "01_theory.ipynb", "03_lab.ipynb", "11_reporting.ipynb", "index.ipynb"]


def png_size(data: bytes) -> tuple[int, int]:
    "Width and height from a PNG's IHDR chunk (read by hand: the signature, then the first chunk)."
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    assert data[12:16] == b"IHDR"
    return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")


def png_chunks(data: bytes) -> list[bytes]:
    "Chunk types of a PNG, in order."
    out, i = [], 8
    while i < len(data):
        n = int.from_bytes(data[i:i + 4], "big"); out.append(data[i + 4:i + 8]); i += 12 + n
    return out


def png_not_blank(data: bytes) -> bool:
    "More than one colour in the decoded image (decoded with matplotlib, not with the code that wrote it)."
    import matplotlib.image as mpimg
    a = mpimg.imread(io.BytesIO(data), format="png")
    return float(a[..., :3].std()) > 0.01


def snapshot(folder: Path) -> dict:
    "Every file under `folder` with its size, modification time and hash: a rewrite with equal bytes shows too."
    return {str(p.relative_to(folder)): (p.stat().st_size, p.stat().st_mtime_ns, hashlib.sha256(p.read_bytes()).hexdigest())
            for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("name", OURS)
def test_kernelspec_and_slow_cells(name):
    "papermill needs a kernel name; the `#| slow` / `#| gpu` cells are tagged `skip-execution`, so nbclient skips them as nbdev_test does."
    nb = json.loads((NBS / name).read_text())
    assert nb["metadata"].get("kernelspec", {}).get("name") == "python3", name
    for i, c in enumerate(nb["cells"]):
        src = "".join(c["source"])
        if c["cell_type"] == "code" and re.match(r"\s*#\|\s*(slow|gpu)\b", src):
            assert "skip-execution" in c["metadata"].get("tags", []), (name, i)


@pytest.mark.parametrize("name", sorted(KEPT))
def test_kept_outputs_are_clean(name):
    "Only `keep-output` cells have outputs; each has a display, none has stderr, memory addresses, or PNG text chunks."
    nb = json.loads((NBS / name).read_text())
    kept = 0
    for i, c in enumerate(nb["cells"]):
        if c["cell_type"] != "code": continue
        outs = c.get("outputs", [])
        if "keep-output" not in c["metadata"].get("tags", []):
            assert not outs, f"{name} cell {i} has outputs but no keep-output tag"; continue
        kept += 1
        assert outs, f"{name} cell {i} is tagged keep-output but has no output (run: python docs/build_docs.py outputs nbs/{name})"
        assert c["execution_count"] is None
        for o in outs:
            assert not (o["output_type"] == "stream" and o["name"] == "stderr"), (name, i)
            text = json.dumps(o)
            assert not re.search(r" at 0x[0-9a-f]+", text), (name, i)
            if "image/png" in o.get("data", {}):
                png = base64.b64decode("".join(o["data"]["image/png"]))
                assert b"tEXt" not in png_chunks(png) and b"iTXt" not in png_chunks(png), (name, i, png_chunks(png))
                assert png_size(png)[0] > 400 and png_not_blank(png), (name, i)
    assert kept == KEPT[name], (name, kept)


# The kept PNGs are byte-exact only for the matplotlib (and its FreeType) that drew them; elsewhere they are compared
# by size. Text outputs (Table 4's values) must match everywhere.
MPL_OF_OUTPUTS = "3.11.2"


def _outputs(nb: dict) -> list:
    return [(i, o) for i, c in enumerate(nb["cells"]) if c["cell_type"] == "code" for o in c.get("outputs", [])]


def test_show_figure_is_deterministic():
    "The same figure shown twice gives the same PNG bytes, with no text chunk (no software name, no date)."
    import matplotlib; matplotlib.use("Agg")
    from qrpo_nb.theory import figure5, show_figure
    shown = []
    import IPython.display as disp
    real = disp.display
    disp.display = lambda obj, **kw: shown.append(obj.data)
    try:
        show_figure(figure5()); show_figure(figure5())
    finally: disp.display = real
    assert len(shown) == 2 and shown[0] == shown[1] and len(shown[0]) > 20_000
    assert not {b"tEXt", b"iTXt", b"zTXt", b"tIME"} & set(png_chunks(shown[0]))


def test_theory_rerun_matches_committed_and_writes_nothing_committed(tmp_path):
    "Executing 01_theory (nbclient, its own folder as cwd, as papermill would) reproduces the kept outputs; no file of paper_figures/ is touched."
    import matplotlib
    before = snapshot(ROOT / "paper_figures")
    out = build_docs.refresh_outputs(NBS / "01_theory.ipynb", dest=tmp_path / "01_theory.ipynb")
    assert snapshot(ROOT / "paper_figures") == before
    new, old = json.loads(out.read_text()), json.loads((NBS / "01_theory.ipynb").read_text())
    if matplotlib.__version__ == MPL_OF_OUTPUTS:
        assert out.read_bytes() == (NBS / "01_theory.ipynb").read_bytes()
    (a, b) = _outputs(new), _outputs(old)
    assert [i for i, _ in a] == [i for i, _ in b]
    for (i, o), (_, p) in zip(a, b):
        assert sorted(o.get("data", {})) == sorted(p.get("data", {})), i
        for k, v in o.get("data", {}).items():
            if k == "image/png":
                w0, h0 = png_size(base64.b64decode("".join(v))); w1, h1 = png_size(base64.b64decode("".join(p["data"][k])))
                assert abs(w0 - w1) <= 3 and abs(h0 - h1) <= 3, (i, (w0, h0), (w1, h1))
            else: assert v == p["data"][k], (i, k)


@pytest.mark.slow
def test_lab_nbconvert_writes_nothing_committed(tmp_path):
    "`jupyter nbconvert --execute` of 03_lab (slow cells skipped by their tag) touches no file of paper_figures/."
    before = snapshot(ROOT / "paper_figures")
    r = subprocess.run([str(Path(sys.executable).parent / "jupyter"), "nbconvert", "--to", "notebook", "--execute",
                        "--output-dir", str(tmp_path), str(NBS / "03_lab.ipynb")],
                       cwd=NBS, env={**os.environ, **build_docs.ENV}, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    assert snapshot(ROOT / "paper_figures") == before


def find_chromium() -> str | None:
    "Headless Chromium (Debian package `chromium`); installed with apt where we are root and apt works, else None."
    names = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
    found = next((shutil.which(n) for n in names if shutil.which(n)), None)
    if found or os.environ.get("QRPO_NO_APT") or not shutil.which("apt-get") or os.geteuid() != 0: return found
    try:
        subprocess.run(["apt-get", "install", "-y", "-qq", "--no-install-recommends", "chromium"], capture_output=True,
                       timeout=600, env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"})
    except (OSError, subprocess.TimeoutExpired): return None
    return next((shutil.which(n) for n in names if shutil.which(n)), None)


def test_theory_page_in_headless_chromium(tmp_path):
    "The theory page builds offline (show_doc of figure7 included) and Chromium's DOM holds its three figures as PNG data."
    r = subprocess.run([sys.executable, str(ROOT / "docs" / "build_docs.py"), "html", str(NBS / "01_theory.ipynb"),
                        "--out", str(tmp_path)], capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    page = tmp_path / "01_theory.html"
    chromium = find_chromium()
    if chromium is None:
        pytest.skip("headless Chromium not installed and not installable here (needs the Debian package `chromium` and root)")
    d = subprocess.run([chromium, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--dump-dom",
                        page.as_uri()], capture_output=True, text=True, timeout=120,
                       env={**os.environ, "HOME": str(tmp_path)})
    dom = d.stdout
    assert "<h1" in dom and "Theory" in dom, dom[:500]
    # the documented API, rendered by nbdev's show_doc (it failed on figure7's NumPy default before)
    for fn in ("figure5", "figure7", "laplace_figure", "show_figure"):
        assert re.search(rf"<h3 id=\"{fn}\">{fn}\b", dom), fn
    imgs = re.findall(r'<img[^>]*src="data:image/png;base64,([A-Za-z0-9+/=]+)"', dom)
    assert len(imgs) >= 3, len(imgs)
    pngs = [base64.b64decode(s) for s in imgs]
    for png in pngs:
        w, h = png_size(png)
        assert len(png) > 20_000 and w > 600 and h > 250, (len(png), w, h)
        assert png_not_blank(png)
    # Figure 5's image comes after Figure 5's heading, in the rendered page
    assert dom.index("Figure 5: the reward distribution") < dom.index(imgs[0][:200])


def test_gallery_shows_each_item_beside_the_papers_image(tmp_path):
    "gallery.html: per item its note, our regenerated file and the paper's image(s), all copied into the site and loaded by Chromium."
    import html
    paper = build_docs.PAPER
    if not paper.is_dir(): pytest.skip(f"the paper's images are not here ({paper})")
    before = snapshot(ROOT / "paper_figures")
    figs = tmp_path / "figs"; figs.mkdir()
    for item in build_docs.GALLERY:   # the committed items, read only: a copy stands for a fresh report
        for ext in (".png", ".md", ".csv"):
            if (ROOT / "paper_figures" / f"{item}{ext}").exists(): shutil.copyfile(ROOT / "paper_figures" / f"{item}{ext}", figs / f"{item}{ext}")
    (figs / "figure3.png").unlink()   # an item not regenerated says so
    r = subprocess.run([sys.executable, str(ROOT / "docs" / "build_docs.py"), "gallery", "--figures", str(figs), "--out", str(tmp_path / "site")],
                       capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert r.returncode == 0, r.stderr[-2000:]
    page = (tmp_path / "site" / "gallery.html").read_text()
    secs = dict(re.findall(r'<section id="(\w+)">(.*?)</section>', page, re.S))
    assert list(secs) == list(build_docs.GALLERY)
    for item, (imgs, note) in build_docs.GALLERY.items():
        s = secs[item]
        assert html.escape(note) in s, item
        paper_imgs = re.findall(r'src="gallery/paper/([^"]+)"', s)
        assert paper_imgs == imgs, item                       # every paper image of the item, in order
        ours = re.findall(r'src="gallery/ours/([^"]+)"', s)
        if item in ("figure2", "figure3"): assert not ours and "not regenerated" in s, item
        elif item.startswith("table"): assert "<table>" in s, item   # our Markdown table, rendered
        else: assert ours == [f"{item}.png"], item
        for f in paper_imgs: assert (tmp_path / "site" / "gallery" / "paper" / f).read_bytes() == (paper / f).read_bytes()
    assert snapshot(ROOT / "paper_figures") == before   # the site holds the copies: nothing written into the repository
    chromium = find_chromium()
    if chromium is None:
        pytest.skip("headless Chromium not installed and not installable here (needs the Debian package `chromium` and root)")
    d = subprocess.run([chromium, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--virtual-time-budget=10000",
                        "--dump-dom", (tmp_path / "site" / "gallery.html").as_uri()], capture_output=True, text=True, timeout=120,
                       env={**os.environ, "HOME": str(tmp_path)})
    imgs = re.findall(r"<img [^>]*>", d.stdout)
    assert len(imgs) == len(re.findall(r"<img ", page)) > 20
    widths = [int(m.group(1)) if (m := re.search(r'data-w="(\d+)"', i)) else 0 for i in imgs]
    assert all(w > 300 for w in widths), list(zip(imgs, widths))   # every image loaded (naturalWidth), ours and the paper's

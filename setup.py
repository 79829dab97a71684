"""Packaging for qrpo_nb: every dependency is declared once, in settings.ini."""
from configparser import ConfigParser
from pathlib import Path
import shutil
import setuptools
from setuptools.command.build_py import build_py

# What the pipeline needs besides the code, shipped as package data under qrpo_nb/_data/ (qrpo_nb.pipeline finds them
# there when the package is not a checkout): package folder -> (checkout folder, files)
PACKAGE_DATA = {"presets": ("presets", "*.yaml"), "experiments": ("nbs/experiments", "*.ipynb"),
                "accelerate": ("configs/accelerate", "*.yaml")}

class BuildPy(build_py):
    "build_py that also copies the presets, the stage templates and the accelerate configs into qrpo_nb/_data/."
    def run(self):
        super().run()
        here = Path(__file__).resolve().parent
        for name, (src, pattern) in PACKAGE_DATA.items():
            files = sorted((here/src).glob(pattern))
            if not files: raise SystemExit(f"setup.py: no {pattern} in {here/src}: the wheel would not run the pipeline")
            out = Path(self.build_lib)/"qrpo_nb"/"_data"/name
            out.mkdir(parents=True, exist_ok=True)
            for f in files: shutil.copy2(f, out/f.name)

cfg = ConfigParser(delimiters=["="])
cfg.read("settings.ini", encoding="utf-8")
c = cfg["DEFAULT"]
req = lambda key: c.get(key, "").split()
setuptools.setup(
    name=c["lib_name"], version=c["version"], description=c["description"],
    author=c["author"], author_email=c["author_email"], license=c["license"],
    url=c["git_url"], project_urls={"Source": c["git_url"]}, keywords=c["keywords"].split(),
    long_description=open("README.md", encoding="utf-8").read(), long_description_content_type="text/markdown",
    classifiers=["Programming Language :: Python :: 3", "License :: OSI Approved :: Apache Software License"], packages=setuptools.find_packages(include=["qrpo_nb", "qrpo_nb.*"]),
    # qrpo_nb/assets/ (published_results.csv, the CPU tokenizer) ships through package_data: without it the wheel has none
    include_package_data=True, package_data={"qrpo_nb": ["assets/**/*"]}, cmdclass={"build_py": BuildPy},
    python_requires=">=" + c["min_python"],
    install_requires=req("requirements"),
    extras_require={"gpu": req("gpu_requirements"), "trl": req("trl_requirements"), "dev": req("dev_requirements")},
    entry_points={"console_scripts": req("console_scripts"), "nbdev": [f"{c['lib_name']}={c['lib_name']}._modidx:d"]},
    zip_safe=False,
)

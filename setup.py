"""Packaging for qrpo_nb: every dependency is declared once, in settings.ini."""
from configparser import ConfigParser
import setuptools

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
    include_package_data=True, package_data={"qrpo_nb": ["assets/**/*", "presets/*.yaml", "configs/**/*"]},
    python_requires=">=" + c["min_python"],
    install_requires=req("requirements"),
    extras_require={"gpu": req("gpu_requirements"), "trl": req("trl_requirements"), "dev": req("dev_requirements")},
    entry_points={"console_scripts": req("console_scripts"), "nbdev": [f"{c['lib_name']}={c['lib_name']}._modidx:d"]},
    zip_safe=False,
)

import os
import runpy

from setuptools import setup
from setuptools.command.build_py import build_py


class build_py_with_commit(build_py):
    """Also writes pyproc/_build_commit.txt, the commit the package is built from: an
    installed copy has no .git, and pyproc.provenance reads the file instead."""

    def run(self):
        super().run()
        here = os.path.dirname(os.path.abspath(__file__))
        commit = runpy.run_path(os.path.join(here, "pyproc", "provenance.py"))["git_commit"]()
        if commit:
            with open(os.path.join(self.build_lib, "pyproc", "_build_commit.txt"), "w") as f:
                f.write(commit + "\n")


setup(
    name="pyproc",
    version="0.1.0",
    description="Procedural-connectivity spiking network simulator: PyCUDA kernels, "
                "bit-exact NumPy twin and SciPy stored reference",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    python_requires=">=3.9",
    packages=["pyproc", "pyproc.backends", "pyproc.models", "pyproc._kernels"],
    package_dir={"pyproc._kernels": "kernels"},
    package_data={"pyproc._kernels": ["*.cu", "*.cuh"]},
    install_requires=["numpy>=1.24", "scipy>=1.10"],
    extras_require={
        "cuda": ["pycuda>=2024.1"],
        "plot": ["matplotlib>=3.6"],
        "test": ["pytest>=7", "hypothesis>=6"],
    },
    entry_points={"console_scripts": ["pyproc=pyproc.cli:main"]},
    cmdclass={"build_py": build_py_with_commit},
)

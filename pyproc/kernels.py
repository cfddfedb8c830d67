"""The public door to pyproc's CUDA kernels (``kernels/*.cu`` and ``*.cuh``).

``kernel_dir()`` is where the sources are (the source tree's ``kernels/`` or,
after ``pip install``, the package data ``pyproc._kernels``); ``sources()``
lists them.  Compiling needs PyCUDA and a GPU (see :func:`compile_module`).
"""
from __future__ import annotations

import os
from typing import Dict

__all__ = ["kernel_dir", "sources", "read_source"]


def kernel_dir() -> str:
    """Directory holding the kernel sources."""
    here = os.path.dirname(os.path.abspath(__file__))
    installed = os.path.join(here, "_kernels")
    if os.path.isfile(os.path.join(installed, "philox.cuh")):
        return installed
    tree = os.path.join(os.path.dirname(here), "kernels")
    if os.path.isfile(os.path.join(tree, "philox.cuh")):
        return tree
    raise FileNotFoundError("pyproc kernel sources not found (looked in "
                            f"{installed} and {tree}); reinstall pyproc")


def sources() -> Dict[str, str]:
    """Map of file name -> path for every ``.cu`` and ``.cuh`` file."""
    d = kernel_dir()
    return {f: os.path.join(d, f) for f in sorted(os.listdir(d)) if f.endswith((".cu", ".cuh"))}


def read_source(name: str) -> str:
    src = sources()
    if name not in src:
        raise KeyError(f"no kernel source {name!r}; available: {', '.join(src)}")
    with open(src[name], encoding="utf-8") as f:
        return f.read()

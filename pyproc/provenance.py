"""Where a result came from: the commit of the pyproc source tree.

``git_commit()`` is ``$PYPROC_GIT_COMMIT`` when set (the GPU machines get a copy of the
working tree whose ``.git`` is absent or stale, so the caller names the commit), else
``git rev-parse HEAD`` of the source tree with ``+dirty`` when tracked files differ,
else the commit the installed copy was built from (``_build_commit.txt``, written by
setup.py), else None."""
from __future__ import annotations

import os
import shutil
import subprocess
from typing import Optional

__all__ = ["git_commit"]


def git_commit() -> Optional[str]:
    env = os.environ.get("PYPROC_GIT_COMMIT")
    if env:
        return env
    here = os.path.dirname(os.path.abspath(__file__))
    root = os.path.dirname(here)
    git = shutil.which("git")
    if git is None or not os.path.exists(os.path.join(root, ".git")):
        return _built_from(here)
    try:
        head = subprocess.run([git, "rev-parse", "HEAD"], cwd=root, capture_output=True,
                              text=True, timeout=10)
        if head.returncode != 0:
            return None
        dirty = subprocess.run([git, "status", "--porcelain", "--untracked-files=no"],
                               cwd=root, capture_output=True, text=True, timeout=20)
        return head.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")
    except (OSError, subprocess.SubprocessError):
        return None


def _built_from(here: str) -> Optional[str]:
    try:
        with open(os.path.join(here, "_build_commit.txt")) as f:
            return f.read().strip() or None
    except OSError:
        return None

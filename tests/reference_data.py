"""Where the tests find the reference data that the project does not ship.

Two files live outside the checkout: the multi-area model's structure file (CC BY-NC-SA
material, written by ``validation/export_mam_structure.py``) and the microcircuit's
published reference numbers.  A test that needs one uses the path in its environment
variable, else the file in the data folder beside the checkout, and skips with a reason
that says how to provide it."""
import os

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_BESIDE = os.path.join(os.path.dirname(ROOT), "shared", "data")

# name -> (environment variable, path in the data folder beside the checkout, what it is)
FILES = {
    "mam_structure": ("PYPROC_MAM_STRUCTURE", ("multiarea", "mam_structure.json"),
                      "the multi-area structure file (write it with "
                      "validation/export_mam_structure.py)"),
    "microcircuit": ("PYPROC_MICROCIRCUIT_JSON", ("microcircuit", "microcircuit.json"),
                     "the microcircuit reference numbers (microcircuit.json)"),
}


def path(name: str) -> str:
    """The file's path (it may not exist): the environment variable's value if set."""
    var, parts, _ = FILES[name]
    return os.environ.get(var) or os.path.join(_BESIDE, *parts)


def skip_reason(name: str) -> str:
    var, _, what = FILES[name]
    return f"needs {what}: set {var}=PATH"


def available(name: str) -> bool:
    return os.path.isfile(path(name))


def require(name: str) -> str:
    """The file's path, or skip the calling test with the reason."""
    if not available(name):
        pytest.skip(skip_reason(name))
    return path(name)

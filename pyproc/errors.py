"""Exceptions raised by pyproc, each naming the offending field."""


class ModelError(ValueError):
    """Bad model description: the message names the field and the allowed range."""


class OverflowDetected(ArithmeticError):
    """A fixed-point accumulator or a record buffer would overflow."""


class BackendUnavailable(RuntimeError):
    """The requested backend cannot run on this machine (the message says why and what to do)."""


class InsufficientMemory(BackendUnavailable, MemoryError):
    """The model needs more memory than this machine has available; raised before the
    allocation, with both sizes and what to change (also a MemoryError)."""


def number(field: str, value, allowed: str = "") -> float:
    """``value`` as a finite float, or a ModelError naming ``field`` (and the ``allowed``
    range, e.g. "in [0, 1]", if given).  Python and NumPy numbers only: a string ('0.1')
    or a bool (True) is refused, not converted, so that a quoted or misplaced argument
    cannot pass silently."""
    import numbers                 # NumPy's real numbers are numbers.Real, its bools not
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ModelError(f"{field} must be a number{' ' + allowed if allowed else ''}, "
                         f"got {value!r}")
    v = float(value)
    import math
    if not math.isfinite(v):
        raise ModelError(f"{field} must be {allowed or 'finite'}, got {value!r}")
    return v


def flag(field: str, value) -> bool:
    """``value`` as a bool (True/False, NumPy bools, 0 and 1), or a ModelError naming
    ``field``: 'no' or None is refused, not read as its truth value."""
    try:
        import numpy as np
        if isinstance(value, np.bool_):
            return bool(value)
    except ImportError:
        pass
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    raise ModelError(f"{field} must be True or False, got {value!r}")

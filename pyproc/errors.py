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

"""Model builders: functions that return a :class:`pyproc.Network`.

``MODELS`` maps the name used on the command line (``pyproc run NAME``) to the builder.
"""
from .balanced import balanced

MODELS = {"balanced": balanced}

__all__ = ["MODELS", "balanced"]

"""Model builders: functions that return a :class:`pyproc.Network`.

``MODELS`` maps the name used on the command line (``pyproc run NAME``) to the builder.
"""
from .balanced import balanced
from .microcircuit import microcircuit

MODELS = {"balanced": balanced, "microcircuit": microcircuit}

__all__ = ["MODELS", "balanced", "microcircuit"]

"""Model builders: functions that return a :class:`pyproc.Network`.

``MODELS`` maps the name used on the command line (``pyproc run NAME``) to the builder.
"""
from .balanced import balanced
from .microcircuit import microcircuit
from .multiarea import multiarea

MODELS = {"balanced": balanced, "microcircuit": microcircuit, "multiarea": multiarea}

__all__ = ["MODELS", "balanced", "microcircuit", "multiarea"]

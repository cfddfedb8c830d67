"""Model builders: functions that return a :class:`pyproc.Network`."""
from .balanced import balanced

__all__ = ["balanced"]

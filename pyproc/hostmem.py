"""Host memory: what is available, and a refusal before an allocation that cannot fit.

A model that does not fit raises :class:`pyproc.errors.InsufficientMemory` (a
``MemoryError`` and a ``BackendUnavailable``) naming the bytes needed, the bytes
available and what to change, instead of being killed by the kernel's out-of-memory
killer or failing inside NumPy after minutes of set-up."""
from __future__ import annotations

import os
from typing import Dict, Optional

from .errors import InsufficientMemory

__all__ = ["available_bytes", "check", "human", "SKIP_VARIABLE"]

SKIP_VARIABLE = "PYPROC_SKIP_MEMORY_CHECK"       # set (not 0): check() refuses nothing


def available_bytes() -> Optional[int]:
    """MemAvailable of /proc/meminfo (None where unreadable: then nothing is refused)."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return int(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
    except (ValueError, OSError, AttributeError):
        return None


def human(n: float, digits: int = 1) -> str:
    """Bytes in B, KiB, MiB, GiB or TiB, ``digits`` after the point (none for B)."""
    n = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.{digits}f} {unit}"
        n /= 1024
    return f"{n:.{digits}f} TiB"


def check(what: str, parts: Dict[str, int], advice: str,
          available: Optional[int] = None) -> None:
    """Raise InsufficientMemory if the ``parts`` (name -> bytes) of ``what`` exceed the
    available host memory (``available``; default :func:`available_bytes`)."""
    if os.environ.get(SKIP_VARIABLE, "") not in ("", "0"):
        return
    avail = available_bytes() if available is None else int(available)
    need = int(sum(parts.values()))
    if avail is None or need <= avail:
        return
    detail = ", ".join(f"{k} {human(v)}" for k, v in parts.items() if v)
    raise InsufficientMemory(f"{what} needs about {human(need)} of host memory ({detail}); "
                             f"{human(avail)} is available. {advice} ({SKIP_VARIABLE}=1 "
                             f"skips this check, e.g. where swap space makes up the difference.)")

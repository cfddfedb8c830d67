"""Row lengths of ``fixed_total_number`` projections: a multinomial split of N synapses
over the source neurons, drawn on the host from a stream keyed by (seed, projection
stream id, tag 5) -- see :func:`pyproc.rng.host_generator`.

Each projection has its own stream, so projections can be drawn in any order and in
parallel with identical results.  The multi-area model has 8,344 such projections and
1.99e8 rows (about 20 s in one process): :func:`draw_row_lengths` spreads large jobs
over worker processes (``fork``, Linux only; serial elsewhere or when small).
"""
from __future__ import annotations

import multiprocessing as mp
import os
import sys
from concurrent.futures import ProcessPoolExecutor
from typing import List, Optional, Sequence, Tuple

import numpy as np

from .rng import TAG_ROWLEN, host_generator

__all__ = ["row_lengths", "draw_row_lengths", "PARALLEL_MIN_ROWS"]

#: below this many rows in total the pool's start-up costs more than it saves
PARALLEL_MIN_ROWS = 5_000_000

Task = Tuple[int, int, int, int]   # (seed, stream, total N, n_pre)


def row_lengths(seed: int, stream: int, total: int, n_pre: int) -> np.ndarray:
    """Multinomial(total, uniform over n_pre) row lengths of one projection (int64)."""
    gen = host_generator(seed, stream, TAG_ROWLEN)
    return gen.multinomial(total, np.full(n_pre, 1.0 / n_pre))


def _batch(tasks: Sequence[Task]) -> List[np.ndarray]:
    return [row_lengths(*t).astype(np.uint32) for t in tasks]


def draw_row_lengths(tasks: Sequence[Task], workers: Optional[int] = None) -> List[np.ndarray]:
    """Row lengths (uint32) of every task, in order.  ``workers`` (default: the CPUs
    available, at most 16) > 1 and a large job use a process pool; the result is the
    same either way."""
    tasks = list(tasks)
    rows = sum(t[3] for t in tasks)
    if workers is None:
        try:
            workers = len(os.sched_getaffinity(0))
        except AttributeError:  # pragma: no cover - not Linux
            workers = os.cpu_count() or 1
        workers = min(workers, 16)
    if workers <= 1 or rows < PARALLEL_MIN_ROWS or len(tasks) < 2 or \
            not sys.platform.startswith("linux"):
        return _batch(tasks)
    # contiguous batches of about equal row counts, a few per worker
    n_batches = min(len(tasks), 4 * workers)
    bounds = np.searchsorted(np.cumsum([t[3] for t in tasks]),
                             np.linspace(0, rows, n_batches + 1)[1:-1])
    cuts = [0, *sorted(set(int(b) + 1 for b in bounds)), len(tasks)]
    batches = [tasks[a:b] for a, b in zip(cuts[:-1], cuts[1:]) if b > a]
    with ProcessPoolExecutor(max_workers=workers, mp_context=mp.get_context("fork")) as ex:
        out: List[np.ndarray] = []
        for part in ex.map(_batch, batches):
            out.extend(part)
    return out

"""Spike-train and connectivity statistics for validation.

Activity statistics follow van Albada et al. (2018, Front. Neurosci. 12:291)
and Knight & Nowotny (2018/2021): per population, the time-averaged rate of
every neuron, the coefficient of variation of the inter-spike intervals of
every neuron with enough spikes, and the Pearson correlation of spike counts
in 2 ms bins for all pairs of a sample of neurons; the initial transient
(default 500 ms) is discarded.  Statistical tests themselves are
``scipy.stats``'s; this module only shapes the data.

Windows and bins follow NEST's spike recorder: a spike is stamped at the end of its
step, and a window (t_start, t_stop] holds the spikes of the steps that end after
t_start and no later than t_stop, so the window of the last 1,000 ms of a run holds
exactly its last 1,000 ms of steps.  Bins are (edge, edge + bin] likewise; a last bin
shorter than the others is dropped (as Elephant's BinnedSpikeTrain does).
"""
from __future__ import annotations

from typing import Optional, Tuple

import numpy as np

from .results import Results

__all__ = ["population_spikes", "rates_per_neuron", "cv_isi", "pairwise_correlations",
           "in_degrees", "out_degrees", "population_statistics", "T_DISCARD_MS", "CORR_BIN_MS",
           "CORR_NEURONS", "CV_MIN_SPIKES"]

T_DISCARD_MS = 500.0     # initial transient left out of every statistic
CORR_BIN_MS = 2.0        # bin width of the spike counts for correlations
CORR_NEURONS = 200       # neurons sampled per population for correlations (van Albada 2018)
CV_MIN_SPIKES = 3        # a CV needs two intervals


def _window(res: Results, t_start: float, t_stop: Optional[float]) -> Tuple[float, float]:
    t_stop = res.duration if t_stop is None else float(t_stop)
    t_start = float(t_start)
    if not (np.isfinite(t_start) and t_start >= 0.0):
        # spikes start at 0 ms: a negative start would dilute every rate by the empty span
        raise ValueError(f"analysis window must start at t_start >= 0 ms, got {t_start} ms")
    if not t_stop <= res.duration + 0.5 * res.dt:
        # likewise past the end of the run
        raise ValueError(f"analysis window must end at t_stop <= the simulated "
                         f"{res.duration} ms, got {t_stop} ms")
    if not t_stop > t_start:
        raise ValueError(f"analysis window is empty: t_start={t_start} ms, t_stop={t_stop} ms "
                         f"(simulated {res.duration} ms)")
    return float(t_start), t_stop


def _pop_index(res: Results, pop) -> int:
    i = res.pop_names.index(pop) if isinstance(pop, str) else int(pop)
    if not res.recorded[i]:
        # no spikes were kept: a rate of 0 Hz would be a wrong answer, not a missing one
        raise ValueError(f"population {res.pop_names[i]!r} was not recorded")
    return i


def population_spikes(res: Results, pop, t_start: float = T_DISCARD_MS,
                      t_stop: Optional[float] = None) -> Tuple[np.ndarray, np.ndarray, int]:
    """(local neuron ids, spike times in ms, population size) of the spikes of ``pop``
    (name or index) with ``t_start < t <= t_stop`` (module docstring), sorted by neuron
    then time."""
    i = _pop_index(res, pop)
    t_start, t_stop = _window(res, t_start, t_stop)
    off, n = int(res.pop_offsets[i]), int(res.pop_sizes[i])
    sel = (res.senders >= off) & (res.senders < off + n) & (res.times > t_start) & \
        (res.times <= t_stop)
    ids = (res.senders[sel] - off).astype(np.int64)
    t = res.times[sel]
    order = np.lexsort((t, ids))
    return ids[order], t[order], n


def rates_per_neuron(res: Results, pop, t_start: float = T_DISCARD_MS,
                     t_stop: Optional[float] = None) -> np.ndarray:
    """Rate (Hz) of every neuron of ``pop`` in (t_start, t_stop], silent neurons included."""
    t_start, t_stop = _window(res, t_start, t_stop)
    ids, _, n = population_spikes(res, pop, t_start, t_stop)
    return np.bincount(ids, minlength=n) / ((t_stop - t_start) * 1e-3)


def cv_isi(res: Results, pop, t_start: float = T_DISCARD_MS, t_stop: Optional[float] = None,
           min_spikes: int = CV_MIN_SPIKES) -> np.ndarray:
    """CV = sd / mean (ddof 0, as ``scipy.stats.variation``) of the inter-spike intervals
    of each neuron of ``pop`` with at least ``min_spikes`` (>= 3: two intervals) spikes
    in the window; the other neurons are left out."""
    if isinstance(min_spikes, bool) or int(min_spikes) != min_spikes or min_spikes < CV_MIN_SPIKES:
        raise ValueError(f"cv_isi: min_spikes must be a whole number >= {CV_MIN_SPIKES} "
                         f"(a CV needs two intervals), got {min_spikes!r}")
    ids, t, n = population_spikes(res, pop, t_start, t_stop)
    count = np.bincount(ids, minlength=n)
    keep = count >= min_spikes
    if not keep.any():
        return np.zeros(0)
    same = ids[1:] == ids[:-1]
    isi = np.diff(t)[same]
    owner = ids[1:][same]
    k = np.bincount(owner, minlength=n).astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.bincount(owner, weights=isi, minlength=n) / k
        dev = isi - mean[owner]             # two passes: exact for regular trains too
        cv = np.sqrt(np.bincount(owner, weights=dev * dev, minlength=n) / k) / mean
    return cv[keep]


def pairwise_correlations(res: Results, pop, t_start: float = T_DISCARD_MS,
                          t_stop: Optional[float] = None, bin_ms: float = CORR_BIN_MS,
                          n_neurons: int = CORR_NEURONS, seed: int = 0) -> np.ndarray:
    """Pearson correlation coefficients of spike counts in ``bin_ms`` bins (edge, edge +
    bin_ms] from t_start, whole bins only, for all pairs of ``n_neurons`` neurons of
    ``pop`` drawn without replacement (NumPy generator seeded with ``seed``: the same
    neuron ids for every run of the same network size).  A neuron whose binned count is
    constant (e.g. silent) has no defined correlation: its pairs are left out."""
    if not bin_ms > 0:
        raise ValueError(f"pairwise_correlations: bin_ms must be > 0 ms, got {bin_ms!r}")
    t_start, t_stop = _window(res, t_start, t_stop)
    ids, t, n = population_spikes(res, pop, t_start, t_stop)
    m = min(int(n_neurons), n)
    # whole bins (a bin within a millionth of its width of the end counts as whole)
    n_bins = int(np.floor((t_stop - t_start) / bin_ms + 1e-6))
    if m < 2 or n_bins < 2:
        return np.zeros(0)
    sample = np.sort(np.random.default_rng(seed).choice(n, size=m, replace=False))
    pos = np.full(n, -1, dtype=np.int64)
    pos[sample] = np.arange(m)
    # bin (edge, edge + bin]: spikes stamped on an edge close the bin before it
    b = np.ceil((t - t_start) / bin_ms - 1e-6).astype(np.int64) - 1
    keep = (pos[ids] >= 0) & (b >= 0) & (b < n_bins)
    counts = np.zeros((m, n_bins))
    np.add.at(counts, (pos[ids[keep]], b[keep]), 1.0)
    active = counts.std(axis=1) > 0
    counts = counts[active]
    if counts.shape[0] < 2:
        return np.zeros(0)
    c = np.corrcoef(counts)
    return c[np.triu_indices(c.shape[0], k=1)]


def in_degrees(indices: np.ndarray, n_post: int) -> np.ndarray:
    """Synapses per target neuron from the column indices of a CSR matrix (multapses count)."""
    return np.bincount(np.asarray(indices, dtype=np.int64), minlength=n_post)


def out_degrees(indptr: np.ndarray) -> np.ndarray:
    """Synapses per source neuron from a CSR row pointer."""
    return np.diff(np.asarray(indptr, dtype=np.int64))


def population_statistics(res: Results, t_start: float = T_DISCARD_MS,
                          t_stop: Optional[float] = None, bin_ms: float = CORR_BIN_MS,
                          n_corr: int = CORR_NEURONS, corr_seed: int = 0) -> dict:
    """{population: {"rate": array, "cv": array, "corr": array}} for every recorded population."""
    out = {}
    for i, name in enumerate(res.pop_names):
        if not res.recorded[i]:
            continue
        out[name] = {"rate": rates_per_neuron(res, i, t_start, t_stop),
                     "cv": cv_isi(res, i, t_start, t_stop),
                     "corr": pairwise_correlations(res, i, t_start, t_stop, bin_ms, n_corr,
                                                   seed=corr_seed + i)}
    return out

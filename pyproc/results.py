"""Simulation results: spikes, per-population summary, saving and loading."""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Dict, List, Optional

import numpy as np

from .errors import ModelError, number

__all__ = ["Results", "load_results", "step_times", "remove_stale", "STATE_FILE"]

STATE_FILE = "state.npz"          # Results.save: the state recordings, if any


def step_times(steps, dt: float):
    """Times in ms of whole steps of ``dt`` ms, as the double nearest the decimal value: dt
    as written (``repr``) is a fraction a / b, and ``steps * a / b`` is one correctly rounded
    division (92 steps of 0.1 ms are 9.2 ms; ``92 * 0.1`` is 9.200000000000001).  Falls
    back to ``steps * dt`` where dt is not a short decimal or the product is not exact."""
    q = Fraction(repr(float(dt)))
    steps_a = np.asarray(steps)
    if q.denominator <= 10 ** 9 and (steps_a.size == 0 or
                                     int(np.max(np.abs(steps_a))) * q.numerator < 2 ** 53):
        out = (steps_a.astype(np.int64) * q.numerator) / float(q.denominator)
    else:
        out = steps_a * float(dt)
    return out if np.ndim(steps) else float(out)


def remove_stale(paths) -> None:
    """Remove the files an earlier run left in an output folder that this run does not
    write (its plots, logs), so none passes for this run's; missing ones are fine."""
    for path in paths:
        try:
            os.remove(path)
        except FileNotFoundError:
            pass


@dataclass
class Results:
    """Spikes (``times`` in ms, ``senders`` as global neuron ids), metadata and, for the
    populations with ``Network.record_state``, ``state[population]``: ``times`` (ms, the
    sample times), ``neurons`` (local indices, the columns) and one float32 array (samples,
    neurons) per recorded variable: ``V_m`` (mV), ``I_syn_ex``, ``I_syn_in``, ``I_syn`` (pA)."""
    times: np.ndarray
    senders: np.ndarray
    pop_names: List[str]
    pop_offsets: np.ndarray
    pop_sizes: np.ndarray
    recorded: np.ndarray
    duration: float            # ms of model time simulated
    dt: float
    meta: Dict[str, object] = field(default_factory=dict)
    state: Dict[str, Dict[str, np.ndarray]] = field(default_factory=dict)

    def population_of(self, senders: Optional[np.ndarray] = None) -> np.ndarray:
        s = self.senders if senders is None else senders
        return np.searchsorted(self.pop_offsets, s, side="right") - 1

    def spike_counts(self) -> np.ndarray:
        return np.bincount(self.population_of(), minlength=len(self.pop_names))

    def rates(self) -> np.ndarray:
        """Mean rate per population in Hz over the whole run, (0, duration], initial
        transient included (NaN for unrecorded populations); rates over a window, e.g.
        without the transient as the validation suite: pyproc.analysis.rates_per_neuron."""
        sec = self.duration * 1e-3
        r = self.spike_counts() / (self.pop_sizes * sec) if sec > 0 else np.zeros(len(self.pop_names))
        return np.where(self.recorded, r, np.nan)

    def summary(self) -> dict:
        counts, rates = self.spike_counts(), self.rates()
        pops = {}
        for i, name in enumerate(self.pop_names):
            pops[name] = {"neurons": int(self.pop_sizes[i]), "recorded": bool(self.recorded[i]),
                          "spikes": int(counts[i]),
                          "mean_rate_Hz": None if not self.recorded[i] else float(rates[i])}
        out = {"populations": pops, "duration_ms": self.duration, "dt_ms": self.dt,
               "total_spikes": int(self.times.size), **self.meta}
        if self.state:
            out["state"] = {pop: {"variables": [k for k in d if k not in ("times", "neurons")],
                                  "neurons": int(d["neurons"].size),
                                  "samples": int(d["times"].size)}
                            for pop, d in self.state.items()}
        return out

    def save(self, out_dir: str) -> None:
        """Write ``spikes.npz`` (times, senders), ``summary.json`` and, with state
        recordings, ``state.npz`` (arrays ``POPULATION/times``, ``POPULATION/neurons``,
        ``POPULATION/V_m``, ...) to ``out_dir``; a ``state.npz`` an earlier run left there
        is removed when this one has none.

        Each file is written to a temporary name and renamed, so an interrupted save
        never leaves a truncated file behind an older complete one."""
        os.makedirs(out_dir, exist_ok=True)
        path = os.path.join(out_dir, STATE_FILE)
        if self.state:
            with open(path + ".tmp", "wb") as f:
                np.savez_compressed(f, **{f"{pop}/{k}": v for pop, d in self.state.items()
                                          for k, v in d.items()})
            os.replace(path + ".tmp", path)
        else:
            remove_stale([path])
        tmp = os.path.join(out_dir, "spikes.npz.tmp")
        with open(tmp, "wb") as f:
            np.savez_compressed(f, times=self.times, senders=self.senders,
                                pop_names=np.array(self.pop_names, dtype=str),
                                pop_offsets=self.pop_offsets, pop_sizes=self.pop_sizes,
                                recorded=self.recorded)
        os.replace(tmp, os.path.join(out_dir, "spikes.npz"))
        tmp = os.path.join(out_dir, "summary.json.tmp")
        with open(tmp, "w") as f:
            json.dump(self.summary(), f, indent=2, default=json_default)
        os.replace(tmp, os.path.join(out_dir, "summary.json"))

    def binned_rates(self, bin_ms: Optional[float] = None):
        """(edges in ms, rates in Hz of shape (populations, bins)): each population's rate
        in bins of ``bin_ms`` (default duration / 100, at least 1 ms, in whole steps),
        a spike in the bin (edge, edge + bin_ms] that holds its stamp (the end of its
        step).  The last bin ends with the run and may be shorter; each bin is divided by
        its own width.  NaN for unrecorded populations."""
        end = max(self.duration, self.dt)
        if bin_ms is None:
            bin_ms = max(1, round(max(end / 100, 1.0) / self.dt)) * self.dt
        bin_ms = number("binned_rates: bin_ms", bin_ms)
        if not bin_ms > 0:
            raise ModelError(f"binned_rates: bin_ms must be > 0 ms, got {bin_ms:g}")
        n_bins = max(1, int(np.ceil(end / bin_ms - 1e-9)))
        edges = np.minimum(np.arange(n_bins + 1) * bin_ms, end)
        b = np.clip(np.ceil(self.times / bin_ms - 1e-9).astype(np.int64) - 1, 0, n_bins - 1)
        pop = self.population_of()
        counts = np.zeros((len(self.pop_names), n_bins))
        np.add.at(counts, (pop, b), 1.0)
        rates = counts / (self.pop_sizes[:, None] * np.diff(edges)[None, :] * 1e-3)
        rates[~np.asarray(self.recorded, bool)] = np.nan
        return edges, rates

    def save_plots(self, out_dir: str, max_per_population: int = 200,
                   bin_ms: Optional[float] = None) -> List[str]:
        """Write ``raster.png`` (spikes of the first ``max_per_population`` neurons of each
        recorded population) and ``rates.png`` (population rates in bins of ``bin_ms``,
        default duration / 100, at least 1 ms, in whole steps) to ``out_dir``; returns the paths.
        Needs matplotlib (``pip install pyproc[plot]``): raises ImportError without it."""
        if bin_ms is not None:                 # checked before anything is written
            bin_ms = number("save_plots: bin_ms", bin_ms)
            if not bin_ms > 0:
                raise ModelError(f"save_plots: bin_ms must be > 0 ms, got {bin_ms:g}")
        if isinstance(max_per_population, bool) or not isinstance(
                max_per_population, (int, np.integer)) or max_per_population < 1:
            raise ModelError(f"save_plots: max_per_population must be a whole number >= 1, "
                             f"got {max_per_population!r}")
        from matplotlib.figure import Figure  # no pyplot: no GUI backend, no global state

        os.makedirs(out_dir, exist_ok=True)
        pop = self.population_of()
        colors = [f"C{i % 10}" for i in range(len(self.pop_names))]
        end = max(self.duration, self.dt)

        fig = Figure(figsize=(8, 5), layout="constrained")
        ax = fig.add_subplot()
        row0 = 0
        ticks, labels = [], []
        for i, name in enumerate(self.pop_names):
            if not self.recorded[i]:
                continue
            shown = int(min(self.pop_sizes[i], max_per_population))
            local = self.senders - self.pop_offsets[i]
            sel = (pop == i) & (local < shown)
            ax.scatter(self.times[sel], row0 + local[sel], s=3.0, marker="o", linewidths=0,
                       color=colors[i], rasterized=True)
            if row0:
                ax.axhline(row0 - 0.5, color="0.7", linewidth=0.5)
            ticks.append(row0 + shown / 2)
            labels.append(name)
            row0 += shown
        ax.set_yticks(ticks, labels)
        ax.set_xlim(0, end)
        ax.set_ylim(-0.5, max(row0, 1) - 0.5)
        ax.set_xlabel("time (ms)")
        ax.set_title(f"spikes (first {max_per_population} neurons per population)"
                     + ("  [partial run]" if self.meta.get("partial") else ""))
        raster = os.path.join(out_dir, "raster.png")
        fig.savefig(raster, dpi=120)

        edges, rates_t = self.binned_rates(bin_ms)
        bin_ms = edges[1] - edges[0]
        fig = Figure(figsize=(8, 4), layout="constrained")
        ax = fig.add_subplot()
        for i, name in enumerate(self.pop_names):
            if not self.recorded[i]:
                continue
            ax.stairs(rates_t[i], edges, color=colors[i],  # every bin drawn to its right edge
                      label=f"{name} ({self.rates()[i]:.2f} Hz)")
        ax.set_xlim(0, end)
        ax.set_xlabel("time (ms)")
        ax.set_ylabel(f"rate (Hz, {bin_ms:g} ms bins)")
        ax.legend(loc="upper right", fontsize="small")
        rates = os.path.join(out_dir, "rates.png")
        fig.savefig(rates, dpi=120)
        return [raster, rates]

    def save_state_plot(self, out_dir: str, max_per_population: int = 3) -> str:
        """Write ``state.png``: each recorded variable over time, one panel per variable,
        the first ``max_per_population`` recorded neurons of each population; returns the
        path.  Needs matplotlib and state recordings (``Network.record_state``)."""
        if not self.state:
            raise ModelError("save_state_plot: no state was recorded (Network.record_state)")
        return _state_plot(self, out_dir, max_per_population)


def _state_plot(res: "Results", out_dir: str, max_per_population: int) -> str:
    from matplotlib.figure import Figure
    os.makedirs(out_dir, exist_ok=True)
    names = [v for v in ("V_m", "I_syn_ex", "I_syn_in", "I_syn")
             if any(v in d for d in res.state.values())]
    fig = Figure(figsize=(8, 2.2 + 2.0 * len(names)), layout="constrained")
    axes = fig.subplots(len(names), 1, sharex=True, squeeze=False)[:, 0]
    pops = list(res.state)
    for ax, var in zip(axes, names):
        for i, pop in enumerate(pops):
            d = res.state[pop]
            if var not in d:
                continue
            for j in range(min(max_per_population, d[var].shape[1])):
                ax.plot(d["times"], d[var][:, j], color=f"C{i % 10}", linewidth=0.7,
                        label=pop if j == 0 else None)
        ax.set_ylabel(f"{var} ({'mV' if var == 'V_m' else 'pA'})")
        ax.legend(loc="upper right", fontsize="small", ncol=min(4, len(pops)))
    axes[0].set_title(f"state (first {max_per_population} recorded neurons per population)"
                      + ("  [partial run]" if res.meta.get("partial") else ""))
    axes[-1].set_xlabel("time (ms)")
    axes[-1].set_xlim(0, max(res.duration, res.dt))
    path = os.path.join(out_dir, "state.png")
    fig.savefig(path, dpi=120)
    return path


def json_default(o):
    """``json.dump(default=...)`` for NumPy scalars and arrays."""
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def load_results(out_dir: str) -> Results:
    """Load what :meth:`Results.save` wrote (complete or partial runs alike: ``meta`` holds
    everything of ``summary.json`` but the per-population table, which is recomputed).
    A folder without those files raises FileNotFoundError; files that are not what
    ``save`` writes raise ValueError naming the file and what is wrong with it."""
    path = os.path.join(out_dir, "spikes.npz")
    try:
        with open(path, "rb") as f:
            if f.read(4) != b"PK\x03\x04":            # every .npz is a zip archive
                raise ValueError("not a NumPy .npz archive")
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in ("times", "senders", "pop_names", "pop_offsets",
                                        "pop_sizes", "recorded")}
    except FileNotFoundError:
        raise FileNotFoundError(f"{out_dir!r} is not a pyproc results folder: no spikes.npz "
                                f"(written by Results.save and 'pyproc run')") from None
    except (ValueError, KeyError, OSError, EOFError) as e:     # not an npz, or not ours
        raise ValueError(f"{path}: not a pyproc spike file ({type(e).__name__}: "
                         f"{str(e).splitlines()[0] if str(e) else 'unreadable'})") from None
    path = os.path.join(out_dir, "summary.json")
    try:
        with open(path) as f:
            summ = json.load(f)
        duration, dt = float(summ["duration_ms"]), float(summ["dt_ms"])
    except FileNotFoundError:
        raise FileNotFoundError(f"{out_dir!r} is not a complete pyproc results folder: no "
                                f"summary.json beside spikes.npz") from None
    except json.JSONDecodeError as e:
        raise ValueError(f"{path}: not valid JSON ({e})") from None
    except (KeyError, TypeError, ValueError, AttributeError) as e:
        raise ValueError(f"{path}: not a pyproc summary (missing or bad field {e})") from None
    meta = {k: v for k, v in summ.items()
            if k not in ("populations", "duration_ms", "dt_ms", "total_spikes", "state")}
    state = {}
    path = os.path.join(out_dir, STATE_FILE)
    if os.path.exists(path):
        try:
            with np.load(path, allow_pickle=False) as z:
                for key in z.files:
                    pop, _, var = key.rpartition("/")
                    if not pop or not var:
                        raise ValueError(f"array {key!r} is not POPULATION/VARIABLE")
                    state.setdefault(pop, {})[var] = z[key]
        except (ValueError, KeyError, OSError, EOFError) as e:
            raise ValueError(f"{path}: not a pyproc state file ({type(e).__name__}: "
                             f"{str(e).splitlines()[0] if str(e) else 'unreadable'})") from None
    return Results(times=arrays["times"], senders=arrays["senders"],
                   pop_names=[str(s) for s in arrays["pop_names"]],
                   pop_offsets=arrays["pop_offsets"], pop_sizes=arrays["pop_sizes"],
                   recorded=arrays["recorded"], duration=duration, dt=dt,
                   meta=meta, state=state)

"""Simulation results: spikes, per-population summary, saving and loading."""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from typing import Dict, List, Optional

import numpy as np

__all__ = ["Results", "load_results"]


@dataclass
class Results:
    """Spikes (``times`` in ms, ``senders`` as global neuron ids) and metadata."""
    times: np.ndarray
    senders: np.ndarray
    pop_names: List[str]
    pop_offsets: np.ndarray
    pop_sizes: np.ndarray
    recorded: np.ndarray
    duration: float            # ms of model time simulated
    dt: float
    meta: Dict[str, object] = field(default_factory=dict)

    def population_of(self, senders: Optional[np.ndarray] = None) -> np.ndarray:
        s = self.senders if senders is None else senders
        return np.searchsorted(self.pop_offsets, s, side="right") - 1

    def spike_counts(self) -> np.ndarray:
        return np.bincount(self.population_of(), minlength=len(self.pop_names))

    def rates(self) -> np.ndarray:
        """Mean rate per population in Hz (NaN for unrecorded populations)."""
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
        return {"populations": pops, "duration_ms": self.duration, "dt_ms": self.dt,
                "total_spikes": int(self.times.size), **self.meta}

    def save(self, out_dir: str) -> None:
        """Write ``spikes.npz`` (times, senders) and ``summary.json`` to ``out_dir``."""
        os.makedirs(out_dir, exist_ok=True)
        np.savez_compressed(os.path.join(out_dir, "spikes.npz"), times=self.times,
                            senders=self.senders, pop_names=np.array(self.pop_names),
                            pop_offsets=self.pop_offsets, pop_sizes=self.pop_sizes,
                            recorded=self.recorded)
        tmp = os.path.join(out_dir, "summary.json.tmp")
        with open(tmp, "w") as f:
            json.dump(self.summary(), f, indent=2, default=_json_default)
        os.replace(tmp, os.path.join(out_dir, "summary.json"))


def _json_default(o):
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def load_results(out_dir: str) -> Results:
    """Load what :meth:`Results.save` wrote."""
    z = np.load(os.path.join(out_dir, "spikes.npz"))
    with open(os.path.join(out_dir, "summary.json")) as f:
        summ = json.load(f)
    meta = {k: v for k, v in summ.items()
            if k not in ("populations", "duration_ms", "dt_ms", "total_spikes")}
    return Results(times=z["times"], senders=z["senders"], pop_names=[str(s) for s in z["pop_names"]],
                   pop_offsets=z["pop_offsets"], pop_sizes=z["pop_sizes"], recorded=z["recorded"],
                   duration=summ["duration_ms"], dt=summ["dt_ms"], meta=meta)

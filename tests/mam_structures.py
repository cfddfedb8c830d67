"""Toy structures in the multi-area model file's format (the real file is not shipped),
shared by the tests: ``structure(...)`` fills in the blocks every toy has in common."""
from __future__ import annotations

from typing import Dict, List

J_E, J_I, J_4E, J_X = 87.8, -965.9, 175.6, 87.8


def structure(layers: Dict[str, List[str]], N, S, K_ext, distances, **extra) -> dict:
    """A structure with the given areas -> populations, sizes N, synapse matrix S (target
    rows, source columns, populations in area order), external in-degrees and inter-area
    distances (mm); ``extra`` keys are added or replace the defaults."""
    areas = list(layers)
    d = {
        "areas": areas, "populations_per_area": layers,
        "pop_labels": [f"{a}-{x}" for a in areas for x in layers[a]],
        "N": N, "synapses": S, "K_ext": K_ext,
        "external_input": {"rate_ext_Hz": 10.0},
        "neuron": {"E_L": -65.0, "V_th": -50.0, "V_reset": -65.0, "C_m": 250.0, "tau_m": 10.0,
                   "tau_syn_ex": 0.5, "tau_syn_in": 0.5, "t_ref": 2.0, "V0_mean_mV": -150.0,
                   "V0_sd_mV": 50.0},
        "weights": {"J_E_pA": J_E, "J_I_pA": J_I, "J_4E_to_23E_intra_pA": J_4E,
                    "J_ext_pA": J_X, "rel_sd": 0.1},
        "delays": {"delay_e_ms": 1.5, "delay_i_ms": 0.75, "delay_rel_sd": 0.5,
                   "interarea_speed_mm_per_ms": 3.5, "distances_mm": distances},
    }
    d.update(extra)
    return d


def one_area() -> dict:
    """A one-area structure (A: 23E, 23I)."""
    return structure({"A": ["23E", "23I"]}, [400, 100], [[8000, 6000], [4000, 2000]],
                     [1200.0, 1100.0], {"A": {"A": 0.0}})


def two_areas() -> dict:
    """A two-area structure (A, B: 23E, 23I each)."""
    return structure({"A": ["23E", "23I"], "B": ["23E", "23I"]}, [400, 100, 350, 90],
                     [[8000, 6000, 2500, 0], [4000, 2000, 1500, 0], [3000, 0, 7000, 5000],
                      [1500, 0, 3000, 1000]],
                     [1200.0, 1100.0, 1250.0, 1150.0],
                     {"A": {"A": 0.0, "B": 21.0}, "B": {"A": 21.0, "B": 0.0}})

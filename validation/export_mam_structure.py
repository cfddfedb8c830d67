"""Write the multi-area model's structure file from the authors' reference code.

pyproc does not ship the multi-area model's data: it is derived from
INM-6/multi-area-model (Schmidt et al. 2018), licensed CC BY-NC-SA 4.0.  This
script produces the JSON file that ``pyproc.models.multiarea.load_structure``
reads (``pyproc ... --structure PATH``).

How to produce the file
-----------------------
1. Get the authors' code at the commit pyproc was checked against::

       git clone https://github.com/INM-6/multi-area-model
       cd multi-area-model && git checkout 355d940

2. Install its Python requirements (``pip install -r requirements.txt``: numpy,
   scipy, pandas, dicthash, ...; NEST is *not* needed: ``--stub-nest`` puts an
   empty ``nest`` module in place), and create its ``config.py`` from
   ``config_template.py`` (``base_path`` = the clone, ``data_path`` any folder).
   Without R the data script falls back to the hard-coded SLN fit the authors
   provide, which is the pipeline the reference file used.

3. Run, from anywhere::

       python validation/export_mam_structure.py --repo /path/to/multi-area-model \\
           --out mam_structure.json [--fullscale-rates tests/fullscale_rates.json]

   The in-degrees are the stabilised ones of Schuecker et al. (2017),
   ``figures/SchueckerSchmidt2017/K_prime_original.npy`` (``--k-stable``), as in
   the published simulations.  ``--fullscale-rates`` (optional) adds the
   authors' full-scale rates, which reduced pyproc models then use for their DC
   compensation.

4. Check it: ``python -c "from pyproc.models.multiarea import load_structure;
   print(load_structure('mam_structure.json').counts())"`` must print 254
   populations, 4,129,924 neurons, 8,344 projections, 24,126,516,728 synapses.

Keep the file outside the pyproc checkout (its licence is not pyproc's).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import types

POP_ORDER_NOTE = ("row = target population, column = source population, both in pop_labels "
                  "order (area-major, populations in the model's structure order)")


def _import_model(repo: str, stub_nest: bool):
    """Import the authors' ``multiarea_model`` from ``repo`` (lazily, with a clear error)."""
    repo = os.path.abspath(repo)
    if repo not in sys.path:
        sys.path.insert(0, repo)
    if stub_nest and "nest" not in sys.modules:
        sys.modules["nest"] = types.ModuleType("nest")   # the structure needs no simulator
    try:
        from multiarea_model import MultiAreaModel   # noqa: WPS433 (lazy by design)
    except ImportError as e:
        sys.exit(f"export_mam_structure: cannot import the authors' package multiarea_model "
                 f"from {repo} ({e}).\nClone https://github.com/INM-6/multi-area-model at commit "
                 f"355d940, install its requirements, create its config.py, and pass --repo.")
    return MultiAreaModel


def _vector(d, areas, structure):
    return [float(d[a][p]) for a in areas for p in structure[a]]


def build(repo: str, k_stable: str, fullscale_rates: str = None, stub_nest: bool = True) -> dict:
    """The structure dict, in the format ``pyproc.models.multiarea`` reads."""
    MultiAreaModel = _import_model(repo, stub_nest)
    states = {}
    model = None
    for state, (chi, chi_I) in (("ground_state", (1.0, 1.0)), ("metastable_state", (1.9, 2.0))):
        conn = {"g": -11.0, "K_stable": k_stable, "cc_weights_factor": chi,
                "cc_weights_I_factor": chi_I, "fac_nu_ext_5E": 1.125,
                "fac_nu_ext_6E": 1.125 * 10 / 3.0 - 7 / 3.0, "fac_nu_ext_TH": 1.2}
        M = MultiAreaModel({"connection_params": conn, "input_params": {"rate_ext": 10.0},
                            "neuron_params": {"V0_mean": -150.0, "V0_sd": 50.0}})
        states[state] = (M, chi, chi_I)
        model = model or M
    M = model
    areas = list(M.area_list)
    structure = {a: list(M.structure[a]) for a in areas}
    labels = [f"{a}-{p}" for a in areas for p in structure[a]]
    n_float = _vector(M.N, areas, structure)
    n_int = [int(x) for x in n_float]                       # simulators truncate
    syn_float = [[float(M.synapses[ta][tp][sa][sp]) for sa in areas for sp in structure[sa]]
                 for ta in areas for tp in structure[ta]]
    syn_int = [[int(x) for x in row] for row in syn_float]
    k_ext = [float(M.K[a][p]["external"]["external"]) for a in areas for p in structure[a]]
    P = M.params
    cp, neuron = P["connection_params"], P["neuron_params"]
    single = neuron["single_neuron_dict"]
    w_ext = float(M.W[areas[0]][structure[areas[0]][0]]["external"]["external"])
    psc_over_psp = w_ext / cp["PSP_ext"]
    weights = {
        "PSP_e_mV": cp["PSP_e"], "PSP_e_23_4_mV": cp["PSP_e_23_4"], "PSP_ext_mV": cp["PSP_ext"],
        "g": cp["g"], "PSC_over_PSP_pA_per_mV": psc_over_psp,
        "J_E_pA": cp["PSP_e"] * psc_over_psp, "J_ext_pA": w_ext,
        "J_I_pA": cp["g"] * cp["PSP_e"] * psc_over_psp,
        "J_4E_to_23E_intra_pA": cp["PSP_e_23_4"] * psc_over_psp,
        "rel_sd": cp["PSC_rel_sd_normal"], "ext_weight_sd": 0.0,
        "cc_rule": "inter-area mean & sd: *chi for all targets; *chi*chi_I for inhibitory "
                   "target populations",
    }
    for state, (Ms, chi, chi_I) in states.items():
        weights[state] = {"chi": chi, "chi_I": chi_I, "W_mean_pA": [
            [float(Ms.W[ta][tp][sa][sp]) for sa in areas for sp in structure[sa]]
            for ta in areas for tp in structure[ta]]}
    dp = P["delay_params"]
    out = {
        "description": "Schmidt et al. 2018 multi-area model structure, exported from "
                       "INM-6/multi-area-model by pyproc's validation/export_mam_structure.py",
        "provenance": {"repo": "https://github.com/INM-6/multi-area-model",
                       "commit": _git_head(repo), "K_stable": k_stable,
                       "license": "CC BY-NC-SA 4.0",
                       "network_label_ground": states["ground_state"][0].label,
                       "network_label_metastable": states["metastable_state"][0].label},
        "areas": areas, "population_list": list(structure[areas[0]]),
        "populations_per_area": structure, "pop_labels": labels,
        "matrix_convention": POP_ORDER_NOTE,
        "N_float": n_float, "N": n_int, "synapses_float": syn_float, "synapses": syn_int,
        "K_ext": k_ext,
        "external_input": {"type": "Poisson", "rate_ext_Hz": P["input_params"]["rate_ext"]},
        "neuron": {"model": "iaf_psc_exp", "E_L": single["E_L"], "V_th": single["V_th"],
                   "V_reset": single["V_reset"], "C_m": single["C_m"],
                   "tau_m": single["tau_m"], "tau_syn_ex": single["tau_syn_ex"],
                   "tau_syn_in": single["tau_syn_in"], "t_ref": single["t_ref"],
                   "I_e_pA": single.get("I_e", 0.0), "V0_mean_mV": neuron["V0_mean"],
                   "V0_sd_mV": neuron["V0_sd"], "units": "mV, pF, ms"},
        "weights": weights,
        "delays": {"delay_e_ms": dp["delay_e"], "delay_i_ms": dp["delay_i"],
                   "delay_rel_sd": dp["delay_rel"],
                   "interarea_speed_mm_per_ms": dp["interarea_speed"],
                   "distances_mm": {t: {s: float(M.distances[t][s]) for s in areas}
                                    for t in areas}},
    }
    if fullscale_rates:
        with open(fullscale_rates) as f:
            r = json.load(f)
        out["fullscale_rates_Hz"] = [float(r[a][p]) for a in areas for p in structure[a]]
    same = [[labels[t].split("-")[0] == labels[s].split("-")[0] for s in range(len(labels))]
            for t in range(len(labels))]
    intra = sum(x for t, row in enumerate(syn_int) for s, x in enumerate(row) if same[t][s])
    total = sum(map(sum, syn_int))
    out["totals"] = {"n_populations": len(labels), "N_int": sum(n_int), "synapses_int": total,
                     "synapses_int_intra_area": intra, "synapses_int_inter_area": total - intra,
                     "n_projections_nonzero_int": sum(1 for row in syn_int for x in row if x > 0)}
    return out


def _git_head(repo: str) -> str:
    try:
        import subprocess
        return subprocess.run(["git", "-C", repo, "rev-parse", "HEAD"], capture_output=True,
                              text=True, check=True).stdout.strip()
    except Exception:   # not a git checkout: record nothing rather than guess
        return "unknown"


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repo", required=True, help="clone of INM-6/multi-area-model (355d940)")
    ap.add_argument("--out", required=True, help="JSON file to write (outside pyproc)")
    ap.add_argument("--k-stable", default=None,
                    help="stabilised in-degrees (default: REPO/figures/SchueckerSchmidt2017/"
                         "K_prime_original.npy)")
    ap.add_argument("--fullscale-rates", default=None,
                    help="optional rates file of a full-scale run (REPO/tests/fullscale_rates.json)")
    ap.add_argument("--no-stub-nest", action="store_true", help="import the real nest module")
    a = ap.parse_args(argv)
    k_stable = a.k_stable or os.path.join(os.path.abspath(a.repo), "figures",
                                          "SchueckerSchmidt2017", "K_prime_original.npy")
    out = build(a.repo, k_stable, a.fullscale_rates, stub_nest=not a.no_stub_nest)
    with open(a.out, "w") as f:
        json.dump(out, f)
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    from pyproc.models.multiarea import load_structure
    print(json.dumps(load_structure(a.out).counts(), indent=2))


if __name__ == "__main__":
    main()

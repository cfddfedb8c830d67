"""The multi-area model: structure-file validation, totals, weights/delays, scaling with
DC compensation, and a reduced model whose procedural run equals the stored one.

The real structure file (CC BY-NC-SA, kept outside the project) is used where
``tests/reference_data.py`` finds it (``PYPROC_MAM_STRUCTURE``); those tests skip
otherwise.  Everything else uses small synthetic structures."""
import json
import math

import numpy as np
import pytest

import pyproc as pp
from pyproc.compile import compile_network
from pyproc.models import MODELS
from pyproc.models.multiarea import (DEFAULT_RATES_HZ, GENN_DELAY_CLIP_SD, STATES, load_structure,
                                     multiarea, network_totals)

import reference_data  # noqa: E402  (tests/ is on sys.path)

REAL = reference_data.path("mam_structure")
needs_real = pytest.mark.skipif(not reference_data.available("mam_structure"),
                                reason=reference_data.skip_reason("mam_structure"))

from mam_structures import J_E, J_I, J_X, structure  # noqa: E402  (the toy structures)


def tiny() -> dict:
    """A two-area structure in the file's format: A has 23E, 23I, 4E, 4I; B has 23E, 23I."""
    layers = {"A": ["23E", "23I", "4E", "4I"], "B": ["23E", "23I"]}
    N = [400, 100, 300, 80, 350, 90]
    S = [[8000, 6000, 9000, 2000, 3000, 0],       # A-23E  <- (A: 23E 23I 4E 4I, B: 23E 23I)
         [4000, 2000, 1000, 500, 1500, 0],        # A-23I
         [1000, 500, 6000, 3000, 0, 0],           # A-4E
         [2000, 400, 2500, 900, 700, 0],          # A-4I
         [2500, 0, 1200, 0, 7000, 5000],          # B-23E
         [1500, 0, 0, 0, 3000, 1000]]             # B-23I
    d = structure(layers, N, S, [1200.0, 1100.0, 1300.0, 1000.0, 1250.0, 1150.0],
                  {"A": {"A": 0.0, "B": 21.0}, "B": {"A": 21.0, "B": 0.0}},
                  population_list=["23E", "23I", "4E", "4I"])
    labels = d["pop_labels"]
    same = [[labels[t][0] == labels[s][0] for s in range(6)] for t in range(6)]
    d["external_input"]["type"] = "Poisson"
    d["neuron"].update(model="iaf_psc_exp", I_e_pA=0.0)
    d["totals"] = {"n_populations": 6, "N_int": sum(N), "synapses_int": sum(map(sum, S)),
                   "n_projections_nonzero_int": sum(1 for r in S for x in r if x > 0),
                   "synapses_int_intra_area": sum(S[t][s] for t in range(6) for s in range(6)
                                                  if same[t][s])}
    return d


def _mean(p):
    """Mean of a projection's weight or delay distribution."""
    return p.mean if hasattr(p, "mean") else p.value


# -- loader validation -----------------------------------------------------------------------
def test_tiny_structure_loads_from_dict_and_file(tmp_path):
    st = load_structure(tiny())
    assert st.n_pops == 6 and st.counts()["neurons"] == 1320
    f = tmp_path / "mam.json"
    f.write_text(json.dumps(tiny()))
    st2 = load_structure(str(f))
    assert st2.source == str(f)
    np.testing.assert_array_equal(st2.synapses, st.synapses)
    assert load_structure(st2) is st2


def _mutate(path, value=None, delete=False):
    d = tiny()
    obj = d
    for k in path[:-1]:
        obj = obj[k]
    if delete:
        del obj[path[-1]]
    else:
        obj[path[-1]] = value
    return d


@pytest.mark.parametrize("path,match", [
    (("N",), r"missing field N\b"),
    (("synapses",), "missing field synapses"),
    (("weights", "J_E_pA"), r"missing field weights\.J_E_pA"),
    (("neuron", "tau_syn_in"), r"missing field neuron\.tau_syn_in"),
    (("delays", "distances_mm"), r"missing field delays\.distances_mm"),
    (("external_input", "rate_ext_Hz"), r"missing field external_input\.rate_ext_Hz"),
    (("populations_per_area", "B"), r"missing field populations_per_area\.B"),
])
def test_missing_field_is_named(path, match):
    with pytest.raises(pp.ModelError, match=match):
        load_structure(_mutate(path, delete=True))


def test_missing_distance_is_named():
    d = tiny()
    del d["delays"]["distances_mm"]["B"]["A"]
    with pytest.raises(pp.ModelError, match=r"missing field delays\.distances_mm\.B\.A"):
        load_structure(d)


@pytest.mark.parametrize("path,value,match", [
    (("synapses",), [[1] * 6] * 5, r"synapses has shape \(5, 6\), expected \(6, 6\)"),
    (("synapses",), [[1] * 6] * 5 + [[1] * 5], "synapses must be a numeric array"),
    (("N",), [400, 100, 300], r"N has shape \(3,\), expected \(6,\)"),
    (("K_ext",), [1.0] * 7, r"K_ext has shape \(7,\)"),
    (("N",), [400, 100, 300, -80, 350, 90], r"N\[3\] = -80 \(must be >= 0\)"),
    (("N",), [400, 100, 300, 0, 350, 90], r"N\[3\] \(A-4I\) is 0"),
    (("N",), [400, 100.5, 300, 80, 350, 90], r"N\[1\] = 100.5 is not a whole number"),
    (("K_ext",), [1.0, float("nan"), 1.0, 1.0, 1.0, 1.0], r"K_ext\[1\] is nan"),
    (("weights", "J_E_pA"), float("nan"), r"weights\.J_E_pA must be finite"),
    (("weights", "J_I_pA"), 5.0, r"weights\.J_I_pA must be < 0"),
    (("delays", "interarea_speed_mm_per_ms"), 0.0, r"interarea_speed_mm_per_ms must be > 0"),
    (("pop_labels",), ["A-23E"] * 6, "pop_labels must list"),
    (("populations_per_area", "B"), ["23E", "23X"], "must end in E or I"),
    (("totals", "N_int"), 1321, r"totals\.N_int declares 1321 but the file holds 1320"),
    (("totals", "synapses_int"), 1, r"totals\.synapses_int declares 1 "),
    (("totals", "n_projections_nonzero_int"), 3, r"totals\.n_projections_nonzero_int"),
])
def test_bad_values_are_named(path, value, match):
    with pytest.raises(pp.ModelError, match=match):
        load_structure(_mutate(path, value))


def test_negative_and_nan_synapse_counts_are_named():
    d = tiny()
    d["synapses"][2][4] = -7
    with pytest.raises(pp.ModelError, match=r"synapses\[2, 4\] = -7 \(must be >= 0\)"):
        load_structure(d)
    d = tiny()
    d["synapses"][1][0] = float("nan")
    with pytest.raises(pp.ModelError, match=r"synapses\[1, 0\] is nan"):
        load_structure(d)


def test_zero_distance_between_connected_areas_is_rejected():
    d = tiny()
    d["delays"]["distances_mm"]["B"]["A"] = 0.0
    with pytest.raises(pp.ModelError, match=r"distances_mm\.B\.A must be > 0"):
        load_structure(d)


def test_file_errors(tmp_path):
    with pytest.raises(pp.ModelError, match="not found.*export_mam_structure"):
        load_structure(str(tmp_path / "absent.json"))
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(pp.ModelError, match="not readable JSON"):
        load_structure(str(bad))
    with pytest.raises(pp.ModelError, match="path or a dict"):
        load_structure(42)


# -- the model on the synthetic structure ----------------------------------------------------
def test_full_tiny_model_structure():
    net = multiarea(tiny())
    assert list(net.populations) == tiny()["pop_labels"]
    S = np.array(tiny()["synapses"])
    assert network_totals(net) == {"populations": 6, "neurons": 1320,
                                   "projections": int((S > 0).sum()), "synapses": int(S.sum())}
    for p in net.projections.values():
        assert p.rule.allow_autapses and p.rule.allow_multapses
    pop = net.populations["A-23E"]
    assert pop.params.I_e == 0.0                # full model: no DC
    assert (pop.v_init.mean, pop.v_init.sd) == (-150.0, 50.0)
    assert pop.params.tau_syn_ex == pop.params.tau_syn_in == 0.5
    assert net.poisson["B-23I"][0].K == 1150.0 and net.poisson["B-23I"][0].rate == 10.0
    assert net.poisson["B-23I"][0].weight == J_X


@pytest.mark.parametrize("state", ["ground", "metastable"])
def test_weights_and_chi_factors(state):
    chi, chi_I = STATES[state]
    net = multiarea(tiny(), state=state)
    P = net.projections
    expect = {"A-23E->A-23E": J_E, "A-23I->A-23E": J_I, "A-4E->A-23E": 2 * J_E,
              "A-4E->A-4E": J_E, "A-4I->A-23I": J_I,
              "A-23E->B-23E": J_E * chi, "A-23E->B-23I": J_E * chi * chi_I,
              "B-23E->A-23E": J_E * chi, "B-23E->A-4I": J_E * chi * chi_I,
              "B-23I->B-23E": J_I}
    for name, w in expect.items():
        assert P[name].weight.mean == pytest.approx(w, rel=1e-12), name
        assert P[name].weight.sd == pytest.approx(0.1 * abs(w), rel=1e-12), name
    assert STATES == {"ground": (1.0, 1.0), "metastable": (1.9, 2.0)}


def test_chi_override():
    P = multiarea(tiny(), state="ground", chi=1.5, chi_I=2.0).projections
    assert P["A-23E->B-23I"].weight.mean == pytest.approx(J_E * 3.0)
    assert P["A-23E->B-23E"].weight.mean == pytest.approx(J_E * 1.5)
    assert P["A-4E->A-23E"].weight.mean == pytest.approx(2 * J_E)     # intra: no chi


def test_delays():
    P = multiarea(tiny()).projections
    for name, m in (("A-23E->A-4I", 1.5), ("A-4I->A-23E", 0.75), ("A-23E->B-23I", 6.0),
                    ("B-23E->A-23E", 6.0)):
        d = P[name].delay
        assert d.mean == pytest.approx(m) and d.sd == pytest.approx(0.5 * m), name
        assert d.high == pytest.approx(m + GENN_DELAY_CLIP_SD * 0.5 * m), name
    d = multiarea(tiny(), delay_clip_sd=None).projections["A-23E->B-23I"].delay
    assert d.high is None and d.mean == pytest.approx(6.0)


def test_delay_clip_sizes_the_rings():
    clipped = compile_network(multiarea(tiny()))
    free = compile_network(multiarea(tiny(), delay_clip_sd=None))
    # inter-area mean 6 ms, sd 3 ms: clipped at 6 + 3.719 * 3 = 17.157 ms
    assert clipped.max_delay_steps() == 172
    assert free.max_delay_steps() > 240         # ~ mean + 6.2 sd
    assert clipped.ring_size < free.ring_size


def test_areas_subset_and_scaling():
    d = tiny()
    S, N = np.array(d["synapses"]), np.array(d["N"])
    net = multiarea(d, areas=["B"], scale=0.5, k_scale=0.25)
    assert list(net.populations) == ["B-23E", "B-23I"]
    assert [p.size for p in net.populations.values()] == [175, 45]
    assert all(p.source.startswith("B-") for p in net.projections.values())
    # fixed_total_number: full in-degree x k_scale x scaled target size
    assert net.projections["B-23I->B-23E"].rule.N == round(5000 * 0.25 * 175 / 350)
    assert net.projections["B-23E->B-23E"].weight.mean == pytest.approx(J_E / 0.5)
    assert net.poisson["B-23E"][0].K == pytest.approx(1250.0 * 0.25)
    assert net.poisson["B-23E"][0].weight == pytest.approx(J_X / 0.5)
    with pytest.raises(pp.ModelError, match="areas must be distinct names"):
        multiarea(d, areas=["C"])
    with pytest.raises(pp.ModelError, match="state must be one of"):
        multiarea(d, state="awake")
    with pytest.raises(pp.ModelError, match="scale and k_scale must be <= 1"):
        multiarea(d, scale=2.0)


def test_small_k_scale_warns_that_the_model_falls_silent():
    """In-degrees scaled below 0.25 with the default DC (negative: the MAM's input is
    inhibitory) make a silent model (measured on V1 + V2): warned, naming --k-scale 1;
    not with k_scale >= 0.25, nor with rates=0 (external compensation only)."""
    import warnings
    d = tiny()
    with pytest.warns(UserWarning, match=r"k_scale = 0.1 .*falls silent.*--k-scale 1"):
        multiarea(d, scale=0.5, k_scale=0.1)
    with pytest.warns(UserWarning, match="k_scale = 0.2 "):
        multiarea(d, scale=0.2)                         # the default k_scale = scale
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        multiarea(d, scale=0.5, k_scale=0.25)
        multiarea(d, scale=0.5, k_scale=0.1, rates=0)


def test_dc_compensation_formula():
    """I_DC = 1e-3 tau sum_s nu_s (K J - K' J') + the same for the Poisson input."""
    d = tiny()
    S, N = np.array(d["synapses"], float), np.array(d["N"], float)
    rates = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]
    k = 0.25
    J = {0: J_E, 1: J_I, 2: J_E, 3: J_I}          # sources of B-23I: A-23E, B-23E, B-23I
    for missing in (True, False):
        net = multiarea(d, areas=["B"], scale=0.5, k_scale=k, rates=rates,
                        missing_areas="dc" if missing else "none")
        old = multiarea(d, areas=["B"], scale=0.5, k_scale=k, rates=rates,
                        compensate_missing=missing)          # the older spelling
        assert old.populations["B-23I"].params.I_e == net.populations["B-23I"].params.I_e
        t, n_red = 5, 45                           # B-23I
        lost = 0.0
        for s, Jm in ((0, J_E * 1.0), (4, J_E), (5, J_I)):   # ground: chi = chi_I = 1
            if s == 0 and not missing:
                continue
            K_red = 0.0 if s == 0 else round(S[t, s] * k * n_red / N[t]) / n_red
            lost += rates[s] * (S[t, s] / N[t] * Jm - K_red * Jm / math.sqrt(k))
        lost += 10.0 * (1150.0 * J_X - 1150.0 * k * J_X / math.sqrt(k))
        assert net.populations["B-23I"].params.I_e == pytest.approx(1e-3 * 0.5 * lost, rel=1e-12)
    default = multiarea(d, areas=["A"], scale=0.5)
    assert default.populations["A-23E"].params.I_e != 0.0
    assert DEFAULT_RATES_HZ["23E"] < DEFAULT_RATES_HZ["23I"]


@pytest.mark.parametrize("state", ["ground", "metastable"])
@pytest.mark.parametrize("k", [1.0, 0.25])
def test_missing_areas_as_poisson_input(state, k):
    """missing_areas="poisson": each target of the simulated area B gets one more Poisson
    input for A (all of A's sources of B are excitatory, one cortico-cortical weight):
    K = sum_s K_ts k, rate = sum_s K_ts nu_s / sum_s K_ts, weight J_cc / sqrt(k); the DC
    keeps the same mean input as with "dc" (to 1e-12), and at k = 1 equals "none"'s."""
    d = tiny()
    rates = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]
    chi, chi_I = STATES[state]
    tau = load_structure(d).neuron["tau_syn_ex"]
    kw = dict(areas=["B"], scale=0.5, k_scale=k, rates=rates, state=state)
    dc, po, none = (multiarea(d, missing_areas=m, **kw) for m in ("dc", "poisson", "none"))
    # B-23E <- A-23E (2500 synapses onto 350 neurons) at 1 Hz and A-4E (1200) at 3 Hz;
    # B-23I <- A-23E (1500 onto 90) at 1 Hz
    for t, K_full, rate, J_cc in (("B-23E", (2500 + 1200) / 350, (2500 * 1 + 1200 * 3) / 3700,
                                   chi * J_E),
                                  ("B-23I", 1500 / 90, 1.0, chi * chi_I * J_E)):
        assert len(dc.poisson[t]) == 1 and len(po.poisson[t]) == 2
        assert po.poisson[t][0] == dc.poisson[t][0]           # the external input first
        cc = po.poisson[t][1]
        assert cc.K == pytest.approx(K_full * k, rel=1e-12)
        assert cc.rate == pytest.approx(rate, rel=1e-12)
        assert cc.weight == pytest.approx(J_cc / math.sqrt(k), rel=1e-12)
        mean_cc = 1e-3 * tau * cc.K * cc.rate * cc.weight     # pA
        assert dc.populations[t].params.I_e == pytest.approx(
            po.populations[t].params.I_e + mean_cc, rel=1e-12)
        if k == 1.0:
            assert po.populations[t].params.I_e == pytest.approx(
                none.populations[t].params.I_e, rel=1e-12, abs=1e-9)
    assert all(len(v) == 1 for v in none.poisson.values())
    # rates 0: nothing to send
    zero = multiarea(d, missing_areas="poisson", **{**kw, "rates": 0})
    assert all(len(v) == 1 for v in zero.poisson.values())


def test_missing_areas_poisson_runs_procedural_equals_stored():
    net = multiarea(tiny(), areas=["B"], scale=0.5, k_scale=1.0, seed=4,
                    rates=[5.0, 8.0, 5.0, 8.0, 5.0, 8.0], missing_areas="poisson")
    res = [pp.Simulation(net, connectivity=c).run(30.0) for c in ("procedural", "stored")]
    assert res[0].times.size > 20
    np.testing.assert_array_equal(res[0].times, res[1].times)
    np.testing.assert_array_equal(res[0].senders, res[1].senders)


def test_missing_areas_bad_value():
    with pytest.raises(pp.ModelError, match=r"multiarea: missing_areas must be one of dc, "
                                            r"poisson, none, got 'Poisson'"):
        multiarea(tiny(), areas=["B"], missing_areas="Poisson")
    with pytest.raises(pp.ModelError, match=r"multiarea: compensate_missing"):
        multiarea(tiny(), areas=["B"], compensate_missing="no")
    with pytest.raises(pp.ModelError, match=r"multiarea: give missing_areas or the older "
                                            r"compensate_missing, not both"):
        multiarea(tiny(), areas=["B"], missing_areas="poisson", compensate_missing=True)


def test_registered_in_models():
    assert MODELS["multiarea"] is multiarea


def test_reduced_tiny_procedural_equals_stored():
    net = multiarea(tiny(), state="metastable", scale=0.5, k_scale=0.5, seed=5)
    cnet = compile_network(net)
    res = [pp.Simulation(cnet, connectivity=c).run(25.0) for c in ("procedural", "stored")]
    assert res[0].times.size > 0
    np.testing.assert_array_equal(res[0].times, res[1].times)
    np.testing.assert_array_equal(res[0].senders, res[1].senders)


# -- the real structure file -----------------------------------------------------------------
@pytest.fixture(scope="module")
def real():
    return load_structure(REAL)


@needs_real
def test_real_file_totals(real):
    assert real.counts() == {"populations": 254, "neurons": 4_129_924, "projections": 8_344,
                             "synapses": 24_126_516_728, "synapses_intra_area": 19_670_575_847,
                             "synapses_inter_area": 4_455_940_881}
    assert len(real.areas) == 32 and real.layers["TH"] == ("23E", "23I", "5E", "5I", "6E", "6I")


@needs_real
def test_real_model_reproduces_totals_without_compiling(real):
    net = multiarea(real)
    assert network_totals(net) == {"populations": 254, "neurons": 4_129_924,
                                   "projections": 8_344, "synapses": 24_126_516_728}
    assert list(net.populations) == list(real.pop_labels)
    assert all(p.params.I_e == 0.0 for p in net.populations.values())


@needs_real
@pytest.mark.parametrize("state", ["ground", "metastable"])
def test_real_weights_equal_the_files_matrices(real, state):
    with open(REAL) as f:
        W = np.array(json.load(f)["weights"][state + "_state"]["W_mean_pA"])
    net = multiarea(real, state=state)
    idx = {lab: i for i, lab in enumerate(real.pop_labels)}
    for p in net.projections.values():
        t, s = idx[p.target], idx[p.source]
        assert p.weight.mean == pytest.approx(W[t, s], rel=1e-12), p.name
        assert p.weight.sd == pytest.approx(0.1 * abs(W[t, s]), rel=1e-12)


@needs_real
def test_real_delays(real):
    P = multiarea(real).projections
    d = P["V1-23E->V2-4E"].delay
    assert d.mean == pytest.approx(17.8644694083 / 3.5)
    assert d.high == pytest.approx(d.mean * (1 + 0.5 * GENN_DELAY_CLIP_SD))
    assert P["V1-23I->V1-23E"].delay.mean == 0.75 and P["V1-4E->V1-23E"].delay.mean == 1.5
    longest = max(p.delay.high for p in P.values())
    assert longest == pytest.approx(51.40320308254755, rel=1e-6)   # the file's GeNN figure


@needs_real
def test_real_reduced_two_areas_procedural_equals_stored(real):
    """V1 + V2 at 1 % of the neurons and 1 % of the in-degrees (3,550 neurons, 0.1 M
    synapses), 15 ms: every projection type (intra- and inter-area) delivers spikes.
    rates=0 compensates only the external input (its rate is known), which keeps this
    tiny network active (see the module doc on the silent state)."""
    net = multiarea(real, areas=["V1", "V2"], scale=0.01, seed=11, rates=0.0)
    assert len(net.populations) == 16 and net.n_neurons == 3550
    cnet = compile_network(net)
    res = [pp.Simulation(cnet, connectivity=c).run(15.0) for c in ("procedural", "stored")]
    assert res[0].times.size > 500
    np.testing.assert_array_equal(res[0].times, res[1].times)
    np.testing.assert_array_equal(res[0].senders, res[1].senders)

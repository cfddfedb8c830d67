"""The Potjans-Diesmann microcircuit: exact counts and parameters, scaling arithmetic,
analysis helpers and a fast smoke run of the validation suite (pyproc.validate)."""
from __future__ import annotations

import argparse
import json
import math

import numpy as np
import pytest
from scipy import stats

import pyproc as pp
from pyproc import Simulation
from pyproc.analysis import cv_isi, pairwise_correlations, rates_per_neuron
from pyproc.dist import Normal
from pyproc.errors import ModelError
from pyproc.models import MODELS, microcircuit
from pyproc.models.microcircuit import (CONN_PROBS, FULL_MEAN_RATES, K_EXT, N_FULL, POPULATIONS,
                                        derived, synapses_float)
from pyproc.results import Results
from pyproc.rules import FixedTotalNumber
from pyproc import validate

import reference_data

POPS = ["L23E", "L23I", "L4E", "L4I", "L5E", "L5I", "L6E", "L6I"]


def _shared():
    with open(reference_data.require("microcircuit")) as f:
        return json.load(f)


# -- exact model numbers ---------------------------------------------------------------
def test_registered():
    assert MODELS["microcircuit"] is microcircuit


def test_populations_full_scale():
    net = microcircuit()
    assert list(net.populations) == POPS
    assert [net.populations[p].size for p in POPS] == [20683, 5834, 21915, 5479, 4850, 1065,
                                                       14395, 2948]
    assert net.n_neurons == 77169
    par = net.populations["L5E"].params
    assert (par.C_m, par.tau_m, par.E_L, par.V_th, par.V_reset, par.t_ref, par.tau_syn_ex,
            par.tau_syn_in) == (250.0, 10.0, -65.0, -50.0, -65.0, 2.0, 0.5, 0.5)


def test_synapse_counts_full_scale_hard_coded():
    net = microcircuit()
    n = {name: pr.rule.N for name, pr in net.projections.items()}
    assert n["L23E->L23E"] == 45_499_805
    assert n["L4E->L23E"] == 20_253_647
    assert n["L6I->L6E"] == 10_827_677
    assert n["L5I->L4E"] == 7_003
    assert n["L4I->L6I"] == 8_078
    assert sum(n.values()) == 298_880_968
    # zero-probability pairs have no projection; every other pair has one
    assert len(n) == int((CONN_PROBS > 0).sum()) == 55
    assert "L5I->L23E" not in n and "L6I->L4E" not in n
    for pr in net.projections.values():
        assert isinstance(pr.rule, FixedTotalNumber)
        assert pr.rule.allow_autapses and pr.rule.allow_multapses


def test_synapse_counts_match_published_table():
    d = _shared()
    assert list(d["populations"]) == POPS
    np.testing.assert_array_equal(N_FULL, d["N"])
    np.testing.assert_array_equal(CONN_PROBS, d["conn_probs"])
    np.testing.assert_array_equal(K_EXT, d["K_ext"])
    np.testing.assert_allclose(synapses_float(), d["synapses_float"], rtol=1e-12, atol=1e-6)
    net = microcircuit()
    got = np.zeros((8, 8), np.int64)
    for pr in net.projections.values():
        got[POPS.index(pr.target), POPS.index(pr.source)] = pr.rule.N
    np.testing.assert_array_equal(got, d["synapses_round"])
    assert got.sum() == d["synapses_total_round"]
    o = d["initial_V"]["optimized"]
    from pyproc.models.microcircuit import V0_OPTIMIZED_MEAN, V0_OPTIMIZED_SD
    np.testing.assert_array_equal(V0_OPTIMIZED_MEAN, o["mean_mV"])
    np.testing.assert_array_equal(V0_OPTIMIZED_SD, o["sd_mV"])


def test_full_scale_mean_rates():
    """The full-scale rates of the NEST PD14 example (Hz, L23E .. L6I) that the DC
    compensation of scaled networks uses (here, not in the test above: no shared data needed)."""
    np.testing.assert_array_equal(FULL_MEAN_RATES,
                                  [0.943, 3.026, 4.368, 5.882, 7.733, 8.664, 1.096, 7.851])


def test_weights_and_delays_full_scale():
    net = microcircuit()
    p = net.projections
    for name, mean in (("L4E->L23E", 175.6), ("L23E->L23E", 87.8),   # L4E->L23E doubled
                       ("L23I->L4E", -351.2), ("L6I->L6I", -351.2)):  # g = -4
        w = p[name].weight
        assert isinstance(w, Normal) and w.mean == mean
        assert math.isclose(w.sd, abs(mean) * 0.1, rel_tol=1e-15)
    for name, pr in p.items():
        exc = pr.source.endswith("E")
        assert pr.delay == (Normal(1.5, 0.75) if exc else Normal(0.75, 0.375)), name
        w = pr.weight
        assert (w.mean > 0) == exc and math.isclose(w.sd, 0.1 * abs(w.mean), rel_tol=1e-15)


def test_background_poisson_and_dc():
    net = microcircuit()
    for i, pop in enumerate(POPS):
        (pin,) = net.poisson[pop]
        assert (pin.rate, pin.K, pin.weight) == (8.0, K_EXT[i], 87.8)
        assert net.populations[pop].params.I_e == 0.0
    dc = microcircuit(poisson=False)
    assert dc.poisson == {}
    # DC equivalent = nu K_ext w tau_syn: 8 Hz * 1600 * 87.8 pA * 0.5 ms = 561.92 pA
    assert math.isclose(dc.populations["L23E"].params.I_e, 561.92, rel_tol=1e-12)
    for i, pop in enumerate(POPS):
        assert math.isclose(dc.populations[pop].params.I_e,
                            8.0 * K_EXT[i] * 87.8 * 0.5e-3, rel_tol=1e-12)


def test_initial_voltage_options():
    opt = microcircuit(scale=0.01)
    assert opt.populations["L23E"].v_init == Normal(-68.28, 5.36)
    assert opt.populations["L6I"].v_init == Normal(-61.43, 4.48)
    orig = microcircuit(scale=0.01, v_init="original")
    assert all(p.v_init == Normal(-58.0, 10.0) for p in orig.populations.values())
    with pytest.raises(ModelError, match="v_init"):
        microcircuit(scale=0.01, v_init="random")


@pytest.mark.parametrize("bad", [0.0, -0.1, 1.5, float("nan"), "x"])
def test_scale_errors(bad):
    with pytest.raises(ModelError, match="scale"):
        microcircuit(scale=bad)


def test_scale_that_empties_a_population_names_it():
    """L5I (1,065 neurons at full scale) is the smallest population: 0.0004 leaves it none
    (0.426 rounds to 0) while 0.0005 keeps one; L5E (4,850) is still populated."""
    with pytest.raises(ModelError, match=r"scale=0.0004 leaves a population without neurons "
                                         r"\(L5I: 1065 x 0.0004 rounds to 0 neurons\)"):
        microcircuit(scale=0.0004)
    assert min(derived(0.0005)["N"]) == 1


def test_scale_arithmetic():
    p = derived(0.1)
    np.testing.assert_array_equal(p["N"], [2068, 583, 2192, 548, 485, 106, 1440, 295])
    np.testing.assert_array_equal(p["K_ext"], [160, 150, 210, 190, 200, 190, 290, 210])
    np.testing.assert_array_equal(p["synapses"], np.round(synapses_float() * 0.01))
    assert p["synapses"][0, 0] == 454_998                  # round(45,499,804.89 * 0.01)
    assert math.isclose(p["w_ext"], 87.8 / math.sqrt(0.1), rel_tol=1e-15)
    assert math.isclose(p["W"][0, 2], 175.6 / math.sqrt(0.1), rel_tol=1e-15)
    # k_scale = 1: in-degrees kept, weights unchanged, no DC
    q = derived(0.5, k_scale=1.0)
    np.testing.assert_array_equal(q["K_ext"], K_EXT)
    assert q["w_ext"] == 87.8 and (q["I_e"] == 0).all()
    np.testing.assert_array_equal(q["synapses"], np.round(synapses_float() * 0.5))
    net = microcircuit(scale=0.1)
    assert net.populations["L4E"].size == 2192
    assert net.projections["L23E->L23E"].rule.N == 454_998
    assert net.poisson["L6E"][0].K == 290


@pytest.mark.parametrize("poisson", [True, False])
@pytest.mark.parametrize("k", [0.1, 0.37])
def test_scaling_preserves_mean_input(poisson, k):
    """The NEST-example compensation keeps the mean input current
    tau_syn (sum_x w_yx K_yx nu_x + w_ext K_ext nu_bg) + I_e of every population at its
    full-scale value when the network fires at the full-scale rates (in-degrees K taken
    unrounded, as the compensation formula does)."""
    def mean_input(p, kk):
        K = synapses_float() * kk / N_FULL[:, None]
        rec = (p["W"] * K * FULL_MEAN_RATES[None, :]).sum(axis=1)
        ext = p["w_ext"] * K_EXT * kk * 8.0 if poisson else 0.0
        return 0.5e-3 * (rec + ext) + p["I_e"]
    full = mean_input(derived(1.0, poisson=poisson), 1.0)
    np.testing.assert_allclose(mean_input(derived(k, poisson=poisson), k), full, rtol=1e-12)


# -- analysis helpers -------------------------------------------------------------------
def _results(times, senders, sizes=(4, 3), duration=1000.0):
    sizes = np.array(sizes)
    return Results(times=np.asarray(times, float), senders=np.asarray(senders, np.int64),
                   pop_names=["A", "B"][:len(sizes)],
                   pop_offsets=np.concatenate(([0], np.cumsum(sizes)[:-1])), pop_sizes=sizes,
                   recorded=np.ones(len(sizes), bool), duration=duration, dt=0.1)


def test_analysis_rates_cv_corr():
    # neuron 0 of A fires regularly every 10 ms from 500 ms: 50 spikes in the 500 ms left
    # after the default 500 ms discard, so rate 100 Hz, CV 0;
    # neuron 1 fires at the same times (correlation 1 with neuron 0); spikes before 500 ms
    # are discarded
    t = np.arange(500.0, 1000.0, 10.0) + 0.05
    times = np.concatenate([t, t, [100.0, 200.0]])
    senders = np.concatenate([np.zeros(t.size), np.ones(t.size), [2, 5]])
    res = _results(times, senders)
    np.testing.assert_allclose(rates_per_neuron(res, "A"), [100.0, 100.0, 0.0, 0.0])
    np.testing.assert_allclose(rates_per_neuron(res, "B"), [0.0, 0.0, 0.0])
    np.testing.assert_allclose(cv_isi(res, "A"), [0.0, 0.0], atol=1e-6)   # float spike times
    c = pairwise_correlations(res, "A", n_neurons=4)
    np.testing.assert_allclose(c, [1.0])          # the two silent neurons are left out


# -- statistics used by the suite --------------------------------------------------------
def test_chi2_discrete_detects_and_accepts():
    """Fixed seed; a correct binomial sample must not be rejected at alpha = 0.001 (false
    alarm probability 1e-3 for a fresh seed; this seed is fixed so the test is
    deterministic) and a binomial with a 5 % larger mean must be rejected with
    p < 1e-6 (power ~ 1 at n = 20,000)."""
    rng = np.random.default_rng(12345)
    x = rng.binomial(100000, 1e-3, size=20000)
    good = validate.chi2_discrete(x, stats.binom(100000, 1e-3).cdf, 50, 160)
    bad = validate.chi2_discrete(x, stats.binom(100000, 0.95e-3).cdf, 50, 160)
    assert good["bins"] > 10 and good["p"] > 1e-3
    assert bad["p"] < 1e-6


# -- validation smoke runs (small scale) --------------------------------------------------
def test_validation_connectivity_smoke():
    """Part 1 of the suite on the microcircuit at scale 0.02, seed 3: every count exact,
    procedural regeneration equal to the stored SciPy matrices, and no degree, weight or
    delay test rejected.  The suite's own level is family-wise alpha = 0.01 with a
    Bonferroni correction over its ~200 tests (each at ~5e-5), so a correct generator
    fails it with probability <= 0.01; with the seed fixed the outcome is deterministic."""
    res = validate.check_connectivity(microcircuit(scale=0.02, seed=3), alpha=0.01,
                                      log=lambda *a: None)
    assert len(res["projections"]) == 55 and res["n_tests"] > 150
    assert all(r["count_ok"] for r in res["projections"])
    assert all(r["regenerated_equal"] for r in res["projections"])
    assert res["pass"]
    d = derived(0.02)
    assert res["n_synapses"] == int(d["synapses"].sum())


def test_validation_delay_theory_has_the_delay_bounds():
    """The delay test's theory is the truncated normal on [max(dt, low), high] the
    sampler draws from: with a cut-off at 3 ms (mean + 2 sd: 2.3 % of the normal's mass
    beyond it) 50,000 synapses pass it (p = 0.90, seed 4), where the theory on [dt, inf)
    used before rejected them at p ~ 1e-201 (the multi-area model's clipped delays
    failed so); likewise a lower bound of 1 ms."""
    for dist, words in ((pp.normal(1.5, 0.75, high=3.0), "on [0.1, 3]"),
                        (pp.normal(1.5, 0.75, low=1.0), "on [1, inf)")):
        net = pp.Network(dt=0.1, seed=4)
        net.add_population("A", 1000, pp.LIF())
        net.connect("A", "A", pp.fixed_total_number(50_000), weight=10.0, delay=dist)
        r = validate.check_connectivity(net, alpha=0.01, log=lambda *a: None)
        d = r["projections"][0]["delay"]
        assert r["pass"] and d["p"] > 0.01 and words in d["target"], d


def test_validation_activity_smoke(tmp_path):
    """Part 2 and 3 end to end at scale 0.02 for 80 ms (30 ms discarded), two seeds:
    procedural and stored runs of the same seed give identical spikes, and the report,
    JSON summary and (with matplotlib) figures are written."""
    out = tmp_path / "val"
    args = argparse.Namespace(model="microcircuit", scale=0.02, duration=80.0, seed=5,
                              seeds=2, backend="cpu", connectivity="procedural", out=str(out),
                              quiet=True, t_discard=30.0, skip_connectivity=True, jobs=1)
    validate.main(args)
    summ = json.loads((out / "validation.json").read_text())
    same = summ["activity"]["same_seed"]
    assert len(same) == 1 and same[0]["seed"] == 5 and same[0]["identical"]
    assert same[0]["spikes_test"] > 0
    assert set(summ["activity"]["populations"]) == set(POPS)
    text = (out / "report.md").read_text()
    assert "identical spikes" in text and "### L5I" in text and "wall time" in text
    assert text.startswith("# Validation: microcircuit at scale 0.02\n")
    n_syn = int(derived(0.02)["synapses"].sum())
    assert f"- network: 1,544 neurons, {n_syn:,d} synapses, dt 0.1 ms" in text
    try:
        import matplotlib  # noqa: F401
        assert (out / "raster.png").exists() and (out / "rates.png").exists()
    except ImportError:
        assert "matplotlib is not installed" in text


def test_same_seed_identical_spikes_direct():
    """The procedural NumPy twin and the stored SciPy reference, same seed, DC background
    and original initial voltages: spike for spike identical."""
    net = microcircuit(scale=0.02, seed=11, poisson=False, v_init="original")
    a = Simulation(net, "cpu", "procedural").run(40.0)
    b = Simulation(net, "cpu", "stored").run(40.0)
    assert a.times.size > 0
    np.testing.assert_array_equal(a.times, b.times)
    np.testing.assert_array_equal(a.senders, b.senders)


def test_analysis_window_rejects_negative_start():
    res = _results([600.0], [0])
    with pytest.raises(ValueError, match="t_start >= 0"):
        rates_per_neuron(res, "A", t_start=-100.0)


def test_analysis_window_and_bins_follow_nest():
    """(t_start, t_stop] as NEST's spike recorder (a spike is stamped at the end of its
    step): a neuron firing in every step of a 1,000 ms run has exactly 10,000 Hz over the
    last 500 ms, the stamp 500.0 (the transient's last step) left out, 1000.0 (the run's
    last step) kept.  Windows past the run and unrecorded populations are refused."""
    t = np.round(np.arange(1, 10001) * 0.1, 10)             # every step's stamp
    res = _results(t, np.zeros(t.size))
    np.testing.assert_array_equal(rates_per_neuron(res, "A"), [10000.0, 0, 0, 0])
    np.testing.assert_array_equal(rates_per_neuron(res, "A", 0.0, 0.3), [10000.0, 0, 0, 0])
    res = _results([500.0, 1000.0], [0, 1])
    np.testing.assert_array_equal(rates_per_neuron(res, "A"), [0.0, 2.0, 0.0, 0.0])
    with pytest.raises(ValueError, match="t_stop <= the simulated 1000.0 ms"):
        rates_per_neuron(res, "A", 500.0, 2000.0)
    res.recorded[1] = False
    for f in (rates_per_neuron, cv_isi, pairwise_correlations):
        with pytest.raises(ValueError, match="'B' was not recorded"):
            f(res, "B")


def test_analysis_cv_equals_scipy_variation():
    """CV per neuron = scipy.stats.variation of its ISIs (ddof 0), to 1e-12, also for a
    long regular train (a one-pass variance gave 8.5e-7 there instead of ~0); neurons
    with fewer than 3 spikes are left out, and min_spikes < 3 is refused."""
    rng = np.random.default_rng(5)
    trains = [np.sort(rng.uniform(500.0, 1000.0, k)) for k in (2, 3, 17, 400)]
    trains.append(500.0 + 3.7 * np.arange(1, 130))
    times = np.concatenate(trains)
    senders = np.concatenate([np.full(x.size, i) for i, x in enumerate(trains)])
    res = _results(times, senders, sizes=(5,))
    want = [stats.variation(np.diff(x)) for x in trains[1:]]
    np.testing.assert_allclose(cv_isi(res, "A"), want, rtol=1e-12, atol=1e-12)
    assert cv_isi(res, "A")[-1] < 1e-12
    np.testing.assert_allclose(cv_isi(res, "A", min_spikes=20), want[2:], rtol=1e-12,
                               atol=1e-12)
    with pytest.raises(ValueError, match="min_spikes must be a whole number >= 3"):
        cv_isi(res, "A", min_spikes=2)


def test_analysis_correlation_bins():
    """Counts in (edge, edge + 2] bins from t_start, whole bins only (a 201 ms window has
    100 bins; spikes in the last 1 ms are left out, as Elephant's BinnedSpikeTrain does):
    equal to np.corrcoef of counts made by np.digitize(right=True).  A neuron with a
    constant count (one spike in every bin) has no correlation and is left out."""
    rng = np.random.default_rng(9)
    trains = [np.round(rng.uniform(500.0, 701.0, 40), 1) for _ in range(2)]
    trains.append(np.arange(502.0, 701.0, 2.0))              # one per bin, on the edges
    times = np.concatenate(trains)
    senders = np.concatenate([np.full(x.size, i) for i, x in enumerate(trains)])
    res = _results(times, senders, sizes=(3,), duration=701.0)
    edges = 500.0 + 2.0 * np.arange(101)
    counts = [np.bincount(np.digitize(x[x <= 700.0], edges, right=True) - 1, minlength=100)
              for x in trains]
    assert all(c.size == 100 for c in counts) and np.ptp(counts[2]) == 0
    c = pairwise_correlations(res, "A", n_neurons=3)
    np.testing.assert_allclose(c, [np.corrcoef(counts[0], counts[1])[0, 1]], rtol=1e-12)


# -- validate: usage errors before anything runs, and "not tested" is not a pass -----------
def _no_runs(monkeypatch):
    def boom(*a, **k):
        raise AssertionError("validate ran a part despite a usage error")
    monkeypatch.setattr(validate, "run_activity", boom)
    monkeypatch.setattr(validate, "check_connectivity", boom)
    monkeypatch.setattr(validate, "build_model", boom)


@pytest.mark.parametrize("argv, words", [
    (["--duration", "20"], ["--t-discard", "0 <= t-discard < 20 ms"]),    # default 500 ms
    (["--duration", "200", "--t-discard", "200"], ["--t-discard", "< 200 ms"]),
    (["--duration", "200", "--t-discard", "-1"], ["--t-discard", ">= 0"]),
    (["--skip-connectivity", "--skip-activity"], ["--skip-connectivity", "--skip-activity"]),
    (["--alpha", "0"], ["--alpha", "0 < alpha < 1"]),
    (["--alpha", "1"], ["--alpha", "0 < alpha < 1"]),
    (["--alpha", "nan"], ["--alpha", "finite"]),
    (["--tolerance", "0"], ["--tolerance", "> 0"]),
    (["--tolerance", "inf"], ["--tolerance", "finite"]),
    (["--jobs", "0"], ["--jobs", ">= 1"]),
    (["--seeds", "1"], ["--seeds", ">= 2"]),
    (["--n-corr", "1"], ["--n-corr", ">= 2"]),
])
def test_validate_usage_errors_before_running(capsys, monkeypatch, argv, words):
    """Bad option values are a one-line usage error (exit 2) naming the option and its
    range, raised before any connectivity check or simulation runs."""
    from pyproc import cli
    _no_runs(monkeypatch)
    code = cli.main(["validate", "balanced", "--neurons", "20", "--quiet"] + argv)
    err = capsys.readouterr().err
    assert code == cli.EXIT_USAGE, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("pyproc: error:") and "Traceback" not in err
    for w in words:
        assert w in lines[0], (w, lines[0])


def test_validate_t_discard_not_checked_without_activity(monkeypatch, tmp_path):
    """With --skip-activity the discard window is unused: a short --duration is no error."""
    calls = []
    monkeypatch.setattr(validate, "check_connectivity", lambda net, alpha, log: calls.append(
        alpha) or {"pass": True, "wall_s": 0.0, "projections": [], "n_synapses": 0,
                   "alpha": alpha, "n_tests": 0, "alpha_per_test": alpha})
    args = argparse.Namespace(model="balanced", model_options={"neurons": 20}, duration=20.0,
                              seed=1, out=str(tmp_path / "v"), quiet=True,
                              skip_activity=True, alpha=0.05)
    assert validate.main(args) == 0 and calls == [0.05]


def _fake_run(label, seed, cv, pops=("A", "B")):
    rng = np.random.default_rng(seed)
    times = np.arange(10.0)
    senders = np.zeros(10, np.int64)
    return {"label": label, "seed": seed, "backend": "cpu",
            "connectivity": "stored" if label == "reference" else "procedural",
            "times": times, "senders": senders, "wall_s": 0.0, "cpu_s": 0.0,
            "wall_setup_s": 0.0, "wall_run_s": 0.0, "synaptic_events": 0,
            "stats": {p: {"rate": rng.normal(5.0, 1.0, 50),
                          "cv": rng.normal(1.0, 0.1, 50) if cv or p == "A" else np.zeros(0),
                          "corr": np.zeros(0) if p == "B" and not cv else
                          rng.normal(0.01, 0.01, 100)} for p in pops}}


def _fake_runs(cv=True):
    return [_fake_run("reference", 1, cv), _fake_run("reference", 2, cv),
            _fake_run("test", 1, cv), _fake_run("test", 3, cv)]


def test_compare_activity_ks_floor():
    """A population silent in both reference runs has a baseline KS D of exactly 0; a test
    run with one spike among 414 neurons (D = 1/414, |d| small) is consistent, because D
    is under the two-sample KS critical value at 0.05 (1.358 * sqrt(2 / 414) = 0.094,
    the floor); a real difference (D = 0.5 against that floor) still fails."""
    assert validate.ks_floor(414, 414) == pytest.approx(
        stats.kstwobign.isf(0.05) * math.sqrt(2 / 414), rel=1e-12)
    assert 0.0943 < validate.ks_floor(414, 414) < 0.0945

    def runs(test_rates):
        out = _fake_runs()
        for r in out:
            r["stats"]["A"]["rate"] = np.zeros(414)
        for r, x in zip(out[2:], test_rates):
            r["stats"]["A"]["rate"] = x
        return out
    one = np.zeros(414)
    one[7] = 1.0
    act = validate.compare_activity(runs([np.zeros(414), one]), tolerance=2.0)
    e = act["populations"]["A"]["rate"]
    # test pairs: seed 1 (silent) vs reference 2, seed 3 (one spike) vs references 1, 2
    assert e["ks_base_max"] == 0.0 and e["ks_test_mean"] == pytest.approx(2 / 3 / 414)
    assert e["consistent"] is True
    half = np.where(np.arange(414) < 207, 2.0, 0.0)
    act = validate.compare_activity(runs([half, half]), tolerance=2.0)
    assert act["populations"]["A"]["rate"]["consistent"] is False
    assert "A/rate" in act["inconsistent"]


def test_compare_activity_not_tested_is_not_a_pass():
    """A statistic that cannot be computed (no CV or correlation values in population B)
    is 'not tested': nothing failed, yet the activity part does not pass."""
    ok = validate.compare_activity(_fake_runs(cv=True), tolerance=1e6)
    assert ok["pass"] and ok["verdict"] == "pass" and ok["not_tested"] == []
    act = validate.compare_activity(_fake_runs(cv=False), tolerance=1e6)
    assert act["populations"]["B"]["cv"]["consistent"] is None
    assert act["populations"]["B"]["rate"]["consistent"] is True
    assert act["verdict"] == "not tested" and act["pass"] is False
    assert act["not_tested"] == ["B/cv", "B/corr"]


def test_validate_report_not_tested_verdict(monkeypatch, tmp_path):
    """The overall verdict and the exit status of a run with untested statistics: not PASS,
    and the report's tables and verdict line say 'not tested'; the report also states that
    the activity comparison is an effect-size screen, not a significance test."""
    monkeypatch.setattr(validate, "run_activity", lambda *a, **k: _fake_runs(cv=False))
    monkeypatch.setattr(validate, "_figures", lambda runs, out, t: [])
    out = tmp_path / "v"
    args = argparse.Namespace(model="balanced", model_options={"neurons": 20}, duration=100.0,
                              seed=1, seeds=2, out=str(out), quiet=True, t_discard=10.0,
                              skip_connectivity=True, tolerance=1e6)
    assert validate.main(args) == 1
    summ = json.loads((out / "validation.json").read_text())
    assert summ["meta"]["pass"] is False and summ["meta"]["verdict"] == "NOT TESTED"
    text = (out / "report.md").read_text()
    assert text.startswith("# Validation: balanced with 20 neurons\n")
    # p = 0.1 of the 20 x 20 pairs, autapses excluded: 0.1 x 380
    assert "- network: 20 neurons, 38 synapses expected (pairwise_bernoulli draws the count)" \
        in text
    overall = [ln for ln in text.splitlines() if ln.startswith("- overall:")]
    assert len(overall) == 1 and "PASS" in overall[0] and "NOT PASSED" in overall[0]
    assert "not tested" in overall[0] and "B/cv" in overall[0]
    row_b = [ln for ln in text.splitlines() if ln.startswith("| B |")]
    assert row_b and "not tested (cv, corr)" in row_b[0]
    assert "| not tested |" in text
    assert "effect-size screen, not a significance test" in text
    assert "single pair" in text and "10 % of a rate" in text
    # what the statistics are, in the report and the JSON
    assert "over (10.0, 100.0] ms" in text and "correlations of spike counts in 2 ms bins" \
        in text and "all pairs of 200 neurons sampled per population" in text
    assert (summ["meta"]["corr_bin_ms"], summ["meta"]["n_corr"],
            summ["meta"]["cv_min_spikes"]) == (2.0, 200, 3)


def test_validate_fail_verdict_names_what_failed(monkeypatch, tmp_path, capsys):
    """A FAIL says what failed, in the report's verdict line and on the terminal: the
    projections whose connectivity tests failed and the population/statistic pairs outside
    the seed-to-seed spread (here every one: tolerance 1e-6 and no KS floor; the fake runs
    draw every run from one distribution, which the floor would rightly pass)."""
    monkeypatch.setattr(validate, "run_activity", lambda *a, **k: _fake_runs(cv=True))
    monkeypatch.setattr(validate, "ks_floor", lambda n, m: 0.0)
    monkeypatch.setattr(validate, "_figures", lambda runs, out, t: [])
    monkeypatch.setattr(validate, "check_connectivity", lambda net, alpha, log: {
        "pass": False, "wall_s": 0.0, "n_synapses": 0, "alpha": alpha, "n_tests": 2,
        "alpha_per_test": alpha, "projections": [{"projection": "E->I", "pass": False},
                                                 {"projection": "I->E", "pass": True}]})
    monkeypatch.setattr(validate, "write_report", lambda out, meta, conn, act, *a: (
        (tmp_path / "line.txt").write_text(validate._verdict_text(meta, act)), "report.md")[1])
    args = argparse.Namespace(model="balanced", model_options={"neurons": 20}, duration=100.0,
                              seed=1, seeds=2, out=str(tmp_path / "v"), quiet=False,
                              t_discard=10.0, tolerance=1e-6)
    assert validate.main(args) == 1
    line = (tmp_path / "line.txt").read_text()
    assert line == ("**FAIL** (connectivity of 1 projection(s): E->I; outside the "
                    "seed-to-seed spread: A/rate, A/cv, A/corr, B/rate, B/cv, B/corr)")
    last = capsys.readouterr().out.strip().splitlines()[-1]
    assert last.startswith("wrote report.md (FAIL: connectivity of 1 projection(s): E->I; ")


@pytest.mark.parametrize("error", [KeyboardInterrupt(), RuntimeError("kernel fault")])
def test_validate_keeps_the_connectivity_part_when_the_runs_stop(monkeypatch, tmp_path,
                                                                 error):
    """Ctrl-C or a backend error during the activity runs: the connectivity part (minutes
    at full scale) is written as an INCOMPLETE report before the exception goes on."""
    def stop(*a, **k):
        raise error
    monkeypatch.setattr(validate, "run_activity", stop)
    monkeypatch.setattr(validate, "check_connectivity", lambda net, alpha, log: {
        "pass": True, "wall_s": 0.0, "n_synapses": 0, "alpha": alpha, "n_tests": 0,
        "alpha_per_test": alpha, "projections": []})
    out = tmp_path / "v"
    args = argparse.Namespace(model="balanced", model_options={"neurons": 20}, duration=100.0,
                              seed=1, seeds=2, out=str(out), quiet=True, t_discard=10.0)
    with pytest.raises(type(error)):
        validate.main(args)
    summ = json.loads((out / "validation.json").read_text())
    assert summ["meta"]["verdict"] == "INCOMPLETE" and summ["meta"]["pass"] is False
    text = (out / "report.md").read_text()
    overall = [ln for ln in text.splitlines() if ln.startswith("- overall:")]
    assert overall == [f"- overall: **INCOMPLETE: the activity runs stopped "
                       f"({type(error).__name__}{': ' + str(error) if str(error) else ''}); "
                       f"the connectivity part is complete**"]
    assert "## Connectivity" in text


def test_thalamic_input():
    """thalamic=True: population TH of 902 PoissonSource neurons at 120 Hz in steps
    [7000, 7100) (700 to 710 ms), onto L4E, L4I, L6E, L6I only, Eq. 1 counts with
    N_pre = 902 times scale * k_scale, weight 87.8 pA / sqrt(k_scale) with sd 0.1,
    delays 1.5 ms sd 0.75; off by default."""
    from pyproc.models.microcircuit import TH_CONN_PROBS, thalamic_synapses_float
    q = thalamic_synapses_float()
    for t in range(8):                                      # Eq. 1 by hand
        if TH_CONN_PROBS[t] > 0:
            assert q[t] == pytest.approx(math.log(1 - TH_CONN_PROBS[t])
                                         / math.log(1 - 1 / (902 * N_FULL[t])), rel=1e-12)
    assert np.round(q).astype(int).tolist() == [0, 0, 2045393, 315791, 0, 0, 682419, 52636]
    assert "TH" not in microcircuit(0.02).populations
    net = microcircuit(0.1, k_scale=0.25, thalamic=True)
    th = net.populations["TH"]
    assert th.size == 902 and th.params == pp.PoissonSource(120.0, 700.0, 710.0)
    thp = {p.target: p for p in net.projections.values() if p.source == "TH"}
    assert sorted(thp) == ["L4E", "L4I", "L6E", "L6I"]
    for t, tgt in enumerate(POPULATIONS):
        if tgt in thp:
            p = thp[tgt]
            assert p.rule.N == round(q[t] * 0.1 * 0.25)
            assert p.weight.mean == pytest.approx(87.8 / 0.5) and p.weight.sd == pytest.approx(
                87.8 / 0.5 * 0.1)
            assert (p.delay.mean, p.delay.sd) == (1.5, 0.75)
    cnet = pp.compile_network(net)
    i = cnet.pop_names.index("TH")
    assert (int(cnet.pops[i]["src_start"]), int(cnet.pops[i]["src_stop"])) == (7000, 7100)
    with pytest.raises(pp.ModelError, match=r"microcircuit: th_start, th_duration and th_rate "
                                            r"must be >= 0"):
        microcircuit(0.02, thalamic=True, th_rate=-1.0)
    with pytest.raises(pp.ModelError, match=r"microcircuit: thalamic"):
        microcircuit(0.02, thalamic="yes")


def test_dc_stimulus():
    """dc_stimulus=True: a step current of 0.3 pA x K_ext (full scale) into each
    population from 650 to 750 ms; off by default."""
    assert microcircuit(0.02).dc == {}
    net = microcircuit(0.02, dc_stimulus=True)
    for i, pop in enumerate(POPULATIONS):
        assert len(net.dc[pop]) == 1
        dc = net.dc[pop][0]
        assert dc.amplitude == pytest.approx(0.3 * K_EXT[i]) and (dc.start, dc.stop) == (650.0,
                                                                                        750.0)
    cnet = pp.compile_network(net)
    assert set(zip(cnet.pops["dc_start"].tolist(), cnet.pops["dc_stop"].tolist())) == \
        {(6500, 7500)}
    with pytest.raises(pp.ModelError, match=r"microcircuit: dc_start and dc_duration must be"):
        microcircuit(0.02, dc_stimulus=True, dc_duration=-1.0)

"""Procedural connectivity: exact counts, the gcc-built header == the NumPy twin row
for row, distributions against theory, stream independence and a golden layout.

Statistical tests use fixed seeds and reject at alpha = 1e-4 (see test_sampling)."""
import ctypes

import numpy as np
import pytest
from scipy import stats

import pyproc as pp
from pyproc.compile import compile_network
from pyproc.connectivity import fixed_rows_many, materialise, rows, to_sparse
from pyproc.sampling import sampler_tables
from conftest import ptr

ALPHA = 1e-4


def _net(rule, n_pre=300, n_post=500, weight=87.8, delay=1.5, seed=11, same=False, dt=0.1):
    net = pp.Network(dt=dt, seed=seed)
    net.add_population("A", n_pre, pp.LIF())
    if not same:
        net.add_population("B", n_post, pp.LIF())
    net.connect("A", "A" if same else "B", rule, weight=weight, delay=delay, name="proj")
    return compile_network(net)


def _shim_rows(shim, cnet, k, pre_list):
    """All synapses of the given rows computed by the gcc-compiled header."""
    projs = np.ascontiguousarray(cnet.projs[k:k + 1])
    tab = np.ascontiguousarray(sampler_tables())
    out = []
    for pre in pre_list:
        cap = 1 << 16
        t = np.zeros(cap, np.uint32)
        w = np.zeros(cap, np.int32)
        d = np.zeros(cap, np.int32)
        rl = int(cnet.rowlen_of(k)[pre]) if projs[0]["rule"] == 2 else 0
        n = shim.shim_row(ptr(projs), ptr(tab), ctypes.c_uint32(cnet.seed), ctypes.c_uint32(pre),
                          ctypes.c_uint32(rl), ptr(t), ptr(w), ptr(d), ctypes.c_int64(cap))
        assert n >= 0
        out.append((np.full(n, pre), t[:n], w[:n], d[:n]))
    return [np.concatenate(x) for x in zip(*out)]


def _sorted(row, t, w, d):
    o = np.lexsort((d, w, t, row))
    return row[o], t[o], w[o], d[o]


def _chisq_discrete_p(samples, dist):
    """Chi-square p-value of integer samples against a discrete scipy distribution,
    bins with expected count < 5 pooled."""
    lo, hi = int(dist.ppf(0.001)), int(dist.ppf(0.999))
    edges = np.arange(lo, hi + 1)
    obs = np.array([np.sum(samples < lo)] + [np.sum(samples == e) for e in edges] +
                   [np.sum(samples > hi)])
    exp = np.concatenate(([dist.cdf(lo - 1)], dist.pmf(edges), [dist.sf(hi)])) * samples.size
    keep = exp >= 5
    if exp[~keep].sum() > 0:      # pool the sparse bins into one
        obs = np.append(obs[keep], obs[~keep].sum())
        exp = np.append(exp[keep], exp[~keep].sum())
    else:
        obs, exp = obs[keep], exp[keep]
    return stats.chisquare(obs, exp * obs.sum() / exp.sum()).pvalue


RULES = {
    "bernoulli": dict(rule=pp.pairwise_bernoulli(0.1), weight=pp.normal(87.8, 8.78),
                      delay=pp.normal(1.5, 0.75)),
    "bernoulli_sparse_noautapse": dict(rule=pp.pairwise_bernoulli(0.01, allow_autapses=False),
                                       weight=-351.2, delay=0.8, same=True),
    "total_number": dict(rule=pp.fixed_total_number(20000), weight=pp.normal(-351.2, 35.1),
                         delay=pp.normal(0.75, 0.375)),
    "total_number_noautapse": dict(rule=pp.fixed_total_number(5000, allow_autapses=False),
                                   weight=10.0, delay=2.0, same=True),
    "outdegree": dict(rule=pp.fixed_outdegree(37), weight=pp.normal(50.0, 5.0), delay=1.0),
    "decoder": dict(rule=pp.rules.decoder(), weight=pp.normal(20.0, 2.0),
                    delay=pp.normal(1.0, 0.5), n_post=20),
}


@pytest.mark.parametrize("name", sorted(RULES))
def test_gcc_header_rows_equal_numpy_twin(shim, name):
    cnet = _net(**RULES[name])
    pre = np.arange(int(cnet.projs[0]["n_pre"]), dtype=np.uint32)
    c = _sorted(*_shim_rows(shim, cnet, 0, pre))
    row, t, w, d = rows(cnet, 0, pre)
    n = _sorted(pre[row], t, w, d)
    assert c[0].size > 0
    for a, b in zip(c, n):
        np.testing.assert_array_equal(a, b)


def test_pairwise_bernoulli_p0_and_p1_exact():
    assert rows(_net(pp.pairwise_bernoulli(0.0)), 0, np.arange(300))[1].size == 0
    c = _net(pp.pairwise_bernoulli(1.0))
    _, t, _, _ = rows(c, 0, np.arange(300))
    assert t.size == 300 * 500
    c = _net(pp.pairwise_bernoulli(1.0, allow_autapses=False), n_pre=200, same=True)
    row, t, _, _ = rows(c, 0, np.arange(200))
    assert t.size == 200 * 199 and not np.any(row == t)


def test_all_to_all_and_nest_conn_specs():
    """all_to_all: every pair once (p = 1); NEST conn_spec dicts give the same rules as
    the constructors, so the same synapses; unsupported NEST rules and bad keys named."""
    row, t, _, _ = rows(_net(pp.all_to_all()), 0, np.arange(300))
    assert t.size == 300 * 500
    np.testing.assert_array_equal(np.bincount(t, minlength=500), np.full(500, 300))
    row, t, _, _ = rows(_net("all_to_all"), 0, np.arange(300))
    assert t.size == 300 * 500
    row, t, _, _ = rows(_net({"rule": "all_to_all", "allow_autapses": False}, n_pre=50,
                             same=True), 0, np.arange(50))
    assert t.size == 50 * 49 and not np.any(row == t)
    for spec, rule in (
            ({"rule": "pairwise_bernoulli", "p": 0.1, "allow_autapses": False},
             pp.pairwise_bernoulli(0.1, allow_autapses=False)),
            ({"rule": "pairwise_bernoulli", "p": 0.1, "allow_multapses": False},
             pp.pairwise_bernoulli(0.1)),
            ({"rule": "fixed_total_number", "N": 1234}, pp.fixed_total_number(1234)),
            ({"rule": "fixed_outdegree", "outdegree": 7, "allow_multapses": True},
             pp.fixed_outdegree(7))):
        a, b = _net(spec), _net(rule)
        assert np.array_equal(a.projs, b.projs)
        for x, y in zip(rows(a, 0, np.arange(300)), rows(b, 0, np.arange(300))):
            np.testing.assert_array_equal(x, y)
    for spec, words in (({"rule": "fixed_indegree", "indegree": 10}, "fixed_total_number"),
                        ("one_to_one", "not implemented"),
                        ({"rule": "pairwise_bernoulli", "prob": 0.1}, "takes no 'prob'"),
                        ({"rule": "pairwise_bernoulli"}, "needs 'p'"),
                        ({"rule": "all_to_all", "allow_multapses": "no"},
                         "allow_multapses must be True or False"),
                        ({"p": 0.1}, "needs a 'rule' key"),
                        ({"rule": "pairwise_bernouli", "p": 0.1}, "unknown rule"),
                        ({"rule": "fixed_outdegree", "outdegree": 3, "allow_multapses": False},
                         "allow_multapses=False is not supported")):
        with pytest.raises(pp.ModelError, match=words):
            _net(spec)
    with pytest.raises(AttributeError, match="fixed_total_number"):
        pp.fixed_indegree


def test_fixed_total_number_exact_total_and_binomial_indegree():
    n_syn, n_pre, n_post = 200_000, 400, 1000
    cnet = _net(pp.fixed_total_number(n_syn), n_pre=n_pre, n_post=n_post)
    indptr, tgt, _, _ = materialise(cnet, 0)
    assert indptr[-1] == n_syn == cnet.expected_synapses(0)
    # in-degree ~ Binomial(N, 1/n_post)
    assert _chisq_discrete_p(np.bincount(tgt, minlength=n_post), stats.binom(n_syn, 1.0 / n_post)) \
        > ALPHA
    assert np.diff(indptr).sum() == n_syn


def test_fixed_total_number_outdegree_binomial():
    """Row lengths are a multinomial split: each ~ Binomial(N, 1/n_pre) (chi-square over
    20,000 rows at alpha = 1e-4: a 10 % error in the variance is far outside)."""
    n_syn, n_pre = 1_000_000, 20_000
    cnet = _net(pp.fixed_total_number(n_syn), n_pre=n_pre, n_post=50)
    lens = cnet.rowlen_of(0).astype(np.int64)
    assert lens.sum() == n_syn
    assert _chisq_discrete_p(lens, stats.binom(n_syn, 1.0 / n_pre)) > ALPHA


def test_fixed_outdegree_rows_exactly_k():
    cnet = _net(pp.fixed_outdegree(37, allow_autapses=False), n_pre=250, same=True)
    indptr, tgt, _, _ = materialise(cnet, 0)
    assert (np.diff(indptr) == 37).all()
    row = np.repeat(np.arange(250), 37)
    assert not np.any(row == tgt)


def test_bernoulli_indegree_binomial_and_gaps_geometric():
    p, n_pre, n_post = 0.05, 2000, 3000
    cnet = _net(pp.pairwise_bernoulli(p), n_pre=n_pre, n_post=n_post)
    indptr, tgt, _, _ = materialise(cnet, 0)
    assert int(cnet.projs[0]["seg_width"]) == 256
    indeg = np.bincount(tgt, minlength=n_post)
    # total ~ Binomial(n_pre n_post, p): within 5 sd
    assert abs(indptr[-1] - p * n_pre * n_post) < 5 * np.sqrt(n_pre * n_post * p * (1 - p))
    # in-degree distribution ~ Binomial(n_pre, p)
    assert _chisq_discrete_p(indeg, stats.binom(n_pre, p)) > ALPHA
    # no multapses
    for i in range(0, n_pre, 97):
        r = tgt[indptr[i]:indptr[i + 1]]
        assert np.unique(r).size == r.size


def test_weights_and_delays_distributions():
    cnet = _net(pp.fixed_total_number(300_000), weight=pp.normal(-351.2, 35.12),
                delay=pp.normal(0.75, 0.375), n_pre=500, n_post=800)
    W, D = to_sparse(cnet, "proj")
    w, d = W.data, D.data
    assert (w < 0).all()
    # weights are fixed point: compare with the truncated normal quantised to 1/scale
    tn = stats.truncnorm(-351.2 / 35.12, np.inf, loc=351.2, scale=35.12)
    assert stats.kstest(-w, tn.cdf).pvalue > ALPHA
    step_counts = np.bincount(np.rint(d / 0.1).astype(int))
    # delays: truncated normal >= dt, rounded to steps: compare step probabilities
    a = (0.1 - 0.75) / 0.375
    tnd = stats.truncnorm(a, np.inf, loc=0.75, scale=0.375)
    ks = np.arange(step_counts.size)
    probs = tnd.cdf((ks + 0.5) * 0.1) - tnd.cdf(np.maximum(ks - 0.5, 1.0) * 0.1 * (ks > 0))
    probs[0] = 0.0
    probs[1] = tnd.cdf(0.15)
    probs[-1] += tnd.sf((ks[-1] + 0.5) * 0.1)
    keep = probs * d.size >= 5
    obs = np.append(step_counts[keep], step_counts[~keep].sum())
    exp = np.append(probs[keep], probs[~keep].sum()) * d.size
    assert stats.chisquare(obs, exp * obs.sum() / exp.sum()).pvalue > ALPHA
    assert d.min() >= 0.1


def test_stream_independence_adding_projection_changes_nothing():
    def build(extra):
        net = pp.Network(dt=0.1, seed=5)
        net.add_population("E", 400)
        net.add_population("I", 100)
        if extra:
            net.connect("I", "I", pp.pairwise_bernoulli(0.3), weight=-5.0, delay=1.0)
        net.connect("E", "I", pp.fixed_total_number(4000), weight=pp.normal(9.0, 1.0),
                    delay=pp.normal(1.5, 0.5))
        net.connect("I", "E", pp.pairwise_bernoulli(0.2), weight=pp.normal(-9.0, 1.0),
                    delay=1.0)
        return compile_network(net)

    a, b = build(False), build(True)
    for name in ("E->I", "I->E"):
        ia, ib = a.proj_index(name), b.proj_index(name)
        (pa, ta, wa, da), (pb, tb, wb, db) = materialise(a, ia), materialise(b, ib)
        for x, y in ((pa, pb), (ta, tb), (da, db)):
            np.testing.assert_array_equal(x, y)
        # the weight samples are the same; only the fixed-point grid of the target
        # population may change (I->I adds input onto I): equal to within one unit
        sa, sb = a.projs[ia]["w_scale"], b.projs[ib]["w_scale"]
        assert np.max(np.abs(wa / sa - wb / sb)) <= 1.0 / min(sa, sb)


def test_rows_do_not_depend_on_which_rows_are_asked_together():
    cnet = _net(pp.pairwise_bernoulli(0.1))
    all_rows = rows(cnet, 0, np.arange(300))
    one = rows(cnet, 0, np.array([123]))
    sel = all_rows[0] == 123
    np.testing.assert_array_equal(one[1], all_rows[1][sel])
    np.testing.assert_array_equal(one[2], all_rows[2][sel])


def test_fixed_rows_of_many_projections_equal_one_projection_at_a_time():
    """The CPU backend regenerates all fixed-number projections of a spiking population
    in one call: the same synapses, in the same order, as projection by projection
    (constant and normal weights and delays, autapses on and off, other target sizes,
    repeated and empty rows)."""
    net = pp.Network(dt=0.1, seed=4)
    for name, n in (("A", 300), ("B", 500), ("C", 40)):
        net.add_population(name, n)
    net.connect("A", "A", pp.fixed_total_number(5000, allow_autapses=False), weight=10.0,
                delay=2.0)
    net.connect("A", "B", pp.fixed_total_number(20000), weight=pp.normal(-351.2, 35.1),
                delay=pp.normal(0.75, 0.375))
    net.connect("A", "B", pp.pairwise_bernoulli(0.1), weight=5.0, delay=1.0, name="AB2")
    net.connect("A", "C", pp.fixed_outdegree(3), weight=pp.normal(50.0, 5.0), delay=1.0)
    net.connect("A", "C", pp.fixed_total_number(600), weight=7.0, name="AC2",
                delay=pp.normal(1.0, 0.5))
    cnet = compile_network(net)
    ks = np.array([0, 1, 3, 4])
    pre = np.array([5, 5, 0, 299, 17, 123], np.uint32)
    lens = np.stack([cnet.rowlen_of(k) for k in ks])[:, pre]
    lens[1, 4] = 0                                      # an empty row
    q, row, t, w, d = fixed_rows_many(cnet.seed, cnet.projs[ks], pre, lens, sampler_tables())
    assert np.bincount(q, minlength=4).tolist() == lens.sum(axis=1).tolist()
    for pos, k in enumerate(ks):
        sel = q == pos
        ref = rows(cnet, int(k), pre)
        keep = np.isin(ref[0], np.flatnonzero(lens[pos]))   # rows rows() did not empty
        assert ref[1].size > 0
        for a, b in zip((row[sel], t[sel], w[sel], d[sel]), ref):
            np.testing.assert_array_equal(a, b[keep])


def test_unordered_rows_are_the_same_synapses():
    """rows(..., ordered=False), which the CPU simulation uses, gives the same synapses
    (row, target, weight, delay) as the stored order, only not sorted (lanes that need a
    second block of draws come last)."""
    cnet = _net(pp.pairwise_bernoulli(0.1), weight=pp.normal(87.8, 8.78),
                delay=pp.normal(1.5, 0.75))
    pre = np.array([299, 3, 3, 150, 0], np.uint32)
    a = rows(cnet, 0, pre)
    b = rows(cnet, 0, pre, ordered=False)
    assert a[1].size > 200
    key = lambda r: np.lexsort((r[3], r[2], r[1], r[0]))
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x[key(a)], y[key(b)])


def test_golden_layout():
    """Frozen synapses: any change to the counter layout, samplers or stream ids shows here."""
    net = pp.Network(dt=0.1, seed=12345)
    net.add_population("E", 1000)
    net.add_population("I", 250)
    net.connect("E", "I", pp.pairwise_bernoulli(0.1), weight=pp.normal(87.8, 8.78),
                delay=pp.normal(1.5, 0.75), name="golden")
    cnet = compile_network(net)
    _, t, w, d = rows(cnet, 0, np.array([7]))
    assert cnet.projs[0]["stream"] == 0x1705AD44
    assert cnet.projs[0]["w_scale"] == 65536.0
    assert t[:6].tolist() == GOLDEN_T
    assert w[:6].tolist() == GOLDEN_W
    assert d[:6].tolist() == GOLDEN_D


GOLDEN_T = [7, 18, 29, 39, 58, 70]
# recomputed for the table samplers (pp_norm_quantile_tab / pp_log_tab): w[4] was
# 4698258 with Acklam's quantile; targets and delays are unchanged
GOLDEN_W = [5473091, 5412111, 5614155, 6150481, 4698257, 5981879]
GOLDEN_D = [7, 8, 9, 24, 34, 24]


def test_delay_beyond_the_sampler_range_is_refused_by_name():
    """The integer sampler's constants cannot hold a mean of 1e301 steps: a ModelError
    that names the projection and the delay, before anything runs."""
    for delay in (pp.normal(1e300, 1.0), pp.normal(1e6, 1e300)):
        net = pp.Network(dt=0.1, seed=1)
        net.add_population("A", 5)
        net.connect("A", "A", pp.fixed_outdegree(1), weight=1.0, delay=delay, name="far")
        with pytest.raises(pp.ModelError, match=r"projection 'far': delay normal\(.*out of "
                                                r"the fixed-point sampler's range"):
            compile_network(net)


def test_delay_longer_than_16_bit_steps_is_refused():
    for delay in (pp.normal(1e4, 1.0), 7000.0):
        net = pp.Network(dt=0.1, seed=1)
        net.add_population("A", 5)
        net.connect("A", "A", pp.fixed_outdegree(1), weight=1.0, delay=delay, name="long")
        with pytest.raises(pp.ModelError, match="projection 'long'.*exceeds? 65535 steps"):
            compile_network(net)

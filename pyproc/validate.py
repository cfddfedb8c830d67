"""Validation suite: procedural connectivity against the stored SciPy reference.

``main(args)`` runs three parts and writes ``report.md``, ``validation.json``
and PNG figures to ``args.out``:

1. **Connectivity** (network built with ``args.seed``), for every projection:
   the exact synapse count of fixed-number rules; the in- and out-degree
   distributions against theory (``fixed_total_number`` with multapses:
   in-degree ~ Binomial(N_syn, 1/N_post), out-degree ~ Binomial(N_syn, 1/N_pre);
   ``pairwise_bernoulli``: Binomial(N_pre, p) and Binomial(N_post, p)) by a
   chi-square goodness-of-fit test on bins with >= 5 expected; weights by a
   one-sample KS test against ``scipy.stats.truncnorm`` (|w| truncated at 0),
   the CDF evaluated half a fixed-point quantum up so that the rounding to
   1/w_scale pA is accounted for; delays, which are rounded to whole steps, by a
   chi-square test against the step probabilities P(k) = F((k + 1/2) dt) -
   F((k - 1/2) dt) of the truncated normal (truncated at dt); and the
   procedural regeneration (rows regenerated in a shuffled order and other
   batch sizes) equal, synapse for synapse, to the stored SciPy matrices of
   :func:`pyproc.connectivity.to_sparse`.
   Significance: family-wise alpha (``--alpha``, default 0.01) with a
   Bonferroni correction over all tests, so a correct generator fails the
   suite with probability <= alpha.
2. **Activity** per population (first ``--t-discard`` ms left out): rates,
   CV of ISIs and pairwise correlations of 2 ms spike counts of sampled
   neurons (:mod:`pyproc.analysis`).  Reference runs use stored connectivity on
   the CPU (``--reference-backend``) with seeds ``seed .. seed+n-1``; the runs
   under test (``--backend``, ``--connectivity``) use ``seed`` and ``seed+n ..
   seed+2n-2``.  Every (test, reference) pair of *different* seeds is compared
   by the two-sample KS test (statistic D, p-value) and Cohen's d; every pair
   of reference seeds gives the baseline spread (van Albada et al. 2018;
   Knight & Nowotny 2021).  A (population, statistic) is *consistent* when the
   mean test D is at most ``--tolerance`` (default 2) times the largest baseline
   D or at most the two-sample KS critical value at 0.05 for the sample sizes
   (:func:`ks_floor`: a population silent in every reference run has a baseline
   D of 0, and one stray spike must not fail it), and the mean test |d| at most that multiple of the largest baseline |d|
   (or below 0.2, Cohen's "small" effect).  With a handful of seeds the baseline is itself noisy, so this
   is an effect-size screen for gross differences (a wrong weight or delay moves
   rates by D ~ 0.3-1 against a seed spread of a few 0.01), not a significance
   test; a one-sided Mann-Whitney p of test-pair against baseline-pair D values
   is reported beside it for information (its smallest attainable value,
   1 / C(n_test + n_base, n_base), is in the report).  The same-seed pair must
   be spike-for-spike identical and is reported as such; the activity part
   passes when that holds and every statistic is consistent.  A statistic that
   cannot be computed (e.g. no neuron with the three spikes a CV needs) is *not
   tested*: it is reported as such and the overall verdict is then not PASS.
3. **Report**: a Markdown table per population, a projection table, figures
   (raster, rate, CV and correlation distributions; skipped with a note if
   matplotlib is missing) and the wall times.
"""
from __future__ import annotations

import argparse
import datetime
import inspect
import json
import math
import os
import platform
import sys
import time
import warnings
from concurrent.futures import ProcessPoolExecutor
from typing import List, Optional

import numpy as np
from scipy import stats

from . import analysis
from .provenance import git_commit
from .results import json_default as _json_default, remove_stale
from .compile import DIST_TNORM, RULE_BERNOULLI, RULE_FIXED, CompiledNetwork, compile_network
from .connectivity import rows, to_sparse
from .errors import ModelError
from .progress import CHUNK_MS, Progress

__all__ = ["main", "add_arguments", "build_model", "check_connectivity", "run_activity",
           "compare_activity", "write_report", "chi2_discrete", "ks_floor"]

METRICS = ("rate", "cv", "corr")
D_FLOOR = 0.2     # |Cohen's d| below Cohen's (1988) "small" effect is negligible whatever the baseline
KS_FLOOR_ALPHA = 0.05   # a KS D below this level's two-sample critical value is sampling noise


def ks_floor(n: float, m: float) -> float:
    """The asymptotic two-sample KS critical value at KS_FLOOR_ALPHA for samples of n and
    m values: a test D at or below it is consistent whatever the baseline.  Without it a
    population silent in every reference run (baseline D exactly 0) failed on one spike."""
    if not (n > 0 and m > 0):
        return math.nan
    return float(stats.kstwobign.isf(KS_FLOOR_ALPHA) * math.sqrt((n + m) / (n * m)))
METRIC_LABEL = {"rate": "rate (Hz)", "cv": "CV ISI", "corr": "correlation"}


# -- model construction ----------------------------------------------------------------
def build_model(model: str, seed: int = 1, **options):
    """The network of ``model`` (a name of :data:`pyproc.models.MODELS`) built with
    ``seed`` and the builder's keyword ``options`` (e.g. ``scale=0.1``)."""
    from .models import MODELS
    if model not in MODELS:
        raise ModelError(f"unknown model {model!r} (known: {', '.join(sorted(MODELS))})")
    return MODELS[model](seed=seed, **options)


def _model_options(args, model: str) -> dict:
    """Builder options from the CLI's ``args.model_options`` or, for the standalone script,
    from ``args.scale`` / ``args.dc``; only options the builder accepts."""
    from .models import MODELS
    if model not in MODELS:
        raise ModelError(f"unknown model {model!r} (known: {', '.join(sorted(MODELS))})")
    params = inspect.signature(MODELS[model]).parameters
    opts = {k: v for k, v in dict(getattr(args, "model_options", None) or {}).items()
            if v is not None}
    scale = getattr(args, "scale", None)
    if "scale" not in opts and scale is not None and "scale" in params:
        opts["scale"] = float(scale)
    if getattr(args, "dc", False):
        if "poisson" not in params:
            raise ModelError(f"validate: --dc is not an option of model {model!r}")
        opts["poisson"] = False
    return opts


# -- statistics helpers ---------------------------------------------------------------
def chi2_discrete(values: np.ndarray, cdf, lo: int, hi: int, min_expected: float = 5.0) -> dict:
    """Chi-square goodness of fit of integer ``values`` to a discrete distribution with
    vectorised ``cdf(k) = P(X <= k)``.

    Bins are cut from the left over ``lo..hi`` as soon as a bin expects at least
    ``min_expected`` counts while the rest still does; the first bin takes P(X <= its
    upper edge) and the last the whole right tail, so observed and expected totals agree.
    Returns statistic, p-value (``scipy.stats.chisquare``) and the number of bins
    (``p = nan`` when fewer than two bins are possible)."""
    values = np.asarray(values, dtype=np.int64)
    n = values.size
    if n == 0:
        return {"stat": math.nan, "p": math.nan, "bins": 0}
    ks = np.arange(int(lo), int(hi) + 1)
    F = np.asarray(cdf(ks), dtype=np.float64)
    uppers, last = [], 0.0
    for k, f in zip(ks.tolist(), F.tolist()):
        if n * (f - last) >= min_expected and n * (1.0 - f) >= min_expected:
            uppers.append(k)
            last = f
    if not uppers:
        return {"stat": math.nan, "p": math.nan, "bins": 1}
    Fu = np.concatenate(([0.0], np.asarray(cdf(np.array(uppers)), dtype=np.float64), [1.0]))
    f_exp = n * np.diff(Fu)
    f_obs = np.bincount(np.searchsorted(np.array(uppers), values, side="left"),
                        minlength=len(uppers) + 1).astype(np.float64)
    f_exp *= n / f_exp.sum()          # remove round-off so that scipy's sum check passes
    res = stats.chisquare(f_obs, f_exp)
    return {"stat": float(res.statistic), "p": float(res.pvalue), "bins": int(f_exp.size)}


def _chi2_frozen(values: np.ndarray, dist) -> dict:
    """:func:`chi2_discrete` against a frozen ``scipy.stats`` discrete distribution."""
    values = np.asarray(values, dtype=np.int64)
    lo = int(min(values.min(initial=0), dist.ppf(1e-12)))
    hi = int(max(values.max(initial=0), dist.ppf(1.0 - 1e-12)))
    return chi2_discrete(values, dist.cdf, lo, hi)


def _cohen_d(a: np.ndarray, b: np.ndarray) -> float:
    if a.size < 2 or b.size < 2:
        return math.nan
    va, vb = a.var(ddof=1), b.var(ddof=1)
    pooled = math.sqrt(((a.size - 1) * va + (b.size - 1) * vb) / (a.size + b.size - 2))
    if pooled == 0:
        return 0.0 if a.mean() == b.mean() else math.inf
    return float((a.mean() - b.mean()) / pooled)


def _ks2(a: np.ndarray, b: np.ndarray) -> dict:
    a, b = a[np.isfinite(a)], b[np.isfinite(b)]
    if a.size == 0 or b.size == 0:
        return {"D": math.nan, "p": math.nan, "d": math.nan}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)   # exact p unavailable: asymptotic
        r = stats.ks_2samp(a, b)
    return {"D": float(r.statistic), "p": float(r.pvalue), "d": _cohen_d(a, b)}


# -- 1. connectivity ------------------------------------------------------------------
def check_connectivity(net, alpha: float = 0.01, regen_batch: int = 997, log=print) -> dict:
    """Part 1 of the suite for every projection of ``net`` (a Network, or its compiled
    form: the multi-area model's compile takes ~25 s); see the module docstring."""
    cnet = net if isinstance(net, CompiledNetwork) else compile_network(net)
    net = cnet.network
    dt = cnet.dt
    out = []
    t0 = time.perf_counter()
    for k, name in enumerate(cnet.proj_names):
        pj = cnet.projs[k]
        rule = net.projections[name].rule
        n_pre, n_post = int(pj["n_pre"]), int(pj["n_post"])
        W, D = to_sparse(cnet, k)                               # the stored SciPy matrices
        row = {"projection": name, "rule": rule.name, "n_pre": n_pre, "n_post": n_post,
               "synapses": int(W.nnz)}
        # exact count
        if pj["rule"] == RULE_FIXED:
            expected = int(getattr(rule, "N", getattr(rule, "k", 0) * n_pre))
            row["expected_synapses"] = expected
            row["count_ok"] = int(W.nnz) == expected
        else:
            row["expected_synapses"] = cnet.expected_synapses(k)
            row["count_ok"] = None
        # degrees against theory
        indeg = analysis.in_degrees(W.indices, n_post)
        outdeg = analysis.out_degrees(W.indptr)
        if pj["rule"] == RULE_FIXED and hasattr(rule, "N"):
            n_choice = n_post - (0 if pj["autapses"] else 1)
            din = stats.binom(rule.N, 1.0 / n_choice)
            dout = stats.binom(rule.N, 1.0 / n_pre)
        elif pj["rule"] == RULE_BERNOULLI:
            p = float(cnet.info["p"][k])
            din = stats.binom(n_pre - (0 if pj["autapses"] else 1), p)
            dout = stats.binom(n_post - (0 if pj["autapses"] else 1), p)
        else:
            din = dout = None
        none = {"stat": math.nan, "p": math.nan, "bins": 0}
        # without autapses a fixed-number in-degree is not binomial (the source's own
        # index is excluded per source); only the out-degree is tested then
        test_in = din is not None and (pj["autapses"] or pj["rule"] == RULE_BERNOULLI)
        row["in_degree"] = _chi2_frozen(indeg, din) if test_in else dict(none)
        row["out_degree"] = _chi2_frozen(outdeg, dout) if dout is not None else dict(none)
        row["in_degree"].update(mean=float(indeg.mean()), expected_mean=(
            float(din.mean()) if din is not None else math.nan))
        row["out_degree"].update(mean=float(outdeg.mean()), expected_mean=(
            float(dout.mean()) if dout is not None else math.nan))
        # weights: |w| ~ truncnorm on [0, inf), rounded to 1/w_scale pA
        if pj["w_kind"] == DIST_TNORM and W.nnz:
            mu, sd, q = float(pj["w_mean"]), float(pj["w_sd"]), 1.0 / float(pj["w_scale"])
            tn = stats.truncnorm((0.0 - mu) / sd, np.inf, loc=mu, scale=sd)
            mag = np.abs(W.data)
            sign_ok = bool(np.all(np.sign(W.data) == pj["w_sign"]))
            r = stats.kstest(mag, lambda x: tn.cdf(x + 0.5 * q))
            row["weight"] = {"D": float(r.statistic), "p": float(r.pvalue), "sign_ok": sign_ok,
                             "mean": float(mag.mean()), "expected_mean": float(tn.mean()),
                             "sd": float(mag.std()), "expected_sd": float(tn.std()),
                             "quantum_pA": q, "target": f"truncnorm({mu:g}, {sd:g}) on [0, inf)"}
        else:
            row["weight"] = {"D": math.nan, "p": math.nan, "sign_ok": True}
        # delays: truncnorm on [max(dt, low), high] (high: inf, or the model's cut-off,
        # e.g. the multi-area model's mean + 3.719 sd), rounded to steps
        if pj["d_kind"] == DIST_TNORM and D.nnz:
            mu, sd = float(pj["d_mean"]), float(pj["d_sd"])
            dd = net.projections[name].delay
            d_low = dt if dd.low is None else max(dt, float(dd.low))
            d_high = np.inf if dd.high is None else float(dd.high)
            tn = stats.truncnorm((d_low - mu) / sd, (d_high - mu) / sd, loc=mu, scale=sd)
            steps = np.rint(D.data / dt).astype(np.int64)
            dmax = int(pj["d_max"])

            def cdf(k, tn=tn, dmax=dmax):
                # step k = floor(d/dt + 1/2), clipped to [1, d_max]: P(step <= k)
                k = np.asarray(k, dtype=np.float64)
                return np.where(k >= dmax, 1.0, np.where(k < 1, 0.0, tn.cdf((k + 0.5) * dt)))

            row["delay"] = chi2_discrete(steps, cdf, 1, dmax)
            kk = np.arange(1, dmax + 1)
            row["delay"].update(mean=float(D.data.mean()), expected_mean=float(
                (kk * dt * np.diff(np.concatenate(([0.0], cdf(kk))))).sum()),
                target=f"truncnorm({mu:g}, {sd:g}) on [{d_low:g}, "
                       f"{d_high:g}{')' if np.isinf(d_high) else ']'}, rounded to {dt:g} ms steps")
        else:
            row["delay"] = {"stat": math.nan, "p": math.nan, "bins": 0}
        # procedural regeneration in another order and batch size == stored matrices
        perm = np.random.default_rng(k).permutation(n_pre).astype(np.uint32)
        equal = True
        for a in range(0, n_pre, regen_batch):
            pre = perm[a:a + regen_batch]
            r_, tgt, w, d = rows(cnet, k, pre)
            starts = W.indptr[pre].astype(np.int64)
            counts = W.indptr[pre + 1].astype(np.int64) - starts
            idx = np.arange(int(counts.sum()), dtype=np.int64) + np.repeat(
                starts - (np.cumsum(counts) - counts), counts)
            equal = (np.array_equal(r_, np.repeat(np.arange(pre.size), counts)) and
                     np.array_equal(tgt, W.indices[idx]) and
                     np.array_equal(w / pj["w_scale"], W.data[idx]) and
                     np.array_equal(d * dt, D.data[idx]))
            if not equal:
                break
        row["regenerated_equal"] = equal
        out.append(row)
        log(f"  connectivity {name:14s} {W.nnz:>10d} synapses  regen "
            f"{'equal' if equal else 'DIFFERENT'}")
    # Bonferroni over every p-value computed
    pvals = [(i, key) for i, r in enumerate(out) for key in ("in_degree", "out_degree", "weight",
                                                             "delay")
             if np.isfinite(r[key].get("p", math.nan))]
    m = max(len(pvals), 1)
    per_test = alpha / m
    for r in out:
        for key in ("in_degree", "out_degree", "weight", "delay"):
            p = r[key].get("p", math.nan)
            r[key]["pass"] = None if not np.isfinite(p) else bool(p >= per_test)
        r["pass"] = bool(r["regenerated_equal"] and r["count_ok"] is not False and
                         r["weight"].get("sign_ok", True) and
                         all(r[key]["pass"] is not False for key in ("in_degree", "out_degree",
                                                                      "weight", "delay")))
    return {"projections": out, "alpha": alpha, "n_tests": m, "alpha_per_test": per_test,
            "pass": all(r["pass"] for r in out), "wall_s": time.perf_counter() - t0,
            "n_synapses": int(sum(r["synapses"] for r in out))}


# -- 2. activity ----------------------------------------------------------------------
def _one_run(job: dict) -> dict:
    """Build, simulate and analyse one run (top-level so that a process pool can call it)."""
    from .simulation import Simulation
    t0, c0 = time.perf_counter(), time.process_time()
    net = build_model(job["model"], job["seed"], **job["options"])
    backend_options = (job.get("cuda_options") or {}) if job["backend"] == "cuda" else {}
    sim = Simulation(net, backend=job["backend"], connectivity=job["connectivity"],
                     **backend_options)
    if job.get("progress"):
        # a plain line every 10 s from pool workers (their \r lines would share one line)
        prog = Progress(sim.cnet.dt, sim.cnet.n_neurons,
                        spikes=lambda: getattr(sim.sim, "n_spikes_total", None),
                        tty=False if job.get("in_pool") else None,
                        prefix=f"pyproc validate: {job['label']} {job['connectivity']} "
                               f"{job['backend']} seed {job['seed']}: ")
        res = sim.run(job["duration"], progress=prog,
                      chunk_steps=max(1, int(round(CHUNK_MS / sim.cnet.dt))))
        prog.close()
    else:
        res = sim.run(job["duration"])
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    st = analysis.population_statistics(res, job["t_discard"], None, analysis.CORR_BIN_MS,
                                        job["n_corr"])
    if job.get("save_dir"):
        res.save(job["save_dir"])
    order = np.lexsort((res.senders, res.times))
    return {"label": job["label"], "seed": job["seed"], "backend": job["backend"],
            "connectivity": job["connectivity"], "wall_s": wall, "cpu_s": cpu,
            "wall_setup_s": sim.setup_time, "wall_run_s": sim.wall_run,
            "synaptic_events": int(sim.sim.n_events), "stats": st,
            "times": res.times[order], "senders": res.senders[order],
            "pop_names": res.pop_names, "pop_offsets": res.pop_offsets, "pop_sizes": res.pop_sizes,
            "duration": res.duration}


def check_run_memory(cnet: CompiledNetwork, jobs: int, n_runs: int, backend: str,
                     connectivity: str, reference_backend: str) -> None:
    """Refuse (InsufficientMemory) activity runs whose CPU runs, ``jobs`` at a time, need
    more host memory together than is available: each worker builds its own simulator
    (the stored reference's CSR among them), so a check inside each would pass while
    their sum does not fit.  One run at a time is the backend's own check."""
    at_once = min(int(jobs), int(n_runs))
    if at_once < 2 or "cuda" in (backend, reference_backend):   # the GPU runs go one by one
        return
    from .hostmem import check
    from .plan import cpu_bytes
    per_run = max(sum(cpu_bytes(cnet, c).values()) for c in ("stored", connectivity))
    check(f"validate with --jobs {jobs} ({at_once} CPU runs at once)",
          {f"{at_once} runs": at_once * per_run}, "Use fewer --jobs.")


def run_activity(model: str, options: dict, duration: float, seed: int, n_seeds: int,
                 backend: str, connectivity: str, reference_backend: str = "cpu",
                 t_discard: float = analysis.T_DISCARD_MS, n_corr: int = analysis.CORR_NEURONS,
                 jobs: int = 1, save_dir: Optional[str] = None, log=print,
                 cuda_options: Optional[dict] = None, progress: bool = False) -> List[dict]:
    """Simulate the reference runs (stored, seeds seed..seed+n-1) and the runs under test
    (seed and seed+n..seed+2n-2); returns one dict per run (statistics and spikes).
    ``cuda_options``: CUDASimulator options of the runs on the CUDA backend;
    ``progress``: runs longer than 2 s of wall time report their progress on stderr."""
    if n_seeds < 2:
        raise ModelError(f"validate: seeds must be >= 2 (the baseline needs two reference "
                         f"seeds), got {n_seeds}")
    test_seeds = [seed] + [seed + n_seeds + j for j in range(n_seeds - 1)]
    ref_seeds = [seed + j for j in range(n_seeds)]
    joblist = []
    for s in ref_seeds:
        joblist.append(dict(label="reference", seed=s, backend=reference_backend,
                            connectivity="stored"))
    for s in test_seeds:
        joblist.append(dict(label="test", seed=s, backend=backend, connectivity=connectivity))
    for j in joblist:
        j.update(model=model, options=dict(options), duration=duration, t_discard=t_discard,
                 n_corr=n_corr, cuda_options=dict(cuda_options or {}), progress=progress)
        if save_dir:
            j["save_dir"] = os.path.join(save_dir, f"{j['label']}_{j['connectivity']}_"
                                                   f"{j['backend']}_seed{j['seed']}")
    out = []
    uses_gpu = backend == "cuda" or reference_backend == "cuda"
    if jobs > 1 and not uses_gpu:
        for j in joblist:
            j["in_pool"] = True
        with ProcessPoolExecutor(max_workers=jobs) as ex:
            for r in ex.map(_one_run, joblist):
                log(f"  run {r['label']:9s} {r['connectivity']:10s} {r['backend']} seed {r['seed']}: "
                    f"{r['wall_s']:.1f} s")
                out.append(r)
    else:
        for j in joblist:
            r = _one_run(j)
            log(f"  run {r['label']:9s} {r['connectivity']:10s} {r['backend']} seed {r['seed']}: "
                f"{r['wall_s']:.1f} s")
            out.append(r)
    return out


def _rank_p(test_vals, base_vals) -> float:
    """One-sided Mann-Whitney U p-value that the test-pair statistics are larger than the
    baseline-pair statistics (nan when either side is empty; 1 when all values tie)."""
    a = np.array([v for v in test_vals if np.isfinite(v)])
    b = np.array([v for v in base_vals if np.isfinite(v)])
    if a.size == 0 or b.size == 0:
        return math.nan
    if np.all(np.concatenate([a, b]) == a[0]):
        return 1.0
    return float(stats.mannwhitneyu(a, b, alternative="greater").pvalue)


def _min_rank_p(n_test: int, n_base: int) -> float:
    """Smallest attainable one-sided exact Mann-Whitney p: 1 / C(n_test + n_base, n_base)."""
    return 1.0 / math.comb(n_test + n_base, n_base) if n_base else math.nan


def compare_activity(runs: List[dict], tolerance: float = 2.0) -> dict:
    """Test-vs-reference comparisons of different seeds, the reference-vs-reference
    baseline and the same-seed identity check; see the module docstring."""
    ref = [r for r in runs if r["label"] == "reference"]
    test = [r for r in runs if r["label"] == "test"]
    pops = list(ref[0]["stats"].keys())
    same = []
    for t in test:
        for r in ref:
            if r["seed"] == t["seed"]:
                ident = (t["times"].shape == r["times"].shape and
                         np.array_equal(t["times"], r["times"]) and
                         np.array_equal(t["senders"], r["senders"]))
                first = None
                if not ident:
                    n = min(t["times"].size, r["times"].size)
                    diff = np.flatnonzero((t["times"][:n] != r["times"][:n]) |
                                          (t["senders"][:n] != r["senders"][:n]))
                    first = float(t["times"][diff[0]]) if diff.size else float(
                        t["times"][n - 1] if n else 0.0)
                same.append({"seed": t["seed"], "identical": bool(ident),
                             "spikes_test": int(t["times"].size),
                             "spikes_reference": int(r["times"].size),
                             "first_difference_ms": first,
                             "test": f"{t['connectivity']}/{t['backend']}",
                             "reference": f"{r['connectivity']}/{r['backend']}"})
    result = {"populations": {}, "same_seed": same}
    for pop in pops:
        entry = {}
        for m in METRICS:
            tests = [_ks2(t["stats"][pop][m], r["stats"][pop][m])
                     for t in test for r in ref if t["seed"] != r["seed"]]
            base = [_ks2(ref[i]["stats"][pop][m], ref[j]["stats"][pop][m])
                    for i in range(len(ref)) for j in range(i + 1, len(ref))]

            def agg(lst, key, fn):
                v = np.array([abs(x[key]) for x in lst], dtype=np.float64)
                v = v[np.isfinite(v)]
                return float(fn(v)) if v.size else math.nan

            def mean_of(rs):          # mean over the runs that have values
                v = [np.nanmean(r["stats"][pop][m]) for r in rs if r["stats"][pop][m].size]
                v = [x for x in v if np.isfinite(x)]
                return float(np.mean(v)) if v else math.nan

            e = {"test_mean": mean_of(test), "reference_mean": mean_of(ref),
                 "test_n": float(np.mean([t["stats"][pop][m].size for t in test])),
                 "reference_n": float(np.mean([r["stats"][pop][m].size for r in ref])),
                 "ks_test_mean": agg(tests, "D", np.mean), "ks_test_max": agg(tests, "D", np.max),
                 "ks_base_mean": agg(base, "D", np.mean), "ks_base_max": agg(base, "D", np.max),
                 "p_test_min": agg(tests, "p", np.min), "p_base_min": agg(base, "p", np.min),
                 "d_test_mean": agg(tests, "d", np.mean), "d_test_max": agg(tests, "d", np.max),
                 "d_base_mean": agg(base, "d", np.mean), "d_base_max": agg(base, "d", np.max),
                 "pairs_test": len(tests), "pairs_base": len(base)}
            e["p_rank_D"] = _rank_p([x["D"] for x in tests], [x["D"] for x in base])
            e["p_rank_d"] = _rank_p([abs(x["d"]) for x in tests], [abs(x["d"]) for x in base])
            e["ks_floor"] = ks_floor(e["test_n"], e["reference_n"])
            if np.isfinite(e["ks_test_mean"]) and np.isfinite(e["ks_base_max"]):
                ok_D = e["ks_test_mean"] <= max(tolerance * e["ks_base_max"],
                                                e["ks_floor"]) + 1e-12
                ok_d = (not np.isfinite(e["d_test_mean"]) or not np.isfinite(e["d_base_max"]) or
                        e["d_test_mean"] <= max(tolerance * e["d_base_max"], D_FLOOR))
                e["consistent"] = bool(ok_D and ok_d)
            else:
                e["consistent"] = None
            entry[m] = e
        result["populations"][pop] = entry
    n_t = len([1 for t in test for r in ref if t["seed"] != r["seed"]])
    n_b = len(ref) * (len(ref) - 1) // 2
    result.update(tolerance=tolerance, pairs_test=n_t, pairs_base=n_b, min_attainable_p=_min_rank_p(n_t, n_b))
    # a statistic that could not be computed (consistent None) is "not tested": it neither
    # fails the comparison nor counts as a pass
    verdicts = [e["consistent"] for p in result["populations"].values() for e in p.values()]
    result["not_tested"] = [f"{pop}/{m}" for pop, p in result["populations"].items()
                            for m, e in p.items() if e["consistent"] is None]
    result["inconsistent"] = [f"{pop}/{m}" for pop, p in result["populations"].items()
                              for m, e in p.items() if e["consistent"] is False]
    if not all(s["identical"] for s in same) or any(v is False for v in verdicts):
        result["verdict"] = "fail"
    elif result["not_tested"] or not verdicts:
        result["verdict"] = "not tested"
    else:
        result["verdict"] = "pass"
    result["pass"] = result["verdict"] == "pass"
    return result


def _overall(conn: Optional[dict], act: Optional[dict]) -> str:
    """'PASS', 'FAIL' or 'NOT TESTED' (nothing failed, but some activity statistic could not
    be computed, so the suite cannot say PASS)."""
    if (conn is not None and not conn["pass"]) or (
            act is not None and act.get("verdict", "pass" if act["pass"] else "fail") == "fail"):
        return "FAIL"
    if act is not None and not act["pass"]:
        return "NOT TESTED"
    return "PASS"


def _verdict_text(meta: dict, act: Optional[dict], markdown: bool = True) -> str:
    v = meta.get("verdict", "PASS" if meta["pass"] else "FAIL")
    if v == "PASS":
        return "PASS"
    if v == "INCOMPLETE":
        text = (f"INCOMPLETE: the activity runs stopped ({meta.get('error')}); the "
                f"connectivity part is complete")
        return f"**{text}**" if markdown else text
    if v == "FAIL":
        why = _fail_reasons(meta, act)
        return (f"**FAIL** ({why})" if markdown else f"FAIL: {why}") if why else \
            ("**FAIL**" if markdown else "FAIL")
    missing = (act or {}).get("not_tested", [])
    text = (f"NOT PASSED: {len(missing)} statistic(s) not tested "
            f"({', '.join(missing) if missing else 'none computable'}), none failed")
    return f"**{text}**" if markdown else text


def _fail_reasons(meta: dict, act: Optional[dict]) -> str:
    """What failed, in a few words: connectivity tests, same-seed spikes, statistics
    outside the seed-to-seed spread (by population/statistic)."""
    out = []
    bad_proj = meta.get("connectivity_failed") or []
    if bad_proj:
        out.append(f"connectivity of {len(bad_proj)} projection(s): " + ", ".join(bad_proj[:4]) +
                   (" ..." if len(bad_proj) > 4 else ""))
    if act is not None:
        bad_seeds = [s["seed"] for s in act.get("same_seed", []) if not s["identical"]]
        if bad_seeds:
            out.append(f"same-seed spikes differ (seed {', '.join(map(str, bad_seeds))})")
        bad = act.get("inconsistent", [])
        if bad:
            out.append("outside the seed-to-seed spread: " + ", ".join(bad[:6]) +
                       (f" and {len(bad) - 6} more" if len(bad) > 6 else ""))
    return "; ".join(out)


# -- 3. report ------------------------------------------------------------------------
def _fmt(x, spec=".3f"):
    if x is None:
        return "n/a"
    if isinstance(x, bool):
        return "yes" if x else "**NO**"
    if isinstance(x, float) and not math.isfinite(x):
        return "n/a"
    return format(x, spec)


def _figures(runs: List[dict], out: str, t_discard: float) -> List[str]:
    from matplotlib.figure import Figure      # Figure API: no pyplot state, no backend switch
    files = []
    test = [r for r in runs if r["label"] == "test"]
    ref = [r for r in runs if r["label"] == "reference"]
    pops = list(ref[0]["stats"].keys())
    # raster: 200 ms after the transient, first test run
    r0 = test[0]
    t1 = min(r0["duration"], t_discard + 200.0)
    sel = (r0["times"] >= t_discard) & (r0["times"] < t1)
    fig = Figure(figsize=(7, 4.5))
    ax = fig.subplots()
    colors = ["#595289", "#af143c"] * 4
    pidx = np.searchsorted(r0["pop_offsets"], r0["senders"][sel], side="right") - 1
    for i, name in enumerate(r0["pop_names"]):
        m = pidx == i
        ax.plot(r0["times"][sel][m], r0["senders"][sel][m], "|", ms=1.5, color=colors[i % 8],
                rasterized=True)
    ax.set_yticks(r0["pop_offsets"] + r0["pop_sizes"] / 2)
    ax.set_yticklabels(r0["pop_names"])
    ax.invert_yaxis()
    ax.set_xlabel("time (ms)")
    ax.set_title(f"raster, {r0['connectivity']}/{r0['backend']} seed {r0['seed']}")
    fig.tight_layout()
    fig.savefig(os.path.join(out, "raster.png"), dpi=80)
    files.append("raster.png")
    for m in METRICS:
        fig = Figure(figsize=(11, 5))
        axs = fig.subplots(2, 4)
        for ax, pop in zip(axs.ravel(), pops):
            a = np.concatenate([t["stats"][pop][m] for t in test])
            b = np.concatenate([r["stats"][pop][m] for r in ref])
            a, b = a[np.isfinite(a)], b[np.isfinite(b)]
            both = np.concatenate([a, b])
            if a.size and b.size:
                lo, hi = np.percentile(both, [0.5, 99.5]) if m != "rate" else (0, np.percentile(
                    both, 99.5))
                bins = np.linspace(lo, hi if hi > lo else lo + 1, 40)
                ax.hist(b, bins=bins, density=True, histtype="stepfilled", alpha=0.4,
                        color="0.5", label="stored (reference)")
                ax.hist(a, bins=bins, density=True, histtype="step", color="C3",
                        label="under test")
            ax.set_title(pop, fontsize=9)
            ax.tick_params(labelsize=7)
        handles, labels = axs[0, 0].get_legend_handles_labels()
        if not handles:
            for ax in axs.ravel():
                handles, labels = ax.get_legend_handles_labels()
                if handles:
                    break
        if handles:
            fig.legend(handles, labels, fontsize=7, loc="upper right")
        fig.suptitle(f"{METRIC_LABEL[m]} per population (pooled over seeds)")
        fig.tight_layout()
        fn = {"rate": "rates.png", "cv": "cv_isi.png", "corr": "correlations.png"}[m]
        fig.savefig(os.path.join(out, fn), dpi=72)
        files.append(fn)
    return files


def _count(v) -> str:
    """A count averaged over runs: whole numbers as such, else one decimal."""
    return f"{v:.0f}" if float(v).is_integer() else f"{v:.1f}"


def write_report(out: str, meta: dict, conn: Optional[dict], act: Optional[dict],
                 runs: Optional[List[dict]], figures: List[str], fig_note: str = "") -> str:
    """Write ``report.md`` and ``validation.json`` to ``out``; returns the report path."""
    os.makedirs(out, exist_ok=True)
    size = (f"at scale {meta['scale']}" if meta.get("scale") is not None
            else f"with {meta['neurons']:,d} neurons")
    L = [f"# Validation: {meta['model']} {size}", "",
         f"- model options: {meta.get('options', {})}"]
    L.append(f"- date: {meta['date']}; git commit: `{meta['git']}`")
    L.append(f"- machine: {meta['machine']}; 1-min load average at start / end: "
             f"{meta.get('load_average_start')} / {meta.get('load_average_end')}")
    syn = (f"{meta['synapses']:,d} synapses" if meta.get("synapses_exact", True) else
           f"{meta['synapses']:,d} synapses expected (pairwise_bernoulli draws the count)")
    L.append(f"- network: {meta['neurons']:,d} neurons, {syn}, dt {meta['dt']} ms")
    L.append(f"- model time per run: {meta['duration']} ms, first {meta['t_discard']} ms discarded")
    if runs and "corr_bin_ms" in meta:
        L.append(f"- statistics per population over ({meta['t_discard']}, {meta['duration']}] ms: "
                 f"rate of every neuron; CV of the ISIs of neurons with >= "
                 f"{meta['cv_min_spikes']} spikes; correlations of spike counts in "
                 f"{meta['corr_bin_ms']:g} ms bins (whole bins) for all pairs of "
                 f"{meta['n_corr']} neurons sampled per population (NumPy seed "
                 f"{meta['corr_seed']} + population index, the same neurons in every run), "
                 f"pairs with a neuron of constant count (e.g. silent) left out; 'n': values "
                 f"per run, averaged over runs")
    if runs:
        L.append(f"- runs under test: {meta['connectivity']} connectivity on `{meta['backend']}`, "
                 f"seeds {meta['test_seeds']}; reference: stored connectivity on "
                 f"`{meta['reference_backend']}`, seeds {meta['reference_seeds']}")
    L.append(f"- **wall time of the whole validation: {meta['wall_total_s']:.1f} s** "
             f"(connectivity part {meta.get('wall_connectivity_s', 0.0):.1f} s, "
             f"simulations {meta.get('wall_runs_s', 0.0):.1f} s with {meta['jobs']} process(es))")
    L.append(f"- overall: {_verdict_text(meta, act)}")
    L.append("")
    if runs:
        L.append("| run | connectivity | backend | seed | wall (s) | CPU (s) | setup (s) "
                 "| simulate (s) | synaptic events |")
        L.append("|---|---|---|---|---|---|---|---|---|")
        for r in runs:
            cpu = r.get("cpu_s")
            L.append(f"| {r['label']} | {r['connectivity']} | {r['backend']} | {r['seed']} "
                     f"| {r['wall_s']:.1f} | {'n/a' if cpu is None else format(cpu, '.1f')} "
                     f"| {r['wall_setup_s']:.1f} | {r['wall_run_s']:.1f} "
                     f"| {r['synaptic_events']} |")
        L.append("")
    if act is not None:
        L += ["## Activity", "", "### Same seed", ""]
        for s in act["same_seed"]:
            L.append(f"- seed {s['seed']}: {s['test']} vs {s['reference']}: "
                     + (f"**identical spikes** ({s['spikes_test']} spikes, every time and sender "
                        f"equal)" if s["identical"] else
                        f"**DIFFERENT** ({s['spikes_test']} vs {s['spikes_reference']} spikes, "
                        f"first difference at {s['first_difference_ms']} ms)"))
        L += ["", "### Summary (mean over runs; KS D: mean over seed pairs)", "",
              "| population | rate test (Hz) | rate ref (Hz) | NEST full scale (Hz) | CV test "
              "| CV ref | corr test | corr ref | rate D test / base max | consistent |",
              "|---|---|---|---|---|---|---|---|---|---|"]
        nest = meta.get("full_scale_rates") or {}
        for pop, e in act["populations"].items():
            untested = [m for m, x in e.items() if x["consistent"] is None]
            if any(x["consistent"] is False for x in e.values()):
                ok = "**NO**"
            elif untested:
                ok = "not tested" + ("" if len(untested) == len(e) else
                                     f" ({', '.join(untested)})")
            else:
                ok = "yes"
            L.append(f"| {pop} | {_fmt(e['rate']['test_mean'])} | {_fmt(e['rate']['reference_mean'])} "
                     f"| {_fmt(nest.get(pop))} | {_fmt(e['cv']['test_mean'])} "
                     f"| {_fmt(e['cv']['reference_mean'])} | {_fmt(e['corr']['test_mean'], '.4f')} "
                     f"| {_fmt(e['corr']['reference_mean'], '.4f')} "
                     f"| {_fmt(e['rate']['ks_test_mean'])} / {_fmt(e['rate']['ks_base_max'])} "
                     f"| {ok} |")
        L += ["", f"Consistent: over the {act['pairs_test']} (test, reference) pairs of different "
              f"seeds, the mean KS D is at most {act['tolerance']:g} x the largest of the "
              f"{act['pairs_base']} reference-vs-reference D values (the seed-to-seed spread), "
              f"or at most the two-sample KS critical value at alpha {KS_FLOOR_ALPHA:g} for "
              f"the sample sizes ('KS floor': a smaller D is sampling noise, e.g. where every "
              f"reference run is silent and the baseline D is 0), "
              f"and likewise the mean |Cohen's d| (or it is < {D_FLOOR}). 'MWU p': one-sided "
              f"Mann-Whitney p that test-pair D exceed baseline-pair D, for information only "
              f"(smallest attainable: {_fmt(act['min_attainable_p'], '.2g')}). 'not tested': the "
              f"statistic could not be computed (e.g. too few spikes), which is not a pass.",
              "",
              f"This is an effect-size screen, not a significance test: KS D and |Cohen's d| are "
              f"compared with the seed-to-seed spread of the reference runs "
              f"({act['pairs_base']} baseline pair(s); 2 reference seeds give a single pair), "
              f"so it catches gross differences such as a wrong weight or delay. A small "
              f"systematic shift (e.g. 10 % of a rate) may pass it.", ""]
        for pop, e in act["populations"].items():
            L += [f"### {pop}", "",
                  "| statistic | n test | n ref | mean test | mean ref | KS D test mean / max "
                  "| KS D base mean / max | KS floor | min p test / base | Cohen's d test mean / max "
                  "| Cohen's d base mean / max | MWU p (D) | consistent |",
                  "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
            for m in METRICS:
                x = e[m]
                spec = ".4f" if m == "corr" else ".3f"
                verdict = "not tested" if x["consistent"] is None else _fmt(x["consistent"])
                L.append(f"| {METRIC_LABEL[m]} | {_count(x['test_n'])} "
                         f"| {_count(x['reference_n'])} "
                         f"| {_fmt(x['test_mean'], spec)} | {_fmt(x['reference_mean'], spec)} "
                         f"| {_fmt(x['ks_test_mean'])} / {_fmt(x['ks_test_max'])} "
                         f"| {_fmt(x['ks_base_mean'])} / {_fmt(x['ks_base_max'])} "
                         f"| {_fmt(x.get('ks_floor'))} "
                         f"| {_fmt(x['p_test_min'], '.2g')} / {_fmt(x['p_base_min'], '.2g')} "
                         f"| {_fmt(x['d_test_mean'])} / {_fmt(x['d_test_max'])} "
                         f"| {_fmt(x['d_base_mean'])} / {_fmt(x['d_base_max'])} "
                         f"| {_fmt(x['p_rank_D'], '.2g')} | {verdict} |")
            L.append("")
    if conn is not None:
        L += ["## Connectivity", "",
              f"Network of seed {meta['seed']}. {len(conn['projections'])} projections, "
              f"{conn['n_synapses']} synapses, {conn['wall_s']:.1f} s. Chi-square (degrees, "
              f"delays) and KS (weights) p-values against theory; family-wise alpha "
              f"{conn['alpha']} Bonferroni-corrected over {conn['n_tests']} tests: each passes "
              f"at p >= {conn['alpha_per_test']:.2e}. Result: "
              f"{'all pass' if conn['pass'] else '**FAILURES**'}.", "",
              "| projection | synapses | exact count | in-degree mean (theory) | p in | "
              "out-degree p | weight KS D | p weight | delay p | regenerated = stored | pass |",
              "|---|---|---|---|---|---|---|---|---|---|---|"]
        for r in conn["projections"]:
            L.append(f"| {r['projection']} | {r['synapses']} | {_fmt(r['count_ok'])} "
                     f"| {r['in_degree']['mean']:.2f} ({r['in_degree']['expected_mean']:.2f}) "
                     f"| {_fmt(r['in_degree']['p'], '.3g')} | {_fmt(r['out_degree']['p'], '.3g')} "
                     f"| {_fmt(r['weight']['D'], '.2e')} | {_fmt(r['weight']['p'], '.3g')} "
                     f"| {_fmt(r['delay']['p'], '.3g')} | {_fmt(r['regenerated_equal'])} "
                     f"| {_fmt(r['pass'])} |")
        L += ["", "n/a: too few synapses for a test with >= 5 expected per bin.", ""]
    L += ["## Figures", ""]
    if figures:
        L += [f"![{f}]({f})" for f in figures]
    else:
        L.append(fig_note or "No figures.")
    L.append("")
    path = os.path.join(out, "report.md")
    with open(path, "w") as f:
        f.write("\n".join(L))
    summary = {"meta": meta, "connectivity": conn, "activity": act,
               "runs": [{k: v for k, v in r.items() if k not in ("stats", "times", "senders",
                                                                 "pop_offsets", "pop_sizes",
                                                                 "pop_names")}
                        for r in (runs or [])]}
    with open(os.path.join(out, "validation.json"), "w") as f:
        json.dump(summary, f, indent=1, default=_json_default)
    return path


def _loadavg():
    """1-minute load average (a shared machine's wall times depend on it), or None."""
    try:
        return round(os.getloadavg()[0], 2)
    except (OSError, AttributeError):
        return None


def _git_commit() -> str:
    return git_commit() or "unknown"


# -- command line ---------------------------------------------------------------------
def _add(parser, *flags, **kw):
    """Add an option unless the caller's parser already has it (the CLI may share some)."""
    try:
        parser.add_argument(*flags, **kw)
    except argparse.ArgumentError:
        pass


def add_arguments(parser: argparse.ArgumentParser, common: bool = False,
                  model: Optional[str] = None) -> None:
    """Add the validate-specific options to ``parser``; with ``common=True`` also the
    options ``pyproc run`` shares (model, --scale, --duration, --seed, --backend,
    --connectivity, --out, --quiet), for a standalone script.  ``model``: the model the
    parser is for (its own options only; None: every model's)."""
    if common:
        _add(parser, "model", nargs="?", default="microcircuit",
             help="model name")
        _add(parser, "--scale", type=float, default=0.1, help="network scale")
        _add(parser, "--duration", type=float, default=2500.0,
             help="model time per run in ms, transient included")
        _add(parser, "--seed", type=int, default=1, help="first seed")
        _add(parser, "--backend", choices=("cpu", "cuda"), default="cpu",
             help="backend of the runs under test")
        _add(parser, "--connectivity", choices=("procedural", "stored"), default="procedural",
             help="connectivity of the runs under test")
        _add(parser, "--out", default="validation_out", help="output folder")
        _add(parser, "--quiet", action="store_true", help="no progress output")
    _add(parser, "--seeds", type=int, default=3,
         help="reference seeds (stored) = runs under test; >= 2")
    _add(parser, "--reference-backend", dest="reference_backend", choices=("cpu", "cuda"),
         default="cpu", help="backend of the stored reference runs")
    _add(parser, "--t-discard", dest="t_discard", type=float, default=analysis.T_DISCARD_MS,
         help="initial transient left out, ms")
    _add(parser, "--n-corr", dest="n_corr", type=int, default=analysis.CORR_NEURONS,
         help="neurons sampled per population for correlations")
    _add(parser, "--alpha", type=float, default=0.01,
         help="family-wise significance level of the connectivity tests")
    _add(parser, "--tolerance", type=float, default=2.0,
         help="activity: largest ratio of test to baseline KS D / |Cohen's d|")
    _add(parser, "--jobs", type=int, default=1, help="CPU processes for the runs")
    if model in (None, "microcircuit"):
        _add(parser, "--dc", action="store_true",
             help="DC background instead of Poisson (microcircuit)")
    _add(parser, "--skip-connectivity", dest="skip_connectivity", action="store_true",
         help="leave out part 1")
    _add(parser, "--skip-activity", dest="skip_activity", action="store_true",
         help="leave out part 2")
    _add(parser, "--save-spikes", dest="save_spikes", action="store_true",
         help="also write every run's spikes under OUT/runs/")


def _check_options(g, t_discard: float, duration: float) -> None:
    """Usage errors (ModelError naming the option and its range) before anything runs."""
    skip_conn, skip_act = bool(g("skip_connectivity", False)), bool(g("skip_activity", False))
    if skip_conn and skip_act:
        raise ModelError("validate: --skip-connectivity and --skip-activity together leave "
                         "nothing to check; give at most one of them")

    def number(option, value, kind=float):
        try:
            v = kind(value)
        except (TypeError, ValueError, OverflowError):
            raise ModelError(f"validate: {option} must be a number, got {value!r}") from None
        if kind is int and v != value:
            raise ModelError(f"validate: {option} must be an integer, got {value!r}")
        return v

    alpha = number("--alpha", g("alpha", 0.01))
    if not (math.isfinite(alpha) and 0.0 < alpha < 1.0):
        raise ModelError(f"validate: --alpha must be a finite number with 0 < alpha < 1, "
                         f"got {alpha:g}")
    tol = number("--tolerance", g("tolerance", 2.0))
    if not (math.isfinite(tol) and tol > 0.0):
        raise ModelError(f"validate: --tolerance must be a finite number > 0, got {tol:g}")
    jobs = number("--jobs", g("jobs", 1), int)
    if jobs < 1:
        raise ModelError(f"validate: --jobs must be >= 1, got {jobs}")
    seeds = number("--seeds", g("seeds", 3), int)
    if seeds < 2:
        raise ModelError(f"validate: --seeds must be >= 2 (the baseline needs two reference "
                         f"seeds), got {seeds}")
    n_corr = number("--n-corr", g("n_corr", analysis.CORR_NEURONS), int)
    if n_corr < 2:
        raise ModelError(f"validate: --n-corr must be >= 2 (a correlation needs a pair of "
                         f"neurons), got {n_corr}")
    if not (math.isfinite(t_discard) and t_discard >= 0.0):
        raise ModelError(f"validate: --t-discard must be >= 0 ms (0 <= t-discard < --duration), "
                         f"got {t_discard:g}")
    if not skip_act and not t_discard < duration:
        raise ModelError(f"validate: --t-discard must be less than --duration "
                         f"(0 <= t-discard < {duration:g} ms) so that some activity is left to "
                         f"analyse, got {t_discard:g}")


def main(args) -> int:
    """Run the suite as configured by ``args`` (see :func:`add_arguments`; from the CLI also
    ``args.model_options``); returns 0 when everything passes, 1 otherwise."""
    g = (lambda name, default: default if getattr(args, name, None) is None
         else getattr(args, name))
    t_start = time.perf_counter()
    model, seed = g("model", "microcircuit"), int(g("seed", 1))
    options = _model_options(args, model)
    out = g("out", None) or os.path.join(
        "runs", f"validate-{model}-{datetime.datetime.now():%Y%m%d-%H%M%S}")
    quiet = bool(g("quiet", False))
    log = (lambda *a, **k: None) if quiet else (lambda *a, **k: print(*a, **k, flush=True))
    t_discard = float(g("t_discard", analysis.T_DISCARD_MS))
    duration = float(g("duration", 2500.0))
    _check_options(g, t_discard, duration)
    os.makedirs(out, exist_ok=True)
    net = build_model(model, seed, **options)
    cnet = compile_network(net)
    n_syn, syn_exact = cnet.synapse_count()
    from .models import MODELS
    params = inspect.signature(MODELS[model]).parameters
    scale = options.get("scale", params["scale"].default if "scale" in params else None)
    meta = {"model": model, "scale": scale, "options": options, "seed": seed, "dt": net.dt,
            "neurons": net.n_neurons, "synapses": n_syn, "synapses_exact": syn_exact,
            "duration": duration,
            "t_discard": t_discard, "corr_bin_ms": analysis.CORR_BIN_MS,
            "n_corr": int(g("n_corr", analysis.CORR_NEURONS)), "corr_seed": 0,
            "cv_min_spikes": analysis.CV_MIN_SPIKES, "backend": g("backend", "cpu"),
            "connectivity": g("connectivity", "procedural"),
            "reference_backend": g("reference_backend", "cpu"), "jobs": int(g("jobs", 1)),
            "cuda_options": dict(g("cuda_option", None) or []),
            "date": datetime.datetime.now().isoformat(timespec="seconds"), "git": _git_commit(),
            "machine": f"{platform.node()} {platform.machine()}, {os.cpu_count()} CPUs, "
                       f"Python {platform.python_version()}, NumPy {np.__version__}",
            "load_average_start": _loadavg()}
    if model == "microcircuit":
        from .models.microcircuit import FULL_MEAN_RATES, POPULATIONS
        meta["full_scale_rates"] = dict(zip(POPULATIONS, FULL_MEAN_RATES.tolist()))
    if not g("skip_activity", False):       # before the connectivity part's minutes
        check_run_memory(cnet, meta["jobs"], 2 * int(g("seeds", 3)), meta["backend"],
                         meta["connectivity"], meta["reference_backend"])
    conn = act = runs = None
    if not g("skip_connectivity", False):
        size = f"scale {scale}" if scale is not None else f"{net.n_neurons:,d} neurons"
        log(f"[1/3] connectivity of {model} ({size}, seed {seed})")
        conn = check_connectivity(cnet, float(g("alpha", 0.01)), log=log)
        meta["wall_connectivity_s"] = conn["wall_s"]
        meta["connectivity_failed"] = [r["projection"] for r in conn["projections"]
                                       if not r["pass"]]
    if not g("skip_activity", False):
        n_seeds = int(g("seeds", 3))
        meta["reference_seeds"] = [seed + j for j in range(n_seeds)]
        meta["test_seeds"] = [seed] + [seed + n_seeds + j for j in range(n_seeds - 1)]
        log(f"[2/3] activity: {2 * n_seeds} runs of {duration} ms")
        t0 = time.perf_counter()
        try:
            runs = run_activity(model, options, duration, seed, n_seeds, meta["backend"],
                                meta["connectivity"], meta["reference_backend"], t_discard,
                                int(g("n_corr", analysis.CORR_NEURONS)), meta["jobs"],
                                os.path.join(out, "runs") if g("save_spikes", False) else None,
                                log, cuda_options=meta["cuda_options"], progress=not quiet)
        except BaseException as e:     # Ctrl-C or a backend error: keep the finished part
            if conn is not None:
                meta.update(verdict="INCOMPLETE", error=f"{type(e).__name__}: {e}".rstrip(": "),
                            wall_total_s=time.perf_counter() - t_start,
                            load_average_end=_loadavg())
                meta["pass"] = False
                path = write_report(out, meta, conn, None, None, [], "")
                log(f"wrote {path} ({_verdict_text(meta, None, markdown=False)})")
            raise
        meta["wall_runs_s"] = time.perf_counter() - t0
        act = compare_activity(runs, float(g("tolerance", 2.0)))
    log("[3/3] report")
    figures, note = [], ""
    if runs:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)   # empty histogram bins
                figures = _figures(runs, out, t_discard)
        except ImportError:
            note = ("matplotlib is not installed, so no figures were drawn "
                    "(pip install 'pyproc[plot]').")
    remove_stale(os.path.join(out, fn) for fn in
                 ("raster.png", "rates.png", "cv_isi.png", "correlations.png") if fn not in figures)
    meta["verdict"] = _overall(conn, act)
    meta["pass"] = meta["verdict"] == "PASS"
    meta["wall_total_s"] = time.perf_counter() - t_start
    meta["load_average_end"] = _loadavg()
    path = write_report(out, meta, conn, act, runs, figures, note)
    log(f"wrote {path} ({_verdict_text(meta, act, markdown=False)}; {meta['wall_total_s']:.1f} s)")
    return 0 if meta["pass"] else 1


if __name__ == "__main__":  # pragma: no cover
    p = argparse.ArgumentParser(prog="python -m pyproc.validate", description=__doc__.split("\n")[0])
    add_arguments(p, common=True)
    sys.exit(main(p.parse_args()))

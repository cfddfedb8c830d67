"""The benchmark suite (pyproc.bench): events arithmetic against a hand count, a tiny
case end to end (JSON + Markdown, fields, events == the simulator's count), skips."""
from __future__ import annotations

import argparse
import json
import os
import sys

import numpy as np
import pytest

import pyproc as pp
from pyproc import bench
from pyproc.compile import compile_network
from pyproc.models import balanced
from pyproc.rules import decoder, fixed_outdegree

# the fake PyCUDA (NumPy kernel emulation) of the CUDA backend's host-side tests: imported
# unguarded, so that a broken fake fails these tests instead of skipping them
from fake_pycuda import fake  # noqa: F401  (a pytest fixture)


def _parse(argv):
    p = argparse.ArgumentParser()
    bench.add_arguments(p)
    return p.parse_args(argv)


def _decoder_net(dt=1.0):
    """A (6 neurons) -> B (3): decoder and fixed_outdegree(4); B -> A: fixed_outdegree(2)."""
    net = pp.Network(dt=dt, seed=3)
    par = pp.LIF(tau_syn_ex=0.5, tau_syn_in=0.5)
    net.add_population("A", 6, par)
    net.add_population("B", 3, par)
    net.connect("A", "B", decoder(), weight=10.0, delay=1.0, name="dec")
    net.connect("A", "B", fixed_outdegree(4), weight=10.0, delay=2.0, name="out4")
    net.connect("B", "A", fixed_outdegree(2), weight=10.0, delay=1.0, name="back2")
    net.add_poisson("A", rate=20.0, K=1000, weight=60.0)
    net.add_poisson("B", rate=20.0, K=1000, weight=60.0)
    return net


def test_events_hand_count():
    cnet = compile_network(_decoder_net())
    # A spikes: 0, 0, 2, 5; B spikes: local 0 and 2 (global 6 and 8)
    senders = np.array([0, 0, 2, 5, 6, 8])
    # decoder onto 3 targets: row of i = set bits of (i + 1) below bit 3
    #   i=0: 0b001 -> 1;  i=2: 0b011 -> 2;  i=5: 0b110 -> 2   => 1 + 1 + 2 + 2 = 6
    # fixed_outdegree(4) A->B: 4 spikes x 4 = 16;  fixed_outdegree(2) B->A: 2 spikes x 2 = 4
    hand = 6 + 16 + 4
    assert bench.events_from_spikes(cnet, senders) == hand
    assert bench.events_per_second(hand, 2.0) == pytest.approx(13.0)
    assert bench.events_per_second(hand, 0.0) is None
    np.testing.assert_array_equal(bench.row_lengths(cnet, 0, np.array([0, 2, 5, 6])),
                                  [1, 2, 2, 3])      # i=6: 0b111 -> 3


def test_events_from_spikes_equal_simulator_count():
    net = _decoder_net()
    for conn in ("stored", "procedural"):
        sim = pp.Simulation(net, backend="cpu", connectivity=conn)
        res = sim.run(50.0)
        assert res.times.size > 0
        assert bench.events_from_spikes(sim.cnet, res.senders) == sim.sim.n_events


def test_tiny_suite_end_to_end(tmp_path):
    out = str(tmp_path / "bench")
    args = _parse(["--models", "balanced", "--sizes", "200", "--dts", "1", "--duration", "30",
                   "--warmup", "5", "--backends", "cpu", "--connectivity", "stored,procedural",
                   "--out", out, "--quiet"])
    import signal
    before = signal.getsignal(signal.SIGTERM)
    assert bench.main(args) == 0
    assert signal.getsignal(signal.SIGTERM) is before    # its SIGTERM handler is not left
    with open(os.path.join(out, "results.json")) as f:
        doc = json.load(f)
    env = doc["environment"]
    for key in ("pyproc", "git_commit", "host_cpu", "gpu_name", "gpu_driver",
                "cuda_driver_version", "python", "numpy"):
        assert key in env
    assert doc["command"] and doc["published"]
    assert [r["case"]["connectivity"] for r in doc["cases"]] == ["stored", "procedural"]
    ref = pp.Simulation(pp.compile_network(balanced(200, dt=1.0, seed=1)),
                        backend="cpu", connectivity="stored")
    ref_res = ref.run(35.0)                           # warm-up 5 ms + 30 ms measured
    for r in doc["cases"]:
        assert r["status"] == "ok", r
        for key in ("setup_s", "rtf", "events_per_s", "neuron_updates_per_s", "spikes",
                    "synaptic_events", "peak_host_bytes", "peak_device_bytes", "synapses"):
            assert key in r
        assert r["measured_ms"] == pytest.approx(30.0)
        assert r["events_check"]["equal"]
        assert r["synaptic_events_total"] == ref.sim.n_events
        assert r["spikes_total"] == ref_res.times.size
        assert r["events_per_s"] == pytest.approx(r["synaptic_events"] / r["run_wall_s"])
        assert r["neuron_updates_per_s"] == pytest.approx(200 * 30 / r["run_wall_s"])
        assert r["peak_host_bytes"] > 0
    assert doc["cases"][1]["same_as"] == {"case": doc["cases"][0]["label"], "spikes": True,
                                          "events": True}
    with open(os.path.join(out, "results.md")) as f:
        md = f.read()
    assert md.count("| balanced | 200 |") == 2
    assert "Published figures" in md and "Knight" in md


def _case(**kw):
    c = dict(model="balanced", size=2000, dt=1.0, backend="cpu", connectivity="stored",
             duration_ms=20.0, warmup_ms=2.0, seed=1, max_seconds=60.0, check_events="auto",
             host_memory=None, device_memory=None)
    c.update(kw)
    return c


def test_skip_when_stored_does_not_fit(monkeypatch):
    cnet = compile_network(balanced(2000, dt=1.0))
    proc = bench.host_bytes_estimate(cnet, "procedural")
    stored = bench.host_bytes_estimate(cnet, "stored")
    assert stored > proc + 4_000_000                  # 4e5 synapses x 12 B, at least
    monkeypatch.setattr(bench, "host_available_bytes", lambda: proc + 1_000_000)
    rec = bench.run_case(_case())
    assert rec["status"] == "skipped"
    assert "stored needs" in rec["note"] and "available" in rec["note"]
    assert rec["memory_needed_bytes"] == stored
    assert bench.run_case(_case(connectivity="procedural"))["status"] == "ok"
    # CUDA: the planner's prediction decides before any GPU is touched
    monkeypatch.setattr(bench, "device_available_bytes", lambda: 1_000_000)
    rec = bench.run_case(_case(backend="cuda"))
    assert rec["status"] == "skipped" and "device memory" in rec["note"]


def test_skip_and_shorten_by_budget():
    rec = bench.run_case(_case(size=20000, max_seconds=1.0, host_memory=10 ** 15))
    assert rec["status"] == "skipped" and "--max-seconds" in rec["note"]
    rec = bench.run_case(_case(size=500, dt=0.1, connectivity="procedural",
                               duration_ms=1e5, max_seconds=0.6))
    assert rec["status"] == "ok"
    assert 0 < rec["measured_ms"] < 1e5 and "shortened" in rec["note"]
    # a warm-up cut by the budget is said too (the measured part then starts earlier in
    # the transient than another case's)
    rec = bench.run_case(_case(size=500, dt=0.1, connectivity="procedural",
                               warmup_ms=1e5, duration_ms=10.0, max_seconds=0.6))
    assert rec["status"] == "ok" and rec["warmup_ms"] < 1e5
    assert rec["note"].startswith(f"warm-up shortened to {rec['warmup_ms']:g} ms of 100000 ms")


def test_case_selection_and_memory_override(tmp_path):
    args = _parse(["--models", "balanced,microcircuit", "--sizes", "1e4,5e4", "--dts", "0.1,1",
                   "--scales", "0.1", "--backends", "cpu,cuda", "--connectivity", "stored",
                   "--host-memory-gb", "0.5"])
    cases = bench.build_cases(args)
    assert len(cases) == 2 * 2 * 2 + 1 * 2
    assert {c["model"] for c in cases} == {"balanced", "microcircuit"}
    assert all(c["host_memory"] == 2 ** 29 for c in cases)
    rec = bench.run_case(cases[0])                   # balanced 1e4 stored: 1e7 synapses
    assert rec["status"] == "skipped" and "512.00 MiB available" in rec["note"]
    with pytest.raises(SystemExit):
        _parse(["--backends", "tpu"])


def test_cuda_case_with_fake_driver(fake, monkeypatch):
    """The CUDA path of run_case on the NumPy kernel emulation of tests/fake_pycuda.py
    (no GPU): device bytes from the backend's allocation, events checked."""
    monkeypatch.setattr(bench, "device_available_bytes", lambda: None)
    for conn in ("procedural", "stored"):
        rec = bench.run_case(_case(size=200, backend="cuda", connectivity=conn,
                                   duration_ms=10.0))
        assert rec["status"] == "ok", rec
        assert rec["peak_device_source"] == "allocated"
        assert rec["peak_device_bytes"] == bench.device_bytes_estimate(
            compile_network(balanced(200, dt=1.0)), conn)
        assert rec["events_check"]["equal"], rec["events_check"]


def test_cross_check_against_reference():
    def rec(label, conn, spikes, events, backend="cpu", warm=100.0, meas=1000.0):
        return {"label": label, "status": "ok", "warmup_ms": warm, "measured_ms": meas,
                "spikes_total": spikes, "synaptic_events_total": events,
                "case": {"model": "balanced", "size": 10000, "dt": 0.1, "backend": backend,
                         "connectivity": conn}}
    ref = [rec("cpu stored", "stored", 10, 100)]
    ours = [rec("cuda procedural", "procedural", 10, 100, "cuda"),
            rec("cuda stored", "stored", 11, 100, "cuda"),
            rec("cuda short", "stored", 9, 90, "cuda", meas=900.0)]
    bench.cross_check(ours, ref)
    assert ours[0]["same_as"] == {"case": "[ref] cpu stored", "spikes": True, "events": True}
    assert ours[1]["same_as"]["spikes"] is False
    assert "same_as" not in ours[2]                  # other number of steps: not comparable
    assert "same_as" not in ref[0]
    assert bench.same_as_failed(ours[1]) and not bench.same_as_failed(ours[0])
    # another seed is another network: no comparison
    other_seed = rec("seed 2", "procedural", 12, 120)
    other_seed["case"]["seed"] = 2
    bench.cross_check([other_seed], ref)
    assert "same_as" not in other_seed
    # a reference of another commit: compared, a difference reported but not a failure
    old = [dict(ref[0], git_commit="abc1234")]
    mine = [rec("now", "stored", 11, 100)]
    bench.cross_check(mine, old, commit="def5678")
    assert mine[0]["same_as"]["other_commit"] == "abc1234"
    assert not bench.same_as_failed(mine[0])
    assert "recorded at commit abc1234: other code, not a failure" in bench._one_line(
        dict(mine[0], setup_s=1.0, rtf=1.0))
    same = [rec("now", "stored", 11, 100)]
    bench.cross_check(same, old, commit="abc1234")
    assert bench.same_as_failed(same[0]) and "other_commit" not in same[0]["same_as"]


@pytest.mark.parametrize("argv,named", [
    (["--sizes", "2.5"], "--sizes"),                 # not truncated to 2
    (["--sizes", "1e4,200.5"], "--sizes"),
    (["--sizes", "4"], "--sizes"),                   # balanced needs >= 5 neurons
    (["--max-seconds", "nan"], "--max-seconds"),     # would disable the budget
    (["--max-seconds", "-1"], "--max-seconds"),
    (["--max-seconds", "0"], "--max-seconds"),
    (["--total-seconds", "inf"], "--total-seconds"),
    (["--warmup", "-1"], "--warmup"),
    (["--warmup", "nan"], "--warmup"),
    (["--host-memory-gb", "-1"], "--host-memory-gb"),
    (["--device-memory-gb", "0"], "--device-memory-gb"),
    (["--render", "/nonexistent/pyproc-bench"], "--render"),
    (["--scales", "2"], "--scales"),                 # as run --scale: in (0, 1]
    (["--mam-scales", "0.5,1.5"], "--mam-scales"),
])
def test_bad_options_exit_2_naming_the_option(capsys, argv, named):
    from pyproc import cli
    assert cli.main(["bench"] + argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and named in err[0] and "Traceback" not in err[0], err
    with pytest.raises(SystemExit) as e:             # python -m pyproc.bench: the same checks
        _parse(argv)
    assert e.value.code == 2


@pytest.mark.parametrize("argv,words", [
    (["--dts", "0.3", "--duration", "20", "--warmup", "9"],
     ["argument --duration", "20 ms is not a whole number of steps of dt = 0.3 ms"]),
    (["--dts", "0.3", "--duration", "21", "--warmup", "10"],
     ["argument --warmup", "10 ms is not a whole number of steps of dt = 0.3 ms"]),
    (["--duration", "0"], ["argument --duration", "must be > 0 ms"]),   # was: every case
])                                                                      # "skipped", exit 0
def test_duration_and_warmup_must_be_whole_steps_of_every_dt(capsys, tmp_path, argv, words,
                                                             monkeypatch):
    """As `pyproc run --duration`: refused before any case runs (they were run with the
    times silently rounded to 9.9 and 20.1 ms)."""
    from pyproc import cli
    monkeypatch.setattr(bench, "run_suite", lambda *a, **k: pytest.fail("the suite ran"))
    assert cli.main(["bench", "--models", "balanced", "--sizes", "50", *argv,
                     "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and all(w in err[0] for w in words), err


def test_good_options_parse(tmp_path):
    args = _parse(["--sizes", "1e4,200", "--warmup", "0", "--max-seconds", "0.5",
                   "--host-memory-gb", "0.25"])
    assert args.sizes == [10000, 200] and all(type(s) is int for s in args.sizes)
    assert (args.warmup, args.max_seconds, args.host_memory_gb) == (0.0, 0.5, 0.25)


def test_render_needs_results_json(capsys, tmp_path):
    from pyproc import cli
    assert cli.main(["bench", "--render", str(tmp_path)]) == 2
    assert "no results.json" in capsys.readouterr().err
    (tmp_path / "results.json").write_text("{not json")
    assert cli.main(["bench", "--render", str(tmp_path), "--no-plot"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--render" in err[0] and "Traceback" not in err[0]
    (tmp_path / "results.json").write_text(json.dumps({"cases": []}))
    assert cli.main(["bench", "--render", str(tmp_path), "--no-plot"]) == 0
    assert (tmp_path / "results.md").is_file()


def test_tile_atomics_count():
    """validation/tile_atomics.py: the tile phase's chunking (kernels/phases.cuh
    pp_tile_phase: about two items per block, >= 32 spikes a chunk) and its count of
    global atomics per synapse -- with one spike a chunk can flush at most the synapses
    it has, and more spikes a chunk flush fewer per synapse."""
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(
        __file__))), "validation"))
    import tile_atomics
    assert tile_atomics.chunking(280, 50, 396) == (9, 32)
    assert tile_atomics.chunking(1024, 50, 528) == (22, 47)
    assert tile_atomics.chunking(10, 50, 396) == (1, 10)          # one chunk, all spikes
    from pyproc.plan import device_tables
    cnet = pp.compile_network(balanced(20000, p=0.1, dt=1.0))
    tiles = device_tables(cnet)["tiles"]
    rng = np.random.default_rng(0)
    few = tile_atomics.count(cnet, tiles, 40, 396, 1, rng)
    many = tile_atomics.count(cnet, tiles, 2000, 8, 1, rng)
    assert few["chunks"] == 2 and many["chunks"] == 2
    assert 0.4 < few["overall"] <= 1.0 and many["overall"] < 0.05
    assert set(few["atomics_per_synapse"]) == {"E", "I"}


def test_one_block_split_model():
    """validation/one_block_split.py: pp_split_for's formula, and the longest warp of two
    spikes' items (7, 2, 7, 2 bernoulli segments) on 16 warps worked out by hand: with 4
    parts per warp (split 16) warp 0 takes part 0 of all four items (4 chains, 4 segment
    walks), with 2 (split 8) two items' part 0 (2 and 2); the model on the 1k network
    ranks 2 parts per warp ahead of 4 at both chain costs."""
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(
        __file__))), "validation"))
    import one_block_split as m
    assert m.split_for(4, 16, 4) == 16 and m.split_for(4, 16, 2) == 8
    assert m.split_for(1, 16, 4) == 32 and m.split_for(64, 16, 4) == 1
    assert m.longest_warp([7, 2, 7, 2], 16, 16, 200) == 4 * 200 + 4 * 700
    assert m.longest_warp([7, 2, 7, 2], 8, 16, 200) == 2 * 200 + 2 * 700
    cnet = pp.compile_network(balanced(1000, dt=0.1))
    for c in (200, 600):
        two = m.model(cnet, 23.0, 300, 2, c, np.random.default_rng(1))
        four = m.model(cnet, 23.0, 300, 4, c, np.random.default_rng(1))
        assert two < four

"""The command line (issues 2 and 7): pyproc run | info | plan | validate | bench, its
outputs, its one-line errors, and every command documented in docs/cli.md and README.md."""
from __future__ import annotations

import json
import math
import os
import re
import shlex
import shutil
import subprocess
import sys

import numpy as np
import pytest

import pyproc as pp
from pyproc import cli

import reference_data

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DOCS = [os.path.join(ROOT, "docs", "cli.md"), os.path.join(ROOT, "README.md")]
# the multi-area structure file (CC BY-NC-SA, not distributed), where this machine has it
MAM_STRUCTURE = reference_data.path("mam_structure")
HERE = os.path.dirname(os.path.abspath(__file__))


def _env():
    env = dict(os.environ)
    env["PYTHONPATH"] = ROOT + os.pathsep + env.get("PYTHONPATH", "")
    return env


def run_cli(capsys, *argv):
    code = cli.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def assert_one_line_error(code, err, *words):
    assert code == cli.EXIT_USAGE, err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert "error" in lines[0] and "Traceback" not in err
    for w in words:
        assert w in lines[0], f"{w!r} not in {lines[0]!r}"


def _cuda_usable():
    return cli.machine_info()["backends"]["cuda"]["usable"]


# -- a real process -----------------------------------------------------------------------
def test_python_m_pyproc_run_writes_outputs(tmp_path):
    """`python -m pyproc run balanced ...` as a user types it (issue 2's command line)."""
    out = tmp_path / "b"
    r = subprocess.run([sys.executable, "-m", "pyproc", "run", "balanced", "--neurons", "100",
                        "--duration", "20", "--seed", "3", "--backend", "cpu", "--connectivity",
                        "stored", "--out", str(out), "--no-plots"],
                       capture_output=True, text=True, env=_env(), cwd=str(tmp_path), timeout=120)
    assert r.returncode == 0, r.stderr
    assert (out / "spikes.npz").is_file() and (out / "summary.json").is_file()
    assert "population" in r.stdout and "wrote" in r.stdout
    summ = json.loads((out / "summary.json").read_text())
    assert summ["seed"] == 3 and summ["connectivity"] == "stored" and summ["partial"] is False


def test_python_m_pyproc_cli_bad_argument(tmp_path):
    r = subprocess.run([sys.executable, "-m", "pyproc.cli", "run", "balanced", "--neurons", "-4"],
                       capture_output=True, text=True, env=_env(), cwd=str(tmp_path), timeout=60)
    assert_one_line_error(r.returncode, r.stderr, "--neurons")


@pytest.mark.skipif(shutil.which("pyproc") is None, reason="console script not installed "
                                                          "(pip install -e .)")
def test_console_script():
    r = subprocess.run(["pyproc", "--version"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and pp.__version__ in r.stdout


# -- help and shared options --------------------------------------------------------------
@pytest.mark.parametrize("argv", [[], ["run"], ["run", "balanced"], ["run", "microcircuit"],
                                  ["run", "multiarea"], ["info"], ["plan"], ["plan", "balanced"],
                                  ["validate", "balanced"], ["bench"]])
def test_help_documents_each_command(capsys, argv):
    code, out, _ = run_cli(capsys, *argv, "--help")
    assert code == 0 and out.startswith("usage: pyproc")
    if argv[:1] in (["run"], ["validate"], ["bench"]) and len(argv) == (1 if argv == ["bench"]
                                                                          else 2):
        for opt in ("--duration", "--seed", "--connectivity", "--quiet", "--out"):
            assert opt in out, opt
        assert "(default: 1000.0)" in out and "(default: 1)" in out


def test_run_validate_bench_share_defaults():
    def parsed(*argv):
        return cli.build_parser(list(argv)).parse_args(list(argv))
    run = parsed("run", "balanced")
    val = parsed("validate", "balanced")
    bench = parsed("bench")
    for name in ("duration", "seed", "quiet", "out"):
        assert getattr(run, name) == getattr(val, name) == getattr(bench, name), name
    assert run.backend == val.backend == "cpu"
    assert run.connectivity == val.connectivity == "procedural"
    assert (run.duration, run.seed) == (cli.DEFAULT_DURATION_MS, cli.DEFAULT_SEED)
    # bench's own defaults (docs/cli.md): --backends cpu, --connectivity both
    from pyproc import bench as B
    assert not hasattr(bench, "backend") or bench.backend is None
    cases = B.build_cases(bench)
    assert {c["backend"] for c in cases} == {"cpu"}
    assert {c["connectivity"] for c in cases} == {"procedural", "stored"}
    assert parsed("bench", "--backend", "cpu,cuda").backends == ["cpu", "cuda"]
    assert parsed("bench", "--backends", "all").backends == ["cpu", "cuda"]


# -- bad arguments: exit 2, one line naming the argument ----------------------------------
@pytest.mark.parametrize("argv,named", [
    (["run", "balanced", "--neurons", "0"], "--neurons"),
    (["run", "balanced", "--neurons", "4"], "--neurons"),
    (["run", "balanced", "--neurons", "ten"], "--neurons"),
    (["run", "balanced", "--neurons", "1000.5"], "--neurons"),
    (["run", "balanced", "--neurons", "inf"], "--neurons"),
    (["run", "balanced", "--seed", "1e10"], "--seed"),          # a whole number, too large
    (["run", "balanced", "--p", "1.5"], "--p"),
    (["run", "balanced", "--p", "nan"], "--p"),
    (["run", "balanced", "--dt", "0"], "--dt"),
    (["run", "balanced", "--dt", "inf"], "--dt"),
    (["run", "balanced", "--duration", "-1"], "--duration"),
    (["run", "balanced", "--duration", "nan"], "--duration"),
    (["run", "balanced", "--neurons", "20", "--duration", "0.05"], "--duration"),
    (["run", "balanced", "--seed", "-1"], "--seed"),
    (["run", "balanced", "--seed", str(2 ** 32)], "--seed"),
    (["run", "balanced", "--backend", "tpu"], "--backend"),
    (["run", "balanced", "--connectivity", "dense"], "--connectivity"),
    (["run", "balanced", "--scale", "0.1"], "--scale"),
    (["run", "microcircuit", "--scale", "-0.1"], "--scale"),
    (["run", "microcircuit", "--scale", "0"], "--scale"),
    (["run", "microcircuit", "--scale", "1.5"], "--scale"),
    (["run", "microcircuit", "--k-scale", "0"], "--k-scale"),
    (["run", "multiarea", "--structure", __file__, "--k-scale", "2"], "--k-scale"),
    (["run", "multiarea", "--structure", __file__, "--scale", "2"], "--scale"),
    (["run", "multiarea"], "--structure"),
    (["run", "multiarea", "--structure", "no/such/file.json"], "--structure"),
    (["run", "multiarea", "--structure", __file__, "--areas", ","], "--areas"),
    (["run", "multiarea", "--structure", __file__, "--areas", "V1,,V2"], "--areas"),
    (["run", "multiarea", "--structure", __file__, "--areas", "V1,"], "--areas"),
    (["run", "multiarea", "--structure", HERE], "--structure"),
    (["run", "balanced", "--neurons", "20", "--duration", "1e-300"], "--duration"),
    (["run", "balanced", "--neurons", "20", "--duration", "0.04"], "--duration"),
    (["run", "balanced", "--neurons", "20", "--dt", "0.5", "--duration", "0.2"], "--duration"),
    (["run", "multiarea", "--structure", __file__, "--state", "awake"], "--state"),
    (["run", "balanced", "--neurons", "20", "--record-state", "v"], "--record-state"),
    (["run", "balanced", "--neurons", "20", "--record-state", "V_m,V_m"], "--record-state"),
    (["run", "balanced", "--neurons", "20", "--state-neurons", "3"], "--state-neurons"),
    (["run", "balanced", "--neurons", "20", "--record-state", "V_m", "--state-interval",
      "0.25"], "--state-interval"),
    (["run", "microcircuit", "--scale", "0.01", "--record-state", "I_syn_ex"],
     "--record-state"),
    (["run", "nosuchmodel"], "nosuchmodel"),
    (["nosuchcommand"], "nosuchcommand"),
    (["run"], "MODEL"),
])
def test_bad_arguments_exit_2_with_one_line(capsys, tmp_path, argv, named):
    code, out, err = run_cli(capsys, *argv, "--out", tmp_path / "o") if len(argv) > 1 and \
        argv[1] in cli.MODEL_OPTIONS else run_cli(capsys, *argv)
    assert_one_line_error(code, err, named)
    assert not (tmp_path / "o").exists()          # nothing ran, nothing was created


@pytest.mark.parametrize("argv,words", [
    (["--duration", "1e-300"], ["1e-300 ms rounds to 0 steps of dt = 0.1 ms"]),
    (["--duration", "0.05"], ["0.05 ms is not a whole number of steps of dt = 0.1 ms"]),
    (["--duration", "0.15"], ["0.15 ms is not a whole number of steps"]),
])
def test_duration_must_be_whole_steps(capsys, tmp_path, argv, words):
    """A duration > 0 that rounds to 0 steps is refused like one between two steps: it
    would otherwise exit 0 having simulated nothing."""
    code, _, err = run_cli(capsys, "run", "balanced", "--neurons", "20", *argv,
                           "--out", tmp_path / "o")
    assert_one_line_error(code, err, "argument --duration", *words)
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("duration,steps", [("0", 0), ("0.1", 1), ("0.3", 3), ("1e-1", 1)])
def test_duration_of_whole_steps_runs(capsys, tmp_path, duration, steps):
    code, _, err = run_cli(capsys, "run", "balanced", "--neurons", "20", "--duration",
                           duration, "--out", tmp_path, "--quiet", "--no-plots")
    assert code == 0, err
    assert json.loads((tmp_path / "summary.json").read_text())["steps"] == steps


def test_multiarea_argument_messages(capsys, tmp_path):
    code, _, err = run_cli(capsys, "run", "multiarea", "--structure", tmp_path)
    assert_one_line_error(code, err, "--structure", "is a directory")
    assert "no such file" not in err
    code, _, err = run_cli(capsys, "run", "multiarea", "--structure", __file__, "--areas",
                           "V1,,V2")
    assert_one_line_error(code, err, "--areas", "empty name")


def _mam_file(tmp_path):
    """A two-area structure file (A, B: 23E, 23I each)."""
    from mam_structures import two_areas
    d = two_areas()
    f = tmp_path / "mam.json"
    f.write_text(json.dumps(d))
    return f, d


def test_multiarea_delay_clip_option(capsys, tmp_path):
    """--delay-clip-sd reaches the model: 'none' is NEST's unbounded tail (None), a number
    the cut-off in sd; the default is GeNN's 3.719; 0 is refused before work."""
    from pyproc.models.multiarea import GENN_DELAY_CLIP_SD
    f, _ = _mam_file(tmp_path)
    dmax = {}
    for extra, want in (([], GENN_DELAY_CLIP_SD), (["--delay-clip-sd", "none"], None),
                        (["--delay-clip-sd", "2"], 2.0)):
        out = tmp_path / str(want)
        code, _, err = run_cli(capsys, "run", "multiarea", "--structure", f, "--k-scale", "1",
                               *extra, "--duration", "0", "--out", out, "--quiet",
                               "--no-plots")
        assert code == 0, err
        summ = json.loads((out / "summary.json").read_text())
        assert summ["model_options"]["delay_clip_sd"] == want
        assert set(summ["I_e_pA"]) == {"A-23E", "A-23I", "B-23E", "B-23I"}
        code, text, _ = run_cli(capsys, "plan", "multiarea", "--structure", f, *extra)
        dmax[want] = [l for l in text.splitlines() if l.strip().startswith("ring ")][0]
    assert len(set(dmax.values())) == 3                # three different delay rings
    # --missing-areas: the DC that stands for the areas left out, Poisson input, or none
    dc = {}
    for value in ("dc", "poisson", "none"):
        out = tmp_path / value
        code, _, err = run_cli(capsys, "run", "multiarea", "--structure", f, "--areas", "A",
                               "--k-scale", "1", "--missing-areas", value, "--duration", "0",
                               "--out", out, "--quiet", "--no-plots")
        assert code == 0, err
        summ = json.loads((out / "summary.json").read_text())
        assert summ["model_options"]["missing_areas"] == value
        assert len(summ["poisson_inputs"]["A-23E"]) == (2 if value == "poisson" else 1)
        dc[value] = summ["I_e_pA"]
    assert dc["none"] != dc["dc"]                      # B's input to A: replaced, or not
    assert dc["poisson"] == dc["none"]                 # k_scale 1: B's input all Poisson
    code, _, err = run_cli(capsys, "run", "multiarea", "--structure", f, "--delay-clip-sd",
                           "0", "--duration", "0", "--out", tmp_path / "x")
    assert_one_line_error(code, err, "--delay-clip-sd", "must be > 0")


def test_multiarea_unknown_area_and_bad_structure_fields(capsys, tmp_path):
    f, d = _mam_file(tmp_path)
    code, _, err = run_cli(capsys, "run", "multiarea", "--structure", f, "--areas", "A,V9",
                           "--duration", "1", "--out", tmp_path / "o")
    assert_one_line_error(code, err, "unknown area 'V9'", "A, B")
    code, _, err = run_cli(capsys, "run", "multiarea", "--structure", f, "--scale", "1e-6",
                           "--duration", "1", "--out", tmp_path / "o")
    assert_one_line_error(code, err, "scale", "without neurons")
    d["neuron"]["tau_m"] = -1
    f.write_text(json.dumps(d))
    code, _, err = run_cli(capsys, "run", "multiarea", "--structure", f, "--duration", "1",
                           "--out", tmp_path / "o")
    assert_one_line_error(code, err, "MAM structure: neuron.tau_m must be > 0")
    assert not (tmp_path / "o").exists()


def test_bad_out_directory(capsys, tmp_path):
    f = tmp_path / "file"
    f.write_text("")
    code, _, err = run_cli(capsys, "run", "balanced", "--neurons", "20", "--duration", "1",
                           "--out", f / "sub")
    assert_one_line_error(code, err, "--out")


@pytest.mark.parametrize("command", [["run", "balanced", "--neurons", "20"],
                                     ["validate", "balanced", "--neurons", "20"],
                                     ["bench", "--models", "balanced", "--sizes", "20"]])
def test_out_that_cannot_be_made_is_refused_before_work(capsys, tmp_path, monkeypatch,
                                                        command):
    """A directory os.access allows but mkdir refuses (root, /proc): one line, exit 2,
    before any work; an --out that can be made is tried and left uncreated."""
    import pyproc.validate
    import pyproc.bench
    monkeypatch.setattr(pyproc.validate, "main", lambda args: pytest.fail("validate ran"))
    monkeypatch.setattr(pyproc.bench, "main", lambda args: pytest.fail("bench ran"))
    real = os.makedirs

    def refuse(path, *a, **k):
        if "nope" in str(path):
            raise FileNotFoundError(2, "No such file or directory")
        return real(path, *a, **k)
    monkeypatch.setattr(os, "makedirs", refuse)
    code, _, err = run_cli(capsys, *command, "--duration", "1", "--out", tmp_path / "nope")
    assert_one_line_error(code, err, "argument --out", "cannot create",
                          "No such file or directory")
    assert cli._unwritable(str(tmp_path / "a" / "b")) is None
    assert not (tmp_path / "a").exists()


def test_run_removes_an_earlier_runs_plots(capsys, tmp_path):
    """--no-plots into a folder with an earlier run's plots: they go, so no plot of
    another run sits beside this run's summary.json."""
    for fn in ("raster.png", "rates.png", "state.png", "state.npz"):
        (tmp_path / fn).write_bytes(b"old")
    (tmp_path / "mine.txt").write_text("kept")
    code, _, _ = run_cli(capsys, "run", "balanced", "--neurons", "20", "--duration", "1",
                         "--out", tmp_path, "--quiet", "--no-plots")
    assert code == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mine.txt", "spikes.npz",
                                                          "summary.json"]


def test_run_record_state(capsys, tmp_path):
    """--record-state V_m,I_syn --state-neurons 3 --state-interval 0.5: state.npz with the
    first 3 neurons of each population every 0.5 ms, listed in summary.json, and the
    same samples as the Python API's."""
    code, out, _ = run_cli(capsys, "run", "balanced", "--neurons", "100", "--duration", "20",
                           "--record-state", "V_m,I_syn", "--state-neurons", "3",
                           "--state-interval", "0.5", "--out", tmp_path, "--no-plots")
    assert code == 0 and "state.npz" in out
    res = pp.load_results(str(tmp_path))
    assert sorted(res.state) == ["E", "I"]
    assert res.state["E"]["neurons"].tolist() == [0, 1, 2]
    assert res.state["I"]["V_m"].shape == (40, 3)
    assert res.summary()["state"]["E"] == {"variables": ["V_m", "I_syn"], "neurons": 3,
                                           "samples": 40}
    from pyproc.models import balanced
    net = balanced(100)
    net.record_state("E", ("V_m", "I_syn"), neurons=[0, 1, 2], interval=0.5)
    want = pp.Simulation(net, connectivity="procedural").run(20.0)
    assert np.array_equal(want.state["E"]["I_syn"], res.state["E"]["I_syn"])


def test_run_checkpoint_and_resume(capsys, tmp_path):
    """--checkpoint after 15 ms, --resume to 40 ms with the other connectivity: the same
    spikes and V_m samples as one run of 40 ms, and summary.json says where it resumed.
    Refused before work: a missing --resume file, a --checkpoint folder that does not
    exist; after set-up: another seed's checkpoint, a --duration before it."""
    common = ["run", "balanced", "--neurons", "300", "--record-state", "V_m", "--no-plots", "-q"]
    assert run_cli(capsys, *common, "--duration", "40", "--out", tmp_path / "full")[0] == 0
    ck = tmp_path / "part" / "ck.npz"
    assert run_cli(capsys, *common, "--duration", "15", "--out", tmp_path / "part",
                   "--checkpoint", ck)[0] == 0
    code, _, err = run_cli(capsys, *common, "--duration", "40", "--out", tmp_path / "rest",
                           "--resume", ck, "--connectivity", "stored")
    assert code == 0, err
    a, b = pp.load_results(str(tmp_path / "full")), pp.load_results(str(tmp_path / "rest"))
    assert np.array_equal(a.times, b.times) and np.array_equal(a.senders, b.senders)
    assert np.array_equal(a.state["E"]["V_m"], b.state["E"]["V_m"]) and len(a.times) > 100
    assert b.meta["resumed_from"] == {"checkpoint": str(ck), "at_ms": 15.0}
    assert pp.load_results(str(tmp_path / "part")).meta["checkpoint"] == str(ck)
    for extra, flag in ((["--resume", tmp_path / "none.npz"], "--resume"),
                        (["--checkpoint", tmp_path / "no" / "ck.npz"], "--checkpoint"),
                        (["--resume", ck, "--seed", "2"], "--resume"),
                        (["--resume", ck, "--duration", "10"], "--duration")):
        code, _, err = run_cli(capsys, *common, "--out", tmp_path / "x", *extra)
        assert_one_line_error(code, err, flag)
        assert not (tmp_path / "x").exists()          # refused before --out is made


def test_model_error_from_a_structure_file_is_one_line(capsys, tmp_path):
    bad = tmp_path / "mam.json"
    bad.write_text('{"areas": 3}')
    code, _, err = run_cli(capsys, "run", "multiarea", "--structure", bad, "--duration", "1",
                           "--out", tmp_path / "o")
    assert_one_line_error(code, err, "areas")


@pytest.mark.skipif(_cuda_usable(), reason="a usable CUDA backend is present")
def test_cuda_backend_unavailable_is_one_line(capsys, tmp_path):
    code, _, err = run_cli(capsys, "run", "balanced", "--neurons", "20", "--duration", "1",
                           "--backend", "cuda", "--out", tmp_path / "o")
    assert_one_line_error(code, err, "--backend cuda")
    assert err.startswith("pyproc: error:")
    assert "backend='cpu'" not in err          # the API's words, not the command line's


@pytest.mark.parametrize("command", [["validate", "balanced", "--neurons", "50"],
                                     ["bench", "--models", "balanced", "--sizes", "50"]])
def test_validate_and_bench_refuse_a_file_as_out_before_work(capsys, tmp_path, command,
                                                             monkeypatch):
    """As `run`: a file given as --out is refused at once (exit 2, one line naming --out),
    not after the runs with a traceback."""
    import pyproc.validate
    import pyproc.bench
    monkeypatch.setattr(pyproc.validate, "main", lambda args: pytest.fail("validate ran"))
    monkeypatch.setattr(pyproc.bench, "main", lambda args: pytest.fail("bench ran"))
    f = tmp_path / "file"
    f.write_text("")
    code, _, err = run_cli(capsys, *command, "--duration", "10", "--out", f)
    assert_one_line_error(code, err, "argument --out", "exists and is not a directory")
    assert err.startswith(f"pyproc {command[0]}")


@pytest.mark.skipif(_cuda_usable(), reason="a usable CUDA backend is present")
@pytest.mark.parametrize("argv,flag", [
    (["validate", "balanced", "--backend", "cuda"], "--backend cuda"),
    (["validate", "balanced", "--reference-backend", "cuda"], "--reference-backend cuda"),
    (["bench", "--backends", "cpu,cuda"], "--backends cuda"),
    (["bench", "--backend=cuda"], "--backends cuda"),
    (["bench", "--backends", "cpu, cuda"], "--backends cuda"),
])
def test_cuda_named_without_a_gpu_is_refused_before_work(capsys, tmp_path, monkeypatch,
                                                         argv, flag):
    """validate and bench refuse a CUDA backend named on a machine where it is not usable
    before the connectivity check and the reference runs (exit 2, one line)."""
    import pyproc.validate
    import pyproc.bench
    monkeypatch.setattr(pyproc.validate, "main", lambda args: pytest.fail("validate ran"))
    monkeypatch.setattr(pyproc.bench, "main", lambda args: pytest.fail("bench ran"))
    code, _, err = run_cli(capsys, *argv, "--duration", "10", "--out", tmp_path / "o")
    assert_one_line_error(code, err, f"argument {flag}", "not usable here",
                          f"({flag.split()[0]} cpu)")
    assert err.startswith(f"pyproc {argv[0]}")
    assert not (tmp_path / "o").exists()


def test_bench_all_backends_still_runs_what_is_usable(capsys, tmp_path, monkeypatch):
    import pyproc.bench
    seen = []
    monkeypatch.setattr(pyproc.bench, "main", lambda args: seen.append(args.backends) or 0)
    code, _, err = run_cli(capsys, "bench", "--backends", "all", "--out", tmp_path / "o")
    assert code == 0 and seen == [["cpu", "cuda"]], err


@pytest.mark.parametrize("argv,words", [
    (["run", "--duration", "10", "balanced"], ["argument MODEL: invalid choice: '10'",
                                               "the model comes first",
                                               "'pyproc run MODEL [options]'"]),
    (["run", "microcircuit", "--neurons", "100"], ["pyproc run microcircuit: error:",
                                                   "unrecognized arguments: --neurons 100",
                                                   "see 'pyproc run microcircuit --help'"]),
    (["plan", "balanced", "--duration", "10"], ["pyproc plan balanced: error:",
                                                "unrecognized arguments: --duration 10"]),
])
def test_misplaced_and_unknown_options_point_to_the_right_help(capsys, argv, words):
    code, _, err = run_cli(capsys, *argv)
    assert_one_line_error(code, err, *words)


# -- outputs ------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def stored_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("run") / "b"
    code = cli.main(["run", "balanced", "--neurons", "100", "--duration", "30", "--seed", "5",
                     "--connectivity", "stored", "--out", str(out), "--quiet"])
    assert code == 0
    return out


def test_summary_json_has_populations_and_metadata(stored_run):
    s = json.loads((stored_run / "summary.json").read_text())
    assert set(s["populations"]) == {"E", "I"}
    for name, n in (("E", 80), ("I", 20)):
        p = s["populations"][name]
        assert p["neurons"] == n and p["spikes"] > 0      # E 71, I 18 with seed 5
        assert p["mean_rate_Hz"] == pytest.approx(p["spikes"] / (n * 0.030))
    assert s["total_spikes"] == sum(p["spikes"] for p in s["populations"].values())
    assert (s["seed"], s["backend"], s["connectivity"], s["model"]) == (5, "cpu", "stored",
                                                                      "balanced")
    assert s["model_options"]["neurons"] == 100 and s["model_options"]["p"] == 0.1
    assert s["duration_ms"] == 30.0 and s["steps"] == 300 and s["partial"] is False
    assert set(s["versions"]) >= {"pyproc", "numpy", "scipy", "python"}
    assert s["versions"]["pyproc"] == pp.__version__
    assert "git_commit" in s
    for k in ("wall_build_s", "wall_compile_s", "wall_setup_s", "wall_run_s", "wall_per_model_s"):
        assert s[k] >= 0, k
    assert s["wall_per_model_s"] == pytest.approx(s["wall_run_s"] / 0.030)
    assert s["command"].startswith("pyproc run balanced")
    assert s["I_e_pA"] == {"E": 0.0, "I": 0.0}          # the balanced network adds no DC


def test_spikes_npz_and_load_results_round_trip(stored_run):
    with np.load(stored_run / "spikes.npz") as z:
        times, senders = z["times"], z["senders"]
    assert times.dtype == np.float64 and senders.dtype == np.int64
    assert np.all(np.diff(times) >= 0) and senders.max() < 100
    res = pp.load_results(str(stored_run))
    assert np.array_equal(res.times, times) and np.array_equal(res.senders, senders)
    again = stored_run.parent / "again"
    res.save(str(again))
    assert json.loads((again / "summary.json").read_text()) == json.loads(
        (stored_run / "summary.json").read_text())
    back = pp.load_results(str(again))
    assert back.meta == res.meta and back.pop_names == ["E", "I"]
    assert np.array_equal(back.recorded, res.recorded)


def test_load_results_round_trips_a_partial_run(tmp_path):
    from pyproc.models import balanced
    net = balanced(neurons=50, seed=2)
    net.record("I", False)
    sim = pp.Simulation(net, "cpu", "procedural")
    calls = iter(range(10 ** 6))
    res = sim.run(20.0, should_stop=lambda: next(calls) >= 77)
    assert res.meta["partial"] is True and res.duration == pytest.approx(7.7)
    res.save(str(tmp_path))
    back = pp.load_results(str(tmp_path))
    assert back.summary() == json.loads((tmp_path / "summary.json").read_text())
    assert back.meta["partial"] is True and back.duration == res.duration
    assert list(back.recorded) == [True, False]
    assert back.summary()["populations"]["I"]["mean_rate_Hz"] is None
    assert np.array_equal(back.times, res.times) and np.array_equal(back.senders, res.senders)


def test_plots_written_with_matplotlib(stored_run):
    pytest.importorskip("matplotlib")
    s = json.loads((stored_run / "summary.json").read_text())
    assert s["plots"] == ["raster.png", "rates.png"]
    for f in ("raster.png", "rates.png"):
        assert (stored_run / f).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_clear_note_without_matplotlib(capsys, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)       # import matplotlib fails
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)
    code, out, _ = run_cli(capsys, "run", "balanced", "--neurons", "20", "--duration", "2",
                           "--out", tmp_path)
    assert code == 0
    assert "note: not written: matplotlib is not installed" in out
    s = json.loads((tmp_path / "summary.json").read_text())
    assert "matplotlib is not installed" in s["plots"]
    assert not (tmp_path / "raster.png").exists()


def test_quiet_prints_nothing(capsys, tmp_path):
    code, out, err = run_cli(capsys, "run", "balanced", "--neurons", "20", "--duration", "2",
                             "--out", tmp_path, "--quiet", "--no-plots")
    assert code == 0 and out == "" and err == ""


def test_progress_shown_on_long_runs(capsys, tmp_path, monkeypatch):
    """A run past the progress delay reports on stderr (plain lines: not a terminal)."""
    from pyproc import progress
    real = progress.Progress.__init__

    def eager(self, *a, **kw):
        kw.update(delay_s=0.0, line_interval_s=0.0)
        real(self, *a, **kw)
    monkeypatch.setattr(progress.Progress, "__init__", eager)
    code, _, err = run_cli(capsys, "run", "balanced", "--neurons", "20", "--duration", "30",
                           "--out", tmp_path, "--no-plots")
    assert code == 0
    lines = [ln for ln in err.splitlines() if ln.startswith("pyproc: ")]
    assert len(lines) == 3 and "30.0 / 30.0 ms" in lines[-1]      # a line per 10 ms chunk
    assert all(k in lines[0] for k in ("wall", "ETA", "RTF", "rate"))


# -- info, plan, validate, bench ----------------------------------------------------------
def test_info(capsys):
    code, out, _ = run_cli(capsys, "info")
    assert code == 0
    assert out.startswith(f"pyproc      {pp.__version__}")
    for key in ("pycuda", "gpu", "nvcc", "backend     cpu: usable", "backend     cuda:"):
        assert key in out, key
    code, out, _ = run_cli(capsys, "info", "--json")
    info = json.loads(out)
    assert info["backends"]["cpu"]["usable"] is True
    assert info["pycuda"]["importable"] or info["pycuda"]["reason"]
    if not info["backends"]["cuda"]["usable"]:
        assert info["backends"]["cuda"]["reason"]


def test_plan_calls_plan_report(capsys, monkeypatch):
    import pyproc.plan
    seen = []
    monkeypatch.setattr(pyproc.plan, "report",
                        lambda cnet, **gpu: seen.append(cnet) or "PLAN TEXT")
    code, out, _ = run_cli(capsys, "plan", "balanced", "--neurons", "1000", "--seed", "4")
    lines = out.strip().splitlines()
    assert code == 0 and lines[0] == "PLAN TEXT"
    if not cli.machine_info()["gpus"]:              # and no --gpu-memory: said so
        assert lines[1:] == ["  fit              not checked: no GPU here (--gpu-memory GIB "
                             "compares with a GPU of that size)"]
    assert seen[0].n_neurons == 1000 and seen[0].seed == 4


@pytest.mark.parametrize("command", ["plan", "validate", "bench"])
def test_missing_module_is_a_clear_error(capsys, monkeypatch, command):
    monkeypatch.setattr(cli, "_optional_module",
                        lambda name: (None, f"{name} is not part of this pyproc version yet"))
    argv = [command] + ([] if command == "bench" else ["balanced", "--neurons", "20"])
    code, _, err = run_cli(capsys, *argv)
    assert_one_line_error(code, err, "not available yet", f"pyproc.{command}")


def test_validate_receives_model_and_shared_options(capsys, monkeypatch):
    import pyproc.validate
    got = {}

    def fake_main(args):
        got["args"] = args
        got["net"] = args.build_model()
        return 0
    monkeypatch.setattr(pyproc.validate, "main", fake_main)
    code, _, _ = run_cli(capsys, "validate", "balanced", "--neurons", "40", "--p", "0.2",
                         "--seed", "9", "--duration", "200", "--seeds", "2")
    assert code == 0
    a = got["args"]
    assert (a.model, a.model_options, a.seed, a.duration, a.seeds) == (
        "balanced", {"neurons": 40, "p": 0.2}, 9, 200.0, 2)
    assert got["net"].n_neurons == 40 and got["net"].seed == 9


def test_bench_receives_shared_options(capsys, monkeypatch):
    import pyproc.bench
    got = {}
    monkeypatch.setattr(pyproc.bench, "main", lambda args: got.setdefault("args", args) and 0)
    code, _, _ = run_cli(capsys, "bench", "--duration", "50", "--seed", "2", "--sizes", "100")
    assert code == 0
    a = got["args"]
    assert (a.duration, a.seed, a._argv[0]) == (50.0, 2, "bench")


# -- the documentation's commands ---------------------------------------------------------
MARK_GPU = "needs a GPU"          # exit 0 with a usable CUDA backend, else exit 2, one line
MARK_FAILS = "exits 2"            # a documented error: exit 2, one line
MARK_STRUCTURE = "needs the structure file"   # exit 2 naming --structure when it is absent


def documented_commands():
    """Every `$ pyproc ...` line inside ```console blocks of docs/cli.md and README.md, with
    the line printed after it when that is not another command (the documented error line
    of a `# exits 2` command), else None, and the commands before it in its block (a
    `--resume` line runs them first: it continues their checkpoint)."""
    cmds = []
    for path in DOCS:
        if not os.path.exists(path):
            continue
        text = open(path, encoding="utf-8").read()
        for block in re.findall(r"```console\n(.*?)```", text, flags=re.S):
            lines = block.splitlines()
            before = []
            for k, line in enumerate(lines):
                if line.startswith("$ pyproc"):
                    after = lines[k + 1] if k + 1 < len(lines) else ""
                    shown = None if not after.strip() or after.startswith("$ ") else after
                    cmds.append(pytest.param(line[2:], shown, tuple(before),
                                             id=f"{os.path.basename(path)}: {line[2:60]}"))
                    before.append(line[2:])
    return cmds


def test_docs_have_commands():
    cmds = documented_commands()
    assert len(cmds) >= 8
    failing = [p.values for p in cmds if p.values[0].endswith("  # " + MARK_FAILS)]
    assert len(failing) >= 3 and all(shown for _, shown, _ in failing)


@pytest.mark.parametrize("line,shown,before", documented_commands())
def test_documented_command_runs(line, shown, before, tmp_path, monkeypatch, capsys):
    command, _, comment = line.partition("  # ")
    argv = shlex.split(command)
    assert argv[0] == "pyproc"
    if "--resume" in argv:                  # continues the checkpoint of the lines above
        monkeypatch.chdir(tmp_path)
        for earlier in before:
            assert cli.main(shlex.split(earlier.partition("  # ")[0])[1:]) == 0, earlier
    comment = comment.strip()
    if comment == MARK_STRUCTURE:
        k = argv.index("--structure") + 1
        if os.path.basename(argv[k]) == os.path.basename(MAM_STRUCTURE) and \
                os.path.exists(MAM_STRUCTURE):
            argv[k] = MAM_STRUCTURE       # the file the docs mean, where this machine has it
    monkeypatch.chdir(tmp_path)
    code = cli.main(argv[1:])
    out, err = capsys.readouterr()
    if comment == MARK_FAILS or (comment == MARK_GPU and not _cuda_usable()) or (
            comment == MARK_STRUCTURE and not os.path.exists(argv[argv.index("--structure") + 1])):
        assert_one_line_error(code, err)
        if comment == MARK_FAILS and shown is not None:
            assert err.strip() == shown.strip(), "stderr differs from the documented line"
        return
    assert comment in ("", MARK_GPU, MARK_STRUCTURE), f"unknown doc-test marker {comment!r}"
    assert code == 0, err
    if "--out" in argv:
        d = tmp_path / argv[argv.index("--out") + 1]
        if argv[1] == "run":
            assert (d / "spikes.npz").is_file() and (d / "summary.json").is_file()
            if comment == MARK_STRUCTURE:
                summ = json.loads((d / "summary.json").read_text())
                assert summ["model"] == "multiarea" and summ["partial"] is False
                assert summ["neurons"] > 0 and summ["steps"] > 0
        else:
            assert d.is_dir()


def test_backend_auto_picks_a_usable_backend(tmp_path, capsys):
    """--backend auto runs on cuda where `pyproc info` calls it usable, else on the CPU,
    and says which on stderr."""
    from pyproc import cli
    want = "cuda" if cli.machine_info()["backends"]["cuda"]["usable"] else "cpu"
    out = tmp_path / "auto"
    code = cli.main(["run", "balanced", "--neurons", "50", "--duration", "5", "--backend", "auto",
                     "--out", str(out)])
    assert code == 0
    assert f"--backend auto: {want}" in capsys.readouterr().err
    with open(out / "summary.json") as f:
        assert json.load(f)["backend"] == want


def test_cuda_loop_option(capsys, tmp_path):
    """--cuda-loop picks the CUDA step loop; anything but auto on the CPU backend is an
    argument error naming the option (the CUDA side: tests/test_cuda_host.py)."""
    parsed = cli.build_parser(["run", "balanced"]).parse_args(["run", "balanced"])
    assert parsed.cuda_loop == "auto"
    code, _, err = run_cli(capsys, "run", "balanced", "--neurons", "50", "--duration", "1",
                           "--cuda-loop", "graph", "--out", tmp_path / "o")
    assert_one_line_error(code, err, "--cuda-loop", "graph needs the CUDA backend")
    code, _, err = run_cli(capsys, "run", "balanced", "--neurons", "50", "--duration", "1",
                           "--cuda-loop", "fast", "--out", tmp_path / "o")
    assert_one_line_error(code, err, "--cuda-loop")


def test_cuda_option_errors(capsys, tmp_path):
    """--cuda-option: NAME=VALUE with a known name and a value of its type, and only with the
    CUDA backend; each mistake is a one-line error naming the option."""
    base = ["run", "balanced", "--neurons", "50", "--duration", "1", "--out", tmp_path / "o"]
    for opt, words in (("unit_map=1", ["needs the CUDA backend", "the backend is cpu"]),
                       ("fast=1", ["'fast=1'", "unit_map"]),
                       ("unit_map", ["expected NAME=VALUE"]),
                       ("pipelined=maybe", ["pipelined takes 1/0"]),
                       ("graph_steps=0", ["graph_steps takes a whole number >= 1"])):
        code, _, err = run_cli(capsys, *base, "--cuda-option", opt)
        assert_one_line_error(code, err, "--cuda-option", *words)
    code, _, err = run_cli(capsys, "validate", "microcircuit", "--scale", "0.01", "--duration",
                           "100", "--cuda-option", "unit_map=1", "--out", tmp_path / "v")
    assert_one_line_error(code, err, "--cuda-option", "needs the CUDA backend")


def test_cuda_option_parser():
    assert cli.cuda_option("unit_map=1") == ("unit_map", True)
    assert cli.cuda_option("shared-tables=off") == ("shared_tables", False)
    assert cli.cuda_option("persistent_blocks_per_sm=2") == ("persistent_blocks_per_sm", 2)
    assert cli.cuda_option("one-block=yes") == ("one_block", True)
    from pyproc.backends.cuda import CUDASimulator
    import inspect
    params = inspect.signature(CUDASimulator.__init__).parameters
    assert set(cli.CUDA_OPTIONS) <= set(params)          # every name is a simulator option


def test_installed_copy_reports_the_commit_it_was_built_from(tmp_path, monkeypatch):
    """An installed copy has no .git: git_commit() reads _build_commit.txt, which setup.py's
    build step writes from the source tree's git_commit() (the same file run the same way);
    a copy without either reports None."""
    import runpy
    import shutil
    from pyproc import provenance
    monkeypatch.delenv("PYPROC_GIT_COMMIT", raising=False)
    pkg = tmp_path / "site" / "pyproc"
    pkg.mkdir(parents=True)
    shutil.copy(provenance.__file__, pkg / "provenance.py")
    installed = runpy.run_path(str(pkg / "provenance.py"))["git_commit"]
    assert installed() is None
    (pkg / "_build_commit.txt").write_text("0123abc+dirty\n")
    assert installed() == "0123abc+dirty"
    monkeypatch.setenv("PYPROC_GIT_COMMIT", "feed42")        # the GPU machines' override
    assert installed() == "feed42"
    setup_py = open(os.path.join(os.path.dirname(HERE), "setup.py")).read()
    assert "_build_commit.txt" in setup_py and '"build_py": build_py_with_commit' in setup_py


def test_k_scale_reaches_the_model(capsys, tmp_path):
    """--k-scale sets the in-degrees' scale apart from the neurons' (default: --scale):
    at scale 0.02 with full in-degrees the synapse count is Eq. 1's x 0.02, not x 0.02^2."""
    from pyproc.models.microcircuit import derived
    for extra, k in (([], 0.02), (["--k-scale", "1"], 1.0)):
        code, _, err = run_cli(capsys, "run", "microcircuit", "--scale", "0.02", *extra,
                               "--duration", "0", "--out", tmp_path / str(k), "--quiet",
                               "--no-plots")
        assert code == 0, err
        summ = json.loads((tmp_path / str(k) / "summary.json").read_text())
        assert summ["model_options"]["scale"] == 0.02
        assert summ["model_options"]["k_scale"] == k          # the default resolved: = scale
        assert summ["synapses"] == int(derived(0.02, k)["synapses"].sum())
        assert summ["synapses_exact"] is True                # fixed_total_number


def test_whole_numbers_in_float_notation(capsys, tmp_path):
    """--neurons 1e3 is 1000 (as bench --sizes takes it), 1000.5 is refused above."""
    code, _, err = run_cli(capsys, "run", "balanced", "--neurons", "1e3", "--duration", "1",
                           "--seed", "2e0", "--out", tmp_path, "--quiet", "--no-plots")
    assert code == 0, err
    summ = json.loads((tmp_path / "summary.json").read_text())
    assert summ["neurons"] == 1000 and summ["seed"] == 2


def test_run_refuses_a_model_larger_than_memory(tmp_path, monkeypatch, capsys):
    """A model that does not fit the host's memory: one line, exit 2, nothing written
    (compile_network's check and the stored CPU backend's)."""
    from pyproc import hostmem
    monkeypatch.setattr(hostmem, "available_bytes", lambda: 64 * 2 ** 20)
    code, out, err = run_cli(capsys, "run", "microcircuit", "--scale", "0.05", "--duration",
                             "10", "--connectivity", "stored", "--out", tmp_path / "a")
    assert_one_line_error(code, err, "argument --backend cpu: connectivity='stored' on the "
                                     "CPU needs about", "64.0 MiB is available")
    assert not (tmp_path / "a").exists()
    monkeypatch.setattr(hostmem, "available_bytes", lambda: 2 ** 20)
    code, out, err = run_cli(capsys, "run", "balanced", "--neurons", "20000", "--duration",
                             "10", "--out", tmp_path / "b")
    assert_one_line_error(code, err, "compiling the network (20,000 neurons) needs about")
    assert not (tmp_path / "b").exists()


def test_validate_refuses_parallel_runs_that_do_not_fit(tmp_path, monkeypatch, capsys):
    """validate --jobs N runs N CPU simulators at once, each with its own stored reference:
    refused when together they exceed the available memory, before the connectivity
    part; --jobs 1 fits the same memory."""
    from pyproc import hostmem
    from pyproc.plan import cpu_bytes
    cnet = pp.compile_network(pp.models.balanced(200, seed=1))
    one = sum(cpu_bytes(cnet, "stored").values())
    monkeypatch.setattr(hostmem, "available_bytes", lambda: 2 * one)
    code, out, err = run_cli(capsys, "validate", "balanced", "--neurons", "200", "--seeds", "2",
                             "--duration", "100", "--t-discard", "50", "--jobs", "4",
                             "--out", tmp_path / "v", "--quiet")
    assert_one_line_error(code, err, "validate with --jobs 4 (4 CPU runs at once) needs about",
                          "Use fewer --jobs")
    assert not (tmp_path / "v" / "validation.json").exists()
    from pyproc.validate import check_run_memory
    check_run_memory(cnet, 1, 4, "cpu", "procedural", "cpu")       # one at a time: fits
    check_run_memory(cnet, 2, 4, "cpu", "procedural", "cpu")       # two: exactly fits


def test_microcircuit_thalamic_option(capsys, tmp_path):
    """--thalamic on adds PD14's thalamic population TH (902 Poisson sources firing
    from 700 to 710 ms); summary.json records it; off is the default."""
    for value in ("on", "off"):
        out = tmp_path / value
        code, text, err = run_cli(capsys, "run", "microcircuit", "--scale", "0.01",
                                  "--duration", "0", "--thalamic", value, "--out", out,
                                  "--no-plots")
        assert code == 0, err
        summ = json.loads((out / "summary.json").read_text())
        assert summ["model_options"]["thalamic"] is (value == "on")
        assert ("TH" in summ["populations"]) == (value == "on"), summ["populations"]
    code, _, err = run_cli(capsys, "run", "microcircuit", "--thalamic", "yes", "--duration", "0",
                           "--out", tmp_path / "x")
    assert code == 2 and "argument --thalamic: must be on or off, got 'yes'" in err
    # a run that ends before the pulse says so (one line), and runs
    code, _, err = run_cli(capsys, "run", "microcircuit", "--scale", "0.01", "--duration", "1",
                           "--thalamic", "on", "--out", tmp_path / "short", "--no-plots",
                           "--quiet")
    assert code == 0 and err.count("pyproc: warning:") == 1, err
    assert ("pyproc: warning: population 'TH' emits nothing in this run: its first spike "
            "could come at 700.1 ms, after the run's 1 ms") in err


def test_microcircuit_dc_stimulus_option(capsys, tmp_path):
    code, _, err = run_cli(capsys, "run", "microcircuit", "--scale", "0.01", "--duration", "0",
                           "--dc-stimulus", "on", "--out", tmp_path / "on", "--no-plots")
    assert code == 0, err
    summ = json.loads((tmp_path / "on" / "summary.json").read_text())
    assert summ["model_options"]["dc_stimulus"] is True
    assert summ["step_currents"]["L4E"] == [{"amplitude_pA": pytest.approx(0.3 * 2100),
                                             "start_ms": 650.0, "stop_ms": 750.0}]


def test_silent_sources():
    from pyproc.cli import _silent_sources
    net = pp.Network(dt=0.1, seed=1)
    net.add_population("P", 3, pp.PoissonSource(5.0, start=20.0, stop=20.0))   # empty window
    net.add_population("Q", 3, pp.PoissonSource(5.0, start=20.0))
    net.add_population("A", 2, pp.SpikeSourceArray([[], [3.0]]))
    net.add_population("B", 2, pp.SpikeSourceArray([]))
    cnet = pp.compile_network(net)
    assert _silent_sources(cnet, 2.0) == [("P", math.inf), ("Q", 20.1), ("A", 3.0),
                                          ("B", math.inf)]
    assert _silent_sources(cnet, 30.0) == [("P", math.inf), ("B", math.inf)]
    assert _silent_sources(cnet, 0.0) == []


def test_run_checkpoint_write_failure_keeps_results(capsys, tmp_path, monkeypatch):
    """A checkpoint that cannot be written (here np.savez raising ENOSPC) does not lose the
    run: spikes.npz and summary.json are saved, summary.json says the checkpoint was not
    written, and the exit status is 1 with one line naming --checkpoint."""
    import errno
    from pyproc import checkpoint as ck

    def full(*a, **k):
        raise OSError(errno.ENOSPC, "No space left on device")
    monkeypatch.setattr(ck.np, "savez", full)
    out = tmp_path / "o"
    code, _, err = run_cli(capsys, "run", "balanced", "--neurons", "50", "--duration", "5",
                           "--out", out, "--checkpoint", out / "ck.npz", "-q", "--no-plots")
    assert code == cli.EXIT_FAILED and "--checkpoint: not written" in err
    assert len(err.strip().splitlines()) == 1
    summ = json.loads((out / "summary.json").read_text())
    assert summ["checkpoint"].startswith("not written: OSError")
    assert (out / "spikes.npz").is_file() and not (out / "ck.npz").exists()
    assert not [p for p in out.iterdir() if p.name.endswith(".tmp")]

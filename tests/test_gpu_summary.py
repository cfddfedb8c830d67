"""validation/gpu_summary.py on recorded H200 results (validation/results/gpu_h200_2026-11-27b:
run 5's validation and multi-area model, run 6's benchmark): the lines against the targets
carry the recorded numbers and the configurations that gave them; missing parts and
skipped or failed stages are said so."""
from __future__ import annotations

import os
import shutil
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "validation"))
import gpu_summary  # noqa: E402

RES = os.path.join(ROOT, "validation", "results", "gpu_h200_2026-11-27b")


def _work(tmp_path, stages):
    w = tmp_path / "w"
    shutil.copytree(os.path.join(RES, "run5_f894343"), w)
    shutil.copy(os.path.join(RES, "run6_692a95f", "bench_gpu.json"), w / "bench_gpu.json")
    (w / "stages.tsv").write_text("stage\trc\tseconds\tlimit\n" + stages)
    return str(w)


def test_summary_of_recorded_results(tmp_path):
    w = _work(tmp_path, "1a GPU tests, default kernels\t0\t40\t140\n"
                        "2 benchmark\t124\t230\t230\n4 multi-area model\tskip\t0\t20\n")
    out = gpu_summary.summary(w).splitlines()
    text = "\n".join(out)
    assert out[1] == "exactness, default kernels (1a): 17 passed"
    assert "opt-in builds (1b): not run" in out[2]
    assert "stage '2 benchmark': exit 124 after 230 s (its time limit)" in text
    assert "stage '4 multi-area model': skipped (no time left in the budget)" in text
    assert ("(c) 1k neurons, dt 0.1 ms: best 9.00 us/step (persistent grid 132), default 9.40 "
            "(persistent grid 396 (auto)); target <= 5: not met") in text
    assert "procedural >= stored not met (0.45x)" in text
    assert "(b) propagation alone, stored: 7.38e+10 events/s; target >= 1.5e11: not met" in text
    assert ("(e) microcircuit full scale, stored: best 0.175 s per model s (persistent grid 660 "
            "(auto))") in text
    assert ("microcircuit validation, full scale: PASS; reference stored seed 1: 0.168 s per "
            "model s") in text
    assert ("multi-area model, full scale, ground state: 8.28 s per model s (graph loop), "
            "set-up 4.8 s, 8.08 GB; target <= 20: MET") in text
    assert "NOT EXACT" not in text


def test_summary_names_the_ab_row(tmp_path):
    """bench (b)'s A/B row (the old bernoulli walk on the same spikes) is named as such,
    not as a configuration a user can choose."""
    import json
    w = _work(tmp_path, "")
    with open(os.path.join(w, "bench_gpu.json")) as f:
        b = json.load(f)
    row = dict(b["propagation"][0], connectivity="procedural segment walk",
               events_per_s=5.0e10)
    b["propagation"].append(row)
    with open(os.path.join(w, "bench_gpu.json"), "w") as f:
        json.dump(b, f)
    b["propagation"].append(dict(row, connectivity="procedural tiles, spike queue",
                                 events_per_s=6.0e10))
    with open(os.path.join(w, "bench_gpu.json"), "w") as f:
        json.dump(b, f)
    text = gpu_summary.summary(w)
    assert ("(b) propagation alone, procedural, the walk before the flat one (PP_FLAT_WALK=0, "
            "A/B only): 5e+10 events/s; target >= 1.5e11: not met") in text
    assert ("(b) propagation alone, procedural tiles, spikes from the global list "
            "(PP_TILE_COMPACT=0, A/B only): 6e+10 events/s; target >= 1.5e11: not met") in text


def test_summary_flags_inexact_and_missing(tmp_path):
    w = tmp_path / "w"
    w.mkdir()
    (w / "stages.tsv").write_text("stage\trc\tseconds\tlimit\n1a GPU tests\t1\t50\t140\n"
                                  "NOT EXACT\t1\t0\t0\n")
    (w / "pytest_gpu.log").write_text("FAILED tests/test_cuda.py::test_identical_spikes[mixed-"
                                      "persistent] - AssertionError\n"
                                      "==== 1 failed, 16 passed in 40.12s ====\n")
    text = gpu_summary.summary(str(w))
    assert ("exactness, default kernels (1a): 1 failed, 16 passed; failed: "
            "test_identical_spikes[mixed-persistent]  !! NOT EXACT") in text
    assert "stage '1a GPU tests': exit 1 after 50 s" in text
    for part in ("benchmark: missing", "microcircuit validation, full scale: missing",
                 "multi-area model, full scale: missing"):
        assert part in text
    assert gpu_summary.main([]) == 2

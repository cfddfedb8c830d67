#!/usr/bin/env python3
"""The GPU session's results against the issues' targets, in a few lines.

    python3 validation/gpu_summary.py OUTDIR/w

Reads what validation/gpu_flagships.sh wrote into its work folder -- stages.tsv, the
benchmark (bench_gpu.json), the full-scale microcircuit validation (mc/validation.json),
the multi-area model (mam/mam_ground.json), the pytest logs -- and prints, per target,
the best configuration measured and the default's, with the configuration named, so the
end of a device call's output says what the session showed even if no file comes back.
Parts that did not run are said to be missing.  Numbers are only results if the
default kernels' exactness tests passed (first line).
"""
from __future__ import annotations

import json
import os
import re
import sys

TARGETS = {"us_per_step": 5.0, "whole_events": 1e11, "prop_events": 1.5e11,
           "mc_rtf": 0.1, "mam_rtf": 20.0}


def _load(path):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def _label(o) -> str:
    """A benchmark run's configuration, as bench_gpu.py's table names it."""
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from bench_gpu import _loop_label
    return _loop_label(o)


def _pytest_line(path) -> str:
    """'N passed, M failed ...' of a pytest log, and the failed tests' names."""
    try:
        with open(path) as f:
            text = f.read()
    except OSError:
        return "not run"
    counts = re.findall(r"^=*\s*((?:\d+ \w+(?:, )?)+) in [\d.]+s", text, re.M)
    failed = re.findall(r"^(?:FAILED|ERROR) (\S+)", text, re.M)
    out = counts[-1] if counts else "no summary line (cut by its time limit?)"
    if failed:
        out += "; failed: " + ", ".join(f.split("::")[-1] for f in failed[:8])
        if len(failed) > 8:
            out += f" and {len(failed) - 8} more"
    return out


def _stages(w) -> dict:
    rows = {}
    try:
        with open(os.path.join(w, "stages.tsv")) as f:
            next(f)
            for line in f:
                parts = line.rstrip("\n").split("\t")
                if len(parts) >= 3:
                    rows[parts[0]] = parts[1:]
    except (OSError, StopIteration):
        pass
    return rows


def _met(ok: bool) -> str:
    return "MET" if ok else "not met"


def _line(prefix, rows, key, fmt, unit, target=None, lower=True) -> str:
    """'PREFIX: best V UNIT (configuration), default V (configuration); target <= T: MET'
    over benchmark rows; the default is the last row without options (persistent="auto"
    as shipped); ``lower``: smaller is better."""
    best = (min if lower else max)(rows, key=lambda o: o[key])
    d = [o for o in rows if not o.get("options")]
    out = f"{prefix}: best {best[key]:{fmt}} {unit} ({_label(best)})"
    if d:
        out += f", default {d[-1][key]:{fmt}} ({_label(d[-1])})"
    if target is not None:
        ok = bool(d) and (d[-1][key] <= target if lower else d[-1][key] >= target)
        out += f"; target {'<=' if lower else '>='} {target:g}: {_met(ok)}"
    return out


def summary(w: str) -> str:
    lines = [f"== results against the targets ({w})"]
    st = _stages(w)
    exact = not any(k.startswith("NOT EXACT") for k in st)
    lines.append(f"exactness, default kernels (1a): {_pytest_line(os.path.join(w, 'pytest_gpu.log'))}"
                 + ("" if exact else "  !! NOT EXACT: the numbers below are diagnostics only"))
    lines.append("exactness, opt-in builds (1b): "
                 + _pytest_line(os.path.join(w, "pytest_gpu_experiments.log")))
    for name, row in st.items():
        if row and row[0] not in ("0", "skip") and not name.startswith("NOT EXACT"):
            lines.append(f"stage {name!r}: exit {row[0]} after {row[1]} s"
                         + (" (its time limit)" if row[0] in ("124", "137") else ""))
        elif row and row[0] == "skip":
            lines.append(f"stage {name!r}: skipped (no time left in the budget)")

    b = _load(os.path.join(w, "bench_gpu.json"))
    if not b:
        lines.append("benchmark: missing")
    else:
        over = b.get("overhead") or []
        if over:
            lines.append(_line("(c) 1k neurons, dt 0.1 ms", over, "us_per_step", ".2f",
                               "us/step", TARGETS["us_per_step"]))
        runs = (b.get("whole_graph") or []) + (b.get("whole") or [])
        for conn in ("procedural", "stored"):
            rs = [o for o in runs if o["connectivity"] == conn and o.get("events_per_s")]
            if rs:
                lines.append(_line(f"(a) balanced 1e5, {conn}", rs, "events_per_s", ".3g",
                                   "events/s", lower=False))
        dflt = {o["connectivity"]: o for o in b.get("whole") or []}
        if "procedural" in dflt and "stored" in dflt:
            p, s = dflt["procedural"]["events_per_s"], dflt["stored"]["events_per_s"]
            lines.append(f"(a) targets, defaults: >= 1e11 events/s {_met(p >= TARGETS['whole_events'])}"
                         f"; procedural >= stored {_met(p >= s)} ({p / s:.2f}x)")
        for o in b.get("propagation") or []:
            what = {"procedural segment walk": "procedural, the walk before the flat one "
                                               "(PP_FLAT_WALK=0, A/B only)",
                    "procedural tiles, spike queue": "procedural tiles, spikes from the "
                                                     "global list (PP_TILE_COMPACT=0, A/B "
                                                     "only)"}.get(
                o["connectivity"], o["connectivity"])
            lines.append(f"(b) propagation alone, {what}: {o['events_per_s']:.3g} "
                         f"events/s; target >= 1.5e11: "
                         f"{_met(o['events_per_s'] >= TARGETS['prop_events'])}")
        mc = b.get("microcircuit") or []
        for conn in ("procedural", "stored"):
            rs = [o for o in mc if o["connectivity"] == conn]
            if rs:
                lines.append(_line(f"(e) microcircuit full scale, {conn}", rs,
                                   "wall_per_model_s", ".3f", "s per model s", TARGETS["mc_rtf"]))

    v = _load(os.path.join(w, "mc", "validation.json"))
    if not v:
        lines.append("microcircuit validation, full scale: missing")
    else:
        runs = v.get("runs") or []
        rtf = [r["wall_run_s"] / (r["duration"] * 1e-3) for r in runs if r.get("duration")]
        lines.append(f"microcircuit validation, full scale: {v['meta'].get('verdict')}; "
                     + ", ".join(f"{r['label']} {r['connectivity']} seed {r['seed']}: "
                                 f"{x:.3f} s per model s" for r, x in zip(runs, rtf)))
    m = _load(os.path.join(w, "mam", "mam_ground.json"))
    if not m:
        lines.append("multi-area model, full scale: missing")
    else:
        lines.append(f"multi-area model, full scale, ground state: {m['wall_per_model_s']:.2f} s "
                     f"per model s ({m.get('loop_mode')} loop), set-up "
                     f"{m['setup_s']['total']:.1f} s, {m['device_bytes_planned'] / 1e9:.2f} GB"
                     f"; target <= 20: {_met(m['wall_per_model_s'] <= TARGETS['mam_rtf'])}")
    return "\n".join(lines)


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1:
        print(__doc__.strip().splitlines()[2].strip(), file=sys.stderr)
        return 2
    print(summary(argv[0]))
    return 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python
"""Validate the Potjans-Diesmann microcircuit: procedural connectivity against the stored
SciPy reference (connectivity statistics, activity statistics across seeds, report).

The same function serves ``pyproc validate microcircuit ...``; this script works without
the CLI.  Example (the recorded CPU validation)::

    python validation/validate_microcircuit.py --scale 0.1 --duration 2500 --seeds 3 \\
        --backend cpu --out validation/results/microcircuit_cpu_scale0.1

Writes report.md, validation.json and PNG figures to --out; exit status 0 on PASS.
"""
import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from pyproc import validate  # noqa: E402


def parse(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    validate.add_arguments(p, common=True)
    return p.parse_args(argv)


if __name__ == "__main__":
    sys.exit(validate.main(parse()))

"""The progress line of long runs (pyproc.progress.Progress)."""
from __future__ import annotations

import io

import pytest

import pyproc as pp
from pyproc.models import balanced
from pyproc.progress import Progress, format_seconds


class Stream(io.StringIO):
    def __init__(self, tty: bool):
        super().__init__()
        self._tty = tty

    def isatty(self):
        return self._tty


def _feed(prog, calls):
    for done, total, wall in calls:
        prog(done, total, wall)


# 1000 steps of 0.1 ms (100 ms of model time), 20 s of wall time, 100 neurons
SLOW_RUN = [(100 * k, 1000, 2.0 * k) for k in range(1, 11)]


def test_tty_refreshes_one_line_and_ends_with_newline():
    s = Stream(tty=True)
    spikes = iter(range(0, 10000, 50))
    prog = Progress(0.1, 100, spikes=lambda: next(spikes), stream=s, delay_s=2.0,
                    tty_interval_s=0.5)
    _feed(prog, SLOW_RUN)
    out = s.getvalue()
    assert out.count("\n") == 1 and out.endswith("\n")
    assert out.count("\r") == 10                     # every call from 2 s on refreshes
    last = out.split("\r")[-1]
    assert "100.0 / 100.0 ms" in last and "100%" in last and "wall 20.0 s" in last
    assert "ETA 0.0 s" in last


def test_reports_rtf_eta_and_rate():
    s = Stream(tty=False)
    counts = iter([0, 50, 150])          # read once at creation: the baseline
    prog = Progress(0.1, 100, spikes=lambda: next(counts), stream=s, delay_s=0.0,
                    line_interval_s=0.0)
    prog(100, 1000, 2.0)     # 10 ms of model time in 2 s: RTF 200; 50 spikes/(100 x 0.01 s)
    prog(200, 1000, 3.0)     # next 10 ms in 1 s: RTF 100; 100 spikes: 100 Hz
    first, second = s.getvalue().splitlines()
    assert "RTF 200" in first and "rate 50 Hz" in first and "ETA 18.0 s" in first
    assert "RTF 100" in second and "rate 100 Hz" in second
    assert "ETA 12.0 s" in second                   # 800 steps at 3 s / 200 steps
    assert "10%" in first and "20.0 / 100.0 ms" in second


def test_resumed_run_counts_from_its_start():
    """A run resumed at step 500 with 1,000 spikes already emitted: the times shown count
    the 50 ms before it, the rate only this run's spikes."""
    s = Stream(tty=False)
    counts = iter([1000, 1050])
    prog = Progress(0.1, 100, spikes=lambda: next(counts), stream=s, delay_s=0.0,
                    line_interval_s=0.0, offset_steps=500)
    prog(100, 1000, 2.0)
    line = s.getvalue().strip()
    assert "60.0 / 150.0 ms" in line and " 40%" in line
    assert "rate 50 Hz" in line and "ETA 18.0 s" in line


def test_plain_lines_when_not_a_terminal():
    s = Stream(tty=False)
    prog = Progress(0.1, 100, stream=s, delay_s=2.0, line_interval_s=5.0)
    _feed(prog, SLOW_RUN)
    lines = s.getvalue().splitlines()
    assert "\r" not in s.getvalue()
    # shown at 2 s, then every >= 5 s (8, 14), and the final line at 20 s
    assert [ln.split("wall ")[1].split(" s")[0] for ln in lines] == ["2.0", "8.0", "14.0", "20.0"]
    assert "rate" not in lines[0]                   # no spike counter given


def test_short_runs_and_quiet_show_nothing():
    for prog in (Progress(0.1, 10, stream=Stream(True), delay_s=2.0),
                 Progress(0.1, 10, stream=Stream(False), quiet=True, delay_s=0.0)):
        _feed(prog, [(5, 10, 0.5), (10, 10, 1.0)] if not prog.quiet else SLOW_RUN)
        prog.close()
        assert prog.stream.getvalue() == ""


def test_close_after_interrupt_ends_the_line():
    s = Stream(tty=True)
    prog = Progress(0.1, 10, stream=s, delay_s=0.0)
    prog(3, 10, 1.0)
    assert not s.getvalue().endswith("\n")
    prog.close()
    prog.close()                                    # idempotent
    assert s.getvalue().count("\n") == 1


def test_shorter_line_overwrites_longer_one():
    s = Stream(tty=True)
    prog = Progress(0.1, 10, stream=s, delay_s=0.0, tty_interval_s=0.0)
    prog(1, 10 ** 6, 5000.0)           # long ETA text
    prog(2, 10 ** 6, 5000.5)
    a, b = s.getvalue().split("\r")[1:]
    assert len(b) >= len(a)            # padded with blanks over the previous text


@pytest.mark.parametrize("sec,text", [(4.24, "4.2 s"), (59.94, "59.9 s"), (185, "3 min 05 s"),
                                      (7620, "2 h 07 min"), (float("nan"), "?")])
def test_format_seconds(sec, text):
    assert format_seconds(sec) == text


def test_with_a_real_simulation():
    """As Simulation.run's callback: called once per chunk with increasing steps."""
    seen = []
    s = Stream(tty=False)
    sim = pp.Simulation(balanced(neurons=50, seed=1), "cpu", "procedural")
    prog = Progress(0.1, 50, spikes=lambda: sim.sim.n_spikes_total, stream=s, delay_s=0.0,
                    line_interval_s=0.0)

    def cb(done, total, wall):
        seen.append(done)
        prog(done, total, wall)
    sim.run(5.0, progress=cb, chunk_steps=10)
    assert seen == list(range(10, 51, 10))
    lines = s.getvalue().splitlines()
    assert len(lines) == 5 and "5.0 / 5.0 ms" in lines[-1] and "rate" in lines[-1]


@pytest.mark.parametrize("in_pool", [False, True])
def test_validate_runs_report_progress(capsys, monkeypatch, in_pool):
    """Each validation run reports its progress, labelled with the run, as `pyproc run`
    does (here shown from the start: delay 0); pool workers write plain lines."""
    import functools
    from pyproc import validate
    from pyproc.progress import Progress
    monkeypatch.setattr(validate, "Progress", functools.partial(Progress, delay_s=0.0,
                                                                line_interval_s=0.0))
    job = dict(label="reference", seed=3, backend="cpu", connectivity="stored",
               model="balanced", options={"neurons": 50}, duration=30.0, t_discard=10.0,
               n_corr=10, cuda_options={}, progress=True, in_pool=in_pool)
    validate._one_run(job)
    err = capsys.readouterr().err
    lines = [ln for ln in err.replace("\r", "\n").splitlines() if ln.strip()]
    assert lines and all(ln.startswith("pyproc validate: reference stored cpu seed 3: ")
                         for ln in lines)
    assert "30.0 / 30.0 ms" in lines[-1] and "100%" in lines[-1]
    assert ("\r" not in err) if in_pool else True
    job["progress"] = False
    validate._one_run(job)
    assert capsys.readouterr().err == ""

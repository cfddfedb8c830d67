"""Progress report for long runs, used as ``Simulation.run(progress=...)``.

    prog = Progress(dt=0.1, n_neurons=net.n_neurons, spikes=lambda: sim.sim.n_spikes_total)
    sim.run(1000.0, progress=prog, chunk_steps=100)
    prog.close()

Nothing is shown for the first ``delay_s`` seconds of wall time, so short runs stay silent.
After that one line reports the model time done, the wall time, the ETA, the current
real-time factor (RTF: wall seconds per model second, so RTF > 1 is slower than real
time) and the current mean spike rate per neuron::

    pyproc:  120.0 / 1000.0 ms  12%  wall 3.2 s  ETA 23.5 s  RTF 26.7  rate 12.3 Hz

On a terminal the line refreshes in place (``\\r``) at most every ``tty_interval_s``;
elsewhere (a log file, a pipe) a plain line is written every ``line_interval_s``.
"Current" means measured since the previous line, so a network that settles or
explodes shows up at once; the ETA uses the average over the whole run.
"""
from __future__ import annotations

import sys
from typing import Callable, Optional, TextIO

__all__ = ["Progress", "format_seconds", "CHUNK_MS"]

CHUNK_MS = 10.0     # model time between progress callbacks (Simulation.run chunk_steps)


def format_seconds(s: float) -> str:
    """Human duration: ``'4.2 s'``, ``'3 min 05 s'``, ``'2 h 07 min'``."""
    if s != s or s < 0:  # NaN or negative: unknown
        return "?"
    if s < 60:
        return f"{s:.1f} s"
    m, sec = divmod(int(round(s)), 60)
    if m < 60:
        return f"{m} min {sec:02d} s"
    h, m = divmod(m, 60)
    return f"{h} h {m:02d} min"


class Progress:
    """Callable ``(done_steps, total_steps, wall_s)`` that reports a run's progress.

    ``dt`` is the step in ms, ``n_neurons`` the neurons whose spikes ``spikes()`` counts
    (a callable returning the total spikes emitted so far, or ``None`` to omit the rate).
    ``stream`` defaults to ``sys.stderr``; ``tty`` overrides ``stream.isatty()``.
    ``quiet=True`` shows nothing.  ``offset_steps``: steps run before this run (a resumed
    run): the times shown count them, the rate and ETA do not.
    """

    def __init__(self, dt: float, n_neurons: int, spikes: Optional[Callable[[], int]] = None,
                 stream: Optional[TextIO] = None, quiet: bool = False, tty: Optional[bool] = None,
                 delay_s: float = 2.0, tty_interval_s: float = 0.5, line_interval_s: float = 10.0,
                 prefix: str = "pyproc: ", offset_steps: int = 0):
        self.dt = float(dt)
        self.n_neurons = int(n_neurons)
        self.spikes = spikes
        self.stream = sys.stderr if stream is None else stream
        self.quiet = bool(quiet)
        if tty is None:
            isatty = getattr(self.stream, "isatty", None)
            try:
                tty = bool(isatty()) if isatty is not None else False
            except (ValueError, OSError):  # closed or detached stream
                tty = False
        self.tty = tty
        self.delay_s = float(delay_s)
        self.interval_s = float(tty_interval_s if tty else line_interval_s)
        self.prefix = prefix
        self.lines = 0               # lines (or refreshes) written
        self._open = False           # a \r line is on screen without its newline
        self._width = 0
        # (wall_s, done_steps, spikes) at the previous line; the spikes already emitted
        # (a resumed run's) are not this run's
        self._last = (0.0, 0, self._spikes_now() or 0)
        self.offset_steps = int(offset_steps)   # steps before this run (shown in the times)
        self._last_shown = None

    # -- the callback ---------------------------------------------------------
    def __call__(self, done_steps: int, total_steps: int, wall_s: float) -> None:
        if self.quiet:
            return
        finished = done_steps >= total_steps
        if wall_s < self.delay_s and not (finished and self.lines):
            return
        if not finished and self._last_shown is not None and \
                wall_s - self._last_shown < self.interval_s:
            return
        self._show(self.line(done_steps, total_steps, wall_s))
        self._last_shown = wall_s
        if finished:
            self.close()

    def line(self, done_steps: int, total_steps: int, wall_s: float) -> str:
        """The text of one report (also advances the "current" window)."""
        t_done = (self.offset_steps + done_steps) * self.dt
        t_total = (self.offset_steps + total_steps) * self.dt
        whole = self.offset_steps + total_steps
        frac = (self.offset_steps + done_steps) / whole if whole else 1.0
        eta = wall_s / done_steps * (total_steps - done_steps) if done_steps else float("nan")
        w0, d0, s0 = self._last
        dw, dsteps = wall_s - w0, done_steps - d0
        model_s = dsteps * self.dt * 1e-3
        parts = [f"{t_done:.1f} / {t_total:.1f} ms", f"{100 * frac:3.0f}%",
                 f"wall {format_seconds(wall_s)}", f"ETA {format_seconds(eta)}"]
        parts.append(f"RTF {dw / model_s:.3g}" if model_s > 0 else "RTF ?")
        spikes = self._spikes_now()
        if spikes is not None:
            rate = (spikes - s0) / (self.n_neurons * model_s) if model_s > 0 and self.n_neurons \
                else float("nan")
            parts.append(f"rate {rate:.3g} Hz")
        self._last = (wall_s, done_steps, spikes if spikes is not None else s0)
        return self.prefix + "  ".join(parts)

    def _spikes_now(self):
        if self.spikes is None:
            return None
        try:
            return int(self.spikes())
        except (TypeError, ValueError, AttributeError, NameError):
            return None

    def close(self) -> None:
        """End the refreshing line (call after an interrupted run too)."""
        if self._open:
            self.stream.write("\n")
            self.stream.flush()
            self._open = False

    # -- output -----------------------------------------------------------------
    def _show(self, text: str) -> None:
        if self.tty:
            pad = max(0, self._width - len(text))
            self.stream.write("\r" + text + " " * pad)
            self._width = len(text)
            self._open = True
        else:
            self.stream.write(text + "\n")
        self.stream.flush()
        self.lines += 1

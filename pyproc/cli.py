"""The ``pyproc`` command line: run, info, plan, validate, bench.

    pyproc run balanced --neurons 1000 --duration 200 --seed 1 --out runs/b1
    pyproc info
    pyproc plan balanced --neurons 100000
    pyproc validate balanced ...      (options from pyproc.validate.add_arguments)
    pyproc bench ...                  (options from pyproc.bench.add_arguments)

``run``, ``validate`` and ``bench`` share ``--duration``, ``--seed``, ``--quiet`` and
``--out`` (same defaults but for ``--out``'s directory name); ``run`` and ``validate`` also
share ``--backend cpu|cuda|auto`` (default cpu) and ``--connectivity procedural|stored``
(default procedural), which ``bench`` replaces by lists: ``--backends LIST`` (alias
``--backend``, default cpu) and ``--connectivity LIST`` (default both); the model options
(``--neurons``, ``--scale``, ...) are the same for ``run``, ``plan`` and ``validate``.
A model is a builder in :data:`pyproc.models.MODELS`; its options here are checked before
anything is built, and every bad argument ends the command with exit status 2 and one line
``pyproc ...: error: argument --X: ...`` on stderr.

Exit status of ``run``: 0 done, 1 done but the --checkpoint file not written (results
saved), 2 bad arguments or backend unavailable, 3 a fixed-point
overflow stopped the run (what was recorded is saved, marked partial), 130 interrupted by
Ctrl-C (what was recorded is saved, marked partial).

For the authors of ``pyproc.validate`` / ``pyproc.bench``: ``main(args)`` receives the
parsed namespace with the shared options, plus, for ``validate``, ``args.model`` (name),
``args.model_options`` (the builder's keyword arguments, without ``seed``) and
``args.build_model()`` which returns a fresh :class:`pyproc.Network`.  It returns an
exit status (``None`` counts as 0).
"""
from __future__ import annotations

import argparse
import datetime
import importlib
import importlib.util
import inspect
import json
import math
import os
import platform
import shutil
import signal
import subprocess
import sys
import time
import warnings
from dataclasses import dataclass
from typing import Callable, Dict, List, Optional, Sequence, Tuple

from .provenance import git_commit
from .results import remove_stale
from .errors import BackendUnavailable, ModelError, OverflowDetected

__all__ = ["main", "build_parser", "MODEL_OPTIONS", "EXIT_OK", "EXIT_USAGE", "EXIT_OVERFLOW",
           "EXIT_INTERRUPTED"]

EXIT_OK = 0
EXIT_FAILED = 1            # the run's results are saved, but something asked for failed
EXIT_USAGE = 2
EXIT_OVERFLOW = 3
EXIT_INTERRUPTED = 130

DEFAULT_DURATION_MS = 1000.0
DEFAULT_SEED = 1


# -- argument types: each message says the allowed range --------------------------------
def _number(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number, got {text!r}") from None
    if not math.isfinite(v):
        raise argparse.ArgumentTypeError(f"must be finite, got {text!r}")
    return v


def positive_float(text: str) -> float:
    v = _number(text)
    if v <= 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {text!r}")
    return v


def nonneg_float(text: str) -> float:
    v = _number(text)
    if v < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {text!r}")
    return v


def probability(text: str) -> float:
    v = _number(text)
    if not 0.0 <= v <= 1.0:
        raise argparse.ArgumentTypeError(f"must be in [0, 1], got {text!r}")
    return v


def _int_at_least(lo: int, hi: Optional[int] = None) -> Callable[[str], int]:
    rng = f"[{lo}, {hi})" if hi is not None else f">= {lo}"

    def parse(text: str) -> int:
        try:
            v = int(text)
        except ValueError:
            v = _whole_float(text)      # 1e5, as `bench --sizes` takes it
            if v is None:
                raise argparse.ArgumentTypeError(f"must be a whole number {rng}, got {text!r}"
                                                 ) from None
        if v < lo or (hi is not None and v >= hi):
            raise argparse.ArgumentTypeError(f"must be a whole number {rng}, got {text!r}")
        return v
    parse.__name__ = "whole number"
    return parse


seed_type = _int_at_least(0, 2 ** 32)


def _whole_float(text: str) -> Optional[int]:
    """``1e5`` or ``2000.0`` as an int (exactly representable whole numbers only), else None."""
    try:
        f = float(text)
    except ValueError:
        return None
    if not math.isfinite(f) or f != math.floor(f) or abs(f) >= 2.0 ** 53:
        return None
    return int(f)


def _one_of(*choices: str) -> Callable[[str], str]:
    def parse(text: str) -> str:
        if text not in choices:
            raise argparse.ArgumentTypeError(f"must be one of {', '.join(choices)}, got {text!r}")
        return text
    parse.__name__ = "choice"
    return parse


def unit_interval(text: str) -> float:
    """A number in (0, 1] (a fraction of a full-size model)."""
    v = _number(text)
    if not 0.0 < v <= 1.0:
        raise argparse.ArgumentTypeError(f"must be in (0, 1], got {text!r}")
    return v


class _NoBound(str):
    """The value 'none' of an option that asks for None (no bound), not the default; a
    str subclass, so that another option's plain 'none' (--missing-areas) stays a string."""


NO_BOUND = _NoBound("none")


def clip_sd(text: str):
    """A positive number of sd, or 'none' (no upper bound)."""
    if str(text).strip().lower() == NO_BOUND:
        return NO_BOUND
    return positive_float(text)


def missing_areas(text: str) -> str:
    """How the input from areas left out is replaced: 'dc', 'poisson' or 'none'."""
    from .models.multiarea import MISSING_AREAS
    if text not in MISSING_AREAS:
        raise argparse.ArgumentTypeError(f"must be {', '.join(MISSING_AREAS[:-1])} or "
                                         f"{MISSING_AREAS[-1]}, got {text!r}")
    return text


def on_off(text: str) -> bool:
    choices = {"on": True, "off": False}
    if text not in choices:
        raise argparse.ArgumentTypeError(f"must be on or off, got {text!r}")
    return choices[text]


def existing_file(text: str) -> str:
    if os.path.isdir(text):
        raise argparse.ArgumentTypeError(f"{text!r} is a directory, not a file")
    if not os.path.isfile(text):
        raise argparse.ArgumentTypeError(f"no such file: {text!r}")
    return text


def name_list(text: str) -> List[str]:
    names = [t.strip() for t in text.split(",")]
    if not any(names):
        raise argparse.ArgumentTypeError(f"must be a comma-separated list of names, got {text!r}")
    if not all(names):
        raise argparse.ArgumentTypeError(f"empty name in the comma-separated list {text!r}")
    return names


def state_variables(text: str) -> List[str]:
    """--record-state: a comma-separated list of STATE_VARIABLES."""
    from .network import STATE_VARIABLES
    names = name_list(text)
    bad = [n for n in names if n not in STATE_VARIABLES]
    if bad:
        raise argparse.ArgumentTypeError(f"unknown variable {bad[0]!r} (known: "
                                         f"{', '.join(STATE_VARIABLES)})")
    if len(set(names)) != len(names):
        raise argparse.ArgumentTypeError(f"{text!r} names a variable twice")
    return names


# -- models ------------------------------------------------------------------------------
@dataclass(frozen=True)
class Option:
    """One model option: ``--flag`` on the command line, ``dest`` in the builder."""
    flag: str
    dest: str
    type: Callable[[str], object]
    help: str
    metavar: Optional[str] = None
    required: bool = False


_DT = Option("--dt", "dt", positive_float, "time step in ms", "MS")
_K_SCALE = Option("--k-scale", "k_scale", unit_interval,
                  "fraction of the full-size in-degrees, in (0, 1] (default: --scale); the "
                  "in-degree lost is replaced by DC input of the same mean, weights scaled by "
                  "1/sqrt(K) as in the NEST example", "K")
MODEL_OPTIONS: Dict[str, Tuple[str, Tuple[Option, ...]]] = {
    "balanced": ("Balanced E/I network of iaf_psc_exp neurons (80 % E, 20 % I, "
                 "pairwise_bernoulli(p), Poisson background).", (
                     Option("--neurons", "neurons", _int_at_least(5, 2 ** 31),
                            "total number of neurons (>= 5)", "N"),
                     Option("--p", "p", probability, "connection probability, in [0, 1]", "P"),
                     _DT)),
    "microcircuit": ("Potjans & Diesmann (2014) cortical microcircuit, 8 populations.", (
        Option("--scale", "scale", unit_interval,
               "fraction of the full-size model's neurons, in (0, 1] (1 = 77,169 neurons)",
               "S"),
        _K_SCALE,
        Option("--thalamic", "thalamic", on_off,
               "PD14's thalamic input: 902 Poisson sources (population TH) at 120 Hz from "
               "700 to 710 ms onto L4 and L6 (default off)", "on|off"),
        Option("--dc-stimulus", "dc_stimulus", on_off,
               "the NEST example's transient DC input: 0.3 pA x K_ext into every population "
               "from 650 to 750 ms (default off)", "on|off"),
        _DT)),
    "multiarea": ("Multi-area model read from a structure file.", (
        Option("--structure", "structure", existing_file,
               "structure file describing areas, populations and connections", "PATH", True),
        Option("--areas", "areas", name_list,
               "comma-separated subset of the areas to simulate (default: all)", "A,B,..."),
        Option("--scale", "scale", unit_interval, "fraction of each area's neurons, in (0, 1]",
               "S"),
        _K_SCALE,
        Option("--state", "state", _one_of("ground", "metastable"),
               "network state, ground or metastable (sets the cortico-cortical factors chi)",
               "STATE"),
        Option("--missing-areas", "missing_areas", missing_areas,
               "input from the areas --areas leaves out, at stand-in rates: dc (default: a "
               "DC of the same mean), poisson (Poisson input, as the authors' "
               "het_poisson_stat) or none (dropped)", "dc|poisson|none"),
        Option("--delay-clip-sd", "delay_clip_sd", clip_sd,
               "delays cut off at mean + SD sd (default 3.719, the 0.9999 quantile, as "
               "GeNN's port); 'none': NEST's unbounded tail (a larger delay ring)", "SD"),
        _DT)),
}


def _builder(model: str):
    """The builder of ``model`` from pyproc.models.MODELS (or a module attribute), or None
    and the reason."""
    try:
        models = importlib.import_module("pyproc.models")
    except Exception as e:  # a broken models package must not take `pyproc info` down
        return None, f"pyproc.models failed to import ({type(e).__name__}: {e})"
    registry = getattr(models, "MODELS", None) or {}
    fn = registry.get(model) or getattr(models, model, None)
    if fn is None:
        try:
            mod = importlib.import_module(f"pyproc.models.{model}")
            fn = getattr(mod, model, None)
        except ModuleNotFoundError as e:
            if e.name != f"pyproc.models.{model}":
                return None, f"pyproc.models.{model} failed to import ({e})"
        except Exception as e:
            return None, f"pyproc.models.{model} failed to import ({type(e).__name__}: {e})"
    if fn is None or not callable(fn):
        return None, f"model {model!r} is not available in this pyproc version yet"
    return fn, None


def _signature_defaults(fn) -> Dict[str, object]:
    try:
        params = inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return {}
    return {k: p.default for k, p in params.items() if p.default is not inspect.Parameter.empty}


def _accepts(fn, name: str) -> bool:
    try:
        params = inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return True
    return name in params or any(p.kind is inspect.Parameter.VAR_KEYWORD
                                 for p in params.values())


def _model_kwargs(parser: argparse.ArgumentParser, args, fn) -> Dict[str, object]:
    """The builder's keyword arguments from the model options given (not seed)."""
    kwargs = {}
    for opt in MODEL_OPTIONS[args.model][1]:
        value = getattr(args, opt.dest)
        if value is None:
            continue
        if opt.dest != "structure" and not _accepts(fn, opt.dest):
            parser.error(f"argument {opt.flag}: model {args.model!r} has no {opt.dest!r} "
                         f"parameter")
        kwargs[opt.dest] = None if value is NO_BOUND else value
    return kwargs


def _build_model(args, fn, kwargs) -> "object":
    """Call the builder (structure positionally, seed as keyword if it takes one)."""
    from .network import Network
    kw = dict(kwargs)
    pos = []
    if "structure" in kw:
        pos.append(kw.pop("structure"))
    if _accepts(fn, "seed"):
        kw["seed"] = args.seed
    net = fn(*pos, **kw)
    if not isinstance(net, Network):
        raise ModelError(f"model {args.model!r}: builder returned {type(net).__name__}, "
                         f"not a pyproc.Network")
    if not _accepts(fn, "seed"):
        net.seed = args.seed
    return net


# -- parser ------------------------------------------------------------------------------
class _Parser(argparse.ArgumentParser):
    """argparse with a one-line error: ``prog: error: message (see 'prog --help')``."""

    def error(self, message):
        if message.startswith("argument MODEL: invalid choice"):
            # `pyproc run --duration 10 balanced`: the option's value was taken for MODEL
            message += f"; the model comes first, then its options: '{self.prog} MODEL [options]'"
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")


class _Formatter(argparse.RawDescriptionHelpFormatter):
    """Appends "(default: X)" to an option's help when X says something (not None/False)."""

    def _get_help_string(self, action):
        text = action.help or ""
        if "%(default)" in text or not action.option_strings or \
                action.default in (None, False, argparse.SUPPRESS):
            return text
        return text + " (default: %(default)s)"


# CUDASimulator options the command line passes through (--cuda-option NAME=VALUE): name ->
# type; the opt-in kernel builds and the grid/launch sizes (pyproc.backends.cuda).
CUDA_OPTIONS = {"unit_map": bool, "shared_tables": bool, "pipelined": bool,
                "throughput_build": bool, "one_block": bool, "bernoulli_tiles": bool,
                "tune_builds": bool,
                "tile_min_spikes": int,
                "persistent_blocks_per_sm": int, "persistent_grid": int, "graph_steps": int}
_TRUE, _FALSE = ("1", "true", "yes", "on"), ("0", "false", "no", "off")


def cuda_option(text: str):
    """NAME=VALUE of --cuda-option -> (name, value), or an argparse error naming it."""
    name, eq, value = text.partition("=")
    name = name.strip().replace("-", "_")
    if not eq or name not in CUDA_OPTIONS:
        raise argparse.ArgumentTypeError(
            f"{text!r}: expected NAME=VALUE with NAME one of {', '.join(sorted(CUDA_OPTIONS))}")
    kind, v = CUDA_OPTIONS[name], value.strip().lower()
    if kind is bool:
        if v not in _TRUE + _FALSE:
            raise argparse.ArgumentTypeError(f"{text!r}: {name} takes 1/0 (true/false)")
        return name, v in _TRUE
    try:
        n = int(v)
    except ValueError:
        n = 0
    if n < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: {name} takes a whole number >= 1")
    return name, n


def _cuda_option_arg(g) -> None:
    g.add_argument("--cuda-option", type=cuda_option, action="append", default=[],
                   metavar="NAME=VALUE",
                   help="a CUDA backend option (repeatable): unit_map, shared_tables, "
                        "pipelined, throughput_build, one_block, bernoulli_tiles = 1/0 "
                        "(opt-in kernel "
                        "builds, docs/performance.md), tune_builds = 1/0 (the auto loop times "
                        "those builds too, and tiles unless bernoulli_tiles=0); tile_min_spikes, persistent_blocks_per_sm, "
                        "persistent_grid, graph_steps = N; the spikes are the same")


def _shared_options(p: argparse.ArgumentParser, out: bool = True,
                    out_default: str = "runs/MODEL-YYYYmmdd-HHMMSS") -> None:
    """Options shared by run, validate and bench (same names, same defaults but for the
    name of the default output directory; bench replaces --backend and --connectivity by
    lists, see pyproc.bench.add_arguments)."""
    g = p.add_argument_group("simulation options (shared by run, validate and bench)")
    g.add_argument("--duration", type=nonneg_float, default=DEFAULT_DURATION_MS, metavar="MS",
                   help="model time to simulate, in ms (a whole number of steps)")
    g.add_argument("--seed", type=seed_type, default=DEFAULT_SEED, metavar="S",
                   help="seed of every random stream (connectivity, weights, input, initial "
                        "state), in [0, 2^32)")
    g.add_argument("--backend", choices=("cpu", "cuda", "auto"), default="cpu",
                   help="cpu: NumPy/SciPy; cuda: PyCUDA kernels on the GPU; auto: cuda "
                        "where it is usable (see 'pyproc info'), else cpu")
    g.add_argument("--connectivity", choices=("procedural", "stored"), default="procedural",
                   help="procedural: synapses regenerated from the seed at every spike; "
                        "stored: materialised once (CSR)")
    g.add_argument("--quiet", "-q", action="store_true",
                   help="print nothing but errors (no progress line, no summary)")
    if out:
        g.add_argument("--out", metavar="DIR", default=None,
                       help=f"output directory (created; existing files are replaced) "
                            f"[default: {out_default}]")


def _model_options(p: argparse.ArgumentParser, model: str) -> None:
    fn, _ = _builder(model)
    defaults = _signature_defaults(fn) if fn is not None else {}
    g = p.add_argument_group(f"{model} options")
    for opt in MODEL_OPTIONS[model][1]:
        d = defaults.get(opt.dest, inspect.Parameter.empty)
        h = opt.help + ("" if d is inspect.Parameter.empty or d is None or opt.required
                        else f" (default: {d})")
        g.add_argument(opt.flag, dest=opt.dest, type=opt.type, metavar=opt.metavar,
                       required=opt.required, default=None,
                       help=h.replace("%", "%%"))


def _model_subparsers(p: argparse.ArgumentParser, what: str, configure: Callable) -> None:
    sub = p.add_subparsers(dest="model", metavar="MODEL", parser_class=_Parser)
    sub.required = True
    for model, (desc, _) in MODEL_OPTIONS.items():
        fn, why = _builder(model)
        d = desc if fn is not None else f"{desc} [not available: {why}]"
        mp = sub.add_parser(model, help=d.replace("%", "%%"),
                            description=f"{what} the {model} model. {d}",
                            formatter_class=_Formatter, conflict_handler="resolve")
        _model_options(mp, model)
        configure(mp)


def _optional_module(name: str):
    """(module, None) or (None, reason) for pyproc.validate / bench / plan."""
    try:
        return importlib.import_module(name), None
    except ModuleNotFoundError as e:
        if e.name == name:
            return None, f"{name} is not part of this pyproc version yet"
        return None, f"{name} failed to import ({e})"
    except Exception as e:
        return None, f"{name} failed to import ({type(e).__name__}: {e})"


def build_parser(argv: Optional[Sequence[str]] = None) -> argparse.ArgumentParser:
    """The full parser.  ``argv`` only decides whether the optional modules
    (pyproc.validate, pyproc.bench) are imported to add their options."""
    from . import __version__
    argv = list(argv or [])
    command = next((a for a in argv if not a.startswith("-")), None)

    parser = _Parser(prog="pyproc", formatter_class=_Formatter,
                     description="Spiking networks with procedural connectivity, bit-exact "
                                 "across CPU and GPU.",
                     epilog="Run 'pyproc COMMAND --help' for the options of a command, "
                            "'pyproc run MODEL --help' for a model's.")
    parser.add_argument("--version", action="version", version=f"pyproc {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True

    p = sub.add_parser("run", help="simulate a model; write spikes.npz, summary.json and plots",
                       description="Simulate MODEL and write DIR/spikes.npz (times in ms, "
                                   "senders as global ids), DIR/summary.json and, with "
                                   "matplotlib, DIR/raster.png and DIR/rates.png. Ctrl-C stops "
                                   "at the next step and saves what was recorded (partial). "
                                   "Exit status: 0 done, 1 checkpoint not written (results "
                                   "saved), 2 bad arguments, 3 overflow (partial results "
                                   "saved), 130 interrupted (partial results saved).",
                       formatter_class=_Formatter)

    def run_opts(mp):
        _shared_options(mp)
        mp.add_argument("--no-plots", action="store_true",
                        help="do not write raster.png, rates.png (and state.png)")
        mp.add_argument("--record-state", type=state_variables, default=None, metavar="VARS",
                        help="also record these state variables (comma-separated: V_m, "
                             "I_syn_ex, I_syn_in, I_syn; NEST's multimeter) of the first "
                             "--state-neurons neurons of every LIF population into "
                             "DIR/state.npz, plotted in DIR/state.png")
        mp.add_argument("--state-neurons", type=_int_at_least(1), default=5, metavar="N",
                        help="neurons per population that --record-state records")
        mp.add_argument("--state-interval", type=positive_float, default=1.0, metavar="MS",
                        help="--record-state's sampling interval (a whole number of steps)")
        mp.add_argument("--checkpoint", metavar="FILE", default=None,
                        help="save the simulation to FILE (.npz) when the run ends or Ctrl-C "
                             "stops it, so that --resume FILE can continue it")
        mp.add_argument("--resume", metavar="FILE", default=None,
                        help="continue the checkpoint FILE of the same model and options "
                             "(any backend or connectivity) up to --duration ms in all; "
                             "the outputs hold the whole run, as if never stopped")
        mp.add_argument("--cuda-loop", choices=("auto", "persistent", "graph"), default="auto",
                        help="CUDA step loop: a persistent cooperative kernel, a CUDA graph of "
                             "three kernels per step, or auto (time both on the running "
                             "network and keep the faster); the spikes are the same")
        _cuda_option_arg(mp)
        mp.set_defaults(func=cmd_run)
    _model_subparsers(p, "Simulate", run_opts)

    p = sub.add_parser("info", help="version, PyCUDA, GPU, nvcc and usable backends",
                       description="Report the pyproc version, whether PyCUDA imports (and why "
                                   "not), the GPUs (name, memory, compute capability, driver), "
                                   "nvcc, and which backends are usable on this machine.",
                       formatter_class=_Formatter)
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.set_defaults(func=cmd_info)

    p = sub.add_parser("plan", help="memory and launch plan of a model (pyproc.plan)",
                       description="Build and compile MODEL and print pyproc.plan.report "
                                   "(memory per buffer, launch shapes); nothing is simulated.",
                       formatter_class=_Formatter)

    def plan_opts(mp):
        mp.add_argument("--seed", type=seed_type, default=DEFAULT_SEED, metavar="S",
                        help="seed, in [0, 2^32)")
        mp.add_argument("--gpu-memory", type=positive_float, default=None, metavar="GIB",
                        help="say whether the model fits a GPU of this many GiB (default: "
                             "the memory of this machine's first GPU, if it has one)")
        mp.set_defaults(func=cmd_plan)
    _model_subparsers(p, "Plan", plan_opts)

    for name, helptext in (("validate", "compare a model's statistics and backends against "
                                        "references (pyproc.validate)"),
                           ("bench", "time simulations (pyproc.bench)")):
        mod, why = (None, None)
        if command == name:
            mod, why = _optional_module(f"pyproc.{name}")
        p = sub.add_parser(name, help=helptext, description=helptext + (
            f". Not available: {why}" if why else ""), formatter_class=_Formatter,
            conflict_handler="resolve")
        p.set_defaults(func=_optional_command(name), optional_missing=why)

        def opts(mp, mod=mod, name=name, why=why):
            _shared_options(mp, out_default="runs/validate-MODEL-YYYYmmdd-HHMMSS"
                            if name == "validate" else "bench-results/YYYYmmdd-HHMMSS")
            if mod is not None and hasattr(mod, "add_arguments"):
                if name == "validate":          # per model: its own options only
                    mod.add_arguments(mp, model=mp.prog.split()[-1])
                else:
                    mod.add_arguments(mp)
            if name == "validate":
                _cuda_option_arg(mp)
            mp.set_defaults(func=_optional_command(name), optional_missing=why)
        if name == "validate":
            _model_subparsers(p, "Validate", opts)
        else:
            opts(p)
    return parser


# -- commands ----------------------------------------------------------------------------
class _Fail(Exception):
    """A one-line error for the user; exit status ``code``."""

    def __init__(self, message: str, code: int = EXIT_USAGE):
        super().__init__(message)
        self.code = code


def _say(args, *text) -> None:
    if not getattr(args, "quiet", False):
        print(*text, flush=True)


def _prepare_model(args):
    """(builder, kwargs) for args.model, or _Fail."""
    fn, why = _builder(args.model)
    if fn is None:
        raise _Fail(why)
    return fn, _model_kwargs(args._parser, args, fn)


def _versions() -> Dict[str, str]:
    from . import __version__
    v = {"pyproc": __version__, "python": platform.python_version(),
         "platform": platform.platform()}
    for mod in ("numpy", "scipy"):
        try:
            v[mod] = importlib.import_module(mod).__version__
        except Exception:  # version report only
            v[mod] = None
    return v


def _git_commit() -> Optional[str]:
    return git_commit()


class _StopOnSigint:
    """While active, the first Ctrl-C asks the run to stop at the next step boundary; a
    second one aborts at once (KeyboardInterrupt).  The previous handler is restored on exit.
    Outside the main thread (no signals there) it does nothing."""

    def __init__(self, quiet: bool):
        self.quiet = quiet
        self.requested = False
        self._old = None

    def __call__(self) -> bool:
        return self.requested

    def _handler(self, signum, frame):
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True
        if not self.quiet:
            sys.stderr.write("\npyproc: Ctrl-C: stopping at the next step, saving what was "
                             "recorded (Ctrl-C again aborts without saving)\n")
            sys.stderr.flush()

    def __enter__(self):
        try:
            self._old = signal.signal(signal.SIGINT, self._handler)
        except ValueError:  # not the main thread
            self._old = None
        return self

    def __exit__(self, *exc):
        if self._old is not None:
            signal.signal(signal.SIGINT, self._old)
        return False


def _unwritable(out: str) -> Optional[str]:
    """Why ``out`` cannot become an output directory (checked before any work), or None.
    Nothing is created here, so a run that fails early leaves no empty directory."""
    if os.path.exists(out):
        if not os.path.isdir(out):
            return f"{out!r} exists and is not a directory"
        return None if os.access(out, os.W_OK | os.X_OK) else f"directory {out!r} is not writable"
    parent = os.path.dirname(os.path.abspath(out))
    while not os.path.exists(parent):
        parent = os.path.dirname(parent)
    if not os.path.isdir(parent):
        return f"cannot create {out!r}: {parent!r} is not a directory"
    if not os.access(parent, os.W_OK | os.X_OK):
        return f"cannot create {out!r}: {parent!r} is not writable"
    # os.access says yes for root and for file systems such as /proc: try it, and take
    # away what the try made
    try:
        os.makedirs(out)
    except OSError as e:
        return f"cannot create {out!r}: {e.strerror or e}"
    d = os.path.abspath(out)
    while d != parent:
        os.rmdir(d)
        d = os.path.dirname(d)
    return None


def _effective_options(fn, kwargs) -> Dict[str, object]:
    """The model options a run used: the signature's defaults, the given ones, and
    k_scale resolved where its default (None) means 'the same as scale'."""
    opts = {**{k: v for k, v in _signature_defaults(fn).items() if k != "seed"}, **kwargs}
    if "k_scale" in opts and opts["k_scale"] is None and "scale" in opts:
        opts["k_scale"] = opts["scale"]
    return opts


def _silent_sources(cnet, duration: float) -> List[Tuple[str, float]]:
    """(name, first possible spike in ms) of every PoissonSource or SpikeSourceArray
    population that cannot spike in a run of ``duration`` ms (a stimulus set after it)."""
    from .compile import POP_ARRAY, POP_SOURCE
    steps = int(round(duration / cnet.dt))
    out = []
    for name, p in zip(cnet.pop_names, cnet.pops):
        if steps <= 0 or int(p["kind"]) not in (POP_ARRAY, POP_SOURCE):
            continue
        if int(p["kind"]) == POP_SOURCE:
            first = int(p["src_start"]) if int(p["src_stop"]) > int(p["src_start"]) else None
        else:
            off, n = int(p["poisson_offset"]), 1 if int(p["src_p"]) else int(p["n"])
            st = cnet.poisson_tables[off + n + 1:off + int(p["poisson_len"])]
            first = int(st.min()) if st.size else None
        if first is None or first >= steps:
            out.append((name, math.inf if first is None else (first + 1) * cnet.dt))
    return out


def _duration_problem(duration: float, dt: float) -> Optional[str]:
    """Why ``duration`` ms cannot be simulated with steps of ``dt`` ms, or None: it must be
    a whole number of steps, and a duration > 0 must be at least one step."""
    steps = round(duration / dt)
    if abs(steps * dt - duration) > 1e-9 * max(dt, duration):
        return f"{duration:g} ms is not a whole number of steps of dt = {dt:g} ms"
    if duration > 0 and steps == 0:
        return (f"{duration:g} ms rounds to 0 steps of dt = {dt:g} ms (give 0 or a whole "
                f"number of steps)")
    return None


def _record_state(args, net) -> None:
    """--record-state: the variables of the first --state-neurons neurons of every LIF
    population (refusals as usage errors naming the option)."""
    from .errors import ModelError
    from .network import LIF
    given = [f for f in ("--state-neurons", "--state-interval")
             if _raw_value(args._argv, (f,)) is not None]
    if args.record_state is None:
        if given:
            args._parser.error(f"argument {given[0]}: needs --record-state")
        return
    for name, pop in net.populations.items():
        if isinstance(pop.params, LIF):
            try:
                net.record_state(name, args.record_state,
                                 neurons=range(min(args.state_neurons, pop.size)),
                                 interval=args.state_interval)
            except ModelError as e:
                flag = "--state-interval" if "interval" in str(e) else "--record-state"
                args._parser.error(f"argument {flag}: {e}")


def _checkpoint_paths(args, out: str) -> None:
    """--checkpoint's folder must exist (or be --out) and --resume's file, before work."""
    if args.checkpoint:
        path = os.path.abspath(args.checkpoint)
        folder = os.path.dirname(path)
        if os.path.isdir(path) or not (os.path.isdir(folder) or folder == os.path.abspath(out)):
            args._parser.error(f"argument --checkpoint: {args.checkpoint!r} is a directory, "
                               f"or its folder does not exist")
        if os.path.isdir(folder) and not os.access(folder, os.W_OK):
            args._parser.error(f"argument --checkpoint: cannot write in {folder!r}")
    if args.resume and not os.path.isfile(args.resume):
        args._parser.error(f"argument --resume: no such file {args.resume!r}")


def _resume(args, sim) -> float:
    """--resume: load the checkpoint into ``sim`` (refusals as argument errors); returns
    the model ms still to run up to --duration (all of it without --resume)."""
    from .errors import ModelError
    if not args.resume:
        return args.duration
    try:
        sim.restore(args.resume)
    except ModelError as e:
        hint = (" (the same model options, --seed, --record-state, --state-neurons and "
                "--state-interval as the run that wrote it)" if "another network" in str(e)
                else "")
        args._parser.error(f"argument --resume: {e}{hint}")
    args._resumed_at, args._resumed_wall = sim.t, sim.wall_run
    left = round((args.duration - sim.t) / sim.cnet.dt)
    if left < 0:
        args._parser.error(f"argument --duration: {args.duration:g} ms is before the "
                           f"checkpoint's {sim.t:g} ms (--duration is the whole run's)")
    return left * sim.cnet.dt


def cmd_run(args) -> int:
    from .compile import compile_network
    from .network import LIF
    from .simulation import Simulation

    fn, kwargs = _prepare_model(args)
    out = args.out or os.path.join(
        "runs", f"{args.model}-{datetime.datetime.now().strftime('%Y%m%d-%H%M%S')}")
    why = _unwritable(out)
    if why:
        args._parser.error(f"argument --out: {why}")
    _checkpoint_paths(args, out)

    started = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    t0 = time.perf_counter()
    net = _build_model(args, fn, kwargs)
    _record_state(args, net)
    t_build = time.perf_counter() - t0
    cnet = compile_network(net)
    t_compile = time.perf_counter() - t0 - t_build
    why = _duration_problem(args.duration, cnet.dt)
    if why:
        args._parser.error(f"argument --duration: {why}")
    for name, first_ms in _silent_sources(cnet, args.duration):
        warnings.warn(f"population {name!r} emits nothing in this run: " + (
            "it has no spike times or an empty window" if first_ms == math.inf else
            f"its first spike could come at {first_ms:g} ms, after the run's "
            f"{args.duration:g} ms"))
    try:
        loop = getattr(args, "cuda_loop", "auto")
        if loop != "auto" and args.backend != "cuda":
            args._parser.error(f"argument --cuda-loop: {loop} needs the CUDA backend "
                               f"(the backend is {args.backend})")
        cuda_opts = dict(getattr(args, "cuda_option", None) or [])   # main() checked the backend
        opts = {} if args.backend != "cuda" else {
            "persistent": {"auto": "auto", "persistent": True, "graph": False}[loop],
            **cuda_opts}
        sim = Simulation(cnet, backend=args.backend, connectivity=args.connectivity, **opts)
    except ValueError as e:           # CUDA options that do not go together (or with the loop)
        if args.backend == "cuda" and getattr(args, "cuda_option", None):
            args._parser.error(f"argument --cuda-option: {e}")
        raise
    except BackendUnavailable as e:
        raise BackendUnavailable(f"argument --backend {args.backend}: {e}") from None
    except ImportError as e:
        if args.backend != "cuda":
            raise
        raise BackendUnavailable(f"argument --backend cuda: the CUDA backend cannot be loaded "
                                 f"({e}); see 'pyproc info'") from None
    duration = _resume(args, sim)           # refused before --out is made
    t_setup = time.perf_counter() - t0
    try:
        os.makedirs(out, exist_ok=True)
    except OSError as e:
        raise _Fail(f"argument --out: cannot create directory {out!r} ({e.strerror})") from None

    n_neurons = cnet.n_neurons
    from .progress import CHUNK_MS, Progress
    progress = Progress(cnet.dt, n_neurons, quiet=args.quiet,
                        spikes=lambda: getattr(sim.sim, "n_spikes_total", None),
                        offset_steps=int(sim.sim.step))
    chunk = max(1, int(round(CHUNK_MS / cnet.dt)))
    error = crash = ck_error = None
    with _StopOnSigint(args.quiet) as stop:
        _say(args, f"pyproc run {args.model}: {n_neurons} neurons, {len(cnet.projs)} "
                   f"projections, {args.duration:g} ms on {args.backend}/{args.connectivity}, "
                   f"seed {args.seed}" + (f", from {sim.t:g} ms ({args.resume})"
                                          if args.resume else "")
                   + " (Ctrl-C stops early and saves)")
        try:
            sim.run(duration, progress=progress, chunk_steps=chunk, should_stop=stop)
        except OverflowDetected as e:
            error = f"{type(e).__name__}: {e}"
        except Exception as e:  # a backend failure: save what was recorded, then re-raise
            crash, error = e, f"{type(e).__name__}: {e}"
        finally:
            progress.close()
            if args.checkpoint and error is None and sim.consistent:   # done, or stopped
                try:                                       # between steps by Ctrl-C
                    sim.checkpoint(args.checkpoint)
                except Exception as e:   # disk full...: the results are still saved below
                    ck_error = f"{type(e).__name__}: {e}"
            close = getattr(sim.sim, "close", None)
            if close is not None:  # frees the GPU context and buffers (CUDA backend)
                try:
                    close()
                except Exception:
                    if error is None:
                        raise
    if error:
        sim.interrupted = True
    resumed_at = getattr(args, "_resumed_at", None)
    res = sim.results()
    keep = res.times <= res.duration + 0.5 * res.dt   # spikes of a step cut short by an error
    if not keep.all():
        res.times, res.senders = res.times[keep], res.senders[keep]
    model_s = res.duration * 1e-3
    res.meta.update({
        "partial": bool(sim.interrupted),
        "stopped_by": ("error" if crash else "overflow") if error else (
            "ctrl-c" if stop.requested and sim.interrupted else None),
        "error": error,
        "model": args.model,
        "model_options": _effective_options(fn, kwargs),
        # constant input per population (a model's DC: the input a down-scaled model
        # lost, the areas left out): what the run added besides the synapses
        "I_e_pA": {name: float(p.params.I_e) for name, p in net.populations.items()
                   if isinstance(p.params, LIF)},
        # Poisson inputs per population (K inputs at rate_Hz, weight_pA each), in order
        "poisson_inputs": {name: [{"rate_Hz": i.rate, "K": i.K, "weight_pA": i.weight}
                                  for i in inputs] for name, inputs in net.poisson.items()},
        # step currents (add_dc, add_step_current): pA from start_ms to stop_ms (null: no
        # end), in call order; they add up
        "step_currents": {name: [{"amplitude_pA": d.amplitude, "start_ms": d.start,
                                  "stop_ms": None if d.stop == math.inf else d.stop}
                                 for d in ds] for name, ds in net.dc.items()},
        "duration_requested_ms": args.duration,
        "resumed_from": None if not args.resume else {"checkpoint": args.resume,
                                                      "at_ms": resumed_at},
        "checkpoint": (None if not args.checkpoint or error is not None else
                       f"not written: {ck_error}" if ck_error else args.checkpoint),
        "wall_run_before_resume_s": getattr(args, "_resumed_wall", None),
        "steps": int(sim.sim.step),
        "neurons": n_neurons,
        # drawn per pair for pairwise_bernoulli: then the expected count
        **dict(zip(("synapses", "synapses_exact"), cnet.synapse_count())),
        "versions": _versions(),
        "git_commit": _git_commit(),
        "command": "pyproc " + " ".join(args._argv),
        "started_utc": started,
        "wall_build_s": t_build,
        "wall_compile_s": t_compile,
        "wall_setup_s": t_setup,
        "wall_run_s": sim.wall_run,
        "wall_per_model_s": sim.wall_run / model_s if model_s > 0 else None,
    })
    plots = []
    if args.no_plots:
        res.meta["plots"] = "not requested (--no-plots)"
    else:
        try:
            plots = res.save_plots(out)
            if res.state:
                plots.append(res.save_state_plot(out))
            res.meta["plots"] = [os.path.basename(p) for p in plots]
        except ImportError:
            res.meta["plots"] = ("not written: matplotlib is not installed "
                                 "(pip install 'pyproc[plot]')")
    written = {os.path.basename(p) for p in plots}
    remove_stale(os.path.join(out, fn) for fn in ("raster.png", "rates.png", "state.png")
                 if fn not in written)
    res.save(out)

    if not args.quiet:
        counts, rates = res.spike_counts(), res.rates()
        width = max(10, *(len(n) for n in res.pop_names))
        print(f"{'population':<{width}} {'neurons':>9} {'spikes':>10} {'rate (Hz)':>10}")
        for i, name in enumerate(res.pop_names):
            r = "-" if not res.recorded[i] else f"{rates[i]:.3f}"
            print(f"{name:<{width}} {int(res.pop_sizes[i]):>9} {int(counts[i]):>10} {r:>10}")
        before = getattr(args, "_resumed_wall", None)
        print(f"model time {res.duration:g} ms in {sim.wall_run:.2f} s wall (setup "
              f"{t_setup:.2f} s" + (f"; {before:.2f} s of it before the checkpoint"
                                     if before is not None else "") + ")"
              + (f", {res.meta['wall_per_model_s']:.3g} s per model second"
                 if model_s > 0 else ""))
        files = (["spikes.npz", "summary.json"] + (["state.npz"] if res.state else [])
                 + [os.path.basename(p) for p in plots])
        print(f"wrote {', '.join(os.path.join(out, f) for f in files)}")
        if not plots and not args.no_plots:
            print(f"note: {res.meta['plots']}")
        if sim.interrupted:
            print(f"PARTIAL: stopped at {res.duration:g} of {args.duration:g} ms "
                  f"({res.meta['stopped_by']}); summary.json has \"partial\": true")
    if crash is not None:
        sys.stderr.write(f"pyproc: the {res.duration:g} ms recorded before the failure are "
                         f"saved in {out}, marked partial\n")
        raise crash
    if error:
        raise _Fail(f"{error} (the {res.duration:g} ms recorded before it are saved in {out}, "
                    f"marked partial)", EXIT_OVERFLOW)
    if ck_error:
        raise _Fail(f"argument --checkpoint: not written ({ck_error}); the run's results are "
                    f"saved in {out}", EXIT_FAILED)
    return EXIT_INTERRUPTED if sim.interrupted else EXIT_OK


def cmd_plan(args) -> int:
    from .compile import compile_network
    mod, why = _optional_module("pyproc.plan")
    if mod is None or not hasattr(mod, "report"):
        raise _Fail(f"'pyproc plan' is not available yet: {why or 'pyproc.plan has no report()'}")
    fn, kwargs = _prepare_model(args)
    cnet = compile_network(_build_model(args, fn, kwargs))
    gpu_bytes, gpu_name, note = None, None, None
    if args.gpu_memory is not None:
        gpu_bytes, gpu_name = int(args.gpu_memory * 2 ** 30), "--gpu-memory"
    else:
        gpus = machine_info()["gpus"]
        if gpus:
            gpu_bytes, gpu_name = int(gpus[0]["memory_GiB"] * 2 ** 30), gpus[0]["name"]
        else:
            note = ("  fit              not checked: no GPU here (--gpu-memory GIB compares "
                    "with a GPU of that size)")
    out = mod.report(cnet, gpu_bytes=gpu_bytes, gpu_name=gpu_name)
    if note and isinstance(out, str):
        out += "\n" + note
    if isinstance(out, str):
        print(out)
    elif out is not None:
        print(json.dumps(out, indent=2, default=str))
    return EXIT_OK


def _optional_command(name: str) -> Callable:
    def run(args) -> int:
        if args.optional_missing:
            raise _Fail(f"'pyproc {name}' is not available yet: {args.optional_missing}")
        mod = importlib.import_module(f"pyproc.{name}")
        if getattr(args, "model", None):
            fn, kwargs = _prepare_model(args)
            args.model_options = kwargs
            args.build_model = lambda: _build_model(args, fn, kwargs)
        code = mod.main(args)
        return EXIT_OK if code is None else int(code)
    return run


# -- info --------------------------------------------------------------------------------
def machine_info() -> Dict[str, object]:
    """What ``pyproc info`` reports, as a dict."""
    info: Dict[str, object] = {"versions": _versions(), "git_commit": _git_commit()}
    gpus: List[Dict[str, object]] = []
    try:
        import pycuda
        import pycuda.driver as drv
        info["pycuda"] = {"importable": True, "version": getattr(pycuda, "VERSION_TEXT", None)}
    except Exception as e:  # ImportError, or the CUDA driver library failing to load
        drv = None
        info["pycuda"] = {"importable": False,
                          "reason": f"{type(e).__name__}: {e}; pip install 'pyproc[cuda]'"}
    gpu_reason = None
    if drv is not None:
        try:
            drv.init()
            v = drv.get_driver_version()
            info["driver"] = {"cuda_version": f"{v // 1000}.{(v % 1000) // 10}"}
            for i in range(drv.Device.count()):
                d = drv.Device(i)
                cc = d.compute_capability()
                gpus.append({"index": i, "name": d.name(), "memory_GiB":
                             round(d.total_memory() / 2 ** 30, 2),
                             "compute_capability": f"{cc[0]}.{cc[1]}"})
            if not gpus:
                gpu_reason = "the CUDA driver reports no device"
        except Exception as e:  # driver present but unusable
            gpu_reason = f"CUDA driver unavailable ({type(e).__name__}: {e})"
    else:
        gpu_reason = "PyCUDA is not importable"
    info["gpus"] = gpus
    if gpu_reason:
        info["gpu_reason"] = gpu_reason
    nvcc = shutil.which("nvcc")
    nv = {"path": nvcc}
    if nvcc:
        try:
            r = subprocess.run([nvcc, "--version"], capture_output=True, text=True, timeout=20)
            lines = [ln for ln in r.stdout.splitlines() if ln.strip()]
            nv["version"] = next((ln for ln in lines if "release" in ln),
                                 lines[-1] if lines else None)
        except (OSError, subprocess.SubprocessError) as e:
            nv["version"] = f"unknown ({e})"
    info["nvcc"] = nv
    cuda_why = []
    if importlib.util.find_spec("pyproc.backends.cuda") is None:
        cuda_why.append("pyproc.backends.cuda is not part of this pyproc version yet")
    if not info["pycuda"]["importable"]:
        cuda_why.append("PyCUDA is not importable")
    elif not gpus:
        cuda_why.append(gpu_reason or "no GPU")
    if nvcc is None:
        cuda_why.append("nvcc is not on PATH (kernels are compiled at run time)")
    info["backends"] = {
        "cpu": {"usable": True, "connectivity": ["procedural", "stored"]},
        "cuda": {"usable": not cuda_why, "connectivity": ["procedural", "stored"]}
        if not cuda_why else {"usable": False, "reason": "; ".join(cuda_why)},
    }
    return info


def cmd_info(args) -> int:
    info = machine_info()
    if args.json:
        print(json.dumps(info, indent=2))
        return EXIT_OK
    v = info["versions"]
    print(f"pyproc      {v['pyproc']}" + (f" (git {info['git_commit']})" if info["git_commit"]
                                          else ""))
    print(f"python      {v['python']}, numpy {v['numpy']}, scipy {v['scipy']}")
    pc = info["pycuda"]
    print("pycuda      " + (f"{pc['version']}" if pc["importable"] else f"not importable: "
                                                                        f"{pc['reason']}"))
    if info.get("driver"):
        print(f"driver      CUDA {info['driver']['cuda_version']}")
    if info["gpus"]:
        for g in info["gpus"]:
            print(f"gpu {g['index']}       {g['name']}, {g['memory_GiB']} GiB, compute "
                  f"capability {g['compute_capability']}")
    else:
        print(f"gpu         none ({info.get('gpu_reason')})")
    nv = info["nvcc"]
    print("nvcc        " + (f"{nv['path']} ({nv.get('version')})" if nv["path"]
                            else "not found on PATH"))
    for name, b in info["backends"].items():
        print(f"backend     {name}: " + ("usable (" + ", ".join(b["connectivity"]) + ")"
                                        if b["usable"] else f"not usable: {b['reason']}"))
    return EXIT_OK


# -- entry point -------------------------------------------------------------------------
def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run the command line ``argv`` (default ``sys.argv[1:]``); returns the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser(argv)
    try:
        args, extra = parser.parse_known_args(argv)
        args._parser = _leaf_parser(parser, argv)
        if extra:   # said by the (sub)command that was given, which lists its options
            args._parser.error(f"unrecognized arguments: {' '.join(extra)}")
    except SystemExit as e:  # --help, --version, or a usage error already printed
        return e.code if isinstance(e.code, int) else EXIT_USAGE
    args._argv = argv
    if getattr(args, "backend", None) == "auto":
        args.backend = resolve_auto_backend(quiet=getattr(args, "quiet", False))
    try:
        if getattr(args, "cuda_option", None) and "cuda" not in (
                getattr(args, "backend", None), getattr(args, "reference_backend", None)):
            args._parser.error(f"argument --cuda-option: needs the CUDA backend (the backend "
                               f"is {args.backend})")
        _check_before_work(args)
        with warnings.catch_warnings():       # the library's warnings as one plain line
            warnings.showwarning = _show_warning
            return args.func(args)
    except KeyboardInterrupt:  # Ctrl-C outside a run (set-up), or a second Ctrl-C
        _error("interrupted")
        return EXIT_INTERRUPTED
    except BrokenPipeError:  # `pyproc ... | head`: stop quietly
        try:
            sys.stdout = open(os.devnull, "w")
        except OSError:
            pass
        return EXIT_OK
    except SystemExit as e:  # parser.error() from a late check (duration vs dt, --out)
        return e.code if isinstance(e.code, int) else EXIT_USAGE
    except _Fail as e:
        _error(str(e))
        return e.code
    except (ModelError, BackendUnavailable) as e:
        # the library says backend='cpu' (the Python API); here it is an option
        _error(str(e).replace("backend='cpu'", "--backend cpu"))
        return EXIT_USAGE
    except OverflowDetected as e:
        _error(f"{type(e).__name__}: {e}")
        return EXIT_OVERFLOW


def _check_before_work(args) -> None:
    """What ``validate`` and ``bench`` would otherwise find out only after minutes of work
    (``run`` checks the same at its start): an output directory that cannot be made, and a
    CUDA backend asked for by name on a machine where it is not usable."""
    if args.command not in ("validate", "bench"):
        return
    why = _unwritable(args.out) if getattr(args, "out", None) else None
    if why:
        args._parser.error(f"argument --out: {why}")
    named = [("--backend", getattr(args, "backend", None)),
             ("--reference-backend", getattr(args, "reference_backend", None))]
    if args.command == "bench":
        # cuda named in the list (`all` means: what is usable here, as before)
        raw = _raw_value(args._argv, ("--backends", "--backend"))
        named = [("--backends", "cuda" if raw is not None and
                  "cuda" in raw.replace(" ", "").split(",") else None)]
    flag = next((f for f, value in named if value == "cuda"), None)
    if flag is not None:                  # one look at the machine (it runs nvcc --version)
        cuda = machine_info()["backends"]["cuda"]
        if not cuda["usable"]:
            # the subcommand's own parser: "pyproc bench: error: ..." as its other errors
            args._parser.error(f"argument {flag} cuda: the CUDA backend is not usable here "
                               f"({cuda['reason']}); see 'pyproc info', or use the CPU "
                               f"backend ({flag} cpu)")


def _raw_value(argv: Sequence[str], flags: Sequence[str]) -> Optional[str]:
    """The text given last to any of ``flags`` (``--flag V`` or ``--flag=V``), or None."""
    value = None
    for i, a in enumerate(argv):
        name, eq, v = a.partition("=")
        if name in flags:
            value = v if eq else (argv[i + 1] if i + 1 < len(argv) else None)
    return value


def resolve_auto_backend(quiet: bool = False) -> str:
    """``--backend auto``: 'cuda' where that backend is usable here, else 'cpu' (said on
    stderr, with the reason, unless quiet)."""
    cuda = machine_info()["backends"]["cuda"]
    choice = "cuda" if cuda["usable"] else "cpu"
    if not quiet:
        why = "" if cuda["usable"] else f" (cuda not usable: {cuda['reason']})"
        sys.stderr.write(f"pyproc: --backend auto: {choice}{why}\n")
    return choice


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    sys.stderr.write(f"pyproc: warning: {' '.join(str(message).split())}\n")


def _error(message: str) -> None:
    one_line = " ".join(str(message).split())
    sys.stderr.write(f"pyproc: error: {one_line}\n")
    sys.stderr.flush()


def _leaf_parser(parser: argparse.ArgumentParser, argv: Sequence[str]) -> argparse.ArgumentParser:
    """The (sub)parser that owns the last subcommand in argv, for late errors with its prog."""
    p = parser
    while True:
        subs = [a for a in p._actions if isinstance(a, argparse._SubParsersAction)]
        if not subs:
            return p
        nxt = next((subs[0].choices[a] for a in argv if a in subs[0].choices), None)
        if nxt is None:
            return p
        p = nxt


if __name__ == "__main__":
    sys.exit(main())

"""validation/warm_kernels.py on a stand-in PyCUDA compiler (no PyCUDA here): every build
once, with pyproc.kernels' own compile call, each cache file renamed into the cache."""
import os
import sys
import types

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "validation"))


@pytest.fixture
def stub_compiler(monkeypatch, tmp_path):
    calls = []

    def compile(source, nvcc="nvcc", options=None, keep=False, no_extern_c=False,
                arch=None, code=None, cache_dir=None, include_dirs=None, target="cubin"):
        import hashlib
        if "FAIL_ME" in " ".join(options):
            raise RuntimeError("nvcc: error (stand-in)\nmore lines")
        calls.append((source, tuple(options), arch, tuple(include_dirs), no_extern_c,
                      cache_dir))
        key = hashlib.md5(repr((source, options, arch)).encode()).hexdigest()
        with open(os.path.join(cache_dir, key + ".cubin"), "wb") as f:
            f.write(b"cubin")
        return b"cubin"
    pkg, comp = types.ModuleType("pycuda"), types.ModuleType("pycuda.compiler")
    comp.compile = compile
    pkg.compiler = comp
    monkeypatch.setitem(sys.modules, "pycuda", pkg)
    monkeypatch.setitem(sys.modules, "pycuda.compiler", comp)
    monkeypatch.setenv("PYCUDA_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("PYCUDA_DISABLE_CACHE", raising=False)
    return calls


def test_warm_kernels_fills_the_cache(stub_compiler, tmp_path, capsys):
    import warm_kernels
    from pyproc.backends.cuda import (ONE_BLOCK_BUILD, SHARED_TABLES_BUILD, THROUGHPUT_BUILD,
                                      UNIT_MAP_BUILD)
    from pyproc.kernels import compile_options, kernel_dir, read_source
    jobs = warm_kernels.builds()
    assert len(jobs) == len({(s, tuple(sorted((d or {}).items()))) for s, d in jobs}) == 17
    persistent = [d or {} for s, d in jobs if s == "step_persistent.cu"]
    for d in ({}, SHARED_TABLES_BUILD, UNIT_MAP_BUILD, THROUGHPUT_BUILD, ONE_BLOCK_BUILD,
              {**SHARED_TABLES_BUILD, **UNIT_MAP_BUILD, "PP_PERSISTENT_MIN_BLOCKS": 2}):
        assert d in persistent
    assert ("propagate_procedural.cu", {"PP_FLAT_WALK": 0}) in jobs
    assert ("propagate_procedural.cu", {"PP_TILE_COMPACT": 0}) in jobs
    assert warm_kernels.main(["--arch", "sm_90", "--jobs", "1"]) == 0
    cache = tmp_path / "cache"
    assert len(stub_compiler) == 17 and len(os.listdir(cache)) == 17     # no .warm- left
    for (src, d), (source, opts, arch, inc, no_extern_c, own) in zip(jobs, stub_compiler):
        assert source == read_source(src) and list(opts) == compile_options(d)
        assert arch == "sm_90" and inc == (kernel_dir(),) and no_extern_c
        assert os.path.dirname(own) == str(cache)                 # its own folder there
    out = capsys.readouterr().out
    assert out.count(": ok (") == 17 and "17 builds for sm_90" in out


def test_warm_kernels_reports_a_failed_build(stub_compiler, tmp_path, monkeypatch, capsys):
    import warm_kernels
    monkeypatch.setattr(warm_kernels, "builds",
                        lambda: [("record.cu", None), ("record.cu", {"FAIL_ME": 1})])
    assert warm_kernels.main(["--arch", "sm_80", "--jobs", "1"]) == 0
    out = capsys.readouterr().out
    assert "record.cu {}: ok" in out
    assert "record.cu {'FAIL_ME': 1}: FAILED: nvcc: error (stand-in) (" in out
    assert os.listdir(tmp_path / "cache") and not any(
        f.startswith(".warm-") for f in os.listdir(tmp_path / "cache"))

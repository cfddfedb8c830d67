"""The NumPy structured dtypes mirror the C structs byte for byte."""
from pyproc.compile import POP_DTYPE, PROJ_DTYPE


def test_proj_struct_matches_header(shim):
    assert shim.shim_sizeof_proj() == PROJ_DTYPE.itemsize
    for i, field in enumerate(("rowlen_offset", "rule", "autapses", "d_max", "w_c0",
                              "gmul", "d_shift", "w_b")):
        assert shim.shim_offsetof_proj(i) == PROJ_DTYPE.fields[field][1], field


def test_pop_struct_matches_header(shim):
    assert shim.shim_sizeof_pop() == POP_DTYPE.itemsize
    for i, field in enumerate(("P11ex", "ref_steps", "poisson_w", "n_channels", "poisson_n",
                               "poisson_end", "poisson_channels", "kind", "src_start",
                               "src_stop", "dc_amp", "dc_start", "dc_stop")):
        assert shim.shim_offsetof_pop(i) == POP_DTYPE.fields[field][1], field

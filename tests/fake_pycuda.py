"""A fake ``pycuda`` for the CUDA backend's host-side tests without a GPU: a bounds-checked
fake device memory, NumPy emulations of the .cu kernels (reading their arguments by
position), a driver with a context stack, and graphs that record and replay launches.

The ``fake`` fixture installs it (tests/test_cuda_host.py, tests/test_bench.py import it)."""
from __future__ import annotations

import ctypes
import struct
import sys
import types

import numpy as np
import pytest

from pyproc import kernels as K
from pyproc.backends import cuda as CU
from pyproc.compile import POP_DTYPE, PROJ_DTYPE
from pyproc.connectivity import rows
from pyproc.neuron import array_spikes, i_e_at, lif_step, poisson_input, source_spikes
from pyproc.sampling import TABLES_LEN, sampler_tables

__all__ = ["FakeError", "Mem", "Alloc", "Emulator", "FakeDriver", "FakeFunction", "FakeGraphs",
           "FakeCooperative", "fake"]


# ---------------------------------------------------------------- fake device
class FakeError(Exception):
    pass


class Mem:
    def __init__(self):
        self.blocks = {}
        self.next = 1 << 20
        self.live = 0

    def alloc(self, n):
        if n <= 0:
            raise FakeError("cuMemAlloc(0)")
        base = self.next
        self.next += ((n + 511) // 512 + 1) * 512
        self.blocks[base] = np.zeros(n, np.uint8)
        self.live += n
        return Alloc(self, base)

    def raw(self, addr, nbytes):
        addr = int(addr)
        for base, b in self.blocks.items():
            if base <= addr < base + b.size or (nbytes == 0 and addr == base):
                off = addr - base
                assert off + nbytes <= b.size, f"access past the end of a {b.size}-byte buffer"
                return b[off:off + nbytes]
        raise AssertionError(f"bad device address {addr:#x}")

    def arr(self, addr, dtype, count):
        dtype = np.dtype(dtype)
        return self.raw(addr, dtype.itemsize * int(count)).view(dtype)


class Alloc:
    def __init__(self, mem, base):
        self.mem, self.base = mem, base

    def __int__(self):
        return self.base

    __index__ = __int__

    def free(self):
        b = self.mem.blocks.pop(self.base)
        self.mem.live -= b.size


def _unpack(fmt, args):
    """Check the argument tuple against the prepare() format like PyCUDA's struct pack."""
    struct.pack("@" + fmt, *[int(a) for a in args])
    return [int(a) for a in args]


class Emulator:
    """NumPy versions of the kernels, reading arguments by position."""

    def __init__(self, mem):
        self.mem = mem
        self.rng = np.random.default_rng(0)

    def ctrl(self, a):
        return self.mem.arr(a, K.CTRL_DTYPE, 1)

    def pp_neuron_lif_update(self, grid, a):
        m = self.mem
        blocks = m.arr(a[1], np.uint32, 2 * grid).reshape(-1, 2)
        n_pops = int(blocks[:, 0].max()) + 1
        pops = m.arr(a[0], POP_DTYPE, n_pops)
        flags = m.arr(a[2], np.uint32, n_pops)
        seed, spike_cap, rec_cap = a[4], a[11], a[13]
        ctrl = self.ctrl(a[14])
        t = int(ctrl["step"][0])
        N = int(pops["offset"][-1] + pops["n"][-1])
        V, Iex, Iin = (m.arr(a[i], np.float32, N) for i in (5, 6, 7))
        ref = m.arr(a[8], np.int32, N)
        ring_len = max(int(p["ring_offset"]) + int(p["ring_slots"]) * int(p["n_channels"])
                       * int(p["n"]) for p in pops)
        ring = m.arr(a[9], np.int32, ring_len)
        new = []
        for pi, first in blocks:
            p = pops[pi]
            n = int(p["n"])
            loc = np.arange(first, min(first + 256, n))
            tabs = m.arr(a[3], np.uint32, int(p["poisson_offset"]) + int(p["poisson_len"]))
            base = int(p["ring_offset"]) + (t % int(p["ring_slots"])) * int(p["n_channels"]) * n
            acc = np.zeros((2, loc.size), np.int64)
            for ch in range(int(p["n_channels"])):
                acc[ch] = ring[base + ch * n + loc]
                ring[base + ch * n + loc] = 0
            if p["poisson_len"]:
                pex, pin = poisson_input(p, tabs, seed, t)
                acc[0] += pex[loc]
                acc[1] += pin[loc]
            if np.abs(acc).max(initial=0) > 2 ** 31 - 1:
                c = ctrl[0]
                if c["err_code"] == 0:
                    c["err_code"], c["err_step"] = 1, t
                    c["err_info"] = int(p["offset"]) + int(loc[np.argmax(np.abs(acc).max(0))])
            g = int(p["offset"]) + loc
            v, ie, ii, r = V[g].copy(), Iex[g].copy(), Iin[g].copy(), ref[g].copy()
            if p["kind"] == 1:               # a Poisson source: no LIF state
                spk = source_spikes(p, seed, t)[loc]
            elif p["kind"] == 2:             # a spike array: its cursor in ref
                cur = np.zeros(n, np.int32)
                cur[loc] = r
                spk = array_spikes(p, tabs, t, cur)[loc]
                ref[g] = cur[loc]
            else:
                spk = lif_step(v, ie, ii, r, acc[0], acc[1], p, i_e_at(p, t))
                V[g], Iex[g], Iin[g], ref[g] = v, ie, ii, r
            for l in loc[spk]:
                new.append((int(pi), int(l), bool(flags[pi] & 1), int(p["offset"]) + int(l)))
        self.rng.shuffle(new)            # atomics give no order
        spikes = m.arr(a[10], np.uint32, 2 * spike_cap).reshape(-1, 2)
        c = ctrl[0]
        for pi, l, rec, g in new:
            k = int(c["n_spk"])
            spikes[k] = (pi, l)
            c["n_spk"] = k + 1
            if rec:
                q = int(c["n_rec"])
                if q < rec_cap:
                    m.arr(a[12], np.uint32, q + 1)[q] = g
                else:
                    c["rec_lost"] += 1
                c["n_rec"] = q + 1

    def _deliver(self, a_pops, a_ring, ring_size, t, pj, tgt, w, d, c):
        n_pops = int(pj["tgt_pop"]) + 1
        tp = self.mem.arr(a_pops, POP_DTYPE, n_pops)[pj["tgt_pop"]]
        ring = self.mem.arr(a_ring, np.int32, ring_size)
        slot = (t + d.astype(np.int64)) % int(tp["ring_slots"])
        idx = (int(tp["ring_offset"]) + (slot * int(tp["n_channels"]) + int(pj["channel"]))
               * int(tp["n"]) + tgt.astype(np.int64))
        acc = ring.astype(np.int64)
        np.add.at(acc, idx, w.astype(np.int64))
        ring[:] = acc.astype(np.int32)
        c["n_events"] += tgt.size

    def _items(self, a_out_ptr, a_out_idx, max_out, a_spikes, c):
        ns = int(c["n_spk"])
        spikes = self.mem.arr(a_spikes, np.uint32, 2 * ns).reshape(-1, 2)
        for pop, pre in spikes:
            op = self.mem.arr(a_out_ptr, np.uint32, pop + 2)
            n_out = int(op[pop + 1] - op[pop])
            assert n_out <= max_out
            for k in self.mem.arr(a_out_idx, np.uint32, op[pop + 1])[op[pop]:op[pop + 1]]:
                yield int(k), int(pre)

    def _cnet(self, a_projs, k, a_rowlen, seed):
        projs = self.mem.arr(a_projs, PROJ_DTYPE, k + 1)
        pj = projs[k]
        ns = types.SimpleNamespace(projs=projs, seed=seed)
        ns.rowlen_of = lambda kk: self.mem.arr(a_rowlen, np.uint32, int(pj["rowlen_offset"])
                                               + int(pj["n_pre"]))[int(pj["rowlen_offset"]):]
        return ns, pj

    def _check_tables(self, a_tab):
        """The sampler tables on the device are sampling.sampler_tables(), bit for bit
        (rows() below uses the host copy, so this is what makes the emulation exact)."""
        dev = self.mem.arr(a_tab, np.int32, TABLES_LEN)
        assert np.array_equal(dev, sampler_tables()), \
            "sampler_tables buffer differs from pyproc.sampling.sampler_tables()"

    def pp_propagate_procedural_spikes(self, grid, a):
        # projs, pops, rowlen, sampler_tables, out_ptr, out_idx, max_out, spikes, seed,
        # ring, ring_size, ctrl
        self._check_tables(a[3])
        c = self.ctrl(a[11])[0]
        t = int(c["step"])
        for k, pre in self._items(a[4], a[5], a[6], a[7], c):
            cn, pj = self._cnet(a[0], k, a[2], a[8])
            _, tgt, w, d = rows(cn, k, [pre])
            self._deliver(a[1], a[9], a[10], t, pj, tgt, w, d, c)

    def pp_propagate_procedural_tiles(self, grid, a):
        # projs, pops, sampler_tables, tiles, n_tiles, spikes, seed, ring, ring_size, ctrl:
        # every spike's whole row of every tiled projection it is the source of (the tile
        # table must cover each tiled projection's segments exactly once)
        self._check_tables(a[2])
        c = self.ctrl(a[9])[0]
        t, ns = int(c["step"]), int(c["n_spk"])
        tiles = self.mem.arr(a[3], np.uint32, 2 * a[4]).reshape(-1, 2)
        ks = sorted(set(int(k) for k in tiles[:, 0]))
        projs = self.mem.arr(a[0], PROJ_DTYPE, max(ks) + 1 if ks else 0)
        for k in ks:
            pj = projs[k]
            assert pj["rule"] == 1 and pj["d_kind"] == 0 and pj["seg_width"] <= 256
            got = sorted(int(j) for j in tiles[tiles[:, 0] == k, 1])
            assert got == list(range(-(-int(pj["n_seg"]) // 32))), "tile table incomplete"
        spikes = self.mem.arr(a[5], np.uint32, 2 * ns).reshape(-1, 2)
        for pop, pre in spikes:
            for k in ks:
                if int(projs[k]["src_pop"]) == int(pop):
                    cn, pj = self._cnet(a[0], k, a[0], a[6])   # no rowlen: bernoulli only
                    _, tgt, w, d = rows(cn, k, [int(pre)])
                    self._deliver(a[1], a[7], a[8], t, pj, tgt, w, d, c)

    def pp_propagate_stored_spikes(self, grid, a):
        m = self.mem
        c = self.ctrl(a[13])[0]
        t = int(c["step"])
        for k, pre in self._items(a[2], a[3], a[4], a[5], c):
            pj = m.arr(a[0], PROJ_DTYPE, k + 1)[k]
            row = int(m.arr(a[6], np.uint64, k + 1)[k]) + pre
            e0, e1 = m.arr(a[7], np.int64, row + 2)[row:row + 2]
            sl = slice(int(e0), int(e1))
            self._deliver(a[1], a[11], a[12], t, pj, m.arr(a[8], np.uint32, e1)[sl],
                          m.arr(a[9], np.int32, e1)[sl], m.arr(a[10], np.uint16, e1)[sl], c)

    def pp_record_advance(self, grid, a):
        c = self.ctrl(a[0])[0]
        k = int(c["rec_steps"])
        assert k < a[2], "record chunk overrun"
        self.mem.arr(a[1], np.uint32, k + 1)[k] = c["n_rec"]
        c["rec_steps"] = k + 1
        c["n_spikes"] += c["n_spk"]
        c["n_spk"] = 0
        c["step"] += 1

    def pp_record_state(self, grid, a):
        # src, idx, n, out: out[i] = src[idx[i]] (grid * 256 threads must cover n)
        n = int(a[2])
        assert grid * 256 >= n, "pp_record_state: grid does not cover n"
        idx = self.mem.arr(a[1], np.uint32, n).astype(np.int64)
        src = self.mem.arr(a[0], np.float32, int(idx.max()) + 1 if n else 0)
        self.mem.arr(a[3], np.float32, n)[:] = src[idx]

    def _rows(self, a):
        n_projs = a[1]
        rb = self.mem.arr(a[2], np.uint64, n_projs + 1)
        for k in range(n_projs):
            for pre in range(int(rb[k + 1] - rb[k])):
                yield int(rb[k]) + pre, k, pre

    def pp_build_csr_count(self, grid, a):
        # projs, n_projs, row_base, rowlen, sampler_tables, seed, indptr, ctrl
        self._check_tables(a[4])
        n_rows = int(self.mem.arr(a[2], np.uint64, a[1] + 1)[-1])
        indptr = self.mem.arr(a[6], np.int64, n_rows + 1)
        for r, k, pre in self._rows(a):
            indptr[r + 1] = rows(self._cnet(a[0], k, a[3], a[5])[0], k, [pre])[1].size

    def pp_build_csr_fill(self, grid, a):
        # projs, n_projs, row_base, rowlen, sampler_tables, seed, indptr, n_syn_cap,
        # targets, weights, delays, ctrl
        self._check_tables(a[4])
        n_rows = int(self.mem.arr(a[2], np.uint64, a[1] + 1)[-1])
        indptr = self.mem.arr(a[6], np.int64, n_rows + 1)
        cap = a[7]
        tg, w, d = (self.mem.arr(a[i], dt, cap) for i, dt in
                    ((8, np.uint32), (9, np.int32), (10, np.uint16)))
        for r, k, pre in self._rows(a):
            _, t1, w1, d1 = rows(self._cnet(a[0], k, a[3], a[5])[0], k, [pre])
            sl = slice(int(indptr[r]), int(indptr[r + 1]))
            tg[sl], w[sl], d[sl] = t1, w1, d1


class FakeDriver:
    """Just enough of pycuda.driver for pyproc.backends.cuda."""

    def __init__(self, free_bytes=2 ** 34):
        self.mem = Mem()
        self.emu = Emulator(self.mem)
        self.stack = []
        self.free_bytes = free_bytes
        self.capturing = None
        self.launches = 0
        self.dtod_copies = 0
        drv = self
        self.Error = FakeError
        self.device_attribute = types.SimpleNamespace(
            MULTIPROCESSOR_COUNT="sm", MAX_SHARED_MEMORY_PER_BLOCK_OPTIN="smem_optin",
            MAX_SHARED_MEMORY_PER_MULTIPROCESSOR="smem_sm")

        class Context:
            def __init__(self):
                self.handle = id(self)

            @staticmethod
            def get_current():
                return drv.stack[-1] if drv.stack else None

            @staticmethod
            def get_device():
                return Device(0)

            @staticmethod
            def pop():
                assert drv.stack, "pop of an empty context stack"
                drv.stack.pop()

            def push(self):
                drv.stack.append(self)

            def detach(self):
                self.detached = True

        class Device:
            def __init__(self, i):
                self.i = i

            @staticmethod
            def count():
                return 1

            def make_context(self):
                c = Context()
                drv.stack.append(c)
                drv.made.append(c)
                return c

            def name(self):
                return "Fake GPU"

            def get_attribute(self, a):
                # an H100/H200's 227 KiB per block and 228 KiB per SM; 4 SMs
                return {"smem_optin": 227 * 1024, "smem_sm": 228 * 1024}.get(a, 4)

            def compute_capability(self):
                return (9, 0)

        class Stream:
            handle = 0xabc

            def synchronize(self):
                pass

        class Event:
            def record(self, stream=None):
                self.at = drv.launches

            def time_since(self, other):
                return 0.5 * (self.at - other.at)       # ms: 0.5 per launch, arbitrary

        self.Context, self.Device, self.Stream, self.Event = Context, Device, Stream, Event
        self.made = []

    def init(self):
        pass

    def mem_get_info(self):
        return self.free_bytes, 2 ** 36

    def mem_alloc(self, n):
        assert self.stack, "allocation without a current context"
        return self.mem.alloc(n)

    def memcpy_htod(self, dest, src):
        src = np.ascontiguousarray(src)
        self.mem.raw(dest, src.nbytes)[:] = src.view(np.uint8).ravel()

    def memcpy_dtoh(self, dest, src):
        dest.view(np.uint8).ravel()[:] = self.mem.raw(src, dest.nbytes)

    def memcpy_dtod_async(self, dest, src, size, stream=None):
        assert self.capturing is None, "a copy inside a graph capture"
        self.dtod_copies += 1
        self.mem.raw(dest, size)[:] = self.mem.raw(src, size).copy()

    def memset_d8(self, dest, val, n):
        self.mem.raw(dest, n)[:] = val

    def memset_d32(self, dest, val, n):
        self.mem.raw(dest, 4 * n).view(np.uint32)[:] = val

    # the convenience calls of the pyproc.kernels example
    def to_device(self, arr):
        arr = np.ascontiguousarray(arr)
        a = self.mem_alloc(arr.nbytes)
        self.memcpy_htod(a, arr)
        return a

    def from_device(self, src, shape, dtype):
        out = np.empty(shape, dtype)
        self.memcpy_dtoh(out, src)
        return out

    def from_device_like(self, src, like):
        return self.from_device(src, like.shape, like.dtype)

    def launch(self, name, fmt, grid, block, args, shared=0, defines=None):
        assert self.stack, "launch without a current context"
        assert block[0] % 32 == 0 or name == "pp_record_advance"
        a = _unpack(fmt, args)
        if self.capturing is not None:
            assert defines is None, "graphs capture the default build"
            self.capturing.append((name, grid, block, a, shared))
        else:
            self.launches += 1
            self.run_kernel(name, grid, block, a, shared, defines=defines)

    def run_kernel(self, name, grid, block, a, shared, defines=None):
        """One launch: the NumPy emulation, the same for every variant build (``defines``;
        tests/simt.py replaces it by the kernel source, built with them)."""
        getattr(self.emu, name)(grid[0], a)


class FakeFunction:
    def __init__(self, drv, name, defines=None):
        self.drv, self.name, self.num_regs, self.fmt = drv, name, 64, None
        if name == "pp_propagate_procedural_tiles":      # as ptxas builds it for sm_90
            self.num_regs, self.shared_size_bytes = 48, 128
        self.defines = defines or None              # -D macros of a variant build

    def prepare(self, fmt):
        self.fmt = fmt
        return self

    def prepared_call(self, grid, block, *args, shared_size=0):
        self.prepared_async_call(grid, block, None, *args, shared_size=shared_size)

    def prepared_async_call(self, grid, block, stream, *args, shared_size=0):
        assert self.fmt is not None
        assert shared_size == 0 or self.name == "pp_propagate_procedural_tiles"
        self.drv.launch(self.name, self.fmt, grid, block, args, shared_size, self.defines)


class FakeGraphs:
    """Stands in for GraphAPI: capture records the launches, replay runs them."""

    def __init__(self, drv, fail=False):
        self.drv, self.fail, self.captured, self.replayed = drv, fail, 0, 0

    def __call__(self):
        if self.fail == "load":
            raise CU.GraphUnavailable("no libcuda here")
        return self

    def capture(self, handle, record, errors):
        if self.fail:
            raise CU.GraphUnavailable("capture refused (test)")
        self.drv.capturing = []
        record()
        g, self.drv.capturing = self.drv.capturing, None
        self.captured += 1
        return g, g

    def replay(self, exe, handle):
        self.replayed += 1
        for name, grid, block, a, shared in exe:
            self.drv.launches += 1
            self.drv.run_kernel(name, grid, block, a, shared)

    def destroy(self, g, e):
        pass


class _FakeCoopKernel(K.CooperativeKernel):
    """pp_step_persistent_*: the real ctypes packing (CooperativeKernel.pack), read back
    value by value, then n_steps of the per-step emulations with the arguments mapped by
    position (COOPERATIVE_KERNELS) -- the control block ends as the device kernel leaves it."""

    def __init__(self, owner, name, defines=None):  # no driver: skip CooperativeKernel.__init__
        self.owner, self.name, self.shared_asked = owner, name, None
        self.one_block = bool((defines or {}).get("PP_ONE_BLOCK"))
        self.shared_seen = set()     # every dynamic shared size an occupancy query asked
        self.fmt = K.COOPERATIVE_KERNELS[name][1]
        self.num_regs = 78
        self.static_shared = owner.static_shared
        if self.static_shared is None:   # ptxas, sm_90, procedural (stored: no more)
            self.static_shared = (112 if self.one_block else
                                  24048 if (defines or {}).get("PP_UNIT_MAP") else 6480)

    def set_max_dynamic_shared(self, nbytes):
        assert nbytes + self.static_shared > 48 * 1024      # only where it is needed
        self.owner.max_dynamic = max(nbytes, self.owner.max_dynamic or 0)

    def max_blocks_per_sm(self, block, shared=0):
        assert block == (512 if self.one_block else 256) and 0 <= shared <= 227 * 1024
        # the driver: static + dynamic above 48 KiB fits no block without the opt-in
        if shared + self.static_shared > 48 * 1024 and (self.owner.max_dynamic or 0) < shared:
            return 0
        self.owner.shared_asked = self.shared_asked = shared
        self.shared_seen.add(shared)
        return 1 if self.one_block else 3

    def launch_packed(self, grid, block, stream_handle, packed, shared=0):
        drv = self.owner.drv
        assert drv.stack, "launch without a current context"
        assert 1 <= grid <= 4 * 3        # at most the blocks resident at once (4 SMs x 3)
        assert block == (512 if self.one_block else 256) and (grid == 1 or not self.one_block)
        self.owner.grids.append(grid)
        if self.owner.fail == "launch":
            raise K.CooperativeUnavailable("cuLaunchCooperativeKernel: too many blocks (test)")
        params, vals = packed             # read back through the pointers the driver gets
        assert len(vals) == len(self.fmt)
        a = [ctypes.cast(params[i], ctypes.POINTER(type(v))).contents.value
             for i, v in enumerate(vals)]
        self.owner.launches += 1
        emu = drv.emu
        neuron, (n_blocks, rec_end, rec_chunk) = a[:15], a[15:18]
        tiled = None
        if self.name.endswith("procedural"):
            (projs, rowlen, tab, out_ptr, out_idx, max_out, gptr, gidx, gmax, tiles, n_tiles,
             tmin, n_pops, n_projs, flags, tile_bytes, pipelined, ring_size, n) = a[18:]
            prop = [projs, a[0], rowlen, tab, out_ptr, out_idx, max_out, a[10], a[4], a[9],
                    ring_size, a[14]]
            gen = [projs, a[0], rowlen, tab, gptr, gidx, gmax, a[10], a[4], a[9], ring_size,
                   a[14]]
            tiled = [projs, a[0], tab, tiles, n_tiles, a[10], a[4], a[9], ring_size, a[14]]
            assert (tile_bytes > 0) == (n_tiles > 0) and shared in self.shared_seen
            if self.one_block:           # ring, spike list(s), neuron state (one_block_smem_bytes)
                assert n_tiles == 0 and flags == 0
                assert shared == (4 * ring_size + 4 * (ring_size & 1)
                                  + 8 * a[11] * (1 + pipelined) + 16 * a[11])
            else:
                assert shared == CU.persistent_smem_bytes(self.owner.cnet_of(n_pops, n_projs),
                                                          "procedural", tile_bytes, flags)
            step = emu.pp_propagate_procedural_spikes
        else:
            projs, out_ptr, out_idx, max_out, rb, ip, tg, w, d, n_pops, n_projs, flags, \
                pipelined, ring_size, n = a[18:]
            assert flags in (0, 1) and shared in self.shared_seen
            if self.one_block:
                assert flags == 0
                assert shared == (4 * ring_size + 4 * (ring_size & 1)
                                  + 8 * a[11] * (1 + pipelined) + 16 * a[11])
            prop = [projs, a[0], out_ptr, out_idx, max_out, a[10], rb, ip, tg, w, d, a[9],
                    ring_size, a[14]]
            step = emu.pp_propagate_stored_spikes
        assert emu.ctrl(a[14])[0]["n_spk"] == 0, "persistent launch with a non-empty spike list"
        if pipelined:                    # two steps' spike lists must fit the buffer
            emu.mem.raw(a[10], 16 * a[11])
            self.owner.pipelined_launches += 1
        for _ in range(n):
            emu.pp_neuron_lif_update(n_blocks, neuron)
            ns = int(emu.ctrl(a[14])[0]["n_spk"])
            if tiled is not None and n_tiles and ns >= tmin:
                self.owner.tile_steps += 1
                emu.pp_propagate_procedural_tiles(grid, tiled)
                step(grid, gen)
            else:
                step(grid, prop)
            emu.pp_record_advance(1, [a[14], rec_end, rec_chunk])


class FakeCooperative:
    """Stands in for pyproc.kernels.get_cooperative_kernel; fail: None, "load" (the
    kernel cannot be loaded) or "launch" (every cooperative launch is refused)."""

    def __init__(self, drv, fail=None):
        self.drv, self.fail, self.launches = drv, fail, 0
        self.tile_steps, self.shared_asked, self.tile_smem = 0, None, 0
        self.max_dynamic, self.defines, self.pipelined_launches = 0, [], 0
        self.grids = []                   # grid of every launch
        self.static_shared = None         # the kernels' static __shared__ bytes (None: ptxas's)

    @staticmethod
    def cnet_of(n_pops, n_projs):
        """Just the counts persistent_smem_bytes reads."""
        return types.SimpleNamespace(n_pops=n_pops, projs=[None] * n_projs)

    def __call__(self, name, defines=None):
        assert name in K.COOPERATIVE_KERNELS
        self.defines.append(defines)
        if self.fail == "load":
            raise K.CooperativeUnavailable("libcuda.so.1 lacks cuLaunchCooperativeKernel (test)")
        return _FakeCoopKernel(self, name, defines)


@pytest.fixture
def fake(monkeypatch):
    drv = FakeDriver()
    compiler = types.ModuleType("pycuda.compiler")

    class CompileError(Exception):
        pass

    class SourceModule:
        def __init__(self, src, no_extern_c, include_dirs, options, arch):
            assert no_extern_c and "-fmad=false" in options and arch == "sm_90"
            assert "--use_fast_math" not in options
            self.src = src
            self.defines = dict(o[2:].split("=") for o in options if o.startswith("-D"))

        def get_function(self, name):
            assert name in self.src
            return FakeFunction(drv, name, self.defines)

    compiler.SourceModule = SourceModule
    drv.CompileError = CompileError          # pycuda.driver.CompileError
    pkg = types.ModuleType("pycuda")
    pkg.driver, pkg.compiler = drv, compiler
    monkeypatch.setitem(sys.modules, "pycuda", pkg)
    monkeypatch.setitem(sys.modules, "pycuda.driver", drv)
    monkeypatch.setitem(sys.modules, "pycuda.compiler", compiler)
    monkeypatch.setattr(K, "_modules", {})
    monkeypatch.setattr(K, "_functions", {})
    graphs = FakeGraphs(drv)
    monkeypatch.setattr(CU, "GraphAPI", graphs)
    drv.graphs = graphs
    drv.coop = FakeCooperative(drv)
    monkeypatch.setattr(CU, "get_cooperative_kernel", drv.coop)
    return drv

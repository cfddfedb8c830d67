/* simt.h -- a SIMT emulator that runs pyproc's CUDA kernel source on the CPU (tests only).
 *
 * The kernels (kernels/*.cu) are compiled by g++ with this header first: __global__ /
 * __device__ vanish, every CUDA thread becomes a fiber (ucontext), the fibers of one
 * block run cooperatively in one OS thread, and every block of the grid is its own OS
 * thread, so that:
 *   __shared__            -> thread_local: one copy per block (block-scope thread_local
 *                            variables are static), dynamic shared memory included;
 *   __syncthreads()       -> a barrier of the block's live fibers;
 *   __shfl*_sync, __any_sync, __ballot_sync
 *                         -> an exchange among the 32 lanes of the warp (every lane must
 *                            arrive: a warp operation in divergent code deadlocks here,
 *                            which the scheduler reports -- the kernels promise warp-uniform
 *                            calls, and this checks it);
 *   cg::this_grid().sync()-> the block's fibers meet, then the blocks meet (OS barrier);
 *   atomics               -> GCC __atomic builtins (sequentially consistent);
 *   __ldcg                -> an acquire fence and a plain load.
 * Fibers switch only at those synchronisation points, so a block's threads interleave
 * at barriers and warp operations, not at arbitrary instructions: the emulator checks
 * the kernels' logic (indices, work split, barriers, warp-uniformity, integer sums), not
 * timing or memory-model subtleties.  Floating point is IEEE double/single as on the GPU
 * (compile with -ffp-contract=off, the twin of nvcc -fmad=false).
 *
 * tests/simt.py builds a shared library of one kernel source with it and launches the
 * persistent kernels through the fake driver (tests/fake_pycuda.py) on real host memory.
 */
#pragma once
#ifndef __CUDACC__
#define __CUDACC__ 1
#endif
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <cmath>
#include <math.h>
#include <ucontext.h>

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __launch_bounds__(...)
#define __shared__ thread_local
#define __align__(n) __attribute__((aligned(n)))

struct uint2 { unsigned int x, y; };
struct uint4 { unsigned int x, y, z, w; };
struct int4 { int x, y, z, w; };
inline uint2 make_uint2(unsigned int a, unsigned int b) { return uint2{a, b}; }
inline uint4 make_uint4(unsigned int a, unsigned int b, unsigned int c, unsigned int d)
{ return uint4{a, b, c, d}; }
inline int4 make_int4(int a, int b, int c, int d) { return int4{a, b, c, d}; }
struct pp_simt_dim3 { unsigned int x, y, z; };

/* ---- scheduler state: one block per OS thread ---------------------------------------- */
enum { PP_SIMT_RUN = 0, PP_SIMT_WAIT_BLOCK, PP_SIMT_WAIT_WARP, PP_SIMT_WAIT_GRID, PP_SIMT_DONE };
#define PP_SIMT_MAX_THREADS 1024u

struct pp_simt_fiber {
    ucontext_t ctx;
    unsigned int tid;
    int state;
    void *stack;
};

struct pp_simt_block {
    unsigned int block_idx, grid_dim, block_dim;
    pp_simt_fiber *fibers;
    pp_simt_fiber *cur;
    ucontext_t sched;
    unsigned int alive, block_arrived, grid_arrived;
    unsigned int warp_alive[PP_SIMT_MAX_THREADS / 32], warp_arrived[PP_SIMT_MAX_THREADS / 32];
    uint64_t slots[PP_SIMT_MAX_THREADS / 32][32];
};

extern thread_local pp_simt_block *pp_simt_blk;
void pp_simt_grid_sync();                 /* simt_runtime.h */
void pp_simt_fail(const char *why);       /* first error of the launch, reported to Python */

#define threadIdx (pp_simt_dim3{pp_simt_blk->cur->tid, 0u, 0u})
#define blockIdx (pp_simt_dim3{pp_simt_blk->block_idx, 0u, 0u})
#define blockDim (pp_simt_dim3{pp_simt_blk->block_dim, 1u, 1u})
#define gridDim (pp_simt_dim3{pp_simt_blk->grid_dim, 1u, 1u})

inline void pp_simt_yield()
{
    pp_simt_block *b = pp_simt_blk;
    swapcontext(&b->cur->ctx, &b->sched);
}

/* Release every fiber waiting in `state` (of warp w, or of the block if w < 0). */
inline void pp_simt_release(pp_simt_block *b, int state, int w)
{
    for (unsigned int i = 0; i < b->block_dim; ++i) {
        pp_simt_fiber *f = b->fibers + i;
        if (f->state == state && (w < 0 || (int)(i / 32u) == w)) f->state = PP_SIMT_RUN;
    }
}

inline void __syncthreads()
{
    pp_simt_block *b = pp_simt_blk;
    b->cur->state = PP_SIMT_WAIT_BLOCK;
    if (++b->block_arrived == b->alive) {
        b->block_arrived = 0;
        pp_simt_release(b, PP_SIMT_WAIT_BLOCK, -1);
    }
    pp_simt_yield();
}

inline void pp_simt_warp_barrier()
{
    pp_simt_block *b = pp_simt_blk;
    const unsigned int w = b->cur->tid / 32u;
    b->cur->state = PP_SIMT_WAIT_WARP;
    if (++b->warp_arrived[w] == b->warp_alive[w]) {
        b->warp_arrived[w] = 0;
        pp_simt_release(b, PP_SIMT_WAIT_WARP, (int)w);
    }
    pp_simt_yield();
}

inline void pp_simt_full_mask(unsigned int mask)
{
    if (mask != 0xffffffffu) pp_simt_fail("warp operation with a partial mask");
    pp_simt_block *b = pp_simt_blk;
    if (b->warp_alive[b->cur->tid / 32u] != 32u)
        pp_simt_fail("warp operation in a warp with exited lanes");
}

/* Every lane publishes v, then reads lane src(lane)'s value (its own if src is outside). */
template <class T, class F>
inline T pp_simt_exchange(unsigned int mask, T v, F src)
{
    static_assert(sizeof(T) <= 8, "warp exchange of at most 8 bytes");
    pp_simt_full_mask(mask);
    pp_simt_block *b = pp_simt_blk;
    const unsigned int w = b->cur->tid / 32u, lane = b->cur->tid & 31u;
    uint64_t bits = 0;
    std::memcpy(&bits, &v, sizeof(T));
    b->slots[w][lane] = bits;
    pp_simt_warp_barrier();
    const int s = src((int)lane);
    bits = b->slots[w][(s >= 0 && s < 32) ? s : (int)lane];
    pp_simt_warp_barrier();              /* nobody overwrites a slot before all have read */
    T r;
    std::memcpy(&r, &bits, sizeof(T));
    return r;
}

template <class T> inline T __shfl_sync(unsigned int mask, T v, int src, int width = 32)
{
    (void)width;
    return pp_simt_exchange(mask, v, [src](int) { return src & 31; });
}
template <class T> inline T __shfl_up_sync(unsigned int mask, T v, unsigned int d, int width = 32)
{
    (void)width;
    return pp_simt_exchange(mask, v, [d](int l) { return l - (int)d >= 0 ? l - (int)d : l; });
}
template <class T> inline T __shfl_xor_sync(unsigned int mask, T v, int m, int width = 32)
{
    (void)width;
    return pp_simt_exchange(mask, v, [m](int l) { return l ^ m; });
}
inline unsigned int __ballot_sync(unsigned int mask, int pred)
{
    pp_simt_full_mask(mask);
    pp_simt_block *b = pp_simt_blk;
    const unsigned int w = b->cur->tid / 32u, lane = b->cur->tid & 31u;
    b->slots[w][lane] = pred ? 1u : 0u;
    pp_simt_warp_barrier();
    unsigned int r = 0;
    for (unsigned int i = 0; i < 32u; ++i) r |= (b->slots[w][i] ? 1u : 0u) << i;
    pp_simt_warp_barrier();
    return r;
}
inline int __any_sync(unsigned int mask, int pred) { return __ballot_sync(mask, pred) != 0u; }

/* ---- atomics and loads ------------------------------------------------------------------ */
inline unsigned int atomicAdd(unsigned int *p, unsigned int v)
{ return __atomic_fetch_add(p, v, __ATOMIC_SEQ_CST); }
inline int atomicAdd(int *p, int v) { return __atomic_fetch_add(p, v, __ATOMIC_SEQ_CST); }
inline unsigned long long atomicAdd(unsigned long long *p, unsigned long long v)
{ return __atomic_fetch_add(p, v, __ATOMIC_SEQ_CST); }
inline unsigned int atomicCAS(unsigned int *p, unsigned int cmp, unsigned int val)
{
    __atomic_compare_exchange_n(p, &cmp, val, false, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST);
    return cmp;
}
template <class T> inline T __ldcg(const T *p)
{
    T v;
    __atomic_thread_fence(__ATOMIC_ACQUIRE);
    std::memcpy(&v, (const void *)p, sizeof(T));
    return v;
}
inline int __popc(unsigned int x) { return __builtin_popcount(x); }
inline int __ffs(int x) { return __builtin_ffs(x); }
long long clock64();

/* step_persistent.cu -- many steps in one launch: the neuron phase and the
 * propagation phase of every step (phases.cuh) run in one cooperative kernel,
 * separated by two grid-wide barriers per step.  This replaces the three
 * launches per step of the graph loop (neuron_lif.cu, propagate_*.cu,
 * record.cu), whose fixed cost (three dependent kernels of 2-6 us each) sets
 * the speed of small and sparse networks at dt = 0.1 ms.  Compile with
 * -fmad=false (the neuron update's float arithmetic and the samplers' rare double
 * tails match NumPy twins).
 *
 * The comment block of pp_step_persistent_procedural below describes both
 * kernels.
 */
#include <cooperative_groups.h>
#include "phases.cuh"

namespace cg = cooperative_groups;

/* Profiling switch, for validation/profile_persistent.py only (0 in every real
 * run; the results are then wrong, the timings tell where a step's time goes):
 * bit 0 leaves out the propagation phase, bit 1 the neuron phase. */
#ifndef PP_PROFILE_SKIP
#define PP_PROFILE_SKIP 0
#endif

/* PP_PROFILE_TIMING=1 (profiling builds only): block 0, thread 0 sums SM clock
 * cycles of every step's two halves into pp_phase_cycles (read by the host through
 * cuModuleGetGlobal): [0] step start -> barrier A passed (its own neuron work, then
 * waiting for the slowest block's), [1] barrier A -> barrier B passed (propagation,
 * the same way), [2] its own neuron work alone, [3] steps timed. */
#ifndef PP_PROFILE_TIMING
#define PP_PROFILE_TIMING 0
#endif
#if PP_PROFILE_TIMING
__device__ unsigned long long pp_phase_cycles[4];
#endif

/* The grid-wide barrier between the phases.  A one-block grid (a network of one
 * neuron block, or persistent_grid=1) needs no grid barrier: __syncthreads makes the
 * block's global writes and atomics visible to all its threads, without the grid
 * barrier's atomic round trip to L2 and its polling (~1 us per barrier on an H200 at
 * 132 blocks).  gridDim.x is uniform, so every thread takes the same branch. */
__device__ __forceinline__ void pp_grid_barrier(cg::grid_group &grid)
{
    if (gridDim.x == 1u) __syncthreads();
    else grid.sync();
}

/* Block 0, thread 0, after barrier A of step i: close the step in the record
 * buffer at n_rec, the record counter (last changed before the barrier: atomics in
 * L2, or in shared memory in the one-block build). */
__device__ __forceinline__ void pp_close_step(pp_ctrl *ctrl, uint32_t *rec_end, uint32_t rec_k,
                                              uint32_t rec_chunk_steps, uint32_t n_rec,
                                              unsigned long long t)
{
    if (rec_k < rec_chunk_steps) rec_end[rec_k] = n_rec;
    else pp_set_error_at(ctrl, t, PP_ERR_REC_STEPS, rec_k, 0);
}

/* Block 0, thread 0, after the last barrier: leave the control block as
 * n_steps launches of pp_record_advance would. */
__device__ __forceinline__ void pp_finish_launch(pp_ctrl *ctrl, unsigned long long t0,
                                                 uint32_t n_steps, uint32_t rec0,
                                                 unsigned long long n_spikes)
{
    ctrl->step = t0 + n_steps;
    ctrl->rec_steps = rec0 + n_steps;
    ctrl->n_spikes += n_spikes;
    ctrl->n_spk = 0u;
    ctrl->n_spk_odd = 0u;
}

/* ---- resident neuron phase --------------------------------------------------------
 * When the block table fits the grid (n_blocks <= gridDim.x), block b owns
 * table entry b for the whole launch: its population record, its neurons' state
 * (V, Iex, Iin, ref) and its Poisson threshold tables (up to PP_POISSON_SHARED
 * entries) live in shared memory, the ring slot is counted in a register, and
 * the spike-list and record appends are one atomicAdd per warp (ballot + popc;
 * the order inside the list changes nothing: ring sums are integer, the host
 * sorts recorded ids).  The update itself is pp_lif_step on the same numbers as
 * pp_neuron_phase, so the spikes are identical; it just removes the chain of
 * dependent global loads that made a step's neuron update latency-bound.
 * Every thread of the block calls it (warp votes inside); `active`: the thread
 * owns a neuron (local < n). */
#ifndef PP_POISSON_SHARED
#define PP_POISSON_SHARED 256
#endif

__device__ __forceinline__ void pp_neuron_resident(
    const pp_pop *sp, uint32_t pop_idx, uint32_t local, bool active, uint32_t g, bool rec,
    const uint32_t *ptab, uint32_t seed, float *v, float *iex, float *iin, int32_t *r,
    int32_t *ring, uint64_t i0, uint2 *spikes, uint32_t spike_cap, uint32_t spike_base,
    uint32_t *__restrict__ rec_ids, uint32_t rec_cap, pp_ctrl *ctrl, unsigned int *n_spk,
    unsigned long long t)
{
    int spiked = 0;
    if (active) {
        int64_t acc_ex = __ldcg(ring + i0), acc_in = 0;
        ring[i0] = 0;
        if (sp->n_channels == 2u) {
            const uint64_t i1 = i0 + sp->n;             /* pp_ring_index(sp, slot, 1, local) */
            acc_in = __ldcg(ring + i1);
            ring[i1] = 0;
        }
        if (sp->kind == PP_POP_SOURCE) {
            spiked = pp_source_spike(sp, seed, local, t);
        } else if (sp->kind == PP_POP_ARRAY) {      /* its table: ptab, as Poisson tables */
            spiked = pp_array_spike(sp, ptab, local, t, r);
        } else {
            if (sp->poisson_len)                        /* tables in shared when they fit */
                pp_poisson_input(sp, ptab, seed, local, t, &acc_ex, &acc_in);
            if (acc_ex > 2147483647LL || acc_ex < -2147483647LL)
                pp_set_error_at(ctrl, t, PP_ERR_INPUT_OVERFLOW, g, 0);
            if (acc_in > 2147483647LL || acc_in < -2147483647LL)
                pp_set_error_at(ctrl, t, PP_ERR_INPUT_OVERFLOW, g, 1);
            spiked = pp_lif_step(v, iex, iin, r, (int32_t)acc_ex, (int32_t)acc_in, sp,
                                 pp_i_e(sp, t));
        }
    }
    const uint32_t mask = __ballot_sync(0xffffffffu, spiked);
    if (mask) {
        const uint32_t lane = threadIdx.x & 31u, lead = __ffs(mask) - 1u;
        const uint32_t below = __popc(mask & ((1u << lane) - 1u));
        uint32_t k = 0, q = 0;
        if (lane == lead) k = atomicAdd(n_spk, (uint32_t)__popc(mask));
        if (rec && lane == lead) q = atomicAdd(&ctrl->n_rec, (uint32_t)__popc(mask));
        k = __shfl_sync(0xffffffffu, k, lead) + below - spike_base;
        q = __shfl_sync(0xffffffffu, q, lead) + below;
        if (spiked) {
            if (k < spike_cap) spikes[k] = make_uint2(pop_idx, local);
            else pp_set_error_at(ctrl, t, PP_ERR_SPIKE_LIST, g, 0);
            if (rec) {
                if (q < rec_cap) rec_ids[q] = g;
                else atomicAdd(&ctrl->rec_lost, 1u);
            }
        }
    }
}

/* ---- tables in shared memory (shared_tables, opt-in) --------------------------------
 * Dynamic shared memory of a persistent block, in this order, each part starting at
 * a multiple of 8 bytes (pyproc.backends.cuda.persistent_smem_bytes computes the same):
 *   tile accumulator            tile_bytes (procedural with tiles; else 0)
 *   if smem_tables & 1:         projs (n_projs pp_proj), pops (n_pops pp_pop),
 *                               out_ptr (n_pops + 1 uint32), out_idx (n_projs uint32),
 *                               procedural also gen_out_ptr (n_pops + 1),
 *                               gen_out_idx (gen_out_ptr[n_pops] uint32)
 *   if smem_tables & 2:         sampler_tables (PP_TABLES_LEN int32; procedural)
 * Every block copies them once per launch; the phases then read them through the
 * same pointers, which now point to shared memory: every item's chain of dependent
 * loads (spike -> out table -> projection -> population) and every sampler-table
 * lookup become shared-memory loads.  The values are the same: the spikes cannot
 * change. */
extern __shared__ __align__(16) int32_t pp_tile_acc[];  /* dynamic: accumulator, then tables
                                                         * (8-byte words and intervals) */

/* The copy is compiled in only with -DPP_SHARED_TABLES=1 (pyproc compiles that
 * variant when shared_tables=True): pointers that may point to either memory need
 * registers the default build keeps for the propagation. */
#ifndef PP_SHARED_TABLES
#define PP_SHARED_TABLES 0
#endif

/* Blocks per SM the register budget is sized for (__launch_bounds__): 3 keeps the
 * default build at <= 85 registers without spills (78 since the flat lane walks), and
 * the shared-tables and unit-map builds each; both together are compiled with 2
 * (pointers that may be shared or global cost registers), the throughput build (below)
 * with 4 (pyproc.backends.cuda.persistent_build). */
#ifndef PP_PERSISTENT_MIN_BLOCKS
#define PP_PERSISTENT_MIN_BLOCKS 3
#endif

/* Whole-warp bernoulli walks for steps with few items (pp_procedural_phase's
 * WARP_SEGMENTS, latency-bound steps).  The throughput build (pyproc compiles it when
 * throughput_build=True: -DPP_WARP_SEGMENTS=0 -DPP_PERSISTENT_MIN_BLOCKS=4
 * -DPP_PERSISTENT_TILES=0) leaves them out, and the tile phase (PP_PERSISTENT_TILES
 * below), and the procedural kernel then fits 64 registers without spills: 4 blocks of
 * 256 per SM, the occupancy of the graph loop's propagation kernel, for throughput-bound
 * runs (every lane walks its own segments; the same synapses). */
#ifndef PP_WARP_SEGMENTS
#define PP_WARP_SEGMENTS 1
#endif

/* The tile phase for steps with at least tile_min_spikes spikes (bernoulli_tiles=True);
 * 0 compiles it out (the throughput and shared-tables builds, which refuse
 * bernoulli_tiles: with it they would spill). */
#ifndef PP_PERSISTENT_TILES
#define PP_PERSISTENT_TILES 1
#endif

/* ---- the one-block build (one_block, opt-in) -----------------------------------------
 * -DPP_ONE_BLOCK=1 (pyproc compiles it when one_block=True: with
 * -DPP_PERSISTENT_MIN_BLOCKS=1 -DPP_PERSISTENT_TILES=0) runs the whole network on one
 * block of PP_ONE_BLOCK_THREADS threads, for small networks whose step is latency, not
 * work: the 1,000-neuron network at dt 0.1 ms has ~2 spikes per step.  Grid barriers are
 * then __syncthreads (pp_grid_barrier), and the block keeps in dynamic shared memory, for
 * the whole launch,
 *   the delay ring (all ring_size int32) and the neuron state (V, Iex, Iin, ref of every
 *     neuron), copied in at the start of the launch and back at its end (the state a
 *     step leaves to later steps),
 *   the spike list(s) (spike_cap uint2 each; two in the pipelined loop),
 * and its spike and record counters in shared variables (written back to ctrl at the
 * end).  So the neuron phase reads and clears ring slots, appends spikes, and the
 * propagation adds synapses, all in shared memory: no L2 round trip on a step's
 * critical path but the Poisson and sampler tables (read-only, L1) and the recorded ids.
 * Thread x updates neurons x, x + PP_ONE_BLOCK_THREADS, ... of the network
 * (pp_neuron_phase, population by a scan of the table); the propagation is
 * pp_procedural_phase / pp_stored_phase on the block's 16 warps.  Same functions, same
 * integer sums: the same spikes.  512 threads leave 128 registers a thread (the
 * whole-warp bernoulli walks stay in).  The host checks that ring, lists and state fit
 * the device's shared memory (pyproc.backends.cuda.one_block_smem_bytes). */
#ifndef PP_ONE_BLOCK
#define PP_ONE_BLOCK 0
#endif
#define PP_ONE_BLOCK_THREADS 512
#if PP_ONE_BLOCK
#if PP_SHARED_TABLES || PP_UNIT_MAP || PP_PERSISTENT_TILES
#error "PP_ONE_BLOCK: build without PP_SHARED_TABLES, PP_UNIT_MAP and PP_PERSISTENT_TILES"
#endif
#define PP_PERSISTENT_THREADS PP_ONE_BLOCK_THREADS
#else
#define PP_PERSISTENT_THREADS PP_NEURON_BLOCK
#endif
/* loads of data other SMs write (spike list, counters) go through L2, except in the
 * one-block build, where they are in shared memory */
#define PP_COH (PP_ONE_BLOCK == 0)

/* Neurons of the network: the last population's offset + size (0 without any). */
__device__ __forceinline__ uint32_t pp_n_neurons(const pp_pop *pops, uint32_t n_pops)
{
    return n_pops ? pops[n_pops - 1u].offset + pops[n_pops - 1u].n : 0u;
}

__device__ __forceinline__ uint32_t pp_round8(uint32_t n) { return (n + 7u) & ~7u; }

/* Whole block: copy n 4-byte words (n8 = 0) or n 8-byte words (n8 = 1). */
__device__ __forceinline__ void pp_block_copy(void *dst, const void *src, uint32_t n, bool n8)
{
    uint32_t k;
    if (n8) {
        for (k = threadIdx.x; k < n; k += blockDim.x)
            ((unsigned long long *)dst)[k] = ((const unsigned long long *)src)[k];
    } else {
        for (k = threadIdx.x; k < n; k += blockDim.x)
            ((uint32_t *)dst)[k] = ((const uint32_t *)src)[k];
    }
}

/* Whole block: copy n uint32 of src to dynamic shared memory at byte offset *o and
 * advance *o past room for `room` entries (rounded up to 8 bytes); the copy's address. */
__device__ __forceinline__ const uint32_t *pp_u32_to_shared(char *dyn, uint32_t *o,
                                                            const uint32_t *src, uint32_t n,
                                                            uint32_t room)
{
    uint32_t *d = (uint32_t *)(dyn + *o);
    pp_block_copy(d, src, n, false);
    *o += pp_round8(4u * room);
    return d;
}

/* ---- unit-mapped propagation (unit_map, opt-in) -------------------------------------
 * Compiled in only with -DPP_UNIT_MAP=1 (pyproc compiles that variant when
 * unit_map=True).  Meant for latency-bound steps (the full microcircuit at dt 0.1 ms:
 * ~25 spikes, ~200 (spike, projection) items per step).  pp_procedural_phase cuts
 * every item into the same number of parts (`split`, up to 32) whatever its row
 * length, and every part pays the item's chain of dependent loads (spike -> out
 * table -> projection -> population -> row length) before its first synapse; parts
 * beyond a short row's end find no synapse at all.  Here every block first resolves
 * all items of the step at once (thread x takes items 4x .. 4x+3, in parallel) into
 * shared memory: projection, presynaptic neuron, row length (fixed-number rules) or
 * segment count (pairwise_bernoulli), and the number of 32-wide work units of the
 * item, with a block-wide inclusive scan of the units.  Then the grid's warps take
 * units u = global warp, + n_warps, ... and find their item by binary search in
 * shared memory: every unit holds up to 32 synapses, none is empty.
 *   fixed-number rules: unit w of an item = draws j = 32w + lane < row length;
 *   pairwise_bernoulli: if the step's segments are few (sum of n_seg <=
 *     PP_UNIT_WARP_SEGMENTS x warps of the grid: latency-bound) unit w = segment w,
 *     walked by the whole warp (pp_bernoulli_segment_warp); otherwise unit w =
 *     segments 32w + lane, each walked by its lane;
 *   decoder: one unit, lane j < min(32, n_post);
 *   stored (STORED): unit w = CSR entries e0 + 32w + lane < e0 + row length of the
 *     item's row (row start and length resolved in the first pass).
 * The same synapses as pp_procedural_phase / pp_stored_phase (pure functions of their
 * indices, or the CSR; integer ring sums): only which warp delivers which changes.  Every block computes the same
 * items, sums and mode from the same spike list, so the decisions are grid-uniform.
 * Returns false, having done nothing, when the step has more than PP_UNIT_MAX_ITEMS
 * items or more than 2^31 units: the caller then runs pp_procedural_phase
 * (pp_stored_phase).  HITS: the phase's lane count type (uint32_t procedural, flushed
 * as there; unsigned long long stored).
 * Every thread of the block must call it (__syncthreads inside). */
#ifndef PP_UNIT_MAP
#define PP_UNIT_MAP 0
#endif
#define PP_UNIT_MAX_ITEMS (4u * PP_NEURON_BLOCK)
#define PP_UNIT_WARP_SEGMENTS 4u
#define PP_UNIT_NONE 0u
#define PP_UNIT_BERNOULLI 1u
#define PP_UNIT_FIXED 2u
#define PP_UNIT_DECODER 3u

#if PP_UNIT_MAP
template <bool STORED, typename HITS>
__device__ __forceinline__ bool pp_unit_phase(
    const pp_proj *__restrict__ projs, const pp_pop *__restrict__ pops,
    const uint32_t *__restrict__ rowlen, const int32_t *__restrict__ tab,
    const uint32_t *__restrict__ out_ptr, const uint32_t *__restrict__ out_idx,
    uint32_t max_out, const uint2 *spikes, uint32_t ns, unsigned long long t, uint32_t seed,
    const unsigned long long *__restrict__ row_base, const long long *__restrict__ indptr,
    const uint32_t *__restrict__ targets, const int32_t *__restrict__ weights,
    const uint16_t *__restrict__ delays, int32_t *ring, unsigned long long ring_size,
    pp_ctrl *ctrl, HITS *hits_io)
{
    __shared__ uint32_t u_end[PP_UNIT_MAX_ITEMS];    /* inclusive prefix sum of units */
    __shared__ uint32_t u_proj[PP_UNIT_MAX_ITEMS];   /* projection index */
    __shared__ uint32_t u_pre[PP_UNIT_MAX_ITEMS];    /* presynaptic local index; stored: low
                                                        32 bits of the row's first synapse */
    __shared__ uint32_t u_len[PP_UNIT_MAX_ITEMS];    /* row length / n_seg / n_post */
    __shared__ uint32_t u_e0hi[STORED ? PP_UNIT_MAX_ITEMS : 1u]; /* stored: high 32 bits */
    __shared__ uint8_t u_kind[PP_UNIT_MAX_ITEMS];    /* PP_UNIT_* */
    __shared__ unsigned long long u_wsum[2][PP_NEURON_BLOCK / 32];
    __shared__ uint32_t u_wpre[PP_NEURON_BLOCK / 32];
    const unsigned long long items64 = (unsigned long long)ns * max_out;
    const uint32_t x = threadIdx.x, lane = x & 31u, warp = x >> 5;
    const uint32_t n_warps = (gridDim.x * blockDim.x) >> 5;
    uint32_t items, i, c, nu[4];
    unsigned long long lane_units = 0, seg_units = 0;
    bool warp_mode;
    uint32_t U;
    HITS hits;

    if (items64 == 0ull) return true;
    if (items64 > PP_UNIT_MAX_ITEMS) return false;          /* grid-uniform */
    items = (uint32_t)items64;
    /* 1. resolve this thread's items; sums of units in both bernoulli modes */
    for (c = 0; c < 4u; ++c) {
        const uint32_t it = 4u * x + c;
        uint32_t kind = PP_UNIT_NONE, k = 0, pre = 0, len = 0;
        if (it < items) {
            const uint32_t si = it / max_out, q = it - si * max_out;
            const uint2 sp = pp_load_spike<true>(spikes, si);
            const uint32_t o0 = out_ptr[sp.x];
            if (q < out_ptr[sp.x + 1u] - o0) {
                k = out_idx[o0 + q];
                if (STORED) {
                    const unsigned long long row = row_base[k] + sp.y;
                    const long long e0 = indptr[row];
                    kind = PP_UNIT_FIXED;            /* 32 consecutive CSR entries a unit */
                    len = (uint32_t)(indptr[row + 1ull] - e0);
                    pre = (uint32_t)e0;
                    u_e0hi[STORED ? it : 0u] = (uint32_t)((unsigned long long)e0 >> 32);
                    lane_units += (len + 31u) >> 5;
                    seg_units += (len + 31u) >> 5;
                } else {
                    const pp_proj *pj = projs + k;
                    pre = sp.y;
                    if (pj->rule == PP_RULE_FIXED) {
                        kind = PP_UNIT_FIXED;
                        len = rowlen[pj->rowlen_offset + pre];
                        lane_units += (len + 31u) >> 5;
                        seg_units += (len + 31u) >> 5;
                    } else if (pj->rule == PP_RULE_BERNOULLI) {
                        kind = PP_UNIT_BERNOULLI;
                        len = pj->n_seg;
                        lane_units += (len + 31u) >> 5;
                        seg_units += len;
                    } else if (pj->rule == PP_RULE_DECODER) {
                        kind = PP_UNIT_DECODER;
                        len = pj->n_post;
                        lane_units += 1u;
                        seg_units += 1u;
                    } else if (blockIdx.x == 0u) {
                        pp_set_error_at(ctrl, t, PP_ERR_BAD_RULE, k, (int)pj->rule);
                    }
                }
            }
            u_proj[it] = k; u_pre[it] = pre; u_len[it] = len; u_kind[it] = (uint8_t)kind;
        }
    }
    lane_units = pp_warp_sum_u64(lane_units);
    seg_units = pp_warp_sum_u64(seg_units);
    if (lane == 0u) { u_wsum[0][warp] = lane_units; u_wsum[1][warp] = seg_units; }
    __syncthreads();
    lane_units = 0; seg_units = 0;
    for (i = 0; i < (blockDim.x >> 5); ++i) { lane_units += u_wsum[0][i]; seg_units += u_wsum[1][i]; }
    warp_mode = seg_units <= (unsigned long long)PP_UNIT_WARP_SEGMENTS * n_warps;
    {
        const unsigned long long total = warp_mode ? seg_units : lane_units;
        if (total >= 0x80000000ull) {            /* grid-uniform; nothing written yet */
            __syncthreads();                     /* u_wsum is read before anyone reuses it */
            return false;
        }
        U = (uint32_t)total;
    }
    /* 2. block-wide inclusive scan of the units (4 consecutive items per thread) */
    {
        uint32_t run = 0, incl, o;
        for (c = 0; c < 4u; ++c) {
            const uint32_t it = 4u * x + c;
            uint32_t n = 0;
            if (it < items) {
                const uint32_t len = u_len[it], kind = u_kind[it];
                n = kind == PP_UNIT_FIXED ? (len + 31u) >> 5
                  : kind == PP_UNIT_BERNOULLI ? (warp_mode ? len : (len + 31u) >> 5)
                  : kind == PP_UNIT_DECODER ? 1u : 0u;
            }
            run += n;
            nu[c] = run;
        }
        incl = run;
        for (o = 1u; o < 32u; o <<= 1) {
            const uint32_t y = __shfl_up_sync(0xffffffffu, incl, o);
            if (lane >= o) incl += y;
        }
        if (lane == 31u) u_wpre[warp] = incl;
        __syncthreads();
        o = incl - run;                           /* this thread's exclusive prefix in the warp */
        for (i = 0; i < warp; ++i) o += u_wpre[i];
        for (c = 0; c < 4u; ++c)
            if (4u * x + c < items) u_end[4u * x + c] = o + nu[c];
        __syncthreads();
    }
    /* 3. units, grid-stride over warps */
    hits = *hits_io;
    for (uint32_t u = (blockIdx.x * blockDim.x + x) >> 5; u < U; u += n_warps) {
        /* warp-uniform point; 64-bit counts (stored) never need the flush */
        if (!STORED && __any_sync(0xffffffffu, hits >= 0x80000000u)) {
            pp_add_events(ctrl, lane, (uint32_t)hits);
            hits = 0;
        }
        uint32_t lo = 0, hi = items - 1u;         /* first item with u_end > u */
        while (lo < hi) {
            const uint32_t mid = (lo + hi) >> 1;
            if (u_end[mid] > u) hi = mid; else lo = mid + 1u;
        }
        const uint32_t w = u - (lo ? u_end[lo - 1u] : 0u);
        const uint32_t kind = u_kind[lo], len = u_len[lo], pre = u_pre[lo];
        const pp_proj *pj = projs + u_proj[lo];
        const pp_pop *tp = pops + pj->tgt_pop;
        const uint32_t tmod = pp_step_mod(t, tp->ring_slots);
        if (STORED) {
            const uint32_t j = 32u * w + lane;
            if (j < len) {
                const long long e = (long long)(((unsigned long long)u_e0hi[STORED ? lo : 0u] << 32)
                                                | pre) + (long long)j;
                pp_ring_add(ring, ring_size, tp, tmod, pj->channel, targets[e], weights[e],
                            (int32_t)delays[e], ctrl, (uint32_t)t);
                ++hits;
            }
        } else if (kind == PP_UNIT_FIXED) {
            const uint32_t j = 32u * w + lane;
            if (j < len) {
                pp_fixed_synapse(pj, seed, pre, j, tab, ring, ring_size, tp, tmod, ctrl,
                                 (uint32_t)t);
                ++hits;
            }
        } else if (kind == PP_UNIT_BERNOULLI && warp_mode) {       /* warp-uniform */
            hits += pp_bernoulli_segment_warp(pj, seed, pre, w, lane, tab, ring, ring_size, tp,
                                              tmod, ctrl, (uint32_t)t);
        } else if (kind == PP_UNIT_BERNOULLI) {
            const uint32_t seg = 32u * w + lane;
            if (seg < len) {
                uint32_t n = 0;
                pp_bernoulli_segments_lane(pj, seed, pre, seg, len, tab, ring, ring_size, tp,
                                           tmod, ctrl, (uint32_t)t, &n);   /* stride len:
                                                                          * this segment only */
                hits += n;
            }
        } else if (kind == PP_UNIT_DECODER) {
            hits += pp_decoder_synapse(pj, seed, pre, lane, tab, ring, ring_size, tp, tmod, ctrl,
                                       (uint32_t)t);
        }
    }
    *hits_io = hits;
    __syncthreads();          /* the next step's items overwrite the scratch */
    return true;
}
#endif

/* ---- the step loop, for both connectivities ------------------------------------ */

template <bool STORED>
__device__ __forceinline__ void pp_persistent_body(
    const pp_pop *__restrict__ pops, const uint2 *__restrict__ blocks,
    const uint32_t *__restrict__ pop_flags, const uint32_t *__restrict__ poisson_tables,
    uint32_t seed, float *__restrict__ V, float *__restrict__ Iex, float *__restrict__ Iin,
    int32_t *__restrict__ ref, int32_t *ring, uint2 *spikes, uint32_t spike_cap,
    uint32_t *__restrict__ rec_ids, uint32_t rec_cap, pp_ctrl *ctrl, uint32_t n_blocks,
    uint32_t *__restrict__ rec_end, uint32_t rec_chunk_steps, const pp_proj *__restrict__ projs,
    const uint32_t *__restrict__ out_ptr, const uint32_t *__restrict__ out_idx,
    uint32_t max_out, const uint32_t *__restrict__ rowlen,
    const int32_t *__restrict__ sampler_tables, const uint32_t *__restrict__ gen_out_ptr,
    const uint32_t *__restrict__ gen_out_idx, uint32_t gen_max_out,
    const uint2 *__restrict__ tiles, uint32_t n_tiles, uint32_t tile_min_spikes,
    const unsigned long long *__restrict__ row_base,
    const long long *__restrict__ indptr, const uint32_t *__restrict__ targets,
    const int32_t *__restrict__ weights, const uint16_t *__restrict__ delays,
    uint32_t n_pops, uint32_t n_projs, uint32_t smem_tables, uint32_t tile_bytes,
    uint32_t pipelined, unsigned long long ring_size, uint32_t n_steps)
{
    __shared__ pp_pop s_pop;
    __shared__ float s_v[PP_NEURON_BLOCK], s_iex[PP_NEURON_BLOCK], s_iin[PP_NEURON_BLOCK];
    __shared__ int32_t s_ref[PP_NEURON_BLOCK];
    __shared__ uint32_t s_ptab[PP_POISSON_SHARED];
    __shared__ uint32_t s_pop_idx, s_first, s_slot0, s_rec0, s_rec_cum;
    __shared__ uint32_t s_red[PP_PERSISTENT_THREADS / 32];
#if PP_ONE_BLOCK
    __shared__ unsigned int s_spk[2], s_nrec;  /* the spike counters (even, odd steps) and
                                                * the record counter */
#endif
    __shared__ unsigned long long s_t0, s_n_spikes;
    cg::grid_group grid = cg::this_grid();
    const uint32_t x = threadIdx.x;
    const bool leader = blockIdx.x == 0 && x == 0;
    const bool resident = !PP_ONE_BLOCK && n_blocks <= gridDim.x;   /* grid-uniform */
    const bool owner = resident && blockIdx.x < n_blocks;      /* block-uniform */
    unsigned long long hits64 = 0;
    uint32_t spike_base = 0, spike_base_odd = 0, hits = 0, i, b;
    /* where the phases find the ring, the spike lists and the counters: global memory,
     * or shared memory in the one-block build (set below) */
    int32_t *ring_l = ring;
    uint2 *spikes_l = spikes;
    float *V_l = V, *Iex_l = Iex, *Iin_l = Iin;     /* the neuron state (the one-block */
    int32_t *ref_l = ref;                            /* build: in shared memory as well) */
    unsigned int *ctr_even = &ctrl->n_spk, *ctr_odd = &ctrl->n_spk_odd, *rec_ctr = &ctrl->n_rec;

    if (n_steps == 0u) return;          /* uniform: no block reaches a barrier */
    /* launch constants in shared memory: registers are what the propagation needs */
    if (x == 0) {
        s_t0 = ctrl->step; s_rec0 = ctrl->rec_steps; s_n_spikes = 0;
        /* pipelined, block 0: recorded ids since the last drain (n_rec is not read once
         * blocks may be appending: the previous launch closed its steps in rec_end) */
        s_rec_cum = pipelined && blockIdx.x == 0u && s_rec0 > 0u ? rec_end[s_rec0 - 1u] : 0u;
    }
    if (PP_SHARED_TABLES && smem_tables) {      /* grid-uniform; layout above */
        char *dyn = (char *)pp_tile_acc;
        uint32_t o = pp_round8(tile_bytes);
        if (smem_tables & 1u) {
            pp_proj *sj = (pp_proj *)(dyn + o);
            pp_pop *sp;
            pp_block_copy(sj, projs, n_projs * (uint32_t)(sizeof(pp_proj) / 8), true);
            o += pp_round8(n_projs * (uint32_t)sizeof(pp_proj));
            sp = (pp_pop *)(dyn + o);
            pp_block_copy(sp, pops, n_pops * (uint32_t)(sizeof(pp_pop) / 8), true);
            o += pp_round8(n_pops * (uint32_t)sizeof(pp_pop));
            out_ptr = pp_u32_to_shared(dyn, &o, out_ptr, n_pops + 1u, n_pops + 1u);
            out_idx = pp_u32_to_shared(dyn, &o, out_idx, n_projs, n_projs);
            if (!STORED) {
                const uint32_t n_gen = gen_out_ptr[n_pops];
                gen_out_ptr = pp_u32_to_shared(dyn, &o, gen_out_ptr, n_pops + 1u, n_pops + 1u);
                gen_out_idx = pp_u32_to_shared(dyn, &o, gen_out_idx, n_gen, n_projs);
            }
            projs = sj;
            pops = sp;
        }
        if ((smem_tables & 2u) && !STORED) {
            int32_t *st = (int32_t *)(dyn + o);
            pp_block_copy(st, sampler_tables, PP_TABLES_LEN / 2u, true);   /* in 8-byte words */
            sampler_tables = st;
        }
    }
#if PP_ONE_BLOCK
    {   /* dynamic shared memory: the ring, the spike list(s), then V, Iex, Iin and ref of
         * every neuron (one_block_smem_bytes) */
        const uint32_t n_ring = (uint32_t)ring_size;     /* the host checked it fits */
        const uint32_t n_all = pp_n_neurons(pops, n_pops);
        char *dyn = (char *)pp_tile_acc;
        ring_l = (int32_t *)dyn;
        spikes_l = (uint2 *)(dyn + pp_round8(4u * n_ring));
        V_l = (float *)(spikes_l + (pipelined ? 2u : 1u) * spike_cap);
        Iex_l = V_l + n_all;
        Iin_l = Iex_l + n_all;
        ref_l = (int32_t *)(Iin_l + n_all);
        for (b = x; b < n_ring; b += blockDim.x) ring_l[b] = ring[b];
        for (b = x; b < n_all; b += blockDim.x) {
            V_l[b] = V[b]; Iex_l[b] = Iex[b]; Iin_l[b] = Iin[b]; ref_l[b] = ref[b];
        }
        if (x == 0) { s_spk[0] = 0u; s_spk[1] = 0u; s_nrec = ctrl->n_rec; }
        ctr_even = &s_spk[0];
        ctr_odd = &s_spk[1];
        rec_ctr = &s_nrec;
    }
#endif
    __syncthreads();
    if (owner) {
        /* what the block keeps for the launch goes to shared memory, not registers
         * (they are live across the propagation phase, which needs them all) */
        const uint2 blk = blocks[blockIdx.x];
        if (x == 0) {
            s_pop = pops[blk.x];
            s_pop_idx = blk.x;
            s_first = blk.y;
            s_slot0 = pp_step_mod(s_t0, pops[blk.x].ring_slots);
        }
        __syncthreads();
        const uint32_t local = blk.y + x, g = s_pop.offset + local;
        if (local < s_pop.n) { s_v[x] = V[g]; s_iex[x] = Iex[g]; s_iin[x] = Iin[g]; s_ref[x] = ref[g]; }
        if (s_pop.poisson_len <= PP_POISSON_SHARED)
            for (b = x; b < s_pop.poisson_len; b += blockDim.x)
                s_ptab[b] = poisson_tables[s_pop.poisson_offset + b];
        __syncthreads();
    }
    /* The spike counter of step t: ctrl->n_spk, or in the pipelined loop for odd t
     * ctrl->n_spk_odd.  There step t + 1's neuron phase appends while step t's count is
     * read after the barrier between them, so the two steps must not share a counter:
     * a counter is changed again only two intervals later, after every block has read
     * it.  Each counter counts from the launch; spike_base / spike_base_odd hold its
     * value at the start of the current step of its parity. */
    auto odd_step = [&](unsigned long long t) -> bool { return pipelined && (t & 1ull); };
    /* one step's neuron phase, appending to spike list `list` */
    auto neuron_step = [&](unsigned long long t, uint32_t step_i, uint2 *list) {
#if PP_ONE_BLOCK
        unsigned int *ctr = odd_step(t) ? ctr_odd : ctr_even;
#else   /* the same, but through ctr_odd / ctr_even it cost the default build 2 registers */
        unsigned int *ctr = odd_step(t) ? &ctrl->n_spk_odd : &ctrl->n_spk;
#endif
        const uint32_t base = odd_step(t) ? spike_base_odd : spike_base;
        if (PP_PROFILE_SKIP & 2) {
            /* profiling: no neuron phase */
        } else if (resident) {
            if (owner) {
                const uint32_t local = s_first + x;
                const uint32_t slot = (s_slot0 + step_i) % s_pop.ring_slots;
                pp_neuron_resident(&s_pop, s_pop_idx, local, local < s_pop.n, s_pop.offset + local,
                                   (pop_flags[s_pop_idx] & 1u) != 0u,
                                   s_pop.poisson_len <= PP_POISSON_SHARED
                                       ? s_ptab : poisson_tables + s_pop.poisson_offset,
                                   seed, &s_v[x], &s_iex[x], &s_iin[x], &s_ref[x], ring,
                                   s_pop.ring_offset + (uint64_t)slot * s_pop.n_channels * s_pop.n
                                   + local, list, spike_cap, base, rec_ids, rec_cap, ctrl, ctr,
                                   t);
            }
        } else if (PP_ONE_BLOCK) {
            /* neurons g = x, x + blockDim.x, ... of the whole network, each found in its
             * population by a scan of the population table (small networks: few
             * populations, the table in L1); no pass is left part-empty by a population's
             * end, as passes over the block table would be (the 1k network: 2 passes
             * instead of 3) */
            const uint32_t n_all = pp_n_neurons(pops, n_pops);
            for (uint32_t g = x; g < n_all; g += blockDim.x) {
                uint32_t p = 0;
                while (g >= pops[p].offset + pops[p].n) ++p;
                pp_neuron_phase<false>(pops, make_uint2(p, g - pops[p].offset), 0u, pop_flags,
                                       poisson_tables, seed, V_l, Iex_l, Iin_l, ref_l, ring_l,
                                       list, spike_cap, base, rec_ids, rec_cap, ctrl, ctr,
                                       rec_ctr, t);
            }
        } else {
            for (b = blockIdx.x; b < n_blocks; b += gridDim.x)
                pp_neuron_phase<true>(pops, blocks[b], x, pop_flags, poisson_tables, seed, V, Iex,
                                      Iin, ref, ring, list, spike_cap, base, rec_ids, rec_cap,
                                      ctrl, ctr, &ctrl->n_rec, t);
        }
    };
    /* after the barrier that ends step t's neuron phase: its spike count; block 0
     * closes the step in the record buffer: rec_end = n_rec, or in the pipelined loop
     * (where step t + 1 may be appending to n_rec already) the count of recorded
     * spikes in step t's list added to the previous end (each recorded spike adds one
     * to n_rec; the ids of a step stay contiguous, steps never append at once) */
    auto close_step = [&](unsigned long long t, uint32_t step_i, const uint2 *list) -> uint32_t {
        const bool odd = odd_step(t);
        const uint32_t cum = pp_load<PP_COH>(odd ? ctr_odd : ctr_even);
        uint32_t ns = cum - (odd ? spike_base_odd : spike_base);
        if (odd) spike_base_odd = cum; else spike_base = cum;
        if (ns > spike_cap) ns = spike_cap;   /* PP_ERR_SPIKE_LIST is already set */
        if (pipelined && blockIdx.x == 0u) {                       /* block-uniform */
            uint32_t n = 0, j;
            for (j = x; j < ns; j += blockDim.x)
                n += pop_flags[pp_load_spike<PP_COH>(list, j).x] & 1u;
            for (j = 16u; j > 0u; j >>= 1) n += __shfl_xor_sync(0xffffffffu, n, (int)j);
            if ((x & 31u) == 0u) s_red[x >> 5] = n;
            __syncthreads();
            if (leader) {
                const uint32_t rec_k = s_rec0 + step_i;
                for (j = 0; j < (blockDim.x >> 5); ++j) s_rec_cum += s_red[j];
                if (rec_k < rec_chunk_steps) rec_end[rec_k] = s_rec_cum;
                else pp_set_error_at(ctrl, t, PP_ERR_REC_STEPS, rec_k, 0);
            }
        } else if (leader) {
            pp_close_step(ctrl, rec_end, s_rec0 + step_i, rec_chunk_steps,
                          pp_load<PP_COH>(rec_ctr), t);
        }
        if (leader) s_n_spikes += ns;
        return ns;
    };
    /* step t's propagation of the ns spikes in `list` */
    auto propagate_step = [&](unsigned long long t, uint32_t ns, const uint2 *list) {
        if (PP_PROFILE_SKIP & 1) {
            /* profiling: no propagation phase */
        } else if (STORED) {
#if PP_UNIT_MAP
            if (!pp_unit_phase<true>(projs, pops, rowlen, sampler_tables, out_ptr, out_idx,
                                     max_out, list, ns, t, seed, row_base, indptr, targets,
                                     weights, delays, ring, ring_size, ctrl, &hits64))
#endif
            pp_stored_phase<PP_COH>(projs, pops, out_ptr, out_idx, max_out, list, ns, t,
                                    row_base, indptr, targets, weights, delays, ring_l,
                                    ring_size, ctrl, &hits64, PP_PARTS_PER_WARP_PERSISTENT);
        } else if (PP_PERSISTENT_TILES && n_tiles && ns >= tile_min_spikes) { /* grid-uniform */
            pp_tile_phase<true>(projs, pops, sampler_tables, tiles, n_tiles, list, ns, t, seed,
                                ring, ring_size, ctrl, pp_tile_acc, &hits);
            pp_procedural_phase<true, PP_WARP_SEGMENTS != 0>(projs, pops, rowlen, sampler_tables, gen_out_ptr,
                                            gen_out_idx, gen_max_out, list, ns, t, seed, ring,
                                            ring_size, ctrl, &hits, PP_PARTS_PER_WARP_PERSISTENT);
        } else {
#if PP_UNIT_MAP
            if (!pp_unit_phase<false>(projs, pops, rowlen, sampler_tables, out_ptr, out_idx,
                                      max_out, list, ns, t, seed, row_base, indptr, targets,
                                      weights, delays, ring, ring_size, ctrl, &hits))
#endif
            pp_procedural_phase<PP_COH, PP_WARP_SEGMENTS != 0>(projs, pops, rowlen,
                                            sampler_tables, out_ptr, out_idx, max_out, list, ns,
                                            t, seed, ring_l, ring_size, ctrl, &hits,
                                            PP_PARTS_PER_WARP_PERSISTENT);
        }
    };

    if (!pipelined) {
        /* two barriers per step: neuron(t) | A | propagation(t) | B */
#if PP_PROFILE_TIMING
        long long c0 = 0, c1 = 0, c2 = 0;
#endif
        for (i = 0; i < n_steps; ++i) {
            const unsigned long long t = s_t0 + i;
            uint32_t ns;
#if PP_PROFILE_TIMING
            if (leader) c0 = clock64();
#endif
            neuron_step(t, i, spikes_l);
#if PP_PROFILE_TIMING
            if (leader) c1 = clock64();
#endif
            pp_grid_barrier(grid);                               /* barrier A */
#if PP_PROFILE_TIMING
            if (leader) {
                c2 = clock64();
                pp_phase_cycles[0] += (unsigned long long)(c2 - c0);
                pp_phase_cycles[2] += (unsigned long long)(c1 - c0);
            }
#endif
            ns = close_step(t, i, spikes_l);
            propagate_step(t, ns, spikes_l);
            pp_grid_barrier(grid);                               /* barrier B */
#if PP_PROFILE_TIMING
            if (leader) {
                pp_phase_cycles[1] += (unsigned long long)(clock64() - c2);
                pp_phase_cycles[3] += 1ull;
            }
#endif
        }
    } else {
        /* one barrier per step (every delay >= 2 steps, checked by the host): interval i
         * runs the neuron phase of step t0 + i into spike list (t & 1) and the
         * propagation of step t0 + i - 1 from the other list.  Propagation of t - 1
         * adds to ring slots t - 1 + d >= t + 1 (d >= 2 < ring_slots), never to slot t
         * that the neuron phase reads and clears meanwhile.  One extra interval at the
         * end propagates the launch's last step, so the launch leaves nothing pending. */
        uint32_t ns_prev = 0;
        for (i = 0; i <= n_steps; ++i) {
            const unsigned long long t = s_t0 + i;
            if (i < n_steps) neuron_step(t, i, spikes_l + (size_t)(t & 1ull) * spike_cap);
            if (i > 0) propagate_step(t - 1ull, ns_prev,
                                      spikes_l + (size_t)((t - 1ull) & 1ull) * spike_cap);
            pp_grid_barrier(grid);
            if (i < n_steps) ns_prev = close_step(t, i, spikes_l + (size_t)(t & 1ull) * spike_cap);
        }
    }
#if PP_ONE_BLOCK
    /* after the last barrier (__syncthreads): ring and neuron state back for the next
     * launch, or the graph loop (the loops take turns in auto), and the record counter */
    for (b = x; b < (uint32_t)ring_size; b += blockDim.x) ring[b] = ring_l[b];
    {
        const uint32_t n_all = pp_n_neurons(pops, n_pops);
        for (b = x; b < n_all; b += blockDim.x) {
            V[b] = V_l[b]; Iex[b] = Iex_l[b]; Iin[b] = Iin_l[b]; ref[b] = ref_l[b];
        }
    }
    if (x == 0) ctrl->n_rec = s_nrec;
#endif
    if (owner && s_first + x < s_pop.n) {
        const uint32_t g = s_pop.offset + s_first + x;
        V[g] = s_v[x]; Iex[g] = s_iex[x]; Iin[g] = s_iin[x]; ref[g] = s_ref[x];
    }
    if (STORED) {
        hits64 = pp_warp_sum_u64(hits64);
        if ((x & 31u) == 0u && hits64) atomicAdd(&ctrl->n_events, hits64);
    } else {
        pp_add_events(ctrl, x & 31u, hits);
    }
    if (leader) pp_finish_launch(ctrl, s_t0, n_steps, s_rec0, s_n_spikes);
}

/* pp_step_persistent_procedural -- n_steps steps with procedural connectivity.
 * Arguments: those of pp_neuron_lif_update, then n_blocks, rec_end and
 * rec_chunk_steps of pp_record_advance, then the procedural propagation's
 * tables, the out tables without the tiled projections, the tile table and the
 * tile threshold, n_pops, n_projs, the shared-table flags and the tile
 * accumulator's bytes (see "tables in shared memory"), the pipelined flag (one
 * barrier per step, every delay >= 2 steps; spike lists of two steps, 2 x spike_cap
 * entries), then ring_size and n_steps (pyproc/kernels.py COOPERATIVE_KERNELS).  A step
 * with at least tile_min_spikes spikes delivers the tiled projections
 * (pairwise_bernoulli, constant delay) by shared-memory tiles (pp_tile_phase;
 * dynamic shared memory 4 * 32 * (largest tiled seg_width + 1) bytes) and the rest
 * per (spike, projection) on gen_out_ptr / gen_out_idx; any other step all of them
 * per (spike, projection) on out_ptr / out_idx.
 * Launch shape  : cuLaunchCooperativeKernel (pyproc.kernels.CooperativeKernel, through
 *                 ctypes: PyCUDA has no cooperative launch), grid <= the blocks
 *                 that fit the GPU at once (cuOccupancyMaxActiveBlocksPerMultiprocessor
 *                 x SMs), block = PP_NEURON_BLOCK (256) threads; the one-block
 *                 build (PP_ONE_BLOCK): grid 1, block PP_ONE_BLOCK_THREADS (512),
 *                 dynamic shared memory for ring, spike list(s) and neuron state
 *                 (pyproc.backends.cuda.one_block_smem_bytes).
 * Step loop     : for i < n_steps, t = ctrl->step + i:
 *                   neuron phase: block b updates block-table entries
 *                     b, b + gridDim.x, ... < n_blocks (pp_neuron_phase);
 *                   grid barrier A (every spike and ring read of step t done);
 *                   the step's spike count ns = n_spk - spike_base (n_spk counts
 *                     from the launch; each block keeps spike_base, the count at
 *                     the start of the step); block 0 closes the step in the
 *                     record buffer (rec_end[rec_steps + i] = n_rec);
 *                   propagation phase over the ns spikes (pp_procedural_phase or
 *                     pp_stored_phase, grid-stride over warps; the PP_UNIT_MAP build
 *                     tries pp_unit_phase first);
 *                   grid barrier B (every ring addition of step t done).
 *                 Afterwards block 0 sets step += n_steps, rec_steps += n_steps,
 *                 n_spikes += the spikes of the launch, n_spk = 0, so the control
 *                 block is as the per-step kernels leave it: the two loops can
 *                 take turns (pyproc falls back to the graph loop if a
 *                 cooperative launch is refused).
 * Thread map    : neuron phase as pp_neuron_lif_update (thread x of a block owns
 *                 neuron blocks[b].y + x of population blocks[b].x); propagation
 *                 as pp_propagate_*_spikes (one warp per (spike, projection, part)).
 * RNG counters  : those of the phases (Poisson tag 3; bernoulli tag 1,
 *                 fixed-number and decoder tag 2), keyed (seed, stream).
 * Reads, Writes : as the three per-step kernels together; the spike list and the
 *                 ring are read through L2 (see phases.cuh).  One 64-bit atomicAdd
 *                 per warp into ctrl->n_events at the end (32-bit lane counts are
 *                 flushed before they reach 2^31).  Errors: those of the phases,
 *                 dated with their step, plus PP_ERR_REC_STEPS if the record chunk
 *                 would overflow (the host never asks for that).
 * CPU twin      : CPUSimulator.run_steps (pyproc/backends/cpu.py), n_steps
 *                 iterations.
 */
extern "C" __global__ void __launch_bounds__(PP_PERSISTENT_THREADS, PP_PERSISTENT_MIN_BLOCKS)
pp_step_persistent_procedural(const pp_pop *__restrict__ pops, const uint2 *__restrict__ blocks,
                              const uint32_t *__restrict__ pop_flags,
                              const uint32_t *__restrict__ poisson_tables, uint32_t seed,
                              float *__restrict__ V, float *__restrict__ Iex,
                              float *__restrict__ Iin, int32_t *__restrict__ ref, int32_t *ring,
                              uint2 *spikes, uint32_t spike_cap, uint32_t *__restrict__ rec_ids,
                              uint32_t rec_cap, pp_ctrl *ctrl, uint32_t n_blocks,
                              uint32_t *__restrict__ rec_end, uint32_t rec_chunk_steps,
                              const pp_proj *__restrict__ projs,
                              const uint32_t *__restrict__ rowlen,
                              const int32_t *__restrict__ sampler_tables,
                              const uint32_t *__restrict__ out_ptr,
                              const uint32_t *__restrict__ out_idx, uint32_t max_out,
                              const uint32_t *__restrict__ gen_out_ptr,
                              const uint32_t *__restrict__ gen_out_idx, uint32_t gen_max_out,
                              const uint2 *__restrict__ tiles, uint32_t n_tiles,
                              uint32_t tile_min_spikes, uint32_t n_pops, uint32_t n_projs,
                              uint32_t smem_tables, uint32_t tile_bytes, uint32_t pipelined,
                              unsigned long long ring_size, uint32_t n_steps)
{
    pp_persistent_body<false>(pops, blocks, pop_flags, poisson_tables, seed, V, Iex, Iin, ref, ring,
                              spikes, spike_cap, rec_ids, rec_cap, ctrl, n_blocks, rec_end,
                              rec_chunk_steps, projs, out_ptr, out_idx, max_out, rowlen,
                              sampler_tables, gen_out_ptr, gen_out_idx, gen_max_out, tiles,
                              n_tiles, tile_min_spikes, nullptr, nullptr, nullptr, nullptr,
                              nullptr, n_pops, n_projs, smem_tables, tile_bytes, pipelined,
                              ring_size, n_steps);
}

/* pp_step_persistent_stored -- the same with stored connectivity (device CSR as
 * pp_propagate_stored_spikes).  Arguments: those of pp_neuron_lif_update, then
 * n_blocks, rec_end, rec_chunk_steps, then the stored propagation's tables,
 * n_pops, n_projs, the shared-table flags (bit 0 only) and the pipelined flag, then
 * ring_size and n_steps.
 * Launch shape  : as pp_step_persistent_procedural (cooperative, occupancy-bound grid).
 * Thread map    : as pp_step_persistent_procedural; propagation as
 *                 pp_propagate_stored_spikes.
 * RNG counters  : Poisson input only (tag 3); the CSR holds the synapses.
 * Writes        : as pp_step_persistent_procedural (64-bit lane counts).
 * CPU twin      : CPUSimulator.run_steps with connectivity "stored".
 */
extern "C" __global__ void __launch_bounds__(PP_PERSISTENT_THREADS, PP_PERSISTENT_MIN_BLOCKS)
pp_step_persistent_stored(const pp_pop *__restrict__ pops, const uint2 *__restrict__ blocks,
                          const uint32_t *__restrict__ pop_flags,
                          const uint32_t *__restrict__ poisson_tables, uint32_t seed,
                          float *__restrict__ V, float *__restrict__ Iex, float *__restrict__ Iin,
                          int32_t *__restrict__ ref, int32_t *ring, uint2 *spikes,
                          uint32_t spike_cap, uint32_t *__restrict__ rec_ids, uint32_t rec_cap,
                          pp_ctrl *ctrl, uint32_t n_blocks, uint32_t *__restrict__ rec_end,
                          uint32_t rec_chunk_steps, const pp_proj *__restrict__ projs,
                          const uint32_t *__restrict__ out_ptr,
                          const uint32_t *__restrict__ out_idx, uint32_t max_out,
                          const unsigned long long *__restrict__ row_base,
                          const long long *__restrict__ indptr,
                          const uint32_t *__restrict__ targets,
                          const int32_t *__restrict__ weights,
                          const uint16_t *__restrict__ delays, uint32_t n_pops,
                          uint32_t n_projs, uint32_t smem_tables, uint32_t pipelined,
                          unsigned long long ring_size, uint32_t n_steps)
{
    pp_persistent_body<true>(pops, blocks, pop_flags, poisson_tables, seed, V, Iex, Iin, ref, ring,
                             spikes, spike_cap, rec_ids, rec_cap, ctrl, n_blocks, rec_end,
                             rec_chunk_steps, projs, out_ptr, out_idx, max_out, nullptr, nullptr,
                             nullptr, nullptr, 0u, nullptr, 0u, 0u, row_base, indptr, targets,
                             weights, delays, n_pops, n_projs, smem_tables, 0u, pipelined,
                             ring_size, n_steps);
}

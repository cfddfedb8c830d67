/* phases.cuh -- the work of one step, as device functions shared by the
 * per-step kernels (neuron_lif.cu, propagate_procedural.cu,
 * propagate_stored.cu, launched three per step in a CUDA graph) and the
 * persistent kernels (step_persistent.cu, one cooperative launch for many
 * steps).  Whichever kernel calls them, every synapse and every neuron update
 * is the same pure function of its indices, and the ring sums are integer, so
 * the two loops give identical spikes (tests/test_cuda.py).
 *
 * Memory ordering.  Inside a persistent kernel the neuron phase of step t + 1
 * reads ring slots that the propagation phase of step t added to on other
 * SMs, and the propagation phase reads the spike list that the neuron phase
 * appended to on other SMs; a grid-wide barrier separates them.  The loads of
 * such data go through L2 (__ldcg: cache global, not L1), so a line that an
 * SM cached earlier can never be read stale.  Data a thread only ever reads
 * and writes itself (V, Iex, Iin, ref of its neuron) needs no such care.  The
 * propagation phases take the spike-list load as a template flag (COHERENT:
 * __ldcg; the per-step kernels use a plain load, which keeps the procedural
 * kernel at 64 registers without spills).
 */

/* *p, through L2 when COHERENT (data other SMs write: spike lists, the ring, counters),
 * a plain load otherwise (per-step kernels; the one-block build's shared memory, where
 * __ldcg cannot go) */
template <bool COHERENT, typename T>
__device__ __forceinline__ T pp_load(const T *p)
{
    return COHERENT ? __ldcg(p) : *p;
}

template <bool COHERENT>
__device__ __forceinline__ uint2 pp_load_spike(const uint2 *spikes, unsigned long long i)
{
    return pp_load<COHERENT>(spikes + i);
}
#ifndef PP_PHASES_CUH
#define PP_PHASES_CUH

#include "step.cuh"

#ifndef PP_NEURON_BLOCK
#define PP_NEURON_BLOCK 256
#endif

/* ---- neuron phase -----------------------------------------------------------
 * Thread x of a block that owns block-table entry blk = (population, first
 * local index) updates neuron blk.y + x of population blk.x at step t: read and
 * zero its ring slot t % ring_slots (both channels when n_channels == 2), add
 * its Poisson input (pp_poisson_input), one LIF step (a Poisson source population:
 * pp_source_spike instead, no state; a spike-array population: pp_array_spike, its
 * cursor in ref) (pp_lif_step), and on a spike append
 * (population, local) to the spike list at atomicAdd(n_spk, 1) - spike_base
 * (n_spk: &ctrl->n_spk, or &ctrl->n_spk_odd for odd steps of the pipelined
 * persistent loop; the per-step kernel: spike_base 0, n_spk counts this step; the
 * persistent kernel: the counter counts since its launch and spike_base is its
 * value when the step began) and, for recorded populations (pop_flags bit 0), the
 * global id to rec_ids at atomicAdd(n_rec, 1) (n_rec: &ctrl->n_rec, or the one-block
 * persistent build's counter in shared memory).  COHERENT: the ring is read through
 * L2 (__ldcg: global memory other SMs add to); false for a ring in shared memory (the
 * one-block persistent build), where __ldcg cannot go.
 * Errors: PP_ERR_INPUT_OVERFLOW, PP_ERR_SPIKE_LIST (dated t). */
template <bool COHERENT>
__device__ __forceinline__ void pp_neuron_phase(
    const pp_pop *__restrict__ pops, uint2 blk, uint32_t x,
    const uint32_t *__restrict__ pop_flags, const uint32_t *__restrict__ poisson_tables,
    uint32_t seed, float *__restrict__ V, float *__restrict__ Iex, float *__restrict__ Iin,
    int32_t *__restrict__ ref, int32_t *ring, uint2 *spikes, uint32_t spike_cap,
    uint32_t spike_base, uint32_t *__restrict__ rec_ids, uint32_t rec_cap, pp_ctrl *ctrl,
    unsigned int *n_spk, unsigned int *n_rec, unsigned long long t)
{
    const pp_pop *p = pops + blk.x;
    const uint32_t local = blk.y + x;
    uint64_t i0, i1;
    uint32_t slot, g;
    int64_t acc_ex, acc_in = 0;
    float v, iex, iin;
    int32_t r;
    int spiked;

    if (local >= p->n) return;
    slot = pp_step_mod(t, p->ring_slots);
    g = p->offset + local;

    i0 = pp_ring_index(p, slot, 0u, local);
    acc_ex = pp_load<COHERENT>(ring + i0);
    ring[i0] = 0;
    if (p->n_channels == 2u) {
        i1 = pp_ring_index(p, slot, 1u, local);
        acc_in = pp_load<COHERENT>(ring + i1);
        ring[i1] = 0;
    }
    if (p->kind == PP_POP_SOURCE) {
        spiked = pp_source_spike(p, seed, local, t);
    } else if (p->kind == PP_POP_ARRAY) {
        r = ref[g];
        spiked = pp_array_spike(p, poisson_tables + p->poisson_offset, local, t, &r);
        ref[g] = r;
    } else {
        if (p->poisson_len)
            pp_poisson_input(p, poisson_tables + p->poisson_offset, seed, local, t, &acc_ex,
                             &acc_in);
        if (acc_ex > 2147483647LL || acc_ex < -2147483647LL)
            pp_set_error_at(ctrl, t, PP_ERR_INPUT_OVERFLOW, g, 0);
        if (acc_in > 2147483647LL || acc_in < -2147483647LL)
            pp_set_error_at(ctrl, t, PP_ERR_INPUT_OVERFLOW, g, 1);
        v = V[g]; iex = Iex[g]; iin = Iin[g]; r = ref[g];
        spiked = pp_lif_step(&v, &iex, &iin, &r, (int32_t)acc_ex, (int32_t)acc_in, p,
                             pp_i_e(p, t));
        V[g] = v; Iex[g] = iex; Iin[g] = iin; ref[g] = r;
    }
    if (spiked) {
        uint32_t k = atomicAdd(n_spk, 1u) - spike_base;
        if (k < spike_cap) spikes[k] = make_uint2(blk.x, local);
        else pp_set_error_at(ctrl, t, PP_ERR_SPIKE_LIST, g, 0);
        if (pop_flags[blk.x] & 1u) {
            uint32_t q = atomicAdd(n_rec, 1u);
            if (q < rec_cap) rec_ids[q] = g;
            else atomicAdd(&ctrl->rec_lost, 1u);
        }
    }
}

/* ---- work-item decoding ---------------------------------------------------------
 * Virtual warp v -> (spike s, outgoing projection q, part), see pp_split_for.
 * 32-bit arithmetic when the step's total fits (always but in giant steps):
 * 64-bit division is a long software routine on the critical path of every item. */
__device__ __forceinline__ void pp_decode_item(unsigned long long v, uint32_t split,
                                               uint32_t max_out, bool small, uint32_t *s,
                                               uint32_t *q, uint32_t *part)
{
    if (small) {
        const uint32_t v32 = (uint32_t)v, item = v32 / split;
        *part = v32 - item * split;
        *s = item / max_out;
        *q = item - *s * max_out;
    } else {
        const unsigned long long item = v / split;
        *part = (uint32_t)(v - item * split);
        *s = (uint32_t)(item / max_out);
        *q = (uint32_t)(item - (unsigned long long)*s * max_out);
    }
}

/* ---- one lane's synapses, shared by the propagation phases ----------------------------
 * Each delivers into the ring (pp_ring_add, step t with tmod = t % ring_slots of the
 * target population tp) and counts the synapses delivered. */

/* One Philox call of a bernoulli lane walk: its D = 1 or 2 draws (pp_bernoulli_width)
 * of segment seg of row pre, call jc (draws jc * D, jc * D + 1), from position *pos
 * on; deliver(tg, p, w) for each synapse, tg its target (local index in the target
 * population), p < len its position in the segment and w its weight (the same
 * draws, words and synapses as pp_bernoulli_draw in a loop; no autapse where the
 * projection excludes them); counts them in *hits.  Returns true when the segment is
 * done (*pos >= len). */
template <class Deliver>
__device__ __forceinline__ bool pp_bernoulli_call(const pp_proj *pj, uint32_t seed,
                                                  uint32_t pre, uint32_t seg, uint32_t jc,
                                                  uint32_t len, int32_t *pos,
                                                  const int32_t *tab, uint32_t *hits,
                                                  Deliver deliver)
{
    const uint32_t W = pp_bernoulli_width(pj), shift = pp_bernoulli_shift(W);
    const pp_u32x4 c = pp_philox4x32_10(pre, seg, jc, PP_TAG_BERNOULLI, seed, pj->stream);
    uint32_t k;
#pragma unroll
    for (k = 0; k < 2u; ++k) {
        uint32_t ww, wd, tg;
        if (k > 0u && shift == 0u) break;
        *pos += 1 + (int32_t)pp_geometric_skip(
            pp_bernoulli_words(&c, (jc << shift) + k, W, shift, &ww, &wd), pj->gmul,
            pj->gshift, pj->seg_width, tab);
        if (*pos >= (int32_t)len) return true;
        tg = seg * pj->seg_width + (uint32_t)*pos;
        if (!pj->autapses && tg == pre) continue;
        deliver(tg, (uint32_t)*pos, pp_weight_fixed(pj, ww, tab));
        ++*hits;
    }
    return false;
}

/* The segments seg, seg + stride, ... < n_seg of row pre of a pairwise_bernoulli
 * projection with a constant delay, walked by one lane (pp_bernoulli_call), each
 * synapse one atomicAdd at dst + target, dst = the ring row of the step's slot
 * (t + d) % ring_slots and the projection's channel (checked once by the caller: no
 * slot arithmetic or bounds check per synapse).  Adds its synapse count to *hits.
 * One flat loop, one Philox call per iteration; a lane that finishes a segment starts
 * its next one in the next iteration.  A loop per segment made every lane of the warp
 * wait, at the end of each segment, for the lane with the most draws in it (the
 * balanced network: 12.8 synapses per segment on average, the most of 32 lanes ~20);
 * flat, a lane's work is the sum over its segments and the warp waits once, at the
 * end.  The lanes stay aligned on Philox calls (every iteration makes one): no call
 * runs with half the lanes idle. */
__device__ __forceinline__ void pp_bernoulli_walk_const_delay(
    const pp_proj *pj, uint32_t seed, uint32_t pre, uint32_t seg, uint32_t stride,
    const int32_t *tab, int32_t *dst, uint32_t *hits)
{
    uint32_t len = pp_segment_length(pj, seg), jc = 0;
    int32_t pos = -1;
    for (;;) {
        if (!pp_bernoulli_call(pj, seed, pre, seg, jc, len, &pos, tab, hits,
                               [&](uint32_t tg, uint32_t, int32_t w) {
                                   atomicAdd(dst + tg, w);
                               })) {
            ++jc;
            continue;
        }
        seg += stride;
        if (seg >= pj->n_seg) return;
        len = pp_segment_length(pj, seg);
        pos = -1;
        jc = 0;
    }
}

/* 0: every bernoulli lane walk segment by segment, as before the flat constant-delay
 * walk (validation/bench_gpu.py times the per-step kernel built so, against the
 * default, on the same spikes: an A/B of the walk on the GPU). */
#ifndef PP_FLAT_WALK
#define PP_FLAT_WALK 1
#endif

/* A lane's bernoulli segments seg, seg + stride, ... < n_seg of row pre (none if
 * seg >= n_seg): pp_bernoulli_walk_const_delay when the delay is constant and its
 * ring row (slot (t + d) % ring_slots, the projection's channel, all n_post targets)
 * lies inside the ring; otherwise segment by segment (pp_bernoulli_draw in a loop,
 * Philox calls shared between draws), each synapse through pp_ring_add with its own
 * delay (a bad delay: pp_ring_add reports PP_ERR_RING_INDEX as for any synapse). */
__device__ __forceinline__ void pp_bernoulli_segments_lane(
    const pp_proj *pj, uint32_t seed, uint32_t pre, uint32_t seg, uint32_t stride,
    const int32_t *tab, int32_t *ring, unsigned long long ring_size, const pp_pop *tp,
    uint32_t tmod, pp_ctrl *ctrl, uint32_t t_lo, uint32_t *hits)
{
    if (seg >= pj->n_seg) return;
    uint64_t row;
    if (PP_FLAT_WALK && pj->d_kind == PP_DIST_CONST &&
        pp_ring_row(tp, tmod, pj->channel, pj->d_const, 0u, pj->n_post, ring_size, &row)) {
        pp_bernoulli_walk_const_delay(pj, seed, pre, seg, stride, tab, ring + row, hits);
        return;
    }
    for (; seg < pj->n_seg; seg += stride) {
        const uint32_t len = pp_segment_length(pj, seg);
        int32_t pos = -1;
        uint32_t j = 0, ww, wd;
        pp_u32x4 r;
        for (;;) {
            uint32_t tg;
            pos = pp_bernoulli_draw(pj, seed, pre, seg, j++, pos, &r, &ww, &wd, tab, 1);
            if (pos >= (int32_t)len) break;
            tg = seg * pj->seg_width + (uint32_t)pos;
            if (!pj->autapses && tg == pre) continue;
            pp_ring_add(ring, ring_size, tp, tmod, pj->channel, tg, pp_weight_fixed(pj, ww, tab),
                        pp_delay_steps(pj, wd, tab), ctrl, t_lo);
            ++*hits;
        }
    }
}

/* Synapse j of row pre of a fixed-number projection. */
__device__ __forceinline__ void pp_fixed_synapse(
    const pp_proj *pj, uint32_t seed, uint32_t pre, uint32_t j, const int32_t *tab,
    int32_t *ring, unsigned long long ring_size, const pp_pop *tp, uint32_t tmod,
    pp_ctrl *ctrl, uint32_t t_lo)
{
    pp_u32x4 r;
    const uint32_t tg = pp_fixed_draw(pj, seed, pre, j, &r);
    pp_ring_add(ring, ring_size, tp, tmod, pj->channel, tg, pp_weight_fixed(pj, r.v[1], tab),
                pp_delay_steps(pj, r.v[2], tab), ctrl, t_lo);
}

/* Target j (< 32) of row pre of the decoder rule: 1 if it is a synapse (delivered). */
__device__ __forceinline__ uint32_t pp_decoder_synapse(
    const pp_proj *pj, uint32_t seed, uint32_t pre, uint32_t j, const int32_t *tab,
    int32_t *ring, unsigned long long ring_size, const pp_pop *tp, uint32_t tmod,
    pp_ctrl *ctrl, uint32_t t_lo)
{
    pp_u32x4 r;
    if (j >= pj->n_post || !pp_decoder_hit(pre, j)) return 0u;
    r = pp_philox4x32_10(pre, j, 0u, PP_TAG_FIXED, seed, pj->stream);
    pp_ring_add(ring, ring_size, tp, tmod, pj->channel, j, pp_weight_fixed(pj, r.v[1], tab),
                pp_delay_steps(pj, r.v[2], tab), ctrl, t_lo);
    return 1u;
}

/* ---- one bernoulli segment by a whole warp ---------------------------------------
 * The same synapses as the per-lane walk (pp_bernoulli_draw in a loop), found in
 * parallel: lane l takes draw j0 + l (its Philox call and geometric skip do not
 * depend on the previous draws), an inclusive warp scan of 1 + skip gives every
 * draw's position, and the lanes whose position lies inside the segment deliver
 * (weight from word 1, delay from word 2 of their own draw, autapse rule as the
 * walk).  Another round of 32 draws only if the 32nd is still inside.  Used when
 * a step has few items (latency-bound: a lane's serial walk of ~8/p draws would
 * be the step's critical path); wastes the draws past the segment end.  Every lane
 * of the warp must call it with the same arguments.  Returns this lane's count. */
__device__ __forceinline__ uint32_t pp_bernoulli_segment_warp(
    const pp_proj *pj, uint32_t seed, uint32_t pre, uint32_t seg, uint32_t lane,
    const int32_t *tab, int32_t *ring, unsigned long long ring_size, const pp_pop *tp,
    uint32_t tmod, pp_ctrl *ctrl, uint32_t t_lo)
{
    const int32_t len = (int32_t)pp_segment_length(pj, seg);
    int32_t base = -1;              /* position of the previous round's last draw */
    uint32_t j0 = 0, n = 0;
    for (;;) {
        const uint32_t bw = pp_bernoulli_width(pj), bs = pp_bernoulli_shift(bw);
        /* lane l: draw j0 + l, from its call (lanes of one call's group repeat it) */
        const uint32_t j = j0 + lane;
        const pp_u32x4 r = pp_philox4x32_10(pre, seg, j >> bs, PP_TAG_BERNOULLI, seed, pj->stream);
        uint32_t ww, wd;
        const uint32_t w0 = pp_bernoulli_words(&r, j, bw, bs, &ww, &wd);
        int32_t pos = 1 + (int32_t)pp_geometric_skip(w0, pj->gmul, pj->gshift, pj->seg_width, tab);
        int32_t o, last;
        for (o = 1; o < 32; o <<= 1) {          /* inclusive scan: < 32 * 65537 */
            const int32_t y = __shfl_up_sync(0xffffffffu, pos, o);
            if ((int32_t)lane >= o) pos += y;
        }
        pos += base;
        if (pos < len) {
            const uint32_t tg = seg * pj->seg_width + (uint32_t)pos;
            if (pj->autapses || tg != pre) {
                pp_ring_add(ring, ring_size, tp, tmod, pj->channel, tg,
                            pp_weight_fixed(pj, ww, tab), pp_delay_steps(pj, wd, tab),
                            ctrl, t_lo);
                ++n;
            }
        }
        last = __shfl_sync(0xffffffffu, pos, 31);
        if (last >= len) return n;
        base = last;
        j0 += 32u;
    }
}

/* A bernoulli item is walked by whole warps (one segment at a time) when it has
 * at most this many segments per part; otherwise lane by lane. */
#define PP_WARP_SEGMENTS_PER_PART 4u

/* ---- procedural propagation phase ----------------------------------------------
 * Every warp of the grid (grid-stride) regenerates and delivers its share of
 * the ns spikes of step t: one warp per (spike, outgoing projection, part), see
 * pp_split_for in step.cuh.  pairwise_bernoulli: lane l of part p walks
 * segments p*32 + l, + 32*split, ... (geometric skipping inside each), or, when
 * WARP_SEGMENTS and n_seg <= PP_WARP_SEGMENTS_PER_PART * split (few items:
 * latency-bound), the whole warp of part p takes segments p, p + split, ... one
 * at a time (pp_bernoulli_segment_warp; the persistent kernel only: it needs more
 * than the 64 registers of the per-step kernel);
 * fixed-number rules: draw indices j the same way below the row length
 * rowlen[rowlen_offset + pre]; decoder: part 0 only, lane j < min(32, n_post).
 * *hits counts this lane's synapses (32-bit: flushed into ctrl->n_events before
 * it can reach 2^31 -- a lane adds fewer than 2^31 per item).  Every lane of
 * every warp must call it (warp-uniform loop bounds, __any_sync inside).
 * parts_per_warp: PP_PARTS_PER_WARP (per-step kernel) or
 * PP_PARTS_PER_WARP_PERSISTENT (see pp_split_for).  Lane walks share a Philox call
 * among the draws it serves (pp_bernoulli_draw reuse), in both kernels (the persistent
 * one has had the registers for the kept words since the samplers became integer). */
template <bool COHERENT, bool WARP_SEGMENTS>
__device__ __forceinline__ void pp_procedural_phase(
    const pp_proj *__restrict__ projs, const pp_pop *__restrict__ pops,
    const uint32_t *__restrict__ rowlen, const int32_t *__restrict__ tab,
    const uint32_t *__restrict__ out_ptr, const uint32_t *__restrict__ out_idx,
    uint32_t max_out, const uint2 *spikes, uint32_t ns, unsigned long long t, uint32_t seed,
    int32_t *ring, unsigned long long ring_size, pp_ctrl *ctrl, uint32_t *hits_io,
    uint32_t parts_per_warp)
{
    const uint32_t lane = threadIdx.x & 31u;
    const unsigned int n_warps = (gridDim.x * blockDim.x) >> 5;
    const unsigned long long items = (unsigned long long)ns * max_out;
    unsigned long long v, total;
    uint32_t hits = *hits_io;
    uint32_t split;
    bool small;

    if (items == 0) return;
    split = pp_split_for(items, n_warps, parts_per_warp);
    total = items * split;
    small = total <= 0xffffffffull;
    for (v = (blockIdx.x * blockDim.x + threadIdx.x) >> 5; v < total; v += n_warps) {
        /* warp-uniform point (the loop bound is uniform) */
        if (__any_sync(0xffffffffu, hits >= 0x80000000u)) {
            pp_add_events(ctrl, lane, hits);
            hits = 0;
        }
        uint32_t si, q, part;
        pp_decode_item(v, split, max_out, small, &si, &q, &part);
        const uint2 sp = pp_load_spike<COHERENT>(spikes, si);
        const uint32_t o0 = out_ptr[sp.x], o1 = out_ptr[sp.x + 1u];
        const uint32_t pre = sp.y;
        const uint32_t first = part * 32u + lane, stride = 32u * split;
        const pp_proj *pj;
        const pp_pop *tp;
        uint32_t tmod;

        if (q >= o1 - o0) continue;             /* warp-uniform */
        pj = projs + out_idx[o0 + q];
        tp = pops + pj->tgt_pop;
        tmod = pp_step_mod(t, tp->ring_slots);

        if (WARP_SEGMENTS && pj->rule == PP_RULE_BERNOULLI &&
            pj->n_seg <= PP_WARP_SEGMENTS_PER_PART * split) {
            uint32_t seg;                       /* warp-uniform branch and loop */
            for (seg = part; seg < pj->n_seg; seg += split)
                hits += pp_bernoulli_segment_warp(pj, seed, pre, seg, lane, tab, ring, ring_size,
                                                  tp, tmod, ctrl, (uint32_t)t);
        } else if (pj->rule == PP_RULE_BERNOULLI) {
            pp_bernoulli_segments_lane(pj, seed, pre, first, stride, tab, ring, ring_size, tp,
                                       tmod, ctrl, (uint32_t)t, &hits);
        } else if (pj->rule == PP_RULE_FIXED) {
            const uint32_t L = rowlen[pj->rowlen_offset + pre];
            uint32_t j;
            for (j = first; j < L; j += stride) {
                pp_fixed_synapse(pj, seed, pre, j, tab, ring, ring_size, tp, tmod, ctrl,
                                 (uint32_t)t);
                ++hits;
            }
        } else if (pj->rule == PP_RULE_DECODER) {
            if (part == 0u)
                hits += pp_decoder_synapse(pj, seed, pre, lane, tab, ring, ring_size, tp, tmod,
                                           ctrl, (uint32_t)t);
        } else if (lane == 0u) {
            pp_set_error_at(ctrl, t, PP_ERR_BAD_RULE, out_idx[o0 + q], (int)pj->rule);
        }
    }
    *hits_io = hits;
}

/* ---- shared-memory tiles for pairwise_bernoulli with a constant delay ----------------
 * A tile is 32 consecutive segments of one projection's target population
 * (32 * seg_width neurons; seg_width <= PP_TILE_MAX_WIDTH so that the block's
 * accumulator, int32[32 * (seg_width + 1)], fits shared memory).  The host's tile
 * table lists (projection, tile) for every tiled projection (pairwise_bernoulli,
 * constant delay, seg_width <= PP_TILE_MAX_WIDTH: pyproc.plan.tile_projections).
 * Work item = (tile, chunk of the step's spike list), blocks grid-stride over items;
 * inside an item lane l of every warp walks segment 32*tile + l of the rows of the
 * chunk's spikes whose population is the projection's source, exactly as
 * pp_procedural_phase does (same draws, same weights, same autapse rule), adding each
 * weight to the shared accumulator (row l, padded to seg_width + 1 so that lanes hit
 * different banks).  The lanes l of the block's warps share column l's spikes through
 * a queue (next[l], a shared atomicAdd per spike taken), and a lane walks its spikes'
 * segments in one flat loop (a Philox call per iteration): no lane waits for another
 * at the end of a spike, and no warp for another with more spikes of the source (a
 * fixed share per warp left the block's barrier waiting for the unluckiest).  Then one
 * global atomicAdd per non-zero neuron of the tile into ring slot
 * (t + d_const) % ring_slots: the ring receives the same integer sums, with far
 * fewer global atomics (consecutive addresses, coalesced).  Shared partial sums
 * stay within int32 under the bound check_input_range enforces.
 * Chunks: about two items per block, at least PP_TILE_MIN_CHUNK spikes each.
 * Spike list (PP_TILE_COMPACT, the default): chunks of at most PP_TILE_BATCH spikes;
 * the block reads its chunk, each spike once (coalesced, a warp ballot per 32), and
 * keeps the ids of those from the projection's source in shared memory (pre_list, a
 * shared atomicAdd per warp); the column queues then index that list.  Without it
 * (PP_TILE_COMPACT=0, bench (b)'s A/B) each column's queue reads every spike of the
 * chunk from the global list and skips those of other populations: per lane a global
 * load per spike, and for a projection from a population with a fifth of the spikes
 * (the balanced network's I) four skipped for every one walked.  The order in which
 * lanes take spikes differs, the sums do not.
 * acc: dynamic shared memory, >= 32 * (largest tiled seg_width + 1) int32.
 * Philox calls shared among draws as in pp_procedural_phase.
 * Every thread of the block must call it (__syncthreads inside). */
#define PP_TILE_MAX_WIDTH 256u
#define PP_TILE_MIN_CHUNK 32u
#ifndef PP_TILE_COMPACT
#define PP_TILE_COMPACT 1
#endif
#define PP_TILE_BATCH 256u

/* Lane ``lane``'s walk of segment seg (length len) of the rows whose presynaptic ids
 * TAKE() yields (a lambda: true and *pre set, or false when the column has no more),
 * each spike's draws in one flat loop, adding each weight to the lane's accumulator
 * row. */
template <typename TAKE>
__device__ __forceinline__ void pp_tile_column_walk(
    const pp_proj *pj, uint32_t seed, uint32_t seg, uint32_t len, const int32_t *tab,
    int32_t *acc_row, uint32_t *hits, TAKE take)
{
    uint32_t pre = 0, jc = 0;
    int32_t pos = (int32_t)len;                                   /* "take the next spike" */
    for (;;) {
        if (pos >= (int32_t)len) {
            if (!take(&pre)) return;
            pos = -1;
            jc = 0;
        }
        pp_bernoulli_call(pj, seed, pre, seg, jc++, len, &pos, tab, hits,
                          [&](uint32_t, uint32_t p, int32_t w) { atomicAdd(acc_row + p, w); });
    }
}

template <bool COHERENT>
__device__ __forceinline__ void pp_tile_phase(
    const pp_proj *__restrict__ projs, const pp_pop *__restrict__ pops,
    const int32_t *__restrict__ tab, const uint2 *__restrict__ tiles, uint32_t n_tiles,
    const uint2 *spikes, uint32_t ns, unsigned long long t, uint32_t seed, int32_t *ring,
    unsigned long long ring_size, pp_ctrl *ctrl, int32_t *acc, uint32_t *hits_io)
{
    const uint32_t lane = threadIdx.x & 31u;
    __shared__ uint32_t next[32];       /* per segment column: the next spike to take */
#if PP_TILE_COMPACT
    __shared__ uint32_t pre_list[PP_TILE_BATCH];   /* the chunk's spikes from the source */
    __shared__ uint32_t n_pre;
#endif
    uint32_t n_chunks, C, items, it, hits = *hits_io;

    if (ns == 0u || n_tiles == 0u) return;
    n_chunks = (2u * gridDim.x + n_tiles - 1u) / n_tiles;
    C = (ns + PP_TILE_MIN_CHUNK - 1u) / PP_TILE_MIN_CHUNK;        /* most chunks */
    if (n_chunks > C) n_chunks = C;
    if (n_chunks < 1u) n_chunks = 1u;
#if PP_TILE_COMPACT
    C = (ns + PP_TILE_BATCH - 1u) / PP_TILE_BATCH;                /* fewest chunks */
    if (n_chunks < C) n_chunks = C;
#endif
    C = (ns + n_chunks - 1u) / n_chunks;                          /* spikes per chunk */
    items = n_tiles * n_chunks;
    for (it = blockIdx.x; it < items; it += gridDim.x) {          /* block-uniform */
        const uint2 tl = tiles[it % n_tiles];
        const uint32_t c = it / n_tiles;
        const pp_proj *pj = projs + tl.x;
        const pp_pop *tp = pops + pj->tgt_pop;
        const uint32_t W = pj->seg_width, wshift = (uint32_t)(__ffs((int)W) - 1);
        const uint32_t seg = tl.y * 32u + lane;
        const uint32_t base = tl.y * 32u * W;
        const uint32_t s_end = (c + 1u) * C < ns ? (c + 1u) * C : ns;
        const uint32_t span = 32u * (W + 1u);
        uint32_t i;

        for (i = threadIdx.x; i < span; i += blockDim.x) acc[i] = 0;
        /* lane l of every warp: segment seg of the rows of the chunk's spikes from the
         * projection's source, taken from column l's queue (next[l]) one at a time */
        const uint32_t len = seg < pj->n_seg ? pp_segment_length(pj, seg) : 0u;
        int32_t *const acc_row = acc + lane * (W + 1u);
#if PP_TILE_COMPACT
        if (threadIdx.x < 32u) next[threadIdx.x] = 0u;
        if (threadIdx.x == 0u) n_pre = 0u;
        __syncthreads();
        /* warp-uniform loop: each warp reads 32 consecutive spikes of the chunk (at most
         * PP_TILE_BATCH), keeps the source's (one shared atomicAdd per warp) */
        for (uint32_t i0 = c * C + (threadIdx.x & ~31u); i0 < s_end; i0 += blockDim.x) {
            uint32_t pre = 0, at = 0;
            bool keep = false;
            if (i0 + lane < s_end) {
                const uint2 sp = pp_load_spike<COHERENT>(spikes, i0 + lane);
                keep = sp.x == pj->src_pop;
                pre = sp.y;
            }
            const uint32_t m = __ballot_sync(0xffffffffu, keep);
            if (lane == 0u && m) at = atomicAdd(&n_pre, (uint32_t)__popc(m));
            at = __shfl_sync(0xffffffffu, at, 0);
            if (keep) pre_list[at + (uint32_t)__popc(m & ((1u << lane) - 1u))] = pre;
        }
        __syncthreads();
        if (seg < pj->n_seg)            /* (n_pre read where needed: a register less) */
            pp_tile_column_walk(pj, seed, seg, len, tab, acc_row, &hits,
                                [&](uint32_t *pre) {
                                    const uint32_t k = atomicAdd(next + lane, 1u);
                                    if (k >= n_pre) return false;
                                    *pre = pre_list[k];
                                    return true;
                                });
        __syncthreads();
#else
        if (threadIdx.x < 32u) next[threadIdx.x] = c * C;
        __syncthreads();
        if (seg < pj->n_seg)
            pp_tile_column_walk(pj, seed, seg, len, tab, acc_row, &hits,
                                [&](uint32_t *pre) {
                                    uint32_t si;
                                    uint2 sp;
                                    do {                /* the column's next from the source */
                                        si = atomicAdd(next + lane, 1u);
                                        if (si >= s_end) return false;
                                        sp = pp_load_spike<COHERENT>(spikes, si);
                                    } while (sp.x != pj->src_pop);
                                    *pre = sp.y;
                                    return true;
                                });
        __syncthreads();
#endif
        {
            const uint32_t rest = pj->n_post - base;
            const uint32_t tile_len = rest < 32u * W ? rest : 32u * W;
            uint64_t rb;
            if (pp_ring_row(tp, pp_step_mod(t, tp->ring_slots), pj->channel, pj->d_const, base,
                            tile_len, ring_size, &rb)) {
                for (i = threadIdx.x; i < tile_len; i += blockDim.x) {
                    const int32_t a = acc[i + (i >> wshift)];
                    if (a) atomicAdd(ring + rb + i, a);
                }
            } else if (threadIdx.x == 0u) {
                pp_set_error_at(ctrl, t, PP_ERR_RING_INDEX, base, pj->d_const);
            }
        }
        __syncthreads();                        /* before the next item clears acc */
    }
    *hits_io = hits;
}

/* ---- stored propagation phase ---------------------------------------------------
 * The same (spike, projection, part) split as pp_procedural_phase; lane l of
 * part p reads synapses e0 + p*32 + l, + 32*split, ... < e1 of CSR row
 * row_base[k] + pre (coalesced loads).  *hits: this lane's synapse count. */
template <bool COHERENT>
__device__ __forceinline__ void pp_stored_phase(
    const pp_proj *__restrict__ projs, const pp_pop *__restrict__ pops,
    const uint32_t *__restrict__ out_ptr, const uint32_t *__restrict__ out_idx,
    uint32_t max_out, const uint2 *spikes, uint32_t ns, unsigned long long t,
    const unsigned long long *__restrict__ row_base, const long long *__restrict__ indptr,
    const uint32_t *__restrict__ targets, const int32_t *__restrict__ weights,
    const uint16_t *__restrict__ delays, int32_t *ring, unsigned long long ring_size,
    pp_ctrl *ctrl, unsigned long long *hits_io, uint32_t parts_per_warp)
{
    const uint32_t lane = threadIdx.x & 31u;
    const unsigned int n_warps = (gridDim.x * blockDim.x) >> 5;
    const unsigned long long items = (unsigned long long)ns * max_out;
    unsigned long long v, total, hits = *hits_io;
    uint32_t split;
    bool small;

    if (items == 0) return;
    split = pp_split_for(items, n_warps, parts_per_warp);
    total = items * split;
    small = total <= 0xffffffffull;
    for (v = (blockIdx.x * blockDim.x + threadIdx.x) >> 5; v < total; v += n_warps) {
        uint32_t si, q, part;
        pp_decode_item(v, split, max_out, small, &si, &q, &part);
        const uint2 sp = pp_load_spike<COHERENT>(spikes, si);
        const uint32_t o0 = out_ptr[sp.x], o1 = out_ptr[sp.x + 1u];
        uint32_t k, tmod, channel;
        unsigned long long row;
        long long e, e1;
        const pp_pop *tp;

        if (q >= o1 - o0) continue;             /* warp-uniform */
        k = out_idx[o0 + q];
        tp = pops + projs[k].tgt_pop;
        channel = projs[k].channel;
        tmod = pp_step_mod(t, tp->ring_slots);
        row = row_base[k] + sp.y;
        e1 = indptr[row + 1ull];
        for (e = indptr[row] + (long long)(part * 32u + lane); e < e1; e += 32ll * split) {
            pp_ring_add(ring, ring_size, tp, tmod, channel, targets[e], weights[e],
                        (int32_t)delays[e], ctrl, (uint32_t)t);
            ++hits;
        }
    }
    *hits_io = hits;
}

#endif /* PP_PHASES_CUH */

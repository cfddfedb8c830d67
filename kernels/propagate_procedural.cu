/* propagate_procedural.cu -- stage 2 of a step with procedural connectivity:
 * regenerate and deliver every synapse of every spike of the step (see
 * step.cuh).  Compile with -fmad=false (weights and delays are doubles that
 * must match the NumPy twin bit for bit). */
#include "step.cuh"

/* pp_propagate_procedural_spikes
 * Launch shape : any grid of whole warps (blockDim.x a multiple of 32, at most
 *                256: __launch_bounds__(256, 4) caps registers at 64 so that 4
 *                blocks of 256 fit an SM); the backend uses (number of SMs x 4)
 *                blocks of 256 (propagation_grid).  Grid-stride.
 * Thread map   : one warp per (spike, outgoing projection, part) -- see
 *                pp_split_for in step.cuh.  Spike s = spikes[s] = (population,
 *                local index) for s < ctrl->n_spk; its projections are
 *                out_idx[out_ptr[pop] : out_ptr[pop + 1]] (at most max_out).
 *                pairwise_bernoulli: lane l of part p walks segments
 *                  p*32 + l, + 32*split, ... (geometric skipping inside each);
 *                fixed-number rules: lane walks draw indices j the same way
 *                  below the row length rowlen[rowlen_offset + pre];
 *                decoder: part 0 only, lane j < min(32, n_post).
 * RNG counters : bernoulli (pre, segment, draw j, tag 1), fixed-number and
 *                decoder (pre, j, 0, tag 2), key (seed, projection stream):
 *                pp_bernoulli_draw, pp_fixed_draw, pp_weight_fixed, pp_delay_steps.
 * Sampler tables: sampler_tables = double[PP_TABLES_LEN] (sampling.cuh: normal
 *                quantile knots at PP_ZTAB_OFFSET, log knots at PP_LTAB_OFFSET),
 *                pyproc.sampling.sampler_tables() uploaded once by the backend;
 *                read by the truncated-normal weights / delays and the
 *                geometric skip.
 * Reads        : ctrl->step, ctrl->n_spk, tables, sampler_tables, spike list.
 * Writes       : int32 atomicAdd of the fixed-point weight into the target's
 *                ring slot (step + delay) % ring_slots, channel pj.channel
 *                (pp_ring_add); one 64-bit atomicAdd per warp into
 *                ctrl->n_events (pp_add_events; more only if a lane counts
 *                2^31 synapses).  Errors: PP_ERR_BAD_RULE, PP_ERR_RING_INDEX.
 * CPU twin     : CPUSimulator.run_steps second loop with connectivity
 *                "procedural" (pyproc.connectivity.rows); shim_row in
 *                tests/csrc/shim.c walks a row in the same way.
 */
extern "C" __global__ void __launch_bounds__(256, 4)
pp_propagate_procedural_spikes(const pp_proj *__restrict__ projs, const pp_pop *__restrict__ pops,
                               const uint32_t *__restrict__ rowlen,
                               const double *__restrict__ sampler_tables,
                               const uint32_t *__restrict__ out_ptr,
                               const uint32_t *__restrict__ out_idx, uint32_t max_out,
                               const uint2 *__restrict__ spikes, uint32_t seed,
                               int32_t *__restrict__ ring, unsigned long long ring_size,
                               pp_ctrl *ctrl)
{
    const uint32_t ns = ctrl->n_spk;
    const uint32_t lane = threadIdx.x & 31u;
    const unsigned int n_warps = (gridDim.x * blockDim.x) >> 5;
    const unsigned long long items = (unsigned long long)ns * max_out;
    const double *const tab = sampler_tables;
    unsigned long long v, total;
    uint32_t hits = 0;          /* this lane's synapses since the last flush (see below) */
    uint64_t t;
    uint32_t split;

    if (items == 0) return;
    t = ctrl->step;
    split = pp_split_for(items, n_warps);
    total = items * split;
    for (v = (blockIdx.x * blockDim.x + threadIdx.x) >> 5; v < total; v += n_warps) {
        /* 32-bit count (keeps the kernel at 64 registers without spills): a lane adds
         * fewer than 2^31 synapses per item (about rowlen / 32 or n_post / 32 plus one
         * segment, both < 2^32 / 32 + 2^16), so flushing before the count reaches
         * 2^31 keeps it exact.  Warp-uniform point (the loop bound is uniform). */
        if (__any_sync(0xffffffffu, hits >= 0x80000000u)) {
            pp_add_events(ctrl, lane, hits);
            hits = 0;
        }
        const unsigned long long item = v / split;
        const uint32_t part = (uint32_t)(v % split);
        const uint2 sp = spikes[item / max_out];
        const uint32_t q = (uint32_t)(item % max_out);
        const uint32_t o0 = out_ptr[sp.x], o1 = out_ptr[sp.x + 1u];
        const uint32_t pre = sp.y;
        const uint32_t first = part * 32u + lane, stride = 32u * split;
        const pp_proj *pj;
        const pp_pop *tp;
        uint32_t tmod;
        pp_u32x4 r;

        if (q >= o1 - o0) continue;             /* warp-uniform */
        pj = projs + out_idx[o0 + q];
        tp = pops + pj->tgt_pop;
        tmod = (uint32_t)(t % (uint64_t)tp->ring_slots);

        if (pj->rule == PP_RULE_BERNOULLI) {
            uint32_t seg;
            for (seg = first; seg < pj->n_seg; seg += stride) {
                const uint32_t len = pp_segment_length(pj, seg);
                int64_t pos = -1;
                uint32_t j = 0;
                for (;;) {
                    uint32_t tg;
                    pos = pp_bernoulli_draw(pj, seed, pre, seg, j++, pos, &r, tab);
                    if (pos >= (int64_t)len) break;
                    tg = seg * pj->seg_width + (uint32_t)pos;
                    if (!pj->autapses && tg == pre) continue;
                    pp_ring_add(ring, ring_size, tp, tmod, pj->channel, tg,
                                pp_weight_fixed(pj, r.v[1], tab), pp_delay_steps(pj, r.v[2], tab), ctrl);
                    ++hits;
                }
            }
        } else if (pj->rule == PP_RULE_FIXED) {
            const uint32_t L = rowlen[pj->rowlen_offset + pre];
            uint32_t j;
            for (j = first; j < L; j += stride) {
                const uint32_t tg = pp_fixed_draw(pj, seed, pre, j, &r);
                pp_ring_add(ring, ring_size, tp, tmod, pj->channel, tg,
                            pp_weight_fixed(pj, r.v[1], tab), pp_delay_steps(pj, r.v[2], tab), ctrl);
                ++hits;
            }
        } else if (pj->rule == PP_RULE_DECODER) {
            const uint32_t j = lane;
            if (part == 0u && j < pj->n_post && pp_decoder_hit(pre, j)) {
                r = pp_philox4x32_10(pre, j, 0u, PP_TAG_FIXED, seed, pj->stream);
                pp_ring_add(ring, ring_size, tp, tmod, pj->channel, j,
                            pp_weight_fixed(pj, r.v[1], tab), pp_delay_steps(pj, r.v[2], tab), ctrl);
                ++hits;
            }
        } else if (lane == 0u) {
            pp_set_error(ctrl, PP_ERR_BAD_RULE, out_idx[o0 + q], (int)pj->rule);
        }
    }
    /* every lane of a warp reaches this point (the loop bound is warp-uniform) */
    pp_add_events(ctrl, lane, hits);
}

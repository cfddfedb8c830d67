/* propagate_stored.cu -- stage 2 of a step with stored connectivity: deliver
 * every synapse of every spike of the step from a device CSR (see step.cuh;
 * the CSR is built by build_stored.cu or uploaded from
 * pyproc.connectivity.materialise). */
#include "step.cuh"

/* pp_propagate_stored_spikes
 * Launch shape : any grid of whole warps (blockDim.x a multiple of 32, at most
 *                256: __launch_bounds__(256, 4)); the backend uses (number of
 *                SMs x 4) blocks of 256 (propagation_grid).  Grid-stride.
 * Thread map   : one warp per (spike, outgoing projection, part) as in
 *                pp_propagate_procedural_spikes (pp_split_for, step.cuh); lane l
 *                of part p reads synapses e0 + p*32 + l, + 32*split, ... < e1 of
 *                CSR row row_base[k] + pre (coalesced loads).
 * CSR layout   : one CSR over all projections: row_base[k] (uint64, n_projs + 1)
 *                is the first row of projection k; indptr (int64, rows + 1);
 *                targets (uint32, local to the target population), weights
 *                (int32 fixed point), delays (uint16 steps).
 * RNG counters : none (no sampler tables either: the CSR holds the samples).
 * Reads        : ctrl->step, ctrl->n_spk, tables, spike list, CSR.
 * Writes       : int32 atomicAdd into the target's ring slot (step + delay) %
 *                ring_slots, channel pj.channel (pp_ring_add); one 64-bit
 *                atomicAdd per warp into ctrl->n_events.  Errors:
 *                PP_ERR_RING_INDEX.
 * CPU twin     : CPUSimulator.run_steps second loop with connectivity "stored"
 *                (CPUSimulator._synapses).
 */
extern "C" __global__ void __launch_bounds__(256, 4)
pp_propagate_stored_spikes(const pp_proj *__restrict__ projs, const pp_pop *__restrict__ pops,
                           const uint32_t *__restrict__ out_ptr,
                           const uint32_t *__restrict__ out_idx, uint32_t max_out,
                           const uint2 *__restrict__ spikes,
                           const unsigned long long *__restrict__ row_base,
                           const long long *__restrict__ indptr,
                           const uint32_t *__restrict__ targets,
                           const int32_t *__restrict__ weights,
                           const uint16_t *__restrict__ delays,
                           int32_t *__restrict__ ring, unsigned long long ring_size,
                           pp_ctrl *ctrl)
{
    const uint32_t ns = ctrl->n_spk;
    const uint32_t lane = threadIdx.x & 31u;
    const unsigned int n_warps = (gridDim.x * blockDim.x) >> 5;
    const unsigned long long items = (unsigned long long)ns * max_out;
    unsigned long long v, total, hits = 0;
    uint64_t t;
    uint32_t split;

    if (items == 0) return;
    t = ctrl->step;
    split = pp_split_for(items, n_warps);
    total = items * split;
    for (v = (blockIdx.x * blockDim.x + threadIdx.x) >> 5; v < total; v += n_warps) {
        const unsigned long long item = v / split;
        const uint32_t part = (uint32_t)(v % split);
        const uint2 sp = spikes[item / max_out];
        const uint32_t q = (uint32_t)(item % max_out);
        const uint32_t o0 = out_ptr[sp.x], o1 = out_ptr[sp.x + 1u];
        uint32_t k, tmod, channel;
        unsigned long long row;
        long long e, e1;
        const pp_pop *tp;

        if (q >= o1 - o0) continue;             /* warp-uniform */
        k = out_idx[o0 + q];
        tp = pops + projs[k].tgt_pop;
        channel = projs[k].channel;
        tmod = (uint32_t)(t % (uint64_t)tp->ring_slots);
        row = row_base[k] + sp.y;
        e1 = indptr[row + 1ull];
        for (e = indptr[row] + (long long)(part * 32u + lane); e < e1; e += 32ll * split) {
            pp_ring_add(ring, ring_size, tp, tmod, channel, targets[e], weights[e],
                        (int32_t)delays[e], ctrl);
            ++hits;
        }
    }
    hits = pp_warp_sum_u64(hits);
    if (lane == 0u && hits) atomicAdd(&ctrl->n_events, hits);
}

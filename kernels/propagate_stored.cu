/* propagate_stored.cu -- stage 2 of a step with stored connectivity: deliver
 * every synapse of every spike of the step from a device CSR (see step.cuh;
 * the CSR is built by build_stored.cu or uploaded from
 * pyproc.connectivity.materialise). */
#include "phases.cuh"

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
 * Body         : pp_stored_phase (phases.cuh).
 * CPU twin     : the propagation part of CPUSimulator.run_steps, connectivity "stored"
 *                (CPUSimulator._synapses).
 */
extern "C" __global__ void __launch_bounds__(256, 4)
pp_propagate_stored_spikes(const pp_proj *__restrict__ projs, const pp_pop *__restrict__ pops,
                           const uint32_t *__restrict__ out_ptr,
                           const uint32_t *__restrict__ out_idx, uint32_t max_out,
                           const uint2 *spikes,
                           const unsigned long long *__restrict__ row_base,
                           const long long *__restrict__ indptr,
                           const uint32_t *__restrict__ targets,
                           const int32_t *__restrict__ weights,
                           const uint16_t *__restrict__ delays,
                           int32_t *__restrict__ ring, unsigned long long ring_size,
                           pp_ctrl *ctrl)
{
    unsigned long long hits = 0;
    pp_stored_phase<false>(projs, pops, out_ptr, out_idx, max_out, spikes, ctrl->n_spk, ctrl->step,
                           row_base, indptr, targets, weights, delays, ring, ring_size, ctrl, &hits,
                           PP_PARTS_PER_WARP);
    hits = pp_warp_sum_u64(hits);
    if ((threadIdx.x & 31u) == 0u && hits) atomicAdd(&ctrl->n_events, hits);
}

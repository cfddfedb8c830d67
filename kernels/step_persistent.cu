/* step_persistent.cu -- many steps in one launch: the neuron phase and the
 * propagation phase of every step (phases.cuh) run in one cooperative kernel,
 * separated by two grid-wide barriers per step.  This replaces the three
 * launches per step of the graph loop (neuron_lif.cu, propagate_*.cu,
 * record.cu), whose fixed cost (three dependent kernels of 2-6 us each) sets
 * the speed of small and sparse networks at dt = 0.1 ms.  Compile with
 * -fmad=false (the phases' float and double arithmetic matches NumPy twins).
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

/* Block 0, thread 0, after barrier A of step i: close the step in the record
 * buffer.  The counters were last changed before the barrier (atomics in L2). */
__device__ __forceinline__ void pp_close_step(pp_ctrl *ctrl, uint32_t *rec_end, uint32_t rec_k,
                                              uint32_t rec_chunk_steps, unsigned long long t)
{
    if (rec_k < rec_chunk_steps) rec_end[rec_k] = __ldcg(&ctrl->n_rec);
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
}

/* pp_step_persistent_procedural -- n_steps steps with procedural connectivity.
 * Arguments: those of pp_neuron_lif_update, then n_blocks, rec_end and
 * rec_chunk_steps of pp_record_advance, then the procedural propagation's
 * tables, then n_steps (pyproc/kernels.py COOPERATIVE_KERNELS).
 * Launch shape  : cuLaunchCooperativeKernel (pyproc/backends/cuda.py, through
 *                 ctypes: PyCUDA has no cooperative launch), grid <= the blocks
 *                 that fit the GPU at once (cuOccupancyMaxActiveBlocksPerMultiprocessor
 *                 x SMs), block = PP_NEURON_BLOCK (256) threads.
 * Step loop     : for i < n_steps, t = ctrl->step + i:
 *                   neuron phase: block b updates block-table entries
 *                     b, b + gridDim.x, ... < n_blocks (pp_neuron_phase);
 *                   grid barrier A (every spike and ring read of step t done);
 *                   the step's spike count ns = n_spk - spike_base (n_spk counts
 *                     from the launch; each block keeps spike_base, the count at
 *                     the start of the step); block 0 closes the step in the
 *                     record buffer (rec_end[rec_steps + i] = n_rec);
 *                   propagation phase over the ns spikes (pp_procedural_phase or
 *                     pp_stored_phase, grid-stride over warps);
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
extern "C" __global__ void __launch_bounds__(PP_NEURON_BLOCK, 3)
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
                              const double *__restrict__ sampler_tables,
                              const uint32_t *__restrict__ out_ptr,
                              const uint32_t *__restrict__ out_idx, uint32_t max_out,
                              unsigned long long ring_size, uint32_t n_steps)
{
    cg::grid_group grid = cg::this_grid();
    const unsigned long long t0 = ctrl->step;
    const uint32_t rec0 = ctrl->rec_steps;
    const bool leader = blockIdx.x == 0 && threadIdx.x == 0;
    unsigned long long n_spikes = 0;
    uint32_t spike_base = 0, hits = 0, i, b;

    if (n_steps == 0u) return;          /* uniform: no block reaches a barrier */
    for (i = 0; i < n_steps; ++i) {
        const unsigned long long t = t0 + i;
        uint32_t cum, ns;
        for (b = blockIdx.x; b < n_blocks && !(PP_PROFILE_SKIP & 2); b += gridDim.x)
            pp_neuron_phase(pops, blocks[b], threadIdx.x, pop_flags, poisson_tables, seed, V, Iex,
                            Iin, ref, ring, spikes, spike_cap, spike_base, rec_ids, rec_cap, ctrl,
                            t);
        grid.sync();                                             /* barrier A */
        cum = __ldcg(&ctrl->n_spk);
        ns = cum - spike_base;
        spike_base = cum;
        if (ns > spike_cap) ns = spike_cap;   /* PP_ERR_SPIKE_LIST is already set */
        if (leader) {
            pp_close_step(ctrl, rec_end, rec0 + i, rec_chunk_steps, t);
            n_spikes += ns;
        }
        if (!(PP_PROFILE_SKIP & 1))
            pp_procedural_phase<true>(projs, pops, rowlen, sampler_tables, out_ptr, out_idx,
                                      max_out,
                                      spikes, ns, t, seed, ring, ring_size, ctrl, &hits);
        grid.sync();                                             /* barrier B */
    }
    pp_add_events(ctrl, threadIdx.x & 31u, hits);
    if (leader) pp_finish_launch(ctrl, t0, n_steps, rec0, n_spikes);
}

/* pp_step_persistent_stored -- the same with stored connectivity (device CSR as
 * pp_propagate_stored_spikes).  Arguments: those of pp_neuron_lif_update, then
 * n_blocks, rec_end, rec_chunk_steps, then the stored propagation's tables,
 * then n_steps.
 * Launch shape  : as pp_step_persistent_procedural (cooperative, occupancy-bound grid).
 * Thread map    : as pp_step_persistent_procedural; propagation as
 *                 pp_propagate_stored_spikes.
 * RNG counters  : Poisson input only (tag 3); the CSR holds the synapses.
 * Writes        : as pp_step_persistent_procedural (64-bit lane counts).
 * CPU twin      : CPUSimulator.run_steps with connectivity "stored".
 */
extern "C" __global__ void __launch_bounds__(PP_NEURON_BLOCK, 3)
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
                          const uint16_t *__restrict__ delays, unsigned long long ring_size,
                          uint32_t n_steps)
{
    cg::grid_group grid = cg::this_grid();
    const unsigned long long t0 = ctrl->step;
    const uint32_t rec0 = ctrl->rec_steps;
    const bool leader = blockIdx.x == 0 && threadIdx.x == 0;
    unsigned long long n_spikes = 0, hits = 0;
    uint32_t spike_base = 0, i, b;

    if (n_steps == 0u) return;
    for (i = 0; i < n_steps; ++i) {
        const unsigned long long t = t0 + i;
        uint32_t cum, ns;
        for (b = blockIdx.x; b < n_blocks && !(PP_PROFILE_SKIP & 2); b += gridDim.x)
            pp_neuron_phase(pops, blocks[b], threadIdx.x, pop_flags, poisson_tables, seed, V, Iex,
                            Iin, ref, ring, spikes, spike_cap, spike_base, rec_ids, rec_cap, ctrl,
                            t);
        grid.sync();                                             /* barrier A */
        cum = __ldcg(&ctrl->n_spk);
        ns = cum - spike_base;
        spike_base = cum;
        if (ns > spike_cap) ns = spike_cap;
        if (leader) {
            pp_close_step(ctrl, rec_end, rec0 + i, rec_chunk_steps, t);
            n_spikes += ns;
        }
        if (!(PP_PROFILE_SKIP & 1))
            pp_stored_phase<true>(projs, pops, out_ptr, out_idx, max_out, spikes, ns, t, row_base,
                                  indptr, targets, weights, delays, ring, ring_size, ctrl,
                                  &hits);
        grid.sync();                                             /* barrier B */
    }
    hits = pp_warp_sum_u64(hits);
    if ((threadIdx.x & 31u) == 0u && hits) atomicAdd(&ctrl->n_events, hits);
    if (leader) pp_finish_launch(ctrl, t0, n_steps, rec0, n_spikes);
}

/* neuron_lif.cu -- stage 1 of a step: neuron update of all populations, fused
 * with the Poisson input, spike list and spike recording.  See step.cuh for
 * the whole step.  Compile with -fmad=false (the float order of pp_lif_step
 * must match its NumPy twin). */
#include "phases.cuh"

/* pp_neuron_lif_update
 * Launch shape : grid = n_blocks (host block table: pyproc.plan.neuron_blocks,
 *                uploaded as device_tables()["blocks"]), block = PP_NEURON_BLOCK
 *                threads (256).
 *                Each block covers PP_NEURON_BLOCK consecutive neurons of ONE
 *                population, so a block never straddles two populations.
 *                8 blocks of 256 per SM (__launch_bounds__): 32 registers, no spill
 *                (the Poisson-source branch made it 37, 6 blocks per SM).
 * Thread map   : thread x of block b owns neuron blocks[b].y + x (local index)
 *                of population blocks[b].x; threads past the population end exit.
 * RNG counters : Poisson input (post neuron, step lo, step hi, tag 3) under
 *                key (seed, population stream): pp_poisson_input
 *                (input k of the population: word k); Poisson source
 *                populations (neuron, step lo, step hi, tag 6): pp_source_spike.
 * Reads        : ctrl->step; ring slot step % ring_slots (channel 0 and, when
 *                n_channels == 2, channel 1) of the neuron; its state.
 * Writes       : ring slot zeroed (plain stores: one owner per element);
 *                V, Iex, Iin, ref; spike list entry (population, local) at
 *                atomicAdd(&ctrl->n_spk, 1); recorded populations (pop_flags
 *                bit 0) also append the global id to rec_ids at
 *                atomicAdd(&ctrl->n_rec, 1) (ids past rec_cap are counted in
 *                ctrl->rec_lost, never written).  Errors: PP_ERR_INPUT_OVERFLOW
 *                (input outside int32, the CPU raises OverflowDetected),
 *                PP_ERR_SPIKE_LIST.
 * Body         : pp_neuron_phase (phases.cuh; spike_base 0).
 * CPU twin     : the neuron phase of CPUSimulator.run_steps (pyproc/backends/cpu.py),
 *                pyproc.neuron.lif_step, poisson_input and source_spikes.
 */
extern "C" __global__ void __launch_bounds__(PP_NEURON_BLOCK, 8)
pp_neuron_lif_update(const pp_pop *__restrict__ pops, const uint2 *__restrict__ blocks,
                     const uint32_t *__restrict__ pop_flags,
                     const uint32_t *__restrict__ poisson_tables, uint32_t seed,
                     float *__restrict__ V, float *__restrict__ Iex, float *__restrict__ Iin,
                     int32_t *__restrict__ ref, int32_t *__restrict__ ring,
                     uint2 *__restrict__ spikes, uint32_t spike_cap,
                     uint32_t *__restrict__ rec_ids, uint32_t rec_cap, pp_ctrl *ctrl)
{
    pp_neuron_phase<true>(pops, blocks[blockIdx.x], threadIdx.x, pop_flags, poisson_tables,
                          seed, V, Iex, Iin, ref, ring, spikes, spike_cap, 0u, rec_ids, rec_cap,
                          ctrl, &ctrl->n_spk, &ctrl->n_rec, ctrl->step);
}

/* neuron_lif.cu -- stage 1 of a step: neuron update of all populations, fused
 * with the Poisson input, spike list and spike recording.  See step.cuh for
 * the whole step.  Compile with -fmad=false (the float order of pp_lif_step
 * must match its NumPy twin). */
#include "step.cuh"

/* pp_neuron_lif_update
 * Launch shape : grid = n_blocks (host block table, pyproc/backends/cuda.py
 *                build_block_table), block = PP_NEURON_BLOCK threads (256).
 *                Each block covers PP_NEURON_BLOCK consecutive neurons of ONE
 *                population, so a block never straddles two populations.
 * Thread map   : thread x of block b owns neuron blocks[b].y + x (local index)
 *                of population blocks[b].x; threads past the population end exit.
 * RNG counters : Poisson input (post neuron, step lo, step hi, tag 3) under
 *                key (seed, population stream): pp_poisson_draw.
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
 * CPU twin     : CPUSimulator.run_steps first loop (pyproc/backends/cpu.py),
 *                pyproc.neuron.lif_step and poisson_counts.
 */
#ifndef PP_NEURON_BLOCK
#define PP_NEURON_BLOCK 256
#endif

extern "C" __global__ void __launch_bounds__(PP_NEURON_BLOCK)
pp_neuron_lif_update(const pp_pop *__restrict__ pops, const uint2 *__restrict__ blocks,
                     const uint32_t *__restrict__ pop_flags,
                     const uint32_t *__restrict__ poisson_tables, uint32_t seed,
                     float *__restrict__ V, float *__restrict__ Iex, float *__restrict__ Iin,
                     int32_t *__restrict__ ref, int32_t *__restrict__ ring,
                     uint2 *__restrict__ spikes, uint32_t spike_cap,
                     uint32_t *__restrict__ rec_ids, uint32_t rec_cap, pp_ctrl *ctrl)
{
    const uint2 blk = blocks[blockIdx.x];
    const pp_pop *p = pops + blk.x;
    const uint32_t local = blk.y + threadIdx.x;
    uint64_t t, i0, i1;
    uint32_t slot, g;
    int64_t acc_ex, acc_in = 0;
    float v, iex, iin;
    int32_t r;

    if (local >= p->n) return;
    t = ctrl->step;
    slot = (uint32_t)(t % (uint64_t)p->ring_slots);
    g = p->offset + local;

    i0 = pp_ring_index(p, slot, 0u, local);
    acc_ex = ring[i0];
    ring[i0] = 0;
    if (p->n_channels == 2u) {
        i1 = pp_ring_index(p, slot, 1u, local);
        acc_in = ring[i1];
        ring[i1] = 0;
    }
    if (p->poisson_len) {
        int64_t add = (int64_t)pp_poisson_draw(p, poisson_tables, seed, local, t)
                      * (int64_t)p->poisson_w;
        if (p->poisson_channel) acc_in += add; else acc_ex += add;
    }
    if (acc_ex > 2147483647LL || acc_ex < -2147483647LL)
        pp_set_error(ctrl, PP_ERR_INPUT_OVERFLOW, g, 0);
    if (acc_in > 2147483647LL || acc_in < -2147483647LL)
        pp_set_error(ctrl, PP_ERR_INPUT_OVERFLOW, g, 1);

    v = V[g]; iex = Iex[g]; iin = Iin[g]; r = ref[g];
    if (pp_lif_step(&v, &iex, &iin, &r, (int32_t)acc_ex, (int32_t)acc_in, p)) {
        uint32_t k = atomicAdd(&ctrl->n_spk, 1u);
        if (k < spike_cap) spikes[k] = make_uint2(blk.x, local);
        else pp_set_error(ctrl, PP_ERR_SPIKE_LIST, g, 0);
        if (pop_flags[blk.x] & 1u) {
            uint32_t q = atomicAdd(&ctrl->n_rec, 1u);
            if (q < rec_cap) rec_ids[q] = g;
            else atomicAdd(&ctrl->rec_lost, 1u);
        }
    }
    V[g] = v; Iex[g] = iex; Iin[g] = iin; ref[g] = r;
}

/* record.cu -- stage 3 of a step: close the step (see step.cuh). */
#include "step.cuh"

/* pp_record_advance
 * Launch shape : grid = 1, block = 1 (the last launch of every step).
 * Thread map   : the single thread owns the control block.
 * RNG counters : none.
 * Reads        : ctrl->n_rec, n_spk, rec_steps, step.
 * Writes       : rec_end[rec_steps] = n_rec (the record buffer holds the ids of
 *                step s of the chunk in rec_ids[rec_end[s-1] : rec_end[s]]);
 *                rec_steps += 1; n_spikes += n_spk; n_spk = 0; step += 1.  Plain
 *                stores (kernel boundaries order them).  PP_ERR_REC_STEPS if the
 *                host let the chunk run past rec_chunk_steps (never by design).
 * CPU twin     : the end of one iteration of CPUSimulator.run_steps
 *                (self.step += 1) plus the record.append of that step.
 */
extern "C" __global__ void pp_record_advance(pp_ctrl *ctrl, uint32_t *rec_end,
                                             uint32_t rec_chunk_steps)
{
    uint32_t k;
    if (blockIdx.x != 0 || threadIdx.x != 0) return;
    k = ctrl->rec_steps;
    if (k < rec_chunk_steps) rec_end[k] = ctrl->n_rec;
    else pp_set_error(ctrl, PP_ERR_REC_STEPS, k, 0);
    ctrl->rec_steps = k + 1u;
    ctrl->n_spikes += ctrl->n_spk;
    ctrl->n_spk = 0u;
    ctrl->step += 1ull;
}

/* pp_record_state
 * Launch shape : grid = ceil(n / 256), block = 256; launched by the host between
 *                two batches of steps, after the step whose end is a sample time of
 *                a state recording (pyproc.staterec: one launch per interval and
 *                variable, the ids of every population recording it).
 * Thread map   : thread i of the grid copies entry i (i < n; the rest exit).
 * RNG counters : none.
 * Reads        : src[idx[i]]: V (relative to E_L), Iex or Iin of the neuron with
 *                global id idx[i], float32, as the step left it.
 * Writes       : out[i] = src[idx[i]] (plain stores, one owner per element); the
 *                host passes out at this sample's row of the chunk's state buffer.
 * CPU twin     : the state sample of CPUSimulator.run_steps (arrays[j][ids]).
 */
extern "C" __global__ void pp_record_state(const float *__restrict__ src,
                                           const uint32_t *__restrict__ idx, uint32_t n,
                                           float *__restrict__ out)
{
    const uint32_t i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) out[i] = src[idx[i]];
}

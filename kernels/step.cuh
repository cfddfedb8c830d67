/* step.cuh -- device-only pieces shared by the step kernels (nvcc only).
 *
 * The step loop on the device, per step t (the same order as the reference
 * loop CPUSimulator.run_steps in pyproc/backends/cpu.py):
 *
 *   1. pp_neuron_lif_update      (neuron_lif.cu)   every neuron of every population:
 *        read + zero ring slot t % ring_slots, add its Poisson input, one LIF step,
 *        append spikes to the spike list and recorded spikes to the record buffer.
 *   2. pp_propagate_procedural_spikes (propagate_procedural.cu) or
 *      pp_propagate_stored_spikes     (propagate_stored.cu)
 *        every (spike, outgoing projection): atomicAdd each synapse's fixed-point
 *        weight into ring slot (t + delay) % ring_slots of the target population.
 *   3. pp_record_advance         (record.cu)       one thread: close the step in the
 *        record buffer, empty the spike list, step += 1.
 *
 * The step index lives in device memory (pp_ctrl.step), so a CUDA graph of K
 * steps is K copies of the same three launches with the same arguments.
 * Integer atomics make the ring sums independent of the order of additions:
 * the result is bit-identical to the CPU loop whatever the launch shape.
 */
#ifndef PP_STEP_CUH
#define PP_STEP_CUH

#include <stddef.h>
#include "lif.cuh"

#ifndef __CUDACC__
#error "step.cuh is device code: compile with nvcc"
#endif

/* Control block, one per simulation, in device memory.  Mirrored by
 * CTRL_DTYPE in pyproc/kernels.py (64 bytes; offsets in the comments). */
typedef struct {
    unsigned long long step;       /*  0 current step (read by every kernel)            */
    unsigned long long n_events;   /*  8 synaptic events delivered so far               */
    unsigned long long n_spikes;   /* 16 spikes emitted so far (all populations)         */
    unsigned long long err_step;   /* 24 step of the first error                         */
    unsigned int n_spk;            /* 32 entries in the spike list (current step)        */
    unsigned int n_rec;            /* 36 ids appended to the record buffer since a drain */
    unsigned int rec_steps;        /* 40 steps closed in the record buffer since a drain */
    unsigned int rec_lost;         /* 44 ids that did not fit (must stay 0)              */
    unsigned int err_code;         /* 48 first error, PP_ERR_* (0: none)                 */
    unsigned int err_info;         /* 52 error detail (global neuron id, row, ...)       */
    int err_aux;                   /* 56 error detail (channel, rule id, ...)            */
    unsigned int n_spk_odd;        /* 60 spike count of odd steps (pipelined persistent) */
} pp_ctrl;

static_assert(sizeof(pp_ctrl) == 64, "pp_ctrl must stay 64 bytes (CTRL_DTYPE)");
static_assert(offsetof(pp_ctrl, n_spk) == 32 && offsetof(pp_ctrl, n_rec) == 36 &&
              offsetof(pp_ctrl, err_code) == 48 && offsetof(pp_ctrl, err_aux) == 56,
              "pp_ctrl offsets are mirrored by CTRL_DTYPE in pyproc/kernels.py");

/* Error codes (first error wins); the host maps them to kernel names
 * (pyproc/kernels.py ERROR_KERNELS). */
#define PP_ERR_INPUT_OVERFLOW 1u   /* pp_neuron_lif_update: a step's input exceeds int32   */
#define PP_ERR_SPIKE_LIST     2u   /* pp_neuron_lif_update: spike list full                */
#define PP_ERR_BAD_RULE       3u   /* pp_propagate_*: unknown rule id                      */
#define PP_ERR_RING_INDEX     4u   /* pp_propagate_*: ring index out of range              */
#define PP_ERR_REC_STEPS      5u   /* pp_record_advance: more steps than the record chunk  */
#define PP_ERR_CSR            6u   /* pp_build_fill: a row does not fit its CSR slice      */

__device__ __forceinline__ void pp_set_error_at(pp_ctrl *ctrl, unsigned long long step,
                                                unsigned int code, unsigned int info, int aux)
{
    if (atomicCAS(&ctrl->err_code, 0u, code) == 0u) {
        ctrl->err_step = step;
        ctrl->err_info = info;
        ctrl->err_aux = aux;
    }
}

/* Error at the step whose low 32 bits are t_lo, no earlier than ctrl->step
 * (the step a kernel started at) and less than 2^32 steps after it: saves a
 * register in the propagation loops. */
__device__ __forceinline__ void pp_set_error_lo(pp_ctrl *ctrl, uint32_t t_lo, unsigned int code,
                                                unsigned int info, int aux)
{
    const unsigned long long s0 = ctrl->step;
    pp_set_error_at(ctrl, s0 + (uint32_t)(t_lo - (uint32_t)s0), code, info, aux);
}

/* As pp_set_error_at at the step in ctrl->step (the per-step kernels; the
 * persistent kernel keeps the step in a register and passes it). */
__device__ __forceinline__ void pp_set_error(pp_ctrl *ctrl, unsigned int code, unsigned int info,
                                             int aux)
{
    pp_set_error_at(ctrl, ctrl->step, code, info, aux);
}

/* Sum over the 32 lanes of a full warp (every lane gets the total). */
__device__ __forceinline__ unsigned long long pp_warp_sum_u64(unsigned long long x)
{
    int o;
    for (o = 16; o > 0; o >>= 1) x += __shfl_xor_sync(0xffffffffu, x, o);
    return x;
}

/* Add a warp's synapse counts (one per lane) to ctrl->n_events: one 64-bit
 * atomicAdd by lane 0.  Every lane of the warp must call it. */
__device__ __forceinline__ void pp_add_events(pp_ctrl *ctrl, uint32_t lane, uint32_t count)
{
    const unsigned long long s = pp_warp_sum_u64((unsigned long long)count);
    if (lane == 0u && s) atomicAdd(&ctrl->n_events, s);
}

/* Ring index *idx of neuron first of target population tp, channel, slot (t + d) %
 * ring_slots (tmod = t % ring_slots, 1 <= d < ring_slots: one subtraction replaces the
 * modulo); true if that slot is valid and neurons first .. first + count - 1 lie inside
 * the population and the ring.  One synapse (pp_ring_add), or once for a whole row of
 * a constant delay (the bernoulli walk, a tile's flush). */
__device__ __forceinline__ bool pp_ring_row(const pp_pop *tp, uint32_t tmod, uint32_t channel,
                                            int32_t d, uint32_t first, uint32_t count,
                                            unsigned long long ring_size, uint64_t *idx)
{
    uint32_t slot = tmod + (uint32_t)d;
    if (slot >= tp->ring_slots) slot -= tp->ring_slots;
    *idx = pp_ring_index(tp, slot, channel, first);
    return d >= 1 && slot < tp->ring_slots && first + count <= tp->n && *idx + count <= ring_size;
}

/* One synapse into the delay ring (pp_ring_row; compile.py makes ring_slots = largest
 * incoming delay + 1).  t_lo (low 32 bits of the step) only dates an error
 * (pp_set_error_lo). */
__device__ __forceinline__ void pp_ring_add(int32_t *ring, unsigned long long ring_size,
                                            const pp_pop *tp, uint32_t tmod, uint32_t channel,
                                            uint32_t target, int32_t w, int32_t d, pp_ctrl *ctrl,
                                            uint32_t t_lo)
{
    uint64_t idx;
    if (pp_ring_row(tp, tmod, channel, d, target, 1u, ring_size, &idx))
        atomicAdd(ring + idx, w);
    else
        pp_set_error_lo(ctrl, t_lo, PP_ERR_RING_INDEX, target, d);
}

/* ---- the (spike, outgoing projection, part) work split ---------------------
 * Used by both propagation kernels.  The step's spikes s < n_spk, each with up
 * to max_out outgoing projections q, give items = n_spk * max_out (spike, q)
 * pairs; each item is cut into `split` parts so that there are about
 * PP_PARTS_PER_WARP parts per warp of the grid (split in [1, 32], a function
 * of n_spk and the grid only).  Several parts per warp let the grid-stride
 * loop balance rows of unequal length (E->E rows are several times longer
 * than E->I rows): a warp that drew short parts takes more of them while the
 * long ones finish.  Warp w handles virtual warps v = w, w + n_warps, ...; v
 * maps to item v / split and part v % split, and lane l of part p handles
 * draw / segment / synapse indices p * 32 + l, p * 32 + l + 32 * split, ...
 * Which lane handles which synapse changes nothing: every synapse is a pure
 * function of its indices and the ring sums are integer. */
#define PP_PARTS_PER_WARP 4u
/* The persistent kernel's split.  One part per warp (no second item, whose chain
 * of dependent loads a warp would pay again) was tried on an H200 (commit
 * 1092b45): the full microcircuit's persistent loop went from 8-9 % slower than
 * the graph loop (earlier runs) to 31 % slower, and the throughput-bound runs got
 * slower too, so the persistent kernel balances like the per-step kernels.  The
 * one-block build (16 warps in all) takes 2 (-DPP_PARTS_PER_WARP_PERSISTENT=2): with 4,
 * a step of the 1,000-neuron network (~2 spikes, 4-5 items of 2 or 7 bernoulli
 * segments) hands a warp 4 virtual warps, each paying its item's chain, and the warp
 * that draws the most segments sets the step (a model of the split, ~25 % longer than
 * with 2; not measured). */
#ifndef PP_PARTS_PER_WARP_PERSISTENT
#define PP_PARTS_PER_WARP_PERSISTENT 4u
#endif

__device__ __forceinline__ uint32_t pp_split_for(unsigned long long items, unsigned int n_warps,
                                                 uint32_t parts_per_warp)
{
    /* ceil(parts_per_warp * n_warps / items), in [1, 32] */
    const unsigned long long want = (unsigned long long)parts_per_warp * n_warps;
    unsigned long long s;
    if (items >= want) return 1u;
    s = (want + items - 1ull) / items;
    return s > 32ull ? 32u : (uint32_t)s;
}

/* t % r for the step counter: 32-bit arithmetic while t < 2^32 (4.9 days of model
 * time at dt 0.1 ms), a 64-bit division (a long software routine on the critical
 * path of every item) only beyond. */
__device__ __forceinline__ uint32_t pp_step_mod(unsigned long long t, uint32_t r)
{
    return (t >> 32) == 0ull ? (uint32_t)t % r : (uint32_t)(t % (unsigned long long)r);
}

#endif /* PP_STEP_CUH */

/* propagate_procedural.cu -- stage 2 of a step with procedural connectivity:
 * regenerate and deliver every synapse of every spike of the step (see
 * step.cuh).  Compile with -fmad=false (the samplers' rare double tails must
 * match the NumPy twin bit for bit; everything else a synapse needs is integer). */
#include "phases.cuh"

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
 *                  p*32 + l, + 32*split, ... (geometric skipping inside each;
 *                  with a constant delay in one flat loop over its segments,
 *                  pp_bernoulli_walk_const_delay);
 *                fixed-number rules: lane walks draw indices j the same way
 *                  below the row length rowlen[rowlen_offset + pre];
 *                decoder: part 0 only, lane j < min(32, n_post).
 * RNG counters : bernoulli (pre, segment, draw j, tag 1), fixed-number and
 *                decoder (pre, j, 0, tag 2), key (seed, projection stream):
 *                pp_bernoulli_draw, pp_fixed_draw, pp_weight_fixed, pp_delay_steps.
 * Sampler tables: sampler_tables = int32[PP_TABLES_LEN] (sampling.cuh: normal
 *                quantile knots at PP_ZTAB_OFFSET, log2 knots at PP_LTAB_OFFSET),
 *                pyproc.sampling.sampler_tables() uploaded once by the backend;
 *                read by the truncated-normal weights / delays and the
 *                geometric skip.
 * Reads        : ctrl->step, ctrl->n_spk, tables, sampler_tables, spike list.
 * Writes       : int32 atomicAdd of the fixed-point weight into the target's
 *                ring slot (step + delay) % ring_slots, channel pj.channel
 *                (pp_ring_add; a constant delay's row checked once per lane
 *                walk); one 64-bit atomicAdd per warp into
 *                ctrl->n_events (pp_add_events; more only if a lane counts
 *                2^31 synapses).  Errors: PP_ERR_BAD_RULE, PP_ERR_RING_INDEX.
 * Body         : pp_procedural_phase (phases.cuh).
 * CPU twin     : the propagation part of CPUSimulator.run_steps with connectivity
 *                "procedural" (pyproc.connectivity.fixed_rows_many for the
 *                fixed-number rules, rows for the others); shim_row in
 *                tests/csrc/shim.c walks a row in the same way.
 */
extern "C" __global__ void __launch_bounds__(256, 4)
pp_propagate_procedural_spikes(const pp_proj *__restrict__ projs, const pp_pop *__restrict__ pops,
                               const uint32_t *__restrict__ rowlen,
                               const int32_t *__restrict__ sampler_tables,
                               const uint32_t *__restrict__ out_ptr,
                               const uint32_t *__restrict__ out_idx, uint32_t max_out,
                               const uint2 *spikes, uint32_t seed,
                               int32_t *__restrict__ ring, unsigned long long ring_size,
                               pp_ctrl *ctrl)
{
    uint32_t hits = 0;
    pp_procedural_phase<false, false>(projs, pops, rowlen, sampler_tables, out_ptr, out_idx,
                                      max_out, spikes, ctrl->n_spk, ctrl->step, seed, ring,
                                      ring_size, ctrl, &hits, PP_PARTS_PER_WARP);
    /* every lane of a warp reaches this point (the loop bounds are warp-uniform) */
    pp_add_events(ctrl, threadIdx.x & 31u, hits);
}

/* pp_propagate_procedural_tiles
 * Launch shape : any grid of whole warps, blockDim.x a multiple of 32 (<= 256:
 *                __launch_bounds__(256, 5): <= 48 registers, 5 blocks per SM, the
 *                backend's grid from this kernel's own occupancy); dynamic shared
 *                memory 4 * 32 * (largest tiled seg_width + 1) bytes (device_tables
 *                "tile_smem_bytes"), static 1,168 (the column queues and a chunk's
 *                spike list).  Grid-stride over (tile, spike chunk) items.
 * Thread map   : pp_tile_phase (phases.cuh): a block per item; the block first
 *                copies the chunk's spikes from the projection's source into a shared
 *                list (each spike read once); lane l of every warp walks segment
 *                32 * tile + l of their rows, taking them one at a time from column
 *                l's queue (static shared next[32]).
 * RNG counters : bernoulli (pre, segment, draw j, tag 1), key (seed, projection
 *                stream), as pp_propagate_procedural_spikes.
 * Reads        : ctrl->step, ctrl->n_spk, tables, sampler_tables, tile table
 *                (projection, tile) uint32 pairs, spike list.
 * Writes       : shared int32 atomics (and the column queues), then one int32
 *                atomicAdd per non-zero neuron of a tile into its ring slot
 *                (step + d_const) % ring_slots; one
 *                64-bit atomicAdd per warp into ctrl->n_events.  Errors:
 *                PP_ERR_RING_INDEX.
 * Use          : with pp_propagate_procedural_spikes on the out tables that leave
 *                the tiled projections out ("gen_out_ptr", "gen_out_idx"); together
 *                they deliver what pp_propagate_procedural_spikes does on the full
 *                tables.  The persistent kernel does this per step when the step has
 *                at least tile_min_spikes spikes.
 * CPU twin     : the propagation part of CPUSimulator.run_steps (pyproc.connectivity.rows).
 */
extern "C" __global__ void __launch_bounds__(256, 5)
pp_propagate_procedural_tiles(const pp_proj *__restrict__ projs, const pp_pop *__restrict__ pops,
                              const int32_t *__restrict__ sampler_tables,
                              const uint2 *__restrict__ tiles, uint32_t n_tiles,
                              const uint2 *spikes, uint32_t seed, int32_t *__restrict__ ring,
                              unsigned long long ring_size, pp_ctrl *ctrl)
{
    extern __shared__ __align__(16) int32_t pp_tile_acc[];
    uint32_t hits = 0;
    pp_tile_phase<false>(projs, pops, sampler_tables, tiles, n_tiles, spikes, ctrl->n_spk,
                         ctrl->step, seed, ring, ring_size, ctrl, pp_tile_acc, &hits);
    pp_add_events(ctrl, threadIdx.x & 31u, hits);
}

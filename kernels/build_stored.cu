/* build_stored.cu -- build the device CSR of stored connectivity on the GPU
 * with the same header functions as the procedural kernels (two passes: count
 * per row, host exclusive scan of the counts, fill).  The result equals
 * pyproc.connectivity.materialise for every projection, in the same order
 * (bernoulli rows sorted by target; fixed-number and decoder rows in draw
 * order).  Compile with -fmad=false. */
#include "step.cuh"

/* Projection of global CSR row r: the k with row_base[k] <= r < row_base[k+1]
 * (every projection has n_pre >= 1 rows, so row_base is strictly increasing). */
__device__ __forceinline__ uint32_t pp_row_projection(const unsigned long long *row_base,
                                                      uint32_t n_projs, unsigned long long r)
{
    uint32_t lo = 0, hi = n_projs;              /* answer in [lo, hi) */
    while (hi - lo > 1u) {
        uint32_t mid = (lo + hi) >> 1;
        if (row_base[mid] <= r) lo = mid; else hi = mid;
    }
    return lo;
}

/* Synapses of segment seg of bernoulli row pre (autapse removed), and, when
 * write != 0, write them from position e on (bounded by e_end); tab: the
 * sampler tables. */
__device__ __forceinline__ uint32_t pp_segment_walk(const pp_proj *pj, const int32_t *tab,
                                                    uint32_t seed, uint32_t pre,
                                                    uint32_t seg, int write, long long e,
                                                    long long e_end, uint32_t *targets,
                                                    int32_t *weights, uint16_t *delays,
                                                    pp_ctrl *ctrl)
{
    const uint32_t len = pp_segment_length(pj, seg);
    int32_t pos = -1;
    uint32_t j = 0, c = 0, ww, wd;
    pp_u32x4 r;
    for (;;) {
        uint32_t tg;
        pos = pp_bernoulli_draw(pj, seed, pre, seg, j++, pos, &r, &ww, &wd, tab, 1);
        if (pos >= (int32_t)len) break;
        tg = seg * pj->seg_width + (uint32_t)pos;
        if (!pj->autapses && tg == pre) continue;
        if (write) {
            if (e + (long long)c < e_end) {
                targets[e + c] = tg;
                weights[e + c] = pp_weight_fixed(pj, ww, tab);
                delays[e + c] = (uint16_t)pp_delay_steps(pj, wd, tab);
            } else {
                pp_set_error(ctrl, PP_ERR_CSR, pre, (int)seg);
            }
        }
        ++c;
    }
    return c;
}

/* pp_build_csr_count
 * Launch shape : any grid of whole warps; grid-stride over CSR rows.
 * Thread map   : one warp per global row r < row_base[n_projs] (projection k by
 *                binary search, pre = r - row_base[k]); bernoulli lanes walk
 *                segments l, l + 32, ...; decoder lanes j < min(32, n_post).
 * RNG counters : bernoulli (pre, segment, draw j, tag 1); none for the other
 *                rules (fixed-number row lengths come from rowlen).
 * Sampler tables: sampler_tables = int32[PP_TABLES_LEN] (sampling.cuh), for
 *                the geometric skip (its log2 table).
 * Writes       : indptr[r + 1] = synapse count of row r (lane 0, plain store);
 *                the host sets indptr[0] = 0 and turns counts into offsets.
 * CPU twin     : np.bincount of the rows in pyproc.connectivity.materialise.
 */
extern "C" __global__ void
pp_build_csr_count(const pp_proj *__restrict__ projs, uint32_t n_projs,
                   const unsigned long long *__restrict__ row_base,
                   const uint32_t *__restrict__ rowlen,
                   const int32_t *__restrict__ sampler_tables, uint32_t seed,
                   long long *__restrict__ indptr, pp_ctrl *ctrl)
{
    const uint32_t lane = threadIdx.x & 31u;
    const unsigned long long n_warps = (gridDim.x * blockDim.x) >> 5;
    const unsigned long long rows = row_base[n_projs];
    unsigned long long r;
    for (r = (blockIdx.x * blockDim.x + threadIdx.x) >> 5; r < rows; r += n_warps) {
        const uint32_t k = pp_row_projection(row_base, n_projs, r);
        const pp_proj *pj = projs + k;
        const uint32_t pre = (uint32_t)(r - row_base[k]);
        unsigned long long c = 0;
        if (pj->rule == PP_RULE_BERNOULLI) {
            uint32_t seg;
            for (seg = lane; seg < pj->n_seg; seg += 32u)
                c += pp_segment_walk(pj, sampler_tables, seed, pre, seg, 0, 0, 0, 0, 0, 0, ctrl);
        } else if (pj->rule == PP_RULE_FIXED) {
            c = lane == 0u ? rowlen[pj->rowlen_offset + pre] : 0u;
        } else if (pj->rule == PP_RULE_DECODER) {
            c = (lane < pj->n_post && pp_decoder_hit(pre, lane)) ? 1u : 0u;
        } else if (lane == 0u) {
            pp_set_error(ctrl, PP_ERR_BAD_RULE, k, (int)pj->rule);
        }
        c = pp_warp_sum_u64(c);
        if (lane == 0u) indptr[r + 1ull] = (long long)c;
    }
}

/* pp_build_csr_fill
 * Launch shape : as pp_build_csr_count (indptr now holds row offsets).
 * Thread map   : one warp per global row.  bernoulli: rounds of 32 segments,
 *                lane l takes segment round*32 + l, counts it (first walk), an
 *                exclusive warp scan gives its offset, a second walk writes it,
 *                so the row comes out sorted by target.  fixed-number: lane
 *                writes draw j at e0 + j (j = l, l + 32, ...).  decoder: lane j
 *                writes at e0 + (number of hits below j).
 * RNG counters : bernoulli (pre, segment, draw j, tag 1); fixed-number and
 *                decoder (pre, j, 0, tag 2).
 * Sampler tables: sampler_tables = int32[PP_TABLES_LEN] (sampling.cuh), for
 *                the geometric skip and the truncated-normal weights / delays.
 * Writes       : targets, weights, delays of the row, plain stores into
 *                [indptr[r], indptr[r+1]) (PP_ERR_CSR if a row does not fit it
 *                or e1 > n_syn_cap).
 * CPU twin     : pyproc.connectivity.materialise.
 */
extern "C" __global__ void
pp_build_csr_fill(const pp_proj *__restrict__ projs, uint32_t n_projs,
                  const unsigned long long *__restrict__ row_base,
                  const uint32_t *__restrict__ rowlen,
                  const int32_t *__restrict__ sampler_tables, uint32_t seed,
                  const long long *__restrict__ indptr, unsigned long long n_syn_cap,
                  uint32_t *__restrict__ targets, int32_t *__restrict__ weights,
                  uint16_t *__restrict__ delays, pp_ctrl *ctrl)
{
    const uint32_t lane = threadIdx.x & 31u;
    const unsigned long long n_warps = (gridDim.x * blockDim.x) >> 5;
    const unsigned long long rows = row_base[n_projs];
    unsigned long long r;
    for (r = (blockIdx.x * blockDim.x + threadIdx.x) >> 5; r < rows; r += n_warps) {
        const uint32_t k = pp_row_projection(row_base, n_projs, r);
        const pp_proj *pj = projs + k;
        const uint32_t pre = (uint32_t)(r - row_base[k]);
        const long long e0 = indptr[r], e1 = indptr[r + 1ull];
        pp_u32x4 rr;
        if (e1 < e0 || (unsigned long long)e1 > n_syn_cap) {
            if (lane == 0u) pp_set_error(ctrl, PP_ERR_CSR, (uint32_t)r, -1);
            continue;                                   /* warp-uniform */
        }
        if (pj->rule == PP_RULE_BERNOULLI) {
            long long base = e0;
            uint32_t seg0;
            for (seg0 = 0; seg0 < pj->n_seg; seg0 += 32u) {
                const uint32_t seg = seg0 + lane;
                uint32_t c = seg < pj->n_seg
                    ? pp_segment_walk(pj, sampler_tables, seed, pre, seg, 0, 0, 0, 0, 0, 0, ctrl)
                    : 0u;
                uint32_t incl = c, tot;
                int o;
                for (o = 1; o < 32; o <<= 1) {
                    uint32_t y = __shfl_up_sync(0xffffffffu, incl, o);
                    if (lane >= (uint32_t)o) incl += y;
                }
                tot = __shfl_sync(0xffffffffu, incl, 31);
                if (c)
                    pp_segment_walk(pj, sampler_tables, seed, pre, seg, 1,
                                    base + (long long)(incl - c), e1,
                                    targets, weights, delays, ctrl);
                base += tot;
            }
            if (lane == 0u && base != e1) pp_set_error(ctrl, PP_ERR_CSR, pre, -2);
        } else if (pj->rule == PP_RULE_FIXED) {
            const uint32_t L = rowlen[pj->rowlen_offset + pre];
            uint32_t j;
            if (e0 + (long long)L != e1) {
                if (lane == 0u) pp_set_error(ctrl, PP_ERR_CSR, pre, -3);
                continue;                               /* warp-uniform */
            }
            for (j = lane; j < L; j += 32u) {
                const uint32_t tg = pp_fixed_draw(pj, seed, pre, j, &rr);
                targets[e0 + j] = tg;
                weights[e0 + j] = pp_weight_fixed(pj, rr.v[1], sampler_tables);
                delays[e0 + j] = (uint16_t)pp_delay_steps(pj, rr.v[2], sampler_tables);
            }
        } else if (pj->rule == PP_RULE_DECODER) {
            const int hit = lane < pj->n_post && pp_decoder_hit(pre, lane);
            const unsigned int mask = __ballot_sync(0xffffffffu, hit);
            const long long e = e0 + __popc(mask & ((1u << lane) - 1u));
            if (e0 + __popc(mask) != e1) {
                if (lane == 0u) pp_set_error(ctrl, PP_ERR_CSR, pre, -4);
            } else if (hit) {
                rr = pp_philox4x32_10(pre, lane, 0u, PP_TAG_FIXED, seed, pj->stream);
                targets[e] = lane;
                weights[e] = pp_weight_fixed(pj, rr.v[1], sampler_tables);
                delays[e] = (uint16_t)pp_delay_steps(pj, rr.v[2], sampler_tables);
            }
        } else if (lane == 0u) {
            pp_set_error(ctrl, PP_ERR_BAD_RULE, k, (int)pj->rule);
        }
    }
}

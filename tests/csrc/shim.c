/* shim.c -- batch wrappers that let the CPU test suite call the kernels'
 * headers compiled by gcc (ctypes).  Built by tests/conftest.py with
 *   gcc -O2 -ffp-contract=off -shared -fPIC -I kernels
 * No logic of its own: every function loops over a header function.  `tab` is
 * always the caller's sampler tables (pyproc.sampling.sampler_tables(),
 * PP_TABLES_LEN int32), the very array the CUDA backend uploads.
 */
#include <stddef.h>
#include "lif.cuh"

void shim_philox(size_t n, const uint32_t *ctr, const uint32_t *key, uint32_t *out)
{
    size_t i;
    for (i = 0; i < n; ++i) {
        pp_u32x4 r = pp_philox4x32_10(ctr[4 * i], ctr[4 * i + 1], ctr[4 * i + 2], ctr[4 * i + 3],
                                      key[2 * i], key[2 * i + 1]);
        out[4 * i] = r.v[0]; out[4 * i + 1] = r.v[1]; out[4 * i + 2] = r.v[2]; out[4 * i + 3] = r.v[3];
    }
}

void shim_log(size_t n, const double *x, double *out)
{ size_t i; for (i = 0; i < n; ++i) out[i] = pp_log(x[i]); }

void shim_quantile(size_t n, const double *p, double *out)
{ size_t i; for (i = 0; i < n; ++i) out[i] = pp_norm_quantile(p[i]); }

void shim_quantile_fx(size_t n, const uint32_t *P, const int32_t *tab, int32_t *out)
{ size_t i; for (i = 0; i < n; ++i) out[i] = pp_norm_quantile_fx(P[i], tab); }

size_t shim_tables_len(void) { return PP_TABLES_LEN; }
size_t shim_ltab_offset(void) { return PP_LTAB_OFFSET; }

void shim_trunc_normal_fx(size_t n, const uint32_t *r, uint32_t plo, uint32_t pwidth, int64_t c0,
                          int32_t b, uint32_t shift, const int32_t *tab, int64_t *out)
{ size_t i; for (i = 0; i < n; ++i) out[i] = pp_trunc_normal_fx(r[i], plo, pwidth, c0, b, shift, tab); }

void shim_geometric(size_t n, const uint32_t *r, uint32_t gmul, uint32_t gshift, uint32_t cap,
                    const int32_t *tab, int64_t *out)
{ size_t i; for (i = 0; i < n; ++i) out[i] = pp_geometric_skip(r[i], gmul, gshift, cap, tab); }

void shim_uniform_int(size_t n, const uint32_t *r, uint32_t m, uint32_t *out)
{ size_t i; for (i = 0; i < n; ++i) out[i] = pp_uniform_int(r[i], m); }

void shim_poisson(size_t n, const uint32_t *r, const uint32_t *T, uint32_t len, int64_t *out)
{ size_t i; for (i = 0; i < n; ++i) out[i] = pp_poisson_count(r[i], T, len); }

/* One whole row of a projection: returns the synapse count (or -1 if more
 * than cap), targets local to the target population. */
int64_t shim_row(const pp_proj *pj, const int32_t *tab, uint32_t seed, uint32_t pre,
                 uint32_t rowlen, uint32_t *target, int32_t *weight, int32_t *delay, int64_t cap)
{
    int64_t n = 0;
    pp_u32x4 r;
    if (pj->rule == PP_RULE_BERNOULLI) {
        uint32_t seg;
        for (seg = 0; seg < pj->n_seg; ++seg) {
            uint32_t len = pp_segment_length(pj, seg), j = 0, ww, wd;
            int32_t pos = -1;
            for (;;) {
                uint32_t t;
                pos = pp_bernoulli_draw(pj, seed, pre, seg, j++, pos, &r, &ww, &wd, tab, 1);
                if (pos >= (int32_t)len) break;
                t = seg * pj->seg_width + (uint32_t)pos;
                if (!pj->autapses && t == pre) continue;
                if (n >= cap) return -1;
                target[n] = t; weight[n] = pp_weight_fixed(pj, ww, tab);
                delay[n] = pp_delay_steps(pj, wd, tab);
                ++n;
            }
        }
    } else if (pj->rule == PP_RULE_DECODER) {
        uint32_t j;
        for (j = 0; j < pj->n_post && j < 32u; ++j) {
            if (!pp_decoder_hit(pre, j)) continue;
            r = pp_philox4x32_10(pre, j, 0u, PP_TAG_FIXED, seed, pj->stream);
            if (n >= cap) return -1;
            target[n] = j; weight[n] = pp_weight_fixed(pj, r.v[1], tab);
            delay[n] = pp_delay_steps(pj, r.v[2], tab);
            ++n;
        }
    } else {
        uint32_t j;
        for (j = 0; j < rowlen; ++j) {
            uint32_t t = pp_fixed_draw(pj, seed, pre, j, &r);
            if (n >= cap) return -1;
            target[n] = t; weight[n] = pp_weight_fixed(pj, r.v[1], tab);
            delay[n] = pp_delay_steps(pj, r.v[2], tab);
            ++n;
        }
    }
    return n;
}

/* Poisson input of neurons 0..n-1 of p at `step`: ex[i], in[i] (fixed point). */
void shim_poisson_input(size_t n, const pp_pop *p, const uint32_t *tables, uint32_t seed,
                        uint64_t step, int64_t *ex, int64_t *in)
{
    size_t i;
    for (i = 0; i < n; ++i) {
        ex[i] = 0; in[i] = 0;
        pp_poisson_input(p, tables + p->poisson_offset, seed, (uint32_t)i, step, ex + i, in + i);
    }
}

/* Spikes of Poisson source p's neurons 0..n-1 at `step`. */
void shim_source_spikes(size_t n, const pp_pop *p, uint32_t seed, uint64_t step, uint8_t *out)
{ size_t i; for (i = 0; i < n; ++i) out[i] = (uint8_t)pp_source_spike(p, seed, (uint32_t)i, step); }

/* Spikes of spike-array population p's neurons 0..n-1 at `step` (tab: its table),
 * advancing cursor[i]. */
void shim_array_spikes(size_t n, const pp_pop *p, const uint32_t *tab, uint64_t step,
                       int32_t *cursor, uint8_t *out)
{ size_t i; for (i = 0; i < n; ++i) out[i] = (uint8_t)pp_array_spike(p, tab, (uint32_t)i, step, cursor + i); }

/* n steps of one population, inputs acc[step][channel][neuron]; spikes[step][neuron]. */
void shim_lif(size_t n, size_t steps, float *V, float *Iex, float *Iin, int32_t *ref,
              const int32_t *acc, const pp_pop *p, uint8_t *spikes)
{
    size_t s, i;
    for (s = 0; s < steps; ++s)
        for (i = 0; i < n; ++i)
            spikes[s * n + i] = (uint8_t)pp_lif_step(V + i, Iex + i, Iin + i, ref + i,
                                                     acc[(s * 2) * n + i], acc[(s * 2 + 1) * n + i], p,
                                                     pp_i_e(p, s));
}

size_t shim_sizeof_proj(void) { return sizeof(pp_proj); }
size_t shim_sizeof_pop(void) { return sizeof(pp_pop); }
size_t shim_offsetof_proj(int i)
{
    switch (i) {
    case 0: return offsetof(pp_proj, rowlen_offset);
    case 1: return offsetof(pp_proj, rule);
    case 2: return offsetof(pp_proj, autapses);
    case 3: return offsetof(pp_proj, d_max);
    case 4: return offsetof(pp_proj, w_c0);
    case 5: return offsetof(pp_proj, gmul);
    case 6: return offsetof(pp_proj, d_shift);
    case 7: return offsetof(pp_proj, w_b);
    default: return 0;
    }
}
size_t shim_offsetof_pop(int i)
{
    switch (i) {
    case 0: return offsetof(pp_pop, P11ex);
    case 1: return offsetof(pp_pop, ref_steps);
    case 2: return offsetof(pp_pop, poisson_w);
    case 3: return offsetof(pp_pop, n_channels);
    case 4: return offsetof(pp_pop, poisson_n);
    case 5: return offsetof(pp_pop, poisson_end);
    case 6: return offsetof(pp_pop, poisson_channels);
    case 7: return offsetof(pp_pop, kind);
    case 8: return offsetof(pp_pop, src_start);
    case 9: return offsetof(pp_pop, src_stop);
    case 10: return offsetof(pp_pop, dc_amp);
    case 11: return offsetof(pp_pop, dc_start);
    case 12: return offsetof(pp_pop, dc_stop);
    default: return 0;
    }
}

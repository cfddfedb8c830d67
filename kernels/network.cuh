/* network.cuh -- the compiled network as the kernels see it, and the pure
 * functions that regenerate one synapse.
 *
 * pp_proj and pp_pop mirror the NumPy structured dtypes PROJ_DTYPE and
 * POP_DTYPE in pyproc/compile.py (field order, types and padding; checked by
 * tests/test_layout.py through the gcc-built shim).  A synapse is a pure
 * function of (seed, projection stream id, presynaptic neuron, draw index):
 * the NumPy twin is pyproc/connectivity.py.
 */
#ifndef PP_NETWORK_CUH
#define PP_NETWORK_CUH

#include "sampling.cuh"

#define PP_RULE_BERNOULLI 1u   /* pairwise_bernoulli(p), geometric skipping per segment */
#define PP_RULE_FIXED     2u   /* fixed_total_number / fixed_outdegree: row length, uniform targets */
#define PP_RULE_DECODER   3u   /* test rule: pre i -> post j iff bit j of i+1 is set (j < 32) */

/* Poisson inputs per population: input k takes word k of the population's one Philox
 * call per (neuron, step) */
#define PP_MAX_POISSON 4

/* population kinds */
#define PP_POP_LIF    0u   /* NEST iaf_psc_exp */
#define PP_POP_SOURCE 1u   /* Poisson spike source (PyNN SpikeSourcePoisson) */
#define PP_POP_ARRAY  2u   /* spikes at given steps (PyNN SpikeSourceArray, NEST spike_generator) */

#define PP_DIST_CONST 0
#define PP_DIST_TNORM 1

typedef struct {
    /* host-side description (the kernels do not read these) */
    double log1mp;                 /* log(1 - p) (bernoulli); 0 for p = 0, -inf for p = 1 */
    double w_mean, w_sd, w_scale;  /* |weight| in pA (normal before truncation at 0);
                                      fixed-point units per pA */
    double d_mean, d_sd;           /* delay in ms: normal before truncation */
    /* truncated normals in fixed point (pp_trunc_normal_fx): c0, truncation plo and
       pwidth, b, shift; weights in fixed-point units, delays in steps */
    int64_t w_c0, d_c0;
    uint64_t rowlen_offset;        /* PP_RULE_FIXED: index of row 0 in the row-length table */
    uint32_t rule, stream;         /* rule id; stream id = key word 1 */
    uint32_t pre_offset, n_pre;    /* global id of the first source neuron; source size */
    uint32_t post_offset, n_post;  /* same for the target population */
    uint32_t src_pop, tgt_pop;     /* population indices */
    uint32_t seg_width, n_seg;     /* bernoulli: fixed segment width and count */
    uint32_t autapses;             /* 0: no synapse i -> i (source == target population only) */
    uint32_t channel;              /* 0 excitatory input, 1 inhibitory input */
    uint32_t gmul, gshift;         /* bernoulli: the geometric skip's constants */
    uint32_t w_plo, w_pwidth, w_shift;
    uint32_t d_plo, d_pwidth, d_shift;
    int32_t w_b, d_b;
    int32_t w_kind, w_sign, w_const; /* PP_DIST_*; sign of the weight; fixed weight if constant */
    int32_t d_kind, d_const, d_max;  /* PP_DIST_*; delay steps if constant; largest delay */
} pp_proj;

typedef struct {
    uint64_t ring_offset;          /* first element of this population's delay ring */
    float P11ex, P11in, P22, P21ex, P21in, P20; /* exact-integration propagators (float32) */
    float I_e, V_th, V_reset;      /* pA; mV relative to E_L */
    float inv_scale_ex, inv_scale_in; /* pA per fixed-point unit, per input channel */
    int32_t ref_steps;             /* refractory period in steps */
    uint32_t offset, n;            /* global id of neuron 0; size */
    uint32_t stream;               /* stream id (Poisson input, initial state) */
    uint32_t ring_slots;           /* delay-ring length in steps (> largest incoming delay) */
    uint32_t poisson_offset, poisson_len; /* the population's threshold tables, one after the
                                      other: [offset, offset + len) (len 0: no Poisson input) */
    uint32_t poisson_n;            /* Poisson inputs, <= PP_MAX_POISSON (0 iff len == 0) */
    uint32_t poisson_channels;     /* bit k: the channel input k enters */
    uint32_t poisson_end[PP_MAX_POISSON]; /* input k's table: [end[k-1], end[k]) of the
                                      population's (end[-1] = 0) */
    int32_t poisson_w[PP_MAX_POISSON];    /* fixed-point weight of one event of input k */
    uint32_t n_channels;           /* 2, or 1 when tau_syn_ex == tau_syn_in (all input in channel 0) */
    uint32_t kind;                 /* PP_POP_LIF, PP_POP_SOURCE or PP_POP_ARRAY (no LIF state,
                                      no input; PP_POP_ARRAY: its table is the poisson_offset /
                                      poisson_len slice, poisson_n = 0) */
    uint32_t src_p;                /* PP_POP_SOURCE: spike probability per step, x 2^32;
                                      PP_POP_ARRAY: 1 if every neuron emits one shared train */
    uint64_t src_start, src_stop;  /* PP_POP_SOURCE: it spikes in steps [start, stop) */
    float dc_amp;                  /* pA added to I_e in steps [dc_start, dc_stop) (0, 0: none) */
    uint32_t dc_pad;
    uint64_t dc_start, dc_stop;
} pp_pop;

/* The constant current (pA) of population p's membrane at step `step`: I_e, plus its
 * step current (NEST dc_generator, PyNN DCSource) inside its window (one float add). */
PP_HD float pp_i_e(const pp_pop *p, uint64_t step)
{
    return (step >= p->dc_start && step < p->dc_stop) ? p->I_e + p->dc_amp : p->I_e;
}

/* Ring element of (population, slot, channel, local neuron): layout
 * [slot][channel][neuron] inside the population's slice. */
PP_HD uint64_t pp_ring_index(const pp_pop *p, uint32_t slot, uint32_t channel, uint32_t local)
{
    return p->ring_offset + ((uint64_t)slot * p->n_channels + channel) * p->n + local;
}

/* Weight of a synapse from word 1 (fixed-point units, signed): the truncated normal
 * magnitude in fixed-point units (pp_trunc_normal_fx), at least 0, with the sign;
 * tab: the sampler tables (sampling.cuh). */
PP_HD int32_t pp_weight_fixed(const pp_proj *pj, uint32_t r, const int32_t *tab)
{
    int64_t f;
    if (pj->w_kind == PP_DIST_CONST) return pj->w_const;
    f = pp_trunc_normal_fx(r, pj->w_plo, pj->w_pwidth, pj->w_c0, pj->w_b, pj->w_shift, tab);
    if (f < 0) f = 0;
    return (int32_t)(pj->w_sign * f);
}

/* Delay of a synapse from word 2, in steps in [1, d_max]; tab as above.  The
 * normal is sampled in steps (the host's constants are in steps; the truncation
 * probabilities are the same in any unit). */
PP_HD int32_t pp_delay_steps(const pp_proj *pj, uint32_t r, const int32_t *tab)
{
    int64_t s;
    if (pj->d_kind == PP_DIST_CONST) return pj->d_const;
    s = pp_trunc_normal_fx(r, pj->d_plo, pj->d_pwidth, pj->d_c0, pj->d_b, pj->d_shift, tab);
    if (s < 1) s = 1;
    if (s > pj->d_max) s = pj->d_max;
    return (int32_t)s;
}

/* pairwise_bernoulli words.  A draw needs W = 1 + (weight random) + (delay random)
 * 32-bit words: the geometric skip, then the weight's, then the delay's.  One Philox
 * call (pre, seg, j / D, PP_TAG_BERNOULLI) serves D = 2 consecutive draws when W <= 2
 * (draw j takes words (j mod 2) * W, ..., of it), D = 1 when W = 3 (words 0, 1, 2).
 * So a projection with a constant delay or weight pays half a Philox call per draw.
 * (D stays 2 for W = 1: a walk then keeps 2 words between draws, not 3.)
 * pp_bernoulli_shift: log2 D. */
PP_HD uint32_t pp_bernoulli_width(const pp_proj *pj)
{
    return 1u + (pj->w_kind != PP_DIST_CONST ? 1u : 0u) + (pj->d_kind != PP_DIST_CONST ? 1u : 0u);
}

PP_HD uint32_t pp_bernoulli_shift(uint32_t W) { return W <= 2u ? 1u : 0u; }

/* Word k (0..3) of a Philox result, by selects (no indexed array: registers). */
PP_HD uint32_t pp_word(const pp_u32x4 *r, uint32_t k)
{
    const uint32_t a = (k & 1u) ? r->v[1] : r->v[0];
    const uint32_t b = (k & 1u) ? r->v[3] : r->v[2];
    return (k & 2u) ? b : a;
}

/* Draw j's words from its call's result r: *ww the weight's (if the weight is random),
 * *wd the delay's (if random; the last word of the draw); returns the skip's. */
PP_HD uint32_t pp_bernoulli_words(const pp_u32x4 *r, uint32_t j, uint32_t W, uint32_t shift,
                                  uint32_t *ww, uint32_t *wd)
{
    const uint32_t o = (j & ((1u << shift) - 1u)) * W;
    *ww = pp_word(r, (o + 1u) & 3u);
    *wd = pp_word(r, o + W - 1u);
    return pp_word(r, o);
}

/* pairwise_bernoulli, draw j of segment seg of row pre, in a walk that takes the
 * draws j = 0, 1, 2, ... in order with the same *r.  reuse != 0: the Philox call is
 * made by the first draw of a call's pair and the second draw's words kept in
 * r->v[0] (skip) and r->v[1] (its weight or delay word: W <= 2 has at most one) --
 * half the calls for W <= 2, two words live across draws (every lane walk of the
 * kernels); reuse == 0: every draw makes its call (same words; a draw taken alone).
 * Returns the new position inside the segment (>= segment length: the segment is
 * done; positions stay below 2 * 65536 + 1: a skip is capped at the segment width);
 * *ww, *wd: the weight's and the delay's words of the synapse it lands on.  tab: the
 * sampler tables (the skip's log2 table).
 * W and D are derived from pj on every draw on purpose: passing them in kept two more
 * registers live through the walk, and the per-step kernel (64 registers) spilled. */
PP_HD int32_t pp_bernoulli_draw(const pp_proj *pj, uint32_t seed, uint32_t pre, uint32_t seg,
                                uint32_t j, int32_t pos, pp_u32x4 *r, uint32_t *ww,
                                uint32_t *wd, const int32_t *tab, int reuse)
{
    const uint32_t W = pp_bernoulli_width(pj), shift = pp_bernoulli_shift(W);
    uint32_t w0;
    if (!reuse || (j & ((1u << shift) - 1u)) == 0u) {
        const pp_u32x4 c = pp_philox4x32_10(pre, seg, j >> shift, PP_TAG_BERNOULLI, seed,
                                            pj->stream);
        w0 = pp_bernoulli_words(&c, j, W, shift, ww, wd);
        r->v[0] = pp_word(&c, W);                 /* the pair's second draw: words W, W+1 */
        r->v[1] = pp_word(&c, (W + 1u) & 3u);
    } else {
        w0 = r->v[0];
        *ww = r->v[1];
        *wd = r->v[1];
    }
    return pos + 1 + (int32_t)pp_geometric_skip(w0, pj->gmul, pj->gshift, pj->seg_width, tab);
}

PP_HD uint32_t pp_segment_length(const pp_proj *pj, uint32_t seg)
{
    uint32_t start = seg * pj->seg_width;
    uint32_t rest = pj->n_post - start;
    return rest < pj->seg_width ? rest : pj->seg_width;
}

/* Fixed-number rules, synapse j of row pre: w0 target (uniform; without
 * autapses uniform over the n_post - 1 others), w1 weight, w2 delay. */
PP_HD uint32_t pp_fixed_draw(const pp_proj *pj, uint32_t seed, uint32_t pre, uint32_t j, pp_u32x4 *r)
{
    uint32_t t;
    *r = pp_philox4x32_10(pre, j, 0u, PP_TAG_FIXED, seed, pj->stream);
    if (pj->autapses) return pp_uniform_int(r->v[0], pj->n_post);
    t = pp_uniform_int(r->v[0], pj->n_post - 1u);
    return t >= pre ? t + 1u : t;
}

/* Decoder rule: is pre -> post j a synapse?  Weight and delay words as the
 * fixed-number rules (counter (pre, j, 0, PP_TAG_FIXED)). */
PP_HD int pp_decoder_hit(uint32_t pre, uint32_t j)
{
    return j < 32u && (((pre + 1u) >> j) & 1u);
}

/* Poisson input of neuron `local` of population p at step `step`, in fixed-point units,
 * added to *ex and *in (by channel): input k's count is pp_poisson_count of word k of one
 * Philox call (counter (local, step lo, step hi, PP_TAG_POISSON), key (seed, p->stream))
 * on its table, times its weight.  tab: the population's tables (tables +
 * p->poisson_offset, or a copy of them).  The word is picked by a chain of selects, not
 * by r.v[k]: an indexed register array would go to local memory. */
PP_HD void pp_poisson_input(const pp_pop *p, const uint32_t *tab, uint32_t seed,
                            uint32_t local, uint64_t step, int64_t *ex, int64_t *in)
{
    const pp_u32x4 r = pp_philox4x32_10(local, (uint32_t)step, (uint32_t)(step >> 32),
                                        PP_TAG_POISSON, seed, p->stream);
    uint32_t k, lo = 0u;
    for (k = 0u; k < p->poisson_n; ++k) {
        const uint32_t hi = p->poisson_end[k];
        const uint32_t w = k == 0u ? r.v[0] : k == 1u ? r.v[1] : k == 2u ? r.v[2] : r.v[3];
        const int64_t add = (int64_t)pp_poisson_count(w, tab + lo, hi - lo)
                            * (int64_t)p->poisson_w[k];
        if ((p->poisson_channels >> k) & 1u) *in += add; else *ex += add;
        lo = hi;
    }
}

/* Does neuron `local` of the Poisson source p spike at step `step`?  In steps [src_start,
 * src_stop) with probability src_p / 2^32: word 0 of the Philox call (counter (local,
 * step lo, step hi, PP_TAG_SOURCE), key (seed, p->stream)) below src_p. */
PP_HD int pp_source_spike(const pp_pop *p, uint32_t seed, uint32_t local, uint64_t step)
{
    if (step < p->src_start || step >= p->src_stop) return 0;
    return pp_philox4x32_10(local, (uint32_t)step, (uint32_t)(step >> 32), PP_TAG_SOURCE, seed,
                            p->stream).v[0] < p->src_p;
}

/* Does neuron `local` of the spike-array population p spike at step `step`?  tab: its
 * table (the population's slice of the Poisson tables): n + 1 row starts (src_p = 1: the
 * 2 of one train all neurons share), then the spike steps, ascending per row.  *cursor
 * (the neuron's `ref` state, 0 at step 0) counts its spikes so far; every step is
 * visited, so the next spike is always at row start + *cursor. */
PP_HD int pp_array_spike(const pp_pop *p, const uint32_t *tab, uint32_t local, uint64_t step,
                         int32_t *cursor)
{
    const uint32_t row = p->src_p ? 0u : local, base = p->src_p ? 2u : p->n + 1u;
    const uint32_t c = tab[row] + (uint32_t)*cursor;
    if (c >= tab[row + 1u] || (uint64_t)tab[base + c] != step) return 0;
    *cursor += 1;
    return 1;
}

#endif /* PP_NETWORK_CUH */

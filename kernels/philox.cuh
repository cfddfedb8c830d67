/* philox.cuh -- Philox4x32-10 counter-based RNG and pyproc's counter layout.
 *
 * Plain C: every function is PP_HD (= __host__ __device__ under nvcc, nothing
 * under gcc), so the very same file is compiled by gcc in the CPU test suite
 * (tests/csrc/shim.c) and by nvcc in the kernels.  Its NumPy twin is
 * pyproc/rng.py; both are checked against Random123's known answers
 * (tests/data/philox_kat.txt) and against each other on 1e6 random counters.
 *
 * Algorithm: Salmon, Moraes, Dror & Shaw (2011), "Parallel random numbers: as
 * easy as 1, 2, 3", SC'11 -- Philox4x32 with 10 rounds, as in Random123.
 *
 * ---------------------------------------------------------------------------
 * COUNTER LAYOUT (a file format: changing it changes every network)
 * ---------------------------------------------------------------------------
 *   key     = { seed (uint32), stream id (uint32) }
 *             stream id = FNV-1a 32-bit hash of the projection's or the
 *             population's name (or an explicit id given by the user);
 *             never derived from launch layout or declaration order.
 *   counter = { c0, c1, c2, c3 = purpose tag }
 *
 *   purpose            tag  c0              c1             c2      words used
 *   pairwise_bernoulli  1   pre neuron      segment        j / D   draw j: words (j mod D) W ..:
 *                                                                  skip, [weight], [delay]
 *   fixed number rows   2   pre neuron      synapse j      0       w0 target, w1 weight, w2 delay
 *   Poisson input       3   post neuron     step (lo 32)   step hi wk count of input k
 *   initial state       4   neuron          0              0       w0 V_m
 *   Poisson source      6   neuron          step (lo 32)   step hi w0 spike iff w0 < p 2^32
 *   (row lengths of fixed_total_number are drawn on the host, tag 5, see rng.py)
 *
 * pairwise_bernoulli: W = 1 + (weight random) + (delay random) words per draw, D = 2
 * draws per call when W <= 2, else 1 (network.cuh pp_bernoulli_draw); W = 3 is one
 * call per draw, w0 skip, w1 weight, w2 delay.
 * "neuron" is always the index inside its population.  A segment is a fixed
 * width slice of the postsynaptic population (width chosen from p alone, see
 * pyproc/rules.py), so the synapse set does not depend on how a GPU splits rows.
 */
#ifndef PP_PHILOX_CUH
#define PP_PHILOX_CUH

#include <stdint.h>

#ifdef __CUDACC__
#define PP_HD __host__ __device__ __forceinline__
#else
#define PP_HD static inline
#endif

/* Round multipliers (Salmon et al. 2011, Table 2 / Random123 philox.h). */
#define PP_PHILOX_M0 0xD2511F53u
#define PP_PHILOX_M1 0xCD9E8D57u
/* Weyl key bumps: golden ratio 0x9E3779B9 and sqrt(3)-1 0xBB67AE85. */
#define PP_PHILOX_W0 0x9E3779B9u
#define PP_PHILOX_W1 0xBB67AE85u
#define PP_PHILOX_ROUNDS 10

/* Purpose tags (counter word 3). Mirrored in pyproc/rng.py. */
#define PP_TAG_BERNOULLI 1u
#define PP_TAG_FIXED     2u
#define PP_TAG_POISSON   3u
#define PP_TAG_INIT      4u
#define PP_TAG_ROWLEN    5u
#define PP_TAG_SOURCE    6u

typedef struct { uint32_t v[4]; } pp_u32x4;

PP_HD pp_u32x4 pp_philox4x32_10(uint32_t c0, uint32_t c1, uint32_t c2, uint32_t c3,
                                uint32_t k0, uint32_t k1)
{
    pp_u32x4 r;
    int i;
    for (i = 0; i < PP_PHILOX_ROUNDS; ++i) {
        uint64_t p0 = (uint64_t)PP_PHILOX_M0 * c0;
        uint64_t p1 = (uint64_t)PP_PHILOX_M1 * c2;
        uint32_t hi0 = (uint32_t)(p0 >> 32), lo0 = (uint32_t)p0;
        uint32_t hi1 = (uint32_t)(p1 >> 32), lo1 = (uint32_t)p1;
        c0 = hi1 ^ c1 ^ k0;
        c1 = lo1;
        c2 = hi0 ^ c3 ^ k1;
        c3 = lo0;
        k0 += PP_PHILOX_W0;
        k1 += PP_PHILOX_W1;
    }
    r.v[0] = c0; r.v[1] = c1; r.v[2] = c2; r.v[3] = c3;
    return r;
}

#endif /* PP_PHILOX_CUH */

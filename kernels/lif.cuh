/* lif.cuh -- one step of NEST's iaf_psc_exp by exact integration.
 *
 * State is relative to E_L, float32.  One fixed order of float operations,
 * reproduced by the NumPy twin pyproc/neuron.py (lif_step) and, with
 * -fmad=false, by the CUDA kernel neuron_lif.cu.  Order as in NEST
 * (iaf_psc_exp::update): membrane first with the currents of the previous
 * step (unless refractory), then the currents decay and take this step's
 * input, then threshold, reset and refractory count.
 */
#ifndef PP_LIF_CUH
#define PP_LIF_CUH

#include "network.cuh"

PP_HD int pp_lif_step(float *V, float *Iex, float *Iin, int32_t *ref,
                      int32_t acc_ex, int32_t acc_in, const pp_pop *p, float i_e)
{
    float v = *V, iex = *Iex, iin = *Iin;
    if (*ref == 0) {
        v = p->P20 * i_e + p->P22 * v;
        v = v + p->P21ex * iex;
        v = v + p->P21in * iin;
    } else {
        *ref = *ref - 1;
    }
    iex = p->P11ex * iex + (float)acc_ex * p->inv_scale_ex;
    iin = p->P11in * iin + (float)acc_in * p->inv_scale_in;
    *Iex = iex;
    *Iin = iin;
    if (v >= p->V_th) {
        *V = p->V_reset;
        *ref = p->ref_steps;
        return 1;
    }
    *V = v;
    return 0;
}

#endif /* PP_LIF_CUH */

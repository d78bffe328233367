// Fused optimizer updates, one pass over a parameter and its state (src/backend/cpu/optim.ts).
// param and state (m, v, momentum buffer) are f32 master copies; the gradient is f32 or bf16.
// Scalars derived from the step count (bias corrections) are computed by the wrapper in f64.
#include "common.cuh"

// Adam and AdamW in one kernel, exactly as the reference's adamLoop:
//   g' = l2 == 0 ? g : g + l2 * p          (Adam's coupled decay; l2 = 0 for AdamW)
//   m  = beta1 * m + (1 - beta1) * g'
//   v  = beta2 * v + (1 - beta2) * g'^2
//   p  = p * decay - step_size * m / (sqrt(v) / bias2_sqrt + eps)   (decay = 1 for Adam)
// with step_size = lr / (1 - beta1^step), bias2_sqrt = sqrt(1 - beta2^step).
// p, m, v: (n) f32; g: (n). All contiguous.
template <typename G>
__device__ void adam_step_kernel(float* p, float* m, float* v, const G* g, long long n,
                                 float beta1, float beta2, float one_minus_beta1,
                                 float one_minus_beta2, float step_size, float bias2_sqrt,
                                 float eps, float decay, float l2) {
  grid_loop(n, [&](auto i) {
    const float pi = p[i];
    float gi = to_float(g[i]);
    if (l2 != 0.0f) gi += l2 * pi;  // skipped at 0 so an inf parameter does not turn g into NaN
    const float mi = beta1 * m[i] + one_minus_beta1 * gi;
    const float vi = beta2 * v[i] + one_minus_beta2 * gi * gi;
    m[i] = mi;
    v[i] = vi;
    p[i] = pi * decay - step_size * (mi / (sqrtf(vi) / bias2_sqrt + eps));
  });
}

// torch.optim.SGD (Backend.sgdStep):
//   g' = g + weight_decay * p
//   momentum != 0: buf = first_step ? g' : momentum * buf + (1 - dampening) * g'
//                  d = nesterov ? g' + momentum * buf : buf
//   else d = g';  p -= lr * d
// p: (n) f32; buf: (n) f32, or null when momentum == 0; g: (n). All contiguous.
template <typename G>
__device__ void sgd_step_kernel(float* p, float* buf, const G* g, long long n, float lr,
                                float momentum, float one_minus_dampening, float weight_decay,
                                int nesterov, int first_step) {
  grid_loop(n, [&](auto i) {
    const float pi = p[i];
    float gi = to_float(g[i]);
    if (weight_decay != 0.0f) gi += weight_decay * pi;
    float d = gi;
    if (buf) {
      const float b = first_step ? gi : momentum * buf[i] + one_minus_dampening * gi;
      buf[i] = b;
      d = nesterov ? gi + momentum * b : b;
    }
    p[i] = pi - lr * d;
  });
}

#define OPTIM(G, N)                                                                             \
  extern "C" __global__ void adam_step_##N(float* p, float* m, float* v, const G* g, long long n, \
                                           float beta1, float beta2, float one_minus_beta1,      \
                                           float one_minus_beta2, float step_size,               \
                                           float bias2_sqrt, float eps, float decay, float l2) {  \
    adam_step_kernel<G>(p, m, v, g, n, beta1, beta2, one_minus_beta1, one_minus_beta2,           \
                        step_size, bias2_sqrt, eps, decay, l2);                                 \
  }                                                                                             \
  extern "C" __global__ void sgd_step_##N(float* p, float* buf, const G* g, long long n,         \
                                          float lr, float momentum, float one_minus_dampening,   \
                                          float weight_decay, int nesterov, int first_step) {    \
    sgd_step_kernel<G>(p, buf, g, n, lr, momentum, one_minus_dampening, weight_decay, nesterov, \
                       first_step);                                                             \
  }
OPTIM(float, f32)
OPTIM(__nv_bfloat16, bf16)

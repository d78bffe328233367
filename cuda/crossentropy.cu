// Cross-entropy per row of logits, forward beside backward (src/backend/cpu/nn.ts). One row per
// row group (up to 1024 threads for GPT-2's 50257-wide rows), one online pass for logsumexp.
// A target outside [0, V) that is not ignore_index cannot throw here: its loss is NaN and its
// dlogits row NaN, so the error surfaces in the loss instead of as silently wrong gradients.
#include "common.cuh"

// losses, lse: (N) f32; logits: (N, V) contiguous; targets: (N) i32.
// losses = lse - logits[target] (0 where target == ignore_index); lse of every row.
template <typename T>
__device__ void crossentropy_forward_kernel(float* losses, float* lse, const T* logits,
                                            const int* targets, long long N, int V,
                                            int ignore_index) {
  __shared__ float scratch[64];
  const long long row = (long long)blockIdx.x * blockDim.y + threadIdx.y;
  const bool valid = row < N;
  const T* xr = logits + row * V;
  MaxSum ms = {-INFINITY, 0.0f};
  if (valid) for (int c = threadIdx.x; c < V; c += blockDim.x) ms = maxsum_add(ms, to_float(xr[c]));
  ms = row_maxsum(ms, scratch);
  if (!valid || threadIdx.x != 0) return;
  const float z = ms.m + logf(ms.s);
  const int t = targets[row];
  lse[row] = z;
  if (t == ignore_index) losses[row] = 0.0f;
  else losses[row] = (t >= 0 && t < V) ? z - to_float(xr[t]) : NAN;
}

// dlogits, logits: (N, V) contiguous; targets: (N) i32; lse, dlosses: (N) f32.
// dlogits = (softmax(logits) - onehot(target)) * dlosses[row]; ignored rows are 0. Elementwise:
// blockDim.x threads stride over a row, blockDim.y rows per block, blocks stride over rows.
template <typename T>
__device__ void crossentropy_backward_kernel(T* dlogits, const T* logits, const int* targets,
                                             const float* lse, const float* dlosses, long long N,
                                             int V, int ignore_index) {
  for (long long row = (long long)blockIdx.x * blockDim.y + threadIdx.y; row < N;
       row += (long long)gridDim.x * blockDim.y) {
    const T* xr = logits + row * V;
    T* gr = dlogits + row * V;
    const int t = targets[row];
    if (t == ignore_index) {
      for (int c = threadIdx.x; c < V; c += blockDim.x) gr[c] = store_as<T>(0.0f);
      continue;
    }
    const float z = lse[row];
    const float d = (t >= 0 && t < V) ? dlosses[row] : NAN;
    for (int c = threadIdx.x; c < V; c += blockDim.x) {
      const float p = expf(to_float(xr[c]) - z);
      gr[c] = store_as<T>((c == t ? p - 1.0f : p) * d);  // one rounding at the target, as the reference
    }
  }
}

#define CROSSENTROPY(T, N)                                                                      \
  extern "C" __global__ void crossentropy_forward_##N(float* losses, float* lse, const T* logits, \
                                                      const int* targets, long long rows, int V, \
                                                      int ignore_index) {                       \
    crossentropy_forward_kernel<T>(losses, lse, logits, targets, rows, V, ignore_index);       \
  }                                                                                             \
  extern "C" __global__ void crossentropy_backward_##N(T* dlogits, const T* logits,            \
                                                       const int* targets, const float* lse,   \
                                                       const float* dlosses, long long rows,   \
                                                       int V, int ignore_index) {              \
    crossentropy_backward_kernel<T>(dlogits, logits, targets, lse, dlosses, rows, V,           \
                                    ignore_index);                                             \
  }
CROSSENTROPY(float, f32)
CROSSENTROPY(__nv_bfloat16, bf16)

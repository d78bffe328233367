// Softmax and log-softmax over the last dim, forward beside backward (src/backend/cpu/nn.ts).
// One row per row group: blockDim.x threads (a warp for short rows, up to 1024 for vocab-sized
// rows) stride over the C columns; blockDim.y rows share a block. Rows past N still join the
// block reductions (they may __syncthreads) but touch no memory.
#include "common.cuh"

// y: (N, C) contiguous; x: (N, C) contiguous. log != 0: y = x - logsumexp(x).
template <typename T>
__device__ void softmax_forward_kernel(T* y, const T* x, long long N, int C, int log) {
  __shared__ float scratch[64];
  const long long row = (long long)blockIdx.x * blockDim.y + threadIdx.y;
  const bool valid = row < N;
  const T* xr = x + row * C;
  T* yr = y + row * C;
  MaxSum ms = {-INFINITY, 0.0f};  // one pass for the max and the sum of exp (online rescaling)
  if (valid) {
    for (int c = threadIdx.x; c < C; c += blockDim.x) ms = maxsum_add(ms, to_float(xr[c]));
  }
  ms = row_maxsum(ms, scratch);
  if (!valid) return;
  if (log) {
    const float lse = ms.m + logf(ms.s);
    for (int c = threadIdx.x; c < C; c += blockDim.x) yr[c] = store_as<T>(to_float(xr[c]) - lse);
  } else {
    const float inv = 1.0f / ms.s;
    for (int c = threadIdx.x; c < C; c += blockDim.x) {
      yr[c] = store_as<T>(expf(to_float(xr[c]) - ms.m) * inv);
    }
  }
}

// dx, y, dy: (N, C) contiguous. log: dx = dy - exp(y) * sum(dy); else dx = y * (dy - sum(dy * y)).
template <typename T>
__device__ void softmax_backward_kernel(T* dx, const T* y, const T* dy, long long N, int C,
                                        int log) {
  __shared__ float scratch[32];
  const long long row = (long long)blockIdx.x * blockDim.y + threadIdx.y;
  const bool valid = row < N;
  const T* yr = y + row * C;
  const T* gr = dy + row * C;
  T* dr = dx + row * C;
  float s = 0.0f;
  if (valid) {
    for (int c = threadIdx.x; c < C; c += blockDim.x) {
      s += log ? to_float(gr[c]) : to_float(gr[c]) * to_float(yr[c]);
    }
  }
  s = row_sum(s, scratch);
  if (!valid) return;
  for (int c = threadIdx.x; c < C; c += blockDim.x) {
    const float yc = to_float(yr[c]), gc = to_float(gr[c]);
    dr[c] = store_as<T>(log ? gc - expf(yc) * s : yc * (gc - s));
  }
}

#define SOFTMAX(T, N)                                                                            \
  extern "C" __global__ void softmax_forward_##N(T* y, const T* x, long long rows, int C,       \
                                                 int log) {                                     \
    softmax_forward_kernel<T>(y, x, rows, C, log);                                              \
  }                                                                                              \
  extern "C" __global__ void softmax_backward_##N(T* dx, const T* y, const T* dy, long long rows, \
                                                  int C, int log) {                             \
    softmax_backward_kernel<T>(dx, y, dy, rows, C, log);                                        \
  }
SOFTMAX(float, f32)
SOFTMAX(__nv_bfloat16, bf16)

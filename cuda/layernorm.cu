// LayerNorm over the last dim, forward beside backward (src/backend/cpu/nn.ts).
// Forward: one row per row group; biased variance in two passes over the row (no cancellation),
// rstd = 1 / sqrt(var + eps); saves mean and rstd (f32) for the backward.
// Backward: dx per row as in the forward; dweight/dbias without atomics (deterministic): each
// block accumulates its rows' contributions per column into its own partial row, then
// layernorm_backward_params_* sums the partial rows in a fixed order and overwrites the outputs.
#include "common.cuh"

// y: (N, C); x: (N, C); weight, bias: (C) or null; mean, rstd: (N) f32. All contiguous.
template <typename T>
__device__ void layernorm_forward_kernel(T* y, float* mean, float* rstd, const T* x,
                                         const T* weight, const T* bias, long long N, int C,
                                         float eps) {
  __shared__ float scratch[32];
  const long long row = (long long)blockIdx.x * blockDim.y + threadIdx.y;
  const bool valid = row < N;
  const T* xr = x + row * C;
  float s = 0.0f;
  if (valid) for (int c = threadIdx.x; c < C; c += blockDim.x) s += to_float(xr[c]);
  const float m = row_sum(s, scratch) / C;
  float v = 0.0f;
  if (valid) {
    for (int c = threadIdx.x; c < C; c += blockDim.x) {
      const float d = to_float(xr[c]) - m;
      v += d * d;
    }
  }
  const float r = 1.0f / sqrtf(row_sum(v, scratch) / C + eps);
  if (!valid) return;
  if (threadIdx.x == 0) {
    mean[row] = m;
    rstd[row] = r;
  }
  T* yr = y + row * C;
  for (int c = threadIdx.x; c < C; c += blockDim.x) {
    float o = (to_float(xr[c]) - m) * r;
    if (weight) o *= to_float(weight[c]);
    if (bias) o += to_float(bias[c]);
    yr[c] = store_as<T>(o);
  }
}

// dx: (N, C); partial: (gridDim.x, 2, C) f32 scratch (rows: dweight, dbias partials) or null
// when neither is wanted; dy, x: (N, C); weight: (C) or null; mean, rstd: (N) f32.
// One row per block at a time (blockDim.y == 1), blocks stride over rows. Each thread owns
// columns threadIdx.x + k * blockDim.x (for both halves of acc, from zeroing to the final copy),
// so its per-column sums need neither atomics nor barriers. They live in
// dynamic shared memory (2 * C floats) when acc_in_shared, else directly in the partial row.
template <typename T>
__device__ void layernorm_backward_kernel(T* dx, float* partial, const T* dy, const T* x,
                                          const T* weight, const float* mean, const float* rstd,
                                          long long N, int C, int acc_in_shared) {
  __shared__ float scratch[32];
  DYNAMIC_SHARED(float, dyn);
  float* acc = nullptr;  // (2, C): dweight then dbias partial sums of this block
  if (partial) {
    acc = acc_in_shared ? dyn : partial + (long long)blockIdx.x * 2 * C;
    for (int c = threadIdx.x; c < C; c += blockDim.x) acc[c] = acc[C + c] = 0.0f;
  }
  for (long long row = blockIdx.x; row < N; row += gridDim.x) {  // uniform per block
    const T* xr = x + row * C;
    const T* gr = dy + row * C;
    const float m = mean[row], r = rstd[row];
    float sg = 0.0f, sgn = 0.0f;  // sums of g = dy * weight and of g * norm
    for (int c = threadIdx.x; c < C; c += blockDim.x) {
      const float norm = (to_float(xr[c]) - m) * r, d = to_float(gr[c]);
      const float g = weight ? d * to_float(weight[c]) : d;
      sg += g;
      sgn += g * norm;
      if (acc) {
        acc[c] += d * norm;
        acc[C + c] += d;
      }
    }
    const float mg = row_sum(sg, scratch) / C;
    const float mgn = row_sum(sgn, scratch) / C;
    T* dr = dx + row * C;
    for (int c = threadIdx.x; c < C; c += blockDim.x) {
      const float norm = (to_float(xr[c]) - m) * r, d = to_float(gr[c]);
      const float g = weight ? d * to_float(weight[c]) : d;
      dr[c] = store_as<T>(r * (g - mg - norm * mgn));
    }
  }
  if (partial && acc_in_shared) {
    float* dst = partial + (long long)blockIdx.x * 2 * C;
    for (int c = threadIdx.x; c < C; c += blockDim.x) {
      dst[c] = acc[c];
      dst[C + c] = acc[C + c];
    }
  }
}

// dweight, dbias: (C) or null, overwritten; partial: (blocks, 2, C) from the kernel above.
// Block (32, 32): threadIdx.x picks the column, threadIdx.y strides over the partial rows; the
// 32 column sums per column are then added in a fixed order.
template <typename T>
__device__ void layernorm_backward_params_kernel(T* dweight, T* dbias, const float* partial,
                                                 int blocks, int C) {
  __shared__ float sw[32][33], sb[32][33];  // +1 column: no bank conflicts on the transposed read
  const int c = blockIdx.x * 32 + threadIdx.x;
  float w = 0.0f, b = 0.0f;
  if (c < C) {
    for (int k = threadIdx.y; k < blocks; k += blockDim.y) {
      w += partial[(long long)k * 2 * C + c];
      b += partial[(long long)k * 2 * C + C + c];
    }
  }
  sw[threadIdx.y][threadIdx.x] = w;
  sb[threadIdx.y][threadIdx.x] = b;
  __syncthreads();
  if (threadIdx.y != 0 || c >= C) return;
  w = 0.0f;
  b = 0.0f;
  for (int k = 0; k < blockDim.y; k++) {
    w += sw[k][threadIdx.x];
    b += sb[k][threadIdx.x];
  }
  if (dweight) dweight[c] = store_as<T>(w);
  if (dbias) dbias[c] = store_as<T>(b);
}

#define LAYERNORM(T, N)                                                                           \
  extern "C" __global__ void layernorm_forward_##N(T* y, float* mean, float* rstd, const T* x,   \
                                                   const T* weight, const T* bias,               \
                                                   long long rows, int C, float eps) {           \
    layernorm_forward_kernel<T>(y, mean, rstd, x, weight, bias, rows, C, eps);                   \
  }                                                                                               \
  extern "C" __global__ void layernorm_backward_##N(T* dx, float* partial, const T* dy,          \
                                                    const T* x, const T* weight,                 \
                                                    const float* mean, const float* rstd,        \
                                                    long long rows, int C, int acc_in_shared) {  \
    layernorm_backward_kernel<T>(dx, partial, dy, x, weight, mean, rstd, rows, C, acc_in_shared); \
  }                                                                                               \
  extern "C" __global__ void layernorm_backward_params_##N(T* dweight, T* dbias,                 \
                                                           const float* partial, int blocks,     \
                                                           int C) {                              \
    layernorm_backward_params_kernel<T>(dweight, dbias, partial, blocks, C);                     \
  }
LAYERNORM(float, f32)
LAYERNORM(__nv_bfloat16, bf16)

// Shared by every kernel family: strided layouts passed by value, dtype load/store rules, and
// warp/block reductions. The CPU backend (src/backend/cpu) is the reference every kernel follows.
#pragma once
#include <cuda_bf16.h>
#include <math.h>
#include <stdint.h>

// Dynamic shared memory of a kernel (a macro so tests/cuda_emu can back it with host memory).
#ifndef DYNAMIC_SHARED
#define DYNAMIC_SHARED(T, name) extern __shared__ T name[]
#endif

// Highest rank of a strided view after the wrappers merge dims (src/backend/cuda/kernels/_layout.ts).
#define MAX_RANK 8

// K strided views walked together over one shape. Dims are stored innermost FIRST (size[0] is the
// fastest-moving dim) so the unrolled loops below touch only constant indices and the struct
// stays in the kernel parameter space (no local-memory copy). Passed by value:
// 8 * MAX_RANK * (K + 1) + 8 bytes, 8-byte aligned.
template <int K>
struct Layout {
  long long size[MAX_RANK];     // dims, innermost first
  long long step[K][MAX_RANK];  // per view: element stride of each dim (0 broadcasts)
  int rank;                     // dims in use (>= 1)
  int pad_;
};

// Element offsets of linear (row-major) index i in each of the K views. Index type I is 32-bit
// when the whole range fits (the wrappers' common case: 64-bit division costs ~4x more).
template <int K, typename I>
__device__ __forceinline__ void locate(const Layout<K>& L, I i, long long (&off)[K]) {
#pragma unroll
  for (int k = 0; k < K; k++) off[k] = (long long)i * L.step[k][0];
  if (L.rank == 1) return;  // contiguous / single-stride fast path: no division
#pragma unroll
  for (int k = 0; k < K; k++) off[k] = 0;
#pragma unroll
  for (int d = 0; d < MAX_RANK; d++) {
    if (d < L.rank) {
      const I n = (I)L.size[d];
      const I q = i / n;
      const I r = i - q * n;
      i = q;
#pragma unroll
      for (int k = 0; k < K; k++) off[k] += (long long)r * L.step[k][d];
    }
  }
}

// Runs body(i) for i in [0, n) with a grid-stride loop, in 32-bit indices when n allows.
template <typename F>
__device__ __forceinline__ void grid_loop(long long n, F body) {
  if (n <= 0x7fffffffLL) {
    const unsigned stride = gridDim.x * blockDim.x;
    for (unsigned i = blockIdx.x * blockDim.x + threadIdx.x; i < (unsigned)n; i += stride) body(i);
  } else {
    const unsigned long long stride = (unsigned long long)gridDim.x * blockDim.x;
    for (unsigned long long i = (unsigned long long)blockIdx.x * blockDim.x + threadIdx.x;
         i < (unsigned long long)n; i += stride) {
      body(i);
    }
  }
}

// ---- dtypes ----
// f32 and bf16 compute in f32. i32 computes in f64 and stores with JavaScript's ToInt32 (wrap
// modulo 2^32, NaN and infinities to 0), exactly what the CPU backend's Int32Array stores do.

__device__ __forceinline__ int js_to_int32(double d) {
  if (!isfinite(d)) return 0;
  d = trunc(d);
  if (fabs(d) < 2147483648.0) return (int)d;
  double m = fmod(d, 4294967296.0);
  if (m < 0) m += 4294967296.0;
  return (int)(unsigned)m;
}

template <typename T> struct Num;
template <> struct Num<float> {
  using C = float;  // compute type
  static __device__ __forceinline__ float load(float v) { return v; }
};
template <> struct Num<__nv_bfloat16> {
  using C = float;
  static __device__ __forceinline__ float load(__nv_bfloat16 v) { return __bfloat162float(v); }
};
template <> struct Num<int> {
  using C = double;
  static __device__ __forceinline__ double load(int v) { return (double)v; }
};

// Stores a computed value as T. To bf16 always through f32 (what the CPU's f32ToBf16Bits does
// with a JavaScript number), round-to-nearest-even.
template <typename T> __device__ __forceinline__ T store_as(float v);
template <typename T> __device__ __forceinline__ T store_as(double v);
template <> __device__ __forceinline__ float store_as<float>(float v) { return v; }
template <> __device__ __forceinline__ float store_as<float>(double v) { return (float)v; }
template <> __device__ __forceinline__ __nv_bfloat16 store_as<__nv_bfloat16>(float v) {
  return __float2bfloat16_rn(v);
}
template <> __device__ __forceinline__ __nv_bfloat16 store_as<__nv_bfloat16>(double v) {
  return __float2bfloat16_rn((float)v);
}
template <> __device__ __forceinline__ int store_as<int>(float v) { return js_to_int32(v); }
template <> __device__ __forceinline__ int store_as<int>(double v) { return js_to_int32(v); }

__device__ __forceinline__ float to_float(float v) { return v; }
__device__ __forceinline__ float to_float(__nv_bfloat16 v) { return __bfloat162float(v); }

// ---- reductions ----
// Row kernels run one row per "row group" of blockDim.x threads (a warp or a whole block);
// blockDim.y rows share a block. Every thread of the block must call these (they may sync).

__device__ __forceinline__ float warp_sum(float v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}

__device__ __forceinline__ float warp_max(float v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
  return v;
}

// Sum over the row group (threadIdx.x) of each row (threadIdx.y); every lane gets the result.
// `scratch` is __shared__ float[32] (one slot per warp of the block).
__device__ __forceinline__ float row_sum(float v, float* scratch) {
  v = warp_sum(v);
  if (blockDim.x <= 32) return v;
  const int warps = blockDim.x / 32, w = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int base = threadIdx.y * warps;
  __syncthreads();  // the previous reduction's readers are done with scratch
  if (lane == 0) scratch[base + w] = v;
  __syncthreads();
  v = lane < warps ? scratch[base + lane] : 0.0f;
  return warp_sum(v);
}

__device__ __forceinline__ float row_max(float v, float* scratch) {
  v = warp_max(v);
  if (blockDim.x <= 32) return v;
  const int warps = blockDim.x / 32, w = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int base = threadIdx.y * warps;
  __syncthreads();
  if (lane == 0) scratch[base + w] = v;
  __syncthreads();
  v = lane < warps ? scratch[base + lane] : -INFINITY;
  return warp_max(v);
}

// Online softmax statistics: running max m and sum s of exp(x - m). -inf entries add nothing
// (so fully masked rows keep s == 0 and give NaN like the CPU reference, without NaN from
// exp(-inf - -inf) along the way).
struct MaxSum {
  float m, s;
};

__device__ __forceinline__ MaxSum maxsum_add(MaxSum a, float x) {
  if (x == -INFINITY) return a;
  if (x > a.m) {
    a.s = (a.m == -INFINITY ? 0.0f : a.s * expf(a.m - x)) + 1.0f;
    a.m = x;
  } else {
    a.s += expf(x - a.m);  // NaN x propagates into s, as in the reference
  }
  return a;
}

__device__ __forceinline__ MaxSum maxsum_merge(MaxSum a, MaxSum b) {
  const float m = fmaxf(a.m, b.m);
  if (m == -INFINITY) return {m, a.s + b.s};
  const float sa = a.m == -INFINITY ? 0.0f : a.s * expf(a.m - m);
  const float sb = b.m == -INFINITY ? 0.0f : b.s * expf(b.m - m);
  return {m, sa + sb};
}

__device__ __forceinline__ MaxSum warp_maxsum(MaxSum v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) {
    MaxSum other = {__shfl_xor_sync(0xffffffffu, v.m, o), __shfl_xor_sync(0xffffffffu, v.s, o)};
    v = maxsum_merge(v, other);
  }
  return v;
}

// `scratch` is __shared__ float[64].
__device__ __forceinline__ MaxSum row_maxsum(MaxSum v, float* scratch) {
  v = warp_maxsum(v);
  if (blockDim.x <= 32) return v;
  const int warps = blockDim.x / 32, w = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int base = threadIdx.y * warps;
  __syncthreads();
  if (lane == 0) {
    scratch[base + w] = v.m;
    scratch[32 + base + w] = v.s;
  }
  __syncthreads();
  MaxSum r = {-INFINITY, 0.0f};
  if (lane < warps) r = {scratch[base + lane], scratch[32 + base + lane]};
  return warp_maxsum(r);
}

// Reductions (sum/max/min/argmax/argmin) over any sorted set of axes of a strided view into a
// keepdim contiguous output, following src/backend/cpu/reduce.ts:
//   - max/min ignore NaN (a strict comparison never picks it); an all-NaN max is -inf;
//   - argmax/argmin return the FIRST position (row-major over the reduced axes) of the extreme
//     value, 0 when nothing beats the initial +-inf;
//   - f32/bf16 accumulate in f32 (a tree, not the reference's serial f64: agrees to ~1e-6
//     relative); i32 accumulates in i64 and wraps to i32 like the reference's f64 sum stored
//     into an Int32Array.
// Each output is reduced by a "group" of blockDim.x lanes (1 lane: column sums with coalesced
// neighbours; up to 1024: long contiguous rows); blockDim.y groups share a block. When there are
// few outputs and long reductions, gridDim.y splits the reduced range and reduce_partials_*
// combines the per-split results in a fixed order (deterministic).
#include "common.cuh"

enum ReduceOp { R_SUM, R_MAX, R_MIN, R_ARGMAX, R_ARGMIN };  // REDUCE_OPS order in the wrapper

// Kept dims (one per output, row-major = the output's linear index) and reduced dims (row-major
// = the argmax position), each innermost first, with x's strides. 264 bytes.
struct ReduceLayout {
  long long kept_size[MAX_RANK];
  long long kept_step[MAX_RANK];
  long long red_size[MAX_RANK];
  long long red_step[MAX_RANK];
  int kept_rank;
  int red_rank;
};

__device__ __forceinline__ long long strided_offset(long long i, const long long* size,
                                                    const long long* step, int rank) {
  if (rank == 1) return i * step[0];
  long long off = 0;
#pragma unroll
  for (int d = 0; d < MAX_RANK; d++) {
    if (d < rank) {
      const long long q = i / size[d];
      off += (i - q * size[d]) * step[d];
      i = q;
    }
  }
  return off;
}

template <typename A> struct Limits;
template <> struct Limits<float> {
  static __device__ __forceinline__ float lowest() { return -INFINITY; }
  static __device__ __forceinline__ float highest() { return INFINITY; }
};
template <> struct Limits<long long> {
  static __device__ __forceinline__ long long lowest() { return LLONG_MIN; }
  static __device__ __forceinline__ long long highest() { return LLONG_MAX; }
};

// Accumulator: value and (for arg ops) its position in the reduced range.
template <typename A> struct Acc {
  A v;
  long long at;
};

template <typename A> __device__ __forceinline__ Acc<A> identity(int op) {
  if (op == R_SUM) return {(A)0, 0};
  if (op == R_MAX || op == R_ARGMAX) return {Limits<A>::lowest(), 0};
  return {Limits<A>::highest(), 0};
}

// Combines two partial results; on equal values the earlier position wins (first occurrence).
// NaN never compares greater/smaller, so it never wins (the reference's strict comparison).
template <typename A> __device__ __forceinline__ Acc<A> combine(int op, Acc<A> x, Acc<A> y) {
  if (op == R_SUM) return {x.v + y.v, 0};
  const bool want_max = op == R_MAX || op == R_ARGMAX;
  const bool better = want_max ? y.v > x.v : y.v < x.v;
  if (better || (y.v == x.v && y.at < x.at)) return y;
  return x;
}

// Reduces over the row group (threadIdx.x, a power of two); lane 0 gets the result.
// `sv`/`sat` are __shared__ [32] (one slot per warp of the block).
template <typename A>
__device__ __forceinline__ Acc<A> group_reduce(int op, Acc<A> a, A* sv, long long* sat) {
  const int width = blockDim.x < 32 ? blockDim.x : 32;
  for (int o = width / 2; o > 0; o >>= 1) {
    Acc<A> other = {__shfl_xor_sync(0xffffffffu, a.v, o), __shfl_xor_sync(0xffffffffu, a.at, o)};
    a = combine(op, a, other);
  }
  if (blockDim.x <= 32) return a;
  const int warps = blockDim.x / 32, w = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int base = threadIdx.y * warps;
  __syncthreads();
  if (lane == 0) {
    sv[base + w] = a.v;
    sat[base + w] = a.at;
  }
  __syncthreads();
  if (threadIdx.x < 32) {
    a = identity<A>(op);
    if (lane < warps) a = {sv[base + lane], sat[base + lane]};
    for (int o = 16; o > 0; o >>= 1) {
      Acc<A> other = {__shfl_xor_sync(0xffffffffu, a.v, o),
                      __shfl_xor_sync(0xffffffffu, a.at, o)};
      a = combine(op, a, other);
    }
  }
  return a;
}

__device__ __forceinline__ void store_result(float* out, long long i, Acc<float> a) { out[i] = a.v; }
__device__ __forceinline__ void store_result(__nv_bfloat16* out, long long i, Acc<float> a) {
  out[i] = __float2bfloat16_rn(a.v);
}
__device__ __forceinline__ void store_result(int* out, long long i, Acc<long long> a) {
  out[i] = (int)(unsigned)(unsigned long long)a.v;  // wraps modulo 2^32 like ToInt32
}

// out: (n_out) keepdim contiguous, dtype T (sum/max/min) or i32 (arg ops), written when
// gridDim.y == 1; otherwise part_v/part_at: (n_out, gridDim.y) per-split partials.
// x: the strided input. Split s of the reduced range covers [s * chunk, (s + 1) * chunk).
template <typename T, typename A>
__device__ void reduce_kernel(void* out, A* part_v, long long* part_at, const T* x,
                              ReduceLayout L, long long n_out, long long n_red, long long chunk,
                              int op) {
  __shared__ A sv[32];
  __shared__ long long sat[32];
  const long long o = (long long)blockIdx.x * blockDim.y + threadIdx.y;
  const bool valid = o < n_out;  // invalid groups still join the block's reductions
  Acc<A> a = identity<A>(op);
  if (valid) {
    const T* xo = x + strided_offset(o, L.kept_size, L.kept_step, L.kept_rank);
    const long long begin = (long long)blockIdx.y * chunk;
    const long long end = begin + chunk < n_red ? begin + chunk : n_red;
    for (long long r = begin + threadIdx.x; r < end; r += blockDim.x) {
      const A v = (A)Num<T>::load(xo[strided_offset(r, L.red_size, L.red_step, L.red_rank)]);
      a = combine(op, a, Acc<A>{v, r});
    }
  }
  a = group_reduce(op, a, sv, sat);
  if (!valid || threadIdx.x != 0) return;
  if (gridDim.y > 1) {
    part_v[o * gridDim.y + blockIdx.y] = a.v;
    part_at[o * gridDim.y + blockIdx.y] = a.at;
  } else if (op == R_ARGMAX || op == R_ARGMIN) {
    ((int*)out)[o] = (int)a.at;
  } else {
    store_result((T*)out, o, a);
  }
}

// out: (n_out) as above; part_v/part_at: (n_out, splits) from reduce_<dtype>.
template <typename T, typename A>
__device__ void reduce_partials_kernel(void* out, const A* part_v, const long long* part_at,
                                       long long n_out, int splits, int op) {
  __shared__ A sv[32];
  __shared__ long long sat[32];
  const long long o = (long long)blockIdx.x * blockDim.y + threadIdx.y;
  const bool valid = o < n_out;
  Acc<A> a = identity<A>(op);
  if (valid) {
    for (int s = threadIdx.x; s < splits; s += blockDim.x) {
      a = combine(op, a, Acc<A>{part_v[o * splits + s], part_at[o * splits + s]});
    }
  }
  a = group_reduce(op, a, sv, sat);
  if (!valid || threadIdx.x != 0) return;
  if (op == R_ARGMAX || op == R_ARGMIN) ((int*)out)[o] = (int)a.at;
  else store_result((T*)out, o, a);
}

#define REDUCE(T, A, N)                                                                         \
  extern "C" __global__ void reduce_##N(void* out, A* part_v, long long* part_at, const T* x,  \
                                        ReduceLayout L, long long n_out, long long n_red,      \
                                        long long chunk, int op) {                             \
    reduce_kernel<T, A>(out, part_v, part_at, x, L, n_out, n_red, chunk, op);                  \
  }                                                                                             \
  extern "C" __global__ void reduce_partials_##N(void* out, const A* part_v,                   \
                                                 const long long* part_at, long long n_out,    \
                                                 int splits, int op) {                         \
    reduce_partials_kernel<T, A>(out, part_v, part_at, n_out, splits, op);                     \
  }
REDUCE(float, float, f32)
REDUCE(__nv_bfloat16, float, bf16)
REDUCE(int, long long, i32)

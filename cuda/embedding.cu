// Embedding lookup and its backward (src/backend/cpu/indexing.ts embeddingForward/Backward).
// One block row per token: threads stride over the C channels, so loads and stores coalesce.
// An id outside [0, V) cannot throw here: its output row is NaN, and the backward skips it.
#include "common.cuh"

// out: (N, C) contiguous; weight: (V, C) contiguous; ids: (N) contiguous i32.
template <typename T>
__device__ void embedding_forward_kernel(T* out, const T* weight, const int* ids, long long N,
                                         int C, int V) {
  for (long long n = blockIdx.x; n < N; n += gridDim.x) {
    const int id = ids[n];
    T* o = out + n * C;
    if (id < 0 || id >= V) {
      for (int c = threadIdx.x; c < C; c += blockDim.x) o[c] = store_as<T>(NAN);
      continue;
    }
    const T* w = weight + (long long)id * C;
    for (int c = threadIdx.x; c < C; c += blockDim.x) o[c] = w[c];
  }
}

extern "C" __global__ void embedding_forward_f32(float* out, const float* weight, const int* ids,
                                                 long long N, int C, int V) {
  embedding_forward_kernel(out, weight, ids, N, C, V);
}
extern "C" __global__ void embedding_forward_bf16(__nv_bfloat16* out, const __nv_bfloat16* weight,
                                                  const int* ids, long long N, int C, int V) {
  embedding_forward_kernel(out, weight, ids, N, C, V);
}

// dweight (V, C) f32 contiguous += dout (N, C) rows at ids (N). Atomics: repeated ids add in a
// run-dependent order (last-bit differences only). A bf16 dweight is accumulated in an f32 copy
// by the wrapper, so every addition here is an f32 one.
template <typename T>
__device__ void embedding_backward_kernel(float* dweight, const T* dout, const int* ids,
                                          long long N, int C, int V) {
  for (long long n = blockIdx.x; n < N; n += gridDim.x) {
    const int id = ids[n];
    if (id < 0 || id >= V) continue;
    const T* d = dout + n * C;
    float* w = dweight + (long long)id * C;
    for (int c = threadIdx.x; c < C; c += blockDim.x) atomicAdd(w + c, to_float(d[c]));
  }
}

extern "C" __global__ void embedding_backward_f32(float* dweight, const float* dout, const int* ids,
                                                  long long N, int C, int V) {
  embedding_backward_kernel(dweight, dout, ids, N, C, V);
}
extern "C" __global__ void embedding_backward_bf16(float* dweight, const __nv_bfloat16* dout,
                                                   const int* ids, long long N, int C, int V) {
  embedding_backward_kernel(dweight, dout, ids, N, C, V);
}

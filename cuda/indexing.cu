// torch.gather / scatter_add over strided views (src/backend/cpu/indexing.ts). The CPU reference
// throws a RangeError on an out-of-range index before touching memory; a kernel cannot throw, so
// an out-of-range index never reads or writes outside the view: gather writes NaN (f32/bf16) or
// INT_MIN (i32) there, and scatterAdd skips that element.
#include "common.cuh"

template <typename T> __device__ __forceinline__ T poison();
template <> __device__ __forceinline__ float poison<float>() { return __int_as_float(0x7fc00000); }
template <> __device__ __forceinline__ __nv_bfloat16 poison<__nv_bfloat16>() {
  return __float2bfloat16_rn(__int_as_float(0x7fc00000));
}
template <> __device__ __forceinline__ int poison<int>() { return (int)0x80000000u; }

// out[..i..] = x[..index[..i..] at axis..]. L walks out's shape for (out, index, x with its
// axis stride zeroed); x_axis_step/x_axis_size are that axis' stride and size.
template <typename T>
__device__ void gather_kernel(T* out, const T* x, const int* index, Layout<3> L, long long n,
                              long long x_axis_step, int x_axis_size) {
  grid_loop(n, [&](auto i) {
    long long off[3];
    locate(L, i, off);  // out, index, x
    const int j = index[off[1]];
    out[off[0]] = (j >= 0 && j < x_axis_size) ? x[off[2] + (long long)j * x_axis_step] : poison<T>();
  });
}

// out, index: strided views of n elements over out's shape; x: strided, any shape of out's rank.
#define GATHER(T, N)                                                                             \
  extern "C" __global__ void gather_##N(T* out, const T* x, const int* index, Layout<3> L,      \
                                        long long n, long long x_axis_step, int x_axis_size) {  \
    gather_kernel<T>(out, x, index, L, n, x_axis_step, x_axis_size);                            \
  }
GATHER(float, f32)
GATHER(__nv_bfloat16, bf16)
GATHER(int, i32)

// dst[..index[..i..] at axis..] += src[..i..] with atomics (float atomics make the order of
// repeated-index additions, and so the last bits, run-dependent). L walks src's shape for
// (src, index, dst with its axis stride zeroed). bf16 destinations are accumulated in an f32
// copy by the wrapper (bf16 atomics would round every addition).
template <typename TS, typename TD>
__device__ void scatter_add_kernel(TD* dst, const TS* src, const int* index, Layout<3> L,
                                   long long n, long long dst_axis_step, int dst_axis_size) {
  grid_loop(n, [&](auto i) {
    long long off[3];
    locate(L, i, off);  // src, index, dst
    const int j = index[off[1]];
    if (j < 0 || j >= dst_axis_size) return;
    atomicAdd(dst + off[2] + (long long)j * dst_axis_step, (TD)Num<TS>::load(src[off[0]]));
  });
}

// dst: strided f32 (or i32) view; src, index: strided views of n elements over src's shape.
extern "C" __global__ void scatter_add_f32(float* dst, const float* src, const int* index,
                                           Layout<3> L, long long n, long long dst_axis_step,
                                           int dst_axis_size) {
  scatter_add_kernel(dst, src, index, L, n, dst_axis_step, dst_axis_size);
}
extern "C" __global__ void scatter_add_bf16(float* dst, const __nv_bfloat16* src, const int* index,
                                            Layout<3> L, long long n, long long dst_axis_step,
                                            int dst_axis_size) {
  scatter_add_kernel(dst, src, index, L, n, dst_axis_step, dst_axis_size);
}
// i32 atomicAdd wraps modulo 2^32, which is what the reference's Int32Array += stores.
extern "C" __global__ void scatter_add_i32(int* dst, const int* src, const int* index, Layout<3> L,
                                           long long n, long long dst_axis_step,
                                           int dst_axis_size) {
  scatter_add_kernel(dst, src, index, L, n, dst_axis_step, dst_axis_size);
}

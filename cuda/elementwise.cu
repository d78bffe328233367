// Elementwise kernels over strided views: fill, unary (incl. copy/cast between f32/bf16/i32),
// binary arithmetic, comparisons (i32 0/1 out), and where. Broadcasting is a stride of 0.
// Semantics follow src/backend/cpu/{elementwise,unary_loops,binary_loops,math}.ts: JavaScript's
// Math.max/min/pow/sign corner cases included, i32 arithmetic computed in f64 as JavaScript does.
// Every kernel takes one Layout<K> over the output shape (dims merged by the wrapper).
#include "common.cuh"

// Op codes: the index of each op in UNARY_OPS / BINARY_OPS of
// src/backend/cuda/kernels/elementwise.ts (tests/cuda_kernels_test.ts checks the two agree).
enum UnaryOp {
  U_COPY, U_NEG, U_EXP, U_LOG, U_SQRT, U_RSQRT, U_ABS, U_TANH, U_SIGMOID, U_RELU, U_GELU, U_SILU,
  U_SIGN
};
enum BinaryOp {
  B_ADD, B_SUB, B_MUL, B_DIV, B_POW, B_MAXIMUM, B_MINIMUM, B_EQ, B_NE, B_LT, B_LE, B_GT, B_GE,
  B_GELU_BACKWARD, B_RELU_BACKWARD
};

// f32 / f64 twins of the math functions, so one template serves both compute types.
__device__ __forceinline__ float m_exp(float x) { return expf(x); }
__device__ __forceinline__ double m_exp(double x) { return exp(x); }
__device__ __forceinline__ float m_log(float x) { return logf(x); }
__device__ __forceinline__ double m_log(double x) { return log(x); }
__device__ __forceinline__ float m_sqrt(float x) { return sqrtf(x); }
__device__ __forceinline__ double m_sqrt(double x) { return sqrt(x); }
__device__ __forceinline__ float m_tanh(float x) { return tanhf(x); }
__device__ __forceinline__ double m_tanh(double x) { return tanh(x); }
__device__ __forceinline__ float m_pow(float a, float b) { return powf(a, b); }
__device__ __forceinline__ double m_pow(double a, double b) { return pow(a, b); }

#define GELU_A 0.7978845608028654  // sqrt(2 / pi)
#define GELU_B 0.044715

// GELU, tanh form, as x * sigmoid(2u): one exp, no cancellation (math.ts gelu).
template <typename C> __device__ __forceinline__ C gelu(C x) {
  const C u = (C)GELU_A * (x + (C)GELU_B * x * x * x);
  return x / ((C)1 + m_exp((C)-2 * u));
}

// d gelu / dx = s + x s (1 - s) 2u', s = sigmoid(2u) (math.ts geluGrad).
template <typename C> __device__ __forceinline__ C gelu_grad(C x) {
  const C x2 = x * x;
  const C s = (C)1 / ((C)1 + m_exp((C)-2 * (C)GELU_A * x * ((C)1 + (C)GELU_B * x2)));
  return s + x * s * ((C)1 - s) * (C)2 * (C)GELU_A * ((C)1 + (C)3 * (C)GELU_B * x2);
}

template <typename C> __device__ __forceinline__ C unary_op(int op, C x) {
  switch (op) {
    case U_COPY: return x;
    case U_NEG: return -x;
    case U_EXP: return m_exp(x);
    case U_LOG: return m_log(x);
    case U_SQRT: return m_sqrt(x);
    case U_RSQRT: return (C)1 / m_sqrt(x);  // not rsqrtf: keep the reference's precision
    case U_ABS: return x < 0 ? -x : (x == 0 ? (C)0 : x);
    case U_TANH: return m_tanh(x);
    case U_SIGMOID: return (C)1 / ((C)1 + m_exp(-x));
    case U_RELU: return x < 0 ? (C)0 : x;  // NaN passes through
    case U_GELU: return gelu(x);
    case U_SILU: return x / ((C)1 + m_exp(-x));
    case U_SIGN: return x > 0 ? (C)1 : (x < 0 ? (C)-1 : x);  // keeps +-0 and NaN, like Math.sign
    default: return x;
  }
}

// JavaScript's Math.max/Math.min: NaN if either operand is NaN.
template <typename C> __device__ __forceinline__ C js_max(C a, C b) {
  return (isnan(a) || isnan(b)) ? a + b : (a > b ? a : b);
}
template <typename C> __device__ __forceinline__ C js_min(C a, C b) {
  return (isnan(a) || isnan(b)) ? a + b : (a < b ? a : b);
}
// Math.pow differs from C pow where C returns 1: pow(1, NaN) and pow(+-1, +-inf) are NaN.
template <typename C> __device__ __forceinline__ C js_pow(C a, C b) {
  if (isnan(b)) return b;
  if (isinf(b) && (a == (C)1 || a == (C)-1)) return b - b;  // NaN
  if (b == (C)2) return a * a;  // exact, and what the CPU's scalar-exponent fast path computes
  return m_pow(a, b);
}

template <typename C> __device__ __forceinline__ C binary_op(int op, C a, C b) {
  switch (op) {
    case B_ADD: return a + b;
    case B_SUB: return a - b;
    case B_MUL: return a * b;
    case B_DIV: return a / b;
    case B_POW: return js_pow(a, b);
    case B_MAXIMUM: return js_max(a, b);
    case B_MINIMUM: return js_min(a, b);
    case B_GELU_BACKWARD: return gelu_grad(a) * b;
    case B_RELU_BACKWARD: return a > 0 ? b : (C)0;
    default: return a;
  }
}

template <typename C> __device__ __forceinline__ int compare_op(int op, C a, C b) {
  switch (op) {
    case B_EQ: return a == b;
    case B_NE: return a != b;
    case B_LT: return a < b;
    case B_LE: return a <= b;
    case B_GT: return a > b;
    case B_GE: return a >= b;
    default: return 0;
  }
}

// ---- fill ----

template <typename T>
__device__ void fill_kernel(T* out, Layout<1> L, long long n, T value) {
  grid_loop(n, [&](auto i) {
    long long off[1];
    locate(L, i, off);
    out[off[0]] = value;
  });
}

// out: strided view of n elements; value already rounded to out's dtype by the wrapper
// (f32 for f32/bf16, ToInt32 for i32).
extern "C" __global__ void fill_f32(float* out, Layout<1> L, long long n, float value) {
  fill_kernel(out, L, n, value);
}
extern "C" __global__ void fill_bf16(__nv_bfloat16* out, Layout<1> L, long long n, float value) {
  fill_kernel(out, L, n, __float2bfloat16_rn(value));
}
extern "C" __global__ void fill_i32(int* out, Layout<1> L, long long n, int value) {
  fill_kernel(out, L, n, value);
}

// ---- unary (and copy/cast) ----

template <typename TX, typename TY>
__device__ void unary_kernel(TY* y, const TX* x, Layout<2> L, long long n, int op) {
  using C = typename Num<TX>::C;
  grid_loop(n, [&](auto i) {
    long long off[2];
    locate(L, i, off);  // off[0]: y, off[1]: x
    y[off[0]] = store_as<TY>(unary_op<C>(op, Num<TX>::load(x[off[1]])));
  });
}

// Same-type copies move the bits (NaN payloads, -0 and i32 values survive exactly).
template <typename T>
__device__ void copy_kernel(T* y, const T* x, Layout<2> L, long long n) {
  grid_loop(n, [&](auto i) {
    long long off[2];
    locate(L, i, off);
    y[off[0]] = x[off[1]];
  });
}

// y, x: strided views of n elements over one shape; op: a UnaryOp. unary_<x dtype>_<y dtype>.
#define UNARY(TX, NX, TY, NY)                                                                  \
  extern "C" __global__ void unary_##NX##_##NY(TY* y, const TX* x, Layout<2> L, long long n, \
                                               int op) {                                     \
    unary_kernel<TX, TY>(y, x, L, n, op);                                                    \
  }
UNARY(float, f32, __nv_bfloat16, bf16)
UNARY(float, f32, int, i32)
UNARY(__nv_bfloat16, bf16, float, f32)
UNARY(__nv_bfloat16, bf16, int, i32)
UNARY(int, i32, float, f32)
UNARY(int, i32, __nv_bfloat16, bf16)
UNARY(float, f32, float, f32)
UNARY(__nv_bfloat16, bf16, __nv_bfloat16, bf16)
UNARY(int, i32, int, i32)

// y, x: strided views of n elements of one dtype (copy without conversion). copy_<bytes per element>.
extern "C" __global__ void copy_b32(int* y, const int* x, Layout<2> L, long long n) {
  copy_kernel(y, x, L, n);
}
extern "C" __global__ void copy_b16(unsigned short* y, const unsigned short* x, Layout<2> L,
                                    long long n) {
  copy_kernel(y, x, L, n);
}

// ---- binary and comparisons ----

template <typename T>
__device__ void binary_kernel(T* out, const T* a, const T* b, Layout<3> L, long long n, int op) {
  using C = typename Num<T>::C;
  grid_loop(n, [&](auto i) {
    long long off[3];
    locate(L, i, off);  // off[0]: out, off[1]: a, off[2]: b
    out[off[0]] = store_as<T>(binary_op<C>(op, Num<T>::load(a[off[1]]), Num<T>::load(b[off[2]])));
  });
}

template <typename T>
__device__ void compare_kernel(int* out, const T* a, const T* b, Layout<3> L, long long n, int op) {
  grid_loop(n, [&](auto i) {
    long long off[3];
    locate(L, i, off);
    out[off[0]] = compare_op(op, Num<T>::load(a[off[1]]), Num<T>::load(b[off[2]]));
  });
}

// out, a, b: strided views of n elements over one shape (a may alias out exactly: each element
// is read before it is written by the same thread); op: an arithmetic BinaryOp.
#define BINARY(T, N)                                                                             \
  extern "C" __global__ void binary_##N(T* out, const T* a, const T* b, Layout<3> L, long long n, \
                                        int op) {                                                \
    binary_kernel<T>(out, a, b, L, n, op);                                                       \
  }                                                                                              \
  extern "C" __global__ void compare_##N(int* out, const T* a, const T* b, Layout<3> L,          \
                                         long long n, int op) {                                  \
    compare_kernel<T>(out, a, b, L, n, op);                                                      \
  }
BINARY(float, f32)
BINARY(__nv_bfloat16, bf16)
BINARY(int, i32)

// ---- where ----

// out = cond != 0 ? a : b. Any cond dtype (NaN counts as true, -0 as false, like the reference);
// a, b and out share one dtype, moved as bits.
template <typename TC, typename T>
__device__ void where_kernel(T* out, const TC* cond, const T* a, const T* b, Layout<4> L,
                             long long n) {
  grid_loop(n, [&](auto i) {
    long long off[4];
    locate(L, i, off);  // out, cond, a, b
    out[off[0]] = Num<TC>::load(cond[off[1]]) != 0 ? a[off[2]] : b[off[3]];
  });
}

// out, cond, a, b: strided views of n elements over one shape. where_<cond dtype>_b<data bits>.
#define WHERE(TC, NC, T, NB)                                                                     \
  extern "C" __global__ void where_##NC##_##NB(T* out, const TC* cond, const T* a, const T* b,  \
                                               Layout<4> L, long long n) {                      \
    where_kernel<TC, T>(out, cond, a, b, L, n);                                                 \
  }
WHERE(int, i32, int, b32)
WHERE(int, i32, unsigned short, b16)
WHERE(float, f32, int, b32)
WHERE(float, f32, unsigned short, b16)
WHERE(__nv_bfloat16, bf16, int, b32)
WHERE(__nv_bfloat16, bf16, unsigned short, b16)

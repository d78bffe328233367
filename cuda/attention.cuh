// Fused scaled-dot-product attention, FlashAttention-2 style: the (T, S) score matrix is never
// stored. This header holds what both kernel families share: the semantics, the AttnArgs
// parameter block, dropout, masks and positions. The CPU backend's
// attentionForward/attentionBackward (src/backend/cpu/attention.ts) is the reference, its dropout
// mask bit for bit.
//
// Scores s = scale * q.k - slope[h] * |i + q_offset - j| + bias[b, h, i, j], over the visible keys
// j of query i (j < S; causal: j <= i + q_offset; window > 0: j > i + q_offset - window);
// p = softmax(s); out = (p * dropout mask / (1 - dropout)) . v; lse = logsumexp(s) per row.
// Rows with no visible key: out 0, lse -inf (and no gradient).
//
// Two implementations, each file forward beside backward. bf16 runs on tensor cores (mma.sync,
// attention_mma.cu): the forward at D = 64 and 128, the backward at D = 64. f32, and the bf16
// backward at D = 128, run the scalar (SIMT) kernels of attention_scalar.cu, whose
// attention_backward_delta_<dt> also computes the delta of the tensor-core backward.
#pragma once
#include "common.cuh"

#define ATTN_THREADS 128

// Element strides (b, h, t) of each (B, H|Hkv, T|S, D) view; D has unit stride.
enum AttnView { AV_Q, AV_K, AV_V, AV_OUT, AV_DOUT, AV_DQ, AV_DK, AV_DV, AV_COUNT };

// Everything a kernel needs, by value (384 bytes, 8-byte aligned); packed by
// src/backend/cuda/kernels/attention.ts. Backward-only pointers are 0 in the forward.
struct AttnArgs {
  const void* q;        // (B, H, T, D)
  const void* k;        // (B, Hkv, S, D)
  const void* v;        // (B, Hkv, S, D)
  void* out;            // (B, H, T, D)
  float* lse;           // (B, H, T) contiguous
  const float* slopes;  // (H) or null: ALiBi
  const float* bias;    // broadcast to (B, H, T, S) through bias_stride, or null
  const void* dout;     // (B, H, T, D)
  void* dq;             // (B, H, T, D)
  void* dk;             // (B, Hkv, S, D)
  void* dv;             // (B, Hkv, S, D)
  float* delta;         // (B, H, T) contiguous f32 scratch: rowsum(dout * out)
  long long stride[AV_COUNT][3];
  long long bias_stride[4];
  unsigned long long dropout_block;  // first Philox counter block of this call's mask
  int B, H, Hkv, T, S, D;
  int causal, q_offset, window;
  float scale;
  float dropout_scale;         // 1 / (1 - dropout)
  unsigned dropout_threshold;  // keep iff (word >> 8) >= threshold = ceil(dropout * 2^24); 0: off
  unsigned key0, key1;
};

// ---- dropout: philox4x32-10 exactly as src/random.ts ----

// In the CPU emulator (tests/cuda_emu/emu.h) __noinline__ is not a macro, and both attention
// modules link into one library there, so philox_word is also `inline` (one definition).
#ifdef EMU_HAS_MMA
#define ATTN_NOINLINE inline __attribute__((noinline))
#else
#define ATTN_NOINLINE __noinline__
#endif

__device__ __forceinline__ unsigned mulhi32(unsigned a, unsigned b) {
  return (unsigned)(((unsigned long long)a * b) >> 32);
}

// Word w (0..3) of philox4x32-10 at counter (low, high, 0, 0) and key (k0, k1). A call, not
// inlined: the tensor-core kernels draw for each of a lane's 32 scores per tile.
__device__ ATTN_NOINLINE unsigned philox_word(unsigned long long counter, unsigned k0,
                                                unsigned k1, unsigned w) {
  unsigned x0 = (unsigned)counter, x1 = (unsigned)(counter >> 32), x2 = 0, x3 = 0;
#pragma unroll 1
  for (int r = 0; r < 10; r++) {
    const unsigned hi0 = mulhi32(0xd2511f53u, x0), lo0 = 0xd2511f53u * x0;
    const unsigned hi1 = mulhi32(0xcd9e8d57u, x2), lo1 = 0xcd9e8d57u * x2;
    const unsigned y0 = hi1 ^ x1 ^ k0, y2 = hi0 ^ x3 ^ k1;
    x0 = y0;
    x1 = lo1;
    x2 = y2;
    x3 = lo0;
    k0 += 0x9e3779b9u;
    k1 += 0xbb67ae85u;
  }
  return w == 0 ? x0 : w == 1 ? x1 : w == 2 ? x2 : x3;
}

// 1/(1-p) for a kept weight, 0 for a dropped one. Element e = ((b*H + h)*T + i)*S + j of the
// contiguous (B, H, T, S) weights uses word e % 4 of block dropout_block + e / 4.
__device__ __forceinline__ float dropout_factor(const AttnArgs& a, int b, int h, int i, int j) {
  if (a.dropout_threshold == 0) return 1.0f;
  const unsigned long long e =
      (((unsigned long long)b * a.H + h) * a.T + i) * (unsigned long long)a.S + j;
  const unsigned word = philox_word(a.dropout_block + e / 4, a.key0, a.key1, (unsigned)(e % 4));
  return (word >> 8) >= a.dropout_threshold ? a.dropout_scale : 0.0f;
}

// ---- masks, positions, bias ----

__device__ __forceinline__ bool visible(const AttnArgs& a, int i, int j) {
  const long long pos = (long long)i + a.q_offset;  // query i's position in key coordinates
  return j < a.S && (!a.causal || j <= pos) && (a.window == 0 || j > pos - a.window);
}

// ALiBi and bias terms of score (i, j); bias_bh points at bias[b, h, 0, 0].
__device__ __forceinline__ float score_terms(const AttnArgs& a, float slope, const float* bias_bh,
                                             int i, int j) {
  float t = slope == 0.0f ? 0.0f : -slope * fabsf((float)((long long)i + a.q_offset - j));
  if (bias_bh) t += bias_bh[i * a.bias_stride[2] + j * a.bias_stride[3]];
  return t;
}

// Visible key range [lo, hi) of query rows [first, last] (whole tiles outside it are skipped).
__device__ __forceinline__ void key_range(const AttnArgs& a, int first, int last, int& lo,
                                          int& hi) {
  long long h = a.S, l = 0;
  if (a.causal) h = (long long)last + a.q_offset + 1;
  if (a.window > 0) l = (long long)first + a.q_offset - a.window + 1;
  lo = (int)(l < 0 ? 0 : l > a.S ? a.S : l);
  hi = (int)(h < 0 ? 0 : h > a.S ? a.S : h);
}

// Query range [lo, hi) that sees any key of [first, last].
__device__ __forceinline__ void query_range(const AttnArgs& a, int first, int last, int& lo,
                                            int& hi) {
  long long l = 0, h = a.T;
  if (a.causal) l = (long long)first - a.q_offset;
  if (a.window > 0) h = (long long)last - a.q_offset + a.window;
  lo = (int)(l < 0 ? 0 : l > a.T ? a.T : l);
  hi = (int)(h < 0 ? 0 : h > a.T ? a.T : h);
}

// ---- views ----

template <typename T>
__device__ __forceinline__ const T* head_ptr(const void* p, const AttnArgs& a, int view, int b,
                                             int h) {
  return (const T*)p + b * a.stride[view][0] + h * a.stride[view][1];
}

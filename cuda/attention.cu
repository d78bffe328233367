// Fused scaled-dot-product attention, FlashAttention-2 style: the (T, S) score matrix is never
// stored. Forward beside backward; the CPU backend's attentionForward/attentionBackward
// (src/backend/cpu/attention.ts) is the reference, its dropout mask bit for bit.
//
// Scores s = scale * q.k - slope[h] * |i + q_offset - j| + bias[b, h, i, j], over the visible keys
// j of query i (j < S; causal: j <= i + q_offset; window > 0: j > i + q_offset - window);
// p = softmax(s); out = (p * dropout mask / (1 - dropout)) . v; lse = logsumexp(s) per row.
// Rows with no visible key: out 0, lse -inf (and no gradient).
//
// Two implementations share the semantics and the AttnArgs parameter block. bf16 runs on tensor
// cores (mma.sync, the "tensor cores" sections below): the forward at D = 64 and 128, the backward
// at D = 64. f32, and the bf16 backward at D = 128, run the scalar kernels described here.
//
// Scalar work split. A CTA has ATTN_THREADS threads; a row (a query row, or a key row in the dk/dv
// kernel) belongs to G = D / 32 consecutive lanes, each holding 32 of its D elements in registers,
// so a tile is ROWS = ATTN_THREADS / G rows (64 for D = 64, 32 for D = 128) and the other
// operand's tile (ROWS x D, f32) sits in shared memory. Lane g of a row holds the elements
// 4*G*c + 4*g + r (c < 8, r < 4): at each step the G lanes of a row read G consecutive 16-byte
// groups of a shared row, so the reads are conflict-free (and vectorisable).
//   forward: one CTA per (query tile, h, b); online softmax over key tiles in KC-key chunks.
//   backward: delta_i = sum_d dout*out (one thread per row), then dk/dv with one CTA per
//   (key tile, kv head, b) looping over the query heads of its group and their query tiles (so
//   the GQA sum happens in registers, no atomics), then dq with one CTA per (query tile, h, b)
//   looping over key tiles. Both recompute p from lse; every output element has one owner
//   thread, so the backward is deterministic.
// Whole tiles outside the causal/window band are skipped; compute is f32 FMA (bf16 inputs are
// widened when loaded, results rounded once when stored).
#include "common.cuh"

#define ATTN_THREADS 128
#define ATTN_SLICE 32  // elements of a row each lane holds
#define ATTN_KC 8      // keys per online-softmax chunk in the forward

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

#ifdef EMU_HAS_MMA  // the CPU emulator (tests/cuda_emu/emu.h), where __noinline__ is not a macro
#define ATTN_NOINLINE __attribute__((noinline))
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

// ---- row slices ----

// Column of element e (< 32) of lane g's slice of a row.
template <int G>
__device__ __forceinline__ int slice_col(int g, int e) {
  return (e / 4) * 4 * G + 4 * g + (e % 4);
}

// Sum over the G lanes of a row (consecutive lanes); every lane of the warp must call it.
template <int G>
__device__ __forceinline__ float lanes_sum(float v) {
  if (G >= 2) v += __shfl_xor_sync(0xffffffffu, v, 1);
  if (G >= 4) v += __shfl_xor_sync(0xffffffffu, v, 2);
  return v;
}

// Lane g's slice of a row of n <= 32 G elements (columns past n read as 0).
template <typename T, int G>
__device__ __forceinline__ void load_slice(float (&x)[ATTN_SLICE], const T* row, int g,
                                           float mul, int n) {
#pragma unroll
  for (int e = 0; e < ATTN_SLICE; e++) {
    const int c = slice_col<G>(g, e);
    x[e] = c < n ? to_float(row[c]) * mul : 0.0f;
  }
}

template <typename T, int G>
__device__ __forceinline__ void store_slice(T* row, const float (&x)[ATTN_SLICE], int g,
                                            float mul, int n) {
#pragma unroll
  for (int e = 0; e < ATTN_SLICE; e++) {
    const int c = slice_col<G>(g, e);
    if (c < n) row[c] = store_as<T>(x[e] * mul);
  }
}

// Dot product of a lane's slice with its part of shared row `s` (full sum after lanes_sum).
template <int G>
__device__ __forceinline__ float slice_dot(const float (&x)[ATTN_SLICE], const float* s, int g) {
  float acc = 0.0f;
#pragma unroll
  for (int e = 0; e < ATTN_SLICE; e++) acc += x[e] * s[slice_col<G>(g, e)];
  return acc;
}

template <int G>
__device__ __forceinline__ void slice_axpy(float (&x)[ATTN_SLICE], float alpha, const float* s,
                                           int g) {
#pragma unroll
  for (int e = 0; e < ATTN_SLICE; e++) x[e] += alpha * s[slice_col<G>(g, e)];
}

// Rows [r0, r0 + rows) of a (.., n, d) view into shared tile[rows][D] (D >= d) as f32; rows past
// n and columns past d are 0.
template <typename T, int D>
__device__ __forceinline__ void load_tile(float* tile, const T* base, long long row_stride,
                                          int r0, int rows, int n, int d) {
  for (int idx = threadIdx.x; idx < rows * D; idx += ATTN_THREADS) {
    const int r = idx / D, c = idx % D;
    tile[idx] =
        r0 + r < n && c < d ? to_float(base[(long long)(r0 + r) * row_stride + c]) : 0.0f;
  }
}

template <typename T>
__device__ __forceinline__ const T* head_ptr(const void* p, const AttnArgs& a, int view, int b,
                                             int h) {
  return (const T*)p + b * a.stride[view][0] + h * a.stride[view][1];
}

// ---- forward ----

// grid (ceil(T / ROWS), H, B), block ATTN_THREADS.
template <typename T, int D>
__device__ void attention_forward_kernel(const AttnArgs& a) {
  constexpr int G = D / ATTN_SLICE, ROWS = ATTN_THREADS / G;
  __shared__ __align__(16) float ks[ROWS * D];
  __shared__ __align__(16) float vs[ROWS * D];
  const int b = blockIdx.z, h = blockIdx.y, hk = h / (a.H / a.Hkv);
  const int q0 = blockIdx.x * ROWS, r = threadIdx.x / G, g = threadIdx.x % G, i = q0 + r;
  const bool valid = i < a.T;  // rows past T still join every barrier and shuffle
  const T* kb = head_ptr<T>(a.k, a, AV_K, b, hk);
  const T* vb = head_ptr<T>(a.v, a, AV_V, b, hk);
  const float slope = a.slopes ? a.slopes[h] : 0.0f;
  const float* bias_bh = a.bias ? a.bias + b * a.bias_stride[0] + h * a.bias_stride[1] : nullptr;
  float q[ATTN_SLICE], o[ATTN_SLICE];
  load_slice<T, G>(q, head_ptr<T>(a.q, a, AV_Q, b, h) + (valid ? i : 0) * a.stride[AV_Q][2], g,
                   a.scale, a.D);  // scale folded into q
#pragma unroll
  for (int e = 0; e < ATTN_SLICE; e++) o[e] = 0.0f;
  float m = -INFINITY, l = 0.0f;  // running max and sum of exp(s - m) (undropped)
  int lo, hi;
  key_range(a, q0, (q0 + ROWS < a.T ? q0 + ROWS : a.T) - 1, lo, hi);
  for (int k0 = lo / ROWS * ROWS; k0 < hi; k0 += ROWS) {
    __syncthreads();  // the previous tile's readers are done
    load_tile<T, D>(ks, kb, a.stride[AV_K][2], k0, ROWS, a.S, a.D);
    load_tile<T, D>(vs, vb, a.stride[AV_V][2], k0, ROWS, a.S, a.D);
    __syncthreads();
    const int n = hi - k0 < ROWS ? hi - k0 : ROWS;
    for (int c0 = 0; c0 < n; c0 += ATTN_KC) {
      float s[ATTN_KC];
      float mc = -INFINITY;
#pragma unroll
      for (int jj = 0; jj < ATTN_KC; jj++) {
        const int j = k0 + c0 + jj;
        const float dot = lanes_sum<G>(slice_dot<G>(q, ks + (c0 + jj) * D, g));
        s[jj] = visible(a, i, j) ? dot + score_terms(a, slope, bias_bh, i, j) : -INFINITY;
        mc = fmaxf(mc, s[jj]);
      }
      const float m_new = fmaxf(m, mc);
      if (m_new == -INFINITY) continue;  // nothing visible yet for this row
      const float alpha = expf(m - m_new);  // 0 while m is -inf
      l *= alpha;
#pragma unroll
      for (int e = 0; e < ATTN_SLICE; e++) o[e] *= alpha;
#pragma unroll
      for (int jj = 0; jj < ATTN_KC; jj++) {
        const float p = expf(s[jj] - m_new);
        l += p;
        if (p != 0.0f) {
          slice_axpy<G>(o, p * dropout_factor(a, b, h, i, k0 + c0 + jj), vs + (c0 + jj) * D, g);
        }
      }
      m = m_new;
    }
  }
  if (!valid) return;
  T* orow = (T*)a.out + b * a.stride[AV_OUT][0] + h * a.stride[AV_OUT][1] + i * a.stride[AV_OUT][2];
  float* lse = a.lse + ((long long)b * a.H + h) * a.T + i;
  if (l == 0.0f) {  // no visible key
    store_slice<T, G>(orow, o, g, 0.0f, a.D);
    if (g == 0) *lse = -INFINITY;
  } else {
    store_slice<T, G>(orow, o, g, 1.0f / l, a.D);
    if (g == 0) *lse = m + logf(l);
  }
}

// ---- backward ----

// delta[b, h, i] = sum_d dout * out (f32). One thread per row, grid-stride.
template <typename T>
__device__ void attention_backward_delta_kernel(const AttnArgs& a) {
  grid_loop((long long)a.B * a.H * a.T, [&](auto row) {
    const int i = (int)(row % a.T), h = (int)(row / a.T % a.H), b = (int)(row / a.T / a.H);
    const T* o = head_ptr<T>(a.out, a, AV_OUT, b, h) + i * a.stride[AV_OUT][2];
    const T* d = head_ptr<T>(a.dout, a, AV_DOUT, b, h) + i * a.stride[AV_DOUT][2];
    float acc = 0.0f;
    for (int c = 0; c < a.D; c++) acc += to_float(o[c]) * to_float(d[c]);
    a.delta[row] = acc;
  });
}

// dk, dv of one key tile of one kv head: grid (ceil(S / ROWS), Hkv, B), block ATTN_THREADS.
// dv_j = sum_i p_ij z_ij dout_i; dk_j = scale * sum_i p_ij (z_ij dout_i.v_j - delta_i) q_i, over
// the query heads of the group (z: the dropout factor).
template <typename T, int D>
__device__ void attention_backward_dkdv_kernel(const AttnArgs& a) {
  constexpr int G = D / ATTN_SLICE, ROWS = ATTN_THREADS / G;
  __shared__ __align__(16) float qs[ROWS * D];
  __shared__ __align__(16) float dos[ROWS * D];
  __shared__ float lses[ROWS], deltas[ROWS];
  const int b = blockIdx.z, hk = blockIdx.y, group = a.H / a.Hkv;
  const int k0 = blockIdx.x * ROWS, r = threadIdx.x / G, g = threadIdx.x % G, j = k0 + r;
  const bool valid = j < a.S;
  float kr[ATTN_SLICE], vr[ATTN_SLICE], dk[ATTN_SLICE], dv[ATTN_SLICE];
  const int row = valid ? j : 0;
  load_slice<T, G>(kr, head_ptr<T>(a.k, a, AV_K, b, hk) + row * a.stride[AV_K][2], g, 1.0f,
                   a.D);
  load_slice<T, G>(vr, head_ptr<T>(a.v, a, AV_V, b, hk) + row * a.stride[AV_V][2], g, 1.0f,
                   a.D);
#pragma unroll
  for (int e = 0; e < ATTN_SLICE; e++) dk[e] = dv[e] = 0.0f;
  int lo, hi;
  query_range(a, k0, (k0 + ROWS < a.S ? k0 + ROWS : a.S) - 1, lo, hi);
  for (int hh = 0; hh < group; hh++) {
    const int h = hk * group + hh;
    const float slope = a.slopes ? a.slopes[h] : 0.0f;
    const float* bias_bh =
        a.bias ? a.bias + b * a.bias_stride[0] + h * a.bias_stride[1] : nullptr;
    const T* qb = head_ptr<T>(a.q, a, AV_Q, b, h);
    const T* db = head_ptr<T>(a.dout, a, AV_DOUT, b, h);
    const long long stats = ((long long)b * a.H + h) * a.T;
    for (int q0 = lo / ROWS * ROWS; q0 < hi; q0 += ROWS) {
      __syncthreads();
      load_tile<T, D>(qs, qb, a.stride[AV_Q][2], q0, ROWS, a.T, a.D);
      load_tile<T, D>(dos, db, a.stride[AV_DOUT][2], q0, ROWS, a.T, a.D);
      for (int t = threadIdx.x; t < ROWS; t += ATTN_THREADS) {
        lses[t] = q0 + t < a.T ? a.lse[stats + q0 + t] : -INFINITY;
        deltas[t] = q0 + t < a.T ? a.delta[stats + q0 + t] : 0.0f;
      }
      __syncthreads();
      const int n = hi - q0 < ROWS ? hi - q0 : ROWS;
      for (int t = 0; t < n; t++) {
        const int i = q0 + t;
        const float qk = lanes_sum<G>(slice_dot<G>(kr, qs + t * D, g));
        const float dp = lanes_sum<G>(slice_dot<G>(vr, dos + t * D, g));
        if (!valid || lses[t] == -INFINITY || !visible(a, i, j)) continue;
        const float s = a.scale * qk + score_terms(a, slope, bias_bh, i, j);
        const float p = expf(s - lses[t]);
        const float z = dropout_factor(a, b, h, i, j);
        slice_axpy<G>(dv, p * z, dos + t * D, g);
        slice_axpy<G>(dk, p * (z * dp - deltas[t]), qs + t * D, g);
      }
    }
  }
  if (!valid) return;
  store_slice<T, G>((T*)a.dk + b * a.stride[AV_DK][0] + hk * a.stride[AV_DK][1] +
                        j * a.stride[AV_DK][2],
                    dk, g, a.scale, a.D);
  store_slice<T, G>((T*)a.dv + b * a.stride[AV_DV][0] + hk * a.stride[AV_DV][1] +
                        j * a.stride[AV_DV][2],
                    dv, g, 1.0f, a.D);
}

// dq of one query tile: grid (ceil(T / ROWS), H, B), block ATTN_THREADS.
// dq_i = scale * sum_j p_ij (z_ij dout_i.v_j - delta_i) k_j.
template <typename T, int D>
__device__ void attention_backward_dq_kernel(const AttnArgs& a) {
  constexpr int G = D / ATTN_SLICE, ROWS = ATTN_THREADS / G;
  __shared__ __align__(16) float ks[ROWS * D];
  __shared__ __align__(16) float vs[ROWS * D];
  const int b = blockIdx.z, h = blockIdx.y, hk = h / (a.H / a.Hkv);
  const int q0 = blockIdx.x * ROWS, r = threadIdx.x / G, g = threadIdx.x % G, i = q0 + r;
  const bool valid = i < a.T;
  const int row = valid ? i : 0;
  const T* kb = head_ptr<T>(a.k, a, AV_K, b, hk);
  const T* vb = head_ptr<T>(a.v, a, AV_V, b, hk);
  const float slope = a.slopes ? a.slopes[h] : 0.0f;
  const float* bias_bh = a.bias ? a.bias + b * a.bias_stride[0] + h * a.bias_stride[1] : nullptr;
  float q[ATTN_SLICE], d[ATTN_SLICE], dq[ATTN_SLICE];
  load_slice<T, G>(q, head_ptr<T>(a.q, a, AV_Q, b, h) + row * a.stride[AV_Q][2], g, 1.0f, a.D);
  load_slice<T, G>(d, head_ptr<T>(a.dout, a, AV_DOUT, b, h) + row * a.stride[AV_DOUT][2], g, 1.0f,
                   a.D);
#pragma unroll
  for (int e = 0; e < ATTN_SLICE; e++) dq[e] = 0.0f;
  const long long stat = ((long long)b * a.H + h) * a.T + row;
  const float lse = a.lse[stat], delta = a.delta[stat];
  int lo, hi;
  key_range(a, q0, (q0 + ROWS < a.T ? q0 + ROWS : a.T) - 1, lo, hi);
  for (int k0 = lo / ROWS * ROWS; k0 < hi; k0 += ROWS) {
    __syncthreads();
    load_tile<T, D>(ks, kb, a.stride[AV_K][2], k0, ROWS, a.S, a.D);
    load_tile<T, D>(vs, vb, a.stride[AV_V][2], k0, ROWS, a.S, a.D);
    __syncthreads();
    const int n = hi - k0 < ROWS ? hi - k0 : ROWS;
    for (int t = 0; t < n; t++) {
      const int j = k0 + t;
      const float qk = lanes_sum<G>(slice_dot<G>(q, ks + t * D, g));
      const float dp = lanes_sum<G>(slice_dot<G>(d, vs + t * D, g));
      if (lse == -INFINITY || !visible(a, i, j)) continue;
      const float s = a.scale * qk + score_terms(a, slope, bias_bh, i, j);
      const float p = expf(s - lse);
      const float z = dropout_factor(a, b, h, i, j);
      slice_axpy<G>(dq, p * (z * dp - delta), ks + t * D, g);
    }
  }
  if (!valid) return;
  store_slice<T, G>((T*)a.dq + b * a.stride[AV_DQ][0] + h * a.stride[AV_DQ][1] +
                        i * a.stride[AV_DQ][2],
                    dq, g, a.scale, a.D);
}

// ---- bf16 forward on tensor cores ----
// mma.sync m16n8k16 (bf16 in, f32 accumulate), FlashAttention-2's warp split: 4 warps per CTA,
// each owning 16 query rows (a 64-row tile) for the whole key loop; Q stays in registers as A
// fragments, S = Q K^T (16 x 64 per key tile) stays in accumulator registers, is masked and
// online-softmaxed there, and becomes the A operand of P V through a bf16 repack (FA2's trick:
// the accumulator layout of two n-blocks is the A layout of one k-step). K tiles sit row-major and
// V tiles transposed in shared memory as bf16 with 8 padding elements per row, so every fragment
// load is one conflict-free 32-bit read. Same semantics as attention_forward_kernel; P is rounded
// to bf16 for the second product (as FlashAttention does), l and lse use the unrounded p.

#define MMA_ROWS 64  // query rows per CTA (4 warps x 16)
#define MMA_KEYS 64  // keys per tile

__device__ __forceinline__ void mma_m16n8k16_bf16(float (&d)[4], const unsigned (&a)[4],
                                                  const unsigned (&b)[2]) {
#ifdef EMU_HAS_MMA
  emu_mma_m16n8k16_bf16(d, a, b);
#else
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, "
      "{%8, %9}, {%0, %1, %2, %3};\n"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
#endif
}

// Two bf16 as one 32-bit register, `lo` in the low half (the fragments' element order).
__device__ __forceinline__ unsigned pack_bf16(__nv_bfloat16 lo, __nv_bfloat16 hi) {
  unsigned short l, h;
  memcpy(&l, &lo, 2);
  memcpy(&h, &hi, 2);
  return (unsigned)l | ((unsigned)h << 16);
}

__device__ __forceinline__ unsigned pack_f32(float lo, float hi) {
  return pack_bf16(__float2bfloat16_rn(lo), __float2bfloat16_rn(hi));
}

__device__ __forceinline__ unsigned shared_pair(const __nv_bfloat16* p) {
  return *reinterpret_cast<const unsigned*>(p);  // 4-byte aligned: even element index
}

__device__ __forceinline__ float quad_max(float v) {
  v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, 1));
  return fmaxf(v, __shfl_xor_sync(0xffffffffu, v, 2));
}

__device__ __forceinline__ float quad_sum(float v) {
  v += __shfl_xor_sync(0xffffffffu, v, 1);
  return v + __shfl_xor_sync(0xffffffffu, v, 2);
}

// grid (ceil(T / MMA_ROWS), H, B), block ATTN_THREADS (4 warps).
template <int D>
__device__ void attention_forward_mma_kernel(const AttnArgs& a) {
  constexpr int KP = D + 8, VP = MMA_KEYS + 8, KSTEPS = D / 16, DBLOCKS = D / 8;
  constexpr int NBLOCKS = MMA_KEYS / 8;
  __shared__ __align__(16) __nv_bfloat16 ks[MMA_KEYS * KP];  // (key, d)
  __shared__ __align__(16) __nv_bfloat16 vt[D * VP];         // (d, key)
  const int b = blockIdx.z, h = blockIdx.y, hk = h / (a.H / a.Hkv);
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, g = lane >> 2, t = lane & 3;
  const int q0 = blockIdx.x * MMA_ROWS;
  const int rows[2] = {q0 + warp * 16 + g, q0 + warp * 16 + g + 8};  // this lane's query rows
  const __nv_bfloat16* qb = head_ptr<__nv_bfloat16>(a.q, a, AV_Q, b, h);
  const __nv_bfloat16* kb = head_ptr<__nv_bfloat16>(a.k, a, AV_K, b, hk);
  const __nv_bfloat16* vb = head_ptr<__nv_bfloat16>(a.v, a, AV_V, b, hk);
  const float slope = a.slopes ? a.slopes[h] : 0.0f;
  const float* bias_bh = a.bias ? a.bias + b * a.bias_stride[0] + h * a.bias_stride[1] : nullptr;
  const __nv_bfloat16 zero = __float2bfloat16_rn(0.0f);
  // Q as A fragments: register r of k-step kk holds row rows[r & 1], columns 16kk + 2t (+8 for
  // r >= 2).
  unsigned qf[KSTEPS][4];
#pragma unroll
  for (int kk = 0; kk < KSTEPS; kk++) {
#pragma unroll
    for (int r = 0; r < 4; r++) {
      const int row = rows[r & 1], col = kk * 16 + 2 * t + (r >= 2 ? 8 : 0);
      const __nv_bfloat16* p = qb + (long long)row * a.stride[AV_Q][2] + col;
      qf[kk][r] = row < a.T ? pack_bf16(p[0], p[1]) : 0u;
    }
  }
  float o[DBLOCKS][4];  // out accumulators: rows rows[e >> 1], columns 8nd + 2t + (e & 1)
#pragma unroll
  for (int nd = 0; nd < DBLOCKS; nd++) o[nd][0] = o[nd][1] = o[nd][2] = o[nd][3] = 0.0f;
  float m[2] = {-INFINITY, -INFINITY}, l[2] = {0.0f, 0.0f};  // l: this lane's part of the row sum
  int lo, hi;
  key_range(a, q0, (q0 + MMA_ROWS < a.T ? q0 + MMA_ROWS : a.T) - 1, lo, hi);
  for (int k0 = lo / MMA_KEYS * MMA_KEYS; k0 < hi; k0 += MMA_KEYS) {
    __syncthreads();
    for (int idx = threadIdx.x; idx < MMA_KEYS * D; idx += ATTN_THREADS) {
      const int r = idx / D, c = idx % D, j = k0 + r;
      const bool in = j < a.S;
      ks[r * KP + c] = in ? kb[(long long)j * a.stride[AV_K][2] + c] : zero;
      vt[c * VP + r] = in ? vb[(long long)j * a.stride[AV_V][2] + c] : zero;
    }
    __syncthreads();
    // S = Q K^T: n-block nb covers keys k0 + 8nb .. +7; B fragment = K rows 8nb + g, columns
    // 16kk + 2t (+8).
    float s[NBLOCKS][4];
#pragma unroll
    for (int nb = 0; nb < NBLOCKS; nb++) {
      s[nb][0] = s[nb][1] = s[nb][2] = s[nb][3] = 0.0f;
      const __nv_bfloat16* krow = ks + (nb * 8 + g) * KP + 2 * t;
#pragma unroll
      for (int kk = 0; kk < KSTEPS; kk++) {
        const unsigned bf[2] = {shared_pair(krow + kk * 16), shared_pair(krow + kk * 16 + 8)};
        mma_m16n8k16_bf16(s[nb], qf[kk], bf);
      }
    }
    float mt[2] = {-INFINITY, -INFINITY};
#pragma unroll
    for (int nb = 0; nb < NBLOCKS; nb++) {
#pragma unroll
      for (int e = 0; e < 4; e++) {
        const int i = rows[e >> 1], j = k0 + nb * 8 + 2 * t + (e & 1);
        s[nb][e] = visible(a, i, j) ? a.scale * s[nb][e] + score_terms(a, slope, bias_bh, i, j)
                                    : -INFINITY;
        mt[e >> 1] = fmaxf(mt[e >> 1], s[nb][e]);
      }
    }
    float alpha[2], mn[2];
#pragma unroll
    for (int x = 0; x < 2; x++) {
      mn[x] = fmaxf(m[x], quad_max(mt[x]));  // the row's max over all 4 lanes of the quad
      alpha[x] = mn[x] == -INFINITY ? 1.0f : expf(m[x] - mn[x]);
      l[x] *= alpha[x];
      m[x] = mn[x];
    }
#pragma unroll
    for (int nd = 0; nd < DBLOCKS; nd++) {
#pragma unroll
      for (int e = 0; e < 4; e++) o[nd][e] *= alpha[e >> 1];
    }
    // p = exp(s - m) (0 where masked or the row has nothing visible yet); then dropout.
#pragma unroll
    for (int nb = 0; nb < NBLOCKS; nb++) {
#pragma unroll
      for (int e = 0; e < 4; e++) {
        const float p = mn[e >> 1] == -INFINITY ? 0.0f : expf(s[nb][e] - mn[e >> 1]);
        l[e >> 1] += p;
        const int j = k0 + nb * 8 + 2 * t + (e & 1);
        s[nb][e] = p == 0.0f ? 0.0f : p * dropout_factor(a, b, h, rows[e >> 1], j);
      }
    }
    // O += P V: k-step kk covers keys 16kk .. +15 = n-blocks 2kk, 2kk+1 of S; B fragment =
    // V^T rows 8nd + g (a d), columns 16kk + 2t (+8) (keys).
#pragma unroll
    for (int kk = 0; kk < MMA_KEYS / 16; kk++) {
      const unsigned pa[4] = {pack_f32(s[2 * kk][0], s[2 * kk][1]),
                              pack_f32(s[2 * kk][2], s[2 * kk][3]),
                              pack_f32(s[2 * kk + 1][0], s[2 * kk + 1][1]),
                              pack_f32(s[2 * kk + 1][2], s[2 * kk + 1][3])};
#pragma unroll
      for (int nd = 0; nd < DBLOCKS; nd++) {
        const __nv_bfloat16* vrow = vt + (nd * 8 + g) * VP + kk * 16 + 2 * t;
        const unsigned bf[2] = {shared_pair(vrow), shared_pair(vrow + 8)};
        mma_m16n8k16_bf16(o[nd], pa, bf);
      }
    }
  }
#pragma unroll
  for (int x = 0; x < 2; x++) {
    const float sum = quad_sum(l[x]);
    const int i = rows[x];
    if (i >= a.T) continue;
    __nv_bfloat16* orow = (__nv_bfloat16*)a.out + b * a.stride[AV_OUT][0] +
                          h * a.stride[AV_OUT][1] + i * a.stride[AV_OUT][2];
    const float inv = sum == 0.0f ? 0.0f : 1.0f / sum;  // no visible key: out 0
#pragma unroll
    for (int nd = 0; nd < DBLOCKS; nd++) {
      orow[nd * 8 + 2 * t] = __float2bfloat16_rn(o[nd][2 * x] * inv);
      orow[nd * 8 + 2 * t + 1] = __float2bfloat16_rn(o[nd][2 * x + 1] * inv);
    }
    if (t == 0) {
      a.lse[((long long)b * a.H + h) * a.T + i] = sum == 0.0f ? -INFINITY : m[x] + logf(sum);
    }
  }
}

// ---- bf16 backward on tensor cores (D = 64: its shared tiles fit the 48 KiB static limit) ----
// FlashAttention-2's backward with the same warp split: dk/dv per 64-key tile (each warp owns 16
// keys, loops over the group's heads and their query tiles, computing S^T = K Q^T and
// dP^T = V dO^T in registers, then dV += (P^T z) dO and dK += dS^T Q); dq per 64-query tile
// (S = Q K^T, dP = dO V^T, dQ += dS K). Row-major tiles feed "A B^T" products, transposed tiles
// the products whose B operand runs along the tile's rows.

#define MMA_PITCH(n) ((n) + 8)  // padded row of a bf16 shared tile: conflict-free fragment reads

// c (16 x 8*NB) = A (16 x 16*KS, fragments) times B^T, B row-major in shared (8*NB rows x 16*KS,
// pitch P): n-block nb's B fragment is row 8nb + g, columns 16kk + 2t (+8).
template <int KS, int NB, int P>
__device__ __forceinline__ void warp_mma_abt(float (&c)[NB][4], const unsigned (&af)[KS][4],
                                             const __nv_bfloat16* bs, int g, int t) {
#pragma unroll
  for (int nb = 0; nb < NB; nb++) {
    c[nb][0] = c[nb][1] = c[nb][2] = c[nb][3] = 0.0f;
    const __nv_bfloat16* row = bs + (nb * 8 + g) * P + 2 * t;
#pragma unroll
    for (int kk = 0; kk < KS; kk++) {
      const unsigned bf[2] = {shared_pair(row + kk * 16), shared_pair(row + kk * 16 + 8)};
      mma_m16n8k16_bf16(c[nb], af[kk], bf);
    }
  }
}

// c (16 x 8*ND) += X (16 x 8*NX, accumulator layout, repacked to bf16 A fragments: k-step kk =
// n-blocks 2kk, 2kk+1) times B, with B^T in shared (8*ND rows x 8*NX, pitch P).
template <int NX, int ND, int P>
__device__ __forceinline__ void warp_mma_xb(float (&c)[ND][4], const float (&x)[NX][4],
                                            const __nv_bfloat16* bt, int g, int t) {
#pragma unroll
  for (int kk = 0; kk < NX / 2; kk++) {
    const unsigned xa[4] = {pack_f32(x[2 * kk][0], x[2 * kk][1]),
                            pack_f32(x[2 * kk][2], x[2 * kk][3]),
                            pack_f32(x[2 * kk + 1][0], x[2 * kk + 1][1]),
                            pack_f32(x[2 * kk + 1][2], x[2 * kk + 1][3])};
#pragma unroll
    for (int nd = 0; nd < ND; nd++) {
      const __nv_bfloat16* row = bt + (nd * 8 + g) * P + kk * 16 + 2 * t;
      const unsigned bf[2] = {shared_pair(row), shared_pair(row + 8)};
      mma_m16n8k16_bf16(c[nd], xa, bf);
    }
  }
}

// Rows [r0, r0 + 64) of a (n, D) bf16 view into shared: row-major `tile` (pitch D + 8) and/or
// transposed `tile_t` (pitch 72); rows past n are 0.
template <int D>
__device__ __forceinline__ void load_bf16_tile(__nv_bfloat16* tile, __nv_bfloat16* tile_t,
                                               const __nv_bfloat16* base, long long row_stride,
                                               int r0, int n) {
  const __nv_bfloat16 zero = __float2bfloat16_rn(0.0f);
  for (int idx = threadIdx.x; idx < MMA_KEYS * D; idx += ATTN_THREADS) {
    const int r = idx / D, c = idx % D;
    const __nv_bfloat16 x = r0 + r < n ? base[(long long)(r0 + r) * row_stride + c] : zero;
    if (tile) tile[r * MMA_PITCH(D) + c] = x;
    if (tile_t) tile_t[c * MMA_PITCH(MMA_KEYS) + r] = x;
  }
}

// A fragments of rows[0..1] (this lane's two rows) of a (.., D) bf16 view; rows past n are 0.
template <int D>
__device__ __forceinline__ void load_a_fragments(unsigned (&f)[D / 16][4],
                                                 const __nv_bfloat16* base, long long row_stride,
                                                 const int (&rows)[2], int n, int t) {
#pragma unroll
  for (int kk = 0; kk < D / 16; kk++) {
#pragma unroll
    for (int r = 0; r < 4; r++) {
      const int row = rows[r & 1], col = kk * 16 + 2 * t + (r >= 2 ? 8 : 0);
      const __nv_bfloat16* p = base + (long long)row * row_stride + col;
      f[kk][r] = row < n ? pack_bf16(p[0], p[1]) : 0u;
    }
  }
}

// grid (ceil(S / 64), Hkv, B), block ATTN_THREADS.
template <int D>
__device__ void attention_backward_dkdv_mma_kernel(const AttnArgs& a) {
  constexpr int QP = MMA_PITCH(D), TP = MMA_PITCH(MMA_KEYS), KS = D / 16, ND = D / 8;
  constexpr int NB = MMA_KEYS / 8;  // n-blocks of a 64-query tile
  __shared__ __align__(16) __nv_bfloat16 qs[MMA_KEYS * QP];   // (query, d)
  __shared__ __align__(16) __nv_bfloat16 qt[D * TP];          // (d, query)
  __shared__ __align__(16) __nv_bfloat16 dos[MMA_KEYS * QP];  // (query, d)
  __shared__ __align__(16) __nv_bfloat16 dot[D * TP];         // (d, query)
  __shared__ float lses[MMA_KEYS], deltas[MMA_KEYS];
  const int b = blockIdx.z, hk = blockIdx.y, group = a.H / a.Hkv;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, g = lane >> 2, t = lane & 3;
  const int k0 = blockIdx.x * MMA_KEYS;
  const int keys[2] = {k0 + warp * 16 + g, k0 + warp * 16 + g + 8};  // this lane's key rows
  unsigned kf[KS][4], vf[KS][4];
  load_a_fragments<D>(kf, head_ptr<__nv_bfloat16>(a.k, a, AV_K, b, hk), a.stride[AV_K][2], keys,
                      a.S, t);
  load_a_fragments<D>(vf, head_ptr<__nv_bfloat16>(a.v, a, AV_V, b, hk), a.stride[AV_V][2], keys,
                      a.S, t);
  float dk[ND][4], dv[ND][4];
#pragma unroll
  for (int nd = 0; nd < ND; nd++) {
#pragma unroll
    for (int e = 0; e < 4; e++) dk[nd][e] = dv[nd][e] = 0.0f;
  }
  int lo, hi;
  query_range(a, k0, (k0 + MMA_KEYS < a.S ? k0 + MMA_KEYS : a.S) - 1, lo, hi);
  for (int hh = 0; hh < group; hh++) {
    const int h = hk * group + hh;
    const float slope = a.slopes ? a.slopes[h] : 0.0f;
    const float* bias_bh =
        a.bias ? a.bias + b * a.bias_stride[0] + h * a.bias_stride[1] : nullptr;
    const __nv_bfloat16* qb = head_ptr<__nv_bfloat16>(a.q, a, AV_Q, b, h);
    const __nv_bfloat16* db = head_ptr<__nv_bfloat16>(a.dout, a, AV_DOUT, b, h);
    const long long stats = ((long long)b * a.H + h) * a.T;
    for (int q0 = lo / MMA_KEYS * MMA_KEYS; q0 < hi; q0 += MMA_KEYS) {
      __syncthreads();
      load_bf16_tile<D>(qs, qt, qb, a.stride[AV_Q][2], q0, a.T);
      load_bf16_tile<D>(dos, dot, db, a.stride[AV_DOUT][2], q0, a.T);
      for (int r = threadIdx.x; r < MMA_KEYS; r += ATTN_THREADS) {
        lses[r] = q0 + r < a.T ? a.lse[stats + q0 + r] : -INFINITY;  // -inf: no contribution
        deltas[r] = q0 + r < a.T ? a.delta[stats + q0 + r] : 0.0f;
      }
      __syncthreads();
      float st[NB][4], dpt[NB][4];  // S^T and dP^T: rows keys[e >> 1], columns queries
      warp_mma_abt<KS, NB, QP>(st, kf, qs, g, t);
      warp_mma_abt<KS, NB, QP>(dpt, vf, dos, g, t);
#pragma unroll
      for (int nb = 0; nb < NB; nb++) {
#pragma unroll
        for (int e = 0; e < 4; e++) {
          const int c = nb * 8 + 2 * t + (e & 1), i = q0 + c, j = keys[e >> 1];
          const float lse = lses[c];
          float pz = 0.0f, ds = 0.0f;
          if (lse != -INFINITY && visible(a, i, j)) {
            const float p =
                expf(a.scale * st[nb][e] + score_terms(a, slope, bias_bh, i, j) - lse);
            const float z = dropout_factor(a, b, h, i, j);
            pz = p * z;
            ds = p * (z * dpt[nb][e] - deltas[c]);
          }
          st[nb][e] = pz;
          dpt[nb][e] = ds;
        }
      }
      warp_mma_xb<NB, ND, TP>(dv, st, dot, g, t);   // dV += (P z)^T dO
      warp_mma_xb<NB, ND, TP>(dk, dpt, qt, g, t);   // dK += dS^T Q
    }
  }
#pragma unroll
  for (int x = 0; x < 2; x++) {
    const int j = keys[x];
    if (j >= a.S) continue;
    __nv_bfloat16* dkr = (__nv_bfloat16*)a.dk + b * a.stride[AV_DK][0] +
                         hk * a.stride[AV_DK][1] + j * a.stride[AV_DK][2];
    __nv_bfloat16* dvr = (__nv_bfloat16*)a.dv + b * a.stride[AV_DV][0] +
                         hk * a.stride[AV_DV][1] + j * a.stride[AV_DV][2];
#pragma unroll
    for (int nd = 0; nd < ND; nd++) {
#pragma unroll
      for (int y = 0; y < 2; y++) {
        dkr[nd * 8 + 2 * t + y] = __float2bfloat16_rn(dk[nd][2 * x + y] * a.scale);
        dvr[nd * 8 + 2 * t + y] = __float2bfloat16_rn(dv[nd][2 * x + y]);
      }
    }
  }
}

// grid (ceil(T / 64), H, B), block ATTN_THREADS.
template <int D>
__device__ void attention_backward_dq_mma_kernel(const AttnArgs& a) {
  constexpr int KP = MMA_PITCH(D), TP = MMA_PITCH(MMA_KEYS), KS = D / 16, ND = D / 8;
  constexpr int NB = MMA_KEYS / 8;
  __shared__ __align__(16) __nv_bfloat16 ks[MMA_KEYS * KP];  // (key, d)
  __shared__ __align__(16) __nv_bfloat16 kt[D * TP];         // (d, key)
  __shared__ __align__(16) __nv_bfloat16 vs[MMA_KEYS * KP];  // (key, d)
  const int b = blockIdx.z, h = blockIdx.y, hk = h / (a.H / a.Hkv);
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, g = lane >> 2, t = lane & 3;
  const int q0 = blockIdx.x * MMA_ROWS;
  const int rows[2] = {q0 + warp * 16 + g, q0 + warp * 16 + g + 8};
  const __nv_bfloat16* kb = head_ptr<__nv_bfloat16>(a.k, a, AV_K, b, hk);
  const __nv_bfloat16* vb = head_ptr<__nv_bfloat16>(a.v, a, AV_V, b, hk);
  const float slope = a.slopes ? a.slopes[h] : 0.0f;
  const float* bias_bh = a.bias ? a.bias + b * a.bias_stride[0] + h * a.bias_stride[1] : nullptr;
  unsigned qf[KS][4], df[KS][4];
  load_a_fragments<D>(qf, head_ptr<__nv_bfloat16>(a.q, a, AV_Q, b, h), a.stride[AV_Q][2], rows,
                      a.T, t);
  load_a_fragments<D>(df, head_ptr<__nv_bfloat16>(a.dout, a, AV_DOUT, b, h),
                      a.stride[AV_DOUT][2], rows, a.T, t);
  float lse[2], delta[2];
#pragma unroll
  for (int x = 0; x < 2; x++) {
    const long long at = ((long long)b * a.H + h) * a.T + rows[x];
    lse[x] = rows[x] < a.T ? a.lse[at] : -INFINITY;
    delta[x] = rows[x] < a.T ? a.delta[at] : 0.0f;
  }
  float dq[ND][4];
#pragma unroll
  for (int nd = 0; nd < ND; nd++) dq[nd][0] = dq[nd][1] = dq[nd][2] = dq[nd][3] = 0.0f;
  int lo, hi;
  key_range(a, q0, (q0 + MMA_ROWS < a.T ? q0 + MMA_ROWS : a.T) - 1, lo, hi);
  for (int k0 = lo / MMA_KEYS * MMA_KEYS; k0 < hi; k0 += MMA_KEYS) {
    __syncthreads();
    load_bf16_tile<D>(ks, kt, kb, a.stride[AV_K][2], k0, a.S);
    load_bf16_tile<D>(vs, nullptr, vb, a.stride[AV_V][2], k0, a.S);
    __syncthreads();
    float s[NB][4], dp[NB][4];
    warp_mma_abt<KS, NB, KP>(s, qf, ks, g, t);   // S = Q K^T
    warp_mma_abt<KS, NB, KP>(dp, df, vs, g, t);  // dP = dO V^T
#pragma unroll
    for (int nb = 0; nb < NB; nb++) {
#pragma unroll
      for (int e = 0; e < 4; e++) {
        const int i = rows[e >> 1], j = k0 + nb * 8 + 2 * t + (e & 1);
        float ds = 0.0f;
        if (lse[e >> 1] != -INFINITY && visible(a, i, j)) {
          const float p =
              expf(a.scale * s[nb][e] + score_terms(a, slope, bias_bh, i, j) - lse[e >> 1]);
          ds = p * (dropout_factor(a, b, h, i, j) * dp[nb][e] - delta[e >> 1]);
        }
        s[nb][e] = ds;
      }
    }
    warp_mma_xb<NB, ND, TP>(dq, s, kt, g, t);  // dQ += dS K
  }
#pragma unroll
  for (int x = 0; x < 2; x++) {
    const int i = rows[x];
    if (i >= a.T) continue;
    __nv_bfloat16* dqr = (__nv_bfloat16*)a.dq + b * a.stride[AV_DQ][0] +
                         h * a.stride[AV_DQ][1] + i * a.stride[AV_DQ][2];
#pragma unroll
    for (int nd = 0; nd < ND; nd++) {
      dqr[nd * 8 + 2 * t] = __float2bfloat16_rn(dq[nd][2 * x] * a.scale);
      dqr[nd * 8 + 2 * t + 1] = __float2bfloat16_rn(dq[nd][2 * x + 1] * a.scale);
    }
  }
}

// Scalar kernels by padded head dim DP (64, 128): any D <= DP runs on them (the padding
// columns are zeros). Tensor-core kernels: bf16 forward at D = 64 and 128, backward at D = 64.
#define ATTENTION_SCALAR(T, N, DP)                                                            \
  extern "C" __global__ void attention_forward_##N##_d##DP(AttnArgs a) {                     \
    attention_forward_kernel<T, DP>(a);                                                       \
  }                                                                                           \
  extern "C" __global__ void attention_backward_dkdv_##N##_d##DP(AttnArgs a) {               \
    attention_backward_dkdv_kernel<T, DP>(a);                                                 \
  }                                                                                           \
  extern "C" __global__ void attention_backward_dq_##N##_d##DP(AttnArgs a) {                 \
    attention_backward_dq_kernel<T, DP>(a);                                                   \
  }
#define ATTENTION_DTYPE(T, N)                                                                 \
  extern "C" __global__ void attention_backward_delta_##N(AttnArgs a) {                      \
    attention_backward_delta_kernel<T>(a);                                                    \
  }                                                                                           \
  ATTENTION_SCALAR(T, N, 64)                                                                  \
  ATTENTION_SCALAR(T, N, 128)
ATTENTION_DTYPE(float, f32)
ATTENTION_DTYPE(__nv_bfloat16, bf16)

extern "C" __global__ void attention_forward_mma_bf16_d64(AttnArgs a) {
  attention_forward_mma_kernel<64>(a);
}
extern "C" __global__ void attention_forward_mma_bf16_d128(AttnArgs a) {
  attention_forward_mma_kernel<128>(a);
}
extern "C" __global__ void attention_backward_dkdv_mma_bf16_d64(AttnArgs a) {
  attention_backward_dkdv_mma_kernel<64>(a);
}
extern "C" __global__ void attention_backward_dq_mma_bf16_d64(AttnArgs a) {
  attention_backward_dq_mma_kernel<64>(a);
}

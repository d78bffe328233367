// Fused attention, scalar (SIMT) kernels: f32, and the bf16 backward at D = 128 (the bf16
// forward, and its backward at D = 64, run on tensor cores in attention_mma.cu). Forward beside
// backward; the semantics, AttnArgs and the shared helpers are in attention.cuh.
//
// Work split. A CTA has ATTN_THREADS threads; a row (a query row, or a key row in the dk/dv
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
#include "attention.cuh"

#define ATTN_SLICE 32  // elements of a row each lane holds
#define ATTN_KC 8      // keys per online-softmax chunk in the forward

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

// Scalar kernels by padded head dim DP (64, 128): any D <= DP runs on them (the padding
// columns are zeros). The tensor-core kernels (attention_mma.cu): bf16 forward at D = 64 and 128,
// backward at D = 64.
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

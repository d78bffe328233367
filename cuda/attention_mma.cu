// Fused attention, tensor-core kernels (mma.sync, bf16): the forward at D = 64 and 128, the
// backward at D = 64 (its delta = rowsum(dout * out) comes from attention_backward_delta_bf16 in
// attention_scalar.cu). Forward beside backward; the semantics, AttnArgs and the shared helpers
// are in attention.cuh.
#include "attention.cuh"

// ---- bf16 forward on tensor cores ----
// mma.sync m16n8k16 (bf16 in, f32 accumulate), FlashAttention-2's warp split: 4 warps per CTA,
// each owning 16 query rows (a 64-row tile) for the whole key loop; Q stays in registers as A
// fragments, S = Q K^T (16 x 64 per key tile) stays in accumulator registers, is masked and
// online-softmaxed there, and becomes the A operand of P V through a bf16 repack (FA2's trick:
// the accumulator layout of two n-blocks is the A layout of one k-step). K tiles sit row-major and
// V tiles transposed in shared memory as bf16 with 8 padding elements per row, so every fragment
// load is one conflict-free 32-bit read. Same semantics as attention_forward_kernel (in
// attention_scalar.cu); P is rounded to bf16 for the second product (as FlashAttention does), l
// and lse use the unrounded p.

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

// A CPU stand-in for the CUDA execution model, just enough to run cuda/*.cu unchanged in tests on
// machines without a GPU. Every thread of a block is a fiber (ucontext) on one host thread, run
// cooperatively: a fiber runs until it reaches a barrier (__syncthreads, or the warp barrier
// inside each shuffle) or returns, then the next one runs. Blocks run one after another, so
// __shared__ variables are statics, and device pointers are host pointers. It checks the
// kernels' logic (indexing, reductions, dtype rules, launch geometry, parameter packing) against
// the CPU backend, not their speed; barrier misuse shows as a reported deadlock.
#pragma once

#include <atomic>
#include <climits>
#include <cmath>
#include <cstdint>
#include <cstring>

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __align__(n) __attribute__((aligned(n)))
#define __shared__ static
#define DYNAMIC_SHARED(T, name) T* name = reinterpret_cast<T*>(emu::dynamic_shared)

struct dim3 {
  unsigned x = 1, y = 1, z = 1;
};

// Set by the scheduler (runtime.cpp) each time it resumes a fiber.
inline dim3 threadIdx, blockIdx, blockDim, gridDim;

namespace emu {
inline int lane = 0;
inline uint64_t* warp_slots = nullptr;  // the current warp's 32 shuffle slots
inline unsigned char* dynamic_shared = nullptr;
void block_sync();  // opaque calls: the compiler reloads threadIdx & co. after them
void warp_sync();
}  // namespace emu

inline void __syncthreads() { emu::block_sync(); }

template <typename T>
inline T __shfl_xor_sync(unsigned, T v, int offset) {
  static_assert(sizeof(T) <= 8, "shuffle of at most 8 bytes");
  std::memcpy(&emu::warp_slots[emu::lane], &v, sizeof v);
  emu::warp_sync();
  T r;
  std::memcpy(&r, &emu::warp_slots[emu::lane ^ offset], sizeof r);
  emu::warp_sync();
  return r;
}

inline float atomicAdd(float* p, float v) { return std::atomic_ref<float>(*p).fetch_add(v); }
inline int atomicAdd(int* p, int v) { return std::atomic_ref<int>(*p).fetch_add(v); }

inline float __int_as_float(int i) {
  float f;
  std::memcpy(&f, &i, 4);
  return f;
}

/** bfloat16 as the upper 16 bits of an f32, rounded to nearest even (as src/dtype.ts does). */
struct __nv_bfloat16 {
  uint16_t bits;
};
inline float __bfloat162float(__nv_bfloat16 b) {
  const uint32_t u = uint32_t(b.bits) << 16;
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}
inline __nv_bfloat16 __float2bfloat16_rn(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  if ((u & 0x7fffffffu) > 0x7f800000u) return {uint16_t((u >> 16) | 0x40)};
  return {uint16_t((u + 0x7fffu + ((u >> 16) & 1u)) >> 16)};
}

// mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 for one warp (cuda/attention_mma.cu):
// d += A B with A (16x16) and B (16x8) bf16 spread over the lanes in the PTX ISA's fragment layout
// ("Matrix Fragments for mma.m16n8k16 with floating point type"): groupID g = lane >> 2,
// t = lane % 4; A register r holds rows g (+8 for r = 1, 3), columns 2t, 2t+1 (+8 for r >= 2),
// lower column in the low half; B register r holds rows 2t, 2t+1 (+8 for r = 1) of column g; the
// accumulators are rows g (d0, d1) and g+8 (d2, d3), columns 2t, 2t+1. Every lane must call it.
#define EMU_HAS_MMA 1
#include <array>
#include <map>
namespace emu {
inline uint32_t* mma_exchange() {
  static std::map<const void*, std::array<uint32_t, 32 * 6>> per_warp;
  return per_warp[warp_slots].data();
}
inline float bf16_half(uint32_t reg, int high) {
  return __bfloat162float({uint16_t(high ? reg >> 16 : reg & 0xffffu)});
}
}  // namespace emu

inline void emu_mma_m16n8k16_bf16(float (&d)[4], const unsigned (&a)[4], const unsigned (&b)[2]) {
  uint32_t* x = emu::mma_exchange();
  for (int i = 0; i < 4; i++) x[emu::lane * 6 + i] = a[i];
  x[emu::lane * 6 + 4] = b[0];
  x[emu::lane * 6 + 5] = b[1];
  emu::warp_sync();
  const int g = emu::lane >> 2, t = emu::lane & 3;
  float r[4];
  for (int e = 0; e < 4; e++) {
    const int row = g + (e >= 2 ? 8 : 0), col = 2 * t + (e & 1);
    float acc = 0.0f;
    for (int k = 0; k < 16; k++) {
      const uint32_t ar = x[((row % 8) * 4 + (k % 8) / 2) * 6 + (row >= 8 ? 1 : 0) + (k >= 8 ? 2 : 0)];
      const uint32_t br = x[(col * 4 + (k % 8) / 2) * 6 + 4 + (k >= 8 ? 1 : 0)];
      acc += emu::bf16_half(ar, k & 1) * emu::bf16_half(br, k & 1);
    }
    r[e] = d[e] + acc;
  }
  emu::warp_sync();  // every lane has read the exchange before the next call overwrites it
  for (int e = 0; e < 4; e++) d[e] = r[e];
}
